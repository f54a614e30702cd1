/*
 * main2.c - the twinrig edge board on an RP2040, protocol 2 (firmware/protocol/PROTOCOL.md):
 * the portable core of protocol 2 (firmware/c/twinrig_core2.h) behind this port's drivers.
 * Receive, learn and every flash write run in the main loop (the core is not re-entrant);
 * interrupts collect bytes with their end-of-frame stamps, time the learn pulses, take the
 * learn snapshot and end the gate pulse. The gate is driven in closed loop (gate.c) inside
 * actuator_move, within a deadline: a request's reply latency, a learn's budget, or a short
 * step of the main loop's own, which also reads the gate back every GATE_CHECK_US and
 * restores what the leak took.
 *
 * Flash layout (2 MiB W25Q16JV, 4 KiB sectors; README.md, bootrec.h):
 *   0x000000  boot2 and the boot loader (loader.c)   0x010000  image slot A (960 KiB)
 *   0x100000  image slot B (960 KiB)                 0x1fa000  boot record, two sectors
 *   0x1fc000  settings: address, calibration, gate   0x1fd000  state store sector 0
 *   0x1fe000  state store sector 1                   0x1ff000  board configuration (.uf2)
 *
 * This file is built twice, FW_SLOT 0 and 1: the variants of one package linked for slot A
 * and slot B (bootrec.h). A firmware update writes the other slot; fw_swap writes a boot
 * record for a trial of it and resets the chip through the watchdog (4.7), so the boot
 * loader starts it. At a trial start (the loader's handoff says so) the image tests itself
 * once its drivers are up, before it answers anything: its own variant's CRC-32 against the
 * package header, the ADC's start-up checks; then it confirms (marker in the boot record)
 * and stops the watchdog the loader armed. A failed test resets the chip at once, so the
 * loader rolls back. The update's outcome (fw_status: confirmed or rolled_back, version,
 * blocks) is the boot record's for as long as the other slot still holds the package the
 * record names as the one not running (its header's fingerprint): fw_begin erases that
 * slot, which makes it idle, as PROTOCOL.md has it, with no write of the record.
 */
#include "ads131m04.h"
#include "board.h"
#include "bootrec.h"
#include "clocks.h"
#include "flash.h"
#include "gate.h"
#include "learn2.h"
#include "rp2040.h"
#include "rs485.h"
#include "sysadc.h"
#include "twinrig_core2.h"

#define FLASH_XIP 0x10000000u
#ifndef FW_SLOT
#error "FW_SLOT: 0 (the variant linked for slot A) or 1 (slot B), from the Makefile"
#endif
#define OTHER_SLOT (1u - FW_SLOT)
#define UPDATE_OFFSET SLOT_OFFSET(OTHER_SLOT) /* the inactive slot: the update's */
#define SETTINGS_OFFSET 0x1fc000u
#define STORE_OFFSET(s) (0x1fd000u + FLASH_SECTOR_BYTES * (s))
#define SETTINGS_MAGIC 0x33535254u /* "TRS3": with the gate's table (protocol 2.1) */
#define SETTINGS2_MAGIC 0x32535254u /* "TRS2": firmware 2.0's record, address and offsets */
#define SETTINGS2_CRC_AT 24u
#define STATE_MIN_UV 1000000
#define STATE_MAX_UV 5500000
#define RESOLUTION_UV 1000 /* the PWM setpoint's step: 1 mV of gate a count */
#if !defined(FW_VERSION_MAJOR) || !defined(FW_VERSION_MINOR) || !defined(FW_VERSION_PATCH)
#error "FW_VERSION_MAJOR, _MINOR, _PATCH: from the Makefile, which also writes them in the package"
#endif
/* Deadlines of a gate move (gate_move), from the request's end-of-frame stamp (the reply
   starts by the turnaround + REPLY_LATENCY_MAX_US = 2348 us, PROTOCOL.md "Timing"), from a
   learn's falling edge being served, from a start, and for a step of the main loop's own:
   shorter than the shortest frame (9 bytes, 781 us) and its turnaround (348 us) less the
   time to handle it, so a frame that begins during a step is still answered on time. */
#define MOVE_REPLY_US 2150u
#define MOVE_LEARN_US 2000u
#define MOVE_START_US 20000u
#define MOVE_STEP_US 1000u
#define GATE_CHECK_US 100000u /* the gate read back while idle, every 100 ms */
#define GATE_STEPS_MAX 16u
#define RX_IDLE_US 1000u /* a frame's bytes come 87 us apart: longer without one, none is coming */
#define ALARM_GATE_CHECK ALARM_LOCKOUT

typedef struct {
    uint32_t magic;
    uint8_t address, kind, reserved[2];
    uint8_t uid[8];
    int32_t initial_state;
    int32_t offsets_uv[4];
    uint16_t crc; /* tr_crc16 of the bytes before it */
    uint16_t pad;
} config_block; /* tools/image.py config: protocol 1's block, read by both images */

typedef struct {
    uint32_t magic;
    uint8_t address, gate_source, reserved[2];
    int32_t offsets_uv[4];
    tr2_gate_cal gate; /* the gate's table, measured when gate_source is 1 */
    uint32_t crc;      /* tr2_crc32_update of the bytes before it */
} settings_record;

typedef struct {
    int from_snapshot; /* the learn being run is the pin's: use its snapshot */
    int adc_ok;
    int swap; /* fw_swap's boot record written: the restart is the loader's */
    uint64_t start_us; /* the last start, for uptime */
    const config_block *config;
    uint32_t move_deadline_us; /* for the gate move actuator_move makes */
    int gate_settled;          /* the last move left less than a shortest pulse's move */
    uint32_t gate_steps;       /* steps of the main loop's own since the last move */
    int gate_service;          /* the move is one of those steps */
    uint32_t rx_at_us;         /* the last byte's stamp */
    uint32_t gate_check_us;    /* the next read-back while idle */
} drivers;

static drivers drv;
static tr2_board board;
static tr2_boot_info boot;
static tr2_board_config cfg = {
    TR2_ADDR_UNASSIGNED, {0}, TR_KIND_MOSFET, STATE_MIN_UV, STATE_MAX_UV, RESOLUTION_UV, STATE_MIN_UV,
    {FW_VERSION_MAJOR, FW_VERSION_MINOR, FW_VERSION_PATCH}, TR2_BAUD_DEFAULT,
};

static uint64_t now64_us(void)
{
    /* 4.6.2: TIMERAWH, then TIMERAWL, re-read on a carry */
    uint32_t hi, lo;
    do {
        hi = REG(TIMER_RAWH);
        lo = REG(TIMER_RAWL);
    } while (hi != REG(TIMER_RAWH));
    return ((uint64_t)hi << 32) | lo;
}

static void copy_from_flash(uint32_t offset, uint8_t *out, uint32_t len)
{
    const volatile uint8_t *p = (const volatile uint8_t *)(uintptr_t)(FLASH_XIP + offset);
    uint32_t i;
    for (i = 0; i < len; i++) {
        out[i] = p[i];
    }
}

static int flash_equals(uint32_t offset, const uint8_t *data, uint32_t len)
{
    const volatile uint8_t *p = (const volatile uint8_t *)(uintptr_t)(FLASH_XIP + offset);
    uint32_t i;
    for (i = 0; i < len; i++) {
        if (p[i] != (data ? data[i] : 0xffu)) {
            return 0;
        }
    }
    return 1;
}

/* A gate pulse is ended by a timer interrupt, which a flash command masks: let it end. The
   idle read-back's alarm is cancelled too: pending while interrupts are masked, it would end
   every WFI of the flash routines' polls at once (the main loop sets it again). */
static void gate_quiet(void)
{
    while (gate_pulsing()) {
    }
    alarm_cancel(ALARM_GATE_CHECK);
}

/* Erase one sector and read back its first page, where its record is programmed, erased:
   0 = ok. */
static int erase(uint32_t offset)
{
    gate_quiet();
    return flash_erase_sector(offset) != 0 || !flash_equals(offset, 0, FLASH_PAGE_BYTES);
}

/* Program within one page and read it back: 0 = ok. */
static int program(uint32_t offset, const uint8_t *data, uint32_t len)
{
    gate_quiet();
    return flash_program(offset, data, len) != 0 || !flash_equals(offset, data, len);
}

/* ---- the HAL ----------------------------------------------------------------------- */

static void read_nodes_uv(void *user, int32_t node_uv[4])
{
    drivers *d = user;
    int status = d->from_snapshot ? learn2_snapshot(node_uv) : adc_read_next(node_uv);
    if (status != 0 || !d->adc_ok) {
        uint32_t i;
        for (i = 0; i < 4u; i++) {
            node_uv[i] = 0; /* no reading: zero drops, so the rule changes nothing */
        }
    }
}

/* The gate in closed loop (gate.c): the state is the gate read back, on the 1 mV grid. */
static int32_t actuator_move(void *user, int32_t target)
{
    drivers *d = user;
    if (!d->gate_service) {
        d->gate_steps = 0; /* a new move: the main loop may take steps to finish it */
    }
    return gate_move(target, d->move_deadline_us, &d->gate_settled);
}

/* The settings record: firmware 2.1's, or 2.0's (address and offsets, the gate nominal). */
static int settings_load(settings_record *s)
{
    copy_from_flash(SETTINGS_OFFSET, (uint8_t *)s, sizeof *s);
    if (s->magic == SETTINGS2_MAGIC &&
        tr2_crc32_update(0, (const uint8_t *)s, SETTINGS2_CRC_AT) == tr2_get_u32((const uint8_t *)s + SETTINGS2_CRC_AT)) {
        s->gate_source = 0;
    } else if (s->magic != SETTINGS_MAGIC ||
               tr2_crc32_update(0, (const uint8_t *)s, offsetof(settings_record, crc)) != s->crc) {
        return 0;
    }
    return s->address >= TR_ADDR_BOARD_MIN && s->address <= TR2_ADDR_UNASSIGNED;
}

/* The settings sector rewritten with one field changed (one erase, one program): the
   address, the offsets or the gate's measured table; the others as in use. */
static int settings_store(const uint8_t *address, const int32_t offsets_uv[4], const tr2_gate_cal *gate)
{
    settings_record s;
    uint32_t i;
    s.magic = SETTINGS_MAGIC;
    s.address = address ? *address : board.address;
    s.reserved[0] = s.reserved[1] = 0;
    for (i = 0; i < 4u; i++) {
        s.offsets_uv[i] = offsets_uv ? offsets_uv[i] : board.offsets_uv[i];
    }
    if (gate) {
        s.gate = *gate;
        s.gate_source = 1u;
    } else {
        s.gate_source = gate_calibration(&s.gate);
    }
    s.crc = tr2_crc32_update(0, (const uint8_t *)&s, offsetof(settings_record, crc));
    return erase(SETTINGS_OFFSET) || program(SETTINGS_OFFSET, (const uint8_t *)&s, sizeof s);
}

static int calibration_load(void *user, int32_t offsets_uv[4])
{
    const drivers *d = user;
    settings_record s;
    uint32_t i;
    if (settings_load(&s)) {
        for (i = 0; i < 4u; i++) {
            offsets_uv[i] = s.offsets_uv[i];
        }
        return 0;
    }
    if (d->config == 0) {
        return 1;
    }
    for (i = 0; i < 4u; i++) {
        offsets_uv[i] = d->config->offsets_uv[i];
    }
    return 0;
}

static int calibration_store(void *user, const int32_t offsets_uv[4])
{
    (void)user;
    return settings_store(0, offsets_uv, 0);
}

static int address_store(void *user, uint8_t address)
{
    (void)user;
    if (settings_store(&address, 0, 0) != 0) {
        return 1;
    }
    cfg.address = address; /* what a restart starts from */
    return 0;
}

static int store_read(void *user, unsigned sector, uint8_t rec[TR2_RECORD_LEN])
{
    (void)user;
    copy_from_flash(STORE_OFFSET(sector), rec, TR2_RECORD_LEN);
    return 0;
}

static int store_erase(void *user, unsigned sector)
{
    (void)user;
    return erase(STORE_OFFSET(sector));
}

static int store_program(void *user, unsigned sector, const uint8_t rec[TR2_RECORD_LEN])
{
    (void)user;
    return program(STORE_OFFSET(sector), rec, TR2_RECORD_LEN);
}

/* The inactive slot's first `size` bytes, in 64 KiB blocks (tBE2 2000 ms) while 6 sectors
   or more of it are left, 32 KiB blocks (tBE1 1600 ms) while 5 or more are, then sectors
   (tSE 400 ms): each block takes at least 400 ms less than fw_begin's quiet time gives the
   sectors it covers (400 ms each), which leaves room for the few microseconds each erase
   adds; without a block (size under 5 sectors) at most 4 erases. The slot is 64 KiB
   aligned and 15 x 64 KiB long, so no block reaches past it. Not read back: a sector left
   unerased fails the readback of the blocks programmed into it (a program only clears
   bits). */
static int fw_erase(void *user, uint32_t size)
{
    uint32_t off = 0;
    (void)user;
    while (off < size) {
        uint32_t left = (size - off + FLASH_SECTOR_BYTES - 1u) >> 12; /* sectors of size left */
        uint32_t bytes = FLASH_SECTOR_BYTES;
        if ((off & (FLASH_BLOCK64_BYTES - 1u)) == 0u && left >= 6u) {
            bytes = FLASH_BLOCK64_BYTES;
        } else if ((off & (FLASH_BLOCK32_BYTES - 1u)) == 0u && left >= 5u) {
            bytes = FLASH_BLOCK32_BYTES;
        }
        gate_quiet();
        if (flash_erase(UPDATE_OFFSET + off, bytes) != 0) {
            return 1;
        }
        off += bytes;
    }
    return 0;
}

static int fw_program(void *user, uint32_t offset, const uint8_t data[TR2_BLOCK_SIZE])
{
    (void)user;
    /* a block at a multiple of 128 never crosses a 256-byte page */
    return program(UPDATE_OFFSET + offset, data, TR2_BLOCK_SIZE);
}

static int fw_read(void *user, uint32_t offset, uint8_t *data, uint32_t len)
{
    (void)user;
    copy_from_flash(UPDATE_OFFSET + offset, data, len);
    return 0;
}

/* fw_swap: a boot record naming this slot old and the other, verified, the trial, written
   into the sector the newest record is not in (erase, program, read back), so a power cut
   leaves the newest one as it was. The restart that follows is the loader's. */
static int fw_trial(void *user, const uint8_t version[3], uint16_t blocks)
{
    drivers *d = user;
    pkg_header own, next;
    boot_record r, cur;
    unsigned sector = 1u, i;
    int have;
    if (pkg_header_read(FW_SLOT, &own) != 0 || pkg_header_read(OTHER_SLOT, &next) != 0) {
        return 1; /* not a package (verified by its CRC-32, but no header) */
    }
    have = bootrec_newest(&cur, &sector);
    r.magic = BOOTREC_MAGIC;
    r.generation = have ? cur.generation + 1u : 1u;
    r.old_slot = FW_SLOT;
    r.trial_slot = OTHER_SLOT;
    for (i = 0; i < 3u; i++) {
        r.version[i] = version[i];
    }
    r.pad = 0;
    r.blocks = blocks;
    r.fp_old = own.hcrc;
    r.fp_new = next.hcrc;
    r.crc = bootrec_crc(&r);
    for (i = 0; i < 3u; i++) {
        r.mark[i] = 0xffffffffu;
    }
    sector = 1u - sector; /* none yet: sector 0 */
    if (erase(BOOTREC_OFFSET(sector)) || program(BOOTREC_OFFSET(sector), (const uint8_t *)&r, sizeof r)) {
        return 1;
    }
    d->swap = 1;
    return 0;
}

static uint32_t millis(void *user)
{
    const drivers *d = user;
    return (uint32_t)((now64_us() - d->start_us) / 1000u);
}

static uint32_t supply_uv(void *user)
{
    (void)user;
    return sysadc_supply_uv();
}

static int32_t temperature_mdegc(void *user)
{
    (void)user;
    return sysadc_temperature_mdegc();
}

/* calibrate_actuator: measured (gate.c), stored with the settings, then in use; the core
   moves the gate back to the target next (actuator_move, with a start's deadline). */
static int actuator_calibrate(void *user, tr2_gate_cal *measured)
{
    drivers *d = user;
    int failed;
    gate_measure(measured);
    failed = settings_store(0, 0, measured);
    if (!failed) {
        gate_use(measured, 1u);
    }
    d->move_deadline_us = timer_now_us() + MOVE_START_US;
    return failed;
}

static uint8_t actuator_calibration(void *user, tr2_gate_cal *in_use)
{
    (void)user;
    return gate_calibration(in_use);
}

static const tr2_hal hal = {
    &drv, read_nodes_uv, actuator_move, calibration_load, calibration_store, address_store,
    store_read, store_erase, store_program, fw_erase, fw_program, fw_read, fw_trial,
    millis, supply_uv, temperature_mdegc, actuator_calibrate, actuator_calibration,
};

/* ---- configuration, start-up, main loop ----------------------------------------------- */

static const config_block *config_find(void)
{
    const config_block *c = (const config_block *)(uintptr_t)CONFIG_BLOCK_ADDR;
    if (c->magic != CONFIG_MAGIC ||
        tr_crc16((const uint8_t *)c, offsetof(config_block, crc)) != c->crc ||
        c->address < TR_ADDR_BOARD_MIN || c->address > TR2_ADDR_UNASSIGNED ||
        c->kind != TR_KIND_MOSFET) {
        return 0; /* this image drives a MOSFET gate only */
    }
    return c;
}

static void config_apply(const config_block *c)
{
    settings_record s;
    if (c != 0) {
        cfg.address = c->address;
        if (c->initial_state >= STATE_MIN_UV && c->initial_state <= STATE_MAX_UV) {
            cfg.initial_state = c->initial_state;
        }
    }
    if (settings_load(&s)) {
        cfg.address = s.address; /* assign_address's, over the factory one */
        if (s.gate_source == 1u) {
            gate_use(&s.gate, 1u); /* calibrate_actuator's, kept across every reset */
        }
    }
}

/* Work the main loop does while it waits: glitches and a due learn. */
static void service_learn(void)
{
    uint32_t width;
    while (learn2_next_glitch(&width)) {
        tr2_board_trigger(&board, width);
    }
    if (learn2_due(&width)) {
        drv.move_deadline_us = timer_now_us() + MOVE_LEARN_US;
        drv.from_snapshot = 1;
        tr2_board_trigger(&board, width);
        drv.from_snapshot = 0;
        learn2_done();
    }
}

/* The gate while the board is idle: read back every GATE_CHECK_US, and when the leak (or a
   move cut short by its deadline) has left a shortest pulse's move or more, a step
   towards the target, each within MOVE_STEP_US; only between frames, so no reply waits. */
static void service_gate(void)
{
    uint32_t now = timer_now_us();
    if ((drv.gate_settled && (int32_t)(now - drv.gate_check_us) < 0) || rs485_rx_pop_pending() != 0 ||
        (board.rx.raw != 0 && now - drv.rx_at_us < RX_IDLE_US) || learn2_pending()) {
        return;
    }
    drv.gate_service = 1;
    if (drv.gate_settled) {
        drv.gate_steps = 0;
        if (!gate_refresh()) {
            drv.gate_service = 0; /* gave way to a learn: again once it is served */
            return;
        }
        drv.move_deadline_us = timer_now_us(); /* the state read back, no pulse */
    } else {
        drv.move_deadline_us = now + MOVE_STEP_US;
    }
    tr2_board_set_target(&board, board.target);
    drv.gate_service = 0;
    if (++drv.gate_steps > GATE_STEPS_MAX) {
        drv.gate_settled = 1; /* a gate that does not follow: tried again at the next check */
    }
    drv.gate_check_us = timer_now_us() + GATE_CHECK_US;
    alarm_at(ALARM_GATE_CHECK, drv.gate_check_us);
}

/* The main loop's own read-back gives way to a learn due (dropped, the last one kept), so
   a learn's update waits for it at most a conversion. Its steps (a pulse and its read-back,
   within MOVE_STEP_US) do not: they come only after a move a deadline cut short. */
static int gate_yield(void) { return drv.gate_service && learn2_pending(); }

/* Alarm 2 (protocol 1's lockout; protocol 2 has none) wakes the main loop for the check. */
void isr_timer_lockout(void) { REG(TIMER_INTR) = 1u << ALARM_GATE_CHECK; }

static void wait_until(uint32_t at_us)
{
    alarm_at(ALARM_REPLY, at_us);
    while ((int32_t)(timer_now_us() - at_us) < 0) {
        uint32_t primask = irq_save();
        if (!learn2_pending() && (int32_t)(timer_now_us() - at_us) < 0) {
            wait_for_interrupt();
        }
        irq_restore(primask);
        service_learn();
    }
    alarm_cancel(ALARM_REPLY);
}

void isr_timer_reply(void) { REG(TIMER_INTR) = 1u << ALARM_REPLY; }

/* The last update's outcome, from the boot record: confirmed when this slot is the
   confirmed trial's, rolled_back when it is the old slot of a trial that did not confirm;
   either while the other slot still holds the package the record names there (bootrec.h). */
static void outcome(tr2_boot_info *bi)
{
    boot_record r;
    pkg_header other;
    unsigned sector, i;
    bi->fw_phase = TR2_PHASE_IDLE;
    bi->fw_version[0] = bi->fw_version[1] = bi->fw_version[2] = 0;
    bi->fw_blocks = 0;
    if (!bootrec_newest(&r, &sector) || !bootrec_marked(&r, MARK_RUNNING) ||
        pkg_header_read(OTHER_SLOT, &other) != 0) {
        return;
    }
    if (bootrec_marked(&r, MARK_CONFIRMED) && r.trial_slot == FW_SLOT && other.hcrc == r.fp_old) {
        bi->fw_phase = TR2_PHASE_CONFIRMED;
    } else if (!bootrec_marked(&r, MARK_CONFIRMED) && r.old_slot == FW_SLOT && other.hcrc == r.fp_new) {
        bi->fw_phase = TR2_PHASE_ROLLED_BACK;
    } else {
        return;
    }
    for (i = 0; i < 3u; i++) {
        bi->fw_version[i] = r.version[i];
    }
    bi->fw_blocks = r.blocks;
}

/* A chip reset through the watchdog (4.7: CTRL.TRIGGER; PSM WDSEL, 2.13.5, selects all but
   the oscillators): the boot loader starts next. */
static void chip_reset(void)
{
    REG(PSM_WDSEL) = PSM_WDSEL_ALL_BUT_OSC;
    REG(WATCHDOG_CTRL) = WATCHDOG_CTRL_TRIGGER;
    for (;;) {
    }
}

/* A trial start's self-test, then the confirmation: 0 = confirmed. */
static int confirm(void)
{
    pkg_header h;
    boot_record r;
    unsigned sector;
    if (!drv.adc_ok || pkg_header_read(FW_SLOT, &h) != 0 || pkg_variant_check(FW_SLOT, &h) != 0 ||
        !bootrec_newest(&r, &sector) || r.trial_slot != FW_SLOT || bootrec_marked(&r, MARK_CONFIRMED)) {
        return 1;
    }
    return bootrec_mark(sector, MARK_CONFIRMED);
}

/* A start of the board: power-on (through the loader), or the restart reset asks for. */
static void start(uint8_t cause)
{
    boot.reset_cause = cause;
    outcome(&boot);
    drv.start_us = now64_us();
    drv.move_deadline_us = timer_now_us() + MOVE_START_US;
    tr2_board_init(&board, &cfg, &hal, &boot);
    drv.gate_check_us = timer_now_us() + GATE_CHECK_US;
    alarm_at(ALARM_GATE_CHECK, drv.gate_check_us);
}

int main(void)
{
    static tr2_reply reply;
    uint32_t at_us;
    int byte;
    uint8_t cause = TR2_CAUSE_POWER_ON;
    int trial = 0;
    /* the loader's handoff (bootrec.h), taken once */
    if (REG(WATCHDOG_SCRATCH(0)) == HANDOFF_MAGIC) {
        uint32_t h = REG(WATCHDOG_SCRATCH(1));
        cause = (uint8_t)(h & 0xffu);
        trial = (h & HANDOFF_TRIAL) != 0u;
        REG(WATCHDOG_SCRATCH(0)) = 0u;
    } else if (REG(WATCHDOG_REASON) & WATCHDOG_REASON_TIMER) {
        cause = TR2_CAUSE_WATCHDOG; /* 4.7 REASON, were it started without the loader */
    }
    clocks_init();
#ifdef FW_BROKEN
    for (;;) {
        /* make FW_BROKEN=1: an image that never finishes its start-up (the rollback test) */
    }
#endif
    flash_init();
    flash_unique_id(cfg.uid); /* the board's identity (PROTOCOL.md, "Addresses") */
    drv.config = config_find();
    rs485_init();
    drv.adc_ok = adc_init() == 0;
    sysadc_init();
    learn2_init();
    gate_init();
    gate_set_yield(gate_yield);
    config_apply(drv.config);
    irq_enable(IRQ_TIMER_0);
    irq_enable(IRQ_TIMER_2);
    if (trial) {
        if (confirm() != 0) {
            chip_reset(); /* the loader finds the trial unconfirmed: rollback */
        }
        REG(WATCHDOG_CTRL) = 0u; /* confirmed: the trial's watchdog is stopped */
    }
    start(cause);
    for (;;) {
        uint32_t primask;
        while ((byte = rs485_rx_pop(&at_us)) >= 0) {
            int todo;
            drv.move_deadline_us = at_us + MOVE_REPLY_US; /* at_us: this byte's stamp */
            drv.rx_at_us = at_us;
            todo = tr2_board_receive(&board, (uint8_t)byte, &reply);
            if (todo & TR2_SEND) {
                /* at_us: the delimiter's stamp, taken in the receive interrupt */
                wait_until(at_us + reply.start_us);
                rs485_send(reply.wire, reply.len, service_learn);
            }
            if ((todo & TR2_RESTART) && drv.swap) {
                chip_reset(); /* fw_swap: the boot loader starts the trial */
            } else if (todo & TR2_RESTART) {
                start(TR2_CAUSE_RESET_COMMAND);
            }
        }
        service_learn();
        service_gate();
        primask = irq_save();
        if (!learn2_pending() && rs485_rx_pop_pending() == 0 && drv.gate_settled &&
            (int32_t)(timer_now_us() - drv.gate_check_us) < 0) {
            alarm_at(ALARM_GATE_CHECK, drv.gate_check_us);
            wait_for_interrupt();
        }
        irq_restore(primask);
    }
}
