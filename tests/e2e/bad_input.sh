#!/usr/bin/env bash
# bad_input.sh — every bad input gives one line naming the file (and
# line/column or tensor) and the problem, a non-zero exit, no crash, and
# nothing existing overwritten.
source "$(dirname "$0")/lib.bash"
require_data
D="$DIGITS"
mkdir -p "$TMP/idx"
# a model to evaluate with, and a sentinel output that must survive failures
"$D" train --model cnn --data "$DATA" --limit 500 --epochs 1 --test none --quiet --out "$TMP/m.safetensors" >/dev/null
cp "$TMP/m.safetensors" "$TMP/sentinel.safetensors"

# --- usage errors: exit 2
expect_error 2 "unknown or incomplete flag '--bogus'" -- "$D" train --bogus 3
expect_error 2 "--epochs: 'x' is not an integer" -- "$D" train --epochs x
expect_error 2 "--optimizer: 'rmsprop' is not sgd, adam, nadam or adamw" -- "$D" train --optimizer rmsprop
expect_error 2 "--normalize: 'minmax' is not standard, none or signed" -- "$D" train --normalize minmax
expect_error 2 "unknown command 'fly'" -- "$D" fly
expect_error 2 "unknown command 'evl' (did you mean 'eval'?)" -- "$D" evl
for cmd in eval predict submit report serve; do
    expect_error 2 "unknown flag '--modle' (did you mean '--model'?)" -- "$D" $cmd --modle "$TMP/m.safetensors"
done
expect_error 2 "unknown flag '--trheads' (did you mean '--threads'?)" -- "$D" eval --trheads 2
expect_error 2 "unknown flag '--dtpye' (did you mean '--dtype'?)" -- "$D" ensemble --dtpye bf16
expect_error 2 "unknown flag '--spilt' (did you mean '--split'?)" -- "$D" convert --spilt test
expect_error 2 "unknown flag '--spilt' (did you mean '--split'?)" -- "$D" describe --spilt test
expect_error 2 "unknown flag '--dtaa' (did you mean '--data'?)" -- "$D" describe --dtaa "$DATA"
expect_error 2 "unknown flag '--trheads' (did you mean '--threads'?)" -- "$D" augment --bench --trheads 2
expect_error 2 "unknown flag '--preveiw' (did you mean '--preview'?)" -- "$D" augment --preveiw x.png
expect_error 2 "--threads: 'x' is not an integer" -- "$D" augment --bench --threads x
expect_error 2 "--model needs a value" -- "$D" eval --model
expect_error 2 "--dtype: 'f8' is not f32, bf16 or f16" -- "$D" ensemble --dtype f8 --out "$TMP/x.safetensors" "$TMP/m.safetensors"

# --- data files: exit 1, file named
expect_error 1 "$TMP/nope: cannot open: No such file" -- "$D" eval --model "$TMP/m.safetensors" --data "$TMP/nope"
printf '\x00\x00\x08\x01\x00\x00\x00\x01\x00\x00\x00\x00' > "$TMP/idx/t10k-images-idx3-ubyte"
cp "$DATA/t10k-labels-idx1-ubyte" "$TMP/idx/"
expect_error 1 "t10k-images-idx3-ubyte: wrong magic" -- "$D" eval --model "$TMP/m.safetensors" --data "$TMP/idx"
head -c 5000 "$DATA/t10k-images-idx3-ubyte" > "$TMP/idx/t10k-images-idx3-ubyte"
expect_error 1 "truncated" -- "$D" eval --model "$TMP/m.safetensors" --data "$TMP/idx"
"$D" convert --in "$DATA" --split test --limit 100 --out "$TMP/idx" >/dev/null
printf '\x00\x00\x08\x01\x00\x00\x00\x63' > "$TMP/idx/t10k-labels-idx1-ubyte"
head -c 99 /dev/zero >> "$TMP/idx/t10k-labels-idx1-ubyte"
expect_error 1 "count mismatch" -- "$D" eval --model "$TMP/m.safetensors" --data "$TMP/idx"

# --- CSV
printf 'label,pixel0\n1,2,3\n' > "$TMP/cols.csv"
expect_error 1 "cols.csv:2" -- "$D" train --data "$TMP/cols.csv" --out "$TMP/sentinel.safetensors" --overwrite
"$D" convert --in "$DATA" --split test --limit 3 --out "$TMP/ok.csv" >/dev/null
sed '3s/^\([0-9]*\),0,/\1,abc,/' "$TMP/ok.csv" > "$TMP/nonnum.csv"
expect_error 1 "nonnum.csv:3" -- "$D" eval --model "$TMP/m.safetensors" --data "$TMP/nonnum.csv"
sed '2s/^\([0-9]*\),0,/\1,256,/' "$TMP/ok.csv" > "$TMP/range.csv"
expect_error 1 "range.csv:2" -- "$D" eval --model "$TMP/m.safetensors" --data "$TMP/range.csv"

# --- specs
printf 'conv2d out=6 kernel=5\nwobble\n' > "$TMP/bad.spec"
expect_error 1 "bad.spec:2: unknown layer 'wobble'" -- "$D" train --model "$TMP/bad.spec" --out "$TMP/sentinel.safetensors" --overwrite
expect_error 1 "unknown model 'resnet99'" -- "$D" train --model resnet99
expect_error 1 "unknown model 'cnn_bn': no models/cnn_bn.spec" -- "$D" train --model cnn_bn
expect_error 1 "Did you mean 'cnn-bn'?" -- "$D" train --model cnn_bn
expect_error 1 "Did you mean 'lenet5'?" -- "$D" train --model LeNet

# --- model files
head -c 3000 "$TMP/m.safetensors" > "$TMP/trunc.safetensors"
expect_error 1 "trunc.safetensors" -- "$D" eval --model "$TMP/trunc.safetensors" --data "$DATA" --limit 10
echo "garbage" > "$TMP/garbage.safetensors"
expect_error 1 "garbage.safetensors: not a model file" -- "$D" eval --model "$TMP/garbage.safetensors"
expect_error 1 "predict: $TMP/nothere.png" -- "$D" predict --model "$TMP/m.safetensors" "$TMP/nothere.png"

# --- errors that point to the fix
"$D" convert --in "$DATA" --split test --limit 5 --drop-labels --out "$TMP/ktest.csv" >/dev/null
expect_error 1 "ktest.csv: has no labels to score against (a Kaggle test.csv?); to predict it for Kaggle run 'digits submit --model" \
    -- "$D" eval --model "$TMP/m.safetensors" --data "$TMP/ktest.csv"
mkdir -p "$TMP/elsewhere"
(cd "$TMP/elsewhere" && expect_error 1 "$TMP/elsewhere/data/mnist: no MNIST folder here" -- "$D" eval --model "$TMP/m.safetensors")
grep -qF "point it at data with --data DIR|train.csv, or fetch MNIST with 'bash tools/fetch_mnist.sh'" "$TMP/err" ||
    fail "outside the checkout: no way to point eval at data: $(cat "$TMP/err")"
# every subcommand's --help ends with an Examples: block of runnable lines
for sub in train "train --model svm" eval predict submit convert report serve ensemble augment describe export import; do
    # shellcheck disable=SC2086
    "$D" $sub --help > "$TMP/help"
    grep -q '^Examples:$' "$TMP/help" || fail "digits $sub --help has no Examples: block"
    sed -n '/^Examples:$/,$p' "$TMP/help" | tail -n +2 | grep -v '^ *#' | grep -cE '^  (digits|curl) ' |
        { read -r k; [[ $k -ge 2 ]] || fail "digits $sub --help: $k examples"; }
    tail -1 "$TMP/help" | output_has -E '^  (digits|curl) |^ +# ' || fail "digits $sub --help does not end with its examples"
done
echo "ok: every --help ends with examples"
# --- --model default|best|FILE, and files that are not trained models
expect_error 1 "cnn-bn: a zoo architecture" -- "$D" eval --model cnn-bn
expect_error 1 "train it with 'digits train --model cnn-bn', or use --model default" -- "$D" predict --model cnn-bn x.png
cp models/lenet5.spec "$TMP/lenet5.spec"
expect_error 1 "lenet5.spec: an architecture (a .spec file), not a trained model" -- "$D" eval --model "$TMP/lenet5.spec"
expect_error 1 "ok.csv: not a model file (expected safetensors)" -- "$D" predict --model "$TMP/ok.csv" x.png
printf 'P5 28 28 255\n' >"$TMP/digit.pgm"
head -c 784 "$DATA/t10k-images-idx3-ubyte" | tail -c 700 >>"$TMP/digit.pgm" # a digit's lower rows
head -c 84 /dev/zero >>"$TMP/digit.pgm"
# a binary with no models beside it: the missing default says where it looked
mkdir -p "$TMP/bin" && cp "$D" "$TMP/bin/digits"
expect_error 1 "no pretrained model 'default': looked for pretrained/default.safetensors in " -- \
    "$TMP/bin/digits" predict "$TMP/digit.pgm"
expect_error 1 "bin/models" -- "$TMP/bin/digits" eval --data "$DATA"
expect_error 1 "no pretrained model 'best'" -- "$TMP/bin/digits" info best
# ... and with a model beside it, predict/info need no --model, from any working directory
mkdir -p "$TMP/models/pretrained" && cp "$TMP/m.safetensors" "$TMP/models/pretrained/default.safetensors"
(cd / && "$TMP/bin/digits" predict "$TMP/digit.pgm") | output_has "digit.pgm: [0-9] (p=" || fail "predict with the default model"
(cd / && "$TMP/bin/digits" info default) | output_has "^model *cnn (cnn)" || fail "info default"
DIGITS_MODELS="$TMP/models" "$D" info --json default | output_has '"file":.*models/pretrained/default.safetensors' ||
    fail "DIGITS_MODELS"
# NaN and Inf weights are refused, naming the tensor
nan_model() { # nan_model TENSOR BYTES OUT: a copy of m.safetensors with TENSOR's first value replaced
    LC_ALL=C perl -e '
        binmode STDIN; binmode STDOUT; local $/; my $d = <STDIN>;
        my $h = unpack("Q<", substr($d, 0, 8));
        substr($d, 8, $h) =~ /"\Q$ARGV[0]\E":\{[^}]*"data_offsets":\[(\d+),/ or die "no tensor";
        substr($d, 8 + $h + $1, 4) = pack("H8", $ARGV[1]);
        print $d;' "$1" "$2" <"$TMP/m.safetensors" >"$3"
}
nan_model 0.weight 0000c07f "$TMP/nan.safetensors"
expect_error 1 "nan.safetensors: tensor '0.weight' holds NaN" -- "$D" eval --model "$TMP/nan.safetensors" --limit 10
nan_model 0.bias 000080ff "$TMP/inf.safetensors"
expect_error 1 "inf.safetensors: tensor '0.bias' holds Inf" -- "$D" predict --model "$TMP/inf.safetensors" "$TMP/digit.pgm"

# nothing existing was overwritten by the failed runs
cmp -s "$TMP/m.safetensors" "$TMP/sentinel.safetensors" || fail "a failed run overwrote the output model"
ls "$TMP" | output_has '\.tmp\.' && fail "temporary files left behind"
echo "all bad inputs rejected cleanly"
