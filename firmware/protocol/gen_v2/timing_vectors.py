"""``vectors/v2/timing.json``: every reply time a board or host computes, per baud rate.

``{"bauds": [{baud, char_us, turnaround_us, v1_probe_timeout_us, slotted: {command:
{reply_payload, slot_us, reply_start_us: {address: us}, listen_us}}, discover_listen_us:
{slots: us}}], "quiet_ms": [{command, request, quiet_ms}], "discover": [{uid_hex, salt,
hash, slots: {n: slot}}], "fmix32": [[in, out]]}``.
"""

from __future__ import annotations

from instruments.bus import timing
from instruments.bus import v2

from .bus import UID_A, UID_B, UID_C, hexs

BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1_000_000)
_SLOTTED = [c.name for c in v2.COMMANDS.values() if c.broadcast in (v2.BROADCAST_SLOTTED, v2.BROADCAST_HASHED)]


def _baud(baud: int) -> dict:
    slotted = {}
    for name in _SLOTTED:
        slotted[name] = {"reply_payload": v2.slot_reply_payload(name), "slot_us": v2.slot_us(name, baud),
                         "reply_start_us": {str(a): v2.reply_start_us(name, a, baud) for a in (1, 2, 17, 100, 247)},
                         "listen_us": v2.listen_us(name, baud)}
    return {"baud": baud, "char_us": timing.char_us(baud), "turnaround_us": timing.turnaround_us(baud),
            "v1_probe_timeout_us": v2.v1_probe_timeout_us(baud), "slotted": slotted,
            "discover_listen_us": {str(n): v2.listen_us("discover", baud, n) for n in (1, 8, 32, 64, 247)}}


def _quiet() -> list[dict]:
    cases = [("store_calibration", {}), ("store_state", {}), ("assign_address", {}),
             ("reset", {"mode": 0}), ("reset", {"mode": 1}), ("fw_begin", {"size": 1}),
             ("fw_begin", {"size": 4096}), ("fw_begin", {"size": 4097}), ("fw_begin", {"size": 983_040}),
             ("fw_block", {}), ("fw_verify", {}), ("fw_swap", {}), ("learn", {}), ("identify", {})]
    return [{"command": c, "request": r, "quiet_ms": v2.quiet_ms(c, **r)} for c, r in cases]


def _discover() -> list[dict]:
    uids = [UID_A, UID_B, UID_C, bytes(8), b"\xff" * 8, bytes.fromhex("0100000000000000")]
    out = []
    for uid in uids:
        for salt in (0, 1, 0xDEADBEEF, 0xFFFFFFFF):
            out.append({"uid_hex": hexs(uid), "salt": salt, "hash": v2.discover_hash(uid, salt),
                        "slots": {str(n): v2.discover_slot(uid, salt, n) for n in (1, 2, 7, 64, 247)}})
    return out


def timing_vectors() -> dict:
    fmix = [0, 1, 2, 0x80000000, 0xFFFFFFFF, 0x9E3779B9, 0x12345678]
    return {"bauds": [_baud(b) for b in BAUDS], "quiet_ms": _quiet(), "discover": _discover(),
            "fmix32": [[x, v2.fmix32(x)] for x in fmix]}
