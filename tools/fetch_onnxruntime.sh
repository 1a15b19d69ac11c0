#!/usr/bin/env bash
# fetch_onnxruntime.sh — installs ONNX Runtime for the ONNX tests
# (tests/e2e/onnx_ort.sh): the npm package onnxruntime-node@1.30.0, pinned
# with its integrity hashes in tests/onnx/package-lock.json, into
# tests/onnx/node_modules/ (git-ignored).
#
# --ignore-scripts: the package's postinstall script would download CUDA
# builds from another host; its Linux x64 CPU library
# (bin/napi-v6/linux/x64/libonnxruntime.so.1) already ships inside the
# package, and that is all the tests use. Idempotent: does nothing when the
# library is already there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$here/../tests/onnx"
lib="$dir/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"
if [[ -f "$lib" ]]; then
    echo "onnxruntime: already installed ($dir/node_modules)"
    exit 0
fi
command -v npm >/dev/null || { echo "fetch_onnxruntime: 'npm' not found (bash tools/install_deps.sh installs it)" >&2; exit 1; }
echo "fetch_onnxruntime: npm ci --ignore-scripts in tests/onnx (onnxruntime-node@1.30.0) ..."
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --silent)
[[ -f "$lib" ]] || { echo "fetch_onnxruntime: $lib is missing after the install" >&2; exit 1; }
echo "onnxruntime: installed"
