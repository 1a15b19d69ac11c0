#!/usr/bin/env bash
# run.sh — the side-by-side model benchmark in one command: digits, PyTorch as
# shipped, and PyTorch with its BLAS tuned, on the same work in the same run.
#
#   bench/run.sh [MODELS] [BATCH]        e.g. bench/run.sh lenet5,cnn,cnn-bn 64
#
# Environment knobs:
#   BENCH_SECONDS    minimum timed seconds per throughput figure (default 2)
#   BENCH_THREADS    threads for both sides (default: nproc)
#   BENCH_REPEAT     rounds; the table keeps each figure's best round (default 3)
#   BENCH_WAIT_IDLE  wait up to this many seconds before each model for the
#                    CPU to be idle (default 0: do not wait)
#   BENCH_BF16       1: also digits --precision bf16 against PyTorch's own bf16
#                    path (torch.autocast('cpu', torch.bfloat16), oneDNN)
#   PYTHON           default /usr/bin/python3 (Debian's, with python3-torch)
#
# Writes bench/results/latest.csv (impl,model,metric,value: the best round),
# bench/results/latest-all.csv (every round), and prints a Markdown table;
# ratios are digits/torch for throughput and torch/digits for latency, so
# > 1 always means digits is faster. See bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."
MODELS=${1:-lenet5,cnn,cnn-bn,kaggle-deep}
BATCH=${2:-64}
SECS=${BENCH_SECONDS:-2}
THREADS=${BENCH_THREADS:-$(nproc)}
REPEAT=${BENCH_REPEAT:-3}
WAIT_IDLE=${BENCH_WAIT_IDLE:-0}
BF16=${BENCH_BF16:-0}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=bench/results
CSV=$OUT/latest.csv
ALL=$OUT/latest-all.csv
TUNED_ENV=(OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1)

usage_error() { echo "run.sh: $*" >&2; echo "usage: bench/run.sh [MODELS] [BATCH]  (see the header of bench/run.sh)" >&2; exit 2; }
is_count() { case $1 in '' | *[!0-9]* | 0) return 1 ;; esac; }
is_count "$BATCH" || usage_error "BATCH must be a positive integer, got '$BATCH'"
is_count "$THREADS" || usage_error "BENCH_THREADS must be a positive integer, got '$THREADS'"
is_count "$REPEAT" || usage_error "BENCH_REPEAT must be a positive integer, got '$REPEAT'"
is_count "$WAIT_IDLE" || [ "$WAIT_IDLE" = 0 ] || usage_error "BENCH_WAIT_IDLE must be whole seconds, got '$WAIT_IDLE'"

# ---- CPU accounting: is anyone else using the machine? -----------------------

# "busy total" CPU ticks of the whole machine since boot.
cpu_ticks() {
    local a
    read -r -a a < <(grep '^cpu ' /proc/stat) # cpu user nice system idle iowait irq softirq steal
    echo "$((a[1] + a[2] + a[3] + a[6] + a[7] + a[8])) $((a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7] + a[8]))"
}
# Ticks used by this script's finished children (cutime + cstime).
child_ticks() {
    local f
    read -r -a f <<<"$(sed 's/^.*) //' /proc/$$/stat)" # drop "pid (comm) ": comm may hold spaces
    echo $((f[13] + f[14]))                            # fields 16 and 17 of the full line
}
# Percentage of all cores busy over the next second (other jobs: we are idle).
cpu_busy() {
    local b0 t0 b1 t1
    read -r b0 t0 < <(cpu_ticks)
    sleep 1
    read -r b1 t1 < <(cpu_ticks)
    echo $((100 * (b1 - b0) / (t1 - t0 > 0 ? t1 - t0 : 1)))
}

# ---- build ---------------------------------------------------------------------

# Every implementation starts from a clean OpenBLAS environment: "as
# shipped" means what a user gets without knowing any variable, and a
# value left in the caller's shell (OPENBLAS_CORETYPE=...) must not leak in.
clean_env=(env)
for v in $(compgen -e | grep '^OPENBLAS_' || true); do clean_env+=(-u "$v"); done

echo "== build: make -j2 bench" >&2
build_log=$(mktemp)
if ! make -j2 bench >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    echo "run.sh: the build failed (above)" >&2
    exit 1
fi
rm -f "$build_log"

mkdir -p "$OUT"
[ -f "$OUT/.gitignore" ] || printf '# benchmark results are machine-specific: never committed\n*\n!.gitignore\n' >"$OUT/.gitignore"
echo "impl,model,metric,value" >"$ALL"

have_torch=1
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    have_torch=0
    echo "run.sh: PyTorch is not importable by $PYTHON (install Debian's python3-torch);" \
         "showing digits' numbers only" >&2
fi

# ---- run: per model, the three implementations back to back, so that a slow
# ---- patch of machine time (other jobs) hits all three alike; then again ------
digits_cmd=(build/bench/bench_models --batch "$BATCH" --threads "$THREADS" --seconds "$SECS")
torch_cmd=("$PYTHON" bench/bench_torch.py --batch "$BATCH" --threads "$THREADS" --seconds "$SECS")
IFS=, read -r -a model_list <<<"$MODELS"
declare -A busy_before
max_busy=0
read -r busy0 total0 < <(cpu_ticks)
child0=$(child_ticks)
for round in $(seq 1 "$REPEAT"); do
    for model in "${model_list[@]}"; do
        busy=$(cpu_busy)
        waited=0
        while [ "$busy" -gt 20 ] && [ $waited -lt "$WAIT_IDLE" ]; do
            [ $waited = 0 ] && echo "run.sh: other jobs keep ${busy}% of the CPU busy; waiting up to ${WAIT_IDLE}s" >&2
            sleep 4
            waited=$((waited + 5))
            busy=$(cpu_busy)
        done
        busy_before[$model]+="${busy_before[$model]:+/}$busy"
        max_busy=$((busy > max_busy ? busy : max_busy))
        echo "== round $round/$REPEAT: $model (CPU busy with other jobs just before: ${busy}%)" >&2
        "${clean_env[@]}" "${digits_cmd[@]}" --models "$model" >>"$ALL" ||
            echo "run.sh: digits' benchmark failed on $model (exit status $?); its numbers are missing" >&2
        if [ $have_torch = 1 ]; then
            "${clean_env[@]}" "${torch_cmd[@]}" --models "$model" --impl torch >>"$ALL" ||
                echo "run.sh: PyTorch's benchmark failed on $model" >&2
            "${clean_env[@]}" "${TUNED_ENV[@]}" "${torch_cmd[@]}" --models "$model" --impl torch-tuned >>"$ALL" ||
                echo "run.sh: tuned PyTorch's benchmark failed on $model" >&2
        fi
        if [ "$BF16" = 1 ]; then
            "${clean_env[@]}" "${digits_cmd[@]}" --models "$model" --precision bf16 | sed 's/^digits,/digits-bf16,/' >>"$ALL" ||
                echo "run.sh: digits' bf16 benchmark failed on $model" >&2
            [ $have_torch = 1 ] && { "${clean_env[@]}" "${TUNED_ENV[@]}" "${torch_cmd[@]}" --models "$model" --bf16 \
                --impl torch-bf16 >>"$ALL" || echo "run.sh: PyTorch's bf16 benchmark failed on $model" >&2; }
        fi
    done
done
read -r busy1 total1 < <(cpu_ticks)
child1=$(child_ticks)
others=$(((busy1 - busy0) - (child1 - child0)))
others_pct=$((100 * (others > 0 ? others : 0) / (total1 - total0 > 0 ? total1 - total0 : 1)))

# best round per figure: highest throughput, lowest latency (first-seen order)
awk -F, 'NR == 1 { print; next }
{
    k = $1 FS $2 FS $3
    if (!(k in best)) { order[++n] = k; best[k] = $4 }
    else if ($3 ~ /_us$|_mb$/ ? $4 + 0 < best[k] + 0 : $4 + 0 > best[k] + 0) best[k] = $4
}
END { for (i = 1; i <= n; i++) print order[i] FS best[order[i]] }' "$ALL" >"$CSV"

# ---- report -------------------------------------------------------------------
notes=""
for model in "${model_list[@]}"; do notes+="${notes:+, }$model ${busy_before[$model]}%"; done
echo "## digits vs PyTorch — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), nproc $(nproc)"
if [ $have_torch = 1 ]; then
    echo "- PyTorch $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null);" \
         "torch = as shipped (no OPENBLAS_* variables), torch-tuned = ${TUNED_ENV[*]}"
fi
echo "- threads $THREADS, training batch $BATCH (Adam), inference batch 1000, latency over 1000 single-image" \
     "calls; >= $SECS s timed per throughput figure; best of $REPEAT round(s)"
echo "- command: bench/run.sh $MODELS $BATCH  (BENCH_SECONDS=$SECS BENCH_THREADS=$THREADS BENCH_REPEAT=$REPEAT)"
echo "  - digits: ${digits_cmd[*]} --models M"
[ $have_torch = 0 ] || echo "  - torch:  ${torch_cmd[*]} --models M [--impl torch-tuned, with ${TUNED_ENV[*]}]"
echo "- other jobs' share of the CPU: ${others_pct}% during the run; just before each model and round: $notes"
if [ "$others_pct" -ge 10 ] || [ "$max_busy" -gt 20 ]; then
    echo "- WARNING: other jobs were using the CPU while this ran, so some figures are noisy" \
         "(best of $REPEAT rounds kept). Rerun on an idle machine (BENCH_WAIT_IDLE=600 waits for one)."
fi
echo
awk -F, -v models="$MODELS" -v batch="$BATCH" -v bf16="$BF16" '
NR == 1 { next }
{ v[$1, $2, $3] = $4 }
function fmt(metric, x) {
    if (x == "") return "–"
    return metric ~ /_us$|_mb$/ ? sprintf("%.1f", x) : sprintf("%.0f", x)
}
function ratio(metric, d, t) {
    if (d == "" || t == "" || d == 0 || t == 0) return "–"
    return sprintf("%.2f", metric ~ /_us$|_mb$/ ? t / d : d / t)
}
END {
    split("train_img_s infer_img_s latency_median_us latency_p99_us peak_rss_mb", metrics, " ")
    split("train img/s (batch " batch ")|infer img/s (batch 1000)|latency median µs|latency p99 µs|peak RSS MB", names, "|")
    print "| model | metric | digits | torch | ratio | torch-tuned | ratio |"
    print "|---|---|---:|---:|---:|---:|---:|"
    n = split(models, ms, ",")
    for (i = 1; i <= n; i++) {
        m = ms[i]; sub(/^.*\//, "", m); sub(/\.spec$/, "", m)
        for (j = 1; j <= 5; j++) {
            k = metrics[j]
            d = v["digits", m, k]; t = v["torch", m, k]; tt = v["torch-tuned", m, k]
            printf "| %s | %s | %s | %s | %s | %s | %s |\n", m, names[j], fmt(k, d), fmt(k, t),
                   ratio(k, d, t), fmt(k, tt), ratio(k, d, tt)
        }
    }
    if (bf16 != 1) exit
    print ""
    print "bf16: digits --precision bf16 vs torch.autocast(cpu, bfloat16)"
    print ""
    print "| model | metric | digits-bf16 | torch-bf16 | ratio | digits fp32 | bf16 speed-up |"
    print "|---|---|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        m = ms[i]; sub(/^.*\//, "", m); sub(/\.spec$/, "", m)
        for (j = 1; j <= 3; j++) {
            k = metrics[j]
            b = v["digits-bf16", m, k]; t = v["torch-bf16", m, k]; d = v["digits", m, k]
            printf "| %s | %s | %s | %s | %s | %s | %s |\n", m, names[j], fmt(k, b), fmt(k, t), ratio(k, b, t),
                   fmt(k, d), ratio(k, b, d)
        }
    }
}' "$CSV"
echo
echo "ratio > 1: digits is faster (throughput digits/torch, latency torch/digits)." \
     "Raw numbers: $CSV (best round), $ALL (every round)"
