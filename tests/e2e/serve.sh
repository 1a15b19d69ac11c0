#!/usr/bin/env bash
# serve.sh — `digits serve` as a user runs it: starts on an ephemeral port
# (printed), serves the page and predictions to curl, logs one line per
# request, refuses a body over --max-body, stops on SIGTERM with status 0.
# Usage and start-up errors exit 2 / 1 with one line. (The API in depth,
# bad requests and concurrency: tests/test_serve.c.)
source "$(dirname "$0")/lib.bash"
require_data
MODEL=tests/fixtures/lenet5-small.safetensors
CURL=(curl -s --noproxy '*' --max-time 20)

expect_error 2 "unknown flag '--modle' (did you mean '--model'?)" -- "$DIGITS" serve --modle "$MODEL"
expect_error 2 "--port: 70000 is out of range" -- "$DIGITS" serve --model "$MODEL" --port 70000
expect_error 1 "nope.safetensors" -- "$DIGITS" serve --model "$TMP/nope.safetensors" --port 0
expect_error 1 "not an IP address" -- "$DIGITS" serve --model "$MODEL" --host example.com --port 0

start_server serve "$MODEL" --max-body 100000
pid=$SERVER_PID port=${URL##*:}
echo "serving on $URL"

# a second server on the same port: one-line error, exit 1
expect_error 1 "Address already in use" -- "$DIGITS" serve --model "$MODEL" --port "$port"

[[ $("${CURL[@]}" -o /dev/null -w '%{http_code}' "$URL/") == 200 ]] || fail "GET /"
"${CURL[@]}" "$URL/" | output_has '<canvas id="pad"' || fail "the page has no drawing pad"
"${CURL[@]}" "$URL/healthz" | output_has '"status":"ok"' || fail "/healthz"
"${CURL[@]}" "$URL/api/model" | output_has '"name":"lenet5"' || fail "/api/model"

# the first MNIST test digit (a 7) as a PGM, dark on light: raw body and multipart
{ printf 'P5\n28 28\n255\n'; head -c 800 "$DATA/t10k-images-idx3-ubyte" | tail -c 784 | LC_ALL=C tr '\000-\377' "$(printf '\\%03o' $(seq 255 -1 0))"; } > "$TMP/seven.pgm"
out=$("${CURL[@]}" -H 'Content-Type: image/x-portable-graymap' --data-binary @"$TMP/seven.pgm" "$URL/api/predict")
echo "${out:0:120}..."
[[ $out == '{"digit":7,'* ]] || fail "raw PGM not predicted as 7: $out"
"${CURL[@]}" -F "image=@$TMP/seven.pgm" "$URL/api/predict" | output_has '^{"digit":7,' || fail "multipart PGM"
# digits predict on the same file agrees (same preprocessing)
"$DIGITS" predict --model "$MODEL" "$TMP/seven.pgm" | output_has ': 7 (p=' || fail "digits predict disagrees"

# over --max-body: 413 with a JSON error
head -c 200000 /dev/zero > "$TMP/big.bin"
code=$("${CURL[@]}" -o "$TMP/413.json" -w '%{http_code}' -H 'Content-Type: image/png' --data-binary @"$TMP/big.bin" "$URL/api/predict")
[[ $code == 413 ]] || fail "oversized body: HTTP $code"
grep -q '"error":' "$TMP/413.json" || fail "413 without a JSON error"

# one log line per request: time method path status bytes milliseconds
grep -Eq '^[0-9T:-]+Z POST /api/predict 200 [0-9]+ [0-9.]+ms$' "$TMP/serve.log" || fail "no predict log line: $(cat "$TMP/serve.log")"
grep -Eq ' GET / 200 [0-9]+ [0-9.]+ms$' "$TMP/serve.log" || fail "no page log line"
grep -Eq ' POST /api/predict 413 ' "$TMP/serve.log" || fail "no 413 log line"
echo "access log: $(wc -l < "$TMP/serve.log") lines"

# SIGTERM: stops, exit status 0
kill -TERM "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "still running 5 s after SIGTERM"
wait "$pid" || fail "exit status $? after SIGTERM"
grep -q "SIGTERM, stopping" "$TMP/serve.err" || fail "no stop message"
echo "serve: all checks passed"
