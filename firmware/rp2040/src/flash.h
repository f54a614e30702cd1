#ifndef TR_FLASH_H
#define TR_FLASH_H

#include <stdint.h>

/* The Pico's W25Q16JV through the SSI, for the image's own erases and programs (flash.c).
   Offsets are from the start of the flash (0 = 0x10000000 in the XIP window). The routines
   run from RAM with interrupts masked: XIP is off while they talk to the flash. */
#define FLASH_SECTOR_BYTES 4096u
#define FLASH_BLOCK32_BYTES 32768u
#define FLASH_BLOCK64_BYTES 65536u
#define FLASH_PAGE_BYTES 256u

/* Keep a copy of boot2 in RAM (it sets XIP up again after every command); at start-up. */
void flash_init(void);
/* Erase `bytes` at offset: a 4 KiB sector (20h, tSE), a 32 KiB (52h, tBE1) or a 64 KiB block
   (D8h, tBE2), offset a multiple of it; 0 = done within twice the part's maximum time. */
__attribute__((long_call)) int flash_erase(uint32_t offset, uint32_t bytes);
static inline int flash_erase_sector(uint32_t offset) { return flash_erase(offset, FLASH_SECTOR_BYTES); }
/* Program len (1..256) bytes from RAM at offset, within one 256-byte page; 0 = done within
   twice tPP. data must not be in flash (it is unreadable while XIP is off). */
__attribute__((long_call)) int flash_program(uint32_t offset, const uint8_t *data, uint32_t len);
/* The flash's 64-bit unique id (command 4Bh): the board's uid. */
__attribute__((long_call)) void flash_unique_id(uint8_t uid[8]);

#endif
