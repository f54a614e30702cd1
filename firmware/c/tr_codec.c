/* tr_codec.c - CRC-16/CCITT-FALSE, COBS and frame parsing/encoding. */
#include "twinrig_core.h"

/* ---- CRC ---------------------------------------------------------------- */

uint16_t tr_crc16_update(uint16_t crc, uint8_t byte)
{
    int i;
    crc = (uint16_t)(crc ^ (uint16_t)((uint16_t)byte << 8));
    for (i = 0; i < 8; i++) {
        if (crc & 0x8000u) {
            crc = (uint16_t)((uint16_t)(crc << 1) ^ 0x1021u);
        } else {
            crc = (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint16_t tr_crc16(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFFu;
    size_t i;
    for (i = 0; i < len; i++) {
        crc = tr_crc16_update(crc, data[i]);
    }
    return crc;
}

/* ---- COBS --------------------------------------------------------------- */

size_t tr_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap)
{
    size_t need = len + len / 254u + 1u;
    size_t code_at = 0; /* index of the pending code byte */
    size_t o = 1;       /* next output index */
    uint8_t code = 1;
    int open = 1;       /* a block is pending */
    size_t i;

    if (out_cap < need) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            code++;
            if (code == 0xFFu) {
                /* a full block: no implied zero after it */
                out[code_at] = code;
                open = i + 1u < len;
                if (open) {
                    code_at = o++;
                    code = 1;
                }
            }
        }
    }
    if (open) {
        out[code_at] = code;
    }
    return o;
}

void tr_cobs_decoder_reset(tr_cobs_decoder *d)
{
    d->n = 0;
    d->raw = 0;
    d->code = 0;
    d->left = 0;
    d->bad = 0;
}

static void cobs_emit(tr_cobs_decoder *d, uint8_t byte)
{
    if (d->n < TR_MAX_FRAME) {
        d->buf[d->n] = byte;
    }
    if (d->n <= TR_MAX_FRAME) {
        d->n++; /* saturates at TR_MAX_FRAME + 1: enough to say too_long */
    }
}

void tr_cobs_decoder_push(tr_cobs_decoder *d, uint8_t byte)
{
    if (d->raw < 0xFFFFu) {
        d->raw++;
    }
    if (byte == 0) {
        d->bad = 1; /* a zero inside a chunk */
        return;
    }
    if (d->bad) {
        return;
    }
    if (d->left == 0) {
        /* a code byte; the block before it ends in an implied zero unless it
           was a full (0xFF) block or this is the first code byte */
        if (d->raw > 1 && d->code != 0xFFu) {
            cobs_emit(d, 0);
        }
        d->code = byte;
        d->left = (uint8_t)(byte - 1u);
    } else {
        cobs_emit(d, byte);
        d->left--;
    }
}

int tr_cobs_decoder_complete(const tr_cobs_decoder *d)
{
    return d->raw > 0 && !d->bad && d->left == 0;
}

/* ---- frames ------------------------------------------------------------- */

tr_status tr_frame_finish(const tr_cobs_decoder *d, tr_frame *frame)
{
    size_t n = d->n;
    size_t plen;
    uint16_t crc;
    size_t i;

    if (!tr_cobs_decoder_complete(d)) {
        return TR_BAD_COBS;
    }
    if (n < TR_MIN_FRAME) {
        return TR_TOO_SHORT;
    }
    if (n > TR_MAX_FRAME) {
        return TR_TOO_LONG;
    }
    crc = tr_crc16(d->buf, n - TR_CRC_LEN);
    if (d->buf[n - 2] != (uint8_t)(crc >> 8) || d->buf[n - 1] != (uint8_t)(crc & 0xFFu)) {
        return TR_BAD_CRC;
    }
    if (d->buf[0] != TR_PROTOCOL_VERSION) {
        return TR_BAD_VERSION;
    }
    plen = n - TR_MIN_FRAME;
    frame->version = d->buf[0];
    frame->dst = d->buf[1];
    frame->src = d->buf[2];
    frame->seq = d->buf[3];
    frame->cmd = d->buf[4];
    frame->len = (uint8_t)plen;
    for (i = 0; i < plen; i++) {
        frame->payload[i] = d->buf[TR_HEADER_LEN + i];
    }
    return TR_OK;
}

tr_status tr_frame_decode(const uint8_t *chunk, size_t len, tr_frame *frame)
{
    tr_cobs_decoder d;
    size_t i;
    tr_cobs_decoder_reset(&d);
    for (i = 0; i < len; i++) {
        tr_cobs_decoder_push(&d, chunk[i]);
        if (d.bad) {
            return TR_BAD_COBS;
        }
    }
    if (len == 0) {
        return TR_TOO_SHORT; /* decodes to nothing */
    }
    return tr_frame_finish(&d, frame);
}

size_t tr_frame_pack(const tr_frame *frame, uint8_t *out, size_t out_cap)
{
    size_t n = (size_t)frame->len + TR_MIN_FRAME;
    uint16_t crc;
    size_t i;
    if (frame->len > TR_MAX_PAYLOAD || out_cap < n) {
        return 0;
    }
    out[0] = frame->version;
    out[1] = frame->dst;
    out[2] = frame->src;
    out[3] = frame->seq;
    out[4] = frame->cmd;
    for (i = 0; i < frame->len; i++) {
        out[TR_HEADER_LEN + i] = frame->payload[i];
    }
    crc = tr_crc16(out, n - TR_CRC_LEN);
    out[n - 2] = (uint8_t)(crc >> 8);
    out[n - 1] = (uint8_t)(crc & 0xFFu);
    return n;
}

size_t tr_frame_encode(const tr_frame *frame, uint8_t *out, size_t out_cap)
{
    uint8_t raw[TR_MAX_FRAME];
    size_t n = tr_frame_pack(frame, raw, sizeof raw);
    size_t w;
    if (n == 0 || out_cap < 1) {
        return 0;
    }
    w = tr_cobs_encode(raw, n, out, out_cap - 1u);
    if (w == 0) {
        return 0;
    }
    out[w] = 0;
    return w + 1u;
}
