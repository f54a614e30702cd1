"""Command table and payload packing of the edge-bus protocol, version 2.

``firmware/protocol/PROTOCOL.md``, "Commands" (codes, request and reply fields, broadcast
handling, quiet times) and "Receiving" (a reply with a status other than ``ok`` is the
status byte alone). :func:`pack_request`, :func:`unpack_request`, :func:`pack_reply` and
:func:`unpack_reply` convert between field dicts and payload bytes (little-endian: u8, u16,
u32, i32, i64, ``Ns`` raw bytes, ``u16[n]`` arrays as lists); :func:`request_frame` and
:func:`reply_frame` wrap them in a :class:`~instruments.bus.framing.Frame`;
:func:`quiet_ms` is how long the host keeps the bus quiet after a command that blocks.

Units: as the field names say (``_uv`` uV, ``_uv2`` uV^2, ``_ms`` ms, ``_mdegc``
milli-degrees Celsius); ``state`` and ``residue`` taps or gate uV.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Sequence

from .framing import Frame
from .constants import (
    ADDR_HOST, BROADCAST_HASHED, BROADCAST_REFUSED, BROADCAST_SELECTED, BROADCAST_SILENT,
    BROADCAST_SLOTTED, ACTUATOR_CAL_MAX_MS, BLOCK_CHECK_MAX_MS, BOOT_MAX_MS, IMAGE_CRC_MAX_MS, IMAGE_MAX_BYTES, PAGE_PROGRAM_MAX_MS, PROTOCOL_VERSION,
    REPLY_BIT, SECTOR_BYTES, SECTOR_ERASE_MAX_MS, STORE_WRITE_MS, Error, ResetMode,
)

__all__ = [
    "FieldSpec", "Quiet", "CommandSpec", "COMMANDS", "COMMANDS_BY_CODE", "Cmd", "PayloadError",
    "command_spec", "pack_request", "unpack_request", "pack_reply", "unpack_reply",
    "request_frame", "reply_frame", "quiet_ms",
]

_SCALAR = {"u8": "B", "u16": "H", "u32": "I", "i32": "i", "i64": "q"}
_ARRAY = re.compile(r"^(u8|u16|u32|i32|i64)\[(\d+)\]$")
_BYTES = re.compile(r"^(\d+)s$")


@dataclass(frozen=True)
class FieldSpec:
    """One payload field: ``name`` and ``type`` (u8, u16, u32, i32, i64, ``Ns`` bytes,
    ``T[n]`` an array of n scalars)."""

    name: str
    type: str

    def __post_init__(self) -> None:
        if not (self.type in _SCALAR or _ARRAY.match(self.type) or _BYTES.match(self.type)):
            raise ValueError(f"field {self.name}: unknown type {self.type!r}")

    @property
    def code(self) -> str:
        """The ``struct`` format of the field."""
        if self.type in _SCALAR:
            return _SCALAR[self.type]
        m = _ARRAY.match(self.type)
        return f"{m.group(2)}{_SCALAR[m.group(1)]}" if m else self.type

    @property
    def count(self) -> int:
        """Array length (0 for a scalar or bytes)."""
        m = _ARRAY.match(self.type)
        return int(m.group(2)) if m else 0

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.code)

    @property
    def text(self) -> str:
        return f"{self.name}:{self.type}"

    @classmethod
    def parse(cls, text: str) -> "FieldSpec":
        name, typ = text.split(":")
        return cls(name, typ)


@dataclass(frozen=True)
class Quiet:
    """How long a command may keep a board from listening (ms): ``ms`` always, plus
    ``ms_per_sector_of_size`` per 4096-byte sector of the request's ``size`` (fw_begin), or
    ``ms_by_mode`` by the request's ``mode`` (reset)."""

    ms: int = 0
    ms_per_sector_of_size: int = 0
    ms_by_mode: tuple[tuple[str, int], ...] = ()
    basis: str = ""

    def json(self) -> dict:
        out: dict = {}
        if self.ms_by_mode:
            out["ms_by_mode"] = dict(self.ms_by_mode)
        elif self.ms_per_sector_of_size:
            out["ms_per_sector_of_size"] = self.ms_per_sector_of_size
        else:
            out["ms"] = self.ms
        if self.basis:
            out["basis"] = self.basis
        return out


@dataclass(frozen=True)
class CommandSpec:
    """One command: code, request and reply fields (``reply`` begins with ``status:u8``),
    broadcast handling and quiet time."""

    name: str
    code: int
    request: tuple[FieldSpec, ...]
    reply: tuple[FieldSpec, ...]
    broadcast: str
    quiet: Quiet

    @property
    def request_size(self) -> int:
        return sum(f.size for f in self.request)

    @property
    def reply_size(self) -> int:
        """Reply payload bytes with status ``ok`` (the longest reply of the command)."""
        return sum(f.size for f in self.reply)

    @property
    def blocks(self) -> bool:
        """True when the command may keep the board from listening (a quiet time)."""
        q = self.quiet
        return bool(q.ms or q.ms_per_sector_of_size or q.ms_by_mode)

    def json(self) -> dict:
        out = {"code": self.code, "request": [f.text for f in self.request],
               "reply": [f.text for f in self.reply], "broadcast": self.broadcast,
               "quiet": self.quiet.json()}
        if self.broadcast in (BROADCAST_SLOTTED, BROADCAST_HASHED):
            out["slot_reply_payload"] = self.reply_size
        return out


_STORE = Quiet(STORE_WRITE_MS, basis="one store record: sector erase (tSE max 400 ms) + page program (tPP max 3 ms)")


def _cmd(name: str, code: int, request: Sequence[str], reply: Sequence[str], broadcast: str,
         quiet: Quiet = Quiet()) -> CommandSpec:
    return CommandSpec(name, code, tuple(map(FieldSpec.parse, request)),
                       tuple(map(FieldSpec.parse, ("status:u8", *reply))), broadcast, quiet)


_IDENTITY = ("uid:8s", "fw_major:u8", "fw_minor:u8", "fw_patch:u8", "kind:u8", "protocol:u8",
             "protocol_minor:u8", "address:u8", "flags:u8")
#: An actuator calibration (protocol 2.1): ``source`` 0 nominal (the board's part values),
#: 1 measured by ``calibrate_actuator``; five points of charge and discharge slope; the leak.
_GATE_CAL = ("source:u8", "charge_gate_uv:i32[5]", "charge_nv_per_us:i32[5]", "discharge_gate_uv:i32[5]",
             "discharge_nv_per_us:i32[5]", "leak_uv_per_s:i32")
_OFFSETS = ("offset_free_a_uv:i32", "offset_free_b_uv:i32", "offset_clamped_a_uv:i32",
            "offset_clamped_b_uv:i32")

#: The command table, by name (the order of protocol-2.json).
COMMANDS: dict[str, CommandSpec] = {c.name: c for c in (
    _cmd("identify", 1, [], _IDENTITY, BROADCAST_SLOTTED),
    _cmd("read_state", 2, [], ["state:i32", "residue:i32", "generation:u32"], BROADCAST_SLOTTED),
    _cmd("set_state", 3, ["state:i32"], ["state:i32", "residue:i32"], BROADCAST_SILENT),
    _cmd("configure_rule", 4, ["rule:u8", "probability:u32", "gain:i64", "dead_band_uv2:i64"], [],
         BROADCAST_SILENT),
    _cmd("sample_drops", 5, [], ["dv_free_uv:i32", "dv_clamped_uv:i32"], BROADCAST_REFUSED),
    _cmd("learn", 6, [], ["state:i32", "residue:i32", "updated:u8"], BROADCAST_SILENT),
    _cmd("read_telemetry", 7, [], ["uptime_ms:u32", "frames_ok:u32", "frames_bad:u32", "learns:u32",
                                   "updates:u32", "glitches:u32", "last_error:u8", "reset_cause:u8",
                                   "flags:u8", "supply_uv:u32", "temperature_mdegc:i32",
                                   "generation:u32"], BROADCAST_SLOTTED),
    _cmd("store_calibration", 8, _OFFSETS, [], BROADCAST_REFUSED, _STORE),
    _cmd("read_calibration", 9, [], _OFFSETS, BROADCAST_REFUSED),
    _cmd("reset", 10, ["mode:u8"], [], BROADCAST_SILENT,
         Quiet(ms_by_mode=(("restart", BOOT_MAX_MS), ("factory", 2 * SECTOR_ERASE_MAX_MS + BOOT_MAX_MS)),
               basis="start-up (1000 ms); factory also erases the state store's two sectors (tSE max 400 ms each)")),
    _cmd("store_state", 11, [], ["generation:u32"], BROADCAST_SILENT, _STORE),
    _cmd("read_actuator", 12, [], ["state_min:i32", "state_max:i32", "resolution:i32",
                                   "initial_state:i32"], BROADCAST_REFUSED),
    _cmd("discover", 13, ["salt:u32", "slots:u8", "only_unassigned:u8"], _IDENTITY, BROADCAST_HASHED),
    _cmd("assign_address", 14, ["uid:8s", "address:u8"], [], BROADCAST_SELECTED, _STORE),
    _cmd("fw_begin", 15, ["size:u32", "image_crc32:u32", "fw_major:u8", "fw_minor:u8", "fw_patch:u8"],
         ["blocks:u16"], BROADCAST_SILENT,
         Quiet(ms_per_sector_of_size=SECTOR_ERASE_MAX_MS,
               basis="the inactive slot erased sector by sector (tSE max 400 ms per 4096 bytes of size)")),
    _cmd("fw_block", 16, ["image_crc32:u32", "block:u16", "block_crc32:u32", "data:128s"], [],
         BROADCAST_SILENT, Quiet(BLOCK_CHECK_MAX_MS + PAGE_PROGRAM_MAX_MS,
                                 basis="the block's checks (1 ms) and one page program (tPP max 3 ms)")),
    _cmd("fw_status", 17, [], ["phase:u8", "fw_major:u8", "fw_minor:u8", "fw_patch:u8", "blocks:u16",
                               "missing:u16", "first_missing:u16[8]"], BROADCAST_SLOTTED),
    _cmd("fw_verify", 18, [], ["phase:u8"], BROADCAST_SILENT,
         Quiet(IMAGE_CRC_MAX_MS, basis="CRC-32 over the largest image (1000 ms)")),
    _cmd("fw_swap", 19, [], [], BROADCAST_SILENT,
         Quiet(STORE_WRITE_MS + 2 * BOOT_MAX_MS,
               basis="boot record written (403 ms), start-up of the new image and, if it fails, of the old (1000 ms each)")),
    _cmd("calibrate_actuator", 20, [], _GATE_CAL, BROADCAST_SILENT,
         Quiet(ACTUATOR_CAL_MAX_MS + STORE_WRITE_MS,
               basis="the measurement (3000 ms) and its record stored (403 ms)")),
    _cmd("read_actuator_calibration", 21, [], _GATE_CAL, BROADCAST_REFUSED),
)}
COMMANDS_BY_CODE: dict[int, CommandSpec] = {c.code: c for c in COMMANDS.values()}

Cmd = IntEnum("Cmd", {name.upper(): c.code for name, c in COMMANDS.items()})
Cmd.__doc__ = "Command codes (a reply's ``cmd`` is ``code | REPLY_BIT``)."


def command_spec(cmd: str | int) -> CommandSpec:
    """The :class:`CommandSpec` of a command given by name or code (reply bit ignored)."""
    if isinstance(cmd, str):
        return COMMANDS[cmd]
    return COMMANDS_BY_CODE[int(cmd) & ~REPLY_BIT]


def quiet_ms(cmd: str | int, **request) -> int:
    """How long the host sends nothing after ``cmd`` with these request fields (ms): after a
    broadcast, from its end of frame; after a unicast, the longest wait for the reply
    beyond the turnaround. A mode the board does not know gives the longest of them and a
    size is taken up to the largest image: the host waits as long as any board might."""
    q = command_spec(cmd).quiet
    if q.ms_by_mode:
        by_mode = dict(q.ms_by_mode)
        mode = request["mode"]
        return by_mode[ResetMode(mode).name.lower()] if mode in iter(ResetMode) else max(by_mode.values())
    if q.ms_per_sector_of_size:
        size = min(int(request["size"]), IMAGE_MAX_BYTES)
        return q.ms + q.ms_per_sector_of_size * -(-size // SECTOR_BYTES)
    return q.ms


class PayloadError(ValueError):
    """A payload does not match the command's field list (length or field values)."""


def _pack(fields: tuple[FieldSpec, ...], values: dict, what: str) -> bytes:
    names = [f.name for f in fields]
    missing = [n for n in names if n not in values]
    extra = [n for n in values if n not in names]
    if missing or extra:
        raise PayloadError(f"{what}: missing fields {missing}, unexpected {extra}")
    out = bytearray()
    for f in fields:
        v = values[f.name]
        try:
            if f.count:
                v = list(v)
                if len(v) != f.count:
                    raise PayloadError(f"{what}: {f.name} needs {f.count} values, got {len(v)}")
                out += struct.pack("<" + f.code, *v)
            elif f.type.endswith("s"):
                v = bytes(v)
                if len(v) != f.size:
                    raise PayloadError(f"{what}: {f.name} must be {f.size} bytes, got {len(v)}")
                out += v
            else:
                out += struct.pack("<" + f.code, v)
        except struct.error as exc:
            raise PayloadError(f"{what}: {f.name}: {exc}") from None
    return bytes(out)


def _unpack(fields: tuple[FieldSpec, ...], payload: bytes, what: str) -> dict:
    size = sum(f.size for f in fields)
    if len(payload) != size:
        raise PayloadError(f"{what}: payload of {len(payload)} bytes, expected {size}")
    out, at = {}, 0
    for f in fields:
        vals = struct.unpack_from("<" + f.code, payload, at)
        out[f.name] = list(vals) if f.count else vals[0]
        at += f.size
    return out


def pack_request(cmd: str | int, **fields) -> bytes:
    """Request payload of ``cmd`` (name or code) from its fields (all required)."""
    spec = command_spec(cmd)
    return _pack(spec.request, fields, f"{spec.name} request")


def unpack_request(cmd: str | int, payload: bytes) -> dict:
    """Fields of a request payload; :class:`PayloadError` if its length is wrong."""
    spec = command_spec(cmd)
    return _unpack(spec.request, bytes(payload), f"{spec.name} request")


def pack_reply(cmd: str | int, status: int = Error.OK, **fields) -> bytes:
    """Reply payload of ``cmd``: with status ``ok`` every field, else the status byte alone."""
    spec = command_spec(cmd)
    if status != Error.OK:
        if fields:
            raise PayloadError(f"{spec.name} reply with status {status} carries no fields")
        return bytes((int(status),))
    return _pack(spec.reply, {"status": 0, **fields}, f"{spec.name} reply")


def unpack_reply(cmd: str | int, payload: bytes) -> dict:
    """Fields of a reply payload, ``status`` included (only ``status`` when it is not ok)."""
    spec = command_spec(cmd)
    payload = bytes(payload)
    if not payload:
        raise PayloadError(f"{spec.name} reply: empty payload, no status")
    if payload[0] != Error.OK:
        if len(payload) != 1:
            raise PayloadError(f"{spec.name} reply: status {payload[0]} with {len(payload) - 1} extra bytes")
        return {"status": payload[0]}
    return _unpack(spec.reply, payload, f"{spec.name} reply")


def request_frame(dst: int, seq: int, cmd: str | int, *, src: int = ADDR_HOST, **fields) -> Frame:
    """A protocol-2 request :class:`Frame` from the host to ``dst``."""
    spec = command_spec(cmd)
    return Frame(PROTOCOL_VERSION, dst, src, seq, spec.code, pack_request(spec.name, **fields))


def reply_frame(src: int, seq: int, cmd: str | int, status: int = Error.OK, *,
                dst: int = ADDR_HOST, **fields) -> Frame:
    """A protocol-2 reply :class:`Frame` from board ``src`` to the host."""
    spec = command_spec(cmd)
    return Frame(PROTOCOL_VERSION, dst, src, seq, spec.code | REPLY_BIT,
                 pack_reply(spec.name, status, **fields))
