#!/usr/bin/env bash
# onnx_ort.sh — `digits export --format onnx` checked against ONNX Runtime
# (npm onnxruntime-node 1.30.0, CPU; tools/fetch_onnxruntime.sh installs it
# into tests/onnx/node_modules): every zoo network (lenet5 trained briefly,
# the others with random weights, random batch-norm statistics and a
# spatial transformer away from the identity), a 3-member ensemble voting
# on probabilities and one voting on logits, each on the first 1000 MNIST
# test images (200 under ASan). ONNX Runtime's probabilities must lie within TOL (1e-5) of
# digits' and every prediction must agree (tests/onnx/ort_compare.js prints
# the differences). Also: the one-line errors of `digits export`.
# Without node or ONNX Runtime this test fails (it does not skip): CI runs it.
source "$(dirname "$0")/lib.bash"
require_data
TOL=1e-5
N=1000
# the sanitizer pass checks memory, not numbers: fewer images (its digits runs ~20x slower)
[[ $BUILD == *san* ]] && N=200
require_ort

# check NAME MODEL: export, digits' outputs; ONNX Runtime runs them all at the end (compare_all)
pairs=()
check() {
    local name=$1 model=$2
    "$DIGITS" export --format onnx --model "$model" --out "$TMP/$name.onnx" >/dev/null ||
        fail "export of $name failed"
    mkdir -p "$TMP/$name"
    "$REF" predict "$model" "$DATA" "$N" "$TMP/$name" || fail "digits' predictions of $name failed"
    pairs+=("$TMP/$name.onnx" "$TMP/$name")
}
compare_all() {
    node tests/onnx/ort_compare.js "$N" "$TOL" "${pairs[@]}" || fail "ONNX Runtime disagrees with digits"
}

# one network trained briefly (its probabilities are far from uniform)
"$DIGITS" train --model lenet5 --data "$DATA" --limit 6000 --epochs 1 --batch-size 64 --lr 0.003 --threads 2 \
    --quiet --out "$TMP/trained.safetensors" >/dev/null 2>&1 || fail "training lenet5 failed"
check lenet5-trained "$TMP/trained.safetensors"

# every zoo network, random weights
for spec in models/*.spec; do
    name=$(basename "$spec" .spec)
    "$REF" init "$spec" 7 "$TMP/$name.safetensors" || fail "init $name failed"
    check "$name" "$TMP/$name.safetensors"
done

# 3-member ensembles, both votes
"$DIGITS" ensemble --out "$TMP/ens-probs.safetensors" --vote probs "$TMP/trained.safetensors" \
    "$TMP/cnn-bn.safetensors" "$TMP/resnet5.safetensors" >/dev/null || fail "ensemble failed"
check ens-probs "$TMP/ens-probs.safetensors"
"$DIGITS" ensemble --out "$TMP/ens-logits.safetensors" --vote logits "$TMP/trained.safetensors" \
    "$TMP/stn.safetensors" "$TMP/twobranch.safetensors" >/dev/null || fail "ensemble failed"
check ens-logits "$TMP/ens-logits.safetensors"
compare_all

# import: digits -> ONNX -> digits through the CLI, and --model FILE.onnx directly in submit,
# predict and eval: the same predictions as the original file
"$DIGITS" convert --in "$DATA" --split test --limit "$N" --drop-labels --out "$TMP/test.csv" >/dev/null
"$DIGITS" import "$TMP/lenet5-trained.onnx" --out "$TMP/back.safetensors" >/dev/null || fail "import failed"
for m in trained.safetensors back.safetensors lenet5-trained.onnx ens-probs.onnx ens-probs.safetensors; do
    "$DIGITS" submit --model "$TMP/$m" --test "$TMP/test.csv" --out "$TMP/sub-$m.csv" >/dev/null 2>&1 ||
        [[ $m == ens-probs.onnx ]] || fail "submit --model $m failed"
done
cmp -s "$TMP/sub-trained.safetensors.csv" "$TMP/sub-back.safetensors.csv" || fail "the imported model predicts otherwise"
cmp -s "$TMP/sub-trained.safetensors.csv" "$TMP/sub-lenet5-trained.onnx.csv" || fail "--model FILE.onnx predicts otherwise"
"$DIGITS" eval --model "$TMP/lenet5-trained.onnx" --limit 200 >/dev/null || fail "eval --model FILE.onnx failed"
"$DIGITS" predict --model "$TMP/lenet5-trained.onnx" tests/photos/003-clean.jpg >/dev/null ||
    fail "predict --model FILE.onnx failed"
# a PyTorch export (tests/ref/onnx, seed 003's Net trained on 0..255 pixels)
"$DIGITS" import tests/ref/onnx/s003-net.onnx --input-scale 255 --out "$TMP/s003.safetensors" >/dev/null ||
    fail "import of a torch.onnx.export file failed"
"$DIGITS" info "$TMP/s003.safetensors" >/dev/null || fail "info of an imported model failed"
expect_error 1 "an ensemble export cannot be imported as one network" -- "$DIGITS" import "$TMP/ens-probs.onnx" --out "$TMP/x.safetensors"
expect_error 2 "--out MODEL.safetensors is required" -- "$DIGITS" import "$TMP/lenet5-trained.onnx"
expect_error 2 "which ONNX file?" -- "$DIGITS" import --out "$TMP/x.safetensors"

# errors: usage (2) and runtime (1, one line)
expect_error 2 "--format: 'tflite' is not a known format (onnx, c)" -- "$DIGITS" export --format tflite --model "$TMP/trained.safetensors" --out "$TMP/x.onnx"
expect_error 2 "--out FILE.onnx is required" -- "$DIGITS" export --model "$TMP/trained.safetensors"
expect_error 1 "linear-4x4.safetensors: the input is 1x4x4; the ONNX export is for 1x28x28 images" -- "$DIGITS" export --model fuzz/corpus/model/linear-4x4.safetensors --out "$TMP/x.onnx"
expect_error 1 "$TMP/missing.safetensors" -- "$DIGITS" export --model "$TMP/missing.safetensors" --out "$TMP/x.onnx"
expect_error 1 "$TMP/no/such/dir/x.onnx" -- "$DIGITS" export --model "$TMP/trained.safetensors" --out "$TMP/no/such/dir/x.onnx"
echo "onnx_ort: all checks passed"
