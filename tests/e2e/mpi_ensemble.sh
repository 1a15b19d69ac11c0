#!/usr/bin/env bash
# mpi_ensemble.sh — ensembles, K-fold and prediction spread over the ranks
# of an MPI job (`mpirun -np N build-mpi/digits ...`) give what one process
# gives: the same ensemble file (tensors byte for byte; metadata byte for
# byte but for the members' measured train_seconds), the same `eval --json`
# and the same submission.csv. More ranks than members: groups of ranks
# train a member data-parallel, equal to one process with the group's
# threads. Also: --resume of a killed single-process ensemble run continued
# over two ranks. Builds the MPI binary (tests/e2e/mpi.bash).
source "$(dirname "$0")/lib.bash"
require_data
source "$(dirname "$0")/mpi.bash"
D="$DIGITS"
M="$DIGITS_MPI"
mpi() { local n=$1; shift; "${MPIRUN[@]}" -np "$n" "$M" "$@"; }

# 0. groups of ranks in the process layer (tests/test_dist_group.c on 3 ranks)
make -s -j2 MPI=1 SANITIZE=$san BUILD="$MPI_BUILD" "$MPI_BUILD/tests/test_dist_group" >/dev/null || fail "make test_dist_group"
"${MPIRUN[@]}" -np 3 "$MPI_BUILD/tests/test_dist_group" > "$TMP/dg.out" 2>&1 || { cat "$TMP/dg.out"; fail "test_dist_group on 3 ranks"; }
[[ $(grep -c '^\[  PASSED  \] 1 test' "$TMP/dg.out") -eq 3 ]] || { cat "$TMP/dg.out"; fail "test_dist_group: not every rank passed"; }
echo "ok: dist groups on 3 ranks"

cat > "$TMP/tiny.spec" <<'SPEC'
input 1x28x28
conv2d out=6 kernel=5 pad=2
batchnorm
relu
dropout2d p=0.1
maxpool size=2
flatten
linear out=10
SPEC
common=(--data "$DATA" --limit 600 --epochs 1 --batch-size 32 --threads 1 --test none --augment rotate=8)

# same_ensemble A B — the tensors equal byte for byte, the metadata too once
# every "train_seconds":S (a measured time, different in any two runs) is masked.
same_ensemble() {
    tensor_data "$1" | cmp -s - <(tensor_data "$2") || fail "$1 and $2: tensors differ"
    local h
    for f in "$1" "$2"; do
        h=$(od -An -tu8 -N8 "$f" | tr -d ' ')
        head -c $((h + 8)) "$f" | tail -c "$h" | sed -E 's/(train_seconds[\\"]*):[0-9.]+/\1:T/g' > "$f.meta"
    done
    cmp -s "$1.meta" "$2.meta" || fail "$1 and $2: metadata differ: $(diff <(tr ',' '\n' < "$1.meta") <(tr ',' '\n' < "$2.meta") | head)"
}

# 1. --ensemble 3 over 2 ranks: two rounds, rank 1 idle in the second
"$D" train --model "$TMP/tiny.spec" "${common[@]}" --ensemble 3 --out "$TMP/e1.st" --quiet >/dev/null
mpi 2 train --model "$TMP/tiny.spec" "${common[@]}" --ensemble 3 --out "$TMP/e2.st" > "$TMP/e2.out"
same_ensemble "$TMP/e1.st" "$TMP/e2.st"
grep -q "^member 2/3: tiny, seed 43, .* (rank 1)$" "$TMP/e2.out" || fail "no rank in the member lines: $(cat "$TMP/e2.out")"
[[ $(grep -c "^saved $TMP/e2.st" "$TMP/e2.out") -eq 1 ]] || fail "not one 'saved' line: $(cat "$TMP/e2.out")"
echo "ok: --ensemble 3 on 2 ranks = one process"

# 2. --kfold 3 over 3 ranks (one round), --vote logits
"$D" train --model "$TMP/tiny.spec" "${common[@]}" --kfold 3 --vote logits --out "$TMP/k1.st" --quiet >/dev/null
mpi 3 train --model "$TMP/tiny.spec" "${common[@]}" --kfold 3 --vote logits --out "$TMP/k3.st" > "$TMP/k3.out"
same_ensemble "$TMP/k1.st" "$TMP/k3.st"
grep -q "out-of-fold acc" "$TMP/k3.out" || fail "no out-of-fold accuracy: $(cat "$TMP/k3.out")"
echo "ok: --kfold 3 on 3 ranks = one process"

# 3. more ranks than members, a batch a group cannot split (540 training
#    images in batches of 539: the last has 1 image for 2 ranks): one rank
#    per member, rank 2 idle
mpi 3 train --model "$TMP/tiny.spec" "${common[@]}" --batch-size 539 --ensemble 2 --out "$TMP/i3.st" > "$TMP/i3.out"
grep -q "^member 2/2: .* (rank 1)$" "$TMP/i3.out" || fail "member 2 not on rank 1 alone: $(cat "$TMP/i3.out")"
"$D" train --model "$TMP/tiny.spec" "${common[@]}" --batch-size 539 --ensemble 2 --out "$TMP/i1.st" --quiet >/dev/null
same_ensemble "$TMP/i1.st" "$TMP/i3.st"
echo "ok: 3 ranks, 2 members, no groups possible: rank 2 idle, = one process"

# 4. 3 ranks, --ensemble-models lenet5,tiny: member 1 by rank 0 alone,
#    member 2 (batch norm: synchronised) by ranks 1-2 data-parallel = the
#    member one process trains with 2 threads
g=(--data "$DATA" --limit 640 --epochs 1 --batch-size 32 --test none --ensemble-models "lenet5,$TMP/tiny.spec")
mpi 3 train "${g[@]}" --threads 1 --out "$TMP/g3.st" > "$TMP/g3.out"
grep -q "^member 2/2: tiny, .* (ranks 1-2)$" "$TMP/g3.out" || fail "no group of ranks: $(cat "$TMP/g3.out")"
"$D" train "${g[@]}" --threads 1 --out "$TMP/g1.st" --quiet >/dev/null
"$D" train "${g[@]}" --threads 2 --out "$TMP/g2.st" --quiet >/dev/null
for k in 0 1; do "$D" ensemble --pick $k --out "$TMP/g3-$k.st" "$TMP/g3.st" >/dev/null; done
"$D" ensemble --pick 0 --out "$TMP/g1-0.st" "$TMP/g1.st" >/dev/null
"$D" ensemble --pick 1 --out "$TMP/g2-1.st" "$TMP/g2.st" >/dev/null
same_ensemble "$TMP/g1-0.st" "$TMP/g3-0.st"
same_ensemble "$TMP/g2-1.st" "$TMP/g3-1.st"
echo "ok: a group of 2 ranks trains a member as one process with 2 threads"

# 5. eval and submit: the images shared by the ranks (1100 in batches of 500:
#    the last rank's range is a partial batch), TTA on
ev=(--model "$TMP/e1.st" --data "$DATA" --split test --limit 1100 --batch-size 500 --threads 1 --tta 2)
"$D" eval "${ev[@]}" --json > "$TMP/ev1.json"
mpi 3 eval "${ev[@]}" --json > "$TMP/ev3.json"
cmp -s "$TMP/ev1.json" "$TMP/ev3.json" || fail "eval --json differs over 3 ranks"
mpi 2 eval "${ev[@]}" > "$TMP/ev2.txt"
"$D" eval "${ev[@]}" > "$TMP/ev1.txt"
cmp -s "$TMP/ev1.txt" "$TMP/ev2.txt" || fail "eval report differs over 2 ranks"
"$D" convert --in "$DATA" --split test --drop-labels --out "$TMP/test.csv" >/dev/null
head -1001 "$TMP/test.csv" > "$TMP/t1000.csv"
sub=(--model "$TMP/k1.st" --test "$TMP/t1000.csv" --batch-size 128 --threads 1)
"$D" submit "${sub[@]}" --out "$TMP/s1.csv" >/dev/null
mpi 2 submit "${sub[@]}" --out "$TMP/s2.csv" > "$TMP/s2.out"
cmp -s "$TMP/s1.csv" "$TMP/s2.csv" || fail "submission.csv differs over 2 ranks"
[[ $(grep -c "^wrote" "$TMP/s2.out") -eq 1 ]] || fail "not one 'wrote' line: $(cat "$TMP/s2.out")"
echo "ok: eval --json, eval and submit on 2-3 ranks = one process"

# 6. a single-process run killed in member 2, resumed over 2 ranks
"$D" train --model "$TMP/tiny.spec" "${common[@]}" --limit 3000 --epochs 2 --ensemble 3 --out "$TMP/r.st" \
    --checkpoint-dir "$TMP/ck" --quiet >/dev/null &
pid=$!
wait_for "$TMP/ck/member-02/latest"
kill -KILL $pid
wait $pid 2>/dev/null || true
"$D" train --model "$TMP/tiny.spec" "${common[@]}" --limit 3000 --epochs 2 --ensemble 3 --out "$TMP/rref.st" \
    --quiet >/dev/null
mpi 2 train --resume "$TMP/ck" > "$TMP/r.out" || fail "resume over 2 ranks failed: $(cat "$TMP/r.out")"
grep -q "^member 2/3: .*resuming from its checkpoint (rank 0)" "$TMP/r.out" || fail "member 2 not resumed: $(cat "$TMP/r.out")"
same_ensemble "$TMP/rref.st" "$TMP/r.st"
ls -d "$TMP/ck"/member-* 2>/dev/null && fail "finished members left their checkpoint folders"
echo "ok: SIGKILL + --resume over 2 ranks = uninterrupted"

# 7. a 2-rank run whose rank 1 is SIGKILLed in member 2 (its first round):
#    the job ends; --resume over 2 ranks continues both members from their
#    own checkpoints and ends as the uninterrupted run
rc=0
mpi 2 train --model "$TMP/tiny.spec" "${common[@]}" --limit 3000 --epochs 2 --ensemble 3 --out "$TMP/q.st" \
    --checkpoint-dir "$TMP/cq" > "$TMP/q.out" 2> "$TMP/q.err" &
job=$!
# rank 1's pid found before its checkpoint appears: a member's last epoch
# takes ~0.1 s here, too short for a process search after the checkpoint
rank1=
for ((i = 0; i < 3000; i++)); do
    for p in $(pgrep -f "$TMP/q.st"); do
        tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | output_has -x 'OMPI_COMM_WORLD_RANK=1' && rank1=$p
    done
    [[ -n $rank1 ]] && break
    sleep 0.02
done
[[ -n "$rank1" ]] || fail "rank 1 not found"
wait_for "$TMP/cq/member-02/latest"
killed=
kill -KILL "$rank1" && killed=$rank1
[[ -n "$killed" ]] || fail "rank 1 ended before the kill"
wait $job || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || fail "the job should fail, not hang or succeed, when rank 1 is killed (rc $rc)"
mpi 2 train --resume "$TMP/cq" > "$TMP/q2.out" 2>&1 || fail "resume after the kill failed: $(cat "$TMP/q2.out")"
grep -q "^member 2/3: .*resuming from its checkpoint (rank 1)" "$TMP/q2.out" || fail "member 2 not resumed: $(cat "$TMP/q2.out")"
same_ensemble "$TMP/rref.st" "$TMP/q.st"
echo "ok: rank 1 SIGKILLed + --resume over 2 ranks = uninterrupted"
echo "all MPI ensemble checks passed"
