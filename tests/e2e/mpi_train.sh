#!/usr/bin/env bash
# mpi_train.sh — `mpirun -np N digits train` (the MPI build, make MPI=1):
# the process layer's own test under 3 ranks (fixed-order sum, broadcast,
# gathers); then the model a distributed run saves holds, byte for byte,
# the tensors of the one-process run with the same global batch and the
# same total thread count: lenet5 (conv + linear) on 2 ranks x 1 thread vs
# 2 threads (also with label smoothing, and with Lookahead); a net with
# dropout, dropout2d and augmentation on 2 ranks x 2 threads vs 4 threads,
# and on 3 ranks x 1 thread vs 3 threads (uneven shards); a net with batch norm (synchronised: the same statistics,
# running statistics and gradients), 2 x 1 vs 2. Only rank 0 writes the
# model and the log. Refused: a batch smaller than the rank count; the
# default build (no MPI) started as several ranks. See mpi_faults.sh for
# kills, --resume and mismatched ranks; mpi_netns.sh for two hosts.
source "$(dirname "$0")/lib.bash"
require_data
source "$(dirname "$0")/mpi.bash"

"${MPIRUN[@]}" -np 3 "$MPI_BUILD/tests/test_dist" > "$TMP/dist.out" 2>&1 || { cat "$TMP/dist.out"; fail "test_dist under 3 ranks"; }
[[ $(grep -c '^\[  PASSED  \] 5 test' "$TMP/dist.out") -eq 3 ]] || { cat "$TMP/dist.out"; fail "test_dist: not every rank passed"; }
echo "ok: dist layer under 3 ranks"

# 1. lenet5: 2 ranks x 1 thread = 1 process x 2 threads
common=(--model lenet5 --data "$DATA" --limit 600 --epochs 2 --batch-size 64 --lr 0.01 --test none --quiet)
"$DIGITS" train "${common[@]}" --threads 2 --out "$TMP/ref.safetensors" --log "$TMP/ref.csv" >/dev/null
"${MPIRUN[@]}" -np 2 "$DIGITS_MPI" train "${common[@]}" --threads 1 --out "$TMP/mpi.safetensors" --log "$TMP/mpi.csv" \
    > "$TMP/mpi.out" 2> "$TMP/mpi.err" || { cat "$TMP/mpi.err"; fail "mpirun -np 2 train failed"; }
same_weights "$TMP/ref.safetensors" "$TMP/mpi.safetensors" || fail "lenet5: 2 ranks x 1 thread differ from 2 threads"
# label smoothing changes each rank's rows of the loss gradient: still the one-process bits
"$DIGITS" train "${common[@]}" --label-smoothing 0.1 --threads 2 --out "$TMP/ls-ref.safetensors" >/dev/null
"${MPIRUN[@]}" -np 2 "$DIGITS_MPI" train "${common[@]}" --label-smoothing 0.1 --threads 1 \
    --out "$TMP/ls-mpi.safetensors" > "$TMP/ls.out" 2>&1 || { cat "$TMP/ls.out"; fail "mpirun -np 2 train --label-smoothing failed"; }
same_weights "$TMP/ls-ref.safetensors" "$TMP/ls-mpi.safetensors" || fail "label smoothing: 2 ranks differ from 2 threads"
! same_weights "$TMP/ref.safetensors" "$TMP/ls-ref.safetensors" || fail "--label-smoothing 0.1 changed nothing"
# Lookahead's slow weights: every rank syncs after the same steps
"$DIGITS" train "${common[@]}" --lookahead 3 --threads 2 --out "$TMP/la-ref.safetensors" >/dev/null
"${MPIRUN[@]}" -np 2 "$DIGITS_MPI" train "${common[@]}" --lookahead 3 --threads 1 \
    --out "$TMP/la-mpi.safetensors" > "$TMP/la.out" 2>&1 || { cat "$TMP/la.out"; fail "mpirun -np 2 train --lookahead failed"; }
same_weights "$TMP/la-ref.safetensors" "$TMP/la-mpi.safetensors" || fail "lookahead: 2 ranks differ from 2 threads"
! same_weights "$TMP/ref.safetensors" "$TMP/la-ref.safetensors" || fail "--lookahead 3 changed nothing"
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

# 3. batch norm (SyncBN: 2d and 1d, fused with the ReLU after and before it
# in a one-process run), 2 ranks x 1 thread = 2 threads
cat > "$TMP/bn.spec" <<'SPEC'
input 1x28x28
conv2d out=8 kernel=5 stride=2
batchnorm
relu
dropout2d p=0.2
conv2d out=16 kernel=3 pad=1
relu
batchnorm
maxpool size=2
flatten
linear out=32
batchnorm
relu
linear out=10
SPEC
bn=(--model "$TMP/bn.spec" --data "$DATA" --limit 500 --epochs 2 --batch-size 50 --lr 0.01 --test none --quiet)
"$DIGITS" train "${bn[@]}" --threads 2 --out "$TMP/bn1.safetensors" >/dev/null
"${MPIRUN[@]}" -np 2 "$DIGITS_MPI" train "${bn[@]}" --threads 1 --out "$TMP/bn2.safetensors" > /dev/null 2> "$TMP/bn.err" ||
    { cat "$TMP/bn.err"; fail "mpirun with batch norm failed"; }
same_weights "$TMP/bn1.safetensors" "$TMP/bn2.safetensors" ||
    fail "batch norm: 2 ranks differ from 2 threads (weights or running statistics)"
echo "ok: batch norm synchronised, 2 ranks x 1 thread = 2 threads, running statistics included"

# 4. refused: a batch with fewer images than ranks
rc=0
"${MPIRUN[@]}" -np 3 "$DIGITS_MPI" train --model lenet5 --data "$DATA" --limit 100 --val-split 0.1 --epochs 1 \
    --batch-size 44 --test none --quiet --out "$TMP/small.safetensors" > /dev/null 2> "$TMP/small.err" || rc=$?
[[ $rc -ne 0 ]] && grep -q "3 ranks need at least one image each of every batch" "$TMP/small.err" ||
    fail "a last batch of 2 images on 3 ranks: rc $rc, $(cat "$TMP/small.err")"
echo "ok: a batch smaller than the rank count refused"

# 5. the build without MPI under mpirun: refused (each rank would train alone)
rc=0
"${MPIRUN[@]}" -np 2 "$DIGITS" train --model lenet5 --data "$DATA" --limit 100 --epochs 1 --test none --quiet \
    --out "$TMP/plain.safetensors" > /dev/null 2> "$TMP/plain.err" || rc=$?
[[ $rc -ne 0 ]] && grep -q "this digits was built without MPI" "$TMP/plain.err" ||
    fail "the plain build under mpirun: rc $rc, $(cat "$TMP/plain.err")"
[[ ! -e "$TMP/plain.safetensors" ]] || fail "the plain build under mpirun wrote a model"
echo "ok: the build without MPI refuses to run as several ranks"
