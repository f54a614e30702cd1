/*
 * learn.c - the learn trigger, its snapshot and the gate pulse.
 *
 * Rising edge: the ADC's filter is restarted at once (SYNC/RESET) and the first conversion
 * made wholly after the edge is read in the DRDY interrupt: one snapshot of all four nodes,
 * sampled together by the ADS131M04. Falling edge: the update is due; the main loop runs the
 * core's learn on the snapshot (the core is not re-entrant), drives the actuator and starts
 * the gate pulse. After every accepted edge the pin's interrupts stay off for
 * LEARN_LOCKOUT_US (timer alarm), so ringing on the line gives no extra edges; when the
 * lockout ends the level is read again, so an edge inside it is not lost. The actuator and
 * the gate pulse are in actuator.c.
 */
#include "learn.h"

#include "ads131m04.h"
#include "board.h"
#include "clocks.h"
#include "rp2040.h"

#define LEARN_EDGES (IO_EDGE_HIGH(PIN_LEARN) | IO_EDGE_LOW(PIN_LEARN))

enum { IDLE, HIGH, DUE };

static volatile int phase;          /* IDLE -> HIGH (rising) -> DUE (falling) -> IDLE */
static volatile int snap_wanted;    /* waiting for the first DRDY after the sync */
static volatile int snap_status;    /* -1 not yet, 0 ok, 1 failed */
static int32_t snapshot[4];

static void arm_snapshot(void)
{
    snap_status = -1;
    snap_wanted = 1;
    adc_sync();
    REG(IO_INTR(PIN_ADC_DRDY)) = IO_EDGE_LOW(PIN_ADC_DRDY);
    REG_SET(IO_PROC0_INTE(PIN_ADC_DRDY)) = IO_EDGE_LOW(PIN_ADC_DRDY);
}

static void lockout(void)
{
    REG_CLR(IO_PROC0_INTE(PIN_LEARN)) = LEARN_EDGES;
    alarm_at(ALARM_LOCKOUT, timer_now_us() + LEARN_LOCKOUT_US);
}

static void level_is(int high)
{
    if (phase == IDLE && high) {
        phase = HIGH;
        arm_snapshot();
        lockout();
    } else if (phase == HIGH && !high) {
        phase = DUE;
        lockout();
    }
}

void learn_init(void)
{
    gpio_function(PIN_LEARN, FUNC_SIO, PAD_IE | PAD_PDE | PAD_SCHMITT);
    REG(IO_INTR(PIN_LEARN)) = LEARN_EDGES;
    REG_SET(IO_PROC0_INTE(PIN_LEARN)) = LEARN_EDGES;
    REG(NVIC_IPR(IRQ_IO_BANK0)) &= ~(0xffu << (8u * (IRQ_IO_BANK0 % 4u))); /* highest */
    irq_enable(IRQ_IO_BANK0);
    irq_enable(IRQ_TIMER_2);
}

void isr_io_bank0(void)
{
    uint32_t ints = REG(IO_PROC0_INTS(PIN_LEARN)); /* GPIO16..23: LEARN and DRDY */
    if (ints & IO_EDGE_LOW(PIN_ADC_DRDY)) {
        REG(IO_INTR(PIN_ADC_DRDY)) = IO_EDGE_LOW(PIN_ADC_DRDY);
        if (snap_wanted) {
            snap_wanted = 0;
            REG_CLR(IO_PROC0_INTE(PIN_ADC_DRDY)) = IO_EDGE_LOW(PIN_ADC_DRDY);
            snap_status = adc_read_frame_now(snapshot);
        }
    }
    if (ints & LEARN_EDGES) {
        REG(IO_INTR(PIN_LEARN)) = LEARN_EDGES;
        if (phase == IDLE && (ints & IO_EDGE_HIGH(PIN_LEARN))) {
            level_is(1);
        } else if (phase == HIGH && (ints & IO_EDGE_LOW(PIN_LEARN))) {
            level_is(0);
        }
    }
}

void isr_timer_lockout(void)
{
    REG(TIMER_INTR) = 1u << ALARM_LOCKOUT;
    REG(IO_INTR(PIN_LEARN)) = LEARN_EDGES;
    REG_SET(IO_PROC0_INTE(PIN_LEARN)) = LEARN_EDGES;
    level_is((REG(SIO_GPIO_IN) >> PIN_LEARN) & 1u);
}

int learn_due(void) { return phase == DUE && snap_status >= 0; }

int learn_snapshot(int32_t node_uv[4])
{
    uint32_t i;
    for (i = 0; i < 4u; i++) {
        node_uv[i] = snapshot[i];
    }
    return snap_status;
}

void learn_done(void)
{
    uint32_t primask = irq_save();
    phase = IDLE;
    irq_restore(primask);
    /* a rising edge while the update ran was masked: look at the level now */
    primask = irq_save();
    level_is((REG(SIO_GPIO_IN) >> PIN_LEARN) & 1u);
    irq_restore(primask);
}
