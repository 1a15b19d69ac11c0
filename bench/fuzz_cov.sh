#!/usr/bin/env bash
# fuzz_cov.sh [TARGET...] — line and branch coverage of each reader by its
# fuzz corpus: the committed seeds (fuzz/corpus/TARGET) plus what
# bench/fuzz.sh found (build-fuzz/corpus/TARGET), replayed through a clang
# source-coverage build (build-cov/). One line per target:
#   TARGET: N inputs; readers: lines L% branches B% (FILE: lines L% branches B%, ...)
# "readers" counts only the functions a reader can reach: the files also
# hold writers (idx_write_*, csv_write*, model_save*), which no input runs.
# Default: every target.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(idx idx_gz csv spec model image http)
DIGITS_FUZZ=1 bash tools/install_deps.sh >/dev/null # clang, llvm tools
PROFDATA=$(command -v llvm-profdata || command -v llvm-profdata-14)
COV=$(command -v llvm-cov || command -v llvm-cov-14)
sources_of() {
    case $1 in
    idx | idx_gz) echo src/data/idx.c ;;
    csv) echo src/data/csv.c ;;
    spec) echo src/model/spec.c src/model/layers.c ;;
    model) echo src/model/safetensors.c src/eval/classifier.c ;;
    image) echo src/data/image.c ;;
    http) echo src/serve/routes.c ;;
    esac
}
for t in "${targets[@]}"; do
    make -s COVERAGE=1 -j2 "build-cov/fuzz/replay_$t"
    rm -f build-cov/"$t".prof*
    dirs=(fuzz/corpus/"$t")
    [[ -d build-fuzz/corpus/$t ]] && dirs+=(build-fuzz/corpus/"$t")
    n=$(cat <(ls "${dirs[@]}") | grep -vc ':$' || true)
    LLVM_PROFILE_FILE="build-cov/$t.profraw" "build-cov/fuzz/replay_$t" "${dirs[@]}" >/dev/null 2>&1
    "$PROFDATA" merge -o "build-cov/$t.profdata" "build-cov/$t.profraw"
    files=""
    for f in $(sources_of "$t"); do
        read -r lines branches < <("$COV" report "build-cov/fuzz/replay_$t" -instr-profile="build-cov/$t.profdata" "$f" |
            awk '/^TOTAL/ {print $10, $13}')
        files="$files, $(basename "$f"): lines $lines branches $branches"
    done
    # per function: Name Regions Miss Cover Lines Miss Cover Branches Miss Cover
    readers=$("$COV" report "build-cov/fuzz/replay_$t" -instr-profile="build-cov/$t.profdata" -show-functions \
        $(sources_of "$t") | awk '
        NF == 10 && $2 ~ /^[0-9]+$/ && $1 !~ /(write|save|put_|meta_float|dtype_size)/ {
            l += $5; lm += $6; b += $8; bm += $9 }
        END { printf "lines %.1f%% branches %.1f%%", 100 * (l - lm) / l, b ? 100 * (b - bm) / b : 100 }')
    echo "$t: $n inputs; readers: $readers (${files#, })"
done
