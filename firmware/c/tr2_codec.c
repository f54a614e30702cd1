/* tr2_codec.c - protocol 2's frames (254 bytes), CRC-32, reply timing, discover's hash. */
#include "twinrig_core2.h"

uint32_t tr2_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

void tr2_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

int32_t tr2_u32_to_i32(uint32_t u)
{
    if (u <= 0x7FFFFFFFu) {
        return (int32_t)u;
    }
    return (int32_t)(u - 0x80000000u) - 0x7FFFFFFF - 1;
}

/* ---- COBS decoding and the receive checks --------------------------------- */

void tr2_cobs_decoder_reset(tr2_cobs_decoder *d)
{
    d->n = 0;
    d->raw = 0;
    d->code = 0;
    d->left = 0;
    d->bad = 0;
}

static void emit(tr2_cobs_decoder *d, uint8_t byte)
{
    if (d->n < TR2_MAX_FRAME) {
        d->buf[d->n] = byte;
    }
    if (d->n <= TR2_MAX_FRAME) {
        d->n++; /* saturates one past the maximum: enough to say too_long */
    }
}

void tr2_cobs_decoder_push(tr2_cobs_decoder *d, uint8_t byte)
{
    if (d->raw < 0xFFFFu) {
        d->raw++;
    }
    if (byte == 0) {
        d->bad = 1;
        return;
    }
    if (d->bad) {
        return;
    }
    if (d->left == 0) {
        /* a code byte: the block before it ends in an implied zero unless it was full */
        if (d->raw > 1 && d->code != 0xFFu) {
            emit(d, 0);
        }
        d->code = byte;
        d->left = (uint8_t)(byte - 1u);
    } else {
        emit(d, byte);
        d->left--;
    }
}

uint8_t tr2_frame_check(const tr2_cobs_decoder *d)
{
    size_t n = d->n;
    uint16_t crc;
    if (d->raw == 0 || d->bad || d->left != 0) {
        return TR_BAD_COBS;
    }
    if (n < TR2_MIN_FRAME) {
        return TR_TOO_SHORT;
    }
    if (n > TR2_MAX_FRAME) {
        return TR_TOO_LONG;
    }
    crc = tr_crc16(d->buf, n - TR_CRC_LEN);
    if (d->buf[n - 2] != (uint8_t)(crc >> 8) || d->buf[n - 1] != (uint8_t)(crc & 0xFFu)) {
        return TR_BAD_CRC;
    }
    if (d->buf[0] != TR2_PROTOCOL_VERSION &&
        !(d->buf[0] == TR_PROTOCOL_VERSION && d->buf[4] == TR_CMD_IDENTIFY && n == TR2_MIN_FRAME)) {
        return TR_BAD_VERSION;
    }
    return TR_OK;
}

uint8_t tr2_frame_finish(const tr2_cobs_decoder *d, tr2_frame *frame)
{
    size_t i;
    uint8_t st = tr2_frame_check(d);
    if (st != TR_OK) {
        return st;
    }
    frame->version = d->buf[0];
    frame->dst = d->buf[1];
    frame->src = d->buf[2];
    frame->seq = d->buf[3];
    frame->cmd = d->buf[4];
    frame->len = (uint8_t)(d->n - TR2_MIN_FRAME);
    for (i = 0; i < frame->len; i++) {
        frame->payload[i] = d->buf[TR_HEADER_LEN + i];
    }
    return TR_OK;
}

uint8_t tr2_frame_decode(const uint8_t *chunk, size_t len, tr2_frame *frame)
{
    tr2_cobs_decoder d;
    size_t i;
    tr2_cobs_decoder_reset(&d);
    for (i = 0; i < len; i++) {
        tr2_cobs_decoder_push(&d, chunk[i]);
    }
    if (len == 0) {
        return TR_TOO_SHORT;
    }
    return tr2_frame_finish(&d, frame);
}

/* COBS in place: a frame of n bytes (at most 254) at wire[1..n] becomes its n + 2 wire
   bytes. Each code byte goes where the block before it starts (wire[0], or where a zero
   was) and holds the distance to the next zero or to the end; with at most 254 bytes no
   block is ever full before the end, so this is the whole of COBS ("Frames": one byte of
   overhead exactly). */
size_t tr2_cobs_in_place(uint8_t *wire, size_t n)
{
    size_t next = n + 1u; /* the end counts as the next zero */
    size_t i;
    for (i = n; i > 0u; i--) {
        if (wire[i] == 0) {
            wire[i] = (uint8_t)(next - i);
            next = i;
        }
    }
    wire[0] = (uint8_t)next;
    wire[n + 1u] = 0;
    return n + 2u;
}

size_t tr2_frame_seal(uint8_t *wire, size_t body_len)
{
    uint16_t crc = tr_crc16(wire + 1, body_len);
    wire[1u + body_len] = (uint8_t)(crc >> 8);
    wire[2u + body_len] = (uint8_t)(crc & 0xFFu);
    return tr2_cobs_in_place(wire, body_len + TR_CRC_LEN);
}

size_t tr2_frame_encode(const tr2_frame *frame, uint8_t *out, size_t out_cap)
{
    size_t i;
    if (frame->len > TR2_MAX_PAYLOAD || out_cap < (size_t)frame->len + TR2_MIN_FRAME + 2u) {
        return 0;
    }
    out[1] = frame->version;
    out[2] = frame->dst;
    out[3] = frame->src;
    out[4] = frame->seq;
    out[5] = frame->cmd;
    for (i = 0; i < frame->len; i++) {
        out[1u + TR_HEADER_LEN + i] = frame->payload[i];
    }
    return tr2_frame_seal(out, TR_HEADER_LEN + (size_t)frame->len);
}

/* ---- CRC-32/ISO-HDLC ------------------------------------------------------ */

uint32_t tr2_crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    int k;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        for (k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

/* ---- timing ------------------------------------------------------------- */

uint32_t tr2_char_us(uint32_t baud)
{
    return (10000000u + baud - 1u) / baud;
}

uint32_t tr2_turnaround_us(uint32_t baud)
{
    uint32_t t = TR2_TURNAROUND_CHARS * tr2_char_us(baud);
    return t > TR2_TURNAROUND_MIN_US ? t : TR2_TURNAROUND_MIN_US;
}

uint32_t tr2_slot_us(uint32_t baud, uint32_t reply_payload)
{
    /* s >= base + 2 tol (turnaround + 247 s), solved for s and rounded up */
    uint64_t base = (uint64_t)(reply_payload + 9u) * tr2_char_us(baud) + TR2_DE_HOLD_US +
                    TR2_EOF_JITTER_US;
    uint64_t num = base * 1000000u + 2u * TR2_CLOCK_TOLERANCE_PPM * (uint64_t)tr2_turnaround_us(baud);
    uint64_t den = 1000000u - 2u * TR2_CLOCK_TOLERANCE_PPM * TR2_SLOT_ADDRESSES;
    return (uint32_t)((num + den - 1u) / den);
}

uint32_t tr2_reply_start_us(uint32_t slot, uint32_t baud, uint32_t reply_payload)
{
    return tr2_turnaround_us(baud) + (slot - 1u) * tr2_slot_us(baud, reply_payload);
}

/* ---- discover's hash ----------------------------------------------------- */

uint32_t tr2_fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

uint32_t tr2_discover_hash(const uint8_t uid[8], uint32_t salt)
{
    return tr2_fmix32(tr2_fmix32(tr2_fmix32(salt) ^ tr2_get_u32(uid)) ^ tr2_get_u32(uid + 4));
}

uint8_t tr2_discover_slot(const uint8_t uid[8], uint32_t salt, uint8_t slots)
{
    return (uint8_t)(1u + tr2_discover_hash(uid, salt) % slots);
}
