/*
 * actuator.c - the MOSFET edge's gate: a setpoint and the charge pulse.
 *
 * The setpoint is a PWM (RP2040 datasheet 4.5) on PIN_GATE_DAC, filtered and amplified by 2
 * on the board: 0..3.3 V duty becomes 0..6.6 V. The counter wraps at TOP = 6599 at clk_sys
 * (18.9 kHz), so one count is 1 mV of gate. While PIN_GATE is high the gate capacitor
 * charges from the setpoint through its 1 kOhm (physics.md: 2.2 uF, pulses of 25..200 us);
 * the pulse is ended by timer alarm ALARM_GATE (4.6), not by a loop.
 */
#include "actuator.h"

#include "board.h"
#include "clocks.h"
#include "gate_pwm.h"
#include "rp2040.h"

#define GATE_UV_PER_COUNT (GATE_FULL_SCALE_UV / (PWM_TOP_COUNT + 1u))

void actuator_init(void)
{
    gate_pwm_init();
    irq_enable(IRQ_TIMER_1);
}

void actuator_drive(int32_t gate_uv)
{
    uint32_t counts;
    if (gate_uv < 0) {
        gate_uv = 0;
    }
    counts = ((uint32_t)gate_uv + GATE_UV_PER_COUNT / 2u) / GATE_UV_PER_COUNT;
    if (counts > PWM_TOP_COUNT + 1u) {
        counts = PWM_TOP_COUNT + 1u;
    }
    /* CC is taken up when the counter wraps (4.5.2.2, double buffering): set the counter
       to TOP so that happens at the next count (8 ns), not up to 53 us into the pulse */
    REG(PWM_CC) = counts;
    REG(PWM_CTR) = PWM_TOP_COUNT;
    REG(SIO_GPIO_OUT_SET) = 1u << PIN_GATE;
    alarm_at(ALARM_GATE, timer_now_us() + GATE_PULSE_US);
}

void isr_timer_gate(void)
{
    REG(TIMER_INTR) = 1u << ALARM_GATE;
    REG(SIO_GPIO_OUT_CLR) = 1u << PIN_GATE;
}

int32_t actuator_setpoint_uv(void)
{
    uint32_t counts = REG(PWM_CC) & 0xffffu; /* channel A, 4.5.3 CC */
    if (counts > PWM_TOP_COUNT + 1u) {
        counts = PWM_TOP_COUNT + 1u; /* at or above TOP + 1 the output is high throughout */
    }
    return (int32_t)(counts * GATE_UV_PER_COUNT);
}

int actuator_pulsing(void) { return (int)((REG(SIO_BASE + 0x010u) >> PIN_GATE) & 1u); /* GPIO_OUT */ }
