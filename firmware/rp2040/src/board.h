/*
 * board.h - the edge board around a Raspberry Pi Pico: pins, clocks and timing budget.
 * README.md in this directory has the wiring and where each number comes from.
 */
#ifndef TR_BOARD_H
#define TR_BOARD_H

#include <stdint.h>

/* RS-485 transceiver on UART0 (RP2040 datasheet 4.2; function 2 on GPIO0/1, table 2.19.2) */
#define PIN_UART_TX 0u
#define PIN_UART_RX 1u
#define PIN_RS485_DE 2u /* driver enable, high while the board drives the bus (RE tied to it) */
#define BUS_BAUD 115200u

/* TI ADS131M04 on SPI0 (function 1 on GPIO16..19) */
#define PIN_ADC_MISO 16u
#define PIN_ADC_CS 17u /* chip select driven by SIO: it spans the whole 18-byte frame */
#define PIN_ADC_SCLK 18u
#define PIN_ADC_MOSI 19u
#define PIN_ADC_DRDY 20u /* data ready, active low */
#define PIN_ADC_SYNC 21u /* SYNC/RESET, active low */

/* The learn trigger, the gate charge pulse and the gate setpoint (PWM slice 7 A) */
#define PIN_LEARN 22u
#define PIN_GATE 15u
#define PIN_GATE_DAC 14u
#define PWM_TOP_COUNT 6599u
#define GATE_FULL_SCALE_UV 6600000u /* 3.3 V PWM, filtered, times 2 */

/* Clocks: 12 MHz crystal (2.16), clk_sys = clk_peri = 125 MHz from PLL_SYS (2.18). */
#define XOSC_HZ 12000000u
#define CLK_SYS_HZ 125000000u

/* Timing (us) */
#define LEARN_LOCKOUT_US 20u /* edges of the learn line ignored this long after an accepted one */
#define GATE_PULSE_US 100u   /* the gate charge pulse (physics.md: 25..200 us, 100 default) */
#define TURNAROUND_US 350u   /* silence after a request before DE rises: 4 characters, >= 250 us */

/* Timer alarms (4.6): one each, so no alarm is shared between contexts. */
#define ALARM_REPLY 0u
#define ALARM_GATE 1u
#define ALARM_LOCKOUT 2u

/* Board configuration block: the last 4 KiB sector of the Pico's 2 MiB flash, written by
   its own .uf2 (tools/image.py config), so every board runs the same image. */
#define CONFIG_BLOCK_ADDR 0x101ff000u
#define CONFIG_MAGIC 0x31425254u /* "TRB1" */

#endif
