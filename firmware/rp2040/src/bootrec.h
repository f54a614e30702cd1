/*
 * bootrec.h - protocol 2's A/B layout: the image slots, the package in a slot, the boot
 * record; shared by the boot loader (loader.c) and the image (main2.c). README.md, "The boot
 * loader".
 *
 * Flash (2 MiB W25Q16JV, 4 KiB sectors; offsets from 0x10000000):
 *   0x000000  boot2 (256 B) and the boot loader (vectors at 0x10000100), never updated
 *   0x010000  image slot A (960 KiB)            0x100000  image slot B (960 KiB)
 *   (64 KiB aligned, so fw_begin erases them by 64 and 32 KiB blocks, main2.c)
 *   0x1fa000  boot record sector 0              0x1fb000  boot record sector 1
 *   0x1fc000  settings   0x1fd000, 0x1fe000  state store   0x1ff000  configuration block
 *
 * A slot holds a package (tools/image.py package), the file sent over the bus: a 256-byte
 * header, the image linked for slot A at package offset 0x100 and the same image linked for
 * slot B at 0x4100 (16 KiB on), so whichever slot it lands in, the loader starts the variant
 * linked for that slot (the RP2040 cannot remap flash). Each variant starts with its vector
 * table (256-byte aligned for VTOR, 2.4.8).
 *
 * The boot record: the newest of two sectors with a valid CRC (generation as the state
 * store's), so a power cut while one is written leaves the other. fw_swap writes one naming
 * the running slot (old) and the new (trial) one; three markers after it, 32-bit words
 * programmed from erased to 0 (bits only cleared, no erase: one page program each), record
 * what happened since: running (the loader started the trial), confirmed (the trial image
 * passed its self-test) and rolled (the loader went back to the old slot). A marker is set
 * when any bit is clear, so one cut part-way counts as written.
 */
#ifndef TR_BOOTREC_H
#define TR_BOOTREC_H

#include <stdint.h>

#define FLASH_XIP_BASE 0x10000000u
#define SLOT_BYTES 0xf0000u /* TR2_IMAGE_MAX_BYTES: the largest package */
#define SLOT_OFFSET(s) (0x010000u + SLOT_BYTES * (uint32_t)(s))
#define BOOTREC_OFFSET(k) (0x1fa000u + 0x1000u * (uint32_t)(k))

#define PKG_MAGIC 0x32505254u /* "TRP2" */
#define PKG_HEADER_BYTES 0x100u
#define PKG_VARIANT_OFFSET(s) ((s) ? 0x4100u : 0x100u)
#define PKG_VARIANT_MAX 0x3f00u /* 16,128 B: the variant for slot A ends where B's begins */

#define BOOTREC_MAGIC 0x52425254u /* "TRBR" */
#define BOOTREC_CRC_BYTES 24u
enum { MARK_RUNNING = 0, MARK_CONFIRMED = 1, MARK_ROLLED = 2 };

/* The package header (little-endian, at the slot's start; 0xFF up to 0x100). */
typedef struct {
    uint32_t magic;
    uint8_t version[3], pad;
    uint32_t offset[2]; /* each variant's package offset: PKG_VARIANT_OFFSET */
    uint32_t size[2];
    uint32_t crc[2];    /* CRC-32 (tr2_crc32_update) of each variant */
    uint32_t hcrc;      /* CRC-32 of the 32 bytes before it: the package's fingerprint */
} pkg_header;

typedef struct {
    uint32_t magic;
    uint32_t generation; /* the newer record of the two sectors is the one that counts */
    uint8_t old_slot, trial_slot;
    uint8_t version[3], pad; /* the trial's version and blocks (fw_status) */
    uint16_t blocks;
    uint32_t fp_old, fp_new; /* the fingerprints (hcrc) of the old and the trial package */
    uint32_t crc;            /* CRC-32 of the 24 bytes before it */
    uint32_t mark[3];        /* MARK_*: 0xffffffff until programmed */
} boot_record;

/* The package header in slot s, checked (magic, CRC, the layout's offsets and sizes): 0 ok. */
int pkg_header_read(unsigned slot, pkg_header *h);
/* The variant for slot s in it, its CRC-32 checked against the header's: 0 ok. */
int pkg_variant_check(unsigned slot, const pkg_header *h);
/* The entry of the variant for slot s: its vector table's address in the XIP window. */
uint32_t pkg_vectors(unsigned slot);
/* The newest valid boot record and its sector: 1 found, 0 none. */
int bootrec_newest(boot_record *r, unsigned *sector);
static inline int bootrec_marked(const boot_record *r, unsigned mark) { return r->mark[mark] != 0xffffffffu; }
/* Program marker `mark` of the record in `sector` (one page program, read back): 0 ok.
   Only where nothing else needs the flash (no gate pulse: the loader, the image's start). */
int bootrec_mark(unsigned sector, unsigned mark);
/* The record's CRC over its first 24 bytes. */
uint32_t bootrec_crc(const boot_record *r);

/* The loader's handoff to the image in WATCHDOG_SCRATCH0/1 (4.7: they keep their values
   through a watchdog reset, so the image takes them only with the magic, then clears it):
   SCRATCH1 = reset cause (tr2 cause) | trial << 8. SCRATCH4..7 are the bootrom's. */
#define HANDOFF_MAGIC 0x4f46484bu
#define HANDOFF_TRIAL (1u << 8)
/* The trial's watchdog: the image must confirm within this (us) or the chip resets. */
#define TRIAL_WATCHDOG_US 500000u

#endif
