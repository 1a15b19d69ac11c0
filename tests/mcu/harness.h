/* harness.h — what the bare-metal start-up (startup.c) offers the firmware:
 * text output and exit through semihosting, and an instruction count from
 * SysTick under QEMU's -icount shift=0 (one instruction = 1 ns of virtual
 * time; SysTick runs on the board's processor clock). Left out: input. */
#ifndef MCU_HARNESS_H
#define MCU_HARNESS_H
#include <stdint.h>

void mcu_puts(const char *s);
void mcu_exit(int status);

#endif
