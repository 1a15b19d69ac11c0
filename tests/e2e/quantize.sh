#!/usr/bin/env bash
# quantize.sh — `digits quantize`: a trained network and a two-member
# ensemble become int8 files that eval, predict, submit, info and the
# reference/plain-C/VNNI kernel choices all run (same predictions on every
# path; accuracy within half a point of float); eval --int8-logits; and
# every refusal is one line `digits CMD: FILE: problem` with exit 1 (runtime)
# or 2 (usage).
source "$(dirname "$0")/lib.bash"
require_data
D="$DIGITS"
F="tests/fixtures/lenet5-small.safetensors"
Q="$TMP/lenet-int8.safetensors"

"$D" quantize --model "$F" --data "$DATA" --calib 300 --out "$Q" | output_has "wrote $Q (lenet5, 1 network" ||
    fail "quantize output"
"$D" info "$Q" >"$TMP/info.txt"
for want in "model     lenet5 (int8)" "dtype     I8+I32" "int8 operators, none left in float" " conv " " table " \
    "avgpool" "0 conv2d" "test_accuracy="; do
    grep -qF -- "$want" "$TMP/info.txt" || fail "info lacks '$want': $(cat "$TMP/info.txt")"
done
"$D" info --json "$Q" | output_has '"kind":	"int8"' || fail "info --json kind"
# the float network's test figures are kept under another name; --test measures the int8 file itself
grep -q "float_test_accuracy=" "$TMP/info.txt" || fail "info lacks float_test_accuracy"
grep -qE "(^| )test_accuracy=" "$TMP/info.txt" && fail "an int8 file not measured claims a test_accuracy"
"$D" quantize --model "$F" --data "$DATA" --calib 300 --test "$DATA" --out "$TMP/measured.safetensors" >"$TMP/q.txt"
rec=$(sed -n 's/^int8 test accuracy \([0-9.]*\) .*/\1/p' "$TMP/q.txt")
ev=$("$D" eval --model "$TMP/measured.safetensors" --data "$DATA" --json | sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p')
[[ -n $rec && $rec == "$ev" ]] || fail "quantize --test recorded '$rec', eval measures '$ev'"
"$D" info "$TMP/measured.safetensors" | output_has -E "(^| )test_accuracy=$rec" || fail "info lacks test_accuracy=$rec"
expect_error 1 "digits quantize: $TMP/none: " -- "$D" quantize --model "$F" --data "$DATA" --calib 50 --test "$TMP/none" \
    --out "$TMP/t.safetensors"
[[ ! -e "$TMP/t.safetensors" ]] || fail "quantize --test on a missing set left a file"
sf=$(stat -c %s "$F") sq=$(stat -c %s "$Q")
((sq * 3 < sf)) || fail "int8 file is $sq bytes, float $sf"

# accuracy on 2000 test images, float vs int8; every kernel path agrees
acc() { "$D" eval --model "$1" --data "$DATA" --limit 2000 --json | sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p'; }
af=$(acc "$F") aq=$(acc "$Q")
echo "accuracy on 2000 test images: float $af, int8 $aq"
awk -v a="$af" -v b="$aq" 'BEGIN { d = a - b; exit !(d < 0.005 && d > -0.005) }' || fail "int8 accuracy $aq, float $af"
for k in ref c vnni auto; do
    DIGITS_INT8_KERNELS=$k "$D" eval --model "$Q" --data "$DATA" --limit 300 --int8-logits "$TMP/logits-$k.txt" >/dev/null
done
[[ $(wc -l <"$TMP/logits-ref.txt") -eq 301 ]] || fail "int8-logits: $(head -3 "$TMP/logits-ref.txt")"
head -1 "$TMP/logits-ref.txt" | output_has "^# index label predicted logit0..logit9 (int8; real = " || fail "logits header"
sed -n 2p "$TMP/logits-ref.txt" | output_has -E '^0 [0-9] [0-9]( -?[0-9]+){10}$' || fail "logits line: $(sed -n 2p "$TMP/logits-ref.txt")"
cmp -s "$TMP/logits-ref.txt" "$TMP/logits-c.txt" || fail "plain-C int8 logits differ from the reference"
cmp -s "$TMP/logits-ref.txt" "$TMP/logits-vnni.txt" || fail "VNNI int8 logits differ from the reference"
cmp -s "$TMP/logits-ref.txt" "$TMP/logits-auto.txt" || fail "AMX/auto int8 logits differ from the reference"

# predict and submit run int8 files
"$D" predict --model "$Q" tests/photos/000-clean.jpg | output_has -E "[0-9]" || fail "predict with int8"
"$D" convert --in "$DATA" --split test --limit 50 --drop-labels --out "$TMP/test.csv" >/dev/null
"$D" submit --model "$Q" --test "$TMP/test.csv" --out "$TMP/sub.csv" >/dev/null
[[ $(head -1 "$TMP/sub.csv") == "ImageId,Label" && $(wc -l <"$TMP/sub.csv") -eq 51 ]] || fail "submit with int8"

# an ensemble quantizes member by member
"$D" ensemble --out "$TMP/ens.safetensors" "$F" "$F" >/dev/null
"$D" quantize --model "$TMP/ens.safetensors" --data "$DATA" --calib 100 --out "$TMP/ens-int8.safetensors" |
    output_has "2 networks" || fail "ensemble quantize"
"$D" info "$TMP/ens-int8.safetensors" | output_has "^members   2" || fail "info: int8 ensemble members"
ae=$(acc "$TMP/ens-int8.safetensors")
awk -v a="$af" -v b="$ae" 'BEGIN { d = a - b; exit !(d < 0.005 && d > -0.005) }' || fail "int8 ensemble accuracy $ae"

# refusals
expect_error 2 "--out FILE.safetensors is required" -- "$D" quantize --model "$F"
expect_error 2 "--calib: " -- "$D" quantize --model "$F" --out "$TMP/x.safetensors" --calib 0
expect_error 2 "unknown flag '--clib' (did you mean '--calib'?)" -- "$D" quantize --clib 5
echo "not a model" >"$TMP/bad.safetensors"
expect_error 1 "digits quantize: $TMP/bad.safetensors: " -- "$D" quantize --model "$TMP/bad.safetensors" --out "$TMP/x.safetensors"
expect_error 1 "digits quantize: $Q: already an int8 model" -- "$D" quantize --model "$Q" --out "$TMP/x.safetensors"
expect_error 1 "digits eval: $F: not an int8 model (make one with digits quantize)" -- \
    "$D" eval --model "$F" --data "$DATA" --limit 5 --int8-logits "$TMP/l.txt"
expect_error 1 "an ensemble of 2 int8 networks has no single int8 logits" -- \
    "$D" eval --model "$TMP/ens-int8.safetensors" --data "$DATA" --limit 5 --int8-logits "$TMP/l.txt"
[[ ! -e "$TMP/x.safetensors" ]] || fail "a refused quantize left a file"
# a corrupt int8 file: op 2's scale set to zero (same length: the header size stays)
perl -0pe 'my $n = 0; s/(\\"scale\\":)([0-9.e+-]+)/$1 . ($n++ == 2 ? "0" x length($2) : $2)/ge' "$Q" >"$TMP/zero-scale.safetensors"
expect_error 1 "zero-scale.safetensors: member 0: op 2: scale 0 is not a positive number" -- \
    "$D" eval --model "$TMP/zero-scale.safetensors" --data "$DATA" --limit 5
echo "quantize: all checks passed"
