#!/usr/bin/env bash
# test.sh — README command 2 (and .ci/run): install what is missing, build,
# fetch MNIST (the end-to-end tests train on it), run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bash tools/fetch_mnist.sh
make -j"$(nproc)" test
