#ifndef TR_GATE_H
#define TR_GATE_H

#include <stdint.h>

#include "twinrig_core2.h"

/* Protocol 2's MOSFET gate in closed loop (gate.c): the charge source (PWM, 4.5), the
   gate pulse (timer alarm, 4.6) and the gate read back on ADC0 (4.9). */

/* The source at 0, the pulse pin low, ADC0's pad analogue; the nominal table in use; the
   gate read once. sysadc_init must have run (clk_adc, the ADC out of reset). */
void gate_init(void);
/* Use this table (source 0 nominal, 1 measured). */
void gate_use(const tr2_gate_cal *cal, uint8_t source);
/* The table in use and its source. */
uint8_t gate_calibration(tr2_gate_cal *cal);
/* The nominal table: an RC gate of GATE_RC_US charged from GATE_RAIL_UV (board.h). */
void gate_nominal(tr2_gate_cal *cal);

/* Drive the gate towards target_uv: pulses timed from the table's slope at the gate's
   voltage, each read back, until what is left is below one shortest pulse's move, the
   iterations are spent or the next pulse and its read-back would end after deadline_us.
   Returns the gate read back, on the state grid (1 mV from state_min); *settled is 0 when
   a shortest pulse's move or more is left. */
int32_t gate_move(int32_t target_uv, uint32_t deadline_us, int *settled);
/* Read the gate now (GATE_SAMPLES conversions): what gate_move starts from next; 0 when
   the yield function (gate_set_yield) ended it early and it was dropped. */
int gate_refresh(void);
/* Measure the table (PROTOCOL.md, "Actuator calibration"): five points, each one charge
   and one discharge pulse of GATE_CAL_PULSE_US; the leak over a hold of GATE_LEAK_HOLD_US.
   Leaves the gate wherever the measurement ended; the caller moves it back. */
void gate_measure(tr2_gate_cal *out);
/* gate_refresh's read-back ends early, and is dropped, when fn returns non-zero: the main
   loop's own read-back gives way to a learn. NULL: never. */
void gate_set_yield(int (*fn)(void));
/* 1 while a gate pulse runs. */
int gate_pulsing(void);

#endif
