#!/usr/bin/env bash
# monitor.sh — `digits train --monitor`: the log gains step,train_seconds,
# monitor_acc (one row per --monitor-every steps and one per epoch), and
# monitoring changes nothing: same seed with and without it gives the same
# trained weights and the same validation losses. The net has batch norm and
# dropout, so the check covers running statistics and the dropout RNG stream.
source "$(dirname "$0")/lib.bash"
require_data
cat > "$TMP/tiny.spec" <<'EOF'
input 1x28x28
conv2d out=4 kernel=3 pad=1
batchnorm
relu
maxpool size=2
dropout2d p=0.1
flatten
linear out=10
EOF
"$DIGITS" convert --in "$DATA" --split test --limit 300 --out "$TMP/mon" >/dev/null
common=(train --model "$TMP/tiny.spec" --data "$DATA" --limit 1200 --epochs 2 --batch-size 32 --lr 0.01
        --schedule onecycle --val-split 0.2 --test none --seed 5 --threads 2 --quiet)
"$DIGITS" "${common[@]}" --log "$TMP/plain.csv" --out "$TMP/plain.safetensors" >/dev/null
"$DIGITS" "${common[@]}" --monitor "$TMP/mon" --monitor-every 7 --log "$TMP/mon.csv" \
    --out "$TMP/mon.safetensors" >/dev/null

# the tensors of a safetensors file: what follows the 8-byte header length and
# the JSON header (whose metadata holds run times, so whole files differ)
tensors() { local n; n=$(od -An -t u8 -N8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }
cmp -s <(tensors "$TMP/plain.safetensors") <(tensors "$TMP/mon.safetensors") ||
    fail "monitoring changed the trained weights"

[[ $(head -1 "$TMP/plain.csv") == "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds" ]] ||
    fail "log without --monitor changed its columns: $(head -1 "$TMP/plain.csv")"
[[ $(head -1 "$TMP/mon.csv") == "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,step,train_seconds,monitor_acc" ]] ||
    fail "monitor columns missing: $(head -1 "$TMP/mon.csv")"
# 960 training images / 32 = 30 steps an epoch: mid-epoch rows at steps
# 7 14 21 28 | 35 42 49 56, epoch rows at 30 and 60
steps=$(tail -n +2 "$TMP/mon.csv" | cut -d, -f8 | tr '\n' ' ')
[[ $steps == "7 14 21 28 30 35 42 49 56 60 " ]] || fail "monitor steps: $steps"
awk -F, 'NR > 1 { if ($9 < prev || $10 < 0 || $10 > 1) exit 1; prev = $9 }' "$TMP/mon.csv" ||
    fail "train_seconds must not decrease and monitor_acc must lie in [0,1]"
# epoch rows: the same validation numbers as without the monitor
diff <(tail -n +2 "$TMP/plain.csv" | cut -d, -f4,5) <(awk -F, '$4 != "nan"' "$TMP/mon.csv" | tail -n +2 | cut -d, -f4,5) ||
    fail "monitoring changed the validation losses"

expect_error 2 "--monitor-every needs" -- "$DIGITS" train --monitor-every 5
expect_error 2 "no --test set" -- "$DIGITS" train --data "$DATA" --limit 100 --test none --monitor-test
