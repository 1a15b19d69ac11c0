#!/usr/bin/env bash
# photos.sh — accuracy on the synthetic photo set (tests/photos/, made by
# tools/make_photo_set.py from MNIST training digits: gradients, tinted
# paper, coloured ink, EXIF rotations, specks, shadow bars, several digits)
# with a trained model, per condition, against a floor.
#
#   DIGITS_MODEL=FILE   the model (default: models/pretrained/default.safetensors;
#                       skipped, with a note, when that file is not there)
#   PHOTO_FLOOR=N       the least number of photos read right (default below)
#   PHOTO_DIGITS=BIN    score another build of digits (e.g. an older one for a
#                       before/after table; without --multi the multi-digit
#                       photos are read as one digit); PHOTO_FLOOR=0 then
#
# Single-digit photos go through `predict --json`; multi-digit ones through
# `predict --multi --json` (right when the whole number is), and read without
# --multi they must carry a "warning".
source "$(dirname "$0")/lib.bash"
SET=tests/photos
MODEL=${DIGITS_MODEL:-default}
if [[ $MODEL == default ]]; then
    MODEL=models/pretrained/default.safetensors
    [[ -f $MODEL ]] || fail "$MODEL is not there (it is committed; DIGITS_MODEL=FILE scores another model)"
fi
BIN=${PHOTO_DIGITS:-$DIGITS}
# cnn-bn trained with augmentation (99.65 % on MNIST test) reads 181/181: see docs/PHOTOS.md.
FLOOR=${PHOTO_FLOOR:-175}
[[ -f $SET/labels.tsv ]] || fail "$SET/labels.tsv missing"
[[ -f $MODEL ]] || fail "no model file $MODEL (DIGITS_MODEL)"

multi=0
"$BIN" predict --help | output_has -- --multi && multi=1
# file -> label, condition
tail -n +2 "$SET/labels.tsv" > "$TMP/labels"
awk -F'\t' -v d="$SET" '$3 != "multi" {print d "/" $1}' "$TMP/labels" > "$TMP/single"
awk -F'\t' -v d="$SET" '$3 == "multi" {print d "/" $1}' "$TMP/labels" > "$TMP/multi"
# an image predict cannot read counts as wrong (its error stays in $TMP/err)
xargs "$BIN" predict --model "$MODEL" --json < "$TMP/single" > "$TMP/out" 2>"$TMP/err" || true
if (( multi )); then
    xargs "$BIN" predict --model "$MODEL" --json --multi < "$TMP/multi" >> "$TMP/out" 2>>"$TMP/err" || true
    # read as one digit, every multi-digit photo must say that it holds several
    xargs "$BIN" predict --model "$MODEL" --json < "$TMP/multi" > "$TMP/warn" 2>/dev/null || true
    warned=$(grep -c '"warning":"the image seems to hold' "$TMP/warn" || true)
    echo "multi-digit photos read as one digit with a warning: $warned/$(wc -l < "$TMP/multi")"
    [[ $warned -ge $(( $(wc -l < "$TMP/multi") * 9 / 10 )) ]] || fail "too few warnings: $warned"
    # text output: the digit on stdout, the note on stderr; --multi the number
    f=$(head -1 "$TMP/multi")
    "$BIN" predict --model "$MODEL" "$f" > "$TMP/one" 2> "$TMP/note" || fail "predict $f failed"
    grep -q "^$f: [0-9] (p=" "$TMP/one" || fail "predict $f: $(cat "$TMP/one")"
    grep -q "^digits predict: note: $f: the image seems to hold [0-9] digits; reading the largest" "$TMP/note" ||
        fail "no note: $(cat "$TMP/note")"
    "$BIN" predict --model "$MODEL" --multi "$f" > "$TMP/one" || fail "predict --multi $f failed"
    grep -qE "^$f: [0-9]{2,} \(p=" "$TMP/one" || fail "predict --multi $f: $(cat "$TMP/one")"
else
    xargs "$BIN" predict --model "$MODEL" --json < "$TMP/multi" >> "$TMP/out" 2>>"$TMP/err" || true
fi
# {"file":"tests/photos/NNN.jpg","digit":D,...} or {"file":...,"number":"17",...}
sed -E 's|^\{"file":"[^"]*/([^"/]*)",("digit":([0-9])\|"number":"([0-9]*)").*|\1\t\3\4|' "$TMP/out" > "$TMP/got"
awk -F'\t' 'NR == FNR {got[$1] = $2; next}
    {n[$3]++; total++; if (got[$1] == $2) {ok[$3]++; right++}}
    END {
        for (c in n) printf "  %-9s %3d/%-3d %5.1f %%\n", c, ok[c], n[c], 100 * ok[c] / n[c] | "sort"
        close("sort")
        printf "photo set: %d/%d correct\n", right, total
    }' "$TMP/got" "$TMP/labels" | tee "$TMP/score"
right=$(sed -n 's/^photo set: \([0-9]*\)\/.*/\1/p' "$TMP/score")
[[ $right -ge $FLOOR ]] || fail "photo set: $right correct, below the floor of $FLOOR (model $MODEL); $(head -3 "$TMP/err")"
