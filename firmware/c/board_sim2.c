/*
 * board_sim2.c - host harness for the protocol-2 core (not part of the firmware).
 *
 * Simulates up to SIM_BOARDS boards on one bus, each with its flash (address, calibration,
 * the state store's two sectors, the inactive image slot, the boot record, the gate's
 * table) and a boot loader that runs a trial boot after fw_swap (PROTOCOL.md, "Firmware
 * update"). Reads one command per line on stdin and prints one line per command. Numbers
 * decimal (or 0x hex), byte strings hex ("-" for none). tests/firmware_c2_lines.py turns
 * the golden vectors (firmware/protocol/vectors/v2/) into these lines.
 *
 *   bus           a new bus: every board removed   -> "ok"
 *   board I ADDR UID KIND MIN MAX INIT RES OFFSET FW0 FW1 FW2 N0 N1 N2 N3 UPTIME SUPPLY
 *         TEMP C0 C1 C2 C3 FAILS SELFTEST BAUD     -> "ok" (fresh flash, then power-on)
 *   gate I WHICH TABLE  a gate table (21 numbers: charge uV[5], nV/us[5], discharge uV[5],
 *         nV/us[5], leak): 0 nominal (in use, source 0), 1 what calibrating measures -> "ok"
 *   nogate I (a port without the calibration callbacks) -> "ok" | slope TABLE GATE_UV CHARGING
 *         tr2_gate_slope_nv_per_us -> number
 *   send I HEX    feed the bytes to board I         -> "none" | "reply HEX START_US ..."
 *   power I | cut I (power lost in the next store's program) | trigger I WIDTH_US -> "ok"
 *   rule I RULE PROB GAIN DB TARGET N  N learns     -> "DRAW DVF DVC CONTRAST UPDATED
 *                                                      TARGET STATE RESIDUE ; ..."
 *   decode HEX    one chunk                         -> "ok VER DST SRC SEQ CMD PAYLOAD" | "err CODE"
 *   encode VER DST SRC SEQ CMD PAYLOAD              -> wire hex
 *   timing BAUD PAYLOAD SLOT                        -> "CHAR TURNAROUND SLOT_US START_US"
 *   hash UID SALT | slot UID SALT SLOTS | fmix X | prng UID N | crc32 HEX  -> numbers
 *   grid MIN MAX RES TARGET   the ideal actuator's state for TARGET   -> number
 *
 * A board that asks for a restart (reset, fw_swap) is restarted after its reply; a board
 * whose power was cut prints no reply and starts again from power-on. A line the harness
 * cannot parse ends it with a message and exit status 2; a simulated flash too small for
 * what a test asks of it ends it with exit status 3 (never a wrong answer), a core that
 * writes the reply buffer without returning TR2_SEND with exit status 4.
 *
 * The image slots share one pool of 128-byte pages, a block's data stored once however
 * many boards hold it, so that three boards fit the 16 KiB of the micro:bit under QEMU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twinrig_core2.h"

#ifndef BOARD_SIM_LINE_MAX
#define BOARD_SIM_LINE_MAX 4096
#endif
#ifndef SIM_BOARDS
#define SIM_BOARDS 3
#endif
#ifndef SIM_SLOT_BLOCKS /* a simulated image slot: 64 blocks, 8 KiB */
#define SIM_SLOT_BLOCKS 64
#endif
#ifndef SIM_POOL_PAGES /* distinct blocks held at once by all slots, at most 255 */
#define SIM_POOL_PAGES 192
#endif
#define WORDS_MAX 32

typedef struct {
    int32_t node_uv[4];
    uint32_t uptime_ms, supply_uv;
    int32_t temperature_mdegc, offset;
    int32_t cal[4];
    uint8_t address;
    uint8_t sector[2][TR2_RECORD_LEN];
    uint8_t slot_version[2][3];
    int built, active, trial, self_test, fails, cut, power_lost, gate_source; /* 1: measured */
    uint8_t trial_version[3];
    uint16_t trial_blocks;
    tr2_boot_info boot;                   /* the boot record's last outcome */
    uint8_t page_of[SIM_SLOT_BLOCKS];     /* the inactive slot: pool page + 1, 0 erased */
    tr2_gate_cal gate, gate_hw;           /* the table in flash; what measuring finds */
    tr2_board_config cfg;
    tr2_hal hal;
    tr2_board board;
} sim;

static sim sims[SIM_BOARDS];
static uint8_t pool[SIM_POOL_PAGES][TR2_BLOCK_SIZE];
static char line[BOARD_SIM_LINE_MAX];
static uint8_t bytes[BOARD_SIM_LINE_MAX / 2];

static void die(int status, const char *what, const char *arg)
{
    fflush(stdout);
    fprintf(stderr, "board_sim2: %s%s\n", what, arg);
    exit(status);
}

/* ---- simulated hardware --------------------------------------------------- */

static void hw_nodes(void *u, int32_t n[4])
{
    memcpy(n, ((sim *)u)->node_uv, sizeof ((sim *)u)->node_uv);
}

static int32_t hw_move(void *u, int32_t target)
{
    sim *s = (sim *)u;
    return tr2_grid_point(&s->cfg, target) + s->offset; /* offset: a read-back error */
}

static int hw_cal_load(void *u, int32_t off[4])
{
    memcpy(off, ((sim *)u)->cal, sizeof ((sim *)u)->cal);
    return 0;
}

/* A write to a failing flash (fails) changes nothing and returns -1. */
static int hw_cal_store(void *u, const int32_t off[4])
{
    sim *s = (sim *)u;
    if (!s->fails) {
        memcpy(s->cal, off, sizeof s->cal);
    }
    return s->fails ? -1 : 0;
}

static int hw_address_store(void *u, uint8_t address)
{
    sim *s = (sim *)u;
    if (!s->fails) {
        s->address = address;
    }
    return s->fails ? -1 : 0;
}

static int hw_store_read(void *u, unsigned sector, uint8_t rec[TR2_RECORD_LEN])
{
    memcpy(rec, ((sim *)u)->sector[sector], TR2_RECORD_LEN);
    return 0;
}

static int hw_store_erase(void *u, unsigned sector)
{
    sim *s = (sim *)u;
    if (!s->fails) {
        memset(s->sector[sector], 0xFF, TR2_RECORD_LEN);
    }
    return s->fails ? -1 : 0;
}

static int hw_store_program(void *u, unsigned sector, const uint8_t rec[TR2_RECORD_LEN])
{
    sim *s = (sim *)u;
    if (s->cut) {
        s->cut = 0;
        s->power_lost = 1; /* the sector stays erased */
        return -1;
    }
    if (!s->fails) {
        memcpy(s->sector[sector], rec, TR2_RECORD_LEN);
    }
    return s->fails ? -1 : 0;
}

static int hw_fw_erase(void *u, uint32_t size)
{
    sim *s = (sim *)u;
    if (s->fails) {
        return -1;
    }
    if (size > (uint32_t)SIM_SLOT_BLOCKS * TR2_BLOCK_SIZE) {
        die(3, "fw_begin: the simulated slot is smaller than the image", "");
    }
    memset(s->page_of, 0, sizeof s->page_of);
    memset(&s->boot.fw_version, 0, sizeof s->boot.fw_version);
    s->boot.fw_phase = TR2_PHASE_IDLE;
    s->boot.fw_blocks = 0;
    return 0;
}

/* A pool page holding data (an existing one, or a free one: none of the slots uses it). */
static uint8_t pool_page(const uint8_t *data)
{
    static uint8_t used[SIM_POOL_PAGES];
    unsigned p, i, b;
    memset(used, 0, sizeof used);
    for (i = 0; i < SIM_BOARDS; i++) {
        for (b = 0; b < SIM_SLOT_BLOCKS; b++) {
            if (sims[i].page_of[b]) {
                used[sims[i].page_of[b] - 1u] = 1;
            }
        }
    }
    for (p = 0; p < SIM_POOL_PAGES; p++) {
        if (used[p] && memcmp(pool[p], data, TR2_BLOCK_SIZE) == 0) {
            return (uint8_t)(p + 1u);
        }
    }
    for (p = 0; p < SIM_POOL_PAGES; p++) {
        if (!used[p]) {
            memcpy(pool[p], data, TR2_BLOCK_SIZE);
            return (uint8_t)(p + 1u);
        }
    }
    die(3, "fw_block: the simulated flash pool is full", "");
    return 0;
}

static int hw_fw_program(void *u, uint32_t offset, const uint8_t data[TR2_BLOCK_SIZE])
{
    sim *s = (sim *)u;
    uint32_t block = offset / TR2_BLOCK_SIZE;
    if (s->fails) {
        return -1;
    }
    if (offset % TR2_BLOCK_SIZE != 0u || block >= SIM_SLOT_BLOCKS) {
        die(3, "fw_block: past the simulated slot", "");
    }
    s->page_of[block] = 0; /* a block written twice: the old page may go */
    s->page_of[block] = pool_page(data);
    return 0;
}

static int hw_fw_read(void *u, uint32_t offset, uint8_t *data, uint32_t len)
{
    sim *s = (sim *)u;
    uint32_t i;
    if (offset + len > (uint32_t)SIM_SLOT_BLOCKS * TR2_BLOCK_SIZE) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        uint32_t at = offset + i;
        uint8_t page = s->page_of[at / TR2_BLOCK_SIZE];
        data[i] = page ? pool[page - 1u][at % TR2_BLOCK_SIZE] : 0xFFu;
    }
    return 0;
}

static int hw_fw_trial(void *u, const uint8_t version[3], uint16_t blocks)
{
    sim *s = (sim *)u;
    if (!s->fails) {
        memcpy(s->slot_version[1 - s->active], version, 3);
        memcpy(s->trial_version, version, 3);
        s->trial_blocks = blocks;
        s->trial = 1;
    }
    return s->fails ? -1 : 0;
}

/* The actuator calibration (PROTOCOL.md, "Actuator calibration"): the port's, in its
   flash, so kept across every reset; a failing flash keeps the table before. */
static int hw_gate_calibrate(void *u, tr2_gate_cal *measured)
{
    sim *s = (sim *)u;
    *measured = s->gate_hw;
    if (!s->fails) {
        s->gate = s->gate_hw;
        s->gate_source = 1;
    }
    return s->fails ? -1 : 0;
}

static uint8_t hw_gate_calibration(void *u, tr2_gate_cal *in_use)
{
    *in_use = ((sim *)u)->gate;
    return (uint8_t)((sim *)u)->gate_source;
}

static uint32_t hw_millis(void *u) { return ((sim *)u)->uptime_ms; }
static uint32_t hw_supply(void *u) { return ((sim *)u)->supply_uv; }
static int32_t hw_temperature(void *u) { return ((sim *)u)->temperature_mdegc; }

static const tr2_hal SIM_HAL = { /* every board's port, in tr2_hal's order; user per board */
    NULL, hw_nodes, hw_move, hw_cal_load, hw_cal_store, hw_address_store, hw_store_read,
    hw_store_erase, hw_store_program, hw_fw_erase, hw_fw_program, hw_fw_read, hw_fw_trial,
    hw_millis, hw_supply, hw_temperature, hw_gate_calibrate, hw_gate_calibration
};

/* The boot loader: a trial boot confirms the new image or rolls back; then the image
   starts with the address its flash holds. */
static void boot(sim *s, uint8_t cause)
{
    s->boot.reset_cause = cause;
    if (s->trial) {
        s->trial = 0;
        memcpy(s->boot.fw_version, s->trial_version, 3);
        s->boot.fw_blocks = s->trial_blocks;
        if (s->self_test) {
            s->active = 1 - s->active;
            s->boot.fw_phase = TR2_PHASE_CONFIRMED;
            s->boot.reset_cause = TR2_CAUSE_FIRMWARE_SWAP;
        } else {
            s->boot.fw_phase = TR2_PHASE_ROLLED_BACK;
            s->boot.reset_cause = TR2_CAUSE_ROLLBACK;
        }
    }
    s->cfg.address = s->address;
    memcpy(s->cfg.fw_version, s->slot_version[s->active], 3);
    s->power_lost = 0;
    tr2_board_init(&s->board, &s->cfg, &s->hal, &s->boot);
}

/* ---- line parsing ---------------------------------------------------------- */

static int split(char *p, char *w[WORDS_MAX])
{
    int n = 0;
    char *tok = strtok(p, " \t\r\n");
    while (tok && n < WORDS_MAX) {
        w[n++] = tok;
        tok = strtok(NULL, " \t\r\n");
    }
    return n;
}

static long long num(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 0);
    if (*s == '\0' || *end != '\0') {
        die(2, "not a number: ", s);
    }
    return v;
}

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned v;
    if (strcmp(h, "-") == 0) {
        return 0;
    }
    if (strlen(h) % 2u != 0u || strlen(h) / 2u > cap) {
        die(2, "bad hex: ", h);
    }
    while (h[0]) {
        if (sscanf(h, "%2x", &v) != 1) {
            die(2, "bad hex: ", h);
        }
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

static void puthex(const uint8_t *b, size_t n)
{
    size_t i;
    fputs(n ? "" : "-", stdout);
    for (i = 0; i < n; i++) {
        printf("%02x", b[i]);
    }
}

static sim *slot_at(const char *w)
{
    long long i = num(w);
    if (i < 0 || i >= SIM_BOARDS) {
        die(2, "no such board: ", w);
    }
    return &sims[i];
}

static sim *board_at(const char *w)
{
    sim *s = slot_at(w);
    if (!s->built) {
        die(2, "no board built at ", w);
    }
    return s;
}

static void uid_of(const char *w, uint8_t uid[8])
{
    if (unhex(w, uid, 8) != 8u) {
        die(2, "a uid is 8 bytes: ", w);
    }
}

static void cmd_board(char **w)
{
    sim *s = slot_at(w[1]);
    int i;
    memset(s, 0, sizeof *s);
    s->built = 1;
    s->address = (uint8_t)num(w[2]);
    uid_of(w[3], s->cfg.uid);
    s->cfg.kind = (uint8_t)num(w[4]);
    s->cfg.state_min = (int32_t)num(w[5]);
    s->cfg.state_max = (int32_t)num(w[6]);
    s->cfg.initial_state = (int32_t)num(w[7]);
    s->cfg.resolution = (int32_t)num(w[8]);
    s->offset = (int32_t)num(w[9]);
    for (i = 0; i < 3; i++) {
        s->slot_version[0][i] = (uint8_t)num(w[10 + i]);
    }
    for (i = 0; i < 4; i++) {
        s->node_uv[i] = (int32_t)num(w[13 + i]);
        s->cal[i] = (int32_t)num(w[20 + i]);
    }
    s->uptime_ms = (uint32_t)num(w[17]);
    s->supply_uv = (uint32_t)num(w[18]);
    s->temperature_mdegc = (int32_t)num(w[19]);
    s->fails = (int)num(w[24]);
    s->self_test = (int)num(w[25]);
    s->cfg.baud = (uint32_t)num(w[26]);
    memset(s->sector, 0xFF, sizeof s->sector);
    s->hal = SIM_HAL;
    s->hal.user = s;
    boot(s, TR2_CAUSE_POWER_ON);
    puts("ok");
}

/* The reply buffer is filled with a pattern before every byte: the core may write it only
   when it returns TR2_SEND (twinrig_core2.h), so a reply still being sent from it is safe. */
static int untouched(const tr2_reply *reply)
{
    const uint8_t *p = (const uint8_t *)reply;
    return p[0] == 0xA5u && memcmp(p, p + 1, sizeof *reply - 1u) == 0; /* all bytes alike */
}

/* A gate table: 21 words from w (the four arrays of five, the leak). */
static void table_of(char **w, tr2_gate_cal *c)
{
    int i;
    for (i = 0; i < TR2_GATE_CAL_POINTS; i++) {
        c->charge_gate_uv[i] = (int32_t)num(w[i]);
        c->charge_nv_per_us[i] = (int32_t)num(w[5 + i]);
        c->discharge_gate_uv[i] = (int32_t)num(w[10 + i]);
        c->discharge_nv_per_us[i] = (int32_t)num(w[15 + i]);
    }
    c->leak_uv_per_s = (int32_t)num(w[20]);
}

static void cmd_send(sim *s, const uint8_t *data, size_t n)
{
    static tr2_reply reply;
    size_t i;
    int any = 0;
    for (i = 0; i < n; i++) {
        int r;
        memset(&reply, 0xA5, sizeof reply);
        r = tr2_board_receive(&s->board, data[i], &reply);
        if (!(r & TR2_SEND) && !untouched(&reply)) {
            die(4, "the core wrote the reply buffer without a reply", "");
        }
        if (s->power_lost) {
            boot(s, TR2_CAUSE_POWER_ON); /* nothing after the cut ran */
            continue;
        }
        if (r & TR2_SEND) {
            fputs(any ? " reply " : "reply ", stdout);
            puthex(reply.wire, reply.len);
            printf(" %lu", (unsigned long)reply.start_us);
            any = 1;
        }
        if (r & TR2_RESTART) {
            boot(s, TR2_CAUSE_RESET_COMMAND);
        }
    }
    puts(any ? "" : "none");
}

static void cmd_rule(sim *s, char **w)
{
    tr2_board *b = &s->board;
    long long n = num(w[7]);
    long long k;
    b->rule = (uint8_t)num(w[2]);
    b->probability = (uint32_t)num(w[3]);
    b->gain = (int64_t)num(w[4]);
    b->dead_band_uv2 = (int64_t)num(w[5]);
    tr2_board_set_target(b, (int32_t)num(w[6]));
    for (k = 0; k < n; k++) {
        tr_drops d;
        int up = tr2_board_learn(b);
        tr_compute_drops(s->node_uv, b->offsets_uv, &d);
        printf("%s%lu %ld %ld %lld %d %ld %ld %ld", k ? " ; " : "", (unsigned long)b->prng,
               (long)d.dv_free_uv, (long)d.dv_clamped_uv, (long long)d.contrast_uv2, up,
               (long)b->target, (long)b->state, (long)(b->target - b->state));
    }
    puts("");
}

static void cmd_decode(const char *h)
{
    static tr2_frame f;
    size_t len = unhex(h, bytes, sizeof bytes);
    uint8_t st = tr2_frame_decode(bytes, len, &f);
    if (st != TR_OK) {
        printf("err %u\n", st);
        return;
    }
    printf("ok %u %u %u %u %u ", f.version, f.dst, f.src, f.seq, f.cmd);
    puthex(f.payload, f.len);
    puts("");
}

static void cmd_encode(char **w)
{
    static tr2_frame f;
    static uint8_t wire[TR2_MAX_WIRE];
    f.version = (uint8_t)num(w[1]);
    f.dst = (uint8_t)num(w[2]);
    f.src = (uint8_t)num(w[3]);
    f.seq = (uint8_t)num(w[4]);
    f.cmd = (uint8_t)num(w[5]);
    f.len = (uint8_t)unhex(w[6], f.payload, sizeof f.payload);
    puthex(wire, tr2_frame_encode(&f, wire, sizeof wire));
    puts("");
}

static void dispatch(char **w, int n)
{
    const char *c = w[0];
    uint8_t uid[8];
    if (strcmp(c, "bus") == 0 && n == 1) {
        memset(sims, 0, sizeof sims);
        puts("ok");
    } else if (strcmp(c, "board") == 0 && n == 27) {
        cmd_board(w);
    } else if (strcmp(c, "send") == 0 && n == 3) {
        sim *s = board_at(w[1]);
        cmd_send(s, bytes, unhex(w[2], bytes, sizeof bytes));
    } else if (strcmp(c, "gate") == 0 && n == 24) {
        table_of(w + 3, num(w[2]) ? &board_at(w[1])->gate_hw : &board_at(w[1])->gate);
        puts("ok");
    } else if (strcmp(c, "nogate") == 0 && n == 2) {
        sim *s = board_at(w[1]);
        s->hal.actuator_calibrate = NULL;
        s->hal.actuator_calibration = NULL;
        puts("ok");
    } else if (strcmp(c, "slope") == 0 && n == 24) {
        tr2_gate_cal cal;
        table_of(w + 1, &cal);
        printf("%ld\n", (long)tr2_gate_slope_nv_per_us(&cal, (int32_t)num(w[22]), (int)num(w[23])));
    } else if (strcmp(c, "power") == 0 && n == 2) {
        boot(board_at(w[1]), TR2_CAUSE_POWER_ON);
        puts("ok");
    } else if (strcmp(c, "cut") == 0 && n == 2) {
        board_at(w[1])->cut = 1;
        puts("ok");
    } else if (strcmp(c, "trigger") == 0 && n == 3) {
        tr2_board_trigger(&board_at(w[1])->board, (uint32_t)num(w[2]));
        puts("ok");
    } else if (strcmp(c, "rule") == 0 && n == 8) {
        cmd_rule(board_at(w[1]), w);
    } else if (strcmp(c, "decode") == 0 && n == 2) {
        cmd_decode(w[1]);
    } else if (strcmp(c, "encode") == 0 && n == 7) {
        cmd_encode(w);
    } else if (strcmp(c, "timing") == 0 && n == 4) {
        uint32_t baud = (uint32_t)num(w[1]), payload = (uint32_t)num(w[2]);
        printf("%lu %lu %lu %lu\n", (unsigned long)tr2_char_us(baud),
               (unsigned long)tr2_turnaround_us(baud), (unsigned long)tr2_slot_us(baud, payload),
               (unsigned long)tr2_reply_start_us((uint32_t)num(w[3]), baud, payload));
    } else if (strcmp(c, "hash") == 0 && n == 3) {
        uid_of(w[1], uid);
        printf("%lu\n", (unsigned long)tr2_discover_hash(uid, (uint32_t)num(w[2])));
    } else if (strcmp(c, "slot") == 0 && n == 4) {
        uid_of(w[1], uid);
        printf("%u\n", tr2_discover_slot(uid, (uint32_t)num(w[2]), (uint8_t)num(w[3])));
    } else if (strcmp(c, "grid") == 0 && n == 5) {
        tr2_board_config cfg;
        cfg.state_min = (int32_t)num(w[1]);
        cfg.state_max = (int32_t)num(w[2]);
        cfg.resolution = (int32_t)num(w[3]);
        printf("%ld\n", (long)tr2_grid_point(&cfg, (int32_t)num(w[4])));
    } else if (strcmp(c, "fmix") == 0 && n == 2) {
        printf("%lu\n", (unsigned long)tr2_fmix32((uint32_t)num(w[1])));
    } else if (strcmp(c, "crc32") == 0 && n == 2) {
        size_t len = unhex(w[1], bytes, sizeof bytes);
        printf("%lu\n", (unsigned long)tr2_crc32_update(0, bytes, len));
    } else if (strcmp(c, "prng") == 0 && n == 3) {
        uint32_t x;
        long long k;
        uid_of(w[1], uid);
        printf("%lu", (unsigned long)(x = tr_prng_seed(uid)));
        for (k = 0; k < num(w[2]); k++) {
            printf(" %lu", (unsigned long)tr_prng_next(&x));
        }
        puts("");
    } else {
        die(2, "unknown command or wrong number of words: ", c);
    }
}

int main(void)
{
    /* stdio's buffers given here, not taken from the heap: on the micro:bit's 16 KiB the
       heap is what the stack leaves */
    static char in_buf[256], out_buf[256];
    char *w[WORDS_MAX];
    setvbuf(stdin, in_buf, _IOFBF, sizeof in_buf);
    setvbuf(stdout, out_buf, _IOFBF, sizeof out_buf);
    while (fgets(line, sizeof line, stdin)) {
        int n;
        if (strchr(line, '\n') == NULL && !feof(stdin)) {
            die(2, "line too long", "");
        }
        n = split(line, w);
        if (n > 0) {
            dispatch(w, n);
        }
        fflush(stdout);
    }
    return 0;
}
