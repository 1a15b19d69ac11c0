#!/usr/bin/env bash
# isa_ab.sh — the portable build's kernel levels against the native build, in
# one run: build/bench/bench_models (make: -march=native) and
# build-portable/bench/bench_models (make PORTABLE=1) with its level chosen
# from cpuid (portable), then forced with DIGITS_ISA=avx2 and =generic.
# Training and inference images/s per model; the variants alternate within
# each model and round (a slow patch of a shared machine hits all alike), in
# reverse order every other round, and each figure keeps its best round. Also the sizes of both libdigits.so.
#
#   bench/isa_ab.sh [MODELS]        default lenet5,cnn-bn,kaggle-deep
#
# Knobs: BENCH_SECONDS (minimum timed seconds per figure, default 2),
# BENCH_REPEAT (rounds, default 3), BENCH_THREADS (default nproc), BENCH_BATCH
# (training batch, default 64). Prints a Markdown table (ratios to native);
# the raw lines go to bench/results/isa_ab.csv (variant,model,metric,value,
# every round). Leaves out latency (see bench/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${1:-lenet5,cnn-bn,kaggle-deep}
SECS=${BENCH_SECONDS:-2}
REPEAT=${BENCH_REPEAT:-3}
THREADS=${BENCH_THREADS:-$(nproc)}
BATCH=${BENCH_BATCH:-64}
CSV=bench/results/isa_ab.csv
mkdir -p bench/results
make -s -j2 build/bench/bench_models build/libdigits.so
make -s -j2 PORTABLE=1 build-portable/bench/bench_models build-portable/libdigits.so
unset DIGITS_ISA

VARIANTS=(native portable avx2 generic)
# run VARIANT MODEL: bench_models' CSV lines, the impl column set to VARIANT
run() {
    local bin=build-portable/bench/bench_models env=()
    case $1 in
        native) bin=build/bench/bench_models ;;
        avx2 | generic) env=(DIGITS_ISA="$1") ;;
    esac
    env "${env[@]}" "$bin" --models "$2" --batch "$BATCH" --threads "$THREADS" --seconds "$SECS" \
        --latency-calls 10 2>/dev/null |
        awk -F, -v v="$1" '$3 == "train_img_s" || $3 == "infer_img_s" { print v "," $2 "," $3 "," $4 }'
}
: > "$CSV"
for ((r = 1; r <= REPEAT; r++)); do
    # every other round in reverse (ABBA): a variant never always runs first
    # after a model switch, and a drift within a round favours none
    order=("${VARIANTS[@]}")
    ((r % 2)) || order=(generic avx2 portable native)
    for m in ${MODELS//,/ }; do
        for v in "${order[@]}"; do run "$v" "$m" >> "$CSV"; done
    done
done

level=$(build-portable/digits info models/pretrained/default.safetensors 2>/dev/null | sed -n 's/^kernels *//p')
echo "portable level chosen here: $level"
cpu=$(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1)
echo "CPU: $cpu, $THREADS threads, batch $BATCH, ${SECS} s per figure, best of $REPEAT rounds"
echo
echo "| model | metric | native | portable (avx512) | avx2 | generic |"
echo "|---|---|---:|---:|---:|---:|"
# best round per variant, model, metric; rows in the order first seen
awk -F, '{
    k = $2 SUBSEP $3 SUBSEP $1
    if (!(k in best) || $4 > best[k]) best[k] = $4
    if (!(($2 SUBSEP $3) in seen)) { seen[$2 SUBSEP $3] = 1; order[n++] = $2 SUBSEP $3 }
}
END {
    split("native portable avx2 generic", V, " ")
    for (i = 0; i < n; i++) {
        split(order[i], mk, SUBSEP)
        nat = best[order[i] SUBSEP "native"]
        line = "| " mk[1] " | " mk[2]
        for (j = 1; j <= 4; j++) {
            x = best[order[i] SUBSEP V[j]]
            line = line sprintf(j == 1 ? " | %.0f" : " | %.0f (%.0f %%)", x, nat > 0 ? 100 * x / nat : 0)
        }
        print line " |"
    }
}' "$CSV"
echo
for b in build build-portable; do
    text=$(size -A "$b/libdigits.so" | awk '$1 == ".text" { print $2 }')
    strip -o "$CSV.so" "$b/libdigits.so" && stripped=$(stat -c %s "$CSV.so") && rm -f "$CSV.so"
    echo "$b/libdigits.so: $(stat -L -c %s "$b/libdigits.so") bytes, $stripped stripped ($text of code)"
done
