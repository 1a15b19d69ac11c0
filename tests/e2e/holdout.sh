#!/usr/bin/env bash
# holdout.sh — held-out evaluation for a Kaggle-style train.csv: convert
# --skip cuts a hold-out file; eval warns when given the model's own training
# data (also across formats: the IDX folder the CSV came from); eval --split
# val re-creates exactly the run's validation images (its count, and the
# loss training reported on them) and refuses data it was not trained on or
# a run without a validation split; report titles say what the data is.
source "$(dirname "$0")/lib.bash"
require_data
D="$DIGITS"
WARN="these are the images the model was trained on; the accuracy is not a test figure"

# --- convert --skip: a hold-out file cut from train.csv
"$D" convert --in "$DATA" --limit 1500 --out "$TMP/train.csv" >/dev/null
"$D" convert --in "$TMP/train.csv" --skip 1200 --out "$TMP/hold.csv" | output_has "wrote 300 images" || fail "skip count"
cmp <(tail -n 300 "$TMP/train.csv") <(tail -n +2 "$TMP/hold.csv") || fail "--skip 1200 is not the last 300 rows"
"$D" convert --in "$TMP/train.csv" --skip 1000 --limit 50 --out "$TMP/mid.csv" >/dev/null
cmp <(sed -n 1002,1051p "$TMP/train.csv") <(tail -n +2 "$TMP/mid.csv") || fail "--skip 1000 --limit 50 is not rows 1001..1050"
expect_error 1 "--skip 1500 leaves no images (it has 1500)" -- "$D" convert --in "$TMP/train.csv" --skip 1500 --out "$TMP/none.csv"
[[ ! -e "$TMP/none.csv" ]] || fail "a refused convert wrote a file"

# --- a tiny model on the first 1200 images (90/10 split)
"$D" train --model cnn --data "$TMP/train.csv" --limit 1200 --epochs 1 --test none --out "$TMP/m.safetensors" \
    > "$TMP/train.out"
n_val=$(sed -n 's/.* train \/ \([0-9]*\) validation images.*/\1/p' "$TMP/train.out")
val_loss=$(sed -n 's/.*best epoch 1: val loss \([0-9.]*\) .*/\1/p' "$TMP/train.out")
[[ -n "$n_val" && "$n_val" -gt 0 && -n "$val_loss" ]] || fail "training output: $(cat "$TMP/train.out")"

# --- eval on the training file: a warning on stderr, the figures still printed
"$D" eval --model "$TMP/m.safetensors" --data "$TMP/train.csv" > "$TMP/out" 2> "$TMP/err" || fail "eval train.csv failed"
grep -qF "$WARN" "$TMP/err" || fail "no warning on the training data: $(cat "$TMP/err")"
grep -qF "(use --split val, or a held-out file)" "$TMP/err" || fail "warning lacks the way out"
grep -q "training data — not held out" "$TMP/out" || fail "eval output does not say it is training data"
# the IDX folder the CSV was made from holds the same images first
"$D" eval --model "$TMP/m.safetensors" --data "$DATA" --split train --limit 10 > /dev/null 2> "$TMP/err"
grep -qF "$WARN" "$TMP/err" || fail "no warning on the IDX training split"
grep -qF "[its first 1200 of 60000 images]" "$TMP/err" || fail "warning does not say how many: $(cat "$TMP/err")"
# the hold-out file and the test split: no warning
"$D" eval --model "$TMP/m.safetensors" --data "$TMP/hold.csv" > "$TMP/out" 2> "$TMP/err"
[[ ! -s "$TMP/err" ]] || fail "a warning on the hold-out file: $(cat "$TMP/err")"
grep -q "(test, test set): 300 images" "$TMP/out" || fail "hold-out eval: $(head -1 "$TMP/out")"
"$D" eval --model "$TMP/m.safetensors" --data "$DATA" --limit 10 > /dev/null 2> "$TMP/err"
[[ ! -s "$TMP/err" ]] || fail "a warning on the MNIST test split: $(cat "$TMP/err")"

# --- eval --split val: the run's own validation images, and their loss
"$D" eval --model "$TMP/m.safetensors" --data "$TMP/train.csv" --split val > "$TMP/out" 2> "$TMP/err"
[[ ! -s "$TMP/err" ]] || fail "--split val warned: $(cat "$TMP/err")"
grep -q "(val, validation split): $n_val images, loss $val_loss" "$TMP/out" ||
    fail "--split val: '$(head -1 "$TMP/out")', training said $n_val images, loss $val_loss"
# without --data: the training data the model records
"$D" eval --model "$TMP/m.safetensors" --split val --json > "$TMP/out"
grep -q "\"n\":$n_val," "$TMP/out" || fail "--split val --json: $(cat "$TMP/out")"
grep -q '"data_role":"validation split"' "$TMP/out" || fail "--json lacks data_role"
expect_error 1 "hold.csv: --split val: this is not the data the model was trained on" -- \
    "$D" eval --model "$TMP/m.safetensors" --data "$TMP/hold.csv" --split val
"$D" train --model cnn --data "$TMP/train.csv" --limit 300 --val-split 0 --max-steps 2 --test none --quiet \
    --out "$TMP/noval.safetensors" > /dev/null
expect_error 1 "trained with --val-split 0, so it has no validation images" -- \
    "$D" eval --model "$TMP/noval.safetensors" --data "$TMP/train.csv" --split val
expect_error 2 "--split: 'dev' is not train, test or val" -- "$D" eval --model "$TMP/m.safetensors" --split dev

# --- the report's section titles follow the data
"$D" report --model "$TMP/m.safetensors" --data "$TMP/train.csv" --split val --tsne 0 --quiet --out "$TMP/rv" > /dev/null
grep -q "Metrics on the validation split" "$TMP/rv/index.html" || fail "report --split val title"
grep -q "$n_val images from" "$TMP/rv/index.html" || fail "report --split val count"
"$D" report --model "$TMP/m.safetensors" --data "$TMP/train.csv" --tsne 0 --quiet --out "$TMP/rt" > /dev/null
grep -q "Metrics on the training data — not held out" "$TMP/rt/index.html" || fail "report on train.csv title"
"$D" report --model "$TMP/m.safetensors" --data "$TMP/hold.csv" --tsne 0 --quiet --out "$TMP/rh" > /dev/null
grep -q "Metrics on the test set" "$TMP/rh/index.html" || fail "report on hold.csv title"
echo "held-out evaluation checks passed"
