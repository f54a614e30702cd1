/*
 * clocks.c - crystal, PLL_SYS at 125 MHz, clk_peri, the 1 us timer tick, peripheral resets.
 */
#include "clocks.h"

#include "board.h"
#include "rp2040.h"

static void unreset(uint32_t mask)
{
    REG_CLR(RESETS_RESET) = mask;
    while ((REG(RESETS_DONE) & mask) != mask) {
    }
}

void clocks_init(void)
{
    /* 2.16.3: 1..15 MHz range, startup delay of ~1 ms in units of 256 crystal cycles */
    REG(XOSC_CTRL) = XOSC_CTRL_1_15MHZ;
    REG(XOSC_STARTUP) = ((XOSC_HZ / 1000u) + 255u) / 256u;
    REG_SET(XOSC_CTRL) = XOSC_CTRL_ENABLE;
    while (!(REG(XOSC_STATUS) & XOSC_STATUS_STABLE)) {
    }
    /* clk_ref from the crystal (2.15.3.2): SRC 2, glitchless, SELECTED is one-hot */
    REG(CLK_REF_CTRL) = 2u;
    while (REG(CLK_REF_SELECTED) != (1u << 2)) {
    }
    /* clk_sys on clk_ref while the PLL starts */
    REG(CLK_SYS_CTRL) = 0u;
    while (REG(CLK_SYS_SELECTED) != 1u) {
    }
    /* 2.18.2: 12 MHz / 1 * 125 = 1500 MHz VCO, / 6 / 2 = 125 MHz */
    REG_SET(RESETS_RESET) = RESET_PLL_SYS;
    unreset(RESET_PLL_SYS);
    REG(PLL_CS) = 1u;
    REG(PLL_FBDIV_INT) = 125u;
    REG_CLR(PLL_PWR) = PLL_PWR_PD | PLL_PWR_VCOPD;
    while (!(REG(PLL_CS) & PLL_CS_LOCK)) {
    }
    REG(PLL_PRIM) = (6u << 16) | (2u << 12);
    REG_CLR(PLL_PWR) = PLL_PWR_POSTDIVPD;
    /* clk_sys from the PLL through the aux mux (AUXSRC 0 = pll_sys, then SRC 1 = aux) */
    REG(CLK_SYS_CTRL) = 0u << 5;
    REG(CLK_SYS_CTRL) = (0u << 5) | 1u;
    while (REG(CLK_SYS_SELECTED) != 2u) {
    }
    /* clk_peri = clk_sys (AUXSRC 0), enabled: the UART's and the SPI's clock */
    REG(CLK_PERI_CTRL) = CLK_CTRL_ENABLE | (0u << 5);
    /* 4.6.1 / 4.7.2: the timer counts 1 us ticks of clk_ref / 12 */
    REG(WATCHDOG_TICK) = WATCHDOG_TICK_ENABLE | (XOSC_HZ / 1000000u);
    unreset(RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_TIMER | RESET_UART0 | RESET_SPI0 | RESET_PWM);
}

void gpio_function(uint32_t pin, uint32_t func, uint32_t pad)
{
    REG(PADS_GPIO(pin)) = pad;
    REG(GPIO_CTRL(pin)) = func;
}

void gpio_output(uint32_t pin, int level)
{
    if (level) {
        REG(SIO_GPIO_OUT_SET) = 1u << pin;
    } else {
        REG(SIO_GPIO_OUT_CLR) = 1u << pin;
    }
    REG(SIO_GPIO_OE_SET) = 1u << pin;
    gpio_function(pin, FUNC_SIO, PAD_DRIVE_4MA);
}

void alarm_at(uint32_t alarm, uint32_t at_us)
{
    REG(TIMER_INTR) = 1u << alarm;
    REG_SET(TIMER_INTE) = 1u << alarm;
    REG(TIMER_ALARM(alarm)) = at_us;
}

void alarm_cancel(uint32_t alarm)
{
    REG(TIMER_ARMED) = 1u << alarm;
    REG(TIMER_INTR) = 1u << alarm;
}
