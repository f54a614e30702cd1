"""Constants of the edge-bus protocol, version 1.1: the lowest module of the protocol.

Protocol version and minor version (``firmware/protocol/PROTOCOL-1.md``, "Versioning"), frame
sizes and the CRC parameters ("Frames"), addresses and the broadcast slot time
("Broadcast"), board kinds, rule codes, the rule's gain and contrast limits ("Drops and the
rule"), default state limits ("Commands") and the error codes ("Receiving"). Written out
literally; a test checks them against ``firmware/protocol/protocol.json`` (see
:func:`instruments.bus.payloads.protocol_dict`). It imports nothing of the protocol's other
modules; they all import from it. :mod:`instruments.bus.protocol` re-exports every public
name.

Units: voltages are integer microvolts (uV), contrasts integer uV^2, gains state units per
uV^2 times 2^48, the broadcast slot time ``SLOT_TIME_S`` seconds; sizes are bytes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Sequence

__all__ = [
    "PROTOCOL_VERSION", "PROTOCOL_MINOR", "minor_for_firmware", "HEADER_SIZE", "CRC_SIZE",
    "MIN_FRAME_SIZE", "MAX_PAYLOAD", "MAX_FRAME_SIZE", "REPLY_BIT", "CRC_POLY", "CRC_INIT",
    "CRC_XOROUT", "ADDR_HOST", "ADDR_BOARD_MIN", "ADDR_BOARD_MAX", "ADDR_BROADCAST", "ADDRESSES",
    "KINDS", "Kind", "RULES", "Rule", "RULE_KINDS", "GAIN_SHIFT", "CONTRAST_LIMIT_UV2",
    "GAIN_LIMIT", "FIRMWARE_VERSION", "PROBABILITY_ONE", "ERRORS", "Error", "BROADCAST_SLOTTED",
    "BROADCAST_SILENT", "BROADCAST_REFUSED", "SLOT_TIME_S", "DEFAULT_LIMITS", "I32_MIN", "I32_MAX",
]

#: Version of this protocol; the ``version`` byte of every frame and ``protocol`` in identify.
PROTOCOL_VERSION = 1
#: Minor version (``protocol_minor`` in identify), 1 since firmware 1.2.0: the rule rounds
#: ``c * gain / 2^48`` to the nearest state unit, halves away from zero (minor 0, whose
#: identify reply ends before the field, takes the floor).
PROTOCOL_MINOR = 1
#: Header bytes: version, dst, src, seq, cmd.
HEADER_SIZE = 5
#: CRC bytes after the payload (big-endian CRC-16/CCITT-FALSE).
CRC_SIZE = 2
#: Maximum payload bytes.
MAX_PAYLOAD = 64
#: Smallest decoded frame (header + CRC, no payload), bytes.
MIN_FRAME_SIZE = HEADER_SIZE + CRC_SIZE
#: Largest decoded frame (header + 64-byte payload + CRC), bytes.
MAX_FRAME_SIZE = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
#: Bit set in the ``cmd`` byte of a reply.
REPLY_BIT = 0x80

#: CRC-16/CCITT-FALSE parameters (the ``crc`` package names this configuration IBM_3740).
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
CRC_XOROUT = 0x0000

ADDR_HOST = 0
ADDR_BOARD_MIN = 1
ADDR_BOARD_MAX = 247
ADDR_BROADCAST = 255
ADDRESSES = {"host": ADDR_HOST, "board_min": ADDR_BOARD_MIN, "board_max": ADDR_BOARD_MAX,
             "broadcast": ADDR_BROADCAST}

#: Slot time of slotted broadcast replies at 115200 baud (s); board ``addr`` answers in
#: slot ``addr`` after the end of the request.
SLOT_TIME_S = 0.002


class Kind(IntEnum):
    """Board kinds (the ``kind`` byte of the identify reply)."""

    DIGIPOT = 1
    MOSFET = 2


KINDS = {"digipot": 1, "mosfet": 2}


class Rule(IntEnum):
    """Rule codes of ``configure_rule``."""

    NONE = 0
    TAP = 1
    GATE_CHARGING = 2
    CONTINUOUS = 3


RULES = {"none": 0, "tap": 1, "gate_charging": 2, "continuous": 3}
#: Which kinds of board may run each rule.
RULE_KINDS = {
    Rule.NONE: frozenset({Kind.DIGIPOT, Kind.MOSFET}),
    Rule.TAP: frozenset({Kind.DIGIPOT}),
    Rule.GATE_CHARGING: frozenset({Kind.MOSFET}),
    Rule.CONTINUOUS: frozenset({Kind.DIGIPOT, Kind.MOSFET}),
}

#: ``gain`` is in state units per uV^2 times 2^GAIN_SHIFT.
GAIN_SHIFT = 48
#: The contrast is clipped to +-2^38 uV^2.
CONTRAST_LIMIT_UV2 = 1 << 38
#: A gain must be below 2^40 (since firmware 1.1.0; 1.0.x boards took gains below 2^24
#: only). ``contrast * gain`` may then need 79 bits: 64-bit firmware forms the quotient by
#: :func:`gain_delta_int64`.
GAIN_LIMIT = 1 << 40
#: The firmware version this reference implements (identify's fw_major.fw_minor.fw_patch):
#: 1.2.0, the first of protocol 1.1 (1.1.0 was the first to take gains of 2^24 and above).
FIRMWARE_VERSION = (1, 2, 0)
#: The first firmware version of each protocol minor version.
_MINOR_SINCE = ((1, (1, 2, 0)),)


def minor_for_firmware(fw_version: Sequence[int]) -> int:
    """The protocol minor version a board of firmware ``fw_version`` (major, minor, patch)
    speaks: 1 from 1.2.0 on, 0 before."""
    fw = tuple(int(v) for v in fw_version)
    minor = 0
    for m, since in _MINOR_SINCE:
        if fw >= since:
            minor = m
    return minor

#: ``probability`` that means "always" (an update happens when ``(r >> 16) < probability``).
PROBABILITY_ONE = 65536

I32_MIN = -(1 << 31)
I32_MAX = (1 << 31) - 1

#: Default state limits per kind: taps 0..99; gate 1,000,000 .. 5,500,000 uV.
DEFAULT_LIMITS = {Kind.DIGIPOT: (0, 99), Kind.MOSFET: (1_000_000, 5_500_000)}


class Error(IntEnum):
    """Error codes: receive errors (1..5, frames dropped) and reply statuses (0, 6..11)."""

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


ERRORS = {e.name.lower(): int(e) for e in Error}

BROADCAST_SLOTTED = "slotted"
BROADCAST_SILENT = "silent"
BROADCAST_REFUSED = "refused"
