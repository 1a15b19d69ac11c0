#!/usr/bin/env bash
# seed_configs.sh — every seed row's config file (configs/seed*.yaml, the
# rows bench/reproduce.sh runs): it parses, its printed settings read back
# byte-identical, and it trains a few steps on a few hundred images with
# its own model, optimiser, normalisation and augmentation (batches of 16,
# ensembles cut to 2 members; the K-fold row trains its 5 folds). Also the
# settings a seed needs that the option table gained for them: the
# [-1,1] normalisation (pixels/255 mapped as Normalize((0.5,), (0.5,)))
# is what the trained model file records.
# Leaves out: the accuracies (bench/reproduce.sh measures them).
source "$(dirname "$0")/lib.bash"
require_data
D="$DIGITS"
ROOT=$PWD

n=0
for f in "$ROOT"/configs/seed[0-9][0-9][0-9]*.yaml; do
    name=$(basename "$f" .yaml)
    [[ $name == seed004-original ]] && continue # seed 004's own file: tests/e2e/config.sh
    "$D" train --config "$f" --print-config > "$TMP/$name.yaml" 2>"$TMP/err" || fail "$name: --print-config: $(cat "$TMP/err")"
    "$D" train --config "$TMP/$name.yaml" --print-config > "$TMP/$name.2.yaml" || fail "$name: printed settings refused"
    cmp -s "$TMP/$name.yaml" "$TMP/$name.2.yaml" || fail "$name: the printed settings print differently when read back"
    cut=()
    grep -q '^ensemble: [0-9]' "$f" && cut=(--ensemble 2)
    "$D" train --config "$f" "${cut[@]}" --batch-size 16 --data "$DATA" --limit 400 --max-steps 2 --test none --quiet --threads 2 \
        --out "$TMP/$name.safetensors" > "$TMP/$name.log" 2>&1 || fail "$name: training failed: $(tail -3 "$TMP/$name.log")"
    [[ -s $TMP/$name.safetensors ]] || fail "$name: no model file"
    n=$((n + 1))
done
[[ $n -ge 15 ]] || fail "only $n seed configs found"
echo "ok: $n seed configs parse, round-trip and train 2 steps"

# the seed 001 steps 2-7 and seed 004 normalisation: [-1,1], whatever the data
grep -qx 'normalize: signed' "$TMP/seed001-7.yaml" || fail "seed001-7 is not normalised to [-1,1]"
meta=$(head -c 8192 "$TMP/seed001-7.safetensors" | tr -d '\0')
[[ $meta == *'"digits.norm_mean":"0.5"'* && $meta == *'"digits.norm_std":"0.5"'* ]] ||
    fail "seed001-7's model file does not record mean 0.5 / std 0.5"
echo "ok: --normalize signed recorded as mean 0.5, std 0.5"
