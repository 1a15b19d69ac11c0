#!/usr/bin/env bash
# mcu.sh — `digits export --format c` on a microcontroller: a lenet5 trained
# briefly and quantized (digits quantize), exported as C, built for the host
# (gcc -std=c99 -pedantic -ffreestanding, no floating point) and for an
# emulated Cortex-M4 (arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb, -O2 and
# -Os; QEMU -M mps2-an386) and Cortex-M0 (-Os; QEMU -M microbit, 16 KB of
# RAM), each running the first N (100) MNIST test images compiled into the
# firmware (tests/mcu/): every prediction and every int8 logit must equal
# the host's int8 path of libdigits (digits eval --int8-logits). Prints
# flash and RAM (arm-none-eabi-size) and instructions per image (SysTick
# under QEMU's -icount shift=0; an emulator gives no wall time). Also the
# one-line errors: a float model, an int8 ensemble, a corrupt scale, --max-ram and
# --max-flash below the model's needs, a bad byte count.
# Skips (exit 0, saying why) only when the cross toolchain or QEMU is
# missing; tools/install_deps.sh installs them, so CI runs it.
source "$(dirname "$0")/lib.bash"
require_data
for tool in arm-none-eabi-gcc arm-none-eabi-size qemu-system-arm; do
    command -v "$tool" >/dev/null || {
        echo "SKIP mcu.sh: no $tool (bash tools/install_deps.sh installs gcc-arm-none-eabi, qemu-system-arm)"
        exit 0
    }
done
N=100
LIMIT=6000
# the sanitizer pass checks memory, not numbers: less training (its digits runs ~20x slower)
[[ $BUILD == *san* ]] && LIMIT=1000
MCU=tests/mcu

# a small network, quantized
"$DIGITS" train --model lenet5 --data "$DATA" --limit "$LIMIT" --epochs 1 --batch-size 64 --lr 0.003 --threads 2 \
    --quiet --out "$TMP/lenet5.safetensors" >/dev/null 2>&1 || fail "training lenet5 failed"
"$DIGITS" quantize --model "$TMP/lenet5.safetensors" --data "$DATA" --calib 500 \
    --out "$TMP/lenet5-int8.safetensors" >/dev/null || fail "quantize failed"
Q="$TMP/lenet5-int8.safetensors"

# the host's int8 path (libdigits' kernels): "IMAGE PREDICTION L0 .. L9" per image
"$DIGITS" eval --model "$Q" --data "$DATA" --limit "$N" --int8-logits "$TMP/eval.txt" >/dev/null ||
    fail "eval --int8-logits failed"
awk '!/^#/ { printf "%s %s", $1, $3; for (i = 4; i <= 13; i++) printf " %s", $i; print "" }' "$TMP/eval.txt" \
    > "$TMP/host.txt"
[[ $(wc -l < "$TMP/host.txt") -eq $N ]] || fail "expected $N lines of host logits"

"$DIGITS" export --format c --model "$Q" --out "$TMP/c" > "$TMP/export.txt" || fail "export --format c failed"
cat "$TMP/export.txt"
cmp <(sed -n '/---- begin qref.h ----/,/---- end qref.h ----/p' "$TMP/c/digits_model.c" | sed '1d;$d') src/quant/qref.h ||
    fail "digits_model.c does not hold src/quant/qref.h verbatim"
ram=$(sed -n 's/^#define DIGITS_MODEL_RAM_BYTES \([0-9]*\)$/\1/p' "$TMP/c/digits_model.h")
flash=$(sed -n 's/^#define DIGITS_MODEL_FLASH_BYTES \([0-9]*\)$/\1/p' "$TMP/c/digits_model.h")
[[ -n $ram && -n $flash ]] || fail "digits_model.h states no RAM or flash"

# compare NAME OUTPUT: every line but the counts ("# ...") equals the host's
compare() {
    local diffs
    diffs=$(diff <(grep -v '^#' "$2") "$TMP/host.txt" | grep -c '^>' || true)
    [[ $diffs -eq 0 ]] || { diff <(grep -v '^#' "$2") "$TMP/host.txt" | head -6; fail "$1: $diffs images differ from the host's int8 path"; }
    echo "$1: $N predictions and logits identical to the host's int8 path"
}

# the generated C on the host: strict C99, freestanding, no floating point
bash "$MCU/build.sh" host -O2 "$TMP/c" "$DATA" "$N" "$TMP/host-fw" || fail "host build of the exported C"
"$TMP/host-fw" > "$TMP/host-fw.txt" || fail "host run"
compare "host gcc -O2" "$TMP/host-fw.txt"

# run TARGET OPT: build, run under QEMU, compare, report size and instructions
run() {
    local t=$1 opt=$2 elf="$TMP/fw-$1$2"
    bash "$MCU/build.sh" "$t" "$opt" "$TMP/c" "$DATA" "$N" "$elf" || fail "$t $opt build"
    # no soft-float or libm routine may be linked in
    if arm-none-eabi-nm "$elf" | grep -E ' __aeabi_(f|d)|__(add|mul|div)(s|d)f3| (sqrt|exp|tanh)f?$'; then
        fail "$t $opt: floating point linked in"
    fi
    bash "$MCU/run.sh" "$t" "$elf" 120 > "$TMP/out-$t$opt.txt" || fail "$t $opt: QEMU exited $?"
    compare "$t $opt" "$TMP/out-$t$opt.txt"
    read -r text data bss _ < <(arm-none-eabi-size "$elf" | tail -1)
    insn=$(sed -n 's/^# instructions \([0-9]*\) \([0-9]*\)$/\1/p' "$TMP/out-$t$opt.txt")
    echo "  firmware flash $((text + data)) B, RAM $((data + bss)) B (incl. $((N * 784)) B of images in flash," \
        "the stack, the model's $ram B arena); $((insn / N)) instructions per image"
}
run m4 -O2
run m4 -Os
# the Cortex-M0 (16 KB of RAM, 1 KB of it stack): when the arena fits
if (( ram <= 14 * 1024 )); then run m0 -Os; else echo "m0: the arena ($ram B) does not fit the micro:bit's 16 KB"; fi

# the model's own needs against limits
expect_error 1 "over --max-ram $((ram - 1))" -- \
    "$DIGITS" export --format c --model "$Q" --out "$TMP/c2" --max-ram $((ram - 1))
expect_error 1 "over --max-flash 1024" -- "$DIGITS" export --format c --model "$Q" --out "$TMP/c2" --max-flash 1K
[[ ! -e $TMP/c2 ]] || fail "a refused export wrote $TMP/c2"
"$DIGITS" export --format c --model "$Q" --out "$TMP/c3" --max-ram "$ram" --max-flash "$flash" >/dev/null ||
    fail "export at exactly its needs was refused"
expect_error 2 "--max-ram: '12Q' is not a byte count" -- \
    "$DIGITS" export --format c --model "$Q" --out "$TMP/c2" --max-ram 12Q
expect_error 2 "--max-flash and --max-ram go with --format c" -- \
    "$DIGITS" export --format onnx --model "$Q" --out "$TMP/x.onnx" --max-ram 1K
# a corrupt scale (negative; same length, so the file stays well-formed)
sed 's/\\"scale\\":0\.[0-9]/\\"scale\\":-0./' "$Q" > "$TMP/bad-scale.safetensors"
expect_error 1 "scale -0." -- "$DIGITS" export --format c --model "$TMP/bad-scale.safetensors" --out "$TMP/c2"
expect_error 1 "not an int8 model" -- "$DIGITS" export --format c --model "$TMP/lenet5.safetensors" --out "$TMP/c2"
"$DIGITS" ensemble --out "$TMP/ens.safetensors" "$TMP/lenet5.safetensors" "$TMP/lenet5.safetensors" >/dev/null
"$DIGITS" quantize --model "$TMP/ens.safetensors" --data "$DATA" --calib 100 --out "$TMP/ens-int8.safetensors" \
    >/dev/null || fail "quantize of an ensemble failed"
expect_error 1 "an ensemble of 2 int8 networks" -- \
    "$DIGITS" export --format c --model "$TMP/ens-int8.safetensors" --out "$TMP/c2"
echo "mcu: ok"
