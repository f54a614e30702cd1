/*
 * twinrig_core.h - portable C99 core of a twinrig edge board.
 *
 * Implements the edge-bus protocol, version 1 (firmware/protocol/PROTOCOL-1.md):
 * CRC-16/CCITT-FALSE, COBS framing, frame parsing with the spec's error codes
 * (checked in the spec's order), command dispatch producing the reply frame,
 * the integer learning rule, the xorshift32 generator, telemetry counters and
 * calibration offsets.
 *
 * No dynamic memory, no floating point, no I/O: all hardware access goes
 * through the tr_hal function-pointer table (see README.md, "Porting layer").
 * Every buffer is fixed-size and lives in the caller's structures.
 *
 * Sources: tr_codec.c (CRC, COBS, frames), tr_rule.c (generator, drops,
 * rule), tr_board.c (board state, dispatch). Builds warning-free with
 *   gcc -std=c99 -Wall -Wextra -Werror -pedantic
 */
#ifndef TWINRIG_CORE_H
#define TWINRIG_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- protocol constants (protocol.json) ------------------------------- */

#define TR_PROTOCOL_VERSION 1u
/* Protocol minor version (protocol_minor in identify): 1, the rule rounds to nearest. */
#define TR_PROTOCOL_MINOR 1u
/* Version of this core; a port reports it in tr_board_config (fw_major...). 1.2.0 is the
   first of protocol 1.1 (1.1.0 was the first to take gains of 2^24 and above). */
#define TR_FW_MAJOR 1u
#define TR_FW_MINOR 2u
#define TR_FW_PATCH 0u
#define TR_HEADER_LEN 5u      /* version, dst, src, seq, cmd */
#define TR_CRC_LEN 2u
#define TR_MAX_PAYLOAD 64u
#define TR_MIN_FRAME (TR_HEADER_LEN + TR_CRC_LEN)                  /* 7 */
#define TR_MAX_FRAME (TR_HEADER_LEN + TR_MAX_PAYLOAD + TR_CRC_LEN) /* 71 */
/* COBS adds one byte per started 254-byte block; then one 0x00 delimiter. */
#define TR_MAX_WIRE (TR_MAX_FRAME + (TR_MAX_FRAME / 254u) + 1u + 1u) /* 73 */

#define TR_ADDR_HOST 0u
#define TR_ADDR_BOARD_MIN 1u
#define TR_ADDR_BOARD_MAX 247u
#define TR_ADDR_BROADCAST 255u
#define TR_REPLY_BIT 0x80u

#define TR_SLOT_MS 2u /* broadcast reply slot per address (115200 baud) */

#define TR_KIND_DIGIPOT 1u
#define TR_KIND_MOSFET 2u

#define TR_RULE_NONE 0u
#define TR_RULE_TAP 1u
#define TR_RULE_GATE_CHARGING 2u
#define TR_RULE_CONTINUOUS 3u

#define TR_GAIN_SHIFT 48
#define TR_CONTRAST_LIMIT_UV2 ((int64_t)1 << 38) /* 274877906944 */
#define TR_GAIN_LIMIT ((int64_t)1 << 40)         /* gain must be below (2^24 before 1.1.0) */
#define TR_GAIN_SPLIT 24 /* gain = gh * 2^24 + gl in tr_gain_delta */
#define TR_PROBABILITY_ONE 65536u

#define TR_PRNG_SEED_XOR 0x9E3779B9u

/* Error / status codes, in protocol.json order. */
typedef enum {
    TR_OK = 0,
    TR_BAD_COBS = 1,
    TR_BAD_CRC = 2,
    TR_TOO_SHORT = 3,
    TR_TOO_LONG = 4,
    TR_BAD_VERSION = 5,
    TR_UNKNOWN_COMMAND = 6,
    TR_BAD_LENGTH = 7,
    TR_OUT_OF_RANGE = 8,
    TR_WRONG_KIND = 9,
    TR_BROADCAST_REFUSED = 10,
    TR_STORAGE = 11
} tr_status;

/* Command codes. */
typedef enum {
    TR_CMD_IDENTIFY = 1,
    TR_CMD_READ_STATE = 2,
    TR_CMD_SET_STATE = 3,
    TR_CMD_CONFIGURE_RULE = 4,
    TR_CMD_SAMPLE_DROPS = 5,
    TR_CMD_LEARN = 6,
    TR_CMD_READ_TELEMETRY = 7,
    TR_CMD_STORE_CALIBRATION = 8,
    TR_CMD_READ_CALIBRATION = 9,
    TR_CMD_RESET = 10
} tr_command;

/* Calibration offset indices (and node indices of tr_hal.read_nodes_uv). */
enum { TR_FREE_A = 0, TR_FREE_B = 1, TR_CLAMPED_A = 2, TR_CLAMPED_B = 3 };

/* ---- CRC and COBS ------------------------------------------------------ */

/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout. */
uint16_t tr_crc16(const uint8_t *data, size_t len);
uint16_t tr_crc16_update(uint16_t crc, uint8_t byte);

/*
 * COBS-encode len bytes into out (no delimiter appended). Returns the encoded
 * length, or 0 if out_cap is too small. Needs at most len + len/254 + 1 bytes.
 */
size_t tr_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);

/*
 * Incremental COBS decoder for one chunk (the bytes between two delimiters).
 * It stores at most TR_MAX_FRAME decoded bytes but keeps counting beyond
 * that (saturating), so an over-long chunk is still classified correctly
 * (bad_cobs before too_long) with a fixed buffer.
 */
typedef struct {
    uint8_t buf[TR_MAX_FRAME];
    uint16_t n;     /* decoded bytes so far, saturates at TR_MAX_FRAME + 1 */
    uint16_t raw;   /* raw chunk bytes so far, saturates at 0xFFFF */
    uint8_t code;   /* code byte of the current block */
    uint8_t left;   /* data bytes still expected in the current block */
    uint8_t bad;    /* a zero byte was seen inside the chunk */
} tr_cobs_decoder;

void tr_cobs_decoder_reset(tr_cobs_decoder *d);
void tr_cobs_decoder_push(tr_cobs_decoder *d, uint8_t byte);
/* 1 when the chunk so far is a complete, valid COBS encoding. */
int tr_cobs_decoder_complete(const tr_cobs_decoder *d);

/* ---- frames ------------------------------------------------------------ */

typedef struct {
    uint8_t version;
    uint8_t dst;
    uint8_t src;
    uint8_t seq;
    uint8_t cmd;
    uint8_t len; /* payload length, 0..TR_MAX_PAYLOAD */
    uint8_t payload[TR_MAX_PAYLOAD];
} tr_frame;

/*
 * Check a finished chunk held by a decoder, in the spec's order: bad_cobs,
 * too_short, too_long, bad_crc, bad_version. On TR_OK fills *frame.
 */
tr_status tr_frame_finish(const tr_cobs_decoder *d, tr_frame *frame);

/*
 * Decode one chunk (COBS bytes without the 0x00 delimiter). A 0x00 inside
 * the chunk is bad_cobs. An empty chunk is too_short (a stream receiver
 * skips empty chunks before they get here).
 */
tr_status tr_frame_decode(const uint8_t *chunk, size_t len, tr_frame *frame);

/*
 * Encode a frame (header, payload, CRC) with COBS and the 0x00 delimiter.
 * Returns the wire length, or 0 if frame->len > TR_MAX_PAYLOAD or out_cap is
 * too small (TR_MAX_WIRE always suffices).
 */
size_t tr_frame_encode(const tr_frame *frame, uint8_t *out, size_t out_cap);

/* Raw (un-encoded) frame bytes with CRC; returns length or 0. */
size_t tr_frame_pack(const tr_frame *frame, uint8_t *out, size_t out_cap);

/* ---- generator, drops and the rule ------------------------------------ */

/* Seed from the unique id: first 4 bytes little-endian ^ 0x9E3779B9, 1 if 0. */
uint32_t tr_prng_seed(const uint8_t uid[8]);
/* xorshift32 step: updates *x and returns the new value. */
uint32_t tr_prng_next(uint32_t *x);

typedef struct {
    int32_t dv_free_uv;     /* (a_F - off) - (b_F - off), saturated to i32 */
    int32_t dv_clamped_uv;  /* (a_C - off) - (b_C - off), saturated to i32 */
    int64_t contrast_uv2;   /* dv_free^2 - dv_clamped^2 (exact), clipped to +-2^38 */
} tr_drops;

/* node_uv and offsets_uv in the order free a, free b, clamped a, clamped b. */
void tr_compute_drops(const int32_t node_uv[4], const int32_t offsets_uv[4], tr_drops *out);

/* floor(a / 2^shift) for any int64 a, 0 <= shift <= 62, no signed shifts. */
int64_t tr_floor_div_pow2(int64_t a, int shift);

/*
 * contrast * gain / 2^48 rounded to the nearest integer, halves away from zero
 * (protocol minor 1: sign(c) * floor((|c| * gain + 2^47) / 2^48), so the change
 * for -c is minus the change for c), exactly, for |contrast| <= 2^38 and
 * 0 <= gain < TR_GAIN_LIMIT (2^40), with no intermediate beyond 64 bits (the
 * product itself needs up to 79 bits); the result is within +-2^30. Inputs
 * outside those ranges are first clipped to them (never the case for a
 * validated configuration and a clipped contrast).
 */
int64_t tr_gain_delta(int64_t contrast_uv2, int64_t gain);

/* Clip a 64-bit value to [lo, hi]. */
int32_t tr_clip_state(int64_t v, int32_t lo, int32_t hi);

/*
 * Apply one learn step given the draw r. Returns updated (1 when the rule ran:
 * rule != none and (r >> 16) < probability), writing the new state (clipped
 * to [state_min, state_max]) to *state_out (unchanged state when not run).
 */
int tr_rule_apply(uint8_t rule, uint32_t r, uint32_t probability, int64_t gain,
                  int64_t dead_band_uv2, int64_t contrast_uv2, int32_t state,
                  int32_t state_min, int32_t state_max, int32_t *state_out);

/* ---- porting layer ----------------------------------------------------- */

typedef struct {
    void *user; /* passed back to every callback */
    /* Read the four node voltages in uV: free a, free b, clamped a, clamped b. */
    void (*read_nodes_uv)(void *user, int32_t node_uv[4]);
    /* Drive the actuator (tap index or gate voltage in uV). May be NULL. */
    void (*set_actuator)(void *user, int32_t state);
    /* Load the four calibration offsets; return 0 on success. May be NULL. */
    int (*nvs_load)(void *user, int32_t offsets_uv[4]);
    /* Store the four calibration offsets; return 0 on success. May be NULL
       (then store_calibration answers `storage`). */
    int (*nvs_store)(void *user, const int32_t offsets_uv[4]);
    /* Milliseconds since power-on, wrapping modulo 2^32. May be NULL (0). */
    uint32_t (*millis)(void *user);
} tr_hal;

typedef struct {
    uint8_t address;       /* 1..247 */
    uint8_t uid[8];
    uint8_t kind;          /* TR_KIND_DIGIPOT or TR_KIND_MOSFET */
    int32_t state_min;
    int32_t state_max;
    int32_t initial_state; /* the power-on state */
    uint8_t fw_major;
    uint8_t fw_minor;
    uint8_t fw_patch;
} tr_board_config;

/* A reply ready to transmit: wire bytes (COBS + delimiter) and, for a slotted
   broadcast answer, how long to wait after the request before sending. */
typedef struct {
    uint8_t wire[TR_MAX_WIRE];
    uint8_t len;
    uint16_t delay_ms;
} tr_reply;

typedef struct {
    tr_board_config cfg;
    const tr_hal *hal;
    /* application state (cleared by reset) */
    int32_t state;
    uint8_t rule;
    uint32_t probability;
    int64_t gain;
    int64_t dead_band_uv2;
    uint32_t prng;
    uint32_t frames_ok;
    uint32_t frames_bad;
    uint32_t updates;
    uint8_t last_error;
    /* kept across reset */
    int32_t offsets_uv[4];
    /* receiver */
    tr_cobs_decoder rx;
} tr_board;

/* Power-on: state = initial_state, rule none, counters zero, generator seeded,
   calibration loaded from NVS (zeros if the load fails), actuator driven. */
void tr_board_init(tr_board *b, const tr_board_config *cfg, const tr_hal *hal);

/* The `reset` command's restart (calibration and receiver kept). */
void tr_board_restart(tr_board *b);

/*
 * Feed one received byte. Returns 1 when a reply must be sent (filled in
 * *reply), else 0. Call with every byte from the bus, in order.
 */
int tr_board_receive(tr_board *b, uint8_t byte, tr_reply *reply);

/* Handle one good frame (already decoded). Returns 1 and fills *reply when
   the board answers. Counts frames_ok when the frame is for this board. */
int tr_board_handle_frame(tr_board *b, const tr_frame *req, tr_reply *reply);

/* One learn step (the `learn` command or the learn-trigger pin). Returns
   updated; the new state is in b->state. */
int tr_board_learn(tr_board *b);

/* Current drops (node voltages minus calibration). */
void tr_board_drops(tr_board *b, tr_drops *out);

#ifdef __cplusplus
}
#endif

#endif /* TWINRIG_CORE_H */
