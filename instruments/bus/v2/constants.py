"""Constants of the edge-bus protocol, version 2.0: the lowest module of protocol 2.

``firmware/protocol/PROTOCOL.md`` (protocol 2.0) and its machine-readable form
``firmware/protocol/protocol-2.json``: frame sizes ("Frames"), addresses ("Addresses"),
error codes ("Receiving"), reset modes and causes ("Resets and the stored state"),
telemetry flags ("Telemetry"), firmware-update phases and sizes ("Firmware update") and the
flash timings behind the quiet times ("Timing"). Written out literally; a test checks them
against ``protocol-2.json``. Protocol 1's constants stay in :mod:`instruments.bus.constants`
(the rule's arithmetic, kinds and rule codes are unchanged and imported from there).

Units: sizes in bytes, times in ms (``_ms``) or us (``_us``), voltages uV, temperatures
milli-degrees Celsius.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

from ..constants import (  # noqa: F401  (unchanged from protocol 1, re-exported)
    CONTRAST_LIMIT_UV2, CRC_INIT, CRC_POLY, CRC_SIZE, CRC_XOROUT, DEFAULT_LIMITS, GAIN_LIMIT,
    GAIN_SHIFT, HEADER_SIZE, I32_MAX, I32_MIN, KINDS, PROBABILITY_ONE, REPLY_BIT, RULE_KINDS,
    RULES, Kind, Rule,
)

__all__ = [
    "PROTOCOL_VERSION", "PROTOCOL_MINOR", "V1_VERSION", "HEADER_SIZE", "CRC_SIZE",
    "MIN_FRAME_SIZE", "MAX_PAYLOAD", "MAX_FRAME_SIZE", "REPLY_BIT", "CRC_POLY", "CRC_INIT",
    "CRC_XOROUT", "ADDR_HOST", "ADDR_BOARD_MIN", "ADDR_BOARD_MAX", "ADDR_UNASSIGNED",
    "ADDR_BROADCAST", "ADDRESSES", "BAUD_DEFAULT", "KINDS", "Kind", "RULES", "Rule",
    "RULE_KINDS", "GAIN_SHIFT", "CONTRAST_LIMIT_UV2", "GAIN_LIMIT", "PROBABILITY_ONE",
    "DEFAULT_LIMITS", "I32_MIN", "I32_MAX", "FIRMWARE_VERSION", "Error", "ERRORS", "ResetMode",
    "RESET_MODES", "ResetCause", "RESET_CAUSES", "Flag", "FLAGS", "Phase", "PHASES",
    "BLOCK_SIZE", "IMAGE_MAX_BYTES", "MISSING_LISTED", "NO_BLOCK", "SECTOR_BYTES",
    "SECTOR_ERASE_MAX_MS", "PAGE_PROGRAM_MAX_MS", "STORE_WRITE_MS", "BOOT_MAX_MS",
    "IMAGE_CRC_MAX_MS", "BLOCK_CHECK_MAX_MS", "ACTUATOR_CAL_MAX_MS", "GATE_CAL_POINTS", "GATE_LEAK_HOLD_MS", "TRIGGER_MIN_US", "DISCOVER_SLOTS_MAX", "BROADCAST_SLOTTED",
    "BROADCAST_HASHED", "BROADCAST_SELECTED", "BROADCAST_SILENT", "BROADCAST_REFUSED",
]

#: The ``version`` byte of every protocol-2 frame and ``protocol`` in identify.
PROTOCOL_VERSION = 2
#: Minor version (``protocol_minor`` in identify).
PROTOCOL_MINOR = 1
#: The version byte of protocol 1's frames (the version-1 identify probe, "Protocol 1 boards").
V1_VERSION = 1

#: Largest payload: the decoded frame (5 + payload + 2) stays within 254 bytes, so COBS adds
#: exactly one byte and :func:`instruments.bus.timing.wire_bytes` holds for every frame.
MAX_PAYLOAD = 247
MIN_FRAME_SIZE = HEADER_SIZE + CRC_SIZE
MAX_FRAME_SIZE = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE

ADDR_HOST = 0
ADDR_BOARD_MIN = 1
ADDR_BOARD_MAX = 247
#: The default address of a board no host has assigned one (Modbus V1.02 section 2.2 keeps
#: 248..255 reserved; protocol 2 takes 248 for unassigned boards and 255 for broadcast).
ADDR_UNASSIGNED = 248
ADDR_BROADCAST = 255
ADDRESSES = {"host": ADDR_HOST, "board_min": ADDR_BOARD_MIN, "board_max": ADDR_BOARD_MAX,
             "unassigned": ADDR_UNASSIGNED, "broadcast": ADDR_BROADCAST}

#: The bus's baud rate unless a rig says otherwise (8N1).
BAUD_DEFAULT = 115200

#: The firmware version of the reference board (identify's fw_major.fw_minor.fw_patch):
#: 2.0.0, the first of protocol 2.
FIRMWARE_VERSION = (2, 0, 0)


class Error(IntEnum):
    """Error codes: receive errors (1..5, frames dropped) and reply statuses (0, 6..15)."""

    OK = 0
    BAD_COBS = 1
    BAD_CRC = 2
    TOO_SHORT = 3
    TOO_LONG = 4
    BAD_VERSION = 5
    UNKNOWN_COMMAND = 6
    BAD_LENGTH = 7
    OUT_OF_RANGE = 8
    WRONG_KIND = 9
    BROADCAST_REFUSED = 10
    STORAGE = 11
    FW_SEQUENCE = 12
    FW_INCOMPLETE = 13
    FW_IMAGE_CRC = 14
    BAD_BLOCK_CRC = 15


ERRORS = {e.name.lower(): int(e) for e in Error}


class ResetMode(IntEnum):
    """``reset``'s ``mode``: restart keeping the stored state, or erase it first."""

    RESTART = 0
    FACTORY = 1


RESET_MODES = {m.name.lower(): int(m) for m in ResetMode}


class ResetCause(IntEnum):
    """Why the board last started (telemetry's ``reset_cause``)."""

    POWER_ON = 0
    RESET_COMMAND = 1
    WATCHDOG = 2
    BROWNOUT = 3
    FIRMWARE_SWAP = 4
    ROLLBACK = 5
    PIN = 6


RESET_CAUSES = {c.name.lower(): int(c) for c in ResetCause}


class Flag(IntFlag):
    """Bits of the ``flags`` byte (identify, discover, read_telemetry)."""

    DUPLICATE_ADDRESS = 0x01
    STATE_UNSTORED = 0x02
    ROLLED_BACK = 0x04


FLAGS = {f.name.lower(): int(f) for f in Flag}


class Phase(IntEnum):
    """Firmware-update phases (``fw_status``'s ``phase``)."""

    IDLE = 0
    RECEIVING = 1
    VERIFIED = 2
    CONFIRMED = 3
    ROLLED_BACK = 4


PHASES = {p.name.lower(): int(p) for p in Phase}

#: Image bytes per ``fw_block``; the last block is padded with 0xFF.
BLOCK_SIZE = 128
#: Largest image: one of the two 960 KiB slots of a 2 MiB flash (RP2040 boards' W25Q16JV).
IMAGE_MAX_BYTES = 983_040
#: How many missing block numbers ``fw_status`` lists (the rest are counted only).
MISSING_LISTED = 8
#: A listed block number that names no block.
NO_BLOCK = 0xFFFF

#: Flash sector (erase unit), bytes; W25Q16JV datasheet, "Sector Erase (20h)".
SECTOR_BYTES = 4096
#: W25Q16JV datasheet, AC electrical characteristics: sector erase tSE max 400 ms, page
#: program tPP max 3 ms.
SECTOR_ERASE_MAX_MS = 400
PAGE_PROGRAM_MAX_MS = 3
#: One record written to the store: a sector erased, one page programmed.
STORE_WRITE_MS = SECTOR_ERASE_MAX_MS + PAGE_PROGRAM_MAX_MS
#: Longest start-up, from the reset to listening again (a requirement on the firmware).
BOOT_MAX_MS = 1000
#: Longest CRC-32 over the largest image (a requirement on the firmware).
IMAGE_CRC_MAX_MS = 1000
#: Longest time a board takes over a received fw_block before its page program starts: the
#: block's and the frame's checks and the copy to the flash (a requirement on the firmware).
BLOCK_CHECK_MAX_MS = 1
#: Longest ``calibrate_actuator`` measurement, before its record is stored (a requirement on
#: the firmware: five points of two pulses and read-backs, and the leak's hold of 1 s).
ACTUATOR_CAL_MAX_MS = 3000
#: Gate voltages at which a MOSFET board's charge slope is calibrated (protocol 2.1).
GATE_CAL_POINTS = 5
#: The shortest hold over which a board measures its gate's leak (ms).
GATE_LEAK_HOLD_MS = 1000
#: Shortest learn-trigger pulse; a shorter one is a glitch, counted and ignored (us).
TRIGGER_MIN_US = 20
#: Most slots a ``discover`` may ask for (slot numbers 1..247, as addresses').
DISCOVER_SLOTS_MAX = 247

BROADCAST_SLOTTED = "slotted"
BROADCAST_HASHED = "hashed"
BROADCAST_SELECTED = "selected"
BROADCAST_SILENT = "silent"
BROADCAST_REFUSED = "refused"
