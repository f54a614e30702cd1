/* tr2_update.c - firmware update over the bus: the inactive slot's blocks, verify, swap. */
#include "twinrig_core2.h"

void tr2_update_forget(tr2_update *u)
{
    /* Cleared through a volatile lvalue: a plain loop is turned into a memset call, and
       the core calls nothing from libc (README.md, "Protocol 2"). */
    volatile uint8_t *have = u->have;
    size_t i;
    u->phase = TR2_PHASE_IDLE;
    u->version[0] = u->version[1] = u->version[2] = 0;
    u->blocks = 0;
    u->have_count = 0;
    u->size = 0;
    u->image_crc32 = 0;
    for (i = 0; i < sizeof u->have; i++) {
        have[i] = 0;
    }
}

uint8_t tr2_update_begin(tr2_board *b, uint32_t size, uint32_t crc, const uint8_t version[3])
{
    tr2_update *u = &b->fw;
    const tr2_hal *h = b->hal;
    if (size == 0u || size > TR2_IMAGE_MAX_BYTES) {
        return TR_OUT_OF_RANGE;
    }
    if (!h || !h->fw_erase || h->fw_erase(h->user, size) != 0) {
        return TR_STORAGE;
    }
    tr2_update_forget(u);
    u->phase = TR2_PHASE_RECEIVING;
    u->size = size;
    u->image_crc32 = crc;
    u->version[0] = version[0];
    u->version[1] = version[1];
    u->version[2] = version[2];
    u->blocks = (uint16_t)((size + TR2_BLOCK_SIZE - 1u) / TR2_BLOCK_SIZE);
    return TR_OK;
}

/* p: image_crc32 u32, block u16, block_crc32 u32, data 128s */
uint8_t tr2_update_block(tr2_board *b, const uint8_t *p)
{
    tr2_update *u = &b->fw;
    const tr2_hal *h = b->hal;
    uint16_t block = (uint16_t)(p[4] | (p[5] << 8));
    const uint8_t *data = p + 10;
    uint8_t bit;
    if (u->phase != TR2_PHASE_RECEIVING || tr2_get_u32(p) != u->image_crc32) {
        return TR2_FW_SEQUENCE;
    }
    if (block >= u->blocks) {
        return TR_OUT_OF_RANGE;
    }
    if (tr2_crc32_update(0, data, TR2_BLOCK_SIZE) != tr2_get_u32(p + 6)) {
        return TR2_BAD_BLOCK_CRC;
    }
    if (!h || !h->fw_program ||
        h->fw_program(h->user, (uint32_t)block * TR2_BLOCK_SIZE, data) != 0) {
        return TR_STORAGE;
    }
    bit = (uint8_t)(1u << (block & 7u));
    if (!(u->have[block >> 3] & bit)) {
        u->have[block >> 3] = (uint8_t)(u->have[block >> 3] | bit);
        u->have_count++; /* a block written twice counts once */
    }
    return TR_OK;
}

void tr2_update_status(const tr2_update *u, uint8_t out[24])
{
    uint16_t missing = u->phase == TR2_PHASE_RECEIVING ? (uint16_t)(u->blocks - u->have_count) : 0u;
    unsigned listed = 0;
    uint16_t blk;
    unsigned i;
    out[0] = u->phase;
    out[1] = u->version[0];
    out[2] = u->version[1];
    out[3] = u->version[2];
    out[4] = (uint8_t)(u->blocks & 0xFFu);
    out[5] = (uint8_t)(u->blocks >> 8);
    out[6] = (uint8_t)(missing & 0xFFu);
    out[7] = (uint8_t)(missing >> 8);
    for (i = 0; i < TR2_MISSING_LISTED; i++) {
        out[8 + 2 * i] = 0xFFu;
        out[9 + 2 * i] = 0xFFu;
    }
    for (blk = 0; missing > 0u && blk < u->blocks && listed < TR2_MISSING_LISTED; blk++) {
        if (!(u->have[blk >> 3] & (1u << (blk & 7u)))) {
            out[8 + 2 * listed] = (uint8_t)(blk & 0xFFu);
            out[9 + 2 * listed] = (uint8_t)(blk >> 8);
            listed++;
        }
    }
}

uint8_t tr2_update_verify(tr2_board *b)
{
    tr2_update *u = &b->fw;
    const tr2_hal *h = b->hal;
    uint8_t buf[32];
    uint32_t crc = 0;
    uint32_t off;
    if (u->phase == TR2_PHASE_VERIFIED) {
        return TR_OK;
    }
    if (u->phase != TR2_PHASE_RECEIVING) {
        return TR2_FW_SEQUENCE;
    }
    if (u->have_count != u->blocks) {
        return TR2_FW_INCOMPLETE;
    }
    for (off = 0; off < u->size; off += (uint32_t)sizeof buf) {
        uint32_t n = u->size - off < sizeof buf ? u->size - off : (uint32_t)sizeof buf;
        if (!h || !h->fw_read || h->fw_read(h->user, off, buf, n) != 0) {
            return TR_STORAGE;
        }
        crc = tr2_crc32_update(crc, buf, n);
    }
    if (crc != u->image_crc32) {
        tr2_update_forget(u); /* begin again */
        return TR2_FW_IMAGE_CRC;
    }
    u->phase = TR2_PHASE_VERIFIED;
    return TR_OK;
}

uint8_t tr2_update_swap(tr2_board *b)
{
    tr2_update *u = &b->fw;
    const tr2_hal *h = b->hal;
    if (u->phase != TR2_PHASE_VERIFIED) {
        return TR2_FW_SEQUENCE;
    }
    if (!h || !h->fw_trial || h->fw_trial(h->user, u->version, u->blocks) != 0) {
        return TR_STORAGE;
    }
    return TR_OK;
}
