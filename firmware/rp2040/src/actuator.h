#ifndef TR_ACTUATOR_H
#define TR_ACTUATOR_H

#include <stdint.h>

/* The gate setpoint (PWM on PIN_GATE_DAC) and the gate pulse pin, both off. */
void actuator_init(void);
/* Set the gate setpoint to gate_uv (0..GATE_FULL_SCALE_UV, 1 mV steps) and start the gate
   charge pulse: PIN_GATE high for GATE_PULSE_US, ended by a timer alarm. */
void actuator_drive(int32_t gate_uv);
/* The setpoint the PWM holds now, read back from its compare register (uV, 1 mV steps). */
int32_t actuator_setpoint_uv(void);
/* 1 while a gate pulse is running. */
int actuator_pulsing(void);

#endif
