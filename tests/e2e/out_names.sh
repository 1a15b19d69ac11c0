#!/usr/bin/env bash
# out_names.sh — `digits train` never loses a trained model: without --out
# each run gets a new name (runs/NAME.safetensors, then NAME-2, NAME-3, ...,
# ensembles NAME-ensembleN, -2, ...) and prints it; --out-dir moves them;
# --out onto an existing file is refused (exit 2, the file untouched) unless
# --overwrite is given; --resume writes to its own model file again.
source "$(dirname "$0")/lib.bash"
require_data
D="$DIGITS"
DATA_ABS=$(cd "$DATA" && pwd)
cd "$TMP"
tiny=(--model mlp --data "$DATA_ABS" --limit 300 --epochs 1 --batch-size 32 --test none --quiet)

# ---- numbered names in runs/
"$D" train "${tiny[@]}" > one.out
grep -qx "saved runs/mlp.safetensors" one.out || fail "first run: $(cat one.out)"
cp runs/mlp.safetensors first.safetensors
"$D" train "${tiny[@]}" --seed 2 > two.out
grep -qx "runs/mlp.safetensors exists: this run writes runs/mlp-2.safetensors" two.out || fail "second run: $(cat two.out)"
grep -qx "saved runs/mlp-2.safetensors" two.out || fail "second run: $(cat two.out)"
"$D" train "${tiny[@]}" --seed 3 > three.out
grep -qx "saved runs/mlp-3.safetensors" three.out || fail "third run: $(cat three.out)"
cmp -s first.safetensors runs/mlp.safetensors || fail "a later run changed runs/mlp.safetensors"
"$D" train "${tiny[@]}" --out-dir "my models" > dir.out
grep -qx "saved my models/mlp.safetensors" dir.out || fail "--out-dir: $(cat dir.out)"
echo "ok: runs/mlp.safetensors, then -2, -3; the first left alone; --out-dir"

# ---- ensembles: their own numbered names
"$D" train "${tiny[@]}" --ensemble 2 > e1.out
"$D" train "${tiny[@]}" --ensemble 2 > e2.out
grep -qx "saved runs/mlp-ensemble2.safetensors" e1.out && grep -qx "saved runs/mlp-ensemble2-2.safetensors" e2.out \
    || fail "ensemble names: $(cat e1.out e2.out)"
echo "ok: runs/mlp-ensemble2.safetensors, then -2"

# ---- --out onto an existing file
expect_error 2 "$TMP/first.safetensors exists; add --overwrite to replace it, or pick another --out name" -- \
    "$D" train "${tiny[@]}" --out "$TMP/first.safetensors"
cmp -s first.safetensors runs/mlp.safetensors || fail "a refused --out changed the file"
expect_error 2 "exists; add --overwrite" -- "$D" train "${tiny[@]}" --ensemble 2 --out first.safetensors
"$D" train "${tiny[@]}" --seed 9 --out first.safetensors --overwrite > ow.out
grep -qx "saved first.safetensors" ow.out || fail "--overwrite: $(cat ow.out)"
cmp -s first.safetensors runs/mlp.safetensors && fail "--overwrite did not replace the file"
echo "ok: --out onto an existing file refused without --overwrite, replaced with it"

# ---- --resume: the run's own model file, no --overwrite needed
"$D" train "${tiny[@]}" --epochs 2 --out ck.safetensors --checkpoint-dir ck > ck.out
"$D" train --resume ck --quiet > resumed.out || fail "--resume of a finished run: $(cat resumed.out)"
grep -qx "saved ck.safetensors" resumed.out || fail "--resume: $(cat resumed.out)"
echo "ok: --resume writes its own model file again"

# ---- the SVM baseline follows the same rule
svm=(--model svm --data "$DATA_ABS" --limit 300 --components 20 --test none --quiet)
"$D" train "${svm[@]}" && "$D" train "${svm[@]}" > svm2.out
[[ -s runs/svm.safetensors && -s runs/svm-2.safetensors ]] || fail "svm names: $(ls runs)"
expect_error 2 "runs/svm.safetensors exists; add --overwrite" -- "$D" train "${svm[@]}" --out runs/svm.safetensors
"$D" train "${svm[@]}" --out runs/svm.safetensors --overwrite || fail "svm --overwrite refused"
echo "ok: train --model svm: runs/svm.safetensors, then -2; --out needs --overwrite"
