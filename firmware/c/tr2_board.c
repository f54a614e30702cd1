/* tr2_board.c - protocol 2's board: receiver, dispatch, actuator, state store, telemetry. */
#include "twinrig_core2.h"

enum { BC_SLOTTED = 1, BC_HASHED, BC_SELECTED, BC_SILENT, BC_REFUSED };

typedef struct {
    uint8_t request_len;
    uint8_t broadcast;
    uint8_t slot_payload; /* the reply a slotted command's slot is sized for */
} cmd_info;

/* indexed by command code 1..19 */
static const cmd_info COMMANDS[] = {
    {0u, 0u, 0u},              /* 0: not a command */
    {0u, BC_SLOTTED, 17u},     /* 1 identify */
    {0u, BC_SLOTTED, 13u},     /* 2 read_state */
    {4u, BC_SILENT, 0u},       /* 3 set_state */
    {21u, BC_SILENT, 0u},      /* 4 configure_rule */
    {0u, BC_REFUSED, 0u},      /* 5 sample_drops */
    {0u, BC_SILENT, 0u},       /* 6 learn */
    {0u, BC_SLOTTED, 40u},     /* 7 read_telemetry */
    {16u, BC_REFUSED, 0u},     /* 8 store_calibration */
    {0u, BC_REFUSED, 0u},      /* 9 read_calibration */
    {1u, BC_SILENT, 0u},       /* 10 reset */
    {0u, BC_SILENT, 0u},       /* 11 store_state */
    {0u, BC_REFUSED, 0u},      /* 12 read_actuator */
    {6u, BC_HASHED, 17u},      /* 13 discover */
    {9u, BC_SELECTED, 0u},     /* 14 assign_address */
    {11u, BC_SILENT, 0u},      /* 15 fw_begin */
    {138u, BC_SILENT, 0u},     /* 16 fw_block */
    {0u, BC_SLOTTED, 25u},     /* 17 fw_status */
    {0u, BC_SILENT, 0u},       /* 18 fw_verify */
    {0u, BC_SILENT, 0u}        /* 19 fw_swap */
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void put_i32(uint8_t *p, int32_t v)
{
    tr2_put_u32(p, (uint32_t)v);
}

static int64_t get_i64(const uint8_t *p)
{
    uint64_t u = (uint64_t)tr2_get_u32(p) | ((uint64_t)tr2_get_u32(p + 4) << 32);
    if (u <= 0x7FFFFFFFFFFFFFFFull) {
        return (int64_t)u;
    }
    return (int64_t)(u - 0x8000000000000000ull) - 0x7FFFFFFFFFFFFFFFLL - 1;
}

/* ---- actuator ------------------------------------------------------------- */

int32_t tr2_grid_point(const tr2_board_config *cfg, int32_t target)
{
    uint32_t r = (uint32_t)cfg->resolution;
    uint32_t range = (uint32_t)cfg->state_max - (uint32_t)cfg->state_min;
    uint32_t d;
    uint32_t q;
    int32_t t = target < cfg->state_min ? cfg->state_min
                : (target > cfg->state_max ? cfg->state_max : target);
    d = (uint32_t)t - (uint32_t)cfg->state_min;
    q = d / r;
    if (d - q * r >= r - r / 2u) {
        q++; /* halves up */
    }
    if (q > range / r) {
        q = range / r; /* never above the top grid point */
    }
    return tr2_u32_to_i32((uint32_t)cfg->state_min + q * r);
}

void tr2_board_set_target(tr2_board *b, int32_t target)
{
    b->target = target < b->cfg->state_min ? b->cfg->state_min
                : (target > b->cfg->state_max ? b->cfg->state_max : target);
    b->state = (b->hal && b->hal->actuator_move) ? b->hal->actuator_move(b->hal->user, b->target)
                                                 : tr2_grid_point(b->cfg, b->target);
}

static int32_t residue(const tr2_board *b)
{
    return (int32_t)((int64_t)b->target - (int64_t)b->state);
}

/* ---- state store ---------------------------------------------------------- */

/* The sector of the newest valid record (-1: none); of two of one generation, which no
   sequence of stores leaves, sector 0, as store.py's max() takes the first. */
static int newest_sector(const tr2_board *b)
{
    if (b->sector_valid[0] && (!b->sector_valid[1] || b->sector_gen[0] >= b->sector_gen[1])) {
        return 0;
    }
    return b->sector_valid[1] ? 1 : -1;
}

static uint32_t generation(const tr2_board *b)
{
    int s = newest_sector(b);
    return s < 0 ? 0u : b->sector_gen[s];
}

static int32_t restored_target(const tr2_board *b)
{
    int s = newest_sector(b);
    return s < 0 ? b->cfg->initial_state : b->sector_target[s];
}

static void store_load(tr2_board *b)
{
    unsigned s;
    uint8_t rec[TR2_RECORD_LEN];
    for (s = 0; s < 2u; s++) {
        b->sector_valid[s] = 0;
        if (b->hal && b->hal->store_read && b->hal->store_read(b->hal->user, s, rec) == 0 &&
            tr2_crc32_update(0, rec, 8) == tr2_get_u32(rec + 8)) {
            b->sector_valid[s] = 1;
            b->sector_gen[s] = tr2_get_u32(rec);
            b->sector_target[s] = tr2_u32_to_i32(tr2_get_u32(rec + 4));
        }
    }
}

/* store_state: the record goes to the sector not holding the newest one, erased first. */
static uint8_t store_write(tr2_board *b, uint32_t *gen_out)
{
    int newest = newest_sector(b);
    unsigned s = (newest == 1 || newest < 0) ? 0u : 1u;
    uint32_t gen = generation(b) + 1u;
    uint8_t rec[TR2_RECORD_LEN];
    const tr2_hal *h = b->hal;
    if (!h || !h->store_erase || !h->store_program || h->store_erase(h->user, s) != 0) {
        return TR_STORAGE;
    }
    b->sector_valid[s] = 0;
    tr2_put_u32(rec, gen);
    put_i32(rec + 4, b->target);
    tr2_put_u32(rec + 8, tr2_crc32_update(0, rec, 8));
    if (h->store_program(h->user, s, rec) != 0) {
        return TR_STORAGE;
    }
    b->sector_valid[s] = 1;
    b->sector_gen[s] = gen;
    b->sector_target[s] = b->target;
    *gen_out = gen;
    return TR_OK;
}

static uint8_t store_erase_all(tr2_board *b)
{
    const tr2_hal *h = b->hal;
    unsigned s;
    if (!h || !h->store_erase) {
        return TR_STORAGE;
    }
    for (s = 0; s < 2u; s++) {
        if (h->store_erase(h->user, s) != 0) {
            return TR_STORAGE;
        }
        b->sector_valid[s] = 0;
    }
    return TR_OK;
}

/* ---- start-up, learn, flags ------------------------------------------------ */

void tr2_board_init(tr2_board *b, const tr2_board_config *cfg, const tr2_hal *hal,
                    const tr2_boot_info *boot)
{
    int i;
    b->cfg = cfg;
    b->hal = hal;
    b->address = cfg->address;
    for (i = 0; i < 4; i++) {
        b->offsets_uv[i] = 0;
    }
    if (!hal || !hal->calibration_load || hal->calibration_load(hal->user, b->offsets_uv) != 0) {
        for (i = 0; i < 4; i++) {
            b->offsets_uv[i] = 0;
        }
    }
    store_load(b);
    tr2_board_set_target(b, restored_target(b));
    b->rule = TR_RULE_NONE;
    b->probability = 0;
    b->gain = 0;
    b->dead_band_uv2 = 0;
    b->prng = tr_prng_seed(cfg->uid);
    b->frames_ok = b->frames_bad = b->learns = b->updates = b->glitches = 0;
    b->last_error = TR_OK;
    b->duplicate = 0;
    b->reset_cause = boot->reset_cause;
    tr2_update_forget(&b->fw);
    b->fw.phase = boot->fw_phase;
    for (i = 0; i < 3; i++) {
        b->fw.version[i] = boot->fw_version[i];
    }
    b->fw.blocks = boot->fw_blocks;
    tr2_cobs_decoder_reset(&b->rx);
}

/* The drops of the nodes as read now, offsets subtracted (zero nodes without a reader).
   The array is zeroed element by element: an initialiser would be a memset call. */
static void drops(const tr2_board *b, tr_drops *d)
{
    int32_t node_uv[4];
    node_uv[0] = node_uv[1] = node_uv[2] = node_uv[3] = 0;
    if (b->hal && b->hal->read_nodes_uv) {
        b->hal->read_nodes_uv(b->hal->user, node_uv);
    }
    tr_compute_drops(node_uv, b->offsets_uv, d);
}

int tr2_board_learn(tr2_board *b)
{
    tr_drops d;
    int32_t next;
    int updated;
    uint32_t r = tr_prng_next(&b->prng); /* always drawn, as protocol 1.1 */
    drops(b, &d);
    updated = tr_rule_apply(b->rule, r, b->probability, b->gain, b->dead_band_uv2, d.contrast_uv2,
                            b->target, b->cfg->state_min, b->cfg->state_max, &next);
    b->learns++;
    if (updated) {
        b->updates++;
        tr2_board_set_target(b, next);
    }
    return updated;
}

void tr2_board_trigger(tr2_board *b, uint32_t width_us)
{
    if (width_us >= TR2_TRIGGER_MIN_US) {
        (void)tr2_board_learn(b);
    } else {
        b->glitches++;
    }
}

uint8_t tr2_board_flags(const tr2_board *b)
{
    return (uint8_t)((b->duplicate ? TR2_FLAG_DUPLICATE : 0) |
                     (b->target != restored_target(b) ? TR2_FLAG_STATE_UNSTORED : 0) |
                     (b->fw.phase == TR2_PHASE_ROLLED_BACK ? TR2_FLAG_ROLLED_BACK : 0));
}

/* ---- commands -------------------------------------------------------------- */

static uint8_t identity(const tr2_board *b, uint8_t *out, uint8_t *len)
{
    int i;
    for (i = 0; i < 8; i++) {
        out[i] = b->cfg->uid[i];
    }
    out[8] = b->cfg->fw_version[0];
    out[9] = b->cfg->fw_version[1];
    out[10] = b->cfg->fw_version[2];
    out[11] = b->cfg->kind;
    out[12] = (uint8_t)TR2_PROTOCOL_VERSION;
    out[13] = (uint8_t)TR2_PROTOCOL_MINOR;
    out[14] = b->address;
    out[15] = tr2_board_flags(b);
    *len = 16;
    return TR_OK;
}

static uint8_t configure_rule(tr2_board *b, const uint8_t *p)
{
    uint8_t rule = p[0];
    uint32_t probability = tr2_get_u32(p + 1);
    int64_t gain = get_i64(p + 5);
    int64_t dead_band = get_i64(p + 13);
    if (rule > TR_RULE_CONTINUOUS || probability > TR_PROBABILITY_ONE || gain < 0 ||
        dead_band < 0 || gain >= TR_GAIN_LIMIT) {
        return TR_OUT_OF_RANGE;
    }
    if ((rule == TR_RULE_TAP && b->cfg->kind != TR_KIND_DIGIPOT) ||
        (rule == TR_RULE_GATE_CHARGING && b->cfg->kind != TR_KIND_MOSFET)) {
        return TR_WRONG_KIND;
    }
    b->rule = rule;
    b->probability = probability;
    b->gain = gain;
    b->dead_band_uv2 = dead_band;
    return TR_OK;
}

static uint32_t sensor_u32(uint32_t (*fn)(void *), void *user)
{
    return fn ? fn(user) : 0u;
}

static uint8_t telemetry(const tr2_board *b, uint8_t *out, uint8_t *len)
{
    const tr2_hal *h = b->hal;
    void *user = h ? h->user : 0;
    tr2_put_u32(out, h ? sensor_u32(h->millis, user) : 0u);
    tr2_put_u32(out + 4, b->frames_ok);
    tr2_put_u32(out + 8, b->frames_bad);
    tr2_put_u32(out + 12, b->learns);
    tr2_put_u32(out + 16, b->updates);
    tr2_put_u32(out + 20, b->glitches);
    out[24] = b->last_error;
    out[25] = b->reset_cause;
    out[26] = tr2_board_flags(b);
    tr2_put_u32(out + 27, h ? sensor_u32(h->supply_uv, user) : 0u);
    put_i32(out + 31, (h && h->temperature_mdegc) ? h->temperature_mdegc(user) : 0);
    tr2_put_u32(out + 35, generation(b));
    *len = 39;
    return TR_OK;
}

/* Execute a command of valid length; out[] follows the status byte. *restart is set when
   the port is to restart the board after answering. */
static uint8_t execute(tr2_board *b, const tr2_frame *req, uint8_t *out, uint8_t *len,
                       int *restart)
{
    const uint8_t *p = req->payload;
    const tr2_hal *h = b->hal;
    uint8_t st;
    int i;
    int32_t v;
    uint32_t gen = 0;
    switch (req->cmd) {
    case TR_CMD_IDENTIFY:
        return identity(b, out, len);
    case TR_CMD_READ_STATE:
        put_i32(out, b->state);
        put_i32(out + 4, residue(b));
        tr2_put_u32(out + 8, generation(b));
        *len = 12;
        return TR_OK;
    case TR_CMD_SET_STATE:
        v = tr2_u32_to_i32(tr2_get_u32(p));
        if (v < b->cfg->state_min || v > b->cfg->state_max) {
            return TR_OUT_OF_RANGE;
        }
        tr2_board_set_target(b, v);
        put_i32(out, b->state);
        put_i32(out + 4, residue(b));
        *len = 8;
        return TR_OK;
    case TR_CMD_CONFIGURE_RULE:
        return configure_rule(b, p);
    case TR_CMD_SAMPLE_DROPS: {
        tr_drops d;
        drops(b, &d);
        put_i32(out, d.dv_free_uv);
        put_i32(out + 4, d.dv_clamped_uv);
        *len = 8;
        return TR_OK;
    }
    case TR_CMD_LEARN:
        out[8] = (uint8_t)tr2_board_learn(b);
        put_i32(out, b->state);
        put_i32(out + 4, residue(b));
        *len = 9;
        return TR_OK;
    case TR_CMD_READ_TELEMETRY:
        return telemetry(b, out, len);
    case TR_CMD_STORE_CALIBRATION: {
        int32_t offsets[4];
        for (i = 0; i < 4; i++) {
            offsets[i] = tr2_u32_to_i32(tr2_get_u32(p + 4 * i));
        }
        if (!h || !h->calibration_store || h->calibration_store(h->user, offsets) != 0) {
            return TR_STORAGE;
        }
        for (i = 0; i < 4; i++) {
            b->offsets_uv[i] = offsets[i];
        }
        return TR_OK;
    }
    case TR_CMD_READ_CALIBRATION:
        for (i = 0; i < 4; i++) {
            put_i32(out + 4 * i, b->offsets_uv[i]);
        }
        *len = 16;
        return TR_OK;
    case TR_CMD_RESET:
        if (p[0] > 1u) {
            return TR_OUT_OF_RANGE;
        }
        if (p[0] == 1u && (st = store_erase_all(b)) != TR_OK) {
            return st; /* a factory reset erases before it answers */
        }
        *restart = 1;
        return TR_OK;
    case TR2_CMD_STORE_STATE:
        st = store_write(b, &gen);
        if (st == TR_OK) {
            tr2_put_u32(out, gen);
            *len = 4;
        }
        return st;
    case TR2_CMD_READ_ACTUATOR:
        put_i32(out, b->cfg->state_min);
        put_i32(out + 4, b->cfg->state_max);
        put_i32(out + 8, b->cfg->resolution);
        put_i32(out + 12, b->cfg->initial_state);
        *len = 16;
        return TR_OK;
    case TR2_CMD_DISCOVER:
        if (p[4] == 0u || p[4] > TR2_DISCOVER_SLOTS_MAX || p[5] > 1u) {
            return TR_OUT_OF_RANGE;
        }
        return identity(b, out, len);
    case TR2_CMD_ASSIGN_ADDRESS:
        if (p[8] == 0u || p[8] > TR2_ADDR_UNASSIGNED) {
            return TR_OUT_OF_RANGE;
        }
        if (!h || !h->address_store || h->address_store(h->user, p[8]) != 0) {
            return TR_STORAGE;
        }
        b->address = p[8]; /* stored before the reply, which comes from the new address */
        b->duplicate = 0;
        return TR_OK;
    case TR2_CMD_FW_BEGIN:
        st = tr2_update_begin(b, tr2_get_u32(p), tr2_get_u32(p + 4), p + 8);
        if (st == TR_OK) {
            out[0] = (uint8_t)(b->fw.blocks & 0xFFu);
            out[1] = (uint8_t)(b->fw.blocks >> 8);
            *len = 2;
        }
        return st;
    case TR2_CMD_FW_BLOCK:
        return tr2_update_block(b, p);
    case TR2_CMD_FW_STATUS:
        tr2_update_status(&b->fw, out);
        *len = 24;
        return TR_OK;
    case TR2_CMD_FW_VERIFY:
        st = tr2_update_verify(b);
        out[0] = b->fw.phase;
        *len = 1;
        return st;
    case TR2_CMD_FW_SWAP:
        st = tr2_update_swap(b);
        *restart = st == TR_OK;
        return st;
    default:
        return TR_UNKNOWN_COMMAND;
    }
}

static int encode_reply(tr2_board *b, const tr2_frame *req, uint8_t version, uint8_t cmd,
                        tr2_frame *rep, uint32_t start_us, tr2_reply *reply)
{
    rep->version = version;
    rep->dst = TR_ADDR_HOST;
    rep->src = b->address;
    rep->seq = req->seq;
    rep->cmd = (uint8_t)(cmd | TR_REPLY_BIT);
    reply->len = (uint16_t)tr2_frame_encode(rep, reply->wire, sizeof reply->wire);
    reply->start_us = start_us;
    return TR2_SEND;
}

/* Protocol 1's identify, answered in protocol 1's layout by an assigned board. */
static int v1_probe(tr2_board *b, const tr2_frame *req, tr2_reply *reply)
{
    tr2_frame rep;
    uint8_t len;
    int bcast = req->dst == TR_ADDR_BROADCAST;
    if (b->address == TR2_ADDR_UNASSIGNED || (!bcast && req->dst != b->address)) {
        return 0;
    }
    b->frames_ok++;
    rep.payload[0] = TR_OK;
    (void)identity(b, rep.payload + 1, &len);
    rep.len = 15; /* protocol 1's payload: no address, no flags */
    return encode_reply(b, req, (uint8_t)TR_PROTOCOL_VERSION, TR_CMD_IDENTIFY, &rep,
                        bcast ? (uint32_t)b->address * TR2_V1_SLOT_US
                              : tr2_turnaround_us(b->cfg->baud),
                        reply);
}

static int handle_frame(tr2_board *b, const tr2_frame *req, tr2_reply *reply)
{
    int bcast = req->dst == TR_ADDR_BROADCAST;
    int assigned = b->address != TR2_ADDR_UNASSIGNED;
    const cmd_info *info = 0;
    uint8_t status;
    uint8_t body = 0;
    int restart = 0;
    uint32_t start = tr2_turnaround_us(b->cfg->baud);
    int length_ok;
    tr2_frame rep;

    if (req->version == TR_PROTOCOL_VERSION) {
        return v1_probe(b, req, reply);
    }
    if (req->dst == TR_ADDR_HOST) {
        if ((req->cmd & TR_REPLY_BIT) && req->src == b->address && assigned) {
            b->duplicate = 1; /* another board answers at this address */
        }
        return 0;
    }
    if (!bcast && req->dst != b->address) {
        return 0;
    }
    b->frames_ok++;
    if (req->cmd > 0u && req->cmd < N_COMMANDS) {
        info = &COMMANDS[req->cmd];
    }
    length_ok = info && req->len == info->request_len;
    if (!info) {
        status = TR_UNKNOWN_COMMAND;
    } else if (bcast && info->broadcast == BC_REFUSED) {
        b->last_error = TR_BROADCAST_REFUSED;
        return 0;
    } else if (!length_ok) {
        status = TR_BAD_LENGTH;
    } else {
        if (info->broadcast == BC_SELECTED) {
            int i;
            for (i = 0; i < 8; i++) {
                if (req->payload[i] != b->cfg->uid[i]) {
                    return 0;
                }
            }
        }
        if (req->cmd == TR2_CMD_DISCOVER && req->payload[5] == 1u && assigned) {
            return 0;
        }
        status = execute(b, req, rep.payload + 1, &body, &restart);
    }
    if (status != TR_OK) {
        b->last_error = status;
        body = 0;
    }
    if (bcast) {
        uint8_t mode = info ? info->broadcast : 0u;
        if (mode == BC_SLOTTED && assigned) {
            start = tr2_reply_start_us(b->address, b->cfg->baud, info->slot_payload);
        } else if (mode == BC_HASHED && length_ok && req->payload[4] >= 1u &&
                   req->payload[4] <= TR2_DISCOVER_SLOTS_MAX) {
            start = tr2_reply_start_us(
                tr2_discover_slot(b->cfg->uid, tr2_get_u32(req->payload), req->payload[4]),
                b->cfg->baud, info->slot_payload);
        } else if (mode != BC_SELECTED) {
            return restart ? TR2_RESTART : 0;
        }
    }
    rep.payload[0] = status;
    rep.len = (uint8_t)(1u + body);
    return encode_reply(b, req, (uint8_t)TR2_PROTOCOL_VERSION, req->cmd, &rep, start, reply) |
           (restart ? TR2_RESTART : 0);
}

int tr2_board_receive(tr2_board *b, uint8_t byte, tr2_reply *reply)
{
    tr2_frame f;
    uint8_t st;
    if (byte != 0) {
        tr2_cobs_decoder_push(&b->rx, byte);
        return 0;
    }
    if (b->rx.raw == 0) {
        return 0; /* empty chunk: skipped silently */
    }
    st = tr2_frame_finish(&b->rx, &f);
    tr2_cobs_decoder_reset(&b->rx);
    if (st != TR_OK) {
        b->frames_bad++;
        b->last_error = st;
        return 0;
    }
    return handle_frame(b, &f, reply);
}
