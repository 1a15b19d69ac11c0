#!/usr/bin/env bash
# onnx_int8.sh — `digits export --format onnx` of int8 models (digits
# quantize) checked against digits' own int8 path in ONNX Runtime (npm
# onnxruntime-node 1.30.0, CPU; tools/fetch_onnxruntime.sh installs it into
# tests/onnx/node_modules): lenet5 (tables, average pools), cnn-bn and
# kaggle-deep trained briefly, resnet5 (adds) and twobranch (concat) with
# random weights, each quantized and exported twice: the default graph
# (QLinearConv, which requantizes in float, rounding half to even) and
# --exact (ConvInteger with digits' fixed-point requantization). On the first
# N MNIST test images (tests/onnx/ort_int8_compare.js against `digits eval
# --int8-logits`): the default graph's logits within STEPS quantization steps
# of digits' and at most DIFFER predictions differing; --exact bit-identical.
# Also: the one-line errors for a float island, an int8 ensemble and --exact
# out of place.
# Without node or ONNX Runtime this test fails (it does not skip): CI runs it.
source "$(dirname "$0")/lib.bash"
require_data
N=500
STEPS=2  # measured: at most 1 (a few logits in a thousand)
DIFFER=1 # predictions that may differ in N (measured: none)
[[ $BUILD == *san* ]] && N=200
require_ort
IMAGES="$DATA/t10k-images-idx3-ubyte"

# quantize NAME FLOAT: NAME-int8.safetensors, both exports and digits' int8 logits
fast=() exact=()
quantize() {
    local name=$1 float=$2
    "$DIGITS" quantize --model "$float" --data "$DATA" --calib 200 --out "$TMP/$name-int8.safetensors" >/dev/null ||
        fail "quantize $name failed"
    "$DIGITS" export --format onnx --model "$TMP/$name-int8.safetensors" --out "$TMP/$name.onnx" >/dev/null ||
        fail "export of $name failed"
    "$DIGITS" export --format onnx --exact --model "$TMP/$name-int8.safetensors" --out "$TMP/$name-exact.onnx" \
        >/dev/null || fail "export --exact of $name failed"
    "$DIGITS" eval --model "$TMP/$name-int8.safetensors" --limit "$N" --int8-logits "$TMP/$name.txt" >/dev/null ||
        fail "digits' int8 logits of $name failed"
    fast+=("$TMP/$name.onnx" "$TMP/$name.txt")
    exact+=("$TMP/$name-exact.onnx" "$TMP/$name.txt")
}

for m in lenet5 cnn-bn kaggle-deep; do
    "$DIGITS" train --model "$m" --data "$DATA" --limit 2000 --max-steps 150 --batch-size 64 --val-split 0 \
        --test none --threads 2 --quiet --out "$TMP/$m.safetensors" >/dev/null 2>&1 || fail "training $m failed"
    quantize "$m" "$TMP/$m.safetensors"
done
for m in resnet5 twobranch stn; do
    "$REF" init "models/$m.spec" 7 "$TMP/$m.safetensors" || fail "init $m failed"
    [[ $m == stn ]] || quantize "$m" "$TMP/$m.safetensors"
done
node tests/onnx/ort_int8_compare.js "$N" "$STEPS" "$DIFFER" "$IMAGES" "${fast[@]}" 2>/dev/null ||
    fail "ONNX Runtime's int8 path disagrees with digits beyond $STEPS steps / $DIFFER predictions"
node tests/onnx/ort_int8_compare.js "$N" 0 0 "$IMAGES" "${exact[@]}" 2>/dev/null ||
    fail "the --exact graphs are not bit-identical to digits' int8 path"

# errors: a float island, an int8 ensemble (1, one line); --exact out of place (2)
"$DIGITS" quantize --model "$TMP/stn.safetensors" --data "$DATA" --calib 100 --out "$TMP/stn-int8.safetensors" \
    >/dev/null || fail "quantize stn failed"
expect_error 1 "stn-int8.safetensors: op 8 is a float island" -- \
    "$DIGITS" export --format onnx --model "$TMP/stn-int8.safetensors" --out "$TMP/x.onnx"
"$DIGITS" ensemble --out "$TMP/ens.safetensors" "$TMP/lenet5.safetensors" "$TMP/cnn-bn.safetensors" >/dev/null ||
    fail "ensemble failed"
"$DIGITS" quantize --model "$TMP/ens.safetensors" --data "$DATA" --calib 100 --out "$TMP/ens-int8.safetensors" \
    >/dev/null || fail "quantize of the ensemble failed"
expect_error 1 "ens-int8.safetensors: an ensemble of 2 int8 networks; the int8 ONNX export takes one network" -- \
    "$DIGITS" export --format onnx --model "$TMP/ens-int8.safetensors" --out "$TMP/x.onnx"
expect_error 2 "--exact goes with an int8 model" -- \
    "$DIGITS" export --format onnx --exact --model "$TMP/lenet5.safetensors" --out "$TMP/x.onnx"
expect_error 2 "--exact goes with --format onnx" -- \
    "$DIGITS" export --format c --exact --model "$TMP/lenet5-int8.safetensors" --out "$TMP/c"
[[ ! -e "$TMP/x.onnx" ]] || fail "a refused export left a file"
echo "onnx_int8: all checks passed"
