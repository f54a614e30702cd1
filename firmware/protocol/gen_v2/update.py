"""``vectors/v2/update.json``: firmware updates over the bus, from power-on.

``{"images": {name: {version, size, image_crc32, data_hex}}, "cases": [bus sessions, see
:mod:`.bus`]}``. The images are deterministic (xorshift32 bytes); blocks are 128 bytes, the
last padded with 0xFF. A request ``heard_by`` a subset of the boards is one the others'
receivers lost, as line noise would make them.
"""

from __future__ import annotations

from instruments.bus import rule as R
from instruments.bus import v2
from instruments.bus.v2 import image_blocks

from .bus import MOSFET_NODES, UID_A, UID_B, UID_C, Bus, board_spec, hexs

B = v2.ADDR_BROADCAST
NEW_VERSION = (2, 1, 0)


def _image(size: int, seed: int) -> bytes:
    g = R.Xorshift32(seed)
    return bytes(g.next() >> 24 for _ in range(size))


IMAGE = _image(5000, 0x2B00)         # 40 blocks over two flash sectors, the last block part-filled
SMALL = _image(640, 0x51A1)          # 5 blocks exactly


def _begin(s: Bus, dst: int, image: bytes, version=NEW_VERSION, crc=None) -> None:
    s("fw_begin", dst, size=len(image), image_crc32=v2.crc32(image) if crc is None else crc,
      fw_major=version[0], fw_minor=version[1], fw_patch=version[2])


def _block(s: Bus, dst: int, image: bytes, n: int, *, crc=None, heard_by=None, data=None) -> None:
    block = image_blocks(image)[n] if data is None else data
    s("fw_block", dst, image_crc32=v2.crc32(image) if crc is None else crc, block=n,
      block_crc32=v2.crc32(block), data=block, heard_by=heard_by)


def _boards():
    return [board_spec(uid=UID_A, address=1, kind="mosfet", node_uv=MOSFET_NODES, initial_state=1_500_000),
            board_spec(uid=UID_B, address=2, kind="mosfet", node_uv=MOSFET_NODES, initial_state=1_500_000)]


def update_cases() -> list[Bus]:
    out = []
    s = Bus("update_two_boards_one_missing_blocks", *_boards())
    s("set_state", B, state=2_000_000); s("store_state", B)
    _begin(s, B, IMAGE)
    lost = {3, 7} | set(range(9, 20))
    for n in range(len(image_blocks(IMAGE))):
        _block(s, B, IMAGE, n, heard_by=[0] if n in lost else None)
    s("fw_status", B)
    s("fw_verify", B)                                                 # board 1: fw_incomplete
    s("fw_status", B)
    for n in sorted(lost)[:8]:
        _block(s, 2, IMAGE, n)
    s("fw_status", 2)
    for n in sorted(lost)[8:]:
        _block(s, B, IMAGE, n)                                        # board 0 takes them again: harmless
    s("fw_status", B); s("fw_verify", B); s("fw_verify", 1); s("fw_status", B)
    s("fw_swap", B)
    s("identify", B); s("read_telemetry", B); s("fw_status", B); s("read_state", B)
    out.append(s)

    s = Bus("update_rolled_back", board_spec(uid=UID_C, address=3, self_test_passes=False, initial_state=10))
    s("set_state", 3, state=20); s("store_state", 3)
    _begin(s, 3, SMALL)
    for n in range(len(image_blocks(SMALL))):
        _block(s, 3, SMALL, n)
    s("fw_verify", 3); s("fw_status", 3); s("fw_swap", 3)
    s("identify", 3); s("read_telemetry", 3); s("fw_status", 3); s("read_state", 3)
    _begin(s, 3, SMALL)                                               # a new begin clears rolled_back
    s("identify", 3)
    out.append(s)

    s = Bus("update_refusals", board_spec(uid=UID_A, address=4))
    _block(s, 4, SMALL, 0)                                            # no update: fw_sequence
    s("fw_verify", 4); s("fw_swap", 4)
    s("fw_begin", 4, size=0, image_crc32=0, fw_major=2, fw_minor=1, fw_patch=0)
    s("fw_begin", 4, size=v2.IMAGE_MAX_BYTES + 1, image_crc32=0, fw_major=2, fw_minor=1, fw_patch=0)
    _begin(s, 4, SMALL)
    _block(s, 4, SMALL, 0, crc=v2.crc32(SMALL) ^ 1)                   # another image: fw_sequence
    _block(s, 4, SMALL, 5, data=b"\xff" * v2.BLOCK_SIZE)               # past the last block: out_of_range
    bad = bytearray(image_blocks(SMALL)[1])
    s("fw_block", 4, image_crc32=v2.crc32(SMALL), block=1, block_crc32=v2.crc32(bytes(bad)) ^ 1,
      data=bytes(bad))                                                # bad_block_crc
    _block(s, 4, SMALL, 0)
    s("fw_verify", 4)                                                 # fw_incomplete
    s("fw_swap", 4)                                                   # fw_sequence
    s("fw_status", 4)
    s("reset", 4, mode=0); s("fw_status", 4)                          # the update is forgotten
    _begin(s, 4, SMALL, crc=v2.crc32(SMALL) ^ 0xFFFF)                 # the host's CRC is wrong
    for n in range(len(image_blocks(SMALL))):
        _block(s, 4, SMALL, n, crc=v2.crc32(SMALL) ^ 0xFFFF)
    s("fw_verify", 4); s("fw_status", 4)                              # fw_image_crc, idle
    s("read_telemetry", 4)
    out.append(s)

    s = Bus("update_flash_fails", board_spec(uid=UID_B, address=5, storage_fails=True))
    _begin(s, 5, SMALL); _block(s, 5, SMALL, 0); s("fw_status", 5); s("read_telemetry", 5)
    out.append(s)
    return out


def update_vectors() -> dict:
    images = {name: {"version": list(NEW_VERSION), "size": len(img), "image_crc32": v2.crc32(img),
                     "data_hex": hexs(img)} for name, img in (("image", IMAGE), ("small", SMALL))}
    return {"images": images, "cases": [c.json() for c in update_cases()]}
