/*
 * twinrig_core2.h - portable C99 core of a twinrig edge board, protocol 2.1.
 *
 * Implements firmware/protocol/PROTOCOL.md (protocol 2, minor 1) beside the protocol-1 core
 * (twinrig_core.h), whose CRC-16, COBS encoder, generator, drops and rule it reuses
 * unchanged, as the spec says they are. Adds: 254-byte frames, the unassigned address 248,
 * discover/assign_address and duplicate detection, reply timing from the end-of-frame stamp
 * (turnaround, slots), the closed-loop actuator with a carried residue, the two-sector state
 * store with its generation, resets by mode, telemetry, the A/B firmware update, the
 * version-1 identify probe and (2.1) a MOSFET gate's actuator calibration, which the port
 * measures and keeps (tr2_hal) and the core answers and interpolates.
 *
 * No dynamic memory, no floating point, no libc, no statics: every byte of state is in the
 * caller's tr2_board; all hardware is reached through tr2_hal (README.md, "Protocol 2").
 * Sources: tr2_codec.c (frames, CRC-32, timing, hash), tr2_state.c (target, actuator,
 * state store, start-up, learns, the actuator calibration), tr2_board.c (receiver,
 * dispatch, commands, replies), tr2_update.c (firmware update).
 */
#ifndef TWINRIG_CORE2_H
#define TWINRIG_CORE2_H

#include "twinrig_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- protocol constants (protocol-2.json) ----------------------------- */

#define TR2_PROTOCOL_VERSION 2u
#define TR2_PROTOCOL_MINOR 1u
#define TR2_MAX_PAYLOAD 247u
#define TR2_MIN_FRAME 7u
#define TR2_MAX_FRAME 254u
#define TR2_MAX_WIRE 256u /* one COBS overhead byte and the delimiter */

#define TR2_ADDR_UNASSIGNED 248u
#define TR2_DISCOVER_SLOTS_MAX 247u

#define TR2_BAUD_DEFAULT 115200u
#define TR2_TURNAROUND_CHARS 4u
#define TR2_TURNAROUND_MIN_US 250u
#define TR2_DE_HOLD_US 100u
#define TR2_EOF_JITTER_US 50u
#define TR2_CLOCK_TOLERANCE_PPM 100u
#define TR2_SLOT_ADDRESSES 247u
#define TR2_V1_SLOT_US 2000u
#define TR2_TRIGGER_MIN_US 20u

#define TR2_BLOCK_SIZE 128u
#define TR2_IMAGE_MAX_BYTES 983040u
#define TR2_MAX_BLOCKS (TR2_IMAGE_MAX_BYTES / TR2_BLOCK_SIZE) /* 7680 */
#define TR2_MISSING_LISTED 8u
#define TR2_NO_BLOCK 0xFFFFu

/* A state-store record: generation u32, target i32, CRC-32 of those 8 bytes (all LE). */
#define TR2_RECORD_LEN 12u

/* Status codes beyond protocol 1's (tr_status 0..11). */
enum {
    TR2_FW_SEQUENCE = 12,
    TR2_FW_INCOMPLETE = 13,
    TR2_FW_IMAGE_CRC = 14,
    TR2_BAD_BLOCK_CRC = 15
};

/* Command codes beyond protocol 1's (tr_command 1..10). */
enum {
    TR2_CMD_STORE_STATE = 11,
    TR2_CMD_READ_ACTUATOR = 12,
    TR2_CMD_DISCOVER = 13,
    TR2_CMD_ASSIGN_ADDRESS = 14,
    TR2_CMD_FW_BEGIN = 15,
    TR2_CMD_FW_BLOCK = 16,
    TR2_CMD_FW_STATUS = 17,
    TR2_CMD_FW_VERIFY = 18,
    TR2_CMD_FW_SWAP = 19,
    TR2_CMD_CALIBRATE_ACTUATOR = 20,        /* protocol 2.1 */
    TR2_CMD_READ_ACTUATOR_CALIBRATION = 21  /* protocol 2.1 */
};

enum {
    TR2_CAUSE_POWER_ON = 0,
    TR2_CAUSE_RESET_COMMAND = 1,
    TR2_CAUSE_WATCHDOG = 2,
    TR2_CAUSE_BROWNOUT = 3,
    TR2_CAUSE_FIRMWARE_SWAP = 4,
    TR2_CAUSE_ROLLBACK = 5,
    TR2_CAUSE_PIN = 6
};

enum {
    TR2_PHASE_IDLE = 0,
    TR2_PHASE_RECEIVING = 1,
    TR2_PHASE_VERIFIED = 2,
    TR2_PHASE_CONFIRMED = 3,
    TR2_PHASE_ROLLED_BACK = 4
};

enum { TR2_FLAG_DUPLICATE = 1, TR2_FLAG_STATE_UNSTORED = 2, TR2_FLAG_ROLLED_BACK = 4 };

/* What tr2_board_receive asks of the port (bits). */
enum { TR2_SEND = 1, TR2_RESTART = 2 };

/* ---- frames, CRC-32, timing, discover's hash (tr2_codec.c) ------------- */

/* Incremental COBS decoder of one chunk; keeps counting past 254 decoded bytes. */
typedef struct {
    uint8_t buf[TR2_MAX_FRAME];
    uint16_t n;   /* decoded bytes, saturates at TR2_MAX_FRAME + 1 */
    uint16_t raw; /* chunk bytes, saturates at 0xFFFF */
    uint8_t code;
    uint8_t left;
    uint8_t bad;
} tr2_cobs_decoder;

typedef struct {
    uint8_t version;
    uint8_t dst;
    uint8_t src;
    uint8_t seq;
    uint8_t cmd;
    uint8_t len;
    uint8_t payload[TR2_MAX_PAYLOAD];
} tr2_frame;

void tr2_cobs_decoder_reset(tr2_cobs_decoder *d);
void tr2_cobs_decoder_push(tr2_cobs_decoder *d, uint8_t byte);

/* The receive checks in the spec's order: bad_cobs, too_short, too_long, bad_crc,
   bad_version (a version-1 frame passes only as the identify probe: cmd 1, no payload).
   On TR_OK the frame is d->buf[0 .. d->n), its CRC last. */
uint8_t tr2_frame_check(const tr2_cobs_decoder *d);
/* The checks, then the fields copied out. */
uint8_t tr2_frame_finish(const tr2_cobs_decoder *d, tr2_frame *frame);
/* One chunk without its delimiter. */
uint8_t tr2_frame_decode(const uint8_t *chunk, size_t len, tr2_frame *frame);
/* Header, payload, CRC, COBS and the 0x00; returns the wire length (0 if it does not fit). */
size_t tr2_frame_encode(const tr2_frame *frame, uint8_t *out, size_t out_cap);
/* A frame's header and payload, body_len bytes at wire[1..], given its CRC after them and
   COBS-encoded in place with its 0x00 (wire holds body_len + 4 bytes): the wire length. */
size_t tr2_frame_seal(uint8_t *wire, size_t body_len);
/* COBS in place: n bytes (at most 254) at wire[1..n] become n + 2 wire bytes. */
size_t tr2_cobs_in_place(uint8_t *wire, size_t n);

/* CRC-32/ISO-HDLC (zlib's): start with 0, feed chunks. */
uint32_t tr2_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/* Timing (instruments/bus/timing.py, normative), integer us. */
uint32_t tr2_char_us(uint32_t baud);
uint32_t tr2_turnaround_us(uint32_t baud);
uint32_t tr2_slot_us(uint32_t baud, uint32_t reply_payload);
uint32_t tr2_reply_start_us(uint32_t slot, uint32_t baud, uint32_t reply_payload);

/* MurmurHash3's finaliser and discover's slot 1 + h % slots (slots 1..247). */
uint32_t tr2_fmix32(uint32_t h);
uint32_t tr2_discover_hash(const uint8_t uid[8], uint32_t salt);
uint8_t tr2_discover_slot(const uint8_t uid[8], uint32_t salt, uint8_t slots);

/* ---- porting layer ------------------------------------------------------ */

/* Protocol 2.1, "Actuator calibration": a MOSFET gate's slope (nV per us of pulse) at five
   gate voltages (uV, increasing) charging and discharging, and its leak (uV/s). */
#define TR2_GATE_CAL_POINTS 5
typedef struct {
    int32_t charge_gate_uv[TR2_GATE_CAL_POINTS];
    int32_t charge_nv_per_us[TR2_GATE_CAL_POINTS];
    int32_t discharge_gate_uv[TR2_GATE_CAL_POINTS];
    int32_t discharge_nv_per_us[TR2_GATE_CAL_POINTS];
    int32_t leak_uv_per_s;
} tr2_gate_cal;

typedef struct {
    void *user; /* passed back to every callback */
    /* The four node voltages (uV): free a, free b, clamped a, clamped b. */
    void (*read_nodes_uv)(void *user, int32_t node_uv[4]);
    /* Drive the actuator towards target (within the limits) and return the state it
       reached, read back. NULL: the core's ideal grid point (tr2_grid_point). */
    int32_t (*actuator_move)(void *user, int32_t target);
    /* Calibration offsets in flash; 0 = ok. load NULL or failing: zeros. */
    int (*calibration_load)(void *user, int32_t offsets_uv[4]);
    int (*calibration_store)(void *user, const int32_t offsets_uv[4]);
    /* The bus address (1..248) in flash; 0 = ok. */
    int (*address_store)(void *user, uint8_t address);
    /* The state store's two sectors (0, 1): read a record (an erased sector reads 0xFF),
       erase, program; 0 = ok. */
    int (*store_read)(void *user, unsigned sector, uint8_t rec[TR2_RECORD_LEN]);
    int (*store_erase)(void *user, unsigned sector);
    int (*store_program)(void *user, unsigned sector, const uint8_t rec[TR2_RECORD_LEN]);
    /* Firmware update: erase the inactive slot's first `size` bytes (whole sectors) and
       clear the boot record's last outcome; program one 128-byte block at `offset` and
       read it back (non-zero when it differs); read image bytes; write the boot record
       naming the inactive slot, holding `version` and `blocks`, for a trial boot. */
    int (*fw_erase)(void *user, uint32_t size);
    int (*fw_program)(void *user, uint32_t offset, const uint8_t data[TR2_BLOCK_SIZE]);
    int (*fw_read)(void *user, uint32_t offset, uint8_t *data, uint32_t len);
    int (*fw_trial)(void *user, const uint8_t version[3], uint16_t blocks);
    /* Sensors: uptime (ms, mod 2^32), supply (uV), temperature (milli-degC). May be NULL. */
    uint32_t (*millis)(void *user);
    uint32_t (*supply_uv)(void *user);
    int32_t (*temperature_mdegc)(void *user);
    /* Protocol 2.1, a MOSFET board's actuator calibration (PROTOCOL.md, "Actuator
       calibration"); both NULL on a board with no gate to calibrate (wrong_kind).
       actuator_calibrate: measure the table (the gate set at each point, one charge and one
       discharge pulse, each read back; a hold for the leak), go back to the target, store
       the table and use it from now on; fills `measured`; 0 = ok, non-zero = the record
       could not be stored (storage: the table before stays in use). actuator_calibration:
       the table in use; returns its source, 0 nominal (the part values), 1 measured. */
    int (*actuator_calibrate)(void *user, tr2_gate_cal *measured);
    uint8_t (*actuator_calibration)(void *user, tr2_gate_cal *in_use);
    /* After actuator_calibrate, whatever it returned, the core moves the actuator to the
       target once more (actuator_move) for the state it reports. */
} tr2_hal;

typedef struct {
    uint8_t address; /* as stored: 1..247, or 248 unassigned */
    uint8_t uid[8];
    uint8_t kind;
    int32_t state_min;
    int32_t state_max;
    int32_t resolution; /* the actuator's step, 1..state_max - state_min + 1 */
    int32_t initial_state;
    uint8_t fw_version[3]; /* of the running image */
    uint32_t baud;
} tr2_board_config;

/* What the boot loader tells the image it started: why, and the last update's outcome
   (idle, confirmed or rolled_back, with that update's version and blocks). */
typedef struct {
    uint8_t reset_cause;
    uint8_t fw_phase;
    uint8_t fw_version[3];
    uint16_t fw_blocks;
} tr2_boot_info;

typedef struct {
    uint8_t wire[TR2_MAX_WIRE];
    uint16_t len;
    uint32_t start_us; /* when to start after the request's end-of-frame stamp */
} tr2_reply;

typedef struct {
    uint8_t phase;
    uint8_t version[3];
    uint16_t blocks;
    uint16_t have_count;
    uint32_t size;
    uint32_t image_crc32;
    uint8_t have[(TR2_MAX_BLOCKS + 7u) / 8u]; /* block bitmap, RAM only */
} tr2_update;

typedef struct {
    const tr2_board_config *cfg; /* the port's, kept for the board's life */
    const tr2_hal *hal;
    uint8_t address;
    int32_t target;
    int32_t state;
    uint8_t rule;
    uint32_t probability;
    int64_t gain;
    int64_t dead_band_uv2;
    uint32_t prng;
    uint32_t frames_ok, frames_bad, learns, updates, glitches;
    uint8_t last_error;
    uint8_t reset_cause;
    uint8_t duplicate;
    int32_t offsets_uv[4];
    uint8_t sector_valid[2];
    uint32_t sector_gen[2];
    int32_t sector_target[2];
    tr2_update fw;
    tr2_cobs_decoder rx;
} tr2_board;

/* Start-up: address, calibration and the store read from flash, the target restored from
   the newest valid record (else initial_state) and the actuator moved to it; rule none,
   counters zero, generator seeded. Call again for every restart the core asks for. cfg
   and hal are kept, not copied: they must outlive the board (static const in a port). */
void tr2_board_init(tr2_board *b, const tr2_board_config *cfg, const tr2_hal *hal,
                    const tr2_boot_info *boot);

/* Feed one received byte. Returns TR2_SEND when *reply is to be sent (start_us after the
   request's end-of-frame stamp, which the port takes in its receive interrupt) and
   TR2_RESTART when the port is to restart the board after sending (reset, fw_swap). */
int tr2_board_receive(tr2_board *b, uint8_t byte, tr2_reply *reply);

/* One learn (the command or the learn-trigger input): returns updated. */
int tr2_board_learn(tr2_board *b);
/* A pulse of width_us on the learn-trigger input: a learn, or a glitch below 20 us. */
void tr2_board_trigger(tr2_board *b, uint32_t width_us);
/* Set the target (clipped to the limits) and move the actuator. */
void tr2_board_set_target(tr2_board *b, int32_t target);
/* The ideal actuator's state for target: the nearest grid point, halves up, not above
   the top one. */
int32_t tr2_grid_point(const tr2_board_config *cfg, int32_t target);
uint8_t tr2_board_flags(const tr2_board *b);
/* target - state: the carried residue. */
int32_t tr2_board_residue(const tr2_board *b);
/* The drops of the nodes as read now, the offsets subtracted. */
void tr2_board_drops(const tr2_board *b, tr_drops *d);

/* Protocol 2.1, "Actuator calibration" (tr2_state.c). The slope (nV/us) at gate_uv of the
   charge (charging non-zero) or discharge table: linear between the points and beyond the
   ends, the division floored (towards minus infinity, as Python's //), never below 1;
   GateCalibration.slope_nv_per_us's rule exactly, over the whole i32 range, except that a
   slope above INT32_MAX is INT32_MAX. On a segment whose gate voltages do not increase (a
   table the spec does not allow, e.g. an erased record) the slope is its first point's:
   never a division by zero. For a port to time its pulses. */
int32_t tr2_gate_slope_nv_per_us(const tr2_gate_cal *cal, int32_t gate_uv, int charging);
/* calibrate_actuator (calibrate non-zero) or read_actuator_calibration: wrong_kind on a
   digipot or without the two callbacks, storage when actuator_calibrate fails; on TR_OK
   the reply's TR2_GATE_REPLY_LEN bytes after its status (source u8, the four i32[5], leak
   i32; little-endian). */
#define TR2_GATE_REPLY_LEN (1u + 4u * (4u * TR2_GATE_CAL_POINTS + 1u)) /* 85 */
uint8_t tr2_board_gate(tr2_board *b, int calibrate, uint8_t out[TR2_GATE_REPLY_LEN]);

/* The state store (tr2_state.c): the newest record's generation (0: none); store_state
   (the target as the next generation, *gen on TR_OK); a factory reset's erase. */
uint32_t tr2_store_generation(const tr2_board *b);
uint8_t tr2_store_write(tr2_board *b, uint32_t *gen);
uint8_t tr2_store_erase(tr2_board *b);

/* Firmware update (tr2_update.c); statuses as the spec's. */
void tr2_update_forget(tr2_update *u);
uint8_t tr2_update_begin(tr2_board *b, uint32_t size, uint32_t crc, const uint8_t version[3]);
uint8_t tr2_update_block(tr2_board *b, const uint8_t *p);
/* fw_status's 24 bytes after the status byte. */
void tr2_update_status(const tr2_update *u, uint8_t out[24]);
uint8_t tr2_update_verify(tr2_board *b);
uint8_t tr2_update_swap(tr2_board *b);

/* Little-endian fields (shared by the sources). */
uint32_t tr2_get_u32(const uint8_t *p);
void tr2_put_u32(uint8_t *p, uint32_t v);
int32_t tr2_u32_to_i32(uint32_t u);

#ifdef __cplusplus
}
#endif

#endif /* TWINRIG_CORE2_H */
