#!/usr/bin/env bash
# run.sh — runs a firmware ELF built by tests/mcu/build.sh under QEMU:
#   tests/mcu/run.sh m4|m0 FIRMWARE.elf [TIMEOUT_S]
# Board mps2-an386 (Cortex-M4) or microbit (Cortex-M0); semihosting prints
# to stdout and sets the exit status; -icount shift=0 makes one instruction
# one nanosecond of virtual time, so SysTick counts instructions and the run
# is deterministic. Exits with the firmware's status (124 on timeout).
set -euo pipefail
case $1 in
m4) board=mps2-an386 ;;
m0) board=microbit ;;
*) echo "run.sh: unknown target '$1' (m4 or m0)" >&2; exit 2 ;;
esac
exec timeout "${3:-120}" qemu-system-arm -M "$board" -display none -serial null -monitor none -chardev stdio,id=out \
    -semihosting-config enable=on,target=native,chardev=out -icount shift=0 -kernel "$2"
