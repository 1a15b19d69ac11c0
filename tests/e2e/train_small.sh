#!/usr/bin/env bash
# train_small.sh — train `cnn` for one epoch on a 5 000-image subset and
# reach >= 90 % on 1 000 test images; eval --json carries the contract keys;
# the saved model predicts identically when loaded twice.
source "$(dirname "$0")/lib.sh"
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
