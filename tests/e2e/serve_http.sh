#!/usr/bin/env bash
# serve_http.sh — `digits serve` at the HTTP level, with curl: CORS (off by
# default: no headers, OPTIONS refused 405; with --cors ORIGIN the origin on
# every reply and preflights answered 204), a 50 MB upload answered 413 with
# its JSON error however it is sent (Content-Length, Expect: 100-continue,
# multipart, chunked: the body is read and thrown away so the client is not
# reset before it reads the answer), and JSON pixels in 0..1 refused with a
# message that says so. (The page itself: browser.sh.)
source "$(dirname "$0")/lib.bash"
MODEL=tests/fixtures/lenet5-small.safetensors
CURL=(curl -s --noproxy '*' --max-time 30)
expect_error 2 "--cors: 'https://example.org/' is not an origin" -- "$DIGITS" serve --model "$MODEL" --cors https://example.org/
expect_error 2 "--cors: 'example.org' is not an origin" -- "$DIGITS" serve --model "$MODEL" --cors example.org

# ---- CORS off (the default)
start_server plain "$MODEL"
hdr=$("${CURL[@]}" -D - -o /dev/null -H 'Origin: https://example.org' "$URL/healthz")
grep -qi '^Access-Control-' <<<"$hdr" && fail "CORS headers without --cors: $hdr"
code=$("${CURL[@]}" -o "$TMP/opt.json" -w '%{http_code}' -X OPTIONS -H 'Origin: https://example.org' \
       -H 'Access-Control-Request-Method: POST' "$URL/api/predict")
[[ $code == 405 ]] || fail "OPTIONS without --cors: HTTP $code, expected 405"
grep -q '"error":"OPTIONS is not allowed' "$TMP/opt.json" || fail "405 body: $(cat "$TMP/opt.json")"
echo "ok: no --cors: no CORS headers, OPTIONS 405"

# ---- 413 for a 50 MB upload, sent four ways (the default 8 MiB limit)
head -c 50000000 /dev/zero > "$TMP/big.bin"
check_413() {  # WHAT curl-args...
    local what=$1; shift  # sets $sent: the bytes of body curl sent
    rm -f "$TMP/413.json"
    local out code rc=0
    out=$("${CURL[@]}" -o "$TMP/413.json" -w '%{http_code} %{size_upload}' "$@" "$URL/api/predict") || rc=$?
    code=${out% *}
    sent=${out#* }
    [[ $rc -eq 0 && $code == 413 ]] || fail "$what: curl exit $rc, HTTP $code (expected 413 and its body)"
    grep -q '^{"error":"body .*is over the 8388608-byte limit"}$' "$TMP/413.json" ||
        fail "$what: 413 without its JSON error: $(cat "$TMP/413.json")"
    echo "ok: $what: 413 after $sent bytes sent: $(cat "$TMP/413.json")"
}
check_413 "Content-Length, no Expect" -H 'Expect:' -H 'Content-Type: image/png' --data-binary @"$TMP/big.bin"
check_413 "Expect: 100-continue" -H 'Expect: 100-continue' -H 'Content-Type: image/png' --data-binary @"$TMP/big.bin"
(( sent == 0 )) || fail "Expect: 100-continue: the server let the client send $sent bytes (expected 413 before the body)"
check_413 "multipart (curl -F)" -F "file=@$TMP/big.bin"
check_413 "chunked" -H 'Transfer-Encoding: chunked' -H 'Content-Type: image/png' --data-binary @"$TMP/big.bin"

# ---- JSON pixels normalised to 0..1: 400 saying so; integers 0/1 are 0..255 values
pixels_json() {  # VALUE_OF_INK: a 784-value array, a bar of ink in the middle
    local v=() i
    for ((i = 0; i < 784; i++)); do
        if (( i / 28 >= 8 && i / 28 < 20 && i % 28 >= 12 && i % 28 < 16 )); then v+=("$1"); else v+=(0); fi
    done
    local IFS=,
    echo "{\"pixels\":[${v[*]}]}"
}
pixels_json 0.8 > "$TMP/unit.json"
code=$("${CURL[@]}" -o "$TMP/unit.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$TMP/unit.json" "$URL/api/predict")
[[ $code == 400 ]] || fail "0..1 pixels: HTTP $code: $(cat "$TMP/unit.out")"
grep -q 'look like values in 0..1.*send 0..255' "$TMP/unit.out" || fail "0..1 pixels: $(cat "$TMP/unit.out")"
echo "ok: 0..1 pixels: 400 $(cat "$TMP/unit.out")"
pixels_json 204 > "$TMP/byte.json"
code=$("${CURL[@]}" -o "$TMP/byte.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$TMP/byte.json" "$URL/api/predict")
[[ $code == 200 ]] || fail "0..255 pixels: HTTP $code: $(cat "$TMP/byte.out")"
echo "ok: the same pixels in 0..255: 200"

# ---- CORS on
start_server cors "$MODEL" --cors https://example.org
hdr=$("${CURL[@]}" -D - -o /dev/null -H 'Origin: https://example.org' "$URL/healthz")
grep -qi '^Access-Control-Allow-Origin: https://example.org' <<<"$hdr" || fail "GET with --cors: $hdr"
hdr=$("${CURL[@]}" -D - -o /dev/null -H 'Content-Type: application/json' --data-binary @"$TMP/byte.json" "$URL/api/predict")
grep -qi '^Access-Control-Allow-Origin: https://example.org' <<<"$hdr" || fail "POST with --cors: $hdr"
hdr=$("${CURL[@]}" -D - -o /dev/null -X OPTIONS -H 'Origin: https://example.org' \
      -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type' "$URL/api/predict")
for want in 'HTTP/1.1 204' 'Access-Control-Allow-Origin: https://example.org' 'Access-Control-Allow-Methods: POST' \
            'Access-Control-Allow-Headers: Content-Type' 'Access-Control-Max-Age: [0-9]'; do
    grep -qi "^$want" <<<"$hdr" || fail "preflight lacks '$want': $hdr"
done
hdr=$("${CURL[@]}" -D - -o /dev/null -X OPTIONS -H 'Origin: https://example.org' "$URL/api/model")
grep -qi '^Access-Control-Allow-Methods: GET, HEAD' <<<"$hdr" || fail "preflight on /api/model: $hdr"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X OPTIONS "$URL/nope")
[[ $code == 404 ]] || fail "OPTIONS on an unknown path: HTTP $code"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X DELETE "$URL/api/predict")
[[ $code == 405 ]] || fail "DELETE with --cors: HTTP $code"
echo "ok: --cors: Allow-Origin on replies, preflight 204"
echo "serve_http: all checks passed"
