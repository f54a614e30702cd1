"""Protocol 2's constants in the layout of ``firmware/protocol/protocol-2.json``.

:func:`protocol_dict` builds, from the modules of this package and
:mod:`instruments.bus.timing`, the dict that ``protocol-2.json`` holds; a test checks the two
are equal, so the file, the spec's tables and the reference board cannot drift apart.
"""

from __future__ import annotations

from .. import timing
from .constants import (
    ACTUATOR_CAL_MAX_MS, ADDRESSES, BLOCK_CHECK_MAX_MS, BAUD_DEFAULT, BLOCK_SIZE, BOOT_MAX_MS, CONTRAST_LIMIT_UV2, CRC_INIT, CRC_POLY,
    CRC_XOROUT, DISCOVER_SLOTS_MAX, ERRORS, FLAGS, GAIN_LIMIT, GAIN_SHIFT, IMAGE_CRC_MAX_MS,
    IMAGE_MAX_BYTES, KINDS, MAX_FRAME_SIZE, MAX_PAYLOAD, MISSING_LISTED, NO_BLOCK,
    PAGE_PROGRAM_MAX_MS, PHASES, PROBABILITY_ONE, PROTOCOL_MINOR, PROTOCOL_VERSION, REPLY_BIT,
    RESET_CAUSES, RESET_MODES, RULES, SECTOR_BYTES, SECTOR_ERASE_MAX_MS, TRIGGER_MIN_US,
    V1_VERSION, GATE_CAL_POINTS, GATE_LEAK_HOLD_MS,
)
from .actuator import CAL_POINTS_UV
from .payloads import COMMANDS
from .slots import REPLY_LATENCY_MAX_US

__all__ = ["protocol_dict"]


def protocol_dict() -> dict:
    """Every constant of protocol 2 in the layout of ``protocol-2.json``."""
    return {
        "protocol_version": PROTOCOL_VERSION,
        "protocol_minor": PROTOCOL_MINOR,
        "frame": {
            "header": ["version:u8", "dst:u8", "src:u8", "seq:u8", "cmd:u8"],
            "max_payload": MAX_PAYLOAD,
            "max_frame": MAX_FRAME_SIZE,
            "crc": {"name": "CRC-16/CCITT-FALSE", "poly": CRC_POLY, "init": CRC_INIT,
                    "refin": False, "refout": False, "xorout": CRC_XOROUT, "byteorder": "big"},
            "encoding": "COBS, then one 0x00 delimiter; the host also sends one 0x00 before each frame",
            "reply_bit": REPLY_BIT,
            "endianness": "little (payload fields)",
        },
        "addresses": dict(ADDRESSES),
        "baud_default": BAUD_DEFAULT,
        "timing": {
            "source": "instruments/bus/timing.py (normative): turnaround_us, slot_us, reply_start_us",
            "bits_per_char": timing.BITS_PER_CHAR,
            "turnaround_chars": timing.TURNAROUND_CHARS,
            "turnaround_min_us": timing.TURNAROUND_MIN_US,
            "de_hold_us": timing.DE_HOLD_US,
            "eof_jitter_us": timing.EOF_JITTER_US,
            "clock_tolerance_ppm": timing.CLOCK_TOLERANCE_PPM,
            "slot_addresses": timing.ADDRESSES,
            "reply_latency_max_us": REPLY_LATENCY_MAX_US,
            "boot_max_ms": BOOT_MAX_MS,
            "image_crc_max_ms": IMAGE_CRC_MAX_MS,
            "block_check_max_ms": BLOCK_CHECK_MAX_MS,
            "actuator_cal_max_ms": ACTUATOR_CAL_MAX_MS,
            "trigger_min_us": TRIGGER_MIN_US,
            "v1_slot_us": timing.V1_SLOT_US,
        },
        "flash": {"source": "Winbond W25Q16JV datasheet, AC electrical characteristics",
                  "sector_bytes": SECTOR_BYTES, "sector_erase_max_ms": SECTOR_ERASE_MAX_MS,
                  "page_program_max_ms": PAGE_PROGRAM_MAX_MS},
        "board_kinds": dict(KINDS),
        "rules": dict(RULES),
        "gain_shift": GAIN_SHIFT,
        "contrast_limit_uv2": CONTRAST_LIMIT_UV2,
        "gain_limit": GAIN_LIMIT,
        "probability_one": PROBABILITY_ONE,
        "reset_modes": dict(RESET_MODES),
        "reset_causes": dict(RESET_CAUSES),
        "flags": dict(FLAGS),
        "discover": {"hash": "fmix32(fmix32(fmix32(salt) ^ w0) ^ w1), w0 = uid[0:4], w1 = uid[4:8] little-endian",
                     "slot": "1 + hash % slots", "slots_max": DISCOVER_SLOTS_MAX},
        "firmware_update": {"block_size": BLOCK_SIZE, "image_max_bytes": IMAGE_MAX_BYTES,
                            "missing_listed": MISSING_LISTED, "no_block": NO_BLOCK,
                            "crc32": "CRC-32/ISO-HDLC (zlib), over the image's size bytes",
                            "phases": dict(PHASES)},
        "gate_calibration": {"points": GATE_CAL_POINTS, "points_uv": list(CAL_POINTS_UV),
                             "leak_hold_ms": GATE_LEAK_HOLD_MS,
                             "sources": {"nominal": 0, "measured": 1},
                             "slope": "nV/us, linear between the points and beyond the ends, floored, at least 1"},
        "version_1_probe": {"request": f"version {V1_VERSION}, cmd 1 (identify), empty payload",
                            "reply": "protocol 1's identify layout (15-byte payload), protocol 2, "
                                     f"protocol_minor {PROTOCOL_MINOR}; from an assigned board only"},
        "commands": {c.name: c.json() for c in COMMANDS.values()},
        "errors": dict(ERRORS),
    }
