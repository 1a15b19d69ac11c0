#!/usr/bin/env bash
# pretrained.sh — the models shipped in models/pretrained/ are the files their
# manifest (models/pretrained/manifest.tsv) describes: same size and SHA-256,
# the recorded MNIST test accuracy within ±0.02 points on the 10k test set, and
# within the size budget (default ≤ 2.5 MB, best ≤ 8 MB, ≤ 12 MB in all).
# `--model default|best` resolves to them from any working directory, and
# predict with no --model uses default.
source "$(dirname "$0")/lib.bash"
require_data
ROOT=$PWD
MANIFEST=models/pretrained/manifest.tsv
[[ -f $MANIFEST ]] || fail "$MANIFEST missing"
total=0
while IFS=$'\t' read -r name file bytes sha acc budget cmd; do
    [[ $name == name || -z $name ]] && continue
    f=models/pretrained/$file
    [[ -f $f ]] || fail "$f missing"
    got_bytes=$(stat -c %s "$f")
    [[ $got_bytes == "$bytes" ]] || fail "$f: $got_bytes bytes, manifest says $bytes"
    (( got_bytes <= budget )) || fail "$f: $got_bytes bytes over its budget of $budget"
    total=$((total + got_bytes))
    got_sha=$(sha256sum "$f" | cut -d' ' -f1)
    [[ $got_sha == "$sha" ]] || fail "$f: SHA-256 $got_sha, manifest says $sha"
    # evaluated by name, from another working directory
    (cd "$TMP" && "$DIGITS" eval --model "$name" --data "$ROOT/$DATA" --json) > "$TMP/$name.json"
    got_acc=$(grep -o '"accuracy":[0-9.]*' "$TMP/$name.json" | head -1 | cut -d: -f2)
    echo "$name: $file $got_bytes bytes, test accuracy $got_acc (manifest $acc; remade by: $cmd)"
    awk -v a="$got_acc" -v b="$acc" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.0002 + 1e-9) }' \
        || fail "$name: test accuracy $got_acc differs from the manifest's $acc by more than 0.02 points"
    # the accuracy `digits models` shows (recorded in the file) is the file's own, int8 files included
    rec=$("$DIGITS" models | awk -v n="$name" '$1 == n { print $(NF - 1) }')
    awk -v a="$got_acc" -v r="$rec" 'BEGIN { d = 100 * a - r; if (d < 0) d = -d; exit !(d <= 0.005 + 1e-9) }' \
        || fail "$name: digits models shows $rec %, eval measures $got_acc"
done < "$MANIFEST"
(( total <= 12 * 1024 * 1024 )) || fail "pretrained models take $total bytes, over 12 MiB"
# predict with no --model uses default, from any working directory
{ printf 'P5\n28 28\n255\n'; head -c 800 "$DATA/t10k-images-idx3-ubyte" | tail -c 784; } > "$TMP/seven.pgm"
out=$(cd / && "$DIGITS" predict "$TMP/seven.pgm")
echo "$out"
[[ $out == *": 7 (p="* ]] || fail "predict without --model: $out"
# the microcontroller models export by name within the budgets they were made for (docs/MCU.md)
(cd "$TMP" && "$DIGITS" export --format c --model mcu-64k --out "$TMP/mcu64" --max-flash 64K --max-ram 12K >/dev/null) ||
    fail "export --format c --model mcu-64k over 64K flash / 12K RAM"
(cd "$TMP" && "$DIGITS" export --format c --model mcu-256k --out "$TMP/mcu256" --max-flash 256K --max-ram 48K >/dev/null) ||
    fail "export --format c --model mcu-256k over 256K flash / 48K RAM"
"$DIGITS" info default > "$TMP/info.txt" || fail "digits info default"
grep -qi "bf16" "$TMP/info.txt" || fail "digits info default does not show the bf16 tensors"
