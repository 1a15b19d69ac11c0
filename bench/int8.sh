#!/usr/bin/env bash
# int8.sh — int8 inference in one run: digits int8 (build/bench/bench_int8:
# the AVX512-VNNI kernels, or the plain-C ones where the CPU has no VNNI),
# digits fp32 (the same bench_int8 run, the float file), digits bf16
# (build/bench/bench_models --precision bf16), PyTorch's own int8 path
# (bench/bench_torch_int8.py: static post-training quantization,
# torch.ao.quantization) and ONNX Runtime's own int8 path (the same int8
# file through `digits export --format onnx`: QLinearConv..., run by
# build/bench/bench_ort --int8 in a child process, ORT_ENABLE_ALL, the
# same threads as intra-op threads) on the same networks, rounds alternating
# between the five, each figure keeping its best round.
#
#   bench/int8.sh [MODELS]            default lenet5,cnn-bn,kaggle-deep
#
# Environment knobs:
#   INT8_SECONDS   minimum timed seconds per throughput figure (default 1)
#   INT8_CALLS     one-image calls per latency figure (default 300)
#   INT8_ROUNDS    rounds (default 3)
#   INT8_THREADS   threads for every side (default: nproc)
#   TORCH_ENGINE   PyTorch's quantized engine (default onednn: on this
#                  machine's Debian python3-torch 1.13 it ran cnn-bn ~8x and
#                  kaggle-deep ~4x faster than qnnpack; fbgemm/x86 are not
#                  built in)
#   PYTHON         default /usr/bin/python3 (Debian's, with python3-torch)
#   ORT_LIB        ONNX Runtime's libonnxruntime.so.1 (default: the npm
#                  package's that tools/fetch_onnxruntime.sh installs); when
#                  it is missing the ONNX Runtime column says so (—)
#   INT8_ISA       vnni: both sides without AMX tiles, as on a CPU that has
#                  AVX512-VNNI but no AMX (AMD Zen 4/5): bench_int8's int8-vnni
#                  figures for digits and ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI for PyTorch's
#                  oneDNN (default: each side's best kernels for this CPU);
#                  ONNX Runtime keeps the kernels its MLAS picks

#   INT8_BIN       the bench_int8 binary (default build/bench/bench_int8; e.g.
#                  a copy built from another commit, for a before/after
#                  comparison in one time window)
#   INT8_APPEND    1: add to bench/results/int8.csv instead of starting it
#                  afresh (one model per run keeps each run short; the table
#                  then covers every model in the file)
#
# The weights are random (a 1-step training, quantized on 200 images): speed
# does not depend on them. Writes bench/results/int8.csv (every round) and
# prints a Markdown table; ratios are int8 over the other side for
# throughput and the other side over int8 for latency, so > 1 means digits
# int8 is faster. Leaves out on purpose: accuracy (docs/RESULTS.md, int8).
set -euo pipefail

cd "$(dirname "$0")/.."
MODELS=${1:-lenet5,cnn-bn,kaggle-deep}
SECS=${INT8_SECONDS:-1}
CALLS=${INT8_CALLS:-300}
ROUNDS=${INT8_ROUNDS:-3}
THREADS=${INT8_THREADS:-$(nproc)}
ENGINE=${TORCH_ENGINE:-onednn}
PYTHON=${PYTHON:-/usr/bin/python3}
ORT_LIB=${ORT_LIB:-tests/onnx/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1}
CSV=bench/results/int8.csv
BIN=${INT8_BIN:-build/bench/bench_int8}
VNNI_ARGS=() VNNI_ROWS=cat TORCH_ENV=()
only_vnni() { grep -v '^int8,' | sed 's/^int8-vnni,/int8,/'; }
if [[ ${INT8_ISA:-} == vnni ]]; then
    VNNI_ARGS=(--vnni) VNNI_ROWS=only_vnni
    TORCH_ENV=(ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI DNNL_MAX_CPU_ISA=AVX512_CORE_VNNI)
elif [[ -n ${INT8_ISA:-} ]]; then
    echo "int8.sh: INT8_ISA must be vnni or unset" >&2
    exit 2
fi

make -s build/digits build/bench/bench_int8 build/bench/bench_models build/bench/bench_ort >&2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p bench/results
[[ ${INT8_APPEND:-0} == 1 ]] || : > "$CSV"

have_ort=0
[[ -f "$ORT_LIB" ]] && have_ort=1
[[ $have_ort == 1 ]] || echo "int8.sh: no ONNX Runtime at $ORT_LIB (bash tools/fetch_onnxruntime.sh): no ORT int8 column" >&2

# one float file and its int8 copy per model (random weights), the int8 one also as ONNX
for m in ${MODELS//,/ }; do
    build/digits train --model "$m" --data data/mnist --limit 256 --max-steps 1 --batch-size 64 --val-split 0 \
        --test none --threads "$THREADS" --quiet --out "$TMP/$m.safetensors" >/dev/null
    build/digits quantize --model "$TMP/$m.safetensors" --data data/mnist --calib 200 \
        --out "$TMP/$m-int8.safetensors" >/dev/null
    [[ $have_ort == 0 ]] ||
        build/digits export --format onnx --model "$TMP/$m-int8.safetensors" --out "$TMP/$m-int8.onnx" >/dev/null
done

have_torch=0
"$PYTHON" -c 'import torch' 2>/dev/null && have_torch=1
[[ $have_torch == 1 ]] || echo "int8.sh: no PyTorch for $PYTHON: digits columns only" >&2
has_bf16=1
grep -qw avx512_bf16 /proc/cpuinfo || has_bf16=0

for ((r = 1; r <= ROUNDS; r++)); do
    for m in ${MODELS//,/ }; do
        echo "round $r/$ROUNDS: $m" >&2
        "$BIN" "${VNNI_ARGS[@]}" --rounds 1 --seconds "$SECS" --calls "$CALLS" --threads "$THREADS" \
            "$TMP/$m.safetensors" "$TMP/$m-int8.safetensors" 2>/dev/null |
            sed "s/^\([a-z0-9-]*\),[^,]*,/\1,$m,/" | $VNNI_ROWS >> "$CSV"
        if [[ $has_bf16 == 1 ]]; then
            build/bench/bench_models --models "$m" --precision bf16 --threads "$THREADS" --seconds "$SECS" \
                --latency-calls "$CALLS" 2>/dev/null | grep -E ',(infer_img_s|latency_median_us),' |
                sed 's/^digits,/bf16,/' >> "$CSV"
        fi
        if [[ $have_torch == 1 ]]; then
            env "${TORCH_ENV[@]}" "$PYTHON" bench/bench_torch_int8.py --models "$m" --engines "$ENGINE" --threads "$THREADS" \
                --seconds "$SECS" --latency-calls "$CALLS" 2>/dev/null |
                sed "s/^torch-int8-$ENGINE,/torch-int8,/" >> "$CSV"
        fi
        if [[ $have_ort == 1 ]]; then
            build/bench/bench_ort --int8 --ort "$ORT_LIB" --dir "$TMP" --models "$m" --rounds 1 --threads "$THREADS" \
                --seconds "$SECS" --latency-calls "$CALLS" 2>/dev/null |
                awk -F, '$3 == "infer_img_s" || $3 == "latency_median_us" { print $1 "," $2 "," $3 "," $5 }' >> "$CSV"
        fi
    done
done

# the table: best round per figure (highest throughput, lowest latency)
awk -F, -v engine="$ENGINE" '
    { k = $1 SUBSEP $2 SUBSEP $3
      if (!(k in v) || ($3 == "infer_img_s" ? $4 > v[k] : $4 < v[k])) v[k] = $4
      if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
    function cell(impl, m, metric) { return ((impl SUBSEP m SUBSEP metric) in v) ? v[impl, m, metric] : "" }
    function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "—" : sprintf("%.2f×", a / b) }
    function fmt(v, f) { return v == "" ? "—" : sprintf(f, v) }
    END {
        print "| model | digits int8 img/s | fp32 | bf16 | PyTorch int8 (" engine ") | ORT int8 | int8/fp32 | int8/bf16 | int8/PyTorch int8 | int8/ORT int8 |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= n; i++) {
            m = order[i]; q = cell("int8", m, "infer_img_s"); f = cell("fp32", m, "infer_img_s")
            b = cell("bf16", m, "infer_img_s"); t = cell("torch-int8", m, "infer_img_s"); o = cell("ort-int8", m, "infer_img_s")
            printf "| %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", m, q, f, fmt(b, "%.0f"), fmt(t, "%.0f"),
                fmt(o, "%.0f"), ratio(q, f), ratio(q, b), ratio(q, t), ratio(q, o)
        }
        print ""
        print "| model | digits int8 latency µs | fp32 | bf16 | PyTorch int8 | ORT int8 | fp32/int8 | bf16/int8 | PyTorch/int8 | ORT int8/int8 |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= n; i++) {
            m = order[i]; q = cell("int8", m, "latency_median_us"); f = cell("fp32", m, "latency_median_us")
            b = cell("bf16", m, "latency_median_us"); t = cell("torch-int8", m, "latency_median_us")
            o = cell("ort-int8", m, "latency_median_us")
            printf "| %s | %.1f | %.1f | %s | %s | %s | %s | %s | %s | %s |\n", m, q, f, fmt(b, "%.1f"), fmt(t, "%.1f"),
                fmt(o, "%.1f"), ratio(f, q), ratio(b, q), ratio(t, q), ratio(o, q)
        }
    }' "$CSV"
