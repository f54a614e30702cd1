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

/* Protocol 2's gate in closed loop (gate.c): the PWM is the charge source, at full scale
   (CC = TOP + 1: high throughout, 4.5.2) to charge and 0 to discharge, through the gate's
   1 kOhm into its 2.2 uF while PIN_GATE is high. The gate is read back on ADC0 = GP26
   (4.9) through a unity-gain buffer and a 1:2 divider (0..6.6 V of gate is 0..3.3 V). */
#define PIN_GATE_SENSE 26u
#define GATE_SENSE_CHANNEL 0u
#define GATE_SENSE_DIVIDER 2u
#define GATE_RC_US 2200u            /* nominal R C: 1 kOhm x 2.2 uF */
#define GATE_RAIL_UV GATE_FULL_SCALE_UV
#define GATE_SOURCE_SETTLE_US 20u   /* the source's filter and amplifier, rail to rail */
#define GATE_SAMPLES 256u           /* conversions averaged for a read-back (512 us) */
#define GATE_SAMPLES_FAST 64u       /* between the pulses of one move (128 us) */
#define GATE_ITERATIONS 6u          /* pulses of one move at most */
#define GATE_CAL_PULSE_US 100u      /* PROTOCOL.md, "Actuator calibration": the reference design's */
#define GATE_CAL_SAMPLES 1024u      /* each calibration read-back (2 ms) */
#define GATE_LEAK_SAMPLES 16384u    /* each end of the leak's hold (33 ms) */
#define GATE_LEAK_HOLD_US 2000000u  /* >= GATE_LEAK_HOLD_MS (1000 ms); 2 s halves the noise */
#define GATE_LEAK_AT_UV 3000000     /* the hold's gate voltage: mid-range */

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
