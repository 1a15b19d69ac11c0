#!/usr/bin/env bash
# make_serve_fixture.sh — trains the small model the preprocessing and
# server tests predict with (tests/fixtures/lenet5-small.safetensors,
# ~180 KB, committed). Re-run only to regenerate it; the tests' bounds were
# measured with the committed file. Needs MNIST in data/mnist.
set -euo pipefail
cd "$(dirname "$0")/.."
make -j2 build/digits
./build/digits train --model lenet5 --data data/mnist --epochs 2 --batch-size 64 --lr 0.002 \
    --seed 7 --threads 2 --out tests/fixtures/lenet5-small.safetensors
