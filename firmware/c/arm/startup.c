/*
 * startup.c - reset, fault handler and vector table for running board_sim bare-metal
 * under qemu-system-arm (tests/test_firmware_qemu.py); not firmware.
 *
 * ARMv6-M and ARMv7-M take the initial stack pointer from word 0 of the vector table
 * and the reset handler from word 1, and enter it in Thread mode with interrupts
 * enabled but none configured (ARMv6-M ARM, DDI 0419E, B1.5.5 "Reset behavior";
 * ARMv7-M ARM, DDI 0403E, B1.5.5). The handler copies .data from its load address,
 * clears .bss, opens newlib's semihosting stdio (librdimon) and runs main; its
 * return value becomes QEMU's exit status through SYS_EXIT_EXTENDED.
 *
 * Every fault and exception lands in fault_handler, which reports on the semihosting
 * console (SYS_WRITE0, 0x04) and stops the machine with a run-time-error reason
 * (SYS_EXIT, 0x18; ADP_Stopped_RunTimeErrorUnknown, 0x20023), which QEMU turns into
 * exit status 1 (Arm, "Semihosting for AArch32 and AArch64", version 3.0, sections
 * 5.2 SYS_EXIT and 5.21 SYS_WRITE0; the call is BKPT 0xAB on M-profile, section 4.1).
 */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern uint32_t __stack_top__;
extern void initialise_monitor_handles(void);
extern int main(void);

void reset_handler(void);
void fault_handler(void);

#define SYS_WRITE0 0x04u
#define SYS_EXIT 0x18u
#define ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN 0x20023u

static void semihost(uint32_t op, uintptr_t arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register uintptr_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

void fault_handler(void)
{
    semihost(SYS_WRITE0, (uintptr_t) "board_sim: processor fault\n");
    semihost(SYS_EXIT, ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN);
    for (;;) {
    }
}

/* newlib's exit runs __libc_fini_array, which ends with _fini; that normally comes from
   crti.o, one of the start files this link leaves out (there is nothing to finalise). */
void _fini(void);
void _fini(void)
{
}

void reset_handler(void)
{
    uint32_t *src = &__data_load__, *dst = &__data_start__;
    while (dst < &__data_end__) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__; dst++) {
        *dst = 0;
    }
    initialise_monitor_handles();
    exit(main());
}

/* Words 0..15: stack, reset, then NMI, HardFault and every other system exception. */
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16] = {
    (uintptr_t)&__stack_top__, (uintptr_t)reset_handler,
    (uintptr_t)fault_handler, (uintptr_t)fault_handler, (uintptr_t)fault_handler,
    (uintptr_t)fault_handler, (uintptr_t)fault_handler, 0, 0, 0, 0,
    (uintptr_t)fault_handler, (uintptr_t)fault_handler, 0,
    (uintptr_t)fault_handler, (uintptr_t)fault_handler,
};
