/*
 * rp2040.h - the few RP2040 registers this port touches (RP2040 datasheet, 2021-03 onwards).
 * Each block names the datasheet section its offsets and bits come from.
 */
#ifndef TR_RP2040_H
#define TR_RP2040_H

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
/* Atomic register access aliases (2.1.2): +0x1000 XOR, +0x2000 set, +0x3000 clear. */
#define REG_SET(addr) REG((addr) + 0x2000u)
#define REG_CLR(addr) REG((addr) + 0x3000u)

/* 2.14 Subsystem resets */
#define RESETS_BASE 0x4000c000u
#define RESETS_RESET (RESETS_BASE + 0x0u)
#define RESETS_DONE (RESETS_BASE + 0x8u)
#define RESET_ADC (1u << 0)
#define RESET_IO_BANK0 (1u << 5)
#define RESET_PADS_BANK0 (1u << 8)
#define RESET_PLL_SYS (1u << 12)
#define RESET_PLL_USB (1u << 13)
#define RESET_PWM (1u << 14)
#define RESET_SPI0 (1u << 16)
#define RESET_TIMER (1u << 21)
#define RESET_UART0 (1u << 22)

/* 2.16 XOSC */
#define XOSC_BASE 0x40024000u
#define XOSC_CTRL (XOSC_BASE + 0x00u)
#define XOSC_STATUS (XOSC_BASE + 0x04u)
#define XOSC_STARTUP (XOSC_BASE + 0x0cu)
#define XOSC_CTRL_1_15MHZ 0xaa0u
#define XOSC_CTRL_ENABLE (0xfabu << 12)
#define XOSC_STATUS_STABLE (1u << 31)

/* 2.18 PLL */
#define PLL_SYS_BASE 0x40028000u
#define PLL_CS (PLL_SYS_BASE + 0x0u)
#define PLL_PWR (PLL_SYS_BASE + 0x4u)
#define PLL_FBDIV_INT (PLL_SYS_BASE + 0x8u)
#define PLL_PRIM (PLL_SYS_BASE + 0xcu)
#define PLL_USB_BASE 0x4002c000u /* same registers at the same offsets as PLL_SYS */
#define PLL_CS_LOCK (1u << 31)
#define PLL_PWR_PD (1u << 0)
#define PLL_PWR_POSTDIVPD (1u << 3)
#define PLL_PWR_VCOPD (1u << 5)

/* 2.15 Clocks */
#define CLOCKS_BASE 0x40008000u
#define CLK_REF_CTRL (CLOCKS_BASE + 0x30u)
#define CLK_REF_SELECTED (CLOCKS_BASE + 0x38u)
#define CLK_SYS_CTRL (CLOCKS_BASE + 0x3cu)
#define CLK_SYS_SELECTED (CLOCKS_BASE + 0x44u)
#define CLK_PERI_CTRL (CLOCKS_BASE + 0x48u)
#define CLK_ADC_CTRL (CLOCKS_BASE + 0x60u)
#define CLK_CTRL_ENABLE (1u << 11)

/* 4.7 Watchdog: its tick generator clocks the timer (4.6.1) */
#define WATCHDOG_CTRL 0x40058000u /* 4.7.6 CTRL: bit 31 TRIGGER, bit 30 ENABLE, 23:0 TIME */
#define WATCHDOG_LOAD 0x40058004u /* counts down twice a tick (erratum RP2040-E1) */
#define WATCHDOG_REASON 0x40058008u /* 4.7 REASON: bit 0 TIMER, bit 1 FORCE */
#define WATCHDOG_SCRATCH(n) (0x4005800cu + 4u * (n)) /* 0..7; 4..7 are the bootrom's */
#define WATCHDOG_TICK 0x4005802cu
#define WATCHDOG_CTRL_TRIGGER (1u << 31)
#define WATCHDOG_CTRL_ENABLE (1u << 30)
#define WATCHDOG_REASON_TIMER (1u << 0)
#define WATCHDOG_REASON_FORCE (1u << 1)
#define WATCHDOG_TICK_ENABLE (1u << 9)
/* 2.13.5 PSM WDSEL: what a watchdog reset resets; all but ROSC (bit 0) and XOSC (bit 1) */
#define PSM_WDSEL 0x40010008u
#define PSM_WDSEL_ALL_BUT_OSC (0x1ffffu & ~3u)

/* 4.6 Timer */
#define TIMER_BASE 0x40054000u
#define TIMER_ALARM(n) (TIMER_BASE + 0x10u + 4u * (n))
#define TIMER_ARMED (TIMER_BASE + 0x20u)
#define TIMER_RAWH (TIMER_BASE + 0x24u)
#define TIMER_RAWL (TIMER_BASE + 0x28u)
#define TIMER_INTR (TIMER_BASE + 0x34u)
#define TIMER_INTE (TIMER_BASE + 0x38u)

/* 2.19 GPIO: IO_BANK0 and PADS_BANK0 */
#define IO_BANK0_BASE 0x40014000u
#define GPIO_CTRL(n) (IO_BANK0_BASE + 0x004u + 8u * (n))
#define IO_INTR(n) (IO_BANK0_BASE + 0x0f0u + 4u * ((n) / 8u))
#define IO_PROC0_INTE(n) (IO_BANK0_BASE + 0x100u + 4u * ((n) / 8u))
#define IO_PROC0_INTS(n) (IO_BANK0_BASE + 0x120u + 4u * ((n) / 8u))
#define IO_EDGE_LOW(n) (4u << (4u * ((n) % 8u)))
#define IO_EDGE_HIGH(n) (8u << (4u * ((n) % 8u)))
#define FUNC_SPI 1u
#define FUNC_UART 2u
#define FUNC_PWM 4u
#define FUNC_SIO 5u
#define PADS_BANK0_BASE 0x4001c000u
#define PADS_GPIO(n) (PADS_BANK0_BASE + 0x04u + 4u * (n))
#define PAD_OD (1u << 7)
#define PAD_IE (1u << 6)
#define PAD_PUE (1u << 3)
#define PAD_PDE (1u << 2)
#define PAD_SCHMITT (1u << 1)
#define PAD_DRIVE_4MA (1u << 4)

/* 4.5 PWM */
#define PWM_BASE 0x40050000u

/* 2.3.1 SIO */
#define SIO_BASE 0xd0000000u
#define SIO_GPIO_IN (SIO_BASE + 0x004u)
#define SIO_GPIO_OUT_SET (SIO_BASE + 0x014u)
#define SIO_GPIO_OUT_CLR (SIO_BASE + 0x018u)
#define SIO_GPIO_OE_SET (SIO_BASE + 0x024u)

/* 4.2 UART (ARM PL011) */
#define UART0_BASE 0x40034000u
#define UART_DR (UART0_BASE + 0x00u)
#define UART_FR (UART0_BASE + 0x18u)
#define UART_IBRD (UART0_BASE + 0x24u)
#define UART_FBRD (UART0_BASE + 0x28u)
#define UART_LCR_H (UART0_BASE + 0x2cu)
#define UART_CR (UART0_BASE + 0x30u)
#define UART_IFLS (UART0_BASE + 0x34u)
#define UART_IMSC (UART0_BASE + 0x38u)
#define UART_ICR (UART0_BASE + 0x44u)
#define UART_FR_BUSY (1u << 3)
#define UART_FR_RXFE (1u << 4)
#define UART_FR_TXFF (1u << 5)
#define UART_LCR_H_8BIT (3u << 5)
#define UART_LCR_H_FEN (1u << 4)
#define UART_CR_EN_RX_TX ((1u << 0) | (1u << 8) | (1u << 9))
#define UART_INT_RX (1u << 4)
#define UART_INT_RT (1u << 6)
#define UART_DR_ERRORS (0xfu << 8)

/* 4.4 SPI (ARM PL022) */
#define SPI0_BASE 0x4003c000u
#define SPI_CR0 (SPI0_BASE + 0x00u)
#define SPI_CR1 (SPI0_BASE + 0x04u)
#define SPI_DR (SPI0_BASE + 0x08u)
#define SPI_SR (SPI0_BASE + 0x0cu)
#define SPI_CPSR (SPI0_BASE + 0x10u)
#define SPI_CR0_SPH (1u << 7)
#define SPI_CR1_SSE (1u << 1)
#define SPI_SR_RNE (1u << 2)
#define SPI_SR_TNF (1u << 1)
#define SPI_SR_BSY (1u << 4)

/* 4.9 ADC: CS (EN, TS_EN, START_ONE, READY, AINSEL) and RESULT (4.9.6) */
#define ADC_BASE 0x4004c000u
#define ADC_CS (ADC_BASE + 0x00u)
#define ADC_RESULT (ADC_BASE + 0x04u)
#define ADC_CS_EN (1u << 0)
#define ADC_CS_TS_EN (1u << 1)
#define ADC_CS_START_ONE (1u << 2)
#define ADC_CS_READY (1u << 8)
#define ADC_CS_AINSEL(n) ((uint32_t)(n) << 12)
#define ADC_CS_START_MANY (1u << 3)
/* 4.9.6 FCS and FIFO: the controller's 4-entry result FIFO (4.9.2) */
#define ADC_FCS (ADC_BASE + 0x08u)
#define ADC_FIFO (ADC_BASE + 0x0cu)
#define ADC_FCS_EN (1u << 0)
#define ADC_FCS_LEVEL(fcs) (((fcs) >> 16) & 0xfu)

/* 4.10 SSI (the QSPI flash interface) and 2.19.6.2 IO_QSPI's /CS override */
#define SSI_BASE 0x18000000u
#define SSI_CTRLR0 (SSI_BASE + 0x00u)
#define SSI_SSIENR (SSI_BASE + 0x08u)
#define SSI_SER (SSI_BASE + 0x10u)
#define SSI_SR (SSI_BASE + 0x28u)
#define SSI_DR0 (SSI_BASE + 0x60u)
#define SSI_SR_RFNE (1u << 3)
#define IO_QSPI_SS_CTRL 0x4001800cu
/* 2.6.3 XIP cache: FLUSH (write 1; a read of it returns once the flush is done) */
#define XIP_CTRL_FLUSH 0x14000004u
#define IO_QSPI_OUTOVER_NORMAL (0u << 8)
#define IO_QSPI_OUTOVER_LOW (2u << 8)
#define IO_QSPI_OUTOVER_HIGH (3u << 8)

/* 2.4.8 Cortex-M0+ NVIC and SCB */
#define NVIC_ISER 0xe000e100u
#define NVIC_ICER 0xe000e180u
#define NVIC_ICPR 0xe000e280u
#define NVIC_IPR(n) (0xe000e400u + 4u * ((n) / 4u))
#define SCB_VTOR 0xe000ed08u
#define IRQ_TIMER_0 0u
#define IRQ_TIMER_1 1u
#define IRQ_TIMER_2 2u
#define IRQ_TIMER_3 3u
#define IRQ_IO_BANK0 13u
#define IRQ_UART0 20u

static inline uint32_t timer_now_us(void) { return REG(TIMER_RAWL); }
static inline void irq_enable(uint32_t irq) { REG(NVIC_ICPR) = 1u << irq; REG(NVIC_ISER) = 1u << irq; }
static inline uint32_t irq_save(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    return primask;
}
static inline void irq_restore(uint32_t primask) { __asm volatile("msr primask, %0" ::"r"(primask) : "memory"); }
static inline void wait_for_interrupt(void) { __asm volatile("wfi" ::: "memory"); }

#endif
