/*
 * gate_pwm.h - the gate stage's PWM source and its switch, shared by both images' gate
 * drivers (actuator.c, protocol 1; gate.c, protocol 2).
 *
 * The PWM on PIN_GATE_DAC (RP2040 datasheet 4.5: GPIO n is slice n/2 mod 8, channel n%2),
 * filtered and amplified by 2 on the board, is the gate's charge source; PIN_GATE switches
 * it onto the gate. The counter wraps at PWM_TOP_COUNT at clk_sys, one count a
 * GATE_FULL_SCALE_UV / (TOP + 1) step of source.
 */
#ifndef GATE_PWM_H
#define GATE_PWM_H

#include "board.h"
#include "clocks.h"
#include "rp2040.h"

#define PWM_SLICE ((PIN_GATE_DAC >> 1) & 7u)
#define PWM_CSR (PWM_BASE + 0x14u * PWM_SLICE + 0x00u)
#define PWM_DIV (PWM_BASE + 0x14u * PWM_SLICE + 0x04u)
#define PWM_CTR (PWM_BASE + 0x14u * PWM_SLICE + 0x08u)
#define PWM_CC (PWM_BASE + 0x14u * PWM_SLICE + 0x0cu)
#define PWM_TOP (PWM_BASE + 0x14u * PWM_SLICE + 0x10u)

/* The switch open (PIN_GATE low), the source at 0, the PWM running (4.5.3: DIV 1.0, TOP,
   CC, CSR enabled free-running, channel A not inverted) on its pin. */
static inline void gate_pwm_init(void)
{
    gpio_output(PIN_GATE, 0);
    REG(PWM_DIV) = 1u << 4;
    REG(PWM_TOP) = PWM_TOP_COUNT;
    REG(PWM_CC) = 0u;
    REG(PWM_CSR) = 1u;
    gpio_function(PIN_GATE_DAC, FUNC_PWM, PAD_DRIVE_4MA);
}

#endif
