#!/usr/bin/env bash
# reproduce.sh — bench/reproduce.sh end to end in its QUICK smoke mode (a few
# steps per run, the accuracies mean nothing): a single-model row and an
# --ensemble row whose two members train as PARALLEL=2 processes, then are
# joined. Checks the table's rows, that the members trained seeds 1 and 2
# without looking at the test set, that the joined file holds both with the
# row's vote, and that a stopped row goes on where it stopped: kept members are not retrained,
# MAX_NEW=0 trains nothing and writes no row, and a member stopped after its
# last checkpoint but before its file was saved goes on from the checkpoint
# to the same weights; a --kfold row (one process) goes on with --resume.
source "$(dirname "$0")/lib.bash"
require_data
out=$TMP/repro
run_repro() { # ROWS [VAR=value...]: one QUICK run into $out, its status; stderr in $TMP/stderr
    local rows=$1; shift
    env SKIP_BUILD=1 DIGITS="$DIGITS" DATA="$DATA" REPRO_DIR="$out" QUICK=1 QUICK_STEPS=8 SEEDS_QUICK=1 \
        PARALLEL=2 THREADS=1 ROWS="$rows" "$@" bash bench/reproduce.sh >"$TMP/stdout" 2>"$TMP/stderr"
}
repro() { run_repro "$@" || fail "reproduce.sh failed: $(tail -3 "$TMP/stderr")"; }
m1=$out/seed000-4.m1.safetensors m2=$out/seed000-4.m2.safetensors
repro seed001-7,seed000-4
table=$out/reproduce.md
[[ -f $table ]] || fail "no table in $out"
grep -q 'PARALLEL=2 THREADS=1 ROWS=seed001-7,seed000-4 bench/reproduce.sh' "$table" ||
    fail "the table's command line lacks the knobs: $(grep Command "$table")"
# | row | configuration | accuracy | runs | time | seed's figure |
row() { grep "^| $1 |" "$table" || fail "no $1 row in: $(cat "$table")"; }
acc='[0-9]+\.[0-9]{2} %'
row seed001-7 | grep -Eq "\| $acc \| 1 seeds \|" || fail "seed001-7 row: $(row seed001-7)"
row seed000-4 | grep -Eq "\| $acc \| 1 run, 2 members \| [0-9.]+ s each, 2 at a time \|" ||
    fail "ensemble row: $(row seed000-4)"
for k in 1 2; do
    grep -q "member $k of 2: digits train .* --seed $k --threads 1\$" "$TMP/stderr" ||
        fail "member $k is not seed $k on one of the two workers' threads: $(cat "$TMP/stderr")"
done
! grep -q '^test accuracy' "$out"/*.m[12].log || fail "a member evaluated the test set"
joined=$out/seed000-4.safetensors
members=$("$DIGITS" ensemble --list "$joined" | wc -l)
[[ $members -eq 2 ]] || fail "the joined ensemble has $members members, expected 2"
# joined with the row's vote (configs/seed000-4.yaml: vote: logits), not the default
info=$("$DIGITS" info "$joined")
output_has "vote logits" <<<"$info" || fail "the joined ensemble's vote: $(grep -i vote <<<"$info")"
"$DIGITS" ensemble --out "$TMP/m0.safetensors" --pick 0 "$joined" >/dev/null
"$DIGITS" ensemble --out "$TMP/m1.safetensors" --pick 1 "$joined" >/dev/null
! cmp -s <(tensor_data "$TMP/m0.safetensors") <(tensor_data "$TMP/m1.safetensors") || fail "both members have the same weights"
echo "ok: $(row seed000-4)"
# the single run (checkpointed) names the test set it was scored on
grep -q "^test accuracy .* on 1000 images from $out/test1k\$" "$out/seed001-7-s1.log" ||
    fail "the test line does not name the test set: $(grep '^test accuracy' "$out/seed001-7-s1.log")"

[[ ! -e ${m1%.safetensors}.ckpt && ! -e ${m2%.safetensors}.ckpt ]] || fail "a saved member kept its checkpoints"

# a row stopped after member 1: MAX_NEW=0 trains nothing and writes no row ...
cp "$m2" "$TMP/m2-first.safetensors"
rm "$m2" "$joined"
cp "$m1" "$TMP/m1-before.safetensors"
repro seed000-4 MAX_NEW=0
grep -q '1 of 2 members trained; run the row again' "$TMP/stderr" || fail "MAX_NEW=0: $(cat "$TMP/stderr")"
[[ ! -f $m2 && ! -f $joined ]] || fail "MAX_NEW=0 trained or joined"
! grep -q '^| seed000-4 |' "$table" || fail "an incomplete row is in the table"
# ... and the next run keeps member 1 and trains member 2 only
repro seed000-4
grep -q 'member 1 of 2: kept' "$TMP/stderr" || fail "member 1 not kept: $(cat "$TMP/stderr")"
! grep -q 'member 1 of 2: digits train' "$TMP/stderr" || fail "member 1 retrained"
cmp -s "$m1" "$TMP/m1-before.safetensors" || fail "member 1's file changed"
[[ -f $m2 ]] || fail "member 2 not trained"
# the one member left trains on both workers' threads (PARALLEL=2 x THREADS=1)
grep -q 'member 2 of 2: digits train .* --seed 2 --threads 2$' "$TMP/stderr" ||
    fail "the last member did not get the idle worker's thread: $(cat "$TMP/stderr")"
row seed000-4 | grep -Eq "\| 1 run, 2 members \|" || fail "resumed row: $(row seed000-4)"
echo "ok: resumed $(row seed000-4)"

# a member that fails (digits exits 1, not from a signal): the row stops
# and says so
printf '%s\n' '#!/usr/bin/env bash' "[[ \" \$* \" == *\" --seed 2 \"* ]] && exit 1" \
    "exec \"$DIGITS\" \"\$@\"" > "$TMP/fails"
chmod +x "$TMP/fails"
rm "$m2" "$joined"
run_repro seed000-4 DIGITS="$TMP/fails" PARALLEL=1 && fail "reproduce.sh went on past a member that failed"
grep -q 'member 2 failed; see' "$TMP/stderr" || fail "no word of member 2's failure: $(cat "$TMP/stderr")"
grep -q 'seed000-4: a member failed' "$TMP/stderr" || fail "the row's failure: $(cat "$TMP/stderr")"

# a member killed after its last checkpoint, its best epoch so far saved:
# this digits trains member 2 to the end, then "dies" before the script
# can call the member done
printf '%s\n' '#!/usr/bin/env bash' \
    "\"$DIGITS\" \"\$@\" || exit" \
    "[[ \" \$* \" == *\" --seed 2 \"* ]] && exit 137" \
    'exit 0' > "$TMP/dies"
printf '%s\n' '#!/usr/bin/env bash' "\"$DIGITS\" \"\$@\" || exit" "[[ \" \$* \" == *seed003.yaml* ]] && exit 137" \
    'exit 0' > "$TMP/dies-kfold"
chmod +x "$TMP/dies" "$TMP/dies-kfold"
# (one worker of one thread, as member 2 first trained: the same thread count
# gives the same sums)
run_repro seed000-4 DIGITS="$TMP/dies" PARALLEL=1 &&
    fail "reproduce.sh went on past a member that died: $(cat "$TMP/stderr")"
grep -q 'member 2 stopped by a signal; run the row again' "$TMP/stderr" ||
    fail "no word of member 2's stop: $(cat "$TMP/stderr")"
grep -q 'seed000-4: stopped by a signal' "$TMP/stderr" || fail "the row's stop: $(cat "$TMP/stderr")"
[[ -f ${m2%.safetensors}.ckpt/latest ]] || fail "the dead member left no checkpoint"
[[ -f ${m2%.safetensors}.training.safetensors && ! -f $m2 ]] || fail "the dead member's saved epoch passes for a whole member"
repro seed000-4 PARALLEL=1
grep -q 'member 2 of 2: resumed from' "$TMP/stderr" || fail "member 2 not resumed: $(cat "$TMP/stderr")"
cmp -s <(tensor_data "$m2") <(tensor_data "$TMP/m2-first.safetensors") || fail "the resumed member 2 differs from the first one"
[[ ! -e ${m2%.safetensors}.ckpt && ! -e ${m2%.safetensors}.training.safetensors ]] ||
    fail "member 2's checkpoints or training file outlived its file"
row seed000-4 | grep -Eq "\| 1 run, 2 members \|" || fail "row after the resume: $(row seed000-4)"
echo "ok: member 2 resumed from its checkpoint to the same weights"

# a one-process ensemble row (--kfold) that "dies" once its run has ended
# (this digits exits 137 after a --kfold run, as if killed before the end):
# the next run resumes it from NAME.ckpt/ (every member kept), then removes it
kf=$out/seed003
run_repro seed003 DIGITS="$TMP/dies-kfold" LONG_EPOCHS=1 &&
    fail "reproduce.sh went on past a kfold run that died: $(cat "$TMP/stderr")"
[[ -f $kf.ckpt/ensemble.json ]] || fail "the dead kfold run left no checkpoint folder"
cp "$kf.safetensors" "$TMP/kf-first.safetensors"
repro seed003 LONG_EPOCHS=1
grep -q "resumed from $kf.ckpt" "$TMP/stderr" || fail "kfold row not resumed: $(cat "$TMP/stderr")"
[[ $(grep -c "^member [1-5]/5: kept from" "$kf.log") -eq 5 ]] || fail "kfold members not kept: $(cat "$kf.log")"
cmp -s <(tensor_data "$kf.safetensors") <(tensor_data "$TMP/kf-first.safetensors") || fail "the resumed kfold row changed its members"
[[ ! -e $kf.ckpt ]] || fail "the kfold row's checkpoints outlived it"
row seed003 | grep -Eq "\| $acc \| 1 run, 5 members \|" || fail "kfold row: $(row seed003)"
echo "ok: a stopped kfold row resumed: $(row seed003)"

# a single-model row whose run "dies" once it has ended (this digits exits
# 137 after the seed001-7 run, as if killed before the script could call it
# done): its weights so far are no finished run; the next run resumes it from
# NAME-s1.ckpt/ to the same weights, and a run after that keeps it
s1=$out/seed001-7-s1
cp "$s1.safetensors" "$TMP/s1-first.safetensors"
rm "$s1.safetensors"
printf '%s\n' '#!/usr/bin/env bash' "\"$DIGITS\" \"\$@\" || exit" "[[ \" \$* \" == *seed001-7.yaml* ]] && exit 137" \
    'exit 0' > "$TMP/dies-single"
chmod +x "$TMP/dies-single"
run_repro seed001-7 DIGITS="$TMP/dies-single" &&
    fail "reproduce.sh went on past a single run that died: $(cat "$TMP/stderr")"
[[ -f $s1.ckpt/latest ]] || fail "the dead single run left no checkpoint"
[[ -f $s1.training.safetensors && ! -f $s1.safetensors ]] || fail "the dead single run passes for a finished one"
repro seed001-7
grep -q "seed 1: resumed from $s1.ckpt" "$TMP/stderr" || fail "single row not resumed: $(cat "$TMP/stderr")"
cmp -s <(tensor_data "$s1.safetensors") <(tensor_data "$TMP/s1-first.safetensors") || fail "the resumed single run changed its weights"
[[ ! -e $s1.ckpt && ! -e $s1.training.safetensors ]] || fail "the single run's checkpoints outlived it"
row seed001-7 | grep -Eq "\| $acc \| 1 seeds \|" || fail "resumed single row: $(row seed001-7)"
repro seed001-7
grep -q "seed 1: kept (trained before)" "$TMP/stderr" || fail "a finished single run was trained again: $(cat "$TMP/stderr")"
row seed001-7 | grep -Eq "\| $acc \| 1 seeds \|" || fail "kept single row: $(row seed001-7)"
echo "ok: a stopped single row resumed, then kept: $(row seed001-7)"
