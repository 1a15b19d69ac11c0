#!/usr/bin/env bash
# train_small.sh — train `cnn` for one epoch on a 5 000-image subset and
# reach >= 90 % on 1 000 test images; eval --json carries the contract keys;
# the saved model predicts identically when loaded twice.
source "$(dirname "$0")/lib.bash"
require_data
"$DIGITS" train --model cnn --data "$DATA" --limit 5000 --epochs 1 --batch-size 16 --lr 0.002 \
    --val-split 0 --test none --seed 1 --quiet --out "$TMP/cnn.safetensors"
"$DIGITS" eval --model "$TMP/cnn.safetensors" --data "$DATA" --limit 1000 --json > "$TMP/a.json"
"$DIGITS" eval --model "$TMP/cnn.safetensors" --data "$DATA" --limit 1000 --json --threads 1 > "$TMP/b.json"
acc=$(grep -o '"accuracy":[0-9.]*' "$TMP/a.json" | head -1 | cut -d: -f2)
echo "accuracy on 1000 test images after 1 epoch on 5000: $acc"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.90) }' || fail "accuracy $acc < 0.90"
for key in '"n":1000' '"confusion":[[' '"per_class":[' '"precision"' '"recall"' '"f1"' '"support"'; do
    grep -qF "$key" "$TMP/a.json" || fail "eval --json lacks $key"
done
cmp -s "$TMP/a.json" "$TMP/b.json" || fail "same model, same data, different results"
# human-readable report
"$DIGITS" eval --model "$TMP/cnn.safetensors" --data "$DATA" --limit 1000 > "$TMP/report.txt"
grep -q "macro avg" "$TMP/report.txt" && grep -q "confusion matrix" "$TMP/report.txt" || fail "report incomplete"
# predict: the first test image as a PGM (a 7), and inverted (dark on light)
{ printf 'P5\n28 28\n255\n'; head -c 800 "$DATA/t10k-images-idx3-ubyte" | tail -c 784; } > "$TMP/first.pgm"
{ printf 'P5\n28 28\n255\n'; head -c 800 "$DATA/t10k-images-idx3-ubyte" | tail -c 784 | LC_ALL=C tr '\000-\377' "$(printf '\\%03o' $(seq 255 -1 0))"; } > "$TMP/inverted.pgm"
label=$(head -c 9 "$DATA/t10k-labels-idx1-ubyte" | tail -c 1 | od -An -tu1 | tr -d ' ')
out=$("$DIGITS" predict --model "$TMP/cnn.safetensors" "$TMP/first.pgm" "$TMP/inverted.pgm")
echo "$out"
[[ $(echo "$out" | grep -c ": $label (p=") -eq 2 ]] || fail "predict did not say $label for both images"
"$DIGITS" predict --json --model "$TMP/cnn.safetensors" "$TMP/first.pgm" | output_has "\"digit\":$label" || fail "predict --json"
# --normalize none: pixels/255 only (Keras's rescale), stored in the model file
"$DIGITS" train --model cnn --data "$DATA" --limit 5000 --epochs 1 --batch-size 16 --lr 0.002 \
    --val-split 0 --test none --seed 1 --quiet --normalize none --out "$TMP/unit.safetensors"
head -c 4096 "$TMP/unit.safetensors" | grep -aq '"digits.norm_mean":"0","digits.norm_std":"1"' ||
    fail "--normalize none: the model file does not hold mean 0, std 1"
acc=$("$DIGITS" eval --model "$TMP/unit.safetensors" --data "$DATA" --limit 1000 --json | grep -o '"accuracy":[0-9.]*' | head -1 | cut -d: -f2)
echo "--normalize none: accuracy $acc"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.90) }' || fail "--normalize none: accuracy $acc < 0.90"
