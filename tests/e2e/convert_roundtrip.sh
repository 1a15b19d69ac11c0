#!/usr/bin/env bash
# convert_roundtrip.sh — IDX -> Kaggle CSV -> IDX is byte-exact; the Kaggle
# train.csv path trains and evaluates end to end; test.csv (no labels) is
# refused by eval with a clear message.
source "$(dirname "$0")/lib.bash"
require_data
"$DIGITS" convert --in "$DATA" --split test --out "$TMP/test_labelled.csv"
"$DIGITS" convert --in "$TMP/test_labelled.csv" --split test --out "$TMP/idx"
cmp "$DATA/t10k-images-idx3-ubyte" "$TMP/idx/t10k-images-idx3-ubyte" || fail "images differ after round trip"
cmp "$DATA/t10k-labels-idx1-ubyte" "$TMP/idx/t10k-labels-idx1-ubyte" || fail "labels differ after round trip"
head -1 "$TMP/test_labelled.csv" | output_has '^label,pixel0,pixel1,' || fail "train.csv header"
# Kaggle layout: train.csv with labels, test.csv without
"$DIGITS" convert --in "$DATA" --split train --limit 3000 --out "$TMP/train.csv" >/dev/null
"$DIGITS" convert --in "$DATA" --split test --limit 500 --drop-labels --out "$TMP/test.csv" >/dev/null
head -1 "$TMP/test.csv" | output_has '^pixel0,pixel1,' || fail "test.csv header"
[[ $(wc -l < "$TMP/test.csv") -eq 501 ]] || fail "test.csv rows"
"$DIGITS" train --model lenet5 --data "$TMP/train.csv" --epochs 1 --test none --quiet --out "$TMP/m.safetensors" >/dev/null
"$DIGITS" eval --model "$TMP/m.safetensors" --data "$TMP/test_labelled.csv" --limit 500 --json | output_has '"accuracy"'
expect_error 1 "has no labels" -- "$DIGITS" eval --model "$TMP/m.safetensors" --data "$TMP/test.csv"
