/* tr2_board.c - protocol 2's board on the bus: the command table, receiving ("Receiving"),
   broadcast handling and reply times ("Broadcast", "Timing"), the commands, telemetry and
   the version-1 probe; protocol 2.1's actuator calibration ("Actuator calibration"). The
   state they act on is tr2_state.c's. */
#include "twinrig_core2.h"

enum { BC_SLOTTED = 1, BC_HASHED, BC_SELECTED, BC_SILENT, BC_REFUSED };

typedef struct {
    uint8_t request_len;
    uint8_t broadcast;
    uint8_t slot_payload; /* the reply a slotted command's slot is sized for */
} cmd_info;

/* indexed by command code 1..21 (20, 21: protocol 2.1) */
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
    {0u, BC_SILENT, 0u},       /* 19 fw_swap */
    {0u, BC_SILENT, 0u},       /* 20 calibrate_actuator */
    {0u, BC_REFUSED, 0u}       /* 21 read_actuator_calibration */
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

enum {
    REPLY_FIELDS_MAX = TR2_GATE_REPLY_LEN, /* calibrate_actuator's (85), the longest reply
                                              after its status byte (read_telemetry's: 39) */
    V1_IDENTIFY_PAYLOAD = 15 /* protocol 1.1's identify reply */
};

/* A request as received: a view of the receiver's buffer, not a copy. */
typedef struct {
    uint8_t version, dst, src, seq, cmd, len;
    const uint8_t *payload;
} request;

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
    tr2_put_u32(out + 35, tr2_store_generation(b));
    *len = 39;
    return TR_OK;
}

/* Execute a command of valid length; out[] follows the status byte. *restart is set when
   the port is to restart the board after answering. */
static uint8_t execute(tr2_board *b, const request *req, uint8_t *out, uint8_t *len,
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
        put_i32(out + 4, tr2_board_residue(b));
        tr2_put_u32(out + 8, tr2_store_generation(b));
        *len = 12;
        return TR_OK;
    case TR_CMD_SET_STATE:
        v = tr2_u32_to_i32(tr2_get_u32(p));
        if (v < b->cfg->state_min || v > b->cfg->state_max) {
            return TR_OUT_OF_RANGE;
        }
        tr2_board_set_target(b, v);
        put_i32(out, b->state);
        put_i32(out + 4, tr2_board_residue(b));
        *len = 8;
        return TR_OK;
    case TR_CMD_CONFIGURE_RULE:
        return configure_rule(b, p);
    case TR_CMD_SAMPLE_DROPS: {
        tr_drops d;
        tr2_board_drops(b, &d);
        put_i32(out, d.dv_free_uv);
        put_i32(out + 4, d.dv_clamped_uv);
        *len = 8;
        return TR_OK;
    }
    case TR_CMD_LEARN:
        out[8] = (uint8_t)tr2_board_learn(b);
        put_i32(out, b->state);
        put_i32(out + 4, tr2_board_residue(b));
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
        if (p[0] == 1u && (st = tr2_store_erase(b)) != TR_OK) {
            return st; /* a factory reset erases before it answers */
        }
        *restart = 1;
        return TR_OK;
    case TR2_CMD_STORE_STATE:
        st = tr2_store_write(b, &gen);
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
    case TR2_CMD_CALIBRATE_ACTUATOR:
    case TR2_CMD_READ_ACTUATOR_CALIBRATION:
        st = tr2_board_gate(b, req->cmd == TR2_CMD_CALIBRATE_ACTUATOR, out);
        if (st == TR_OK) {
            *len = TR2_GATE_REPLY_LEN;
        }
        return st;
    default:
        return TR_UNKNOWN_COMMAND;
    }
}

/* The reply is assembled where it is sent from: header at reply->wire[1..5], the status
   byte, the fields, then the CRC, sealed in place (tr2_frame_seal): no second frame buffer. */
static uint8_t *reply_status(tr2_reply *reply)
{
    return reply->wire + 1u + TR_HEADER_LEN;
}

static int seal_reply(const tr2_board *b, const request *req, uint8_t version, size_t payload_len,
                      uint32_t start_us, tr2_reply *reply)
{
    uint8_t *f = reply->wire + 1;
    f[0] = version;
    f[1] = TR_ADDR_HOST;
    f[2] = b->address;
    f[3] = req->seq;
    f[4] = (uint8_t)(req->cmd | TR_REPLY_BIT);
    reply->len = (uint16_t)tr2_frame_seal(reply->wire, TR_HEADER_LEN + payload_len);
    reply->start_us = start_us;
    return TR2_SEND;
}

/* Protocol 1's identify, answered in protocol 1's layout by an assigned board ("Protocol 1
   boards"): status, uid, firmware, kind, protocol 2, minor TR2_PROTOCOL_MINOR (1); no
   address, no flags. */
static int v1_probe(tr2_board *b, const request *req, tr2_reply *reply)
{
    uint8_t *out = reply_status(reply);
    uint8_t len;
    int bcast = req->dst == TR_ADDR_BROADCAST;
    if (b->address == TR2_ADDR_UNASSIGNED || (!bcast && req->dst != b->address)) {
        return 0;
    }
    b->frames_ok++;
    out[0] = TR_OK;
    (void)identity(b, out + 1, &len); /* its last two bytes give way to the CRC */
    return seal_reply(b, req, (uint8_t)TR_PROTOCOL_VERSION, V1_IDENTIFY_PAYLOAD,
                      bcast ? (uint32_t)b->address * TR2_V1_SLOT_US : tr2_turnaround_us(b->cfg->baud),
                      reply);
}

/* Whether and when a frame addressed to the board is answered ("Broadcast"): a unicast
   after the turnaround; a broadcast in its slot (slotted, by an assigned board), its hashed
   slot (a discover of valid length and slots), after the turnaround (selected, of valid
   length), or not. */
static int reply_start(const tr2_board *b, const request *req, const cmd_info *info, int length_ok,
                       uint32_t *start)
{
    uint8_t mode = info ? info->broadcast : 0u;
    *start = tr2_turnaround_us(b->cfg->baud);
    if (req->dst != TR_ADDR_BROADCAST) {
        return 1;
    }
    if (mode == BC_SELECTED) {
        return length_ok; /* of the wrong length, it names no board: none answers */
    }
    if (mode == BC_SLOTTED && b->address != TR2_ADDR_UNASSIGNED) {
        *start = tr2_reply_start_us(b->address, b->cfg->baud, info->slot_payload);
        return 1;
    }
    if (mode == BC_HASHED && length_ok && req->payload[4] >= 1u &&
        req->payload[4] <= TR2_DISCOVER_SLOTS_MAX) {
        *start = tr2_reply_start_us(
            tr2_discover_slot(b->cfg->uid, tr2_get_u32(req->payload), req->payload[4]),
            b->cfg->baud, info->slot_payload);
        return 1;
    }
    return 0;
}

static int handle_frame(tr2_board *b, const request *req, tr2_reply *reply)
{
    int bcast = req->dst == TR_ADDR_BROADCAST;
    int assigned = b->address != TR2_ADDR_UNASSIGNED;
    const cmd_info *info = 0;
    uint8_t status = TR_OK;
    uint8_t body = 0;
    int restart = 0;
    uint32_t start;
    int length_ok;
    int answer;
    /* the fields of a command that is not answered (a silent or an unassigned board's
       slotted broadcast) go here, so *reply is written only when it is to be sent */
    uint8_t unsent[REPLY_FIELDS_MAX];

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
    }
    answer = reply_start(b, req, info, length_ok, &start);
    if (status == TR_OK) {
        status = execute(b, req, answer ? reply_status(reply) + 1 : unsent, &body, &restart);
    }
    if (status != TR_OK) {
        b->last_error = status;
        body = 0;
    }
    if (!answer) {
        return restart ? TR2_RESTART : 0;
    }
    reply_status(reply)[0] = status;
    return seal_reply(b, req, (uint8_t)TR2_PROTOCOL_VERSION, 1u + (size_t)body, start, reply) |
           (restart ? TR2_RESTART : 0);
}

int tr2_board_receive(tr2_board *b, uint8_t byte, tr2_reply *reply)
{
    request req;
    uint8_t st;
    int r;
    if (byte != 0) {
        tr2_cobs_decoder_push(&b->rx, byte);
        return 0;
    }
    if (b->rx.raw == 0) {
        return 0; /* empty chunk: skipped silently */
    }
    st = tr2_frame_check(&b->rx);
    if (st != TR_OK) {
        tr2_cobs_decoder_reset(&b->rx);
        b->frames_bad++;
        b->last_error = st;
        return 0;
    }
    req.version = b->rx.buf[0];
    req.dst = b->rx.buf[1];
    req.src = b->rx.buf[2];
    req.seq = b->rx.buf[3];
    req.cmd = b->rx.buf[4];
    req.len = (uint8_t)(b->rx.n - TR2_MIN_FRAME);
    req.payload = b->rx.buf + TR_HEADER_LEN;
    r = handle_frame(b, &req, reply);
    tr2_cobs_decoder_reset(&b->rx); /* the request lived in its buffer until now */
    return r;
}
