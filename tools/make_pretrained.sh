#!/usr/bin/env bash
# make_pretrained.sh NAME — remakes a pretrained model of models/pretrained/
# from scratch, with the exact recipe its manifest (models/pretrained/README.md)
# records, then prints its test accuracy, size and SHA-256 for the manifest.
#
#   default  (configs/pretrained-default.yaml) one cnn-bn trained with augmentation (rotation, zoom, shift and
#            elastic distortion: the `mnist` preset) on all 60 000 MNIST
#            training images, 15 epochs, Adam with a one-cycle schedule to
#            lr 0.003, batch 128, bf16 convolutions, one thread, seed 1;
#            stored with bf16 tensors.
#   best     the soft-vote ensemble of four such networks, seeds 1-4 (seed 1
#            is `default`'s network), stored with bf16 tensors.
#   mcu-64k  int8 `cnn` for a microcontroller with 64 KB of flash and 12 KB of
#            RAM (docs/MCU.md): augmentation preset seed000, 15 epochs, Adam,
#            one-cycle to lr 0.005, batch 128, 10 % validation split (its
#            best-loss epoch kept), one thread, seed 42; then digits quantize
#            (1 000 calibration images).
#   mcu-256k int8 `fast` for 256 KB of flash and 48 KB of RAM: the fast recipe
#            of bench/time_to_accuracy.sh (8 epochs, Adam, one-cycle to lr 0.01,
#            batch 128, rotation 8 degrees and shift 0.08), one thread, seed 42;
#            then digits quantize.
#
# Members are trained into runs/pretrained/ (kept: a second run reuses them).
# One thread per member, so the weights are bit-identical on every run on the
# same CPU family; PARALLEL=2 trains two members side by side.
# Takes ~25 min per member on one core of the project machine.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:?usage: tools/make_pretrained.sh default|best|mcu-64k|mcu-256k}
DIGITS=${DIGITS:-build/digits}
PARALLEL=${PARALLEL:-1}
DIR=runs/pretrained
mkdir -p "$DIR" models/pretrained

# the recipe, one member per seed: fp32 master file runs/pretrained/cnnbn-aug-sSEED.safetensors
member() {
    local seed=$1 out="$DIR/cnnbn-aug-s$1.safetensors"
    [[ -f $out ]] && return 0
    # the recipe is configs/pretrained-default.yaml; members are kept in f32 (the files
    # shipped are rounded to bf16 once, when joined)
    "$DIGITS" train --config configs/pretrained-default.yaml --seed "$seed" --dtype f32 \
        --out "$DIR/tmp-s$seed.safetensors" --log "$DIR/cnnbn-aug-s$seed.csv" --overwrite
    mv "$DIR/tmp-s$seed.safetensors" "$out"
}

members() {
    local pids=() seed
    for seed in "$@"; do
        member "$seed" &
        pids+=($!)
        if (( ${#pids[@]} >= PARALLEL )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    done
    for p in "${pids[@]}"; do wait "$p"; done
}

# mcu NAME MODEL FLAGS...: the float network into runs/pretrained/NAME-f32, its int8 copy shipped
mcu() {
    local name=$1 model=$2 f32="$DIR/$1-f32.safetensors"
    shift 2
    # the test set is measured once after training (recorded in the file), never used to choose
    [[ -f $f32 ]] || "$DIGITS" train --model "$model" --data data/mnist --val-split 0.1 --seed 42 --threads 1 \
        "$@" --out "$f32" --log "$DIR/$name-f32.csv" --overwrite
    "$DIGITS" quantize --model "$f32" --data data/mnist --calib 1000 --test data/mnist \
        --out "models/pretrained/$name.safetensors"
}

case $NAME in
mcu-64k)
    mcu mcu-64k cnn --augment seed000 --epochs 15 --schedule onecycle --optimizer adam --lr 0.005 --batch-size 128 ;;
mcu-256k)
    mcu mcu-256k fast --augment rotate=8,shift=0.08 --epochs 8 --schedule onecycle --optimizer adam --lr 0.01 \
        --batch-size 128 ;;
default)
    members 1
    "$DIGITS" ensemble --dtype bf16 --test data/mnist --out models/pretrained/default.safetensors "$DIR/cnnbn-aug-s1.safetensors" ;;
best)
    members 1 2 3 4
    "$DIGITS" ensemble --dtype bf16 --vote probs --test data/mnist --out models/pretrained/best.safetensors \
        "$DIR"/cnnbn-aug-s{1,2,3,4}.safetensors ;;
*)  echo "make_pretrained.sh: unknown model '$NAME' (default, best, mcu-64k, mcu-256k)" >&2; exit 2 ;;
esac

f=models/pretrained/$NAME.safetensors
json=$("$DIGITS" eval --model "$f" --data data/mnist --json)
grep -o '"accuracy":[0-9.]*' <<<"$json" | sed -n 1p
echo "size $(stat -c %s "$f") bytes; sha256 $(sha256sum "$f" | cut -d' ' -f1)"
