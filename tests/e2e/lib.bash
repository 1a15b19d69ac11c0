# lib.bash — helpers for the end-to-end scripts (sourced).
set -euo pipefail
BUILD=${BUILD:-build}
DIGITS="$PWD/$BUILD/digits"
DATA=${DIGITS_DATA:-data/mnist}
TMP=$(mktemp -d /tmp/digits-e2e-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

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
