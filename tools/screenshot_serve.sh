#!/usr/bin/env bash
# screenshot_serve.sh — docs/screenshots/serve.png (900x560) and
# serve-phone.png (390x844): the page after the built-in demo drawing
# (/?demo=1 draws a small 3 in a corner and predicts), taken with headless
# Chromium (dev-only: DIGITS_DEV=1 tools/install_deps.sh installs it).
# Usage: tools/screenshot_serve.sh [MODEL]   (default: the pretrained default model)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-default}
make -j2 build/digits >/dev/null
log=$(mktemp)
./build/digits serve --model "$MODEL" --port 0 --quiet 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.1; done
port=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log")
[[ -n "$port" ]] || { cat "$log" >&2; exit 1; }
mkdir -p docs/screenshots
shot() {  # NAME WIDTH,HEIGHT
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-proxy-server --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" \
        --window-size="$2" --virtual-time-budget=5000 --screenshot="docs/screenshots/$1.png" \
        "http://127.0.0.1:$port/?demo=1" >/dev/null 2>&1
    echo "docs/screenshots/$1.png: $(stat -c %s "docs/screenshots/$1.png") bytes"
}
shot serve 900,560
shot serve-phone 390,844
