#!/usr/bin/env bash
# resume_ensemble.sh — `digits train --ensemble N / --kfold K` with
# --checkpoint-dir, stopped in the middle of a member and continued with
# --resume: the members the ensemble file holds are kept, the member in
# progress continues from its checkpoint, and the ensemble ends with the
# same weights, byte for byte, as the run never stopped. Also: the stop
# message and exit status, flags that conflict with the run (exit 2), and
# an ensemble file that is not the run's (exit 1, one line).
source "$(dirname "$0")/lib.bash"
require_data
D="$DIGITS"
cat > "$TMP/net.spec" <<'SPEC'
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
ens=(--model "$TMP/net.spec" --data "$DATA" --limit 4000 --epochs 3 --batch-size 32 --test none
     --threads 2 --augment rotate=10 --ensemble 3 --quiet)

# 1. --ensemble 3, SIGKILL once member 2 has a checkpoint, then --resume
"$D" train "${ens[@]}" --out "$TMP/ref.safetensors" >/dev/null
tensor_data "$TMP/ref.safetensors" > "$TMP/ref.bin"
"$D" train "${ens[@]}" --out "$TMP/k.safetensors" --checkpoint-dir "$TMP/ck1" >/dev/null &
pid=$!
wait_for "$TMP/ck1/member-02/latest"
kill -KILL $pid
wait $pid 2>/dev/null || true
[[ -f "$TMP/ck1/ensemble.json" ]] || fail "no ensemble.json in the checkpoint folder"
"$D" train --resume "$TMP/ck1" >"$TMP/r1.out" || fail "resume failed"
grep -q "^member 1/3: kept from $TMP/k.safetensors" "$TMP/r1.out" || fail "member 1 not kept: $(cat "$TMP/r1.out")"
grep -q "^member 2/3: .*resuming from its checkpoint" "$TMP/r1.out" || fail "member 2 not resumed: $(cat "$TMP/r1.out")"
tensor_data "$TMP/k.safetensors" | cmp -s - "$TMP/ref.bin" || fail "SIGKILL + resume: members differ from the uninterrupted run"
ls -d "$TMP/ck1"/member-* 2>/dev/null && fail "finished members left their checkpoint folders"
echo "ok: --ensemble 3, SIGKILL in member 2 + resume = uninterrupted, byte for byte"

# 2. SIGKILL as soon as member 1 is saved (member 2 may have no checkpoint yet)
"$D" train "${ens[@]}" --out "$TMP/k2.safetensors" --checkpoint-dir "$TMP/ck2" >/dev/null &
pid=$!
wait_for "$TMP/k2.safetensors"
kill -KILL $pid
wait $pid 2>/dev/null || true
"$D" train --resume "$TMP/ck2" --quiet >/dev/null || fail "resume after member 1 failed"
tensor_data "$TMP/k2.safetensors" | cmp -s - "$TMP/ref.bin" || fail "SIGKILL after member 1 + resume: members differ"
echo "ok: SIGKILL after member 1 + resume = uninterrupted"

# 3. --kfold 3 --vote logits, SIGINT in member 2 or 3: 130 and the resume hint
kf=(--model "$TMP/net.spec" --data "$DATA" --limit 9000 --epochs 3 --batch-size 32 --test none
    --threads 2 --kfold 3 --vote logits --quiet)
"$D" train "${kf[@]}" --out "$TMP/kref.safetensors" >/dev/null
"$D" train "${kf[@]}" --out "$TMP/kf.safetensors" --checkpoint-dir "$TMP/ck3" >"$TMP/i.out" 2>"$TMP/i.err" &
pid=$!
wait_for "$TMP/ck3/member-02/latest"
kill -INT $pid
rc=0
wait $pid || rc=$?
[[ $rc -eq 130 ]] || fail "SIGINT: exit status $rc, expected 130; $(cat "$TMP/i.err")"
# (a SIGINT in a member's last step stops the run before the next member)
grep -E "^digits: interrupted (in|before) member [23] of 3 \($TMP/kf.safetensors holds the [12] before it\); resume with: digits train --resume $TMP/ck3\$" \
    "$TMP/i.err" || fail "SIGINT: no resume hint: $(cat "$TMP/i.err")"
if grep -q "interrupted in" "$TMP/i.err"; then
    grep -q "^checkpoint $TMP/ck3/member-0[23]/ckpt-" "$TMP/i.out" || fail "SIGINT: checkpoint path not printed"
fi

# 4. flags on --resume: the run's own values are fine, others are refused
expect_error 2 "--vote probs conflicts with the checkpoint in $TMP/ck3 (--vote logits)" -- \
    "$D" train --resume "$TMP/ck3" --vote probs
expect_error 2 "--kfold 4 conflicts with the checkpoint in $TMP/ck3 (--kfold 3)" -- "$D" train --resume "$TMP/ck3" --kfold 4
expect_error 2 "--ensemble 5 conflicts with the checkpoint in $TMP/ck3 (--ensemble 3)" -- \
    "$D" train --resume "$TMP/ck3" --ensemble 5
# 5. an ensemble file that is not this run's is refused, not overwritten
cp "$TMP/kf.safetensors" "$TMP/kf.keep"
cp "$TMP/ref.safetensors" "$TMP/kf.safetensors"
expect_error 1 "$TMP/kf.safetensors: not the ensemble this run was writing" -- "$D" train --resume "$TMP/ck3"
cmp -s "$TMP/ref.safetensors" "$TMP/kf.safetensors" || fail "the foreign ensemble file was changed"
mv "$TMP/kf.keep" "$TMP/kf.safetensors"

"$D" train --resume "$TMP/ck3" --kfold 3 --vote logits --quiet >/dev/null || fail "kfold resume failed"
tensor_data "$TMP/kf.safetensors" | cmp -s - <(tensor_data "$TMP/kref.safetensors") \
    || fail "SIGINT + resume (kfold): members differ from the uninterrupted run"
echo "ok: --kfold 3, SIGINT + resume = uninterrupted, byte for byte"

# 6. one folder, one kind of run: a single model cannot checkpoint into an ensemble's folder
expect_error 1 "$TMP/ck3: holds an ensemble run's checkpoints; give this model its own --checkpoint-dir" -- \
    "$D" train --model "$TMP/net.spec" --data "$DATA" --limit 500 --epochs 1 --test none --checkpoint-dir "$TMP/ck3"
echo "{" > "$TMP/ck3/ensemble.json"
expect_error 1 "$TMP/ck3/ensemble.json: not an ensemble run's settings" -- "$D" train --resume "$TMP/ck3"
echo "all ensemble resume checks passed"
