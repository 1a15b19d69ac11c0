#!/usr/bin/env bash
# run.sh — the side-by-side model benchmark in one command: digits, PyTorch as
# shipped, and PyTorch with its BLAS tuned, on the same work in the same run.
#
#   bench/run.sh [MODELS] [BATCH]        e.g. bench/run.sh lenet5,cnn,cnn-bn 64
#
# Environment knobs: BENCH_SECONDS (minimum timed seconds per throughput
# figure, default 2), BENCH_THREADS (default: nproc), BENCH_WAIT_IDLE (wait
# up to this many seconds before each model for the CPU to be idle; default
# 0 = do not wait), PYTHON (default /usr/bin/python3, Debian's interpreter
# with python3-torch).
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
WAIT_IDLE=${BENCH_WAIT_IDLE:-0}
OUT=bench/results
CSV=$OUT/latest.csv
TUNED_ENV="OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1"

case $BATCH in '' | *[!0-9]* | 0) echo "run.sh: BATCH must be a positive integer, got '$BATCH'" >&2; exit 2 ;; esac
case $WAIT_IDLE in '' | *[!0-9]*) echo "run.sh: BENCH_WAIT_IDLE must be whole seconds, got '$WAIT_IDLE'" >&2; exit 2 ;; esac

# Percentage of all cores busy over the next second (other jobs: we are idle).
cpu_busy() {
    local a b
    read -r -a a < <(grep '^cpu ' /proc/stat)
    sleep 1
    read -r -a b < <(grep '^cpu ' /proc/stat)
    # fields: user nice system idle iowait irq softirq steal
    local busy=$(((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8])))
    local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
    echo $((100 * busy / (busy + idle > 0 ? busy + idle : 1)))
}

# "busy total" CPU ticks of the whole machine, and ticks used by this
# script's finished children (fields cutime, cstime of /proc/$$/stat).
cpu_ticks() {
    local a
    read -r -a a < <(grep '^cpu ' /proc/stat)
    echo "$((a[1] + a[2] + a[3] + a[6] + a[7] + a[8])) $((a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7] + a[8]))"
}
child_ticks() {
    local s
    s=$(sed 's/^.*) //' /proc/$$/stat) # drop "pid (comm) ", which may contain spaces
    read -r -a f <<<"$s"
    echo $((f[13] + f[14])) # fields 16 and 17 of the full line
}

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
read -r busy0 total0 < <(cpu_ticks)
child0=$(child_ticks)
busy_notes=""
IFS=, read -r -a model_list <<<"$MODELS"
for model in "${model_list[@]}"; do
    busy=$(cpu_busy)
    waited=0
    while [ "$busy" -gt 20 ] && [ $waited -lt "$WAIT_IDLE" ]; do
        [ $waited = 0 ] && echo "run.sh: other jobs keep ${busy}% of the CPU busy; waiting up to ${WAIT_IDLE}s" >&2
        sleep 4
        waited=$((waited + 5))
        busy=$(cpu_busy)
    done
    busy_notes+="${busy_notes:+, }$model ${busy}%"
    echo "== $model (CPU busy with other jobs just before: ${busy}%)" >&2
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
read -r busy1 total1 < <(cpu_ticks)
child1=$(child_ticks)
others=$(((busy1 - busy0) - (child1 - child0)))
others=$((others < 0 ? 0 : others))
others_pct=$((100 * others / (total1 - total0 > 0 ? total1 - total0 : 1)))

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
echo "- other jobs' share of the CPU: ${others_pct}% during the run; just before each model: $busy_notes"
if [ "$others_pct" -ge 10 ] || [[ $busy_notes =~ ([2-9][0-9]|100)% ]]; then
    echo "- WARNING: other jobs were using the CPU while this ran; the figures are noisy." \
         "Rerun on an idle machine (BENCH_WAIT_IDLE=600 waits for one)"
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
