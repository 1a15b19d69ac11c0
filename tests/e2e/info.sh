#!/usr/bin/env bash
# info.sh — `digits info MODEL` (text and --json), `digits info --list` /
# `digits models`, `digits --version`, and converting a network or an
# ensemble to BF16/F16 with `digits ensemble --dtype` (half the size, the
# same predictions within rounding, the metadata kept).
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
