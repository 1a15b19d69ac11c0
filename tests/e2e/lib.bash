# lib.bash — helpers for the end-to-end scripts (sourced).
set -euo pipefail
BUILD=${BUILD:-build}
DIGITS="$PWD/$BUILD/digits"
DATA=${DIGITS_DATA:-data/mnist}
TMP=$(mktemp -d /tmp/digits-e2e-XXXXXX)
SERVER_PIDS=()
cleanup() {
    local p
    for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# `producer | output_has [GREP-OPTIONS] PATTERN`: grep -q on the producer's whole
# output. A plain `| grep -q` exits at its first match, and a producer still
# writing (bash's echo writes line by line) then dies of SIGPIPE, which
# pipefail turns into a failed check.
output_has() {
    local all
    all=$(cat)
    grep -q "$@" <<<"$all"
}

# sanitizer builds: fontconfig (cairo's text) keeps its caches until exit by design
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

# expect_error EXPECTED_STATUS "substring of stderr" -- command...
# The command must exit with that status and print exactly one line to
# stderr containing the substring.
expect_error() {
    local want=$1 needle=$2; shift 3
    local rc=0
    "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    [[ $rc -eq $want ]] || fail "'$*' exited $rc, expected $want; stderr: $(cat "$TMP/err")"
    grep -qF -- "$needle" "$TMP/err" || fail "'$*': stderr lacks '$needle': $(cat "$TMP/err")"
    # runtime failures are exactly one line; usage errors add a --help hint
    if [[ $want -eq 1 && $(wc -l < "$TMP/err") -ne 1 ]]; then
        fail "'$*': expected one line on stderr, got: $(cat "$TMP/err")"
    fi
    echo "ok ($rc): $(head -1 "$TMP/err")"
}

require_data() {
    [[ -f "$DATA/train-images-idx3-ubyte" ]] || fail "MNIST not found in $DATA (run tools/fetch_mnist.sh)"
}

# require_ort — node, ONNX Runtime (npm) and the reference helper the ONNX
# tests run; sets REF and ORT_LIB. Without them the test fails (CI runs it).
require_ort() {
    REF="$BUILD/tests/onnx_ref"
    ORT_LIB=tests/onnx/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1
    command -v node >/dev/null || fail "no node (bash tools/install_deps.sh installs it)"
    [[ -f "$ORT_LIB" ]] || fail "no ONNX Runtime in tests/onnx/node_modules (bash tools/fetch_onnxruntime.sh installs it)"
    [[ -x "$REF" ]] || fail "no $REF (make $REF)"
}

# tensor_data FILE — the raw tensor bytes of a safetensors file (what follows
# the 8-byte length and the JSON header): two models with equal tensor_data
# have bit-identical weights, whatever their metadata says.
tensor_data() {
    local hlen
    hlen=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    tail -c +$((hlen + 9)) "$1"
}

# wait_for FILE [SECONDS] — poll until FILE exists (default 60 s).
wait_for() {
    local i
    for ((i = 0; i < ${2:-60} * 50; i++)); do
        [[ -e "$1" ]] && return 0
        sleep 0.02
    done
    fail "timed out waiting for $1"
}

# start_server NAME MODEL [serve flags] — `digits serve` on an ephemeral port,
# its access log in $TMP/NAME.log and its stderr in $TMP/NAME.err; waits for
# the "listening on" line and sets URL and SERVER_PID. Stopped at exit.
start_server() {
    local name=$1 model=$2 port _
    shift 2
    "$DIGITS" serve --model "$model" --port 0 --threads 2 "$@" >"$TMP/$name.log" 2>"$TMP/$name.err" &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    for _ in $(seq 100); do grep -q listening "$TMP/$name.err" && break; sleep 0.1; done
    port=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$TMP/$name.err")
    [[ -n "$port" ]] || fail "$name: no 'listening on' line: $(cat "$TMP/$name.err")"
    URL="http://127.0.0.1:$port"
}
