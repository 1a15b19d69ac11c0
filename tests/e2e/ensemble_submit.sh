#!/usr/bin/env bash
# ensemble_submit.sh — the zoo's CLI flow end to end on small data:
# a heterogeneous ensemble trained with augmentation saves ONE model file
# that eval / predict / submit use like a single network (with and without
# TTA); submit writes ImageId,Label with 1-based ids in input order;
# --kfold trains one member per fold; augment --preview writes a PNG.
source "$(dirname "$0")/lib.bash"
require_data
"$DIGITS" train --ensemble-models cnn,lenet5 --data "$DATA" --limit 3000 --epochs 1 --batch-size 16 --lr 0.002 \
    --augment seed000 --vote logits --test none --seed 3 --quiet --out "$TMP/ens.safetensors" > "$TMP/train.txt"
cat "$TMP/train.txt"
grep -q "ensemble val acc" "$TMP/train.txt" || fail "no ensemble validation accuracy"
"$DIGITS" eval --model "$TMP/ens.safetensors" --data "$DATA" --limit 500 --json > "$TMP/eval.json"
grep -q '"model":"ensemble of 2 (cnn, lenet5)"' "$TMP/eval.json" || fail "eval does not name the ensemble: $(cat "$TMP/eval.json")"
acc=$(grep -o '"accuracy":[0-9.]*' "$TMP/eval.json" | head -1 | cut -d: -f2)
echo "ensemble accuracy on 500 test images: $acc"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.85) }' || fail "ensemble accuracy $acc < 0.85"
"$DIGITS" eval --model "$TMP/ens.safetensors" --data "$DATA" --limit 500 --tta 3 --json | output_has '"accuracy"' || fail "eval --tta"

# submit: Kaggle test.csv without labels
"$DIGITS" convert --in "$DATA" --split test --limit 200 --drop-labels --out "$TMP/test.csv" > /dev/null
"$DIGITS" submit --model "$TMP/ens.safetensors" --test "$TMP/test.csv" --out "$TMP/submission.csv"
[[ $(head -1 "$TMP/submission.csv") == "ImageId,Label" ]] || fail "submission header"
[[ $(wc -l < "$TMP/submission.csv") -eq 201 ]] || fail "submission has $(wc -l < "$TMP/submission.csv") lines, expected 201"
awk -F, 'NR > 1 && ($1 != NR - 1 || $2 !~ /^[0-9]$/) { bad = 1 } END { exit bad }' "$TMP/submission.csv" || fail "submission rows are not i,digit"
ls "$TMP" | output_has 'tmp' && fail "temporary file left behind"
# the same predictions as eval: compare with the labelled set
"$DIGITS" submit --model "$TMP/ens.safetensors" --test "$DATA" --out "$TMP/sub_idx.csv" | output_has "accuracy" || fail "submit on a labelled folder reports accuracy"
head -201 "$TMP/sub_idx.csv" | cmp -s - "$TMP/submission.csv" || fail "CSV and IDX inputs gave different predictions"
# predict with the ensemble
{ printf 'P5\n28 28\n255\n'; head -c 800 "$DATA/t10k-images-idx3-ubyte" | tail -c 784; } > "$TMP/first.pgm"
"$DIGITS" predict --model "$TMP/ens.safetensors" --tta 2 "$TMP/first.pgm" | output_has ": 7 (p=" || fail "predict --tta on the first test image (a 7)"

# K-fold: one member per fold, saved as one file
"$DIGITS" train --model mlp --kfold 3 --data "$DATA" --limit 1500 --epochs 1 --test none --quiet \
    --out "$TMP/kfold.safetensors" > "$TMP/kfold.txt"
grep -q "out-of-fold acc" "$TMP/kfold.txt" || fail "no out-of-fold accuracy"
"$DIGITS" eval --model "$TMP/kfold.safetensors" --data "$DATA" --limit 200 --json | output_has '"model":"ensemble of 3 mlp"' || fail "kfold file"
expect_error 2 "does not combine" -- "$DIGITS" train --kfold 3 --ensemble-models cnn,mlp

# augmentation preview
"$DIGITS" augment --preview "$TMP/aug.png" --augment seed003 --data "$DATA" --n 4 --digits 3 > /dev/null
head -c 8 "$TMP/aug.png" | od -An -c | grep -q 'P   N   G' || fail "preview is not a PNG"
expect_error 2 "unknown key 'rotation'" -- "$DIGITS" train --augment rotation=10

# digits ensemble: merge separately trained files (an ensemble's members are
# taken one by one), take one member out again, refuse what cannot vote
"$DIGITS" ensemble --out "$TMP/merged.safetensors" "$TMP/ens.safetensors" "$TMP/kfold.safetensors" > "$TMP/merge.txt"
grep -q "ensemble of 5 members, vote logits" "$TMP/merge.txt" || fail "merge: $(cat "$TMP/merge.txt")"
"$DIGITS" eval --model "$TMP/merged.safetensors" --data "$DATA" --limit 200 --json | output_has '"model":"ensemble of 5 (cnn, lenet5, mlp, mlp, mlp)"' || fail "merged file"
[[ $("$DIGITS" ensemble --list "$TMP/merged.safetensors" --pick 1,4 | grep -c kept) -eq 2 ]] || fail "ensemble --list --pick"
"$DIGITS" ensemble --out "$TMP/member1.safetensors" --pick 1 "$TMP/merged.safetensors" | output_has "lenet5 (one network)" || fail "pick one member"
# the member taken out predicts exactly as the same network trained alone would: compare with its logits inside the ensemble
"$DIGITS" eval --model "$TMP/member1.safetensors" --data "$DATA" --limit 200 --json | output_has '"model":"lenet5"' || fail "member file is not a lenet5"
"$DIGITS" ensemble --out "$TMP/m2.safetensors" --pick 1 "$TMP/ens.safetensors" > /dev/null
cmp -s "$TMP/member1.safetensors" "$TMP/m2.safetensors" || fail "the same member taken from two files differs"
expect_error 2 "is not a member index" -- "$DIGITS" ensemble --out "$TMP/x.safetensors" --pick 7 "$TMP/ens.safetensors"
expect_error 2 "is listed twice" -- "$DIGITS" ensemble --out "$TMP/x.safetensors" --pick 0,0 "$TMP/ens.safetensors"
expect_error 2 "give at least one model file" -- "$DIGITS" ensemble --out "$TMP/x.safetensors"
expect_error 1 "not a model file" -- "$DIGITS" ensemble --out "$TMP/x.safetensors" "$TMP/submission.csv"
[[ -e $TMP/x.safetensors ]] && fail "a failed merge left a file"
echo "ensemble merge/pick ok"
