/*
 * main.c - the twinrig edge board on an RP2040: the portable core (firmware/c) behind this
 * port's drivers. Receive and learn run in the main loop (the core is not re-entrant);
 * interrupts only collect bytes, take the learn snapshot and time the pulses.
 */
#include "actuator.h"
#include "ads131m04.h"
#include "board.h"
#include "clocks.h"
#include "learn.h"
#include "rp2040.h"
#include "rs485.h"
#include "twinrig_core.h"

typedef struct {
    uint32_t magic;
    uint8_t address, kind, reserved[2];
    uint8_t uid[8];
    int32_t initial_state;
    int32_t offsets_uv[4];
    uint16_t crc; /* tr_crc16 of the bytes before it */
    uint16_t pad;
} config_block;

typedef struct {
    int from_snapshot; /* the learn being run is the pin's: use its snapshot */
    int adc_ok;
    const config_block *config;
} drivers;

static drivers drv;
static tr_board board;
static tr_board_config cfg = {
    1u, {0}, TR_KIND_MOSFET, 1000000, 5500000, 1000000, TR_FW_MAJOR, TR_FW_MINOR, TR_FW_PATCH,
};

static void read_nodes_uv(void *user, int32_t node_uv[4])
{
    drivers *d = user;
    int status = d->from_snapshot ? learn_snapshot(node_uv) : adc_read_next(node_uv);
    if (status != 0 || !d->adc_ok) {
        uint32_t i;
        for (i = 0; i < 4u; i++) {
            node_uv[i] = 0; /* no reading: zero drops, so the rule changes nothing */
        }
    }
}

static void set_actuator(void *user, int32_t state)
{
    (void)user;
    if (cfg.kind == TR_KIND_MOSFET) {
        actuator_drive(state);
    }
}

static int nvs_load(void *user, int32_t offsets_uv[4])
{
    const drivers *d = user;
    uint32_t i;
    if (d->config == 0) {
        return 1;
    }
    for (i = 0; i < 4u; i++) {
        offsets_uv[i] = d->config->offsets_uv[i];
    }
    return 0;
}

static uint32_t millis(void *user)
{
    (void)user;
    /* the 64-bit microsecond count (4.6.2: TIMERAWH then TIMERAWL, re-read on a carry) */
    uint32_t hi, lo;
    do {
        hi = REG(TIMER_BASE + 0x24u);
        lo = REG(TIMER_RAWL);
    } while (hi != REG(TIMER_BASE + 0x24u));
    return (uint32_t)((((uint64_t)hi << 32) | lo) / 1000u);
}

static const tr_hal hal = {&drv, read_nodes_uv, set_actuator, nvs_load, 0, millis};

static const config_block *config_find(void)
{
    const config_block *c = (const config_block *)(uintptr_t)CONFIG_BLOCK_ADDR;
    if (c->magic != CONFIG_MAGIC ||
        tr_crc16((const uint8_t *)c, offsetof(config_block, crc)) != c->crc ||
        c->address < TR_ADDR_BOARD_MIN || c->address > TR_ADDR_BOARD_MAX ||
        (c->kind != TR_KIND_DIGIPOT && c->kind != TR_KIND_MOSFET)) {
        return 0;
    }
    return c;
}

static void config_apply(const config_block *c)
{
    uint32_t i;
    if (c == 0) {
        return;
    }
    cfg.address = c->address;
    cfg.kind = c->kind;
    for (i = 0; i < 8u; i++) {
        cfg.uid[i] = c->uid[i];
    }
    if (c->kind == TR_KIND_DIGIPOT) {
        cfg.state_min = 0;
        cfg.state_max = 99;
    }
    cfg.initial_state = c->initial_state;
    if (cfg.initial_state < cfg.state_min || cfg.initial_state > cfg.state_max) {
        cfg.initial_state = cfg.state_min;
    }
}

/* Work the main loop does while it waits: a due learn update. */
static void service_learn(void)
{
    if (learn_due()) {
        drv.from_snapshot = 1;
        (void)tr_board_learn(&board);
        drv.from_snapshot = 0;
        learn_done();
    }
}

static void wait_until(uint32_t at_us)
{
    alarm_at(ALARM_REPLY, at_us);
    while ((int32_t)(timer_now_us() - at_us) < 0) {
        uint32_t primask = irq_save();
        if (!learn_due() && (int32_t)(timer_now_us() - at_us) < 0) {
            wait_for_interrupt();
        }
        irq_restore(primask);
        service_learn();
    }
    alarm_cancel(ALARM_REPLY);
}

void isr_timer_reply(void) { REG(TIMER_INTR) = 1u << ALARM_REPLY; }

int main(void)
{
    static tr_reply reply;
    uint32_t at_us;
    int byte;
    clocks_init();
    drv.config = config_find();
    config_apply(drv.config);
    rs485_init();
    drv.adc_ok = adc_init() == 0;
    learn_init();
    actuator_init();
    irq_enable(IRQ_TIMER_0);
    tr_board_init(&board, &cfg, &hal);
    for (;;) {
        uint32_t primask;
        while ((byte = rs485_rx_pop(&at_us)) >= 0) {
            if (tr_board_receive(&board, (uint8_t)byte, &reply)) {
                /* the request's delimiter ended at at_us: keep the turnaround, then the slot */
                wait_until(at_us + TURNAROUND_US + 1000u * reply.delay_ms);
                rs485_send(reply.wire, reply.len, service_learn);
            }
        }
        service_learn();
        primask = irq_save();
        if (!learn_due() && rs485_rx_pop_pending() == 0) {
            wait_for_interrupt();
        }
        irq_restore(primask);
    }
}
