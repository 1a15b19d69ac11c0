#!/usr/bin/env bash
# test.sh — README command 2 (and .ci/run): install what is missing, build,
# fetch MNIST (the end-to-end tests train on it), run the whole suite; then
# run it again under AddressSanitizer + UndefinedBehaviorSanitizer with
# leak checking, in a second build folder (build-san/): unit tests, fuzz
# corpus replays and end-to-end scripts alike. DIGITS_NO_SANITIZE=1 skips
# the second pass (quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bash tools/fetch_mnist.sh
bash tools/fetch_onnxruntime.sh
make -j"$(nproc)" test
if [[ "${DIGITS_NO_SANITIZE:-0}" != 1 ]]; then
    echo "== the suite again under ASan + UBSan (build-san/)"
    # leaks are errors; suppressions only for third-party code (none needed so
    # far: OpenBLAS, loaded with dlopen, allocates with mmap, outside ASan's view)
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        make -j"$(nproc)" SANITIZE=1 test
fi
