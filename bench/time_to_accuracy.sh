#!/usr/bin/env bash
# time_to_accuracy.sh — the time-to-accuracy benchmark in one command: how
# many seconds of training until the MNIST test accuracy first reaches
# 99.0 % and 99.5 %, digits and PyTorch on the same recipes.
#
#   bench/time_to_accuracy.sh                 every recipe, digits + PyTorch x2
#   TTA_QUICK=1 bench/time_to_accuracy.sh     smoke run: each recipe for 1 epoch on 10 000 images
#
# Recipes (the quickest we found for each threshold; both thresholds are
# measured on every run):
#   sprint  models/cnn.spec (0.28 M MACs/image), 5 epochs, batch 128, Adam, one-cycle to lr 0.005
#   fast    models/fast.spec (4.8 M MACs/image, batch norm), 8 epochs, batch 128, Adam, one-cycle to
#           lr 0.01, on-the-fly rotation (+-8 degrees) and shift (+-8 %). Chosen on the validation
#           split (seeds 42 and 7, one thread, --test none): val accuracy 99.33 / 99.55 % and loss
#           0.0234 / 0.0155, against 99.27 / 99.45 % and 0.0271 / 0.0204 for the earlier recipe (6
#           epochs, no augmentation); 7 and 8 epochs without augmentation validated lower still
#   speed   models/fast.spec, 2 epochs, batch 128, Adam in Lookahead (k 5, alpha 0.5), one-cycle
#           to lr 0.02, the weights' moving average (--ema 0.99: validated, monitored and kept)
#           and label smoothing 0.1, no augmentation. Chosen on the validation split
#           (docs/RESULTS.md, "Time to accuracy"; in 0.12.0 it was Adam alone at lr 0.01)
#
# What is timed: training wall clock, data loading included (reading the IDX
# files, the split, normalisation statistics: "loaded in X s"; then every
# epoch's shuffle, batch gathering, uint8 -> float, forward, backward, step),
# evaluation excluded (validation after each epoch, and the test-set monitor
# passes). The test set is only measured, every TTA_EVERY steps and after each
# epoch (`digits train --monitor-test --monitor-every N`); a threshold's time
# is load seconds + train_seconds at the first measurement at or above it.
# The 10 % validation split alone picks the saved checkpoint (best validation
# loss); its test accuracy is reported too.
#
# Per recipe, three runs one after another: digits, PyTorch as shipped
# (bench/tta_torch.py: same spec, data, split, normalisation, batch size,
# optimiser, per-step learning rate, epochs, monitor points) and PyTorch with
# OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 (see bench/README.md).
# Every OPENBLAS_* variable of the calling shell is removed first.
#
# Environment knobs:
#   TTA_RECIPES      which recipes, in order (default "sprint fast speed")
#   TTA_MODEL, TTA_RECIPE   a recipe of your own instead ("custom"): zoo name
#                    or spec, and digits train flags
#   TTA_EVERY        monitor every N steps (default 50: 6 400 images at batch 128)
#   TTA_THRESHOLDS   accuracies (default "0.99 0.995"; quick: "0.97 0.99 0.995")
#   TTA_THREADS      threads for both sides (default 2)
#   TTA_TORCH        0: digits only
#   TTA_QUICK        1: each recipe on the first 10 000 images for 1 epoch
#   TTA_WAIT_IDLE    wait up to this many seconds before each run for the CPU
#                    to be idle (default 0: do not wait)
#   PYTHON           default /usr/bin/python3 (Debian's, with python3-torch)
#
# Writes bench/results/time_to_accuracy.csv (recipe,impl,model,metric,value)
# and the runs' logs bench/results/tta-RECIPE-IMPL.{log.csv,out}; prints a
# Markdown table whose ratios are torch/digits: > 1 means digits got there first.
set -euo pipefail

cd "$(dirname "$0")/.."
declare -A MODEL_OF=([sprint]=cnn [fast]=fast [speed]=fast)
declare -A FLAGS_OF=(
    [sprint]="--epochs 5 --batch-size 128 --optimizer adam --lr 0.005 --schedule onecycle --val-split 0.1 --seed 42"
    [fast]="--epochs 8 --batch-size 128 --optimizer adam --lr 0.01 --schedule onecycle --augment rotate=8,shift=0.08 --val-split 0.1 --seed 42"
    [speed]="--epochs 2 --batch-size 128 --optimizer adam --lr 0.02 --lookahead 5 --schedule onecycle --ema 0.99 --label-smoothing 0.1 --val-split 0.1 --seed 42")
RECIPES=${TTA_RECIPES:-sprint fast speed}
if [ -n "${TTA_MODEL:-}${TTA_RECIPE:-}" ]; then
    MODEL_OF[custom]=${TTA_MODEL:-fast}
    FLAGS_OF[custom]=${TTA_RECIPE:-${FLAGS_OF[fast]}}
    RECIPES=custom
fi
EVERY=${TTA_EVERY:-50}
THREADS=${TTA_THREADS:-2}
QUICK=${TTA_QUICK:-0}
WAIT_IDLE=${TTA_WAIT_IDLE:-0}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=bench/results
CSV=$OUT/time_to_accuracy.csv
TUNED_ENV=(OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1)
if [ "$QUICK" = 1 ]; then
    THRESHOLDS=${TTA_THRESHOLDS:-0.97 0.99 0.995}
else
    THRESHOLDS=${TTA_THRESHOLDS:-0.99 0.995}
fi
for r in $RECIPES; do
    [ -n "${MODEL_OF[$r]:-}" ] || { echo "time_to_accuracy.sh: unknown recipe '$r' (sprint, fast, speed)" >&2; exit 2; }
done

# as run.sh: "as shipped" means no OPENBLAS_* variable from the caller's shell
clean_env=(env)
for v in $(compgen -e | grep '^OPENBLAS_' || true); do clean_env+=(-u "$v"); done

# ---- CPU accounting (as run.sh): is anyone else using the machine? ------------
cpu_ticks() { # busy and total ticks of the whole machine since boot
    local a
    read -r -a a < <(grep '^cpu ' /proc/stat)
    echo "$((a[1] + a[2] + a[3] + a[6] + a[7] + a[8])) $((a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7] + a[8]))"
}
child_ticks() { # ticks of this script's finished children
    local f
    read -r -a f <<<"$(sed 's/^.*) //' /proc/$$/stat)"
    echo $((f[13] + f[14]))
}
cpu_busy() { # percentage of all cores busy over the next second
    local b0 t0 b1 t1
    read -r b0 t0 < <(cpu_ticks)
    sleep 1
    read -r b1 t1 < <(cpu_ticks)
    echo $((100 * (b1 - b0) / (t1 - t0 > 0 ? t1 - t0 : 1)))
}

echo "== build: make -j2 build/digits" >&2
build_log=$(mktemp)
if ! make -j2 build/digits >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    echo "time_to_accuracy.sh: the build failed (above)" >&2
    exit 1
fi
rm -f "$build_log"
mkdir -p "$OUT"
[ -f "$OUT/.gitignore" ] || printf '# benchmark results are machine-specific: never committed\n*\n!.gitignore\n' >"$OUT/.gitignore"

impls=(digits)
if [ "${TTA_TORCH:-1}" != 0 ]; then
    if "$PYTHON" -c 'import torch' 2>/dev/null; then
        impls+=(torch torch-tuned)
    else
        echo "time_to_accuracy.sh: PyTorch is not importable by $PYTHON (install Debian's python3-torch);" \
             "showing digits only" >&2
    fi
fi

# ---- runs ------------------------------------------------------------------------
flags_for() { # the digits train flags of recipe $1 (quick: later flags win)
    local f=${FLAGS_OF[$1]}
    [ "$QUICK" = 1 ] && f+=" --limit 10000 --epochs 1"
    echo "$f"
}
read -r busy0 total0 < <(cpu_ticks)
child0=$(child_ticks)
max_busy=0
for recipe in $RECIPES; do
    read -r -a recipe_flags <<<"$(flags_for "$recipe")"
    run_flags=(--model "${MODEL_OF[$recipe]}" "${recipe_flags[@]}" --threads "$THREADS" --monitor-test
               --monitor-every "$EVERY")
    for impl in "${impls[@]}"; do
        base=$OUT/tta-$recipe-$impl
        case $impl in
        digits) cmd=("${clean_env[@]}" build/digits train "${run_flags[@]}" --log "$base.log.csv" --out "$base.safetensors" --overwrite) ;;
        torch) cmd=("${clean_env[@]}" "$PYTHON" bench/tta_torch.py "${run_flags[@]}" --log "$base.log.csv") ;;
        torch-tuned) cmd=("${clean_env[@]}" "${TUNED_ENV[@]}" "$PYTHON" bench/tta_torch.py "${run_flags[@]}" --log "$base.log.csv") ;;
        esac
        busy=$(cpu_busy)
        waited=0
        while [ "$busy" -gt 20 ] && [ $waited -lt "$WAIT_IDLE" ]; do
            [ $waited = 0 ] && echo "time_to_accuracy.sh: other jobs keep ${busy}% of the CPU busy; waiting up to ${WAIT_IDLE}s" >&2
            sleep 4
            waited=$((waited + 5))
            busy=$(cpu_busy)
        done
        max_busy=$((busy > max_busy ? busy : max_busy))
        echo "== $recipe / $impl (CPU busy with other jobs just before: ${busy}%): ${cmd[*]}" >&2
        start=$(date +%s)
        if ! "${cmd[@]}" >"$base.out" 2>&1; then
            tail -5 "$base.out" >&2
            echo "time_to_accuracy.sh: the $recipe / $impl run failed (above; all of it in $base.out)" >&2
            exit 1
        fi
        echo "   $(($(date +%s) - start)) s wall (evaluation included); $(grep -E '^test accuracy' "$base.out" | cut -d' ' -f1-3)" >&2
    done
done
read -r busy1 total1 < <(cpu_ticks)
child1=$(child_ticks)
others=$(((busy1 - busy0) - (child1 - child0)))
others_pct=$((100 * (others > 0 ? others : 0) / (total1 - total0 > 0 ? total1 - total0 : 1)))

# ---- results: recipe,impl,model,metric,value ----------------------------------------
echo "recipe,impl,model,metric,value" >"$CSV"
for recipe in $RECIPES; do
    model_name=$(basename "${MODEL_OF[$recipe]}" .spec)
    for impl in "${impls[@]}"; do
        base=$OUT/tta-$recipe-$impl
        load=$(grep -o 'loaded in [0-9.]*s' "$base.out" | head -1 | grep -o '[0-9.]*' | head -1)
        final=$(sed -n 's/^test accuracy \([0-9.]*\).*/\1/p' "$base.out" | tail -1)
        awk -F, -v pre="$recipe,$impl,$model_name" -v load="${load:-0}" -v final="$final" -v thr="$THRESHOLDS" '
        NR == 1 {
            for (i = 1; i <= NF; i++) col[$i] = i
            if (!("monitor_acc" in col)) { print "no monitor_acc column in " FILENAME > "/dev/stderr"; exit 1 }
            n = split(thr, t, " ")
            next
        }
        {
            acc = $col["monitor_acc"] + 0; secs = $col["train_seconds"] + 0
            if (acc > best) best = acc
            for (i = 1; i <= n; i++)
                if (!(i in hit) && acc >= t[i] + 0) {
                    hit[i] = 1; at_s[i] = secs; at_step[i] = $col["step"]; at_ep[i] = $col["epoch"]
                }
            epochs = $col["epoch"]; last_s = secs; steps = $col["step"]
        }
        END {
            printf "%s,load_seconds,%s\n", pre, load
            for (i = 1; i <= n; i++) {
                k = sprintf("tta_%g", t[i] * 100)
                if (i in hit) {
                    printf "%s,%s_seconds,%.3f\n", pre, k, load + at_s[i]
                    printf "%s,%s_step,%d\n%s,%s_epoch,%d\n", pre, k, at_step[i], pre, k, at_ep[i]
                } else printf "%s,%s_seconds,\n", pre, k
            }
            printf "%s,best_monitor_acc,%.6f\n%s,epochs,%d\n%s,steps,%d\n", pre, best, pre, epochs, pre, steps
            printf "%s,train_seconds_total,%.3f\n%s,final_test_acc,%s\n", pre, last_s, pre, final
        }' "$base.log.csv" >>"$CSV"
    done
done

# ---- report ------------------------------------------------------------------------
echo "## Time to accuracy: digits vs PyTorch — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), nproc $(nproc); threads $THREADS"
if [ ${#impls[@]} -gt 1 ]; then
    echo "- PyTorch $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null);" \
         "torch = as shipped (no OPENBLAS_* variables), torch-tuned = ${TUNED_ENV[*]}"
fi
for recipe in $RECIPES; do
    echo "- recipe $recipe: model ${MODEL_OF[$recipe]}, $(flags_for "$recipe")"
done
prefix=""
[ "$QUICK" = 1 ] && prefix="TTA_QUICK=1 "
echo "- command: ${prefix}bench/time_to_accuracy.sh; each run: digits train --model M FLAGS --threads $THREADS" \
     "--monitor-test --monitor-every $EVERY, then $PYTHON bench/tta_torch.py with the same flags"
echo "- seconds = data loading + training until the first test measurement (every $EVERY steps and after" \
     "each epoch) at or above the threshold; evaluation excluded"
echo "- other jobs' share of the CPU during the runs: ${others_pct}% (at most ${max_busy}% just before a run)"
if [ "$others_pct" -ge 10 ] || [ "$max_busy" -gt 20 ]; then
    echo "- WARNING: other jobs were using the CPU; the seconds are noisy. Rerun on an idle machine" \
         "(TTA_WAIT_IDLE=600 waits for one)."
fi
echo
awk -F, -v recipes="$RECIPES" -v impls="${impls[*]}" -v thr="$THRESHOLDS" '
NR == 1 { next }
{ v[$1, $2, $4] = $5 }
function epochs(r, impl) { return v[r, impl, "epochs"] == 1 ? "1 epoch" : v[r, impl, "epochs"] " epochs" }
function cell(r, impl, k,    s) {
    s = v[r, impl, k "_seconds"]
    if (s != "") return sprintf("**%.1f s** (step %d, epoch %d)", s, v[r, impl, k "_step"], v[r, impl, k "_epoch"])
    return sprintf("not reached in %s, best %.2f %%", epochs(r, impl), 100 * v[r, impl, "best_monitor_acc"])
}
function ratio(r, impl, k,    d, t) {
    d = v[r, "digits", k "_seconds"]; t = v[r, impl, k "_seconds"]
    return (d == "" || t == "" || d == 0) ? "–" : sprintf("%.2f", t / d)
}
END {
    nr = split(recipes, rs, " "); ni = split(impls, im, " "); n = split(thr, t, " ")
    head = "| recipe | | digits"; rule = "|---|---|---"
    for (j = 2; j <= ni; j++) { head = head " | " im[j] " | ratio"; rule = rule "|---|---:" }
    print head " |"; print rule "|"
    for (q = 1; q <= nr; q++) {
        r = rs[q]
        for (i = 1; i <= n; i++) {
            k = sprintf("tta_%g", t[i] * 100)
            line = sprintf("| %s | test acc >= %g %% | %s", r, t[i] * 100, cell(r, "digits", k))
            for (j = 2; j <= ni; j++) line = line " | " cell(r, im[j], k) " | " ratio(r, im[j], k)
            print line " |"
        }
        line = "| " r " | whole run: load + training"
        for (j = 1; j <= ni; j++) {
            s[j] = v[r, im[j], "load_seconds"] + v[r, im[j], "train_seconds_total"]
            line = line sprintf(" | %.1f s (%s)", s[j], epochs(r, im[j]))
            if (j > 1) line = line (s[1] > 0 ? sprintf(" | %.2f", s[j] / s[1]) : " | –")
        }
        print line " |"
        line = "| " r " | test acc of the checkpoint chosen on validation"
        for (j = 1; j <= ni; j++) line = line sprintf(" | %.2f %%", 100 * v[r, im[j], "final_test_acc"]) (j > 1 ? " | –" : "")
        print line " |"
    }
}' "$CSV"
echo
echo "ratio = torch seconds / digits seconds: > 1 means digits got there first." \
     "Raw numbers: $CSV; logs: $OUT/tta-RECIPE-IMPL.{log.csv,out}"
