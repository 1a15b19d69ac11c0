#!/usr/bin/env bash
# browser.sh — the page of `digits serve` in headless Chromium
# (tests/browser/page_test.js over the DevTools pipe): pressing Clear while
# a slow prediction is in flight leaves an empty result and the "Draw a
# digit" hint (the server answers late: --delay-ms, a flag for tests); a
# 50 MB upload from the page gets its 413 and JSON; a page on another
# origin calls the API through --cors. Saves the screenshot after Clear as
# $BROWSER_SHOT (default: in the temporary folder, deleted).
# Chromium and node come from tools/install_deps.sh; without them this test
# fails (it does not skip): CI must run it.
source "$(dirname "$0")/lib.bash"
MODEL=tests/fixtures/lenet5-small.safetensors
DELAY_MS=1500
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[[ -x "$CHROMIUM" ]] || fail "no Chromium at $CHROMIUM (bash tools/install_deps.sh installs it)"
command -v node >/dev/null || fail "no node (bash tools/install_deps.sh installs it)"

start_server serve "$MODEL" --cors '*' --delay-ms "$DELAY_MS"

shot=${BROWSER_SHOT:-$TMP/after-clear.png}
CHROMIUM="$CHROMIUM" TMPDIR="$TMP" node tests/browser/page_test.js "$URL/" "$DELAY_MS" "$shot" ||
    fail "the page test failed (server log: $(tail -5 "$TMP/serve.log" | tr '\n' ' '))"

# the cleared drawing did reach the server and was answered (late): the page
# ignored the answer, the server did not lose the request
n=$(grep -c ' POST /api/predict 200 ' "$TMP/serve.log" || true)
(( n >= 2 )) || fail "expected 2 answered predictions in the log, got $n: $(cat "$TMP/serve.log")"
grep -Eq ' POST /api/predict 200 [0-9]+ (1[5-9]|[2-9][0-9])[0-9]{2}\.[0-9]ms' "$TMP/serve.log" ||
    fail "predictions were not delayed by --delay-ms $DELAY_MS: $(cat "$TMP/serve.log")"
grep -q ' POST /api/predict 413 ' "$TMP/serve.log" || fail "no 413 in the log"
grep -q ' OPTIONS /api/predict 204 ' "$TMP/serve.log" || fail "no CORS preflight in the log"
echo "browser: all checks passed"
