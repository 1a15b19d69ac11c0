#!/usr/bin/env bash
# load.sh — load test of `digits serve` on loopback with wrk: requests/s and
# p50/p99 latency of POST /api/predict with a PNG body (a 280x280 drawing,
# dark on white, the size the page sends), and the server's RSS before and
# after the run (it must stay flat: no leak per request).
#
#   bench/load.sh [MODEL] [REQUESTS]     default runs/cnn-bn.safetensors 100000
#   MALFORMED=10 bench/load.sh MODEL 100000
#
# MALFORMED=P: P % of the requests (evenly spaced) are malformed, round-robin
# over six kinds: garbage body (415), truncated PNG (400), bad JSON (400), a
# PNG whose header says 100000x100000 (413), GET instead of POST (405), a
# multipart body without a file part (400). Status codes are then reported
# per kind, well-formed apart (see load.lua for how responses are
# attributed), and the run fails (exit 1) on any 5xx, any response no kind
# explains, any socket error, or a server that died or stopped answering.
#
# Knobs: LOAD_THREADS (server threads, default nproc), LOAD_CONNECTIONS
# (concurrent clients, default 16), LOAD_JOBS (make -j, default 2). One wrk
# DIGITS_BIN: the digits binary to serve with (default build/digits; another
# build's for before/after runs). One wrk
# thread (it stops the run after REQUESTS responses; see load.lua): enough
# for loopback. Needs wrk (DIGITS_DEV=1 tools/install_deps.sh) and MNIST in
# data/mnist (the digit).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-runs/cnn-bn.safetensors}
N=${2:-100000}
THREADS=${LOAD_THREADS:-$(nproc)}
CONNS=${LOAD_CONNECTIONS:-16}
BAD=${MALFORMED:-0}
[[ $BAD =~ ^[0-9]+$ && $BAD -le 100 ]] || { echo "load.sh: MALFORMED=$BAD: want a percentage 0..100" >&2; exit 2; }
command -v wrk >/dev/null || { echo "load.sh: wrk not found (DIGITS_DEV=1 tools/install_deps.sh)" >&2; exit 1; }
make -j"${LOAD_JOBS:-2}" build/digits >/dev/null
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
pid=

# The body: MNIST test digit 0 (a 7) scaled 10x, inverted, as an 8-bit gray PNG.
/usr/bin/python3 - "$tmp/body.png" <<'PY'
import struct, sys, zlib
raw = open("data/mnist/t10k-images-idx3-ubyte", "rb").read()[16:16 + 784]
rows = b"".join(b"\0" + bytes(255 - raw[(y // 10) * 28 + x // 10] for x in range(280)) for y in range(280))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 280, 280, 8, 0, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY

${DIGITS_BIN:-./build/digits} serve --model "$MODEL" --port 0 --threads "$THREADS" --quiet 2>"$tmp/serve.err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$tmp/serve.err" && break; sleep 0.1; done
port=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$tmp/serve.err")
[[ -n "$port" ]] || { cat "$tmp/serve.err" >&2; exit 1; }
URL="http://127.0.0.1:$port/api/predict"
answer=$(curl -s --noproxy '*' -H 'Content-Type: image/png' --data-binary @"$tmp/body.png" "$URL")
[[ $answer == '{"digit":7,'* ]] || { echo "load.sh: unexpected answer: ${answer:0:200}" >&2; exit 1; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

# warm-up: every server thread has touched its classifier and buffers
wrk -t1 -c"$CONNS" -d3s -s bench/load.lua "$URL" -- "$tmp/body.png" > "$tmp/warm.txt"
echo "warm-up: $(awk '$1 == "requests_per_s" {print $2}' "$tmp/warm.txt") req/s" >&2
rss_before=$(rss)
wrk -t1 -c"$CONNS" -d3600s -s bench/load.lua "$URL" -- "$tmp/body.png" "$N" "$BAD" > "$tmp/wrk.txt"
fails=()
kill -0 "$pid" 2>/dev/null || fails+=("the server died")
rss_after=$(rss 2>/dev/null || echo 0)
health=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)
[[ $health == 200 ]] || fails+=("GET /healthz after the run answered '$health'")
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" || true
pid=

get() { awk -v k="$1" '$1 == k {print $2}' "$tmp/wrk.txt"; }
[[ $(get requests) -ge $N ]] || echo "load.sh: only $(get requests) requests of $N" >&2
echo "digits serve --threads $THREADS, model $(basename "$MODEL"), wrk -t1 -c$CONNS, PNG body $(stat -c %s "$tmp/body.png") bytes, malformed $BAD % ($(nproc) cores)"
echo
echo "| requests | req/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | socket errors | RSS before | RSS after |"
echo "|---|---|---|---|---|---|---|---|---|---|"
echo "| $(get requests) | $(get requests_per_s) | $(get p50_ms) | $(get p90_ms) | $(get p99_ms) | $(get max_ms) | $(get non_2xx) | $(get socket_errors) | $((rss_before / 1024)) MiB | $((rss_after / 1024)) MiB |"
echo
echo "RSS before ${rss_before} kB, after ${rss_after} kB (difference $((rss_after - rss_before)) kB)"

# status codes by kind of request (with MALFORMED, every kind; else the well-formed PNG only)
echo
echo "| request kind | expected | sent | answered | status codes |"
echo "|---|---|---|---|---|"
sed -n 's/^kind //p' "$tmp/wrk.txt" | while IFS='|' read -r name want sent ans codes; do
    [[ $BAD -eq 0 && $name != well-formed* ]] && continue
    echo "| $name | $want | $sent | $ans | ${codes:-none} |"
done
grep '^unexpected ' "$tmp/wrk.txt" | sed 's/^unexpected \([0-9]*\) /unexpected response (x\1): /' || true
(( $(get socket_errors) == 0 )) || fails+=("$(get socket_errors) socket errors")
(( $(get all_5xx) == 0 )) || fails+=("$(get all_5xx) responses with a 5xx status")
(( $(get unexpected_responses) == 0 )) || fails+=("$(get unexpected_responses) responses no request kind explains")
(( $(get misattributed) == 0 )) || fails+=("$(get misattributed) responses more than their kind was sent")
if [[ $BAD -eq 0 ]]; then
    (( $(get non_2xx) == 0 )) || fails+=("$(get non_2xx) non-2xx responses to well-formed requests")
fi
if (( ${#fails[@]} )); then
    printf 'load.sh: FAIL: %s\n' "${fails[@]}" >&2
    exit 1
fi
echo "checks: 0 socket errors, 0 5xx, every response explained by its request kind, server alive (healthz 200)"
