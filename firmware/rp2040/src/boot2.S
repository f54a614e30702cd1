/*
 * boot2.S - second-stage boot for the Pico's QSPI flash (W25Q16JV), RP2040 datasheet 2.8.1.
 *
 * The bootrom copies the first 256 bytes of flash to SRAM (0x20041f00), checks their CRC32
 * (the last 4 bytes, added by tools/image.py) and runs them. This stage sets the SSI
 * (datasheet 4.10) for execute-in-place with the standard serial read command 03h, which
 * every 25-series flash answers, then enters the image through its vector table at
 * 0x10000100. It runs from SRAM, so it is position independent (literal pool only).
 */
    .syntax unified
    .cpu cortex-m0plus
    .thumb
    .section .boot2, "ax"

    .equ SSI_BASE, 0x18000000
    .equ SSI_CTRLR0, 0x00
    .equ SSI_CTRLR1, 0x04
    .equ SSI_SSIENR, 0x08
    .equ SSI_BAUDR, 0x14
    .equ SSI_SPI_CTRLR0, 0xf4
    /* CTRLR0: SPI_FRF 0 (standard), DFS_32 31 (32-bit frames), TMOD 3 (EEPROM read) */
    .equ CTRLR0_XIP, (31 << 16) | (3 << 8)
    /* SPI_CTRLR0: XIP_CMD 03h, INST_L 2 (8-bit instruction), ADDR_L 6 (24-bit address) */
    .equ SPI_CTRLR0_XIP, (0x03 << 24) | (2 << 8) | (6 << 2)
    .equ IMAGE_VECTORS, 0x10000100
    .equ PPB_VTOR, 0xe000ed08

    .global boot2_entry
    .type boot2_entry, %function
    .thumb_func
boot2_entry:
    push {lr}
    ldr r3, =SSI_BASE
    movs r0, #0
    str r0, [r3, #SSI_SSIENR]
    /* SCK = clk_sys / 4: within the flash's 03h limit (50 MHz) at any boot clock */
    movs r0, #4
    str r0, [r3, #SSI_BAUDR]
    ldr r0, =CTRLR0_XIP
    str r0, [r3, #SSI_CTRLR0]
    ldr r0, =SPI_CTRLR0_XIP
    ldr r1, =(SSI_BASE + SSI_SPI_CTRLR0)
    str r0, [r1]
    movs r0, #0
    str r0, [r3, #SSI_CTRLR1]
    movs r0, #1
    str r0, [r3, #SSI_SSIENR]
    /* Called as a function (lr != 0): return. From the bootrom (lr == 0): enter the image. */
    pop {r0}
    cmp r0, #0
    beq enter_image
    bx r0
enter_image:
    ldr r0, =IMAGE_VECTORS
    ldr r1, =PPB_VTOR
    str r0, [r1]
    ldmia r0!, {r1, r2}
    msr msp, r1
    bx r2
    .ltorg
