/*
 * gate.c - protocol 2's MOSFET gate, driven in closed loop (PROTOCOL.md, "State, actuator
 * and residue" and "Actuator calibration").
 *
 * The stage (board.h, README.md): the PWM on PIN_GATE_DAC (slice 7 A, 4.5), filtered and
 * amplified by 2, is the charge source; PIN_GATE switches it onto the gate through 1 kOhm
 * into 2.2 uF. The source is used at its two ends only: full scale (CC = TOP + 1, the
 * output high throughout, 4.5.2) to charge towards GATE_RAIL_UV, 0 to discharge towards
 * 0 V. Both are DC, so the filter adds no ripple to the gate; the slopes are the largest
 * the stage has (a move within the reply's latency); and the slope is the rail's, which is
 * what the calibration table describes. A fine approach with the source at the target
 * would need no table but takes several R C (about 15 ms for 1 V to within 1 mV).
 *
 * A move: from the gate read back, a pulse whose width is the integral of dV / slope(V)
 * from the gate to the target over the table in use (eight sub-steps, the slope
 * interpolated as GateCalibration.slope_nv_per_us: tr2_gate_slope_nv_per_us), timed by
 * timer alarm ALARM_GATE from a timer tick (4.6: whole microseconds, the shortest 1 us),
 * then read back; repeated until what is left is below one shortest pulse's move (carried
 * as the residue, never reported as applied), the iterations are spent or the deadline
 * comes. The state reported is the read-back on the 1 mV grid.
 *
 * Read-back: ADC0 (GP26, its digital input off, 4.9) through the buffer and the 1:2 divider,
 * free-running conversions (CS.START_MANY) through the FIFO (4.9.2), averaged: 12 bits of
 * 3.3 V with an ENOB of 8.7 (4.9.3) is about 2.8 codes of noise, so 256 conversions give
 * about 0.3 mV of gate. Between read-backs the gate is taken to drift by the table's leak.
 */
#include "gate.h"

#include "board.h"
#include "clocks.h"
#include "gate_pwm.h"
#include "rp2040.h"

#define SIO_GPIO_OUT (SIO_BASE + 0x010u)
#define ADC_CS_RUN (ADC_CS_EN | ADC_CS_TS_EN | ADC_CS_AINSEL(GATE_SENSE_CHANNEL))
#define GRID_UV 1000 /* the state's grid */
#define SUBSTEPS 8u

static tr2_gate_cal table;
static uint8_t table_source;
static int32_t gate_uv;    /* the last read-back */
static uint32_t gate_at_us; /* when it was taken (the middle of its conversions) */
static int charging_now = -1; /* the source's end: 1 full scale, 0 zero, -1 not set */
static uint32_t source_at_us;
static int (*yield)(void);    /* non-zero: end a read-back early (gate_set_yield) */

void gate_set_yield(int (*fn)(void)) { yield = fn; }

void gate_nominal(tr2_gate_cal *cal)
{
    int i;
    for (i = 0; i < TR2_GATE_CAL_POINTS; i++) {
        int32_t v = 1000000 * (i + 1);
        cal->charge_gate_uv[i] = cal->discharge_gate_uv[i] = v;
        /* GateCalibration.from_rc: (rail - V) x 1000 // RC and V x 1000 // RC (64 bits) */
        cal->charge_nv_per_us[i] = (int32_t)((uint64_t)(GATE_RAIL_UV - (uint32_t)v) * 1000u / GATE_RC_US);
        cal->discharge_nv_per_us[i] = (int32_t)((uint64_t)(uint32_t)v * 1000u / GATE_RC_US);
    }
    cal->leak_uv_per_s = 0;
}

void gate_use(const tr2_gate_cal *cal, uint8_t source)
{
    table = *cal;
    table_source = source;
}

uint8_t gate_calibration(tr2_gate_cal *cal)
{
    *cal = table;
    return table_source;
}

int gate_pulsing(void) { return (int)((REG(SIO_GPIO_OUT) >> PIN_GATE) & 1u); }

void isr_timer_gate(void)
{
    REG(TIMER_INTR) = 1u << ALARM_GATE;
    REG(SIO_GPIO_OUT_CLR) = 1u << PIN_GATE;
}

/* The source at one end; after a change the pulse waits for the stage to settle. CC is
   taken up at the counter's wrap (4.5.2.2, double buffering): the counter is set to TOP
   so that happens at the next count. */
static void source(int charging)
{
    if (charging == charging_now) {
        return;
    }
    REG(PWM_CC) = charging ? PWM_TOP_COUNT + 1u : 0u;
    REG(PWM_CTR) = PWM_TOP_COUNT;
    charging_now = charging;
    source_at_us = timer_now_us();
}

/* One pulse of width_us whole microseconds: started on a timer tick, ended by the alarm
   at the tick width_us later (4.6.1: an alarm fires when the count equals ALARMn). */
static void pulse(uint32_t width_us)
{
    uint32_t t0;
    while (timer_now_us() - source_at_us < GATE_SOURCE_SETTLE_US) {
    }
    t0 = timer_now_us();
    while (timer_now_us() == t0) {
    }
    REG(SIO_GPIO_OUT_SET) = 1u << PIN_GATE;
    alarm_at(ALARM_GATE, t0 + 1u + width_us);
    for (;;) {
        uint32_t primask = irq_save();
        if (!gate_pulsing()) {
            irq_restore(primask);
            return;
        }
        wait_for_interrupt();
        irq_restore(primask);
    }
}

/* Conversions of ADC0, free-running into the FIFO (4.9.2), summed; *n is how many were
   asked and becomes how many were taken (fewer when may_yield and yield asks). The FIFO
   holds 4, so it is read as they come; one lost to an interrupt (FCS.OVER) is not counted. */
static uint32_t adc_sum(uint32_t *n, int may_yield)
{
    uint32_t sum = 0, got = 0;
    REG(ADC_FCS) = ADC_FCS_EN;
    REG(ADC_CS) = ADC_CS_RUN | ADC_CS_START_MANY;
    while (got < *n && !(may_yield && yield && yield())) {
        if (ADC_FCS_LEVEL(REG(ADC_FCS)) != 0u) {
            sum += REG(ADC_FIFO) & 0xfffu;
            got++;
        }
    }
    REG(ADC_CS) = ADC_CS_RUN;
    while (!(REG(ADC_CS) & ADC_CS_READY)) {
    }
    while (ADC_FCS_LEVEL(REG(ADC_FCS)) != 0u) {
        (void)REG(ADC_FIFO);
    }
    REG(ADC_FCS) = 0u;
    *n = got;
    return sum;
}

/* The gate (uV) from n conversions: sum x 2 x 3.3 V / 4096 / n = sum x 103125 / (64 n).
   A read that gave way (may_yield) before all n is dropped: the last one stays. */
static int read_gate_yielding(uint32_t n, int may_yield)
{
    uint32_t t0 = timer_now_us(), want = n;
    uint64_t num = (uint64_t)adc_sum(&n, may_yield) * (103125u * GATE_SENSE_DIVIDER / 2u);
    uint64_t den = 64u * (uint64_t)n;
    if (n != want) {
        return 0;
    }
    gate_uv = (int32_t)((num + den / 2u) / den);
    gate_at_us = t0 + (timer_now_us() - t0) / 2u;
    return 1;
}

static int32_t read_gate(uint32_t n)
{
    (void)read_gate_yielding(n, 0);
    return gate_uv;
}

int gate_refresh(void) { return read_gate_yielding(GATE_SAMPLES, 1); }

void gate_init(void)
{
    gate_pwm_init();
    charging_now = 0;
    source_at_us = timer_now_us();
    REG(PADS_GPIO(PIN_GATE_SENSE)) = PAD_OD; /* output disabled, digital input off (4.9) */
    irq_enable(IRQ_TIMER_1);
    gate_nominal(&table);
    table_source = 0;
    gate_refresh();
}

/* The gate now: the last read-back and the leak since, uV/s x ms / 1000 (32 bits: the
   read-back is at most GATE_CHECK_US old while idle; an older one, or a leak beyond
   +-100 mV/s, which no gate that holds a learned value has, is not extrapolated). */
static int32_t gate_estimate(void)
{
    uint32_t ms = (timer_now_us() - gate_at_us) / 1000u;
    int32_t leak = table.leak_uv_per_s;
    if (ms > 10000u || leak > 100000 || leak < -100000) {
        return gate_uv;
    }
    return gate_uv + leak * (int32_t)ms / 1000;
}

static uint32_t magnitude(int32_t v) { return v < 0 ? 0u - (uint32_t)v : (uint32_t)v; }

/* The pulse (us) from gate g to g + delta: the sum over SUBSTEPS of the sub-step over the
   slope at its middle, rounded; below SINGLE_STEP_UV one step (the slope's curvature over it
   is under 0.1 % of a pulse), in 32 bits, so a learn's update starts its pulse at once. */
#define SINGLE_STEP_UV 200000u
static uint32_t pulse_us(int32_t g, int32_t delta)
{
    int charging = delta > 0;
    uint32_t m = magnitude(delta), done = 0, k;
    uint64_t ns = 0;
    if (m < SINGLE_STEP_UV) {
        int32_t mid = charging ? g + (int32_t)(m / 2u) : g - (int32_t)(m / 2u);
        uint32_t s = (uint32_t)tr2_gate_slope_nv_per_us(&table, mid, charging);
        return (m * 1000u + s / 2u) / s;
    }
    for (k = 1; k <= SUBSTEPS; k++) {
        uint32_t to = (uint32_t)((uint64_t)m * k / SUBSTEPS);
        uint32_t mid = done + (to - done) / 2u;
        int32_t v = charging ? g + (int32_t)mid : g - (int32_t)mid;
        uint32_t s = (uint32_t)tr2_gate_slope_nv_per_us(&table, v, charging);
        ns += (uint64_t)(to - done) * 1000000u / s;
        done = to;
    }
    return (uint32_t)((ns + 500u) / 1000u);
}

/* What the shortest pulse (1 us) moves at g, nV: below it a step is carried. */
static uint32_t shortest_nv(int32_t g, int charging)
{
    return (uint32_t)tr2_gate_slope_nv_per_us(&table, g, charging);
}

static int32_t on_grid(int32_t g)
{
    /* the nearest 1 mV point, halves up (the grid from state_min = 1 V is whole mV) */
    int32_t q = (g >= 0 ? g + GRID_UV / 2 : g - (GRID_UV - 1) + GRID_UV / 2) / GRID_UV;
    return q * GRID_UV;
}

int32_t gate_move(int32_t target_uv, uint32_t deadline_us, int *settled)
{
    int32_t g = gate_estimate();
    uint32_t i, read_us = 2u * GATE_SAMPLES + 10u, fast_us = 2u * GATE_SAMPLES_FAST + 10u;
    int pulsed = 0;
    for (i = 0; i < GATE_ITERATIONS; i++) {
        int32_t delta = target_uv - g;
        int charging = delta > 0;
        uint32_t width, left;
        int32_t room;
        if ((uint64_t)magnitude(delta) * 1000u < shortest_nv(g, charging)) {
            break; /* below the shortest pulse's move: carried */
        }
        source(charging); /* first: the stage settles while the width is worked out */
        width = pulse_us(g, delta);
        room = (int32_t)(deadline_us - timer_now_us()) - (int32_t)(read_us + GATE_SOURCE_SETTLE_US + 2u);
        if (room < 1) {
            break; /* no time left for a pulse and its read-back */
        }
        left = (uint32_t)room;
        if (width > left) {
            width = left;
        }
        if (width == 0u) {
            width = 1u;
        }
        pulse(width);
        pulsed = 1;
        g = read_gate(GATE_SAMPLES_FAST);
        if ((int32_t)(deadline_us - timer_now_us()) < (int32_t)(fast_us + read_us)) {
            break;
        }
    }
    if (pulsed) {
        /* the last read-back at full length: the fast one's conversions and the rest */
        uint32_t fast = (uint32_t)g;
        int32_t rest = read_gate(GATE_SAMPLES - GATE_SAMPLES_FAST);
        g = (int32_t)((fast * GATE_SAMPLES_FAST + (uint32_t)rest * (GATE_SAMPLES - GATE_SAMPLES_FAST) +
                       GATE_SAMPLES / 2u) / GATE_SAMPLES);
        gate_uv = g;
    }
    {
        int32_t delta = target_uv - g;
        *settled = (uint64_t)magnitude(delta) * 1000u < shortest_nv(g, delta > 0);
    }
    return on_grid(g);
}

static void sleep_until(uint32_t at_us)
{
    alarm_at(ALARM_REPLY, at_us);
    while ((int32_t)(timer_now_us() - at_us) < 0) {
        uint32_t primask = irq_save();
        if ((int32_t)(timer_now_us() - at_us) < 0) {
            wait_for_interrupt();
        }
        irq_restore(primask);
    }
    alarm_cancel(ALARM_REPLY);
}

static void settle_at(int32_t v)
{
    int settled;
    (void)gate_move(v, timer_now_us() + 20000u, &settled);
}

void gate_measure(tr2_gate_cal *out)
{
    int i;
    int32_t v0, v1, v2;
    uint32_t t0;
    for (i = 0; i < TR2_GATE_CAL_POINTS; i++) {
        settle_at(1000000 * (i + 1));
        v0 = read_gate(GATE_CAL_SAMPLES);
        source(1);
        pulse(GATE_CAL_PULSE_US);
        v1 = read_gate(GATE_CAL_SAMPLES);
        source(0);
        pulse(GATE_CAL_PULSE_US);
        v2 = read_gate(GATE_CAL_SAMPLES);
        /* the change over the width: the slope at the change's mid-point, nV/us */
        out->charge_gate_uv[i] = v0 + (v1 - v0) / 2;
        out->charge_nv_per_us[i] = (v1 - v0) * (int32_t)(1000u / GATE_CAL_PULSE_US);
        out->discharge_gate_uv[i] = v2 + (v1 - v2) / 2;
        out->discharge_nv_per_us[i] = (v1 - v2) * (int32_t)(1000u / GATE_CAL_PULSE_US);
    }
    settle_at(GATE_LEAK_AT_UV);
    v0 = read_gate(GATE_LEAK_SAMPLES);
    t0 = gate_at_us;
    sleep_until(t0 + GATE_LEAK_HOLD_US - GATE_LEAK_SAMPLES);
    v1 = read_gate(GATE_LEAK_SAMPLES);
    out->leak_uv_per_s = (int32_t)((int64_t)(v1 - v0) * 1000000 / (int64_t)(gate_at_us - t0));
}
