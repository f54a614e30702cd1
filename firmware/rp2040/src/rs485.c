/*
 * rs485.c - UART0 (ARM PL011, RP2040 datasheet 4.2) on an RS-485 transceiver.
 *
 * The FIFOs are off (UARTLCR_H.FEN = 0), so the receive interrupt comes at every character's
 * stop bit (4.2.6): the end of a request is stamped within one interrupt latency of the
 * delimiter, not a receive-timeout later (32 bit times). Bytes go through a ring buffer to
 * the main loop, which feeds the core; transmission is from the main loop too.
 */
#include "rs485.h"

#include "board.h"
#include "clocks.h"
#include "rp2040.h"

#define RX_RING 256u /* > three longest frames; a power of two */

static volatile uint8_t rx_data[RX_RING];
static volatile uint32_t rx_time[RX_RING];
static volatile uint32_t rx_head, rx_tail, rx_errors;

void rs485_init(void)
{
    /* 4.2.7.1: divisor = clk_peri / (16 * baud) in 1/64ths, rounded */
    uint32_t div64 = (8u * CLK_SYS_HZ / BUS_BAUD + 1u) / 2u;
    gpio_output(PIN_RS485_DE, 0);
    REG(UART_IBRD) = div64 >> 6;
    REG(UART_FBRD) = div64 & 63u;
    REG(UART_LCR_H) = UART_LCR_H_8BIT; /* written after the divisors: it latches them */
    REG(UART_IMSC) = UART_INT_RX;
    REG(UART_CR) = UART_CR_EN_RX_TX;
    gpio_function(PIN_UART_TX, FUNC_UART, PAD_DRIVE_4MA);
    gpio_function(PIN_UART_RX, FUNC_UART, PAD_IE | PAD_PUE | PAD_SCHMITT);
    irq_enable(IRQ_UART0);
}

void isr_uart0(void)
{
    while (!(REG(UART_FR) & UART_FR_RXFE)) {
        uint32_t dr = REG(UART_DR);
        uint32_t head = rx_head;
        if (dr & UART_DR_ERRORS) {
            rx_errors++;
        }
        if (head - rx_tail >= RX_RING) {
            rx_errors++;
            continue;
        }
        rx_data[head % RX_RING] = (uint8_t)dr;
        rx_time[head % RX_RING] = timer_now_us();
        rx_head = head + 1u;
    }
}

int rs485_rx_pop(uint32_t *at_us)
{
    uint32_t tail = rx_tail;
    int byte;
    if (tail == rx_head) {
        return -1;
    }
    byte = rx_data[tail % RX_RING];
    *at_us = rx_time[tail % RX_RING];
    rx_tail = tail + 1u;
    return byte;
}

uint32_t rs485_rx_pop_pending(void) { return rx_head - rx_tail; }

uint32_t rs485_errors(void) { return rx_errors; }

void rs485_send(const uint8_t *wire, uint32_t len, void (*idle)(void))
{
    uint32_t i;
    REG(SIO_GPIO_OUT_SET) = 1u << PIN_RS485_DE;
    for (i = 0; i < len; i++) {
        while (REG(UART_FR) & UART_FR_TXFF) {
            idle();
        }
        REG(UART_DR) = wire[i];
    }
    /* BUSY stays set until the last stop bit has left the shift register (4.2.8) */
    while (REG(UART_FR) & UART_FR_BUSY) {
        idle();
    }
    REG(SIO_GPIO_OUT_CLR) = 1u << PIN_RS485_DE;
}
