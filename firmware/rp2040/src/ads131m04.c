/*
 * ads131m04.c - TI ADS131M04 (24-bit, 4-channel, simultaneously sampling delta-sigma ADC;
 * datasheet SBAS890) on SPI0 (ARM PL022, RP2040 datasheet 4.4).
 *
 * The four channels share one modulator clock and one sinc3 decimation filter, so the four
 * nodes are sampled at the same instant (channel phase registers left at 0, 8.3.10). Frames
 * (8.5.1.7): six 24-bit words, MSB first, SPI mode 1 (CPOL 0, CPHA 1): the response to the
 * previous frame's command, channels 0..3, and a CRC-CCITT word (seed FFFFh, 8.3.12) over
 * the words before it. With CLKIN 8.192 MHz, f_MOD = 4.096 MHz; OSR 128 gives 32 kSPS
 * (t_DATA 31.25 us). A SYNC/RESET low pulse of 1..2047 t_CLKIN (6.6) restarts the filter;
 * settled data then need three conversion periods (sinc3, 8.3.7), 93.75 us.
 * Channels: 0 free a, 1 free b, 2 clamped a, 3 clamped b; gain 1, internal 1.2 V reference:
 * 1 LSB = 1.2 V / 2^23 = 9375/65536 uV.
 */
#include "ads131m04.h"

#include "board.h"
#include "clocks.h"
#include "rp2040.h"
#include "twinrig_core.h"

#define FRAME_BYTES 18u
#define CMD_NULL 0x0000u
#define CMD_RREG(addr) (0xa000u | ((uint32_t)(addr) << 7))
#define CMD_WREG(addr) (0x6000u | ((uint32_t)(addr) << 7))
#define RSP_RESET 0xff24u
#define REG_ID 0x00u
#define REG_CLOCK 0x03u
#define CLOCK_OSR128_HR 0x0f02u /* all four channels on, OSR 128, high-resolution power */
/* A DRDY comes every conversion period (31.25 us at 32 kSPS); none for 1 ms: the converter
   has stopped (no CLKIN, no supply) */
#define DRDY_TIMEOUT_US 1000u

static uint32_t errors;

static uint8_t spi_byte(uint8_t out)
{
    while (!(REG(SPI_SR) & SPI_SR_TNF)) {
    }
    REG(SPI_DR) = out;
    while (!(REG(SPI_SR) & SPI_SR_RNE)) {
    }
    return (uint8_t)REG(SPI_DR);
}

/* One frame: command word (and one data word for WREG); returns the response word. */
static uint32_t frame(uint32_t cmd, uint32_t data, uint8_t in[FRAME_BYTES])
{
    uint8_t out[FRAME_BYTES] = {0};
    uint32_t i;
    out[0] = (uint8_t)(cmd >> 8);
    out[1] = (uint8_t)cmd;
    out[3] = (uint8_t)(data >> 8);
    out[4] = (uint8_t)data;
    REG(SIO_GPIO_OUT_CLR) = 1u << PIN_ADC_CS;
    for (i = 0; i < FRAME_BYTES; i++) {
        in[i] = spi_byte(out[i]);
    }
    while (REG(SPI_SR) & SPI_SR_BSY) {
    }
    REG(SIO_GPIO_OUT_SET) = 1u << PIN_ADC_CS;
    return ((uint32_t)in[0] << 8) | in[1];
}

static int32_t code_to_uv(const uint8_t *p)
{
    uint32_t raw = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
    int negative = (raw & 0x800000u) != 0;
    uint32_t magnitude = negative ? (0x1000000u - raw) : raw;
    uint64_t uv = ((uint64_t)magnitude * 9375u + 32768u) >> 16;
    return negative ? -(int32_t)uv : (int32_t)uv;
}

static int decode(const uint8_t in[FRAME_BYTES], int32_t node_uv[4])
{
    uint32_t i;
    uint16_t crc = tr_crc16(in, FRAME_BYTES - 3u);
    if (crc != (((uint32_t)in[15] << 8) | in[16])) {
        errors++;
        return 1;
    }
    for (i = 0; i < 4u; i++) {
        node_uv[i] = code_to_uv(&in[3u + 3u * i]);
    }
    return 0;
}

int adc_init(void)
{
    uint8_t in[FRAME_BYTES];
    uint32_t reset_rsp, wreg_ack, id;
    gpio_output(PIN_ADC_CS, 1);
    gpio_output(PIN_ADC_SYNC, 1);
    gpio_function(PIN_ADC_DRDY, FUNC_SIO, PAD_IE | PAD_SCHMITT);
    /* 4.4.4: prescale 8, SCR 0: 125 MHz / 8 = 15.625 MHz (the part takes up to 25 MHz) */
    REG(SPI_CPSR) = 8u;
    REG(SPI_CR0) = SPI_CR0_SPH | 7u; /* mode 1, Motorola format, 8-bit frames */
    REG(SPI_CR1) = SPI_CR1_SSE;
    gpio_function(PIN_ADC_MISO, FUNC_SPI, PAD_IE);
    gpio_function(PIN_ADC_SCLK, FUNC_SPI, PAD_DRIVE_4MA);
    gpio_function(PIN_ADC_MOSI, FUNC_SPI, PAD_DRIVE_4MA);
    reset_rsp = frame(CMD_WREG(REG_CLOCK), CLOCK_OSR128_HR, in);
    wreg_ack = frame(CMD_RREG(REG_ID), 0, in);
    id = frame(CMD_NULL, 0, in);
    if (reset_rsp != RSP_RESET || wreg_ack != (0x4000u | (REG_CLOCK << 7)) || (id >> 8) != 0x24u) {
        errors++;
        return 1;
    }
    return 0;
}

void adc_sync(void)
{
    uint32_t t0;
    REG(SIO_GPIO_OUT_CLR) = 1u << PIN_ADC_SYNC;
    t0 = timer_now_us();
    /* 1..2 us low: more than 1 t_CLKIN (122 ns), far less than 2047 (250 us, a reset) */
    while (timer_now_us() - t0 < 2u) {
    }
    REG(SIO_GPIO_OUT_SET) = 1u << PIN_ADC_SYNC;
}

int adc_read_frame_now(int32_t node_uv[4])
{
    uint8_t in[FRAME_BYTES];
    (void)frame(CMD_NULL, 0, in);
    return decode(in, node_uv);
}

int adc_read_next(int32_t node_uv[4])
{
    uint32_t primask;
    int status;
    uint32_t t0 = timer_now_us();
    REG(IO_INTR(PIN_ADC_DRDY)) = IO_EDGE_LOW(PIN_ADC_DRDY);
    while (!(REG(IO_INTR(PIN_ADC_DRDY)) & IO_EDGE_LOW(PIN_ADC_DRDY))) {
        if (timer_now_us() - t0 > DRDY_TIMEOUT_US) {
            errors++;
            return 1; /* no conversion (CLKIN lost): no reading, not a hang */
        }
    }
    primask = irq_save(); /* the learn snapshot reads from its interrupt: one frame at a time */
    status = adc_read_frame_now(node_uv);
    irq_restore(primask);
    return status;
}

uint32_t adc_errors(void) { return errors; }
