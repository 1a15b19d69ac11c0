#!/usr/bin/env bash
# run.sh — the side-by-side model benchmark in one command: digits, PyTorch as
# shipped, and PyTorch with its BLAS tuned, on the same work in the same run.
#
#   bench/run.sh [MODELS] [BATCH]        e.g. bench/run.sh lenet5,cnn,cnn-bn 64
#
# Environment knobs: BENCH_SECONDS (minimum timed seconds per throughput
# figure, default 2), BENCH_THREADS (default: nproc), PYTHON (default
# /usr/bin/python3, Debian's interpreter with python3-torch).
#
# Writes bench/results/latest.csv (impl,model,metric,value) and prints a
# Markdown table; ratios are digits/torch for throughput and torch/digits for
# latency, so > 1 always means digits is faster. See bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."
MODELS=${1:-lenet5,cnn,cnn-bn}
BATCH=${2:-64}
SECS=${BENCH_SECONDS:-2}
THREADS=${BENCH_THREADS:-$(nproc)}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=bench/results
CSV=$OUT/latest.csv
TUNED_ENV="OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1"

case $BATCH in '' | *[!0-9]*) echo "run.sh: BATCH must be a positive integer, got '$BATCH'" >&2; exit 2 ;; esac

# Every implementation starts from a clean OpenBLAS environment: "as
# shipped" means what a user gets without knowing any variable, and a
# value left in the caller's shell (OPENBLAS_CORETYPE=...) must not leak in.
clean_env=(env)
for v in $(compgen -e | grep '^OPENBLAS_' || true); do clean_env+=(-u "$v"); done

echo "== build: make -j2 bench"
if ! make -j2 bench >/tmp/digits-bench-build.$$ 2>&1; then
    cat /tmp/digits-bench-build.$$ >&2
    rm -f /tmp/digits-bench-build.$$
    echo "run.sh: the build failed (above)" >&2
    exit 1
fi
rm -f /tmp/digits-bench-build.$$

mkdir -p "$OUT"
[ -f "$OUT/.gitignore" ] || printf '# benchmark results are machine-specific: never committed\n*\n!.gitignore\n' >"$OUT/.gitignore"
echo "impl,model,metric,value" >"$CSV"

have_torch=1
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    have_torch=0
    echo "run.sh: PyTorch is not importable by $PYTHON (install Debian's python3-torch);" \
         "showing digits' numbers only" >&2
fi

# ---- run: per model, the three implementations back to back, so that a
# ---- slow patch of machine time (other jobs) hits all three alike ----------
digits_cmd="build/bench/bench_models --batch $BATCH --threads $THREADS --seconds $SECS"
torch_cmd="$PYTHON bench/bench_torch.py --batch $BATCH --threads $THREADS --seconds $SECS"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
IFS=, read -r -a model_list <<<"$MODELS"
for model in "${model_list[@]}"; do
    echo "== $model" >&2
    if ! "${clean_env[@]}" $digits_cmd --models "$model" >>"$CSV"; then
        echo "run.sh: digits' benchmark failed on $model (exit status above); its numbers are missing" >&2
    fi
    if [ $have_torch = 1 ]; then
        "${clean_env[@]}" $torch_cmd --models "$model" --impl torch >>"$CSV" ||
            echo "run.sh: PyTorch's benchmark failed on $model" >&2
        "${clean_env[@]}" $TUNED_ENV $torch_cmd --models "$model" --impl torch-tuned >>"$CSV" ||
            echo "run.sh: tuned PyTorch's benchmark failed on $model" >&2
    fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report -------------------------------------------------------------------
echo
echo "## digits vs PyTorch — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), nproc $(nproc)," \
     "load average $load_before before, $load_after after"
if [ $have_torch = 1 ]; then
    echo "- PyTorch: $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null)," \
         "torch-tuned = $TUNED_ENV"
fi
echo "- threads $THREADS, training batch $BATCH, inference batch 1000, latency over 1000 single-image calls," \
     ">= $SECS s timed per throughput figure"
echo "- command: bench/run.sh $MODELS $BATCH  (BENCH_SECONDS=$SECS BENCH_THREADS=$THREADS)"
echo "  - digits: $digits_cmd --models M"
echo "  - torch:  $torch_cmd --models M [--impl torch-tuned with $TUNED_ENV]"
if awk -v a="${load_before%% *}" -v n="$(nproc)" 'BEGIN { exit !(a > n / 2) }'; then
    echo "- WARNING: other jobs were using the CPU (load average ${load_before%% *} on $(nproc) cores);" \
         "the figures are noisy, rerun on an idle machine"
fi
echo
awk -F, -v models="$MODELS" '
NR == 1 { next }
{ v[$1, $2, $3] = $4 }
function fmt(metric, x) {
    if (x == "") return "–"
    return metric ~ /_us$/ ? sprintf("%.1f", x) : sprintf("%.0f", x)
}
function ratio(metric, d, t) {
    if (d == "" || t == "" || d == 0 || t == 0) return "–"
    return sprintf("%.2f", metric ~ /_us$/ ? t / d : d / t)
}
END {
    split("train_img_s infer_img_s latency_median_us latency_p99_us", metrics, " ")
    split("train img/s (batch B)|infer img/s (batch 1000)|latency median µs|latency p99 µs", names, "|")
    print "| model | metric | digits | torch | ratio | torch-tuned | ratio |"
    print "|---|---|---:|---:|---:|---:|---:|"
    n = split(models, ms, ",")
    for (i = 1; i <= n; i++) {
        m = ms[i]; sub(/^.*\//, "", m); sub(/\.spec$/, "", m)
        for (j = 1; j <= 4; j++) {
            k = metrics[j]
            d = v["digits", m, k]; t = v["torch", m, k]; tt = v["torch-tuned", m, k]
            printf "| %s | %s | %s | %s | %s | %s | %s |\n", m, names[j], fmt(k, d), fmt(k, t),
                   ratio(k, d, t), fmt(k, tt), ratio(k, d, tt)
        }
    }
}' "$CSV" | sed "s/(batch B)/(batch $BATCH)/"
echo
echo "ratio > 1: digits is faster (throughput digits/torch, latency torch/digits). Raw numbers: $CSV"
