/*
 * startup.c - vector table and reset handler (Cortex-M0+, RP2040 datasheet 2.4.8, 2.8.1).
 * boot2 (boot2.S) leaves XIP running and enters here through the table at 0x10000100.
 */
#include <stdint.h>
#include <string.h>

#include "rp2040.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);
void isr_io_bank0(void);
void isr_uart0(void);
void isr_timer_reply(void);
void isr_timer_gate(void);
void isr_timer_lockout(void) __attribute__((weak, alias("unused_irq")));
void isr_timer_flash(void) __attribute__((weak, alias("unused_irq")));

void reset_handler(void);

static void fault_handler(void)
{
    for (;;) {
        wait_for_interrupt();
    }
}

/* An interrupt an image enables but never expects to be taken (protocol 2's alarm 3 only
   wakes the core from WFI while interrupts are masked, flash.c): it is cleared and ignored. */
void unused_irq(void);
void unused_irq(void) { REG(TIMER_INTR) = 1u << 3; }

typedef void (*vector)(void);

/* 16 system exceptions, then the 26 RP2040 interrupts (2.3.2) padded to 32. */
__attribute__((section(".vectors"), used)) static const vector vectors[48] = {
    [0] = (vector)(uintptr_t)&__stack_top,
    [1] = reset_handler,
    [2] = fault_handler, /* NMI */
    [3] = fault_handler, /* HardFault */
    [11] = fault_handler, /* SVCall */
    [14] = fault_handler, /* PendSV */
    [15] = fault_handler, /* SysTick */
    [16 + IRQ_TIMER_0] = isr_timer_reply,
    [16 + IRQ_TIMER_1] = isr_timer_gate,
    [16 + IRQ_TIMER_2] = isr_timer_lockout,
    [16 + IRQ_TIMER_3] = isr_timer_flash,
    [16 + IRQ_IO_BANK0] = isr_io_bank0,
    [16 + IRQ_UART0] = isr_uart0,
};

void reset_handler(void)
{
    REG(SCB_VTOR) = (uint32_t)(uintptr_t)vectors;
    memcpy(&__data_start, &__data_load, (size_t)((char *)&__data_end - (char *)&__data_start));
    memset(&__bss_start, 0, (size_t)((char *)&__bss_end - (char *)&__bss_start));
    (void)main();
    fault_handler();
}

/* The C core's struct copies may become calls to these. */
void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--) {
        *d++ = (uint8_t)c;
    }
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s) {
        return memcpy(dst, src, n);
    }
    while (n--) {
        d[n] = s[n];
    }
    return dst;
}
