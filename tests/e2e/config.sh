#!/usr/bin/env bash
# config.sh — `digits train --config FILE.yaml` and `--print-config`: the
# printed settings read back and print byte-identical; flags override the
# file; both key spellings (batch-size, batch_size); every file in configs/
# is accepted, seed 004's own config.yaml too (its keys mapped, the ignored
# ones named in one notice line); a short training takes its settings from
# a file; bad files (unknown key, wrong type or range, YAML syntax) and
# mistyped flags are usage errors (exit 2) that name the line and suggest
# the nearest key, and nothing is trained or overwritten.
source "$(dirname "$0")/lib.bash"
require_data
D="$DIGITS"
ROOT=$PWD
DATA_ABS=$(cd "$DATA" && pwd)

# ---- the round trip
"$D" train --print-config --model lenet5 --lr 0.01 --augment seed000 --optimizer sgd --nesterov \
    --out "$TMP/a \"b\" c.safetensors" > "$TMP/p1.yaml"
"$D" train --config "$TMP/p1.yaml" --print-config > "$TMP/p2.yaml"
cmp "$TMP/p1.yaml" "$TMP/p2.yaml" || fail "--print-config output read back through --config prints differently"
grep -qx 'model: "lenet5"' "$TMP/p1.yaml" && grep -qx 'lr: 0.01' "$TMP/p1.yaml" && grep -qx 'nesterov: true' "$TMP/p1.yaml" \
    || fail "printed settings lack the flags given: $(head -c 2000 "$TMP/p1.yaml")"
# every option is a key: one per flag but the command-line-only ones
keys=$(grep -c '^[a-z-]*: ' "$TMP/p1.yaml")
[[ $keys -ge 35 ]] || fail "only $keys keys printed"
echo "ok: --print-config -> --config -> --print-config is byte-identical ($keys keys)"
# a true set by the file is turned off by --no-NAME or --NAME=false
for off in --no-nesterov --nesterov=false; do
    "$D" train --config "$TMP/p1.yaml" "$off" --print-config | output_has -x 'nesterov: false' \
        || fail "$off did not turn off the file's nesterov: true"
done
expect_error 2 "unknown or incomplete flag '--no-lr'" -- "$D" train --no-lr

# ---- flags override the file; both key spellings
printf 'epochs: 4\nbatch_size: 16\nstep-size: 2\n' > "$TMP/c.yaml"
"$D" train --config "$TMP/c.yaml" --epochs 7 --print-config > "$TMP/c.out"
grep -qx 'epochs: 7' "$TMP/c.out" || fail "the flag did not override the file"
grep -qx 'batch-size: 16' "$TMP/c.out" && grep -qx 'step-size: 2' "$TMP/c.out" || fail "batch_size / step-size not read"
echo "ok: flags override the file; batch_size and batch-size both read"

# ---- configs/: every recipe, and seed 004's file as written
for f in "$ROOT"/configs/*.yaml; do
    "$D" train --config "$f" --print-config > "$TMP/r.yaml" 2>"$TMP/r.err" || fail "$f refused: $(cat "$TMP/r.err")"
done
"$D" train --config "$ROOT/configs/seed004-original.yaml" --print-config > "$TMP/s4.yaml" 2>"$TMP/s4.err"
for want in 'epochs: 10' 'batch-size: 64' 'lr: 0.001' 'weight-decay: 0.0001' 'patience: 5' 'data: "./data"' \
            'out-dir: "./models"' 'log: "training.log"'; do
    grep -qx "$want" "$TMP/s4.yaml" || fail "seed 004's config: '$want' not in the settings"
done
[[ $(wc -l < "$TMP/s4.err") -eq 1 ]] && grep -q 'ignored test_params.batch_size (.*), results_params.results_path (' "$TMP/s4.err" \
    || fail "seed 004's config: notice of ignored keys: $(cat "$TMP/s4.err")"
echo "ok: configs/*.yaml accepted; seed 004's config mapped ($(cat "$TMP/s4.err"))"

# ---- a training run from a file (tiny: 300 images, one epoch)
cat > "$TMP/run.yaml" <<YAML
model: mlp
data: "$DATA_ABS"
limit: 300
epochs: 1
batch-size: 32
test: none
quiet: true
seed: 5
YAML
"$D" train --config "$TMP/run.yaml" --out "$TMP/m.safetensors" > "$TMP/run.out"
grep -q "^saved $TMP/m.safetensors" "$TMP/run.out" || fail "training from a config: $(cat "$TMP/run.out")"
head -c 4000 "$TMP/m.safetensors" | grep -q '\\"batch_size\\":32' || fail "the model's train_config lacks the file's batch size"
head -c 4000 "$TMP/m.safetensors" | grep -q '\\"seed\\":5' || fail "the model's train_config lacks the file's seed"
echo "ok: a run takes its settings from the file (recorded in the model)"

# ---- bad files and flags: exit 2, the line, a suggestion; nothing trained or overwritten
cp "$TMP/m.safetensors" "$TMP/sentinel.safetensors"
bad() { # bad NAME 'file text' 'expected message'
    printf "$2" > "$TMP/$1.yaml"
    expect_error 2 "$3" -- "$D" train --config "$TMP/$1.yaml" --data "$DATA_ABS" --out "$TMP/sentinel.safetensors" --overwrite
}
bad unknown 'model: mlp\nepohcs: 3\n' "$TMP/unknown.yaml:2: unknown key 'epohcs' (did you mean 'epochs'?)"
bad range 'epochs: 0\n' "$TMP/range.yaml:1: 'epochs' must be an integer ≥ 1"
bad type '\nepochs: ten\n' "$TMP/type.yaml:2: 'epochs' must be an integer ≥ 1"
bad float 'lr: fast\n' "$TMP/float.yaml:1: 'lr' must be a number in 0..100"
bad choice 'optimizer: sgdd\n' "$TMP/choice.yaml:1: 'optimizer' must be one of sgd, adam, nadam, adamw"
bad syntax 'epochs: 3\nlr: "0.1\n' "$TMP/syntax.yaml:3:1: YAML syntax error: found unexpected end of stream"
bad tab 'epochs: 3\n\tlr: 2\n' "$TMP/tab.yaml:2:1: YAML syntax error"
bad twice 'epochs: 3\nepochs: 4\n' "$TMP/twice.yaml:2: 'epochs' is set twice (first on line 1)"
bad list 'epochs: [1, 2]\n' "$TMP/list.yaml:1: 'epochs' takes one value"
bad section 'train_params:\n  lerning_rate: 0.1\n' "$TMP/section.yaml:2: unknown key 'lerning_rate' in train_params (did you mean 'learning_rate'?)"
bad augment 'augment: spin=3\n' "$TMP/augment.yaml:1: 'augment': unknown key 'spin'"
expect_error 2 "unknown or incomplete flag '--epohcs' (did you mean '--epochs'?)" -- "$D" train --epohcs 3
expect_error 2 "unknown or incomplete flag '--batch_size' (did you mean '--batch-size'?)" -- "$D" train --batch_size 3
expect_error 2 "$TMP/none.yaml: No such file or directory" -- "$D" train --config "$TMP/none.yaml"
cmp -s "$TMP/m.safetensors" "$TMP/sentinel.safetensors" || fail "a refused config overwrote the model"
echo "ok: bad configs and flags refused (exit 2), nothing overwritten"

# ---- seed 004's file as written trains: ./data (its root_dir) holds mnist/, the
# model lands in ./models (its save_path), the CSV log in training.log
mkdir "$TMP/s4"
(cd "$TMP/s4" && mkdir data && ln -s "$DATA_ABS" data/mnist &&
 "$D" train --config "$ROOT/configs/seed004-original.yaml" --model mlp --limit 300 --epochs 1 --test none --quiet \
     > run.out 2> run.err) || fail "seed 004's config did not train: $(cat "$TMP/s4/run.err")"
grep -qx "saved ./models/mlp.safetensors" "$TMP/s4/run.out" && [[ -s $TMP/s4/training.log ]] \
    || fail "seed 004's config: $(cat "$TMP/s4/run.out" "$TMP/s4/run.err")"
grep -q "using ./data/mnist" "$TMP/s4/run.err" || fail "seed 004's config: no note on ./data/mnist"
echo "ok: seed 004's config.yaml as written trains into ./models/"
