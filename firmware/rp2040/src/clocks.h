#ifndef TR_CLOCKS_H
#define TR_CLOCKS_H

#include <stdint.h>

/* Crystal, PLL, clk_sys/clk_peri 125 MHz, timer tick; takes the peripherals out of reset. */
void clocks_init(void);
/* Select a pin's function (2.19.2) and its pad settings (2.19.6.3). */
void gpio_function(uint32_t pin, uint32_t func, uint32_t pad);
/* Make a pin an SIO output at level. */
void gpio_output(uint32_t pin, int level);
/* Arm timer alarm n for the absolute time at_us (its interrupt enabled), or disarm it. */
void alarm_at(uint32_t alarm, uint32_t at_us);
void alarm_cancel(uint32_t alarm);

#endif
