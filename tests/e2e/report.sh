#!/usr/bin/env bash
# report.sh — `digits report` on a small freshly trained model: every
# picture decodes (libpng), has its size and is not blank, an SVG sits beside
# each, index.html links only files that exist and nothing on the network,
# metrics.json carries the eval contract; without a training log the page
# says so; eval's --top-k / --misclassified; the SVM baseline end to end
# (train, eval, report, a truncated file).
source "$(dirname "$0")/lib.bash"
require_data
CHECK="$PWD/$BUILD/tests/check_png"
# sanitizer builds: fontconfig (under cairo's text) keeps its caches until exit
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
[[ -x "$CHECK" ]] || fail "$CHECK missing (make test builds it)"

"$DIGITS" train --model cnn --data "$DATA" --limit 2000 --epochs 2 --batch-size 32 --lr 0.002 --test none \
    --seed 3 --quiet --out "$TMP/m.safetensors" --log "$TMP/m.log.csv"
R="$TMP/rep"
"$DIGITS" report --model "$TMP/m.safetensors" --out "$R" --data "$DATA" --limit 1000 --tsne 300 --svg --quiet

# --- every picture: decodes, size, not blank; an SVG beside it
nmis=$(grep -o '"n_misclassified":[0-9]*' "$R/metrics.json" | cut -d: -f2)
[[ -n "$nmis" ]] || fail "metrics.json lacks n_misclassified"
n=$(( nmis < 40 ? nmis : 40 )); c=$(( n < 10 ? (n < 6 ? 6 : n) : 10 )); rows=$(( n > 0 ? (n + 9) / 10 : 1 ))
expect=(
    "learning_curves 1100 470" "confusion 720 640" "confusion_normalized 720 640" "per_class 900 440"
    "samples 1020 600" "misclassified $((20 + c * 100)) $((50 + rows * 108 + 10))" "misclassified_pair any any"
    "labels_train 720 440" "labels_test 720 440" "pca_variance 820 480" "pca_scatter 840 680"
    "tsne_pixels 840 680" "tsne_untrained 840 680" "tsne_trained 840 680"
    "activations_layer0 700 any" "activations_layer3 766 any"   # cnn: conv layers 0 and 3 (6 and 16 channels)
)
for e in "${expect[@]}"; do
    set -- $e
    "$CHECK" "$R/$1.png" "$2" "$3" || fail "$1.png"
    [[ -s "$R/$1.svg" ]] || fail "$1.svg missing"
done
[[ $(ls "$R"/*.png | wc -l) -eq ${#expect[@]} ]] || fail "unexpected pictures: $(ls "$R")"

# --- the page: local links only, and they all exist
H="$R/index.html"
grep -q "<h2 id=\"tsne\">" "$H" || fail "index.html incomplete"
grep -qiE '(src|href)="([a-z]+:)?//' "$H" && fail "index.html refers to the network"
links=$(grep -oE '(src|href)="[^"#][^"]*"' "$H" | sed -E 's/^(src|href)="//; s/"$//' | sort -u)
[[ -n "$links" ]] || fail "no links in index.html"
for l in $links; do [[ -f "$R/$l" ]] || fail "index.html links $l, which does not exist"; done
echo "index.html: $(echo "$links" | wc -l) local links, all present"
grep -q "learning_curves.png" "$H" || fail "the log recorded in the model was not found"
for key in '"accuracy"' '"confusion":[[' '"per_class":[' '"top_k":{"1"' '"misclassified":['; do
    grep -qF "$key" "$R/metrics.json" || fail "metrics.json lacks $key"
done

# --- no training log anywhere: a note instead of the curves
mv "$TMP/m.log.csv" "$TMP/elsewhere.csv"
"$DIGITS" report --model "$TMP/m.safetensors" --out "$TMP/rep2" --data "$DATA" --limit 200 --tsne 0 --quiet \
    --pair 9,4 --digit 5
grep -q "No training log found" "$TMP/rep2/index.html" || fail "missing-log note"
[[ ! -e "$TMP/rep2/learning_curves.png" ]] || fail "curves drawn without a log"
"$DIGITS" report --model "$TMP/m.safetensors" --out "$TMP/rep3" --data "$DATA" --limit 200 --tsne 0 --quiet \
    --log "$TMP/elsewhere.csv"
"$CHECK" "$TMP/rep3/learning_curves.png" 1100 470 || fail "--log"
expect_error 2 "--pair: '9,9'" -- "$DIGITS" report --model "$TMP/m.safetensors" --out "$TMP/x" --pair 9,9
expect_error 1 "nope.csv: No such file" -- "$DIGITS" report --model "$TMP/m.safetensors" --out "$TMP/x" \
    --data "$DATA" --limit 100 --tsne 0 --log "$TMP/nope.csv"

# --- eval: top-k and the misclassified list
out=$("$DIGITS" eval --model "$TMP/m.safetensors" --data "$DATA" --limit 500 --top-k 3 --misclassified 4)
grep -q "top-3 " <<<"$out" || fail "eval: no top-3 accuracy"
grep -q "the 4 most confident" <<<"$out" || fail "eval: no misclassified list"
[[ $(echo "$out" | sed -n '/most confident/,$p' | wc -l) -eq 6 ]] || fail "eval: --misclassified 4 lines"
"$DIGITS" eval --model "$TMP/m.safetensors" --data "$DATA" --limit 500 --json --misclassified 2 > "$TMP/e.json"
[[ $(grep -o '"index":' "$TMP/e.json" | wc -l) -eq 2 ]] || fail "eval --json --misclassified 2"

# --- the SVM baseline: train small, eval, report (no network parts), hostile file
"$DIGITS" train --model svm --data "$DATA" --limit 1500 --components 40 --test none --quiet \
    --out "$TMP/svm.safetensors"
acc=$("$DIGITS" eval --model "$TMP/svm.safetensors" --data "$DATA" --limit 500 --json | grep -o '"accuracy":[0-9.]*' | cut -d: -f2)
echo "svm on 1500 images: accuracy $acc on 500 test images"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.85) }' || fail "svm accuracy $acc < 0.85"
"$DIGITS" report --model "$TMP/svm.safetensors" --out "$TMP/rs" --data "$DATA" --limit 300 --tsne 100 --quiet
grep -q "no network layers" "$TMP/rs/index.html" || fail "svm report: no note on network-only parts"
"$CHECK" "$TMP/rs/tsne_pixels.png" 840 680 || fail "svm report t-SNE"
head -c 2000 "$TMP/svm.safetensors" > "$TMP/svm-cut.safetensors"
expect_error 1 "svm-cut.safetensors" -- "$DIGITS" eval --model "$TMP/svm-cut.safetensors" --data "$DATA" --limit 10
