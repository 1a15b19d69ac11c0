#!/usr/bin/env bash
# reproduce.sh — bench/reproduce.sh end to end in its QUICK smoke mode (a few
# steps per run, the accuracies mean nothing): a single-model row and an
# --ensemble row trained as PARALLEL=2 processes, then joined. Checks the
# table's rows, that the parts trained consecutive member seeds, and that
# the joined file is one ensemble of both members.
source "$(dirname "$0")/lib.bash"
require_data
out=$TMP/repro
SKIP_BUILD=1 DIGITS="$DIGITS" DATA="$DATA" REPRO_DIR="$out" QUICK=1 QUICK_STEPS=8 SEEDS_QUICK=1 PARALLEL=2 \
    THREADS=1 ROWS=s001-deep-all,s000-cnn-bn-aug-x5 bash bench/reproduce.sh >"$TMP/stdout" 2>"$TMP/stderr" ||
    fail "reproduce.sh failed: $(tail -3 "$TMP/stderr")"
table=$out/reproduce.md
[[ -f $table ]] || fail "no table in $out"
grep -q 'PARALLEL=2 THREADS=1 ROWS=s001-deep-all,s000-cnn-bn-aug-x5 bench/reproduce.sh' "$table" ||
    fail "the table's command line lacks the knobs: $(grep Command "$table")"
# | row | configuration | accuracy | runs | time | seed's figure |
row() { grep "^| $1 |" "$table" || fail "no $1 row in: $(cat "$table")"; }
acc='[0-9]+\.[0-9]{2} %'
row s001-deep-all | grep -Eq "\| $acc \| 1 seeds \|" || fail "s001-deep-all row: $(row s001-deep-all)"
row s000-cnn-bn-aug-x5 | grep -Eq "\| $acc \| 1 run, 2 members \|" || fail "ensemble row: $(row s000-cnn-bn-aug-x5)"
grep -q 'part 0: members with seeds 1\.\.1:' "$TMP/stderr" || fail "part 0 is not seed 1: $(cat "$TMP/stderr")"
grep -q 'part 1: members with seeds 2\.\.2:' "$TMP/stderr" || fail "part 1 is not seed 2: $(cat "$TMP/stderr")"
! grep -q '^test accuracy' "$out"/*.part*.log || fail "a part evaluated the test set"
joined=$out/s000-cnn-bn-aug-x5.safetensors
members=$("$DIGITS" ensemble --list "$joined" | wc -l)
[[ $members -eq 2 ]] || fail "the joined ensemble has $members members, expected 2"
"$DIGITS" ensemble --out "$TMP/m0.safetensors" --pick 0 "$joined" >/dev/null
"$DIGITS" ensemble --out "$TMP/m1.safetensors" --pick 1 "$joined" >/dev/null
! cmp -s <(tensor_data "$TMP/m0.safetensors") <(tensor_data "$TMP/m1.safetensors") || fail "both members have the same weights"
echo "ok: $(row s000-cnn-bn-aug-x5)"
