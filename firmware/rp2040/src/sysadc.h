#ifndef TR_SYSADC_H
#define TR_SYSADC_H

#include <stdint.h>

/* The RP2040's own ADC (4.9): PLL_USB at 48 MHz for clk_adc, the temperature sensor on,
   GP29 (VSYS / 3 on a Pico) as an analogue input. */
void sysadc_init(void);
/* One conversion of channel 0..4: the 12-bit code. */
uint32_t sysadc_read(uint32_t channel);
/* VSYS in uV: ADC3 through the Pico's 1:3 divider. */
uint32_t sysadc_supply_uv(void);
/* The die temperature in milli-degC from ADC4 (4.9.5). */
int32_t sysadc_temperature_mdegc(void);

#endif
