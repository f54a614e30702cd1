/*
 * flash.c - erase, program and the unique id of the Pico's QSPI flash (Winbond W25Q16JV),
 * from RAM.
 *
 * The RP2040 executes from this flash through the SSI's XIP mode (datasheet 2.6.3, 4.10);
 * to send it other commands the SSI must leave XIP, so nothing may be fetched from flash
 * meanwhile: these routines live in RAM (section .ramfunc, copied with .data at reset) and
 * run with interrupts masked (the vector table and handlers are in flash). They do what the
 * bootrom's flash access functions do (2.8.3.1: connect, exit XIP, erase/program, flush, enter
 * XIP), with no bootrom: the SSI in standard SPI mode, TMOD 0 (transmit and receive), 8-bit
 * frames (4.10.13, CTRLR0), the flash's /CS held low across each command by IO_QSPI's output
 * override (GPIO_QSPI_SS_CTRL.OUTOVER, 2.19.6.2), and commands 06h (write enable), 20h
 * (sector erase), 52h and D8h (32 and 64 KiB block erase), 02h (page program), 05h (status:
 * BUSY), 4Bh (unique id). Afterwards boot2,
 * kept in RAM, is called (with lr != 0 it returns, boot2.S) and sets XIP up again, and the
 * XIP cache is flushed.
 *
 * While the flash is busy (tSE up to 400 ms, tBE1 1600 ms, tBE2 2000 ms, tPP 3 ms: W25Q16JV,
 * PROTOCOL.md) the core sleeps between status polls, 20 us apart, on timer alarm 3 (4.6), so
 * it is back within 20 us of the part (the UART's holding register keeps the one character
 * that arrives meanwhile): WFI with PRIMASK set still wakes on a
 * pending enabled interrupt without taking it (ARMv6-M Architecture Reference Manual,
 * WFI). Nothing here calls code in
 * flash (helpers are forced inline, no division, no constant tables).
 */
#include "flash.h"

#include "rp2040.h"

#define RAMFUNC __attribute__((section(".ramfunc"), noinline, used))
#define RAM_INLINE static inline __attribute__((always_inline))
#define ALARM_FLASH 3u

#define CMD_WRITE_ENABLE 0x06u
#define CMD_READ_STATUS 0x05u
#define CMD_SECTOR_ERASE 0x20u
#define CMD_BLOCK32_ERASE 0x52u
#define CMD_BLOCK64_ERASE 0xd8u
#define CMD_PAGE_PROGRAM 0x02u
#define CMD_UNIQUE_ID 0x4bu
#define STATUS_BUSY 0x01u

#define T_POLL_US 20u
#define T_ERASE_LIMIT_US 800000u /* twice tSE max */
#define T_BLOCK32_LIMIT_US 3200000u /* twice tBE1 max */
#define T_BLOCK64_LIMIT_US 4000000u /* twice tBE2 max */
#define T_PROGRAM_LIMIT_US 6000u /* twice tPP max */

static uint32_t boot2_ram[64]; /* boot2's 256 bytes (4.10: XIP set up again after a command) */

void flash_init(void)
{
    const uint32_t *src = (const uint32_t *)(uintptr_t)0x10000000u;
    uint32_t i;
    for (i = 0; i < 64u; i++) {
        boot2_ram[i] = src[i];
    }
    irq_enable(IRQ_TIMER_3); /* its pending bit ends the WFI between status polls */
}

RAM_INLINE uint32_t ram_save(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    return primask;
}

RAM_INLINE void ram_restore(uint32_t primask) { __asm volatile("msr primask, %0" ::"r"(primask) : "memory"); }

RAM_INLINE void cs_low(int low) { REG(IO_QSPI_SS_CTRL) = low ? IO_QSPI_OUTOVER_LOW : IO_QSPI_OUTOVER_HIGH; }

RAM_INLINE uint8_t xfer(uint8_t out)
{
    REG(SSI_DR0) = out;
    while (!(REG(SSI_SR) & SSI_SR_RFNE)) {
    }
    return (uint8_t)REG(SSI_DR0);
}

/* Out of XIP: SSI disabled, standard SPI, TMOD 0, DFS_32 7 (8-bit frames), slave 0 selected,
   enabled (4.10.13; BAUDR stays as boot2 set it, clk_sys / 4). */
RAM_INLINE void command_mode(void)
{
    REG(SSI_SSIENR) = 0u;
    REG(SSI_CTRLR0) = 7u << 16;
    REG(SSI_SER) = 1u;
    REG(SSI_SSIENR) = 1u;
    cs_low(0);
}

/* Back to XIP: /CS to the SSI again, boot2 sets the SSI for 03h reads, and the XIP cache is
   flushed (2.6.3), or it would go on returning what the sectors held before (as the bootrom's
   flash_flush_cache does: FLUSH written, then read, which completes once it is done). */
RAM_INLINE void xip_mode(void)
{
    REG(IO_QSPI_SS_CTRL) = IO_QSPI_OUTOVER_NORMAL;
    ((void (*)(void))((uintptr_t)boot2_ram | 1u))();
    REG(XIP_CTRL_FLUSH) = 1u;
    (void)REG(XIP_CTRL_FLUSH);
}

RAM_INLINE void command(uint8_t op) { cs_low(1); (void)xfer(op); cs_low(0); }

RAM_INLINE void sleep_us(uint32_t us)
{
    uint32_t at = REG(TIMER_RAWL) + us;
    REG(TIMER_INTR) = 1u << ALARM_FLASH;
    REG_SET(TIMER_INTE) = 1u << ALARM_FLASH;
    REG(TIMER_ALARM(ALARM_FLASH)) = at;
    while ((int32_t)(REG(TIMER_RAWL) - at) < 0) {
        __asm volatile("wfi" ::: "memory");
    }
    REG(TIMER_INTR) = 1u << ALARM_FLASH;
}

/* Poll status register 1 until BUSY clears; 0 = cleared within limit_us. */
RAM_INLINE int wait_ready(uint32_t poll_us, uint32_t limit_us)
{
    uint32_t t0 = REG(TIMER_RAWL);
    uint8_t status;
    do {
        sleep_us(poll_us);
        cs_low(1);
        (void)xfer(CMD_READ_STATUS);
        status = xfer(0);
        cs_low(0);
    } while ((status & STATUS_BUSY) && REG(TIMER_RAWL) - t0 < limit_us);
    return status & STATUS_BUSY;
}

/* The interrupt of alarm 3 woke a WFI only: nothing is left pending for its handler. */
RAM_INLINE void alarm_quiet(void)
{
    REG(TIMER_ARMED) = 1u << ALARM_FLASH;
    REG(TIMER_INTR) = 1u << ALARM_FLASH;
    REG_CLR(TIMER_INTE) = 1u << ALARM_FLASH;
    REG(NVIC_ICPR) = 1u << IRQ_TIMER_3;
}

RAM_INLINE void send_address(uint8_t op, uint32_t offset)
{
    (void)xfer(op);
    (void)xfer((uint8_t)(offset >> 16));
    (void)xfer((uint8_t)(offset >> 8));
    (void)xfer((uint8_t)offset);
}

RAMFUNC int flash_erase(uint32_t offset, uint32_t bytes)
{
    uint32_t primask = ram_save();
    uint8_t op = CMD_SECTOR_ERASE;
    uint32_t limit_us = T_ERASE_LIMIT_US;
    int busy;
    if (bytes == FLASH_BLOCK64_BYTES) {
        op = CMD_BLOCK64_ERASE;
        limit_us = T_BLOCK64_LIMIT_US;
    } else if (bytes == FLASH_BLOCK32_BYTES) {
        op = CMD_BLOCK32_ERASE;
        limit_us = T_BLOCK32_LIMIT_US;
    }
    command_mode();
    command(CMD_WRITE_ENABLE);
    cs_low(1);
    send_address(op, offset);
    cs_low(0);
    busy = wait_ready(T_POLL_US, limit_us);
    alarm_quiet();
    xip_mode();
    ram_restore(primask);
    return busy;
}

RAMFUNC int flash_program(uint32_t offset, const uint8_t *data, uint32_t len)
{
    uint32_t primask = ram_save();
    uint32_t i;
    int busy;
    command_mode();
    command(CMD_WRITE_ENABLE);
    cs_low(1);
    send_address(CMD_PAGE_PROGRAM, offset);
    for (i = 0; i < len; i++) {
        (void)xfer(data[i]);
    }
    cs_low(0);
    busy = wait_ready(T_POLL_US, T_PROGRAM_LIMIT_US);
    alarm_quiet();
    xip_mode();
    ram_restore(primask);
    return busy;
}

RAMFUNC void flash_unique_id(uint8_t uid[8])
{
    uint32_t primask = ram_save();
    uint32_t i;
    command_mode();
    cs_low(1);
    (void)xfer(CMD_UNIQUE_ID);
    for (i = 0; i < 4u; i++) {
        (void)xfer(0); /* four dummy bytes */
    }
    for (i = 0; i < 8u; i++) {
        uid[i] = xfer(0);
    }
    cs_low(0);
    xip_mode();
    ram_restore(primask);
}
