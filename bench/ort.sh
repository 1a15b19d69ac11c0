#!/usr/bin/env bash
# ort.sh — digits against ONNX Runtime in one command: both called from C
# (build/bench/bench_ort, ONNX Runtime through its C API with dlopen; each
# engine measured in a child process of its own, alternating), on the same
# models, printing a Markdown table.
#
#   bench/ort.sh [MODELS]      default lenet5,cnn,cnn-bn,kaggle-deep,twobranch
#
# Steps: builds build/digits and the benchmarks; installs ONNX Runtime 1.30
# (npm onnxruntime-node, tools/fetch_onnxruntime.sh) if it is missing; makes
# every model with 20 Adam steps on 2000 MNIST training images (seed 42:
# weights that give real, distinct predictions; speed does not depend on
# them) and exports it with `digits export --format onnx`; runs bench_ort.
#
# Environment knobs:
#   BENCH_ROUNDS         rounds; the table keeps each figure's best round (default 2)
#   BENCH_SECONDS        minimum timed seconds per throughput figure (default 1)
#   BENCH_THREADS        digits threads = ORT intra-op threads (default 2)
#   BENCH_LATENCY_CALLS  one-image calls per latency figure (default 1000)
#   ORT_LIB              libonnxruntime.so.1 to use (default: the npm package's)
#   ORT_MODELS_DIR       keep the trained and exported models in this folder and
#                        reuse the ones already there (default: a temporary folder)
#
# Writes bench/results/ort-latest-all.csv (impl,model,metric,round,value;
# round 0: the prediction check) and prints the table. Ratios: digits/ORT for
# throughput, ORT/digits for latency, so > 1 means digits is faster.
set -euo pipefail

cd "$(dirname "$0")/.."
MODELS=${1:-lenet5,cnn,cnn-bn,kaggle-deep,twobranch}
ROUNDS=${BENCH_ROUNDS:-2}
SECS=${BENCH_SECONDS:-1}
THREADS=${BENCH_THREADS:-2}
CALLS=${BENCH_LATENCY_CALLS:-1000}
ORT_LIB=${ORT_LIB:-tests/onnx/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1}
ALL=bench/results/ort-latest-all.csv

make -s -j2 build/digits bench >&2
[[ -f "$ORT_LIB" ]] || bash tools/fetch_onnxruntime.sh >&2

if [[ -n "${ORT_MODELS_DIR:-}" ]]; then
    dir=$ORT_MODELS_DIR
    mkdir -p "$dir"
else
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi
IFS=, read -r -a names <<<"$MODELS"
for m in "${names[@]}"; do
    [[ -n "${ORT_MODELS_DIR:-}" && -f "$dir/$m.onnx" ]] && continue
    echo "ort.sh: $m: 20 training steps, export to ONNX" >&2
    build/digits train --model "$m" --epochs 1 --limit 2000 --max-steps 20 --seed 42 \
        --out "$dir/$m.safetensors" >/dev/null
    build/digits export --format onnx --model "$dir/$m.safetensors" --out "$dir/$m.onnx" >/dev/null
done

build/bench/bench_ort --ort "$ORT_LIB" --dir "$dir" --models "$MODELS" --rounds "$ROUNDS" \
    --seconds "$SECS" --threads "$THREADS" --latency-calls "$CALLS" >"$ALL"

echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs;" \
    "ONNX Runtime $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "${ORT_LIB%/bin/*}/package.json" 2>/dev/null | head -1) ($ORT_LIB);" \
    "bench/ort.sh $MODELS, rounds $ROUNDS, threads $THREADS, >= $SECS s per throughput figure, $CALLS latency calls"
echo
# The table: each figure's best round (highest img/s, lowest µs).
awk -F, -v models="$MODELS" '
    $4 == 0 { chk[$1, $2, $3] = $5; next }
    {
        k = $1 SUBSEP $2 SUBSEP $3
        if (!(k in best) || ($3 == "infer_img_s" ? $5 > best[k] : $5 < best[k])) best[k] = $5
    }
    function f(impl, m, metric, fmt) { k = impl SUBSEP m SUBSEP metric; return (k in best) ? sprintf(fmt, best[k]) : "—" }
    function r(a, b) { return (a > 0 && b > 0) ? sprintf("%.2f×", a / b) : "—" }
    END {
        print "| model | batch-1000 img/s: digits fp32 / digits bf16 / ORT fp32 | fp32 digits/ORT | one image median µs: digits fp32 / bf16 / ORT | fp32 ORT/digits | one image p99 µs: digits fp32 / bf16 / ORT | predictions: fp32 max abs dp, bf16 differ |"
        print "|---|---|---|---|---|---|---|"
        n = split(models, ms, ",")
        for (i = 1; i <= n; i++) {
            m = ms[i]
            t_d = best["digits", m, "infer_img_s"]; t_o = best["ort", m, "infer_img_s"]
            l_d = best["digits", m, "latency_median_us"]; l_o = best["ort", m, "latency_median_us"]
            printf "| %s | %s / %s / %s | %s | %s / %s / %s | %s | %s / %s / %s | %.2g, %s/1000 |\n", m,
                f("digits", m, "infer_img_s", "%.0f"), f("digits-bf16", m, "infer_img_s", "%.0f"),
                f("ort", m, "infer_img_s", "%.0f"), r(t_d, t_o),
                f("digits", m, "latency_median_us", "%.1f"), f("digits-bf16", m, "latency_median_us", "%.1f"),
                f("ort", m, "latency_median_us", "%.1f"), r(l_o, l_d),
                f("digits", m, "latency_p99_us", "%.1f"), f("digits-bf16", m, "latency_p99_us", "%.1f"),
                f("ort", m, "latency_p99_us", "%.1f"),
                chk["digits", m, "check_max_dp"], (("digits-bf16", m, "check_pred_differ") in chk) ? chk["digits-bf16", m, "check_pred_differ"] : "—"
        }
    }' "$ALL"
