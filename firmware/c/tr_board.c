/* tr_board.c - board state, command dispatch, telemetry and calibration. */
#include "twinrig_core.h"

/* ---- little-endian fields (portable: no implementation-defined casts) --- */

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

static int32_t u32_to_i32(uint32_t u)
{
    if (u <= 0x7FFFFFFFu) {
        return (int32_t)u;
    }
    return (int32_t)(u - 0x80000000u) - 0x7FFFFFFF - 1;
}

static int64_t u64_to_i64(uint64_t u)
{
    if (u <= 0x7FFFFFFFFFFFFFFFull) {
        return (int64_t)u;
    }
    return (int64_t)(u - 0x8000000000000000ull) - 0x7FFFFFFFFFFFFFFFLL - 1;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

static void put_i32(uint8_t *p, int32_t v)
{
    put_u32(p, (uint32_t)v); /* signed -> unsigned is well defined (mod 2^32) */
}

/* ---- command table ------------------------------------------------------ */

enum { BC_SLOTTED = 1, BC_SILENT = 2, BC_REFUSED = 3 };

typedef struct {
    uint8_t request_len;
    uint8_t broadcast;
} cmd_info;

/* indexed by command code; request_len 0xFF marks an unknown code */
static const cmd_info COMMANDS[] = {
    {0xFFu, 0},          /* 0: not a command */
    {0u, BC_SLOTTED},    /* 1 identify */
    {0u, BC_SLOTTED},    /* 2 read_state */
    {4u, BC_SILENT},     /* 3 set_state */
    {21u, BC_SILENT},    /* 4 configure_rule: u8 u32 i64 i64 */
    {0u, BC_REFUSED},    /* 5 sample_drops */
    {0u, BC_SILENT},     /* 6 learn */
    {0u, BC_REFUSED},    /* 7 read_telemetry */
    {16u, BC_REFUSED},   /* 8 store_calibration */
    {0u, BC_REFUSED},    /* 9 read_calibration */
    {0u, BC_SILENT}      /* 10 reset */
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

/* ---- board -------------------------------------------------------------- */

static void drive(tr_board *b)
{
    if (b->hal && b->hal->set_actuator) {
        b->hal->set_actuator(b->hal->user, b->state);
    }
}

static uint32_t now_ms(const tr_board *b)
{
    return (b->hal && b->hal->millis) ? b->hal->millis(b->hal->user) : 0u;
}

void tr_board_restart(tr_board *b)
{
    b->state = tr_clip_state(b->cfg.initial_state, b->cfg.state_min, b->cfg.state_max);
    b->rule = TR_RULE_NONE;
    b->probability = 0;
    b->gain = 0;
    b->dead_band_uv2 = 0;
    b->prng = tr_prng_seed(b->cfg.uid);
    b->frames_ok = 0;
    b->frames_bad = 0;
    b->updates = 0;
    b->last_error = TR_OK;
    drive(b);
}

void tr_board_init(tr_board *b, const tr_board_config *cfg, const tr_hal *hal)
{
    int i;
    b->cfg = *cfg;
    b->hal = hal;
    for (i = 0; i < 4; i++) {
        b->offsets_uv[i] = 0;
    }
    if (hal && hal->nvs_load) {
        int32_t loaded[4];
        if (hal->nvs_load(hal->user, loaded) == 0) {
            for (i = 0; i < 4; i++) {
                b->offsets_uv[i] = loaded[i];
            }
        }
    }
    tr_cobs_decoder_reset(&b->rx);
    tr_board_restart(b);
}

void tr_board_drops(tr_board *b, tr_drops *out)
{
    int32_t node_uv[4];
    /* element by element: an initialiser list makes gcc call memset on Cortex-M0 */
    node_uv[0] = 0;
    node_uv[1] = 0;
    node_uv[2] = 0;
    node_uv[3] = 0;
    if (b->hal && b->hal->read_nodes_uv) {
        b->hal->read_nodes_uv(b->hal->user, node_uv);
    }
    tr_compute_drops(node_uv, b->offsets_uv, out);
}

int tr_board_learn(tr_board *b)
{
    tr_drops d;
    int32_t next;
    int updated;
    uint32_t r = tr_prng_next(&b->prng); /* always drawn */
    tr_board_drops(b, &d);
    updated = tr_rule_apply(b->rule, r, b->probability, b->gain, b->dead_band_uv2,
                            d.contrast_uv2, b->state, b->cfg.state_min, b->cfg.state_max,
                            &next);
    if (updated) {
        b->updates++;
        b->state = next;
        drive(b);
    }
    return updated;
}

static uint8_t configure_rule(tr_board *b, const uint8_t *p)
{
    uint8_t rule = p[0];
    uint32_t probability = get_u32(p + 1);
    int64_t gain = u64_to_i64(get_u64(p + 5));
    int64_t dead_band = u64_to_i64(get_u64(p + 13));
    if (rule > TR_RULE_CONTINUOUS || probability > TR_PROBABILITY_ONE || gain < 0 ||
        dead_band < 0 || gain >= TR_GAIN_LIMIT) {
        return TR_OUT_OF_RANGE;
    }
    if ((rule == TR_RULE_TAP && b->cfg.kind != TR_KIND_DIGIPOT) ||
        (rule == TR_RULE_GATE_CHARGING && b->cfg.kind != TR_KIND_MOSFET)) {
        return TR_WRONG_KIND;
    }
    b->rule = rule;
    b->probability = probability;
    b->gain = gain;
    b->dead_band_uv2 = dead_band;
    return TR_OK;
}

/* Execute a command whose code and length are valid; fill out[] (after the
   status byte) and *out_len. Returns the status. */
static uint8_t execute(tr_board *b, const tr_frame *req, uint8_t *out, uint8_t *out_len)
{
    const uint8_t *p = req->payload;
    int i;
    *out_len = 0;
    switch (req->cmd) {
    case TR_CMD_IDENTIFY:
        /* the uid as two words: gcc turns a byte-copy loop into a memcpy call */
        put_u32(out, get_u32(b->cfg.uid));
        put_u32(out + 4, get_u32(b->cfg.uid + 4));
        out[8] = b->cfg.fw_major;
        out[9] = b->cfg.fw_minor;
        out[10] = b->cfg.fw_patch;
        out[11] = b->cfg.kind;
        out[12] = (uint8_t)TR_PROTOCOL_VERSION;
        out[13] = (uint8_t)TR_PROTOCOL_MINOR;
        *out_len = 14;
        return TR_OK;
    case TR_CMD_READ_STATE:
        put_i32(out, b->state);
        *out_len = 4;
        return TR_OK;
    case TR_CMD_SET_STATE: {
        int32_t v = u32_to_i32(get_u32(p));
        if (v < b->cfg.state_min || v > b->cfg.state_max) {
            return TR_OUT_OF_RANGE;
        }
        b->state = v;
        drive(b);
        put_i32(out, b->state);
        *out_len = 4;
        return TR_OK;
    }
    case TR_CMD_CONFIGURE_RULE:
        return configure_rule(b, p);
    case TR_CMD_SAMPLE_DROPS: {
        tr_drops d;
        tr_board_drops(b, &d);
        put_i32(out, d.dv_free_uv);
        put_i32(out + 4, d.dv_clamped_uv);
        *out_len = 8;
        return TR_OK;
    }
    case TR_CMD_LEARN: {
        int updated = tr_board_learn(b);
        put_i32(out, b->state);
        out[4] = (uint8_t)(updated ? 1 : 0);
        *out_len = 5;
        return TR_OK;
    }
    case TR_CMD_READ_TELEMETRY:
        put_u32(out, now_ms(b));
        put_u32(out + 4, b->frames_ok);
        put_u32(out + 8, b->frames_bad);
        put_u32(out + 12, b->updates);
        out[16] = b->last_error;
        *out_len = 17;
        return TR_OK;
    case TR_CMD_STORE_CALIBRATION: {
        int32_t offsets[4];
        for (i = 0; i < 4; i++) {
            offsets[i] = u32_to_i32(get_u32(p + 4 * i));
        }
        if (!b->hal || !b->hal->nvs_store || b->hal->nvs_store(b->hal->user, offsets) != 0) {
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
        *out_len = 16;
        return TR_OK;
    case TR_CMD_RESET:
        return TR_OK; /* the restart happens after the reply is built */
    default:
        return TR_UNKNOWN_COMMAND;
    }
}

int tr_board_handle_frame(tr_board *b, const tr_frame *req, tr_reply *reply)
{
    int broadcast = req->dst == TR_ADDR_BROADCAST;
    const cmd_info *info = 0;
    uint8_t status;
    tr_frame rep;
    uint8_t body_len = 0;

    if (!broadcast && req->dst != b->cfg.address) {
        return 0; /* for another board: ignored, not counted as bad */
    }
    b->frames_ok++;

    if (req->cmd < N_COMMANDS && COMMANDS[req->cmd].request_len != 0xFFu) {
        info = &COMMANDS[req->cmd];
    }
    if (!info) {
        status = TR_UNKNOWN_COMMAND;
    } else if (broadcast && info->broadcast == BC_REFUSED) {
        status = TR_BROADCAST_REFUSED;
    } else if (req->len != info->request_len) {
        status = TR_BAD_LENGTH;
    } else {
        status = execute(b, req, rep.payload + 1, &body_len);
    }
    if (status != TR_OK) {
        b->last_error = status;
        body_len = 0;
    }

    if (broadcast && !(info && info->broadcast == BC_SLOTTED)) {
        if (status == TR_OK && req->cmd == TR_CMD_RESET) {
            tr_board_restart(b);
        }
        return 0;
    }

    rep.version = (uint8_t)TR_PROTOCOL_VERSION;
    rep.dst = TR_ADDR_HOST; /* a board only ever answers the host */
    rep.src = b->cfg.address;
    rep.seq = req->seq;
    rep.cmd = (uint8_t)(req->cmd | TR_REPLY_BIT);
    rep.payload[0] = status;
    rep.len = (uint8_t)(1u + body_len);
    reply->len = (uint8_t)tr_frame_encode(&rep, reply->wire, sizeof reply->wire);
    reply->delay_ms = (uint16_t)(broadcast ? (uint16_t)b->cfg.address * TR_SLOT_MS : 0u);

    if (status == TR_OK && req->cmd == TR_CMD_RESET) {
        tr_board_restart(b); /* the reply is already built: "answers first" */
    }
    return 1;
}

int tr_board_receive(tr_board *b, uint8_t byte, tr_reply *reply)
{
    tr_frame f;
    tr_status st;
    if (byte != 0) {
        tr_cobs_decoder_push(&b->rx, byte);
        return 0;
    }
    if (b->rx.raw == 0) {
        return 0; /* empty chunk: skipped silently */
    }
    st = tr_frame_finish(&b->rx, &f);
    tr_cobs_decoder_reset(&b->rx);
    if (st != TR_OK) {
        b->frames_bad++; /* dropped unanswered: the address cannot be trusted */
        b->last_error = (uint8_t)st;
        return 0;
    }
    return tr_board_handle_frame(b, &f, reply);
}
