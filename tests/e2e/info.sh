#!/usr/bin/env bash
# info.sh — `digits info MODEL` (text and --json), `digits info --list` /
# `digits models`, `digits --version`, converting a network or an ensemble
# to BF16/F16 with `digits ensemble --dtype` (half the size, the same
# predictions within rounding, the metadata kept), and `digits info` of
# training checkpoints (a run's folder, one of its files, an ensemble run's
# folder): where the run stands and the command that resumes it.
source "$(dirname "$0")/lib.bash"
require_data
D="$DIGITS"
"$D" train --model cnn --data "$DATA" --limit 2000 --epochs 1 --seed 1 --quiet --out "$TMP/a.safetensors" >/dev/null
"$D" train --model lenet5 --data "$DATA" --limit 2000 --epochs 1 --seed 2 --quiet --out "$TMP/b.safetensors" >/dev/null

# version, defined once
v=$("$D" --version)
[[ "$v" =~ ^digits\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "--version: $v"
[[ "$("$D" version)" == "$v" ]] || fail "'digits version' differs from --version"

# info of one network: layer table, parameters, dtype, training, metrics, version
"$D" info "$TMP/a.safetensors" >"$TMP/info.txt"
for want in "model     cnn (cnn)" "dtype     F32" "Total params:" "linear" "training  model=cnn" \
    "metrics   " "test_accuracy=" "digits    ${v#digits }"; do
    grep -qF -- "$want" "$TMP/info.txt" || fail "info lacks '$want': $(cat "$TMP/info.txt")"
done
"$D" info --json "$TMP/a.safetensors" >"$TMP/info.json"
for key in file bytes kind name digits_version dtype params buffers macs input norm_mean norm_std summary \
    train_config data_hash metrics; do
    grep -q "^	\"$key\":" "$TMP/info.json" || fail "info --json lacks key $key: $(cat "$TMP/info.json")"
done

# conversion: BF16 and F16 files are about half the size and predict the same
"$D" ensemble --dtype bf16 --out "$TMP/a16.safetensors" "$TMP/a.safetensors" | output_has "BF16 tensors" || fail "convert bf16"
"$D" ensemble --dtype f16 --out "$TMP/ah.safetensors" "$TMP/a.safetensors" >/dev/null
s32=$(stat -c %s "$TMP/a.safetensors") s16=$(stat -c %s "$TMP/a16.safetensors")
((s16 * 10 < s32 * 6)) || fail "bf16 file is $s16 bytes, f32 $s32"
"$D" info "$TMP/a16.safetensors" | output_has "^dtype     BF16" || fail "info: dtype of the bf16 file"
"$D" info "$TMP/a16.safetensors" | output_has "test_accuracy=" || fail "conversion dropped the metrics"
acc() { "$D" eval --model "$1" --data "$DATA" --limit 2000 --json | sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p'; }
a32=$(acc "$TMP/a.safetensors") a16=$(acc "$TMP/a16.safetensors") ah=$(acc "$TMP/ah.safetensors")
echo "accuracy on 2000 test images: f32 $a32, bf16 $a16, f16 $ah"
awk -v a="$a32" -v b="$a16" -v c="$ah" 'BEGIN { d = a - b; e = a - c; exit !(d < 0.003 && d > -0.003 && e < 0.001 && e > -0.001) }' ||
    fail "16-bit accuracy differs: f32 $a32, bf16 $a16, f16 $ah"

# an ensemble: members, vote, dtype; converting it keeps its vote
"$D" ensemble --vote logits --out "$TMP/ens.safetensors" "$TMP/a.safetensors" "$TMP/b.safetensors" >/dev/null
"$D" ensemble --dtype bf16 --out "$TMP/ens16.safetensors" "$TMP/ens.safetensors" | output_has "vote logits, BF16" ||
    fail "ensemble conversion"
"$D" info "$TMP/ens16.safetensors" >"$TMP/ens.txt"
grep -q "^members   2, vote logits" "$TMP/ens.txt" || fail "info: members: $(cat "$TMP/ens.txt")"
grep -q "^  1   lenet5 " "$TMP/ens.txt" || fail "info: member 1: $(cat "$TMP/ens.txt")"
"$D" info --json "$TMP/ens16.safetensors" | output_has '"vote":	"logits"' || fail "info --json: vote"
# --test measures the written file and records its accuracy (shown by info and models)
"$D" ensemble --dtype bf16 --test "$DATA" --out "$TMP/ens16.safetensors" "$TMP/ens.safetensors" >"$TMP/rec.txt"
rec=$(sed -n 's/^test accuracy \([0-9.]*\) .* on 10000 images .*/\1/p' "$TMP/rec.txt")
[[ -n "$rec" ]] || fail "ensemble --test: $(cat "$TMP/rec.txt")"
"$D" info "$TMP/ens16.safetensors" | output_has "test_accuracy=$rec" || fail "info: recorded accuracy $rec"

# the zoo and the pretrained models, found through $DIGITS_MODELS from any folder
mkdir -p "$TMP/models/pretrained"
cp "$TMP/a16.safetensors" "$TMP/models/pretrained/default.safetensors"
cp "$TMP/ens16.safetensors" "$TMP/models/pretrained/best.safetensors"
(cd / && DIGITS_MODELS="$TMP/models" "$D" models) >"$TMP/models.txt"
grep -qE "^  cnn-bn +872426 +19.09 M" "$TMP/models.txt" || fail "models: zoo: $(cat "$TMP/models.txt")"
grep -qE "^  default +cnn +BF16 .* [0-9.]+ %$" "$TMP/models.txt" || fail "models: pretrained: $(cat "$TMP/models.txt")"
pct=$(awk -v a="$rec" 'BEGIN { printf "%.2f %%", 100 * a }')
grep -qE "^  best +ensemble of 2 \(cnn, lenet5\) +BF16 .* $pct$" "$TMP/models.txt" ||
    fail "models: best ($pct): $(cat "$TMP/models.txt")"
(cd / && DIGITS_MODELS="$TMP/models" "$D" info --list --json) | output_has '"test_accuracy":' || fail "info --list --json"
(cd / && DIGITS_MODELS="$TMP/models" "$D" info default) | output_has "^dtype     BF16" || fail "info default"
echo "info, models and dtype conversion work"

# checkpoints: a run stopped by SIGTERM once its first epoch is saved
stop_when() { # FILE CMD...: run CMD in the background; SIGTERM it once FILE exists
    local file=$1; shift
    "$@" >"$TMP/stopped.log" 2>&1 &
    local pid=$! i=0
    while [[ ! -e $file ]] && ((i++ < 600)); do sleep 0.1; done
    kill -TERM "$pid"
    wait "$pid" && fail "the run ended before it was stopped: $(cat "$TMP/stopped.log")"
    [[ -e $file ]] || fail "no $file after 60 s: $(cat "$TMP/stopped.log")"
}
ck=$TMP/ck
stop_when "$ck/latest" "$D" train --model cnn-bn --data "$DATA" --limit 700 --epochs 5 --threads 1 --test none \
    --checkpoint-dir "$ck" --out "$TMP/ck.safetensors"
"$D" info "$ck" >"$TMP/ck.txt"
grep -qE "^progress  (after epoch [0-9]+|in epoch [0-9]+) of 5.*, step [1-9][0-9]*; best epoch [1-9]" "$TMP/ck.txt" ||
    fail "info of a checkpoint folder: progress: $(cat "$TMP/ck.txt")"
grep -qF "resume    digits train --resume $ck" "$TMP/ck.txt" || fail "info: the resume command: $(cat "$TMP/ck.txt")"
grep -q "^Total params: 872426" "$TMP/ck.txt" || fail "info of a checkpoint: the network: $(cat "$TMP/ck.txt")"
newest=$ck/$(cat "$ck/latest")
"$D" info --json "$newest" >"$TMP/ck.json"
for want in '"epochs":	5' '"finished":	false' "\"resume\":	\"digits train --resume $ck\""; do
    grep -qF -- "$want" "$TMP/ck.json" || fail "info --json of a checkpoint file lacks $want: $(cat "$TMP/ck.json")"
done
grep -qE '"step":	[1-9]' "$TMP/ck.json" || fail "info --json of a checkpoint file: step: $(cat "$TMP/ck.json")"
! "$D" info --json "$TMP/a.safetensors" | output_has '"checkpoint"' || fail "a model file has a checkpoint key"
! "$D" info "$TMP/a.safetensors" | output_has '^progress' || fail "a model file has a progress line"
# ... that ends: finished, nothing to resume
"$D" train --resume "$ck" >"$TMP/resumed.log" 2>&1 || fail "the stopped run did not resume: $(cat "$TMP/resumed.log")"
"$D" info "$ck" >"$TMP/ck.txt"
grep -q "^progress  finished (5 epochs)" "$TMP/ck.txt" || fail "info of a finished run: $(cat "$TMP/ck.txt")"
! grep -q "^resume" "$TMP/ck.txt" || fail "info offers to resume a finished run"
# an ensemble run's folder: each member with a checkpoint
ek=$TMP/ek
stop_when "$ek/member-01/latest" "$D" train --model cnn-bn --data "$DATA" --limit 700 --epochs 5 --threads 1 \
    --test none --ensemble 3 --checkpoint-dir "$ek" --out "$TMP/ek.safetensors"
"$D" info "$ek" >"$TMP/ek.txt"
grep -qF "folder    $ek: an ensemble run into $TMP/ek.safetensors" "$TMP/ek.txt" || fail "info ensemble: $(cat "$TMP/ek.txt")"
grep -q "^member 1$" "$TMP/ek.txt" && grep -qE "^progress  .* of 5" "$TMP/ek.txt" ||
    fail "info ensemble: member 1: $(cat "$TMP/ek.txt")"
"$D" info --json "$ek" >"$TMP/ek.json"
grep -qF '"member":	1,' "$TMP/ek.json" && grep -qF '"epochs":	5,' "$TMP/ek.json" ||
    fail "info --json of an ensemble run's folder: $(cat "$TMP/ek.json")"
# a folder that holds no checkpoint: a one-line error
mkdir -p "$TMP/empty"
expect_error 1 "no checkpoint to resume from" -- "$D" info "$TMP/empty"
echo "info of checkpoints: $(grep '^progress' "$TMP/ck.txt")"
