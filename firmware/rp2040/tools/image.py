#!/usr/bin/env python3
"""Build steps of the RP2040 image that need more than the toolchain.

    image.py boot2 RAW.bin OUT.bin        pad boot2 to 252 bytes and append its CRC32
    image.py uf2 IMAGE.bin OUT.uf2 [--blank ADDR ...]
                                          the flash image as UF2 blocks from 0x10000000;
                                          --blank: a 256-byte block of 0xFF at each ADDR too
    image.py config OUT.uf2 --address N [--kind mosfet|digipot] [--uid HEX16]
                                          [--initial-state S] [--offsets A,B,C,D]
                                          a board's configuration block (its own .uf2)
    image.py package A.bin B.bin OUT.pkg --version X.Y.Z
                                          protocol 2's package: header, the image linked
                                          for slot A at 0x100, for slot B at 0x4100
    image.py flash LOADER.bin PKG OUT.bin protocol 2's first flashing: boot2 and the boot
                                          loader in sector 0, the package in slot A

The package (firmware/rp2040/src/bootrec.h) is what a bus update sends (fw_begin's size and
CRC-32 are the package file's): a 256-byte header (magic "TRP2", version, each variant's
offset, size and CRC-32, the header's CRC-32; 0xFF to 0x100), then the variants, padded
with 0xFF, which is what an erased flash reads.

The boot2 checksum is the one the RP2040 bootrom checks before it runs the second stage
(datasheet 2.8.1.3.1): CRC-32 with polynomial 04C11DB7h, initial value FFFFFFFFh, no
reflection and no final XOR, over the first 252 bytes, stored little-endian in the last 4.
UF2 (https://github.com/microsoft/uf2, the RP2040's USB boot format, datasheet 2.8.4):
512-byte blocks of 256 payload bytes with the RP2040 family id E48BFF56h.
"""

from __future__ import annotations

import argparse
import binascii
import struct
import sys
from pathlib import Path

FLASH_BASE = 0x10000000
CONFIG_ADDR = 0x101FF000
CONFIG_MAGIC = 0x31425254
RP2040_FAMILY = 0xE48BFF56
UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
UF2_FLAG_FAMILY = 0x00002000
KINDS = {"digipot": 1, "mosfet": 2}
PKG_MAGIC = 0x32505254
PKG_VARIANT_OFFSETS = (0x100, 0x4100)
PKG_VARIANT_MAX = 0x3F00
SECTOR = 4096
SLOT_A = 0x10000  # slot A's flash offset (64 KiB aligned): sector 0 is boot2 and the boot loader


def boot2_crc(data: bytes) -> int:
    """The bootrom's CRC-32 of the second stage (MSB first, no final XOR)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def boot2_image(raw: bytes) -> bytes:
    if len(raw) > 252:
        raise SystemExit(f"boot2 is {len(raw)} bytes, over 252")
    body = raw.ljust(252, b"\0")
    return body + struct.pack("<I", boot2_crc(body))


def uf2_blocks(data: bytes, base: int, blanks=()) -> bytes:
    """UF2 of ``data`` at flash address ``base`` (256-byte blocks, the last zero padded), and
    a block of 0xFF at each address in ``blanks`` (the bootrom erases a sector it writes
    into: protocol 2's boot record sectors, so that a first flashing starts the flashed slot
    A, whatever a board ran before)."""
    chunks = [(base + i, data[i:i + 256].ljust(256, b"\0")) for i in range(0, len(data), 256)]
    chunks += [(addr, b"\xff" * 256) for addr in blanks]
    out = bytearray()
    for n, (addr, chunk) in enumerate(chunks):
        head = struct.pack("<8I", UF2_MAGIC0, UF2_MAGIC1, UF2_FLAG_FAMILY, addr, 256, n,
                           len(chunks), RP2040_FAMILY)
        out += head + chunk.ljust(476, b"\0") + struct.pack("<I", UF2_MAGIC_END)
    return bytes(out)


def config_block(address: int, kind: int, uid: bytes, initial_state: int, offsets_uv) -> bytes:
    """The 40-byte board configuration block (firmware/rp2040/src/main.c, config_block)."""
    if not 1 <= address <= 247:
        raise SystemExit(f"--address must be 1..247, got {address}")
    if len(uid) != 8:
        raise SystemExit("--uid must be 8 bytes (16 hex digits)")
    body = struct.pack("<IBB2x8si4i", CONFIG_MAGIC, address, kind, uid, initial_state, *offsets_uv)
    return body + struct.pack("<HH", binascii.crc_hqx(body, 0xFFFF), 0)


def package(variant_a: bytes, variant_b: bytes, version: tuple[int, int, int]) -> bytes:
    """The package: header, the slot-A variant at 0x100, the slot-B variant at 0x4100."""
    variants = (variant_a, variant_b)
    for name, v in zip("AB", variants):
        if not 256 <= len(v) <= PKG_VARIANT_MAX:
            raise SystemExit(f"the variant for slot {name} is {len(v)} bytes, not 256..{PKG_VARIANT_MAX}")
    crcs = [binascii.crc32(v) & 0xFFFFFFFF for v in variants]
    head = struct.pack("<I3Bx2I2I2I", PKG_MAGIC, *version, *PKG_VARIANT_OFFSETS, *map(len, variants), *crcs)
    head += struct.pack("<I", binascii.crc32(head) & 0xFFFFFFFF)
    out = head.ljust(PKG_VARIANT_OFFSETS[0], b"\xff") + variant_a
    return out.ljust(PKG_VARIANT_OFFSETS[1], b"\xff") + variant_b


def first_flash(loader: bytes, pkg: bytes) -> bytes:
    """Flash from 0x10000000: boot2 and the loader (sector 0), the package in slot A."""
    if len(loader) > SECTOR:
        raise SystemExit(f"boot2 and the loader are {len(loader)} bytes, over sector 0's {SECTOR}")
    return loader.ljust(SLOT_A, b"\xff") + pkg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("boot2")
    b.add_argument("raw", type=Path)
    b.add_argument("out", type=Path)
    u = sub.add_parser("uf2")
    u.add_argument("image", type=Path)
    u.add_argument("out", type=Path)
    u.add_argument("--blank", type=lambda v: int(v, 0), action="append", default=[])
    c = sub.add_parser("config")
    c.add_argument("out", type=Path)
    c.add_argument("--address", type=int, required=True)
    c.add_argument("--kind", choices=sorted(KINDS), default="mosfet")
    c.add_argument("--uid", default="0000000000000000")
    c.add_argument("--initial-state", type=int, default=1_000_000)
    c.add_argument("--offsets", default="0,0,0,0")
    k = sub.add_parser("package")
    k.add_argument("a", type=Path)
    k.add_argument("b", type=Path)
    k.add_argument("out", type=Path)
    k.add_argument("--version", required=True)
    f = sub.add_parser("flash")
    f.add_argument("loader", type=Path)
    f.add_argument("pkg", type=Path)
    f.add_argument("out", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "boot2":
        a.out.write_bytes(boot2_image(a.raw.read_bytes()))
    elif a.cmd == "package":
        version = tuple(int(v) for v in a.version.split("."))
        if len(version) != 3 or not all(0 <= v <= 255 for v in version):
            raise SystemExit("--version takes X.Y.Z, each 0..255")
        a.out.write_bytes(package(a.a.read_bytes(), a.b.read_bytes(), version))
    elif a.cmd == "flash":
        a.out.write_bytes(first_flash(a.loader.read_bytes(), a.pkg.read_bytes()))
    elif a.cmd == "uf2":
        data = a.image.read_bytes()
        blanks = [FLASH_BASE + b if b < FLASH_BASE else b for b in a.blank]
        if any(FLASH_BASE <= b < FLASH_BASE + len(data) or b % 256 for b in blanks):
            raise SystemExit("--blank: a 256-byte aligned address past the image")
        a.out.write_bytes(uf2_blocks(data, FLASH_BASE, blanks))
    else:
        offsets = [int(v) for v in a.offsets.split(",")]
        if len(offsets) != 4:
            raise SystemExit("--offsets takes four integers (uV)")
        block = config_block(a.address, KINDS[a.kind], bytes.fromhex(a.uid), a.initial_state, offsets)
        a.out.write_bytes(uf2_blocks(block, CONFIG_ADDR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
