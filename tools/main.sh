#!/usr/bin/env bash
# main.sh — README command 1: install what is missing, build, fetch MNIST,
# train the default model, evaluate it on the 10k test set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
make -j"$(nproc)" build/digits
bash tools/fetch_mnist.sh
mkdir -p runs
MODEL=${MODEL:-cnn-bn}
./build/digits train --model "$MODEL" ${TRAIN_FLAGS:---epochs 6 --batch-size 128 --lr 0.003 --schedule onecycle} \
    --out "runs/$MODEL.safetensors" --overwrite --log "runs/$MODEL.log.csv"
./build/digits eval --model "runs/$MODEL.safetensors" --data data/mnist
