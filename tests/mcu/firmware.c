/* firmware.c — runs an exported model (digits export --format c) on the
 * MNIST test images compiled into it (images.h, written at test time by
 * tests/mcu/build.sh) and prints one line per image:
 *     IMAGE PREDICTION L0 L1 ... L9
 * (the ten int8 logits), then "# instructions TOTAL IMAGES" and per image
 * "# insn IMAGE COUNT" lines. The same file is compiled for the host
 * (-DMCU_HOST: stdio instead of semihosting, no counts), so the two outputs
 * compare line for line. Instruction counts come from SysTick under QEMU's
 * -icount shift=0, where one instruction takes 1 ns of virtual time and
 * SysTick ticks once per CLOCK_NS ns: a count is exact to CLOCK_NS
 * instructions per image (QEMU gives no wall time: it is an emulator). */
#include <stdint.h>

#include "digits_model.h"
#include "images.h"

#ifdef MCU_HOST
#include <stdio.h>
static void mcu_puts(const char *s) { fputs(s, stdout); }
static uint32_t ticks(void) { return 0; }
static void ticks_start(void) {}
#else
#include "harness.h"
/* MCU_CLOCK_NS: ns per processor-clock tick (mps2-an386 runs at 25 MHz: 40,
 * microbit at 16 MHz: 62.5, given as 125/2 by MCU_CLOCK_NS_DEN) */
#ifndef MCU_CLOCK_NS
#define MCU_CLOCK_NS 40
#endif
#ifndef MCU_CLOCK_NS_DEN
#define MCU_CLOCK_NS_DEN 1
#endif
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
/* SysTick free-running on the processor clock, counting down from 2^24-1. */
static void ticks_start(void) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5; /* enable, processor clock, no interrupt */
}
/* Ticks elapsed so far, modulo 2^24 (the counter counts down). */
static uint32_t ticks(void) { return (0xFFFFFFu - SYST_CVR) & 0xFFFFFFu; }
#endif

/* Appends the decimal text of v to *p (no libc). */
static void put_int(char **p, long long v) {
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    if (v < 0) *(*p)++ = '-';
    do tmp[n++] = (char)('0' + u % 10u); while (u /= 10u);
    while (n) *(*p)++ = tmp[--n];
}

#ifndef MCU_HOST
/* Prints "LABEL A B" as one line beginning with '#'. */
static void put_note(const char *label, long long a, long long b) {
    char line[96], *p = line;
    *p++ = '#', *p++ = ' ';
    while (*label) *p++ = *label++;
    *p++ = ' ', put_int(&p, a), *p++ = ' ', put_int(&p, b), *p++ = '\n', *p = 0;
    mcu_puts(line);
}
#endif

int main(void) {
    unsigned long long total = 0;
    ticks_start();
    for (int i = 0; i < MCU_N_IMAGES; i++) {
        int8_t logits[10];
        uint32_t t0 = ticks();
        int d = digits_model_run(&mcu_images[(long)i * 784], logits);
        uint32_t dt = (ticks() - t0) & 0xFFFFFFu;
        total += dt;
        char line[96], *p = line;
        put_int(&p, i), *p++ = ' ', put_int(&p, d);
        for (int k = 0; k < 10; k++) *p++ = ' ', put_int(&p, logits[k]);
        *p++ = '\n', *p = 0;
        mcu_puts(line);
#ifndef MCU_HOST
        put_note("insn", i, (long long)dt * MCU_CLOCK_NS / MCU_CLOCK_NS_DEN);
#endif
        if (d < 0 || d > 9) return 2;
    }
#ifndef MCU_HOST
    put_note("instructions", (long long)(total * MCU_CLOCK_NS / MCU_CLOCK_NS_DEN), MCU_N_IMAGES);
#endif
    return 0;
}
