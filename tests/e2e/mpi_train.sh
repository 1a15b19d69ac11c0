#!/usr/bin/env bash
# mpi_train.sh — `mpirun -np N digits train` (the MPI build, make MPI=1):
# the process layer's own test under 3 ranks (fixed-order sum, broadcast,
# gathers); then the model a distributed run saves holds, byte for byte,
# the tensors of the one-process run with the same global batch and the
# same total thread count: lenet5 (conv + linear) on 2 ranks x 1 thread vs
# 2 threads; a net with dropout, dropout2d and augmentation on 2 ranks x 2
# threads vs 4 threads, and on 3 ranks x 1 thread vs 3 threads (uneven
# shards). Only rank 0 writes the model and the log. Refused with one
# line: a batch-norm model (no SyncBN yet), a batch smaller than the rank
# count. See mpi_faults.sh for kills, --resume and mismatched ranks.
source "$(dirname "$0")/lib.bash"
require_data
source "$(dirname "$0")/mpi.bash"

"${MPIRUN[@]}" -np 3 "$MPI_BUILD/tests/test_dist" > "$TMP/dist.out" 2>&1 || { cat "$TMP/dist.out"; fail "test_dist under 3 ranks"; }
[[ $(grep -c '^\[  PASSED  \] 2 test' "$TMP/dist.out") -eq 3 ]] || { cat "$TMP/dist.out"; fail "test_dist: not every rank passed"; }
echo "ok: dist layer under 3 ranks"

# 1. lenet5: 2 ranks x 1 thread = 1 process x 2 threads
common=(--model lenet5 --data "$DATA" --limit 600 --epochs 2 --batch-size 64 --lr 0.01 --test none --quiet)
"$DIGITS" train "${common[@]}" --threads 2 --out "$TMP/ref.safetensors" --log "$TMP/ref.csv" >/dev/null
"${MPIRUN[@]}" -np 2 "$DIGITS_MPI" train "${common[@]}" --threads 1 --out "$TMP/mpi.safetensors" --log "$TMP/mpi.csv" \
    > "$TMP/mpi.out" 2> "$TMP/mpi.err" || { cat "$TMP/mpi.err"; fail "mpirun -np 2 train failed"; }
same_weights "$TMP/ref.safetensors" "$TMP/mpi.safetensors" || fail "lenet5: 2 ranks x 1 thread differ from 2 threads"
[[ $(wc -l < "$TMP/mpi.csv") -eq 3 ]] || fail "the log should have a header and 2 epochs: $(cat "$TMP/mpi.csv")"
grep -q "saved $TMP/mpi.safetensors" "$TMP/mpi.out" || fail "rank 0 should report the save once"
[[ $(grep -c "^saved" "$TMP/mpi.out") -eq 1 ]] || fail "only rank 0 prints: $(cat "$TMP/mpi.out")"
echo "ok: lenet5, 2 ranks x 1 thread = 2 threads, byte for byte"

# 2. dropout, dropout2d, augmentation; 2 x 2 = 4 threads and 3 x 1 = 3 threads
cat > "$TMP/drop.spec" <<'SPEC'
input 1x28x28
conv2d out=8 kernel=5 stride=2
relu
dropout2d p=0.2
conv2d out=16 kernel=3 pad=1
relu
maxpool size=2
flatten
linear out=32
relu
dropout p=0.3
linear out=10
SPEC
drop=(--model "$TMP/drop.spec" --data "$DATA" --limit 700 --epochs 2 --batch-size 64 --lr 0.01 --test none --quiet
      --augment rotate=10,shift=0.1)
for pair in "2 2 4" "3 1 3"; do
    read -r ranks threads total <<< "$pair"
    "$DIGITS" train "${drop[@]}" --threads "$total" --out "$TMP/d$total.safetensors" >/dev/null
    "${MPIRUN[@]}" -np "$ranks" "$DIGITS_MPI" train "${drop[@]}" --threads "$threads" \
        --out "$TMP/m$ranks.safetensors" > /dev/null 2> "$TMP/m.err" || { cat "$TMP/m.err"; fail "mpirun -np $ranks failed"; }
    same_weights "$TMP/d$total.safetensors" "$TMP/m$ranks.safetensors" ||
        fail "dropout net: $ranks ranks x $threads threads differ from $total threads"
    echo "ok: dropout + augmentation, $ranks ranks x $threads threads = $total threads, byte for byte"
done

# 3. refused: batch norm; a batch with fewer images than ranks
rc=0
"${MPIRUN[@]}" -np 2 "$DIGITS_MPI" train --model cnn-bn --data "$DATA" --limit 200 --epochs 1 --test none --quiet \
    --out "$TMP/bn.safetensors" > /dev/null 2> "$TMP/bn.err" || rc=$?
[[ $rc -ne 0 ]] || fail "a batch-norm model should be refused under mpirun"
grep -q "rank 0: .*batch norm needs its statistics synchronised" "$TMP/bn.err" || fail "batch norm: $(cat "$TMP/bn.err")"
[[ ! -s "$TMP/bn.safetensors" ]] || fail "a refused run wrote a model"
rc=0
"${MPIRUN[@]}" -np 3 "$DIGITS_MPI" train --model lenet5 --data "$DATA" --limit 100 --val-split 0.1 --epochs 1 \
    --batch-size 44 --test none --quiet --out "$TMP/small.safetensors" > /dev/null 2> "$TMP/small.err" || rc=$?
[[ $rc -ne 0 ]] && grep -q "3 ranks need at least one image each of every batch" "$TMP/small.err" ||
    fail "a last batch of 2 images on 3 ranks: rc $rc, $(cat "$TMP/small.err")"
echo "ok: batch norm and too-small batches refused"
