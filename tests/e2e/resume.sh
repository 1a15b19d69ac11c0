#!/usr/bin/env bash
# resume.sh — `digits train --checkpoint-dir` / `--resume` from the command
# line: a run SIGKILLed after its first epoch and resumed, and one stopped
# mid-epoch with SIGINT and resumed, end with the same weights, byte for
# byte, as the run never stopped (network with dropout and batch norm,
# Adam, onecycle, early stopping; 2 threads). Also: the stop message and
# exit status (130 SIGINT, 143 SIGTERM), flags that conflict with the
# checkpoint (exit 2), the folder lock, an unwritable output path, and
# writes that fail (file size limit, as on a full disk) leaving the previous
# files intact.
source "$(dirname "$0")/lib.bash"
require_data
D="$DIGITS"
cat > "$TMP/small.spec" <<'SPEC'
input 1x28x28
conv2d out=8 kernel=5 stride=2
batchnorm
relu
dropout2d p=0.2
flatten
linear out=32
relu
dropout p=0.3
linear out=10
SPEC
common=(--model "$TMP/small.spec" --data "$DATA" --limit 2000 --epochs 3 --batch-size 32 --lr 0.005
        --schedule onecycle --patience 3 --test none --threads 2 --quiet)

# the reference: never interrupted
"$D" train "${common[@]}" --out "$TMP/ref.safetensors" --log "$TMP/ref.csv" >/dev/null
tensor_data "$TMP/ref.safetensors" > "$TMP/ref.bin"

# 1. SIGKILL once the first epoch's checkpoint exists, then resume
"$D" train "${common[@]}" --out "$TMP/k.safetensors" --checkpoint-dir "$TMP/ck1" >/dev/null &
pid=$!
wait_for "$TMP/ck1/latest"
kill -KILL $pid
wait $pid 2>/dev/null || true
echo "killed after $(cat "$TMP/ck1/latest")"
"$D" train --resume "$TMP/ck1" --quiet >/dev/null
tensor_data "$TMP/k.safetensors" | cmp -s - "$TMP/ref.bin" || fail "SIGKILL + resume: weights differ from the uninterrupted run"
echo "ok: SIGKILL after epoch 1 + resume = uninterrupted, byte for byte"

# 2. SIGINT in the middle of epoch 2: stop after the step, checkpoint, message, 130.
# A larger net and more images than `common`, so an epoch lasts long enough
# (about a second) for the signal to land inside it; its own reference run.
cat > "$TMP/big.spec" <<'SPEC'
input 1x28x28
conv2d out=16 kernel=5 pad=2
batchnorm
relu
dropout2d p=0.2
maxpool size=2
flatten
linear out=32
relu
dropout p=0.3
linear out=10
SPEC
big=(--model "$TMP/big.spec" --data "$DATA" --limit 12000 --epochs 3 --batch-size 32 --lr 0.005
     --schedule onecycle --patience 3 --test none --threads 2 --quiet)
"$D" train "${big[@]}" --out "$TMP/ref2.safetensors" --log "$TMP/ref2.csv" >/dev/null
tensor_data "$TMP/ref2.safetensors" > "$TMP/ref2.bin"
"$D" train "${big[@]}" --out "$TMP/i.safetensors" --log "$TMP/i.csv" --checkpoint-dir "$TMP/ck2" >"$TMP/i.out" 2>"$TMP/i.err" &
pid=$!
wait_for "$TMP/ck2/latest"
sleep 0.1
kill -INT $pid
rc=0
wait $pid || rc=$?
[[ $rc -eq 130 ]] || fail "SIGINT: exit status $rc, expected 130; $(cat "$TMP/i.err")"
grep -E "^digits: interrupted at epoch [0-9]+ step [0-9]+; resume with: digits train --resume $TMP/ck2\$" "$TMP/i.err" \
    || fail "SIGINT: no resume hint: $(cat "$TMP/i.err")"
grep -q "^checkpoint $TMP/ck2/ckpt-" "$TMP/i.out" || fail "SIGINT: checkpoint path not printed"
echo "stopped: $(grep interrupted "$TMP/i.err")"
"$D" train --resume "$TMP/ck2" --quiet >/dev/null
tensor_data "$TMP/i.safetensors" | cmp -s - "$TMP/ref2.bin" || fail "SIGINT + resume: weights differ from the uninterrupted run"
diff <(cut -d, -f1-6 "$TMP/ref2.csv") <(cut -d, -f1-6 "$TMP/i.csv") || fail "SIGINT + resume: the log differs"
echo "ok: SIGINT mid-epoch + resume = uninterrupted, byte for byte (log too)"

# 3. SIGTERM: 143; without --checkpoint-dir the best model is kept and the message says so
"$D" train "${common[@]}" --epochs 5000 --patience 0 --out "$TMP/t.safetensors" >/dev/null 2>"$TMP/t.err" &
pid=$!
wait_for "$TMP/t.safetensors"
kill -TERM $pid
rc=0
wait $pid || rc=$?
[[ $rc -eq 143 ]] || fail "SIGTERM: exit status $rc, expected 143"
grep -q "^digits: interrupted at epoch .*the best model so far is in $TMP/t.safetensors (without --checkpoint-dir" "$TMP/t.err" \
    || fail "SIGTERM: message: $(cat "$TMP/t.err")"
"$D" eval --model "$TMP/t.safetensors" --data "$DATA" --limit 100 >/dev/null || fail "SIGTERM: model not loadable"
echo "ok: SIGTERM -> 143, best model kept"

# 4. flags on --resume: the same value is fine, another is refused (exit 2)
"$D" train --resume "$TMP/ck2" --epochs 3 --lr 0.005 --threads 2 --quiet >/dev/null || fail "agreeing flags refused"
expect_error 2 "--lr 0.01 conflicts with the checkpoint in $TMP/ck2 (--lr 0.005)" -- "$D" train --resume "$TMP/ck2" --lr 0.01
expect_error 2 "--epochs 5 conflicts with the checkpoint" -- "$D" train --resume "$TMP/ck2" --epochs 5
expect_error 2 "--data /elsewhere conflicts with the checkpoint" -- "$D" train --resume "$TMP/ck2" --data /elsewhere
expect_error 2 "--threads 1 conflicts with the checkpoint" -- "$D" train --resume "$TMP/ck2" --threads 1
expect_error 2 "--ema 0.999 conflicts with the checkpoint in $TMP/ck2 (--ema 0)" -- "$D" train --resume "$TMP/ck2" --ema 0.999
expect_error 2 "--ema: 1 is out of range" -- "$D" train --ema 1
expect_error 1 "$TMP/nothing: cannot open" -- "$D" train --resume "$TMP/nothing"
mkdir "$TMP/empty"
expect_error 1 "$TMP/empty: no checkpoint to resume from" -- "$D" train --resume "$TMP/empty"

# 5. one run per checkpoint folder
# (the holder must outlive the check whatever the speed: no early stopping,
# more epochs than it can finish; it is killed below)
"$D" train "${common[@]}" --epochs 5000 --patience 0 --out "$TMP/l.safetensors" --checkpoint-dir "$TMP/ck3" >/dev/null 2>&1 &
pid=$!
wait_for "$TMP/ck3/lock"
sleep 0.2
expect_error 1 "$TMP/ck3: another digits train is using this checkpoint folder" -- "$D" train "${common[@]}" --checkpoint-dir "$TMP/ck3"
kill -KILL $pid
wait $pid 2>/dev/null || true

# 6. unwritable output: refused before training starts
touch "$TMP/afile"
expect_error 1 "$TMP/afile/m.safetensors: cannot write: Not a directory" -- "$D" train "${common[@]}" --out "$TMP/afile/m.safetensors"

# 7. writes that fail (RLIMIT_FSIZE, SIGXFSZ ignored: EFBIG as on a full disk)
cp "$TMP/ref.safetensors" "$TMP/full.safetensors"
expect_error 1 "$TMP/full.safetensors: write failed: File too large; previous file left intact" -- \
    bash -c "ulimit -f 64; trap '' XFSZ; exec \"\$@\"" _ "$D" train "${common[@]}" --out "$TMP/full.safetensors" --overwrite
cmp -s "$TMP/ref.safetensors" "$TMP/full.safetensors" || fail "the previous model was damaged by a failed write"
# a checkpoint (4x the model) that does not fit, after the model that does
expect_error 1 "write failed: File too large; previous file left intact" -- \
    bash -c "ulimit -f 400; trap '' XFSZ; exec \"\$@\"" _ "$D" train "${common[@]}" --out "$TMP/f2.safetensors" --checkpoint-dir "$TMP/ck4"
grep -q "ck4/ckpt-e001-s00000057.safetensors: write failed" "$TMP/err" || fail "checkpoint write failure not named: $(cat "$TMP/err")"
# (only these runs' files: the SIGKILLed run of case 1 may have left its
# own k.safetensors.tmp.PID, which nothing can clean up after SIGKILL)
ls "$TMP" "$TMP/ck4" | grep -E '^(full|f2)\.safetensors\.tmp\.|^ckpt-.*\.tmp\.|^latest\.tmp\.' \
    && fail "temporary files left behind"
echo "all resume checks passed"
