"""When a protocol-2 board answers: its slot for each slotted command, and discover's hash.

``firmware/protocol/PROTOCOL.md``, "Timing" and "Finding boards". The formulas are
:mod:`instruments.bus.timing`'s, which is normative: every reply starts no earlier than
:func:`~instruments.bus.timing.turnaround_us` after the request's end of frame; a slotted
reply in slot ``n`` starts :func:`~instruments.bus.timing.reply_start_us` after it, the slot
sized from the command's own reply (its payload with status ``ok``, the longest it sends).
This module only names, per command, the reply length those functions take, and gives
``discover``'s slot: a board's uid and the host's salt hashed with MurmurHash3's 32-bit
finaliser (fmix32, Austin Appleby, public domain), which needs only 32-bit multiplies and
shifts on the boards. CRC-32 is not used for it: it is linear, so two uids that share a
slot under one salt would share it under every salt when ``slots`` is a power of two.

Units: times integer us, baud rates bits per second.
"""

from __future__ import annotations

from .. import timing
from .constants import ADDR_BOARD_MAX, BROADCAST_HASHED, BROADCAST_SLOTTED, DISCOVER_SLOTS_MAX
from .payloads import command_spec

__all__ = [
    "fmix32", "discover_hash", "discover_slot", "slot_reply_payload", "slot_us", "reply_start_us",
    "listen_us", "unicast_reply_window_us", "v1_probe_timeout_us", "REPLY_LATENCY_MAX_US",
]

_M32 = 0xFFFFFFFF
#: Latest start of a unicast reply after the turnaround (a requirement on the firmware) (us).
REPLY_LATENCY_MAX_US = 2000


def fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finaliser: a bijection of 32-bit integers that mixes every bit."""
    h &= _M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


def discover_hash(uid: bytes, salt: int) -> int:
    """``fmix32(fmix32(fmix32(salt) ^ w0) ^ w1)``, ``w0``, ``w1`` the uid's two 32-bit
    little-endian words (bytes 0..3 and 4..7). The salt is mixed first: were it xored into
    ``w0`` directly, two uids sharing a slot under salt ``s`` would share it again under
    ``s ^ w0 ^ w0'``, a salt a host counting up soon reaches."""
    uid = bytes(uid)
    if len(uid) != 8:
        raise ValueError(f"uid must be 8 bytes, got {len(uid)}")
    w0, w1 = int.from_bytes(uid[:4], "little"), int.from_bytes(uid[4:], "little")
    return fmix32(fmix32(fmix32(int(salt)) ^ w0) ^ w1)


def discover_slot(uid: bytes, salt: int, slots: int) -> int:
    """The slot 1..``slots`` a board answers ``discover`` in: ``1 + hash % slots``."""
    if not 1 <= slots <= DISCOVER_SLOTS_MAX:
        raise ValueError(f"slots must be 1..{DISCOVER_SLOTS_MAX}, got {slots}")
    return 1 + discover_hash(uid, salt) % slots


def slot_reply_payload(cmd: str | int) -> int:
    """The reply payload a slotted command's slot is sized for (bytes)."""
    spec = command_spec(cmd)
    if spec.broadcast not in (BROADCAST_SLOTTED, BROADCAST_HASHED):
        raise ValueError(f"{spec.name} is not answered in slots")
    return spec.reply_size


def slot_us(cmd: str | int, baud: int) -> int:
    """One slot of ``cmd``'s broadcast at ``baud`` (us)."""
    return timing.slot_us(baud, slot_reply_payload(cmd))


def reply_start_us(cmd: str | int, slot: int, baud: int) -> int:
    """When the reply in ``slot`` (an address, or discover's slot) starts after the
    request's end of frame (us)."""
    return timing.reply_start_us(slot, baud, slot_reply_payload(cmd))


def listen_us(cmd: str | int, baud: int, slots: int = ADDR_BOARD_MAX) -> int:
    """How long the host listens after a slotted broadcast: the last slot's start with its
    drift, and the slot itself (us). ``slots`` is discover's; every other slotted command
    uses all 247 addresses."""
    last = timing.v2_reply_window_us(slots, baud, slot_reply_payload(cmd)).latest_us
    return last + slot_us(cmd, baud)


def unicast_reply_window_us(cmd: str | int, baud: int, quiet_ms: int = 0) -> timing.ReplyWindow:
    """When a unicast reply starts after the request's end of frame (us): after the
    turnaround, and within :data:`REPLY_LATENCY_MAX_US` of it plus the command's quiet time
    (the board answers a command that blocks once it is done)."""
    t = timing.turnaround_us(baud)
    return timing.ReplyWindow(t, t + REPLY_LATENCY_MAX_US + 1000 * int(quiet_ms))


def v1_probe_timeout_us(baud: int) -> int:
    """How long a protocol-2 host waits for the reply to a unicast version-1 identify probe:
    protocol 1's loop latency, the 15-byte reply on the wire and the driver-enable hold (us)."""
    return (timing.V1_LOOP_LATENCY_US + timing.wire_bytes(15) * timing.char_us(baud)
            + timing.DE_HOLD_US + timing.EOF_JITTER_US)
