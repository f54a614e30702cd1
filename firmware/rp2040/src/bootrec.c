/*
 * bootrec.c - the package header and the boot record in flash (bootrec.h), read through XIP
 * (2.6.3), markers programmed by flash.c.
 */
#include "bootrec.h"

#include "flash.h"
#include "twinrig_core2.h"

static void xip_copy(uint32_t offset, void *out, uint32_t len)
{
    const volatile uint8_t *p = (const volatile uint8_t *)(uintptr_t)(FLASH_XIP_BASE + offset);
    uint8_t *o = out;
    uint32_t i;
    for (i = 0; i < len; i++) {
        o[i] = p[i];
    }
}

int pkg_header_read(unsigned slot, pkg_header *h)
{
    unsigned s;
    xip_copy(SLOT_OFFSET(slot), h, sizeof *h);
    if (h->magic != PKG_MAGIC || tr2_crc32_update(0, (const uint8_t *)h, offsetof(pkg_header, hcrc)) != h->hcrc) {
        return 1;
    }
    for (s = 0; s < 2u; s++) {
        if (h->offset[s] != PKG_VARIANT_OFFSET(s) || h->size[s] < 256u || h->size[s] > PKG_VARIANT_MAX) {
            return 1;
        }
    }
    return 0;
}

int pkg_variant_check(unsigned slot, const pkg_header *h)
{
    const uint8_t *p = (const uint8_t *)(uintptr_t)(FLASH_XIP_BASE + SLOT_OFFSET(slot) + h->offset[slot]);
    return tr2_crc32_update(0, p, h->size[slot]) != h->crc[slot];
}

uint32_t pkg_vectors(unsigned slot) { return FLASH_XIP_BASE + SLOT_OFFSET(slot) + PKG_VARIANT_OFFSET(slot); }

uint32_t bootrec_crc(const boot_record *r) { return tr2_crc32_update(0, (const uint8_t *)r, BOOTREC_CRC_BYTES); }

int bootrec_newest(boot_record *r, unsigned *sector)
{
    boot_record k;
    unsigned s;
    int found = 0;
    for (s = 0; s < 2u; s++) {
        xip_copy(BOOTREC_OFFSET(s), &k, sizeof k);
        if (k.magic == BOOTREC_MAGIC && bootrec_crc(&k) == k.crc && k.old_slot < 2u &&
            k.trial_slot == 1u - k.old_slot && (!found || k.generation > r->generation)) {
            *r = k;
            *sector = s;
            found = 1;
        }
    }
    return found;
}

int bootrec_mark(unsigned sector, unsigned mark)
{
    static uint8_t zero[4]; /* in RAM: flash_program's data cannot be in flash */
    uint32_t offset = BOOTREC_OFFSET(sector) + offsetof(boot_record, mark) + 4u * mark;
    boot_record r;
    if (flash_program(offset, zero, sizeof zero) != 0) {
        return 1;
    }
    xip_copy(BOOTREC_OFFSET(sector), &r, sizeof r);
    return r.mark[mark] != 0u;
}
