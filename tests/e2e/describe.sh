#!/usr/bin/env bash
# describe.sh — look at the data before any model: `digits describe` on the
# MNIST IDX folder (both splits), a Kaggle train.csv and test.csv made from
# it (text and --json, the documented keys, the known MNIST counts), the
# readers' one-line errors on bad files; `digits report --eda` on the
# folder (with a validation split and the test split) and on an unlabelled
# test.csv: every picture decodes, has its size and is not blank, the page
# links only files that exist; usage errors.
source "$(dirname "$0")/lib.bash"
require_data
CHECK="$PWD/$BUILD/tests/check_png"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
[[ -x "$CHECK" ]] || fail "$CHECK missing (make test builds it)"

# --- the IDX folder: MNIST's published counts
out=$("$DIGITS" describe --data "$DATA")
echo "$out" | head -3
grep -q "60000 images of 28x28 pixels, labelled" <<<"$out" || fail "describe: header"
grep -qE '^ +1 +6742 +11\.24%' <<<"$out" || fail "describe: count of 1s"
grep -q "balance: balanced — largest/smallest class 1.24" <<<"$out" || fail "describe: balance verdict"
grep -q "67 of 784 pixel positions are 0 in every image" <<<"$out" || fail "describe: always-zero pixels"
js=$("$DIGITS" describe --data "$DATA" --split test --json)
for key in '"n":10000' '"labelled":true' '"counts":[980,1135,1032,1010,982,892,958,1028,974,1009]' \
    '"balance":"balanced"' '"zero_frame":{' '"always_zero_by_edge_distance":[' '"duplicates":{"count":0' \
    '"inverted":{"count":0' '"empty":{"count":0' '"class_mean_intensity":[' '"zero_share":'; do
    grep -qF "$key" <<<"$js" || fail "describe --json lacks $key: $js"
done
"$DIGITS" describe --help | output_has "always_zero_by_edge_distance" || fail "--help does not document the JSON keys"

# --- Kaggle CSVs: train.csv (labelled) with a duplicate row, test.csv (unlabelled)
"$DIGITS" convert --in "$DATA" --out "$TMP/train.csv" --limit 500 >/dev/null
"$DIGITS" convert --in "$DATA" --out "$TMP/test.csv" --split test --limit 300 --drop-labels >/dev/null
sed -n 2p "$TMP/train.csv" >> "$TMP/train.csv"  # image 0 again, as image 500
js=$("$DIGITS" describe --data "$TMP/train.csv" --json)
for key in '"format":"csv"' '"n":501' '"labelled":true' '"duplicates":{"count":1,"label_conflicts":0,"examples":[[0,500]]'; do
    grep -qF "$key" <<<"$js" || fail "describe train.csv lacks $key: $js"
done
js=$("$DIGITS" describe --data "$TMP/test.csv" --json)
for key in '"n":300' '"labelled":false' '"balance":"unlabelled"'; do
    grep -qF "$key" <<<"$js" || fail "describe test.csv lacks $key: $js"
done
grep -qF '"labels":' <<<"$js" && fail "describe test.csv: label counts without labels"
"$DIGITS" describe --data "$TMP/test.csv" | output_has "unlabelled" || fail "describe test.csv: text"

# --- bad files: the readers' one-line errors; usage errors
head -c 3000 "$TMP/train.csv" > "$TMP/cut.csv"
expect_error 1 "cut.csv:" -- "$DIGITS" describe --data "$TMP/cut.csv"
{ head -n 4 "$TMP/train.csv"; echo "7,0,0,0"; } > "$TMP/short.csv"
expect_error 1 "short.csv:5: expected 785 columns" -- "$DIGITS" describe --data "$TMP/short.csv"
expect_error 1 "nope.csv: cannot open" -- "$DIGITS" describe --data "$TMP/nope.csv"
mkdir -p "$TMP/empty"
expect_error 1 "no MNIST images" -- "$DIGITS" describe --data "$TMP/empty"
expect_error 2 "--split: 'dev'" -- "$DIGITS" describe --split dev
expect_error 2 "unexpected argument" -- "$DIGITS" describe train.csv

# --- report --eda on the folder: every picture, the split table, local links
R="$TMP/eda"
"$DIGITS" report --eda --data "$DATA" --limit 3000 --val-split 0.2 --tsne 300 --svg --quiet --out "$R"
expect=(
    "samples 1020 600" "labels 720 440" "labels_train 720 440" "labels_val 720 440" "labels_test 720 440"
    "pixel_hist 820 440" "mean_digits 1020 168" "zero_pixels 900 460" "pca_variance 820 480"
    "pca_scatter 840 680" "tsne_pixels 840 680"
)
for e in "${expect[@]}"; do
    set -- $e
    "$CHECK" "$R/$1.png" "$2" "$3" || fail "$1.png"
    [[ -s "$R/$1.svg" ]] || fail "$1.svg missing"
done
[[ $(ls "$R"/*.png | wc -l) -eq ${#expect[@]} ]] || fail "unexpected pictures: $(ls "$R")"
H="$R/index.html"
for s in overview samples labels pixels pca tsne; do grep -q "<h2 id=\"$s\">" "$H" || fail "index.html lacks $s"; done
grep -q "<th>validation</th>\|Validation part" "$H" || fail "index.html: no validation split"
grep -qiE '(src|href)="([a-z]+:)?//' "$H" && fail "index.html refers to the network"
links=$(grep -oE '(src|href)="[^"#][^"]*"' "$H" | sed -E 's/^(src|href)="//; s/"$//' | sort -u)
for l in $links; do [[ -f "$R/$l" ]] || fail "index.html links $l, which does not exist"; done
echo "eda index.html: $(echo "$links" | wc -l) local links, all present"

# --- report --eda on an unlabelled test.csv: no label pictures, a note instead
"$DIGITS" report --eda --data "$TMP/test.csv" --tsne 100 --quiet --out "$TMP/eda2"
grep -q "no label distribution" "$TMP/eda2/index.html" || fail "unlabelled: no note"
[[ ! -e "$TMP/eda2/labels.png" && ! -e "$TMP/eda2/mean_digits.png" ]] || fail "unlabelled: label pictures drawn"
for p in samples pixel_hist zero_pixels pca_scatter tsne_pixels; do "$CHECK" "$TMP/eda2/$p.png" any any || fail "$p"; done

expect_error 2 "--eda draws the data alone" -- "$DIGITS" report --eda --model x.safetensors --out "$TMP/x"
expect_error 2 "go with --eda" -- "$DIGITS" report --model x.safetensors --out "$TMP/x" --val-split 0.1
expect_error 1 "--val-split needs a labelled set" -- "$DIGITS" report --eda --data "$TMP/test.csv" --val-split 0.1 \
    --out "$TMP/x"
expect_error 1 "cut.csv:" -- "$DIGITS" report --eda --data "$TMP/cut.csv" --out "$TMP/x"
