/*
 * learn2.c - protocol 2's learn trigger: pulses timed edge to edge, glitches kept.
 *
 * PROTOCOL.md ("Telemetry"): a pulse on the learn-trigger input shorter than TRIGGER_MIN_US
 * (20 us) is a glitch, counted and otherwise ignored; any other pulse is a learn on the node
 * voltages at its rising edge. Both edges of PIN_LEARN interrupt (2.19.3, highest priority)
 * and are stamped there with the timer (4.6); there is no lockout, so every pulse of ringing
 * is seen and counted. Rising edge: the ADS131M04's filter is restarted and the first DRDY
 * after it is read in the interrupt (ads131m04.c), one snapshot of all four nodes. Falling
 * edge: the width is the difference of the stamps; under 20 us the pulse is counted as a
 * glitch (its snapshot is dropped), else the learn is due once its snapshot is in.
 * The main loop hands both to the core (it is not re-entrant). Two edges that arrive within
 * one interrupt latency show as both edge bits latched in INTR (2.19.6.1 raw interrupts):
 * the level then says which came last, and the short pulse between them has width 0 (less
 * than one microsecond tick).
 */
#include "learn2.h"

#include "ads131m04.h"
#include "board.h"
#include "clocks.h"
#include "rp2040.h"
#include "twinrig_core2.h"

#define LEARN_EDGES (IO_EDGE_HIGH(PIN_LEARN) | IO_EDGE_LOW(PIN_LEARN))
/* The first DRDY after the sync comes 93.75 us after it (ads131m04.c, three conversion
   periods at 32 kSPS); a snapshot that has not come 1 ms after the rising edge never will. */
#define SNAPSHOT_TIMEOUT_US 1000u

enum { IDLE, HIGH, DUE };

static volatile int phase;       /* IDLE -> HIGH (rising) -> IDLE (glitch) or DUE (falling) */
static volatile uint32_t rise_us, due_width_us;
static volatile int snap_wanted; /* waiting for the first DRDY after the sync */
static volatile int snap_status; /* -1 not yet, 0 ok, 1 failed */
static int32_t snapshot[4];
/* glitches counted in the interrupt and handed to the core: a burst of ringing has any number */
static volatile uint32_t glitch_head, glitch_tail;
static volatile int due_rose;       /* a rising edge while a learn was due */
static volatile uint32_t due_rise_us;

static void glitch(uint32_t width_us)
{
    (void)width_us; /* under TRIGGER_MIN_US: only the count matters */
    glitch_head++;
}

static void arm_snapshot(void)
{
    snap_status = -1;
    snap_wanted = 1;
    adc_sync();
    REG(IO_INTR(PIN_ADC_DRDY)) = IO_EDGE_LOW(PIN_ADC_DRDY);
    REG_SET(IO_PROC0_INTE(PIN_ADC_DRDY)) = IO_EDGE_LOW(PIN_ADC_DRDY);
}

static void drop_snapshot(void)
{
    snap_wanted = 0;
    REG_CLR(IO_PROC0_INTE(PIN_ADC_DRDY)) = IO_EDGE_LOW(PIN_ADC_DRDY);
}

static void rose(uint32_t now)
{
    if (phase == DUE) {
        due_rose = 1; /* timed, but its snapshot waits for the due learn to be handed over */
        due_rise_us = now;
        return;
    }
    phase = HIGH;
    rise_us = now;
    arm_snapshot();
}

static void fell(uint32_t now)
{
    uint32_t width;
    if (phase == DUE) {
        if (due_rose) {
            due_rose = 0;
            width = now - due_rise_us;
            if (width < TR2_TRIGGER_MIN_US) {
                glitch(width);
            }
            /* a whole pulse of 20 us or more while a learn waited: not learnt (README) */
        }
        return;
    }
    if (phase != HIGH) {
        return;
    }
    width = now - rise_us;
    if (width < TR2_TRIGGER_MIN_US) {
        drop_snapshot();
        glitch(width);
        phase = IDLE;
    } else {
        due_width_us = width;
        phase = DUE;
    }
}

void learn2_init(void)
{
    gpio_function(PIN_LEARN, FUNC_SIO, PAD_IE | PAD_PDE | PAD_SCHMITT);
    REG(IO_INTR(PIN_LEARN)) = LEARN_EDGES;
    REG_SET(IO_PROC0_INTE(PIN_LEARN)) = LEARN_EDGES;
    REG(NVIC_IPR(IRQ_IO_BANK0)) &= ~(0xffu << (8u * (IRQ_IO_BANK0 % 4u))); /* highest */
    irq_enable(IRQ_IO_BANK0);
}

void isr_io_bank0(void)
{
    uint32_t ints = REG(IO_PROC0_INTS(PIN_LEARN)); /* GPIO16..23: LEARN and DRDY */
    if (ints & IO_EDGE_LOW(PIN_ADC_DRDY)) {
        REG(IO_INTR(PIN_ADC_DRDY)) = IO_EDGE_LOW(PIN_ADC_DRDY);
        if (snap_wanted) {
            drop_snapshot();
            snap_status = adc_read_frame_now(snapshot);
        }
    }
    if (ints & LEARN_EDGES) {
        uint32_t now = timer_now_us();
        int high = (REG(SIO_GPIO_IN) >> PIN_LEARN) & 1u;
        int up = (ints & IO_EDGE_HIGH(PIN_LEARN)) != 0, down = (ints & IO_EDGE_LOW(PIN_LEARN)) != 0;
        REG(IO_INTR(PIN_LEARN)) = LEARN_EDGES;
        if (up && down) {
            /* both latched: the level says which came last */
            int was_high = phase == HIGH || (phase == DUE && due_rose);
            if (was_high) {
                fell(now);
                if (high) {
                    rose(now);
                } else {
                    glitch(0); /* fell, rose and fell again within the latency */
                }
            } else if (high) {
                glitch(0); /* rose, fell and rose again */
                rose(now);
            } else {
                glitch(0); /* a whole pulse within the latency */
            }
        } else if (up) {
            rose(now);
        } else if (down) {
            fell(now);
        }
    }
}

int learn2_next_glitch(uint32_t *width_us)
{
    uint32_t primask = irq_save();
    int any = glitch_head != glitch_tail;
    if (any) {
        *width_us = 0u; /* a glitch: shorter than TRIGGER_MIN_US, so the core counts it */
        glitch_tail++;
    }
    irq_restore(primask);
    return any;
}

int learn2_due(uint32_t *width_us)
{
    if (phase == DUE && snap_status < 0 && timer_now_us() - rise_us > SNAPSHOT_TIMEOUT_US) {
        uint32_t primask = irq_save();
        if (snap_status < 0) { /* no DRDY (the ADC's clock or supply lost): the learn runs on
                                   no reading (zero drops, main2.c) rather than wait for ever */
            drop_snapshot();
            snap_status = 1;
        }
        irq_restore(primask);
    }
    if (phase == DUE && snap_status >= 0) {
        *width_us = due_width_us;
        return 1;
    }
    return 0;
}

int learn2_pending(void)
{
    /* a due learn whose snapshot is not in yet is pending too: the main loop does not sleep
       on it (no interrupt may come if the ADC has stopped), it waits at most the timeout */
    return glitch_head != glitch_tail || phase == DUE;
}

int learn2_snapshot(int32_t node_uv[4])
{
    uint32_t i;
    for (i = 0; i < 4u; i++) {
        node_uv[i] = snapshot[i];
    }
    return snap_status;
}

void learn2_done(void)
{
    uint32_t primask = irq_save();
    phase = IDLE;
    if (due_rose) {
        /* a pulse began while the learn waited: it is timed from its edge, its snapshot
           is taken now */
        due_rose = 0;
        phase = HIGH;
        rise_us = due_rise_us;
        arm_snapshot();
    }
    irq_restore(primask);
}
