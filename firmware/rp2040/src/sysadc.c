/*
 * sysadc.c - the RP2040's ADC (datasheet 4.9): the board's supply and temperature.
 *
 * clk_adc must be 48 MHz (4.9): PLL_USB from the 12 MHz crystal, VCO 1200 MHz, post
 * dividers 5 and 5 (2.18.2), as the SDK sets it. Channel 3 is GP29, which a Pico wires to
 * VSYS through a 200k/100k divider (Pico datasheet, "Powering Pico"): VSYS = 3 x the pin; its digital
 * input is turned off (4.9). Channel 4 is the temperature sensor, biased by CS.TS_EN:
 * T = 27 - (V - 0.706) / 0.001721 (4.9.5). The reference is the Pico's 3.3 V ADC_AVDD, 12 bits
 * (1 LSB = 3.3 V / 4096 = 103125/128 uV). Results are rounded half away from zero.
 */
#include "sysadc.h"

#include "board.h"
#include "rp2040.h"

#define PLL_USB_CS (PLL_USB_BASE + 0x0u)
#define PLL_USB_PWR (PLL_USB_BASE + 0x4u)
#define PLL_USB_FBDIV (PLL_USB_BASE + 0x8u)
#define PLL_USB_PRIM (PLL_USB_BASE + 0xcu)
#define PIN_VSYS_SENSE 29u
#define ADC_UV_NUM 103125u /* uV per LSB = 103125 / 128 */
#define ADC_UV_DEN 128u

static void unreset(uint32_t mask)
{
    REG_CLR(RESETS_RESET) = mask;
    while ((REG(RESETS_DONE) & mask) != mask) {
    }
}

void sysadc_init(void)
{
    REG_SET(RESETS_RESET) = RESET_PLL_USB;
    unreset(RESET_PLL_USB);
    REG(PLL_USB_CS) = 1u; /* REFDIV 1 */
    REG(PLL_USB_FBDIV) = 100u;
    REG_CLR(PLL_USB_PWR) = PLL_PWR_PD | PLL_PWR_VCOPD;
    while (!(REG(PLL_USB_CS) & PLL_CS_LOCK)) {
    }
    REG(PLL_USB_PRIM) = (5u << 16) | (5u << 12);
    REG_CLR(PLL_USB_PWR) = PLL_PWR_POSTDIVPD;
    /* 2.15.7 CLK_ADC_CTRL: AUXSRC 0 = clksrc_pll_usb, enabled */
    REG(CLK_ADC_CTRL) = CLK_CTRL_ENABLE | (0u << 5);
    unreset(RESET_ADC);
    REG(PADS_GPIO(PIN_VSYS_SENSE)) = PAD_OD; /* output disabled, input off (4.9) */
    REG(ADC_CS) = ADC_CS_EN | ADC_CS_TS_EN;
    while (!(REG(ADC_CS) & ADC_CS_READY)) {
    }
}

uint32_t sysadc_read(uint32_t channel)
{
    REG(ADC_CS) = ADC_CS_EN | ADC_CS_TS_EN | ADC_CS_AINSEL(channel) | ADC_CS_START_ONE;
    while (!(REG(ADC_CS) & ADC_CS_READY)) {
    }
    return REG(ADC_RESULT) & 0xfffu;
}

uint32_t sysadc_supply_uv(void)
{
    /* 3 x code x 103125 / 128, rounded: at most 1.27e9, no overflow */
    return (3u * ADC_UV_NUM * sysadc_read(3u) + ADC_UV_DEN / 2u) / ADC_UV_DEN;
}

int32_t sysadc_temperature_mdegc(void)
{
    /* T (mdegC) = 27000 + (706000 uV - code x 103125 / 128) x 1000 / 1721, over 128 x 1721 */
    int32_t code = (int32_t)sysadc_read(4u);
    int64_t num = ((int64_t)706000 * ADC_UV_DEN - (int64_t)code * ADC_UV_NUM) * 1000;
    int64_t den = (int64_t)1721 * ADC_UV_DEN;
    int64_t q = (num >= 0 ? num + den / 2 : num - den / 2) / den;
    return 27000 + (int32_t)q;
}
