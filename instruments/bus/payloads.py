"""Command table and payload packing of the edge-bus protocol.

``firmware/protocol/PROTOCOL-1.md``, "Commands" (the table: codes, request and reply fields,
broadcast handling), "Versioning" (reply fields a minor version added,
:data:`MINOR_FIELDS`) and "Receiving" (a reply with a status other than ``ok`` is the status
byte alone). :func:`pack_request`, :func:`unpack_request`, :func:`pack_reply` and
:func:`unpack_reply` convert between field dicts and payload bytes (fields little-endian:
u8, u32, i32, i64, 8s); :func:`request_frame` and :func:`reply_frame` wrap them in a
:class:`~instruments.bus.framing.Frame`. :func:`protocol_dict` gives every constant in the
layout of ``firmware/protocol/protocol.json``.

Units: as the field names say (``_uv`` integer uV, ``_uv2`` uV^2, ``_ms`` ms); ``gain`` in
state units per uV^2 times 2^48; ``state`` taps or gate uV.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Sequence

from .constants import (
    ADDR_HOST, ADDRESSES, BROADCAST_REFUSED, BROADCAST_SILENT, BROADCAST_SLOTTED,
    CONTRAST_LIMIT_UV2, CRC_INIT, CRC_POLY, CRC_XOROUT, ERRORS, GAIN_LIMIT, GAIN_SHIFT, KINDS,
    MAX_PAYLOAD, PROBABILITY_ONE, PROTOCOL_MINOR, PROTOCOL_VERSION, REPLY_BIT, RULES, Error,
)
from .framing import Frame

__all__ = [
    "MINOR_FIELDS", "COMMANDS", "Cmd", "CommandSpec", "FieldSpec", "COMMANDS_BY_CODE",
    "protocol_dict", "PayloadError", "pack_request", "unpack_request", "pack_reply",
    "unpack_reply", "request_frame", "reply_frame", "command_spec",
]

_TYPE_CODES = {"u8": "B", "u32": "I", "i32": "i", "i64": "q", "8s": "8s"}


@dataclass(frozen=True)
class FieldSpec:
    """One payload field: ``name`` and ``type`` (u8, u32, i32, i64 or 8s)."""

    name: str
    type: str

    @property
    def code(self) -> str:
        """The ``struct`` format code of the field."""
        return _TYPE_CODES[self.type]

    @property
    def text(self) -> str:
        """The field as written in protocol.json, ``name:type``."""
        return f"{self.name}:{self.type}"

    @classmethod
    def parse(cls, text: str) -> "FieldSpec":
        name, typ = text.split(":")
        if typ not in _TYPE_CODES:
            raise ValueError(f"unknown field type {typ!r}")
        return cls(name, typ)


@dataclass(frozen=True)
class CommandSpec:
    """One command of the table: code, request and reply fields, broadcast handling.

    ``reply`` includes the leading ``status:u8``.
    """

    name: str
    code: int
    request: tuple[FieldSpec, ...]
    reply: tuple[FieldSpec, ...]
    broadcast: str

    @property
    def request_format(self) -> str:
        return "<" + "".join(f.code for f in self.request)

    @property
    def reply_format(self) -> str:
        return "<" + "".join(f.code for f in self.reply)

    @property
    def request_size(self) -> int:
        """Request payload bytes."""
        return struct.calcsize(self.request_format)

    @property
    def reply_size(self) -> int:
        """Reply payload bytes with status ``ok`` (status byte included)."""
        return struct.calcsize(self.reply_format)

    def reply_fields(self, minor: int) -> tuple[FieldSpec, ...]:
        """The reply's fields as a board of protocol minor version ``minor`` sends them
        (without the fields later minor versions added, see :data:`MINOR_FIELDS`)."""
        added = MINOR_FIELDS.get(self.name, {})
        return tuple(f for f in self.reply if added.get(f.name, 0) <= minor)


def _cmd(name: str, code: int, request: Sequence[str], reply: Sequence[str], broadcast: str) -> CommandSpec:
    return CommandSpec(name, code, tuple(FieldSpec.parse(t) for t in request),
                       tuple(FieldSpec.parse(t) for t in reply), broadcast)


#: The command table, by name (the order of protocol.json).
COMMANDS: dict[str, CommandSpec] = {c.name: c for c in (
    _cmd("identify", 1, [], ["status:u8", "uid:8s", "fw_major:u8", "fw_minor:u8", "fw_patch:u8",
                             "kind:u8", "protocol:u8", "protocol_minor:u8"], BROADCAST_SLOTTED),
    _cmd("read_state", 2, [], ["status:u8", "state:i32"], BROADCAST_SLOTTED),
    _cmd("set_state", 3, ["state:i32"], ["status:u8", "state:i32"], BROADCAST_SILENT),
    _cmd("configure_rule", 4, ["rule:u8", "probability:u32", "gain:i64", "dead_band_uv2:i64"],
         ["status:u8"], BROADCAST_SILENT),
    _cmd("sample_drops", 5, [], ["status:u8", "dv_free_uv:i32", "dv_clamped_uv:i32"],
         BROADCAST_REFUSED),
    _cmd("learn", 6, [], ["status:u8", "state:i32", "updated:u8"], BROADCAST_SILENT),
    _cmd("read_telemetry", 7, [], ["status:u8", "uptime_ms:u32", "frames_ok:u32", "frames_bad:u32",
                                   "updates:u32", "last_error:u8"], BROADCAST_REFUSED),
    _cmd("store_calibration", 8, ["offset_free_a_uv:i32", "offset_free_b_uv:i32",
                                  "offset_clamped_a_uv:i32", "offset_clamped_b_uv:i32"],
         ["status:u8"], BROADCAST_REFUSED),
    _cmd("read_calibration", 9, [], ["status:u8", "offset_free_a_uv:i32", "offset_free_b_uv:i32",
                                     "offset_clamped_a_uv:i32", "offset_clamped_b_uv:i32"],
         BROADCAST_REFUSED),
    _cmd("reset", 10, [], ["status:u8"], BROADCAST_SILENT),
)}
COMMANDS_BY_CODE: dict[int, CommandSpec] = {c.code: c for c in COMMANDS.values()}
#: Reply fields added by a minor version, by command: ``{command: {field: minor}}``. They
#: come last; a board of an older minor version sends the reply without them (and
#: :func:`unpack_reply` gives them as 0).
MINOR_FIELDS: dict[str, dict[str, int]] = {"identify": {"protocol_minor": 1}}


class Cmd(IntEnum):
    """Command codes (a reply's ``cmd`` is ``code | REPLY_BIT``)."""

    IDENTIFY = 1
    READ_STATE = 2
    SET_STATE = 3
    CONFIGURE_RULE = 4
    SAMPLE_DROPS = 5
    LEARN = 6
    READ_TELEMETRY = 7
    STORE_CALIBRATION = 8
    READ_CALIBRATION = 9
    RESET = 10


def protocol_dict() -> dict:
    """The protocol's constants in the layout of ``protocol.json`` (for comparison)."""
    return {
        "protocol_version": PROTOCOL_VERSION,
        "protocol_minor": PROTOCOL_MINOR,
        "frame": {
            "header": ["version:u8", "dst:u8", "src:u8", "seq:u8", "cmd:u8"],
            "max_payload": MAX_PAYLOAD,
            "crc": {"name": "CRC-16/CCITT-FALSE", "poly": CRC_POLY, "init": CRC_INIT,
                    "refin": False, "refout": False, "xorout": CRC_XOROUT, "byteorder": "big"},
            "encoding": "COBS, then one 0x00 delimiter; the host also sends one 0x00 before each frame",
            "reply_bit": REPLY_BIT,
            "endianness": "little (payload fields)",
        },
        "addresses": dict(ADDRESSES),
        "board_kinds": dict(KINDS),
        "rules": dict(RULES),
        "gain_shift": GAIN_SHIFT,
        "contrast_limit_uv2": CONTRAST_LIMIT_UV2,
        "gain_limit": GAIN_LIMIT,
        "probability_one": PROBABILITY_ONE,
        "minor_fields": {c: dict(f) for c, f in MINOR_FIELDS.items()},
        "commands": {
            c.name: {"code": c.code, "request": [f.text for f in c.request],
                     "reply": [f.text for f in c.reply], "broadcast": c.broadcast}
            for c in COMMANDS.values()
        },
        "errors": dict(ERRORS),
    }


def command_spec(cmd: str | int) -> CommandSpec:
    """The :class:`CommandSpec` of a command given by name or code (reply bit ignored)."""
    if isinstance(cmd, str):
        return COMMANDS[cmd]
    return COMMANDS_BY_CODE[int(cmd) & ~REPLY_BIT]


class PayloadError(ValueError):
    """A payload does not match the command's field list (length or field values)."""


def _pack(fields: tuple[FieldSpec, ...], fmt: str, values: dict, what: str) -> bytes:
    names = [f.name for f in fields]
    missing = [n for n in names if n not in values]
    extra = [n for n in values if n not in names]
    if missing or extra:
        raise PayloadError(f"{what}: missing fields {missing}, unexpected {extra}")
    args = []
    for f in fields:
        v = values[f.name]
        if f.type == "8s":
            v = bytes(v)
            if len(v) != 8:
                raise PayloadError(f"{what}: {f.name} must be 8 bytes, got {len(v)}")
        args.append(v)
    try:
        return struct.pack(fmt, *args)
    except struct.error as exc:
        raise PayloadError(f"{what}: {exc}") from None


def _unpack(fields: tuple[FieldSpec, ...], fmt: str, payload: bytes, what: str) -> dict:
    size = struct.calcsize(fmt)
    if len(payload) != size:
        raise PayloadError(f"{what}: payload of {len(payload)} bytes, expected {size}")
    return dict(zip((f.name for f in fields), struct.unpack(fmt, payload)))


def pack_request(cmd: str | int, **fields) -> bytes:
    """Request payload of ``cmd`` (name or code) from its fields (all required)."""
    spec = command_spec(cmd)
    return _pack(spec.request, spec.request_format, fields, f"{spec.name} request")


def unpack_request(cmd: str | int, payload: bytes) -> dict:
    """Fields of a request payload; :class:`PayloadError` if its length is wrong."""
    spec = command_spec(cmd)
    return _unpack(spec.request, spec.request_format, bytes(payload), f"{spec.name} request")


def _format(fields: tuple[FieldSpec, ...]) -> str:
    return "<" + "".join(f.code for f in fields)


def pack_reply(cmd: str | int, status: int = Error.OK, *, minor: int = PROTOCOL_MINOR, **fields) -> bytes:
    """Reply payload of ``cmd``: with status ``ok`` every field, else the status byte alone.

    ``minor`` is the protocol minor version of the board that answers: the fields later
    minor versions added (:data:`MINOR_FIELDS`) are left out, given or not.
    """
    spec = command_spec(cmd)
    if status != Error.OK:
        if fields:
            raise PayloadError(f"{spec.name} reply with status {status} carries no fields")
        return bytes((int(status),))
    layout = spec.reply_fields(minor)
    for name, since in MINOR_FIELDS.get(spec.name, {}).items():
        if since > minor:
            fields.pop(name, None)
    return _pack(layout, _format(layout), {"status": 0, **fields}, f"{spec.name} reply")


def unpack_reply(cmd: str | int, payload: bytes) -> dict:
    """Fields of a reply payload, ``status`` included (only ``status`` when it is not ok).

    A reply of a board of an older protocol minor version, which ends before the fields
    later minor versions added (:data:`MINOR_FIELDS`), is accepted: those fields are 0.
    """
    spec = command_spec(cmd)
    payload = bytes(payload)
    if not payload:
        raise PayloadError(f"{spec.name} reply: empty payload, no status")
    if payload[0] != Error.OK:
        if len(payload) != 1:
            raise PayloadError(f"{spec.name} reply: status {payload[0]} with {len(payload) - 1} extra bytes")
        return {"status": payload[0]}
    added = MINOR_FIELDS.get(spec.name, {})
    sizes = []
    for minor in sorted({0, PROTOCOL_MINOR, *added.values()}, reverse=True):
        layout = spec.reply_fields(minor)
        fmt = _format(layout)
        size = struct.calcsize(fmt)
        if len(payload) == size:
            out = _unpack(layout, fmt, payload, f"{spec.name} reply")
            for name in added:
                out.setdefault(name, 0)
            return out
        if size not in sizes:
            sizes.append(size)
    raise PayloadError(f"{spec.name} reply: payload of {len(payload)} bytes, expected "
                       f"{' or '.join(map(str, sizes))}")


def request_frame(dst: int, seq: int, cmd: str | int, *, src: int = ADDR_HOST, **fields) -> Frame:
    """A request :class:`Frame` from the host to ``dst`` with packed fields."""
    spec = command_spec(cmd)
    return Frame(PROTOCOL_VERSION, dst, src, seq, spec.code, pack_request(spec.name, **fields))


def reply_frame(src: int, seq: int, cmd: str | int, status: int = Error.OK, *,
                dst: int = ADDR_HOST, minor: int = PROTOCOL_MINOR, **fields) -> Frame:
    """A reply :class:`Frame` from board ``src`` (of protocol minor version ``minor``) to
    the host."""
    spec = command_spec(cmd)
    return Frame(PROTOCOL_VERSION, dst, src, seq, spec.code | REPLY_BIT,
                 pack_reply(spec.name, status, minor=minor, **fields))
