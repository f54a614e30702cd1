/*
 * loader.c - protocol 2's boot loader: after boot2 in flash sector 0, its own vector table
 * at 0x10000100 (boot2 enters it, 2.8.1), never updated over the bus. It chooses the slot
 * to start from the boot record (bootrec.h) and hands the image the start's cause:
 *
 *   no record                      slot A; the cause the chip logged
 *   trial not yet run              marker running programmed, then the trial slot with cause
 *                                  firmware_swap and the watchdog armed (TRIAL_WATCHDOG_US)
 *   trial confirmed                the trial slot (now the active one); the chip's cause
 *   trial ran, not confirmed       (it reset before confirming: the watchdog, a failed
 *                                  self-test, a power cut) marker rolled programmed, the old
 *                                  slot with cause rollback; afterwards the old slot, the
 *                                  chip's cause
 *
 * The chip's cause is WATCHDOG_REASON (4.7): TIMER a watchdog timeout, FORCE a triggered
 * reset (the image's fw_swap; reported as reset_command), none a power-on (CHIP_RESET cannot
 * tell a brownout, PROTOCOL.md). The handoff is WATCHDOG_SCRATCH0/1 (bootrec.h). A slot
 * whose package header is not valid is not started: the other one is, else the loader stops.
 *
 * It runs on the clocks the bootrom left (clk_ref and clk_sys from the ROSC, nominally
 * 6.5 MHz, 2.17): the watchdog tick (4.7.2) is set to 6 clk_ref cycles, about 1 us, until
 * the image's clocks_init sets 12 cycles of the crystal; so the trial's timeout is within the
 * ROSC's tolerance of TRIAL_WATCHDOG_US until then. The markers are programmed by flash.c
 * (from RAM, XIP off), whose status polls sleep on the timer (4.6), released here.
 */
#include <stdint.h>

#include "bootrec.h"
#include "flash.h"
#include "rp2040.h"
#include "twinrig_core2.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
void loader_reset(void);

static void halt(void)
{
    for (;;) {
        wait_for_interrupt();
    }
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    [0] = (void (*)(void))(uintptr_t)&__stack_top,
    [1] = loader_reset,
    [2] = halt, /* NMI */
    [3] = halt, /* HardFault */
};

static uint8_t chip_cause(void)
{
    uint32_t reason = REG(WATCHDOG_REASON);
    if (reason & WATCHDOG_REASON_TIMER) {
        return TR2_CAUSE_WATCHDOG;
    }
    return (reason & WATCHDOG_REASON_FORCE) ? TR2_CAUSE_RESET_COMMAND : TR2_CAUSE_POWER_ON;
}

/* Which slot, why, and whether it is a trial. */
static unsigned choose(uint8_t *cause, int *trial)
{
    boot_record r;
    pkg_header h;
    unsigned sector;
    *trial = 0;
    if (!bootrec_newest(&r, &sector)) {
        return 0;
    }
    if (!bootrec_marked(&r, MARK_RUNNING)) {
        if (pkg_header_read(r.trial_slot, &h) == 0 && bootrec_mark(sector, MARK_RUNNING) == 0) {
            *cause = TR2_CAUSE_FIRMWARE_SWAP;
            *trial = 1;
            return r.trial_slot;
        }
        (void)bootrec_mark(sector, MARK_RUNNING); /* a trial that cannot start has failed */
    } else if (bootrec_marked(&r, MARK_CONFIRMED)) {
        return r.trial_slot;
    }
    if (!bootrec_marked(&r, MARK_ROLLED)) {
        (void)bootrec_mark(sector, MARK_ROLLED);
        *cause = TR2_CAUSE_ROLLBACK;
    }
    return r.old_slot;
}

static void start(uint32_t vectors_at)
{
    const uint32_t *vt = (const uint32_t *)(uintptr_t)vectors_at;
    REG(NVIC_ICER) = 0xffffffffu; /* flash_init's timer interrupt: the image enables its own */
    REG(NVIC_ICPR) = 0xffffffffu;
    REG(SCB_VTOR) = vectors_at;
    __asm volatile("msr msp, %0\n bx %1" ::"r"(vt[0]), "r"(vt[1]) : "memory");
    halt();
}

static void loader_main(void)
{
    pkg_header h;
    uint8_t cause;
    int trial;
    unsigned slot;
    REG(WATCHDOG_CTRL) = 0u; /* off until a trial arms it */
    cause = chip_cause();
    REG(WATCHDOG_TICK) = WATCHDOG_TICK_ENABLE | 6u; /* 4.7.2: clk_ref = ROSC, ~1 us */
    REG_CLR(RESETS_RESET) = RESET_TIMER;
    while (!(REG(RESETS_DONE) & RESET_TIMER)) {
    }
    flash_init();
    slot = choose(&cause, &trial);
    if (pkg_header_read(slot, &h) != 0) {
        slot ^= 1u;
        trial = 0;
        if (pkg_header_read(slot, &h) != 0) {
            halt(); /* no image to start */
        }
    }
    REG(WATCHDOG_SCRATCH(0)) = HANDOFF_MAGIC;
    REG(WATCHDOG_SCRATCH(1)) = cause | (trial ? HANDOFF_TRIAL : 0u);
    if (trial) {
        /* 4.7: the watchdog resets all but the oscillators (PSM WDSEL, 2.13.5); LOAD counts
           down twice a tick (erratum RP2040-E1), so twice the microseconds */
        REG(PSM_WDSEL) = PSM_WDSEL_ALL_BUT_OSC;
        REG(WATCHDOG_LOAD) = 2u * TRIAL_WATCHDOG_US;
        REG(WATCHDOG_CTRL) = WATCHDOG_CTRL_ENABLE;
    }
    start(pkg_vectors(slot));
}

void loader_reset(void)
{
    uint32_t *d = &__data_start;
    const uint32_t *s = &__data_load;
    while (d < &__data_end) {
        *d++ = *s++;
    }
    for (d = &__bss_start; d < &__bss_end; d++) {
        *d = 0;
    }
    loader_main();
}
