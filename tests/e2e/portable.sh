#!/usr/bin/env bash
# portable.sh — the portable build (make PORTABLE=1, build-portable/): its
# kernels at every level this CPU runs, forced with DIGITS_ISA (avx512,
# avx2, generic): the kernels' tests (test_ops_ref: fast against reference;
# test_ops_grad: finite differences; test_torch_parity: PyTorch's numbers),
# one small train + eval, and `digits info` naming the level; the levels'
# accuracies agree with each other and with $BUILD's; an unknown level warns
# once. Then the portable binary's eval end to end under qemu-user on CPUs
# without AVX-512 (Haswell: avx2; Nehalem: generic): no illegal instruction,
# the same accuracy as $BUILD's, and DIGITS_ISA=avx512 there falls back with
# one warning line; the control: the -march=native build stops there with
# SIGILL. The portable build is made here when $BUILD is another one
# (incremental after the first time: a few minutes on two cores).
# Not checked: speed (bench/isa_ab.sh), levels this CPU lacks (only under qemu).
source "$(dirname "$0")/lib.bash"
require_data
PB=build-portable
KERNEL_TESTS=(test_ops_ref test_ops_grad test_torch_parity)
if [[ $BUILD != "$PB" ]]; then
    # a make of its own (run by `make test`, the outer make's flags and jobserver do not apply)
    ( unset MAKEFLAGS MFLAGS MAKELEVEL
      make -s -j2 PORTABLE=1 "$PB/digits" "${KERNEL_TESTS[@]/#/$PB/tests/}" > "$TMP/make.log" 2>&1 ) \
        || { tail -20 "$TMP/make.log"; fail "make PORTABLE=1"; }
fi
P="$PWD/$PB/digits"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# the levels this CPU runs, best first (what the portable binary picks itself)
levels=(generic)
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && levels=(avx2 "${levels[@]}")
grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo &&
    grep -qw avx512dq /proc/cpuinfo && grep -qw avx512cd /proc/cpuinfo && levels=(avx512 "${levels[@]}")

# one small model, trained by $BUILD (the reference run)
"$DIGITS" train --model fast --data "$DATA" --limit 2000 --epochs 1 --seed 3 --val-split 0 --test none --quiet \
    --out "$TMP/ref.safetensors"
acc() { grep -o '"accuracy":[0-9.]*' | head -1 | cut -d: -f2; }
ref=$("$DIGITS" eval --model "$TMP/ref.safetensors" --data "$DATA" --limit 1000 --json | acc)
echo "$BUILD: accuracy $ref on 1000 test images"
# the same model evaluated by two builds: the same images right, up to a
# rounding-borderline one or two (the kernels sum in other orders)
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d <= 0.002 && d >= -0.002) }'; }

for lv in "${levels[@]}"; do
    export DIGITS_ISA=$lv
    "$P" info "$TMP/ref.safetensors" > "$TMP/info.txt"
    grep -q "^kernels   $lv (portable build" "$TMP/info.txt" ||
        fail "DIGITS_ISA=$lv: info says $(grep kernels "$TMP/info.txt")"
    # the kernels' tests at this level
    n=()
    for tb in "${KERNEL_TESTS[@]}"; do
        out=$("$PB/tests/$tb" 2>&1) || { echo "$out" | tail -30; fail "DIGITS_ISA=$lv: $tb"; }
        n+=("$tb $(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p')")
    done
    # eval of the reference model, then a small train + eval at this level
    a=$("$P" eval --model "$TMP/ref.safetensors" --data "$DATA" --limit 1000 --json | acc)
    close "$a" "$ref" || fail "DIGITS_ISA=$lv: eval accuracy $a, $BUILD's $ref"
    "$P" train --model fast --data "$DATA" --limit 2000 --epochs 1 --seed 3 --val-split 0 --test none --quiet \
        --out "$TMP/$lv.safetensors"
    t=$("$P" eval --model "$TMP/$lv.safetensors" --data "$DATA" --limit 1000 --json | acc)
    awk -v a="$t" -v b="$ref" 'BEGIN { d = a - b; exit !(a >= 0.8 && d <= 0.03 && d >= -0.03) }' ||
        fail "DIGITS_ISA=$lv: trained to $t, $BUILD's training to $ref"
    echo "DIGITS_ISA=$lv: passed: ${n[*]}; eval $a; trained here: $t"
done
unset DIGITS_ISA

# a name that is no level: one warning line, then the best level runs
DIGITS_ISA=avx3 "$P" info "$TMP/ref.safetensors" > "$TMP/info.txt" 2> "$TMP/err"
[[ $(wc -l < "$TMP/err") -eq 1 ]] && grep -q "DIGITS_ISA=avx3 is not a kernel level" "$TMP/err" ||
    fail "DIGITS_ISA=avx3: stderr $(cat "$TMP/err")"
grep -q "^kernels   ${levels[0]} " "$TMP/info.txt" || fail "DIGITS_ISA=avx3 did not fall back to ${levels[0]}"

# CPUs without AVX-512 under qemu-user, a small lenet5 on a few hundred
# images: qemu is slow (its AVX2 about 75 ms of CPU per lenet5 image here,
# ten times its SSE)
command -v qemu-x86_64 >/dev/null || fail "qemu-x86_64 not found (tools/install_deps.sh installs qemu-user)"
"$DIGITS" train --model lenet5 --data "$DATA" --limit 2000 --epochs 1 --seed 3 --val-split 0 --test none --quiet \
    --out "$TMP/lenet5.safetensors" > /dev/null
for cpu_lv_n in Haswell:avx2:200 Nehalem:generic:500; do
    IFS=: read -r cpu lv n <<< "$cpu_lv_n"
    small=$("$DIGITS" eval --model "$TMP/lenet5.safetensors" --data "$DATA" --limit "$n" --json | acc)
    # DIGITS_NO_REEXEC: the CLI's re-exec (src/core/runtime.c) would leave
    # qemu and run natively; OpenBLAS picks its kernels from qemu's cpuid
    q=(env -u OPENBLAS_CORETYPE DIGITS_NO_REEXEC=1 qemu-x86_64 -cpu "$cpu")
    "${q[@]}" "$P" info "$TMP/lenet5.safetensors" 2>/dev/null | output_has "^kernels   $lv (portable build, chosen" ||
        fail "qemu -cpu $cpu: the portable binary did not choose $lv"
    rc=0
    "${q[@]}" "$P" eval --model "$TMP/lenet5.safetensors" --data "$DATA" --limit "$n" --json > "$TMP/q.json" \
        2> "$TMP/q.err" || rc=$?
    [[ $rc -eq 0 ]] || fail "qemu -cpu $cpu: eval exited $rc: $(grep -v 'TCG doesn' "$TMP/q.err" | tail -3)"
    a=$(acc < "$TMP/q.json")
    close "$a" "$small" || fail "qemu -cpu $cpu: accuracy $a, $BUILD's $small"
    echo "qemu-x86_64 -cpu $cpu: $lv kernels, eval of $n images: accuracy $a ($BUILD: $small)"
done
# the control: qemu does stop AVX-512 code (the -march=native build)
if [[ $BUILD == build && ${levels[0]} == avx512 ]]; then
    rc=0
    { DIGITS_NO_REEXEC=1 qemu-x86_64 -cpu Haswell "$DIGITS" eval --model "$TMP/lenet5.safetensors" \
        --data "$DATA" --limit 10; } > /dev/null 2>&1 || rc=$? # (the shell's "Illegal instruction" line too)
    [[ $rc -eq 132 ]] || fail "control: $BUILD/digits under qemu -cpu Haswell exited $rc, not 132 (SIGILL)"
    echo "control: $BUILD/digits (-march=native) under qemu -cpu Haswell: SIGILL"
fi
# asking for a level the CPU lacks: one warning line, the best level runs
DIGITS_ISA=avx512 DIGITS_NO_REEXEC=1 qemu-x86_64 -cpu Haswell "$P" info "$TMP/lenet5.safetensors" \
    > "$TMP/info.txt" 2> "$TMP/err"
grep -v "TCG doesn't support" "$TMP/err" > "$TMP/err2" || true
[[ $(wc -l < "$TMP/err2") -eq 1 ]] && grep -q "DIGITS_ISA=avx512: this CPU lacks AVX-512" "$TMP/err2" ||
    fail "DIGITS_ISA=avx512 on Haswell: stderr $(cat "$TMP/err2")"
grep -q "^kernels   avx2 " "$TMP/info.txt" || fail "DIGITS_ISA=avx512 on Haswell did not fall back to avx2"
echo "DIGITS_ISA=avx512 on Haswell: $(cat "$TMP/err2")"
