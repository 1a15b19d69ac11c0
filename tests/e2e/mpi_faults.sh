#!/usr/bin/env bash
# mpi_faults.sh — faults of `mpirun -np 2 digits train` (the MPI build):
# rank 1 SIGKILLed mid-run ends the job (within the timeout: nothing
# hangs) with Open MPI's line naming the killed rank and ours naming the
# step rank 0 was at; `mpirun ... train --resume DIR` then ends with the
# tensors of the uninterrupted run, byte for byte. Refused before step 1,
# with one line from the rank that differs and no model file: a rank whose
# data differ from rank 0's (other working folders: Open MPI's MPMD
# syntax `-np 1 --wdir A ... : -np 1 --wdir B ...`), a rank that cannot
# read the data, a rank started with other options, a rank running another
# binary.
source "$(dirname "$0")/lib.bash"
require_data
source "$(dirname "$0")/mpi.bash"

# 1. the reference, and a 2-rank run with rank 1 killed after the first checkpoint
common=(--model lenet5 --data "$DATA" --limit 3000 --epochs 3 --batch-size 64 --lr 0.01 --test none --quiet)
"$DIGITS" train "${common[@]}" --threads 2 --out "$TMP/ref.safetensors" >/dev/null
rc=0
"${MPIRUN[@]}" -np 2 "$DIGITS_MPI" train "${common[@]}" --threads 1 --out "$TMP/k.safetensors" \
    --checkpoint-dir "$TMP/ck" > "$TMP/k.out" 2> "$TMP/k.err" &
job=$!
wait_for "$TMP/ck/latest" 100
killed=
for p in $(pgrep -f "$TMP/k.safetensors"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | output_has -x 'OMPI_COMM_WORLD_RANK=1'; then
        kill -KILL "$p" && killed=$p
    fi
done
[[ -n "$killed" ]] || fail "rank 1 not found (the run ended before the kill?)"
wait $job || rc=$?
[[ $rc -ne 0 ]] || fail "the job should fail when a rank is killed"
[[ $rc -ne 124 ]] || fail "the job hung after rank 1 was killed"
grep -q "process rank 1 .*exited on signal 9" "$TMP/k.err" || fail "mpirun should name rank 1: $(cat "$TMP/k.err")"
grep -Eq "^digits train: rank 0: (ended by signal [0-9]+|communication failed) at step [0-9]+" "$TMP/k.err" ||
    fail "rank 0 should name its step: $(cat "$TMP/k.err")"
echo "ok: rank 1 killed -> $(grep -E '^digits train: rank 0' "$TMP/k.err")"

"${MPIRUN[@]}" -np 2 "$DIGITS_MPI" train --resume "$TMP/ck" --quiet > /dev/null 2> "$TMP/r.err" ||
    { cat "$TMP/r.err"; fail "mpirun train --resume failed"; }
same_weights "$TMP/ref.safetensors" "$TMP/k.safetensors" || fail "killed + resumed run differs from the uninterrupted one"
echo "ok: mpirun train --resume = uninterrupted run, byte for byte"

# 2. refused before step 1: other data, no data, other options, another binary
mkdir -p "$TMP/a" "$TMP/b/mn" "$TMP/c"
ln -s "$(cd "$DATA" && pwd)" "$TMP/a/mn"
cp "$DATA"/train-images-idx3-ubyte "$DATA"/train-labels-idx1-ubyte "$TMP/b/mn/"
printf '\x80' | dd of="$TMP/b/mn/train-images-idx3-ubyte" bs=1 seek=$((16 + 14 * 28 + 14)) conv=notrunc status=none
small=(--model lenet5 --data mn --limit 300 --epochs 1 --batch-size 32 --test none --quiet)
mismatch() { # EXPECTED-LINE -- mpirun arguments...
    local want=$1 rc=0
    shift 2
    rm -f "$TMP/x.safetensors"
    "${MPIRUN[@]}" "$@" > "$TMP/x.out" 2> "$TMP/x.err" || rc=$?
    [[ $rc -ne 0 && $rc -ne 124 ]] || fail "expected a refusal (rc $rc): $*"
    grep -Eq "$want" "$TMP/x.err" || fail "expected '$want': $(cat "$TMP/x.err")"
    [[ ! -e "$TMP/x.safetensors" ]] || fail "a refused run wrote its model"
    echo "ok: $(grep -E "$want" "$TMP/x.err" | head -1)"
}
out=(--out "$TMP/x.safetensors")
mismatch "^digits train: rank 1: its training data differ from rank 0's" -- \
    -np 1 --wdir "$TMP/a" "$DIGITS_MPI" train "${small[@]}" "${out[@]}" : \
    -np 1 --wdir "$TMP/b" "$DIGITS_MPI" train "${small[@]}" "${out[@]}"
mismatch "^digits train: rank 1: mn: " -- \
    -np 1 --wdir "$TMP/a" "$DIGITS_MPI" train "${small[@]}" "${out[@]}" : \
    -np 1 --wdir "$TMP/c" "$DIGITS_MPI" train "${small[@]}" "${out[@]}"
mismatch "^digits train: rank 1: its arguments differ from rank 0's" -- \
    -np 1 --wdir "$TMP/a" "$DIGITS_MPI" train "${small[@]}" "${out[@]}" --lr 0.01 : \
    -np 1 --wdir "$TMP/a" "$DIGITS_MPI" train "${small[@]}" "${out[@]}" --lr 0.02
cp "$DIGITS_MPI" "$TMP/digits-other"
printf 'x' >> "$TMP/digits-other"
mismatch "^digits train: rank 1: its digits binary differs from rank 0's" -- \
    -np 1 --wdir "$TMP/a" "$DIGITS_MPI" train "${small[@]}" "${out[@]}" : \
    -np 1 --wdir "$TMP/a" "$TMP/digits-other" train "${small[@]}" "${out[@]}"
