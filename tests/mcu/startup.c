/* startup.c — bare-metal start-up for the firmware that runs an exported
 * model (tests/mcu/firmware.c) on QEMU's Cortex-M boards (mps2-an386: M4,
 * microbit: M0): the vector table, a reset handler that copies .data and
 * clears .bss before main, the four functions a freestanding GCC may call
 * (memcpy, memmove, memset, memcmp), and the semihosting calls for output
 * and for the exit status QEMU returns (-semihosting-config
 * enable=on,target=native). Left out on purpose: newlib (no printf, no
 * malloc), interrupts beyond the fault vectors (a fault stops the run with
 * status 3), clock set-up (QEMU needs none). */
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
int main(void);

/* Semihosting call OP with argument ARG: `bkpt 0xAB`, the number in r0, the
 * argument in r1, the result back in r0 (both Thumb profiles). */
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* Writes the NUL-terminated text s to the host's stdout (SYS_WRITE0). */
void mcu_puts(const char *s) { semihost(0x04, s); }

/* Ends the emulation with exit status `status` (SYS_EXIT_EXTENDED with
 * ADP_Stopped_ApplicationExit: QEMU exits with the subcode). */
void mcu_exit(int status) {
    uint32_t block[2] = {0x20026u, (uint32_t)status};
    semihost(0x20, block);
    for (;;) {}
}

/* Any fault: report it and stop with status 3 (a firmware bug). */
static void fault_handler(void) {
    mcu_puts("fault\n");
    mcu_exit(3);
}

/* After reset: .data from flash to RAM, .bss zeroed, then main's status. */
void reset_handler(void);
void reset_handler(void) {
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end; dst++) *dst = 0;
    mcu_exit(main());
}

/* The vector table: the initial stack pointer, reset, NMI, HardFault, and
 * (M3/M4 only, harmless on M0) MemManage, BusFault, UsageFault. */
__attribute__((section(".vectors"), used)) static void (*const vectors[])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top, reset_handler, fault_handler, fault_handler,
    fault_handler, fault_handler, fault_handler,
};

/* The library functions GCC may emit calls to even with -ffreestanding. */
void *memcpy(void *restrict d, const void *restrict s, size_t n) {
    unsigned char *dp = d;
    const unsigned char *sp = s;
    while (n--) *dp++ = *sp++;
    return d;
}
void *memmove(void *d, const void *s, size_t n) {
    unsigned char *dp = d;
    const unsigned char *sp = s;
    if (dp < sp)
        while (n--) *dp++ = *sp++;
    else
        while (n--) dp[n] = sp[n];
    return d;
}
void *memset(void *d, int c, size_t n) {
    unsigned char *dp = d;
    while (n--) *dp++ = (unsigned char)c;
    return d;
}
int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}
