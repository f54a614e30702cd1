#ifndef TR_RS485_H
#define TR_RS485_H

#include <stdint.h>

/* UART0 at BUS_BAUD 8N1 with the transceiver's driver enable on PIN_RS485_DE. */
void rs485_init(void);
/* Next received byte (0..255) and the time its stop bit ended (us), or -1 when none. */
int rs485_rx_pop(uint32_t *at_us);
/* Received bytes not yet popped. */
uint32_t rs485_rx_pop_pending(void);
/* Transmit len bytes: DE raised before the first start bit, dropped once the UART's BUSY
   flag clears after the last stop bit (4.2.8, UARTFR). idle() runs while waiting. */
void rs485_send(const uint8_t *wire, uint32_t len, void (*idle)(void));
/* Receive errors (framing, parity, break, overrun) and bytes lost to a full buffer. */
uint32_t rs485_errors(void);

#endif
