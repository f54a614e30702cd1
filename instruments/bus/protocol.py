"""The edge-bus protocol, version 1: the host's reference implementation.

This module is the executable form of ``firmware/protocol/PROTOCOL.md`` and
``firmware/protocol/protocol.json``. The golden vectors (``firmware/protocol/vectors/``)
are written from it by ``firmware/protocol/gen_vectors.py``; the C core and the MicroPython
firmware are checked against those vectors.

Contents:

* constants (protocol version, addresses, kinds, rules, limits, command table, error codes),
  written out literally (a test checks them against ``protocol.json``);
* the frame codec: :class:`Frame`, :func:`encode_frame`, :func:`line_frame` (what the host
  sends: a 0x00 before the frame as well as after), :func:`decode_frame` (raises
  :class:`FrameError` with the spec's error code, checks in the spec's order) and the stream
  decoder :class:`FrameSplitter`; COBS is the ``cobs`` package, the CRC is the ``crc``
  package (CRC-16/CCITT-FALSE, which ``crc`` calls ``Crc16.IBM_3740``);
* payload packing per command: :func:`pack_request`, :func:`unpack_request`,
  :func:`pack_reply`, :func:`unpack_reply`;
* the rule arithmetic: :func:`xorshift32`, :func:`seed_from_uid`, :func:`drops_uv`,
  :func:`contrast_uv2`, :func:`gain_delta` (and :func:`gain_delta_int64`, the same in
  64-bit steps, as the boards compute it), :func:`apply_rule`, :func:`learn_step`;
* :class:`ReferenceBoard`, a complete board in pure Python.

Units: voltages are integer microvolts (uV), contrasts integer uV^2, times milliseconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, Iterator, Sequence

import crc as _crc
from cobs import cobs as _cobs

__all__ = [
    # constants
    "PROTOCOL_VERSION", "PROTOCOL_MINOR", "MINOR_FIELDS", "minor_for_firmware", "HEADER_SIZE", "CRC_SIZE", "MIN_FRAME_SIZE", "MAX_PAYLOAD",
    "MAX_FRAME_SIZE", "REPLY_BIT", "CRC_POLY", "CRC_INIT", "CRC_XOROUT", "CRC_CONFIG",
    "ADDR_HOST", "ADDR_BOARD_MIN", "ADDR_BOARD_MAX", "ADDR_BROADCAST", "ADDRESSES",
    "KINDS", "Kind", "RULES", "Rule", "RULE_KINDS", "GAIN_SHIFT", "CONTRAST_LIMIT_UV2",
    "GAIN_LIMIT", "FIRMWARE_VERSION", "PROBABILITY_ONE", "ERRORS", "Error", "COMMANDS", "Cmd", "CommandSpec",
    "FieldSpec", "COMMANDS_BY_CODE", "BROADCAST_SLOTTED", "BROADCAST_SILENT",
    "BROADCAST_REFUSED", "SLOT_TIME_S", "DEFAULT_LIMITS", "I32_MIN", "I32_MAX",
    "protocol_dict",
    # frames
    "Frame", "FrameError", "PayloadError", "crc16", "frame_bytes", "wire_from_bytes",
    "encode_frame", "line_frame", "decode_frame", "FrameSplitter", "split_stream",
    # payloads
    "pack_request", "unpack_request", "pack_reply", "unpack_reply", "request_frame",
    "reply_frame", "command_spec",
    # rule
    "xorshift32", "seed_from_uid", "SEED_XOR", "Xorshift32", "drops_uv", "contrast_uv2", "should_update",
    "GAIN_SPLIT_BITS", "gain_delta", "gain_delta_int64", "apply_rule", "learn_step", "gate_gain",
    # board
    "ReferenceBoard",
]

# --------------------------------------------------------------------------- constants

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
CRC_CONFIG = _crc.Configuration(
    width=16,
    polynomial=CRC_POLY,
    init_value=CRC_INIT,
    final_xor_value=CRC_XOROUT,
    reverse_input=False,
    reverse_output=False,
)
assert CRC_CONFIG == _crc.Crc16.IBM_3740.value  # CCITT-FALSE is IBM-3740 in the crc package

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
    """The constants of this module in the layout of ``protocol.json`` (for comparison)."""
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


# --------------------------------------------------------------------------- frames

_CALC = _crc.Calculator(CRC_CONFIG, optimized=True)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, no reflection, xorout 0)."""
    return _CALC.checksum(bytes(data))


class FrameError(Exception):
    """A received chunk failed a receive check.

    Attributes:
        code: the spec's error code (:class:`Error`: 1 bad_cobs, 2 bad_crc, 3 too_short,
            4 too_long, 5 bad_version).
        message: human-readable detail.
    """

    def __init__(self, code: int, message: str = "") -> None:
        self.code = Error(code)
        self.message = message
        super().__init__(f"{self.code.name.lower()} ({int(self.code)}): {message}")

    @property
    def name(self) -> str:
        """The error's name as in protocol.json, e.g. ``"bad_crc"``."""
        return self.code.name.lower()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameError):
            return NotImplemented
        return self.code == other.code and self.message == other.message

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __reduce__(self):
        return (FrameError, (int(self.code), self.message))


class PayloadError(ValueError):
    """A payload does not match the command's field list (length or field values)."""


@dataclass(frozen=True)
class Frame:
    """One frame before encoding.

    Attributes:
        version: protocol version byte (1 for this protocol).
        dst: destination address (0 host, 1..247 a board, 255 broadcast).
        src: sender address (0 host, 1..247 a board).
        seq: sequence number 0..255 (a reply echoes the request's).
        cmd: command code; a reply has ``REPLY_BIT`` (0x80) set.
        payload: 0..64 bytes, fields little-endian.
    """

    version: int
    dst: int
    src: int
    seq: int
    cmd: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        for name in ("version", "dst", "src", "seq", "cmd"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v <= 255:
                raise ValueError(f"frame {name} must be an integer 0..255, got {v!r}")
        object.__setattr__(self, "payload", bytes(self.payload))
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")

    @property
    def is_reply(self) -> bool:
        return bool(self.cmd & REPLY_BIT)

    @property
    def is_broadcast(self) -> bool:
        return self.dst == ADDR_BROADCAST


def frame_bytes(frame: Frame) -> bytes:
    """The decoded frame: header, payload and the big-endian CRC (7..71 bytes)."""
    body = bytes((frame.version, frame.dst, frame.src, frame.seq, frame.cmd)) + frame.payload
    return body + crc16(body).to_bytes(2, "big")


def wire_from_bytes(raw: bytes) -> bytes:
    """COBS-encode arbitrary decoded bytes and append the 0x00 delimiter (no checks)."""
    return _cobs.encode(bytes(raw)) + b"\x00"


def encode_frame(frame: Frame) -> bytes:
    """Wire bytes of ``frame``: COBS of header + payload + CRC, then one 0x00."""
    return wire_from_bytes(frame_bytes(frame))


def line_frame(frame: Frame) -> bytes:
    """What the host puts on the line for ``frame``: 0x00, :func:`encode_frame`'s bytes
    (COBS, then 0x00).

    The leading 0x00 ends whatever a receiver holds after its last delimiter (line noise,
    a frame cut short), so the frame is never glued to it; a receiver skips the empty chunk
    it makes when nothing was pending, as every board of protocol 1 does.
    """
    return b"\x00" + encode_frame(frame)


def decode_frame(chunk: bytes) -> Frame:
    """Decode one chunk (the bytes between two delimiters) into a :class:`Frame`.

    One trailing 0x00 delimiter, if present, is removed first; any other 0x00 is a COBS
    error. Checks, in the spec's order: COBS (``bad_cobs``), fewer than 7 bytes
    (``too_short``), more than 71 (``too_long``), CRC (``bad_crc``), version
    (``bad_version``). Raises :class:`FrameError` with the first failing check's code; never
    any other exception for ``bytes`` input.
    """
    chunk = bytes(chunk)
    if chunk.endswith(b"\x00"):
        chunk = chunk[:-1]
    try:
        raw = _cobs.decode(chunk)
    except _cobs.DecodeError as exc:
        raise FrameError(Error.BAD_COBS, str(exc)) from None
    n = len(raw)
    if n < MIN_FRAME_SIZE:
        raise FrameError(Error.TOO_SHORT, f"{n} bytes, need at least {MIN_FRAME_SIZE}")
    if n > MAX_FRAME_SIZE:
        raise FrameError(Error.TOO_LONG, f"{n} bytes, at most {MAX_FRAME_SIZE}")
    got = (raw[-2] << 8) | raw[-1]
    want = crc16(raw[:-2])
    if got != want:
        raise FrameError(Error.BAD_CRC, f"CRC 0x{got:04x}, computed 0x{want:04x}")
    if raw[0] != PROTOCOL_VERSION:
        raise FrameError(Error.BAD_VERSION, f"version {raw[0]}, this is {PROTOCOL_VERSION}")
    return Frame(raw[0], raw[1], raw[2], raw[3], raw[4], raw[5:-2])


class FrameSplitter:
    """Stream decoder: feed received bytes, get frames and errors in arrival order.

    Splits at 0x00; empty chunks (two delimiters in a row) are skipped silently; every other
    chunk yields a :class:`Frame` or a :class:`FrameError`, exactly as :func:`decode_frame`
    would. Bytes after the last delimiter wait for the next :meth:`feed`. Memory is bounded by
    ``max_chunk`` bytes: a chunk that grows past it is no longer stored, only walked code byte
    by code byte, and ends as ``bad_cobs`` if a code byte points past its end, else
    ``too_long`` (a chunk cannot hold a 0x00 here, so that walk is the whole COBS check).
    """

    def __init__(self, max_chunk: int = 4096) -> None:
        self.max_chunk = max(int(max_chunk), MAX_FRAME_SIZE + 2)
        self._buf = bytearray()
        self._overflow = False
        self._len = 0        # bytes of an overflowed chunk so far
        self._next_code = 0  # position of its next COBS code byte

    @property
    def pending(self) -> int:
        """Bytes received after the last delimiter."""
        return self._len if self._overflow else len(self._buf)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Consume ``data``; return the frames and errors of every completed chunk."""
        out: list[Frame | FrameError] = []
        data = bytes(data)
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._append(data[start:])
                return out
            self._append(data[start:end])
            start = end + 1
            if self._overflow:
                if self._next_code != self._len:
                    out.append(FrameError(Error.BAD_COBS, "code byte points past the end of the chunk"))
                else:
                    out.append(FrameError(Error.TOO_LONG, f"chunk of {self._len} bytes"))
            elif self._buf:
                try:
                    out.append(decode_frame(bytes(self._buf)))
                except FrameError as exc:
                    out.append(exc)
            self.reset()

    def _append(self, part: bytes) -> None:
        if not part:
            return
        if not self._overflow:
            self._buf += part
            if len(self._buf) <= self.max_chunk:
                return
            self._overflow = True
            part = bytes(self._buf)
            self._buf.clear()
        base = self._len
        self._len += len(part)
        while self._next_code < self._len:  # part holds no 0x00, so every step advances
            self._next_code += part[self._next_code - base]

    def reset(self) -> None:
        """Forget any partial chunk."""
        self._buf.clear()
        self._overflow = False
        self._len = 0
        self._next_code = 0


def split_stream(data: bytes) -> list[Frame | FrameError]:
    """Decode a whole byte stream at once (a trailing partial chunk is discarded)."""
    return FrameSplitter(max_chunk=max(4096, len(data) + 1)).feed(data)


# --------------------------------------------------------------------------- payloads


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


# --------------------------------------------------------------------------- rule arithmetic

_M32 = 0xFFFFFFFF
#: Seed mixing constant: seed = uid[0:4] little-endian xor 0x9E3779B9 (1 if that is 0).
SEED_XOR = 0x9E3779B9


def xorshift32(x: int) -> int:
    """One step of xorshift32 (13, 17, 5) on a 32-bit state; returns the new state = draw."""
    x &= _M32
    x ^= (x << 13) & _M32
    x ^= x >> 17
    x ^= (x << 5) & _M32
    return x


def seed_from_uid(uid: bytes) -> int:
    """Generator seed: first four uid bytes little-endian, xor 0x9E3779B9, 1 if zero."""
    uid = bytes(uid)
    if len(uid) < 4:
        raise ValueError("uid needs at least 4 bytes")
    s = int.from_bytes(uid[:4], "little") ^ SEED_XOR
    return s or 1


class Xorshift32:
    """The board's generator: ``next()`` advances and returns the new 32-bit state."""

    def __init__(self, seed: int) -> None:
        self.state = int(seed) & _M32 or 1
        self.draws = 0

    def next(self) -> int:
        self.state = xorshift32(self.state)
        self.draws += 1
        return self.state

    def __iter__(self) -> Iterator[int]:
        while True:
            yield self.next()


def _sat_i32(v: int) -> int:
    return I32_MIN if v < I32_MIN else I32_MAX if v > I32_MAX else v


def drops_uv(node_uv: Sequence[int], calibration_uv: Sequence[int] = (0, 0, 0, 0)) -> tuple[int, int]:
    """Calibrated drops ``(dv_free_uv, dv_clamped_uv)`` (uV) from the four node voltages.

    ``node_uv`` = (a_F, b_F, a_C, b_C) in uV (i32); ``calibration_uv`` = the four stored
    offsets (uV, same order). Each drop is ``(a - off_a) - (b - off_b)``, saturated to the
    i32 range.
    """
    af, bf, ac, bc = (int(v) for v in node_uv)
    oa, ob, oc, od = (int(v) for v in calibration_uv)
    return _sat_i32((af - oa) - (bf - ob)), _sat_i32((ac - oc) - (bc - od))


def contrast_uv2(dv_free_uv: int, dv_clamped_uv: int) -> int:
    """``dv_free^2 - dv_clamped^2`` (uV^2, exact), clipped to +-2^38."""
    c = int(dv_free_uv) ** 2 - int(dv_clamped_uv) ** 2
    return max(-CONTRAST_LIMIT_UV2, min(CONTRAST_LIMIT_UV2, c))


def should_update(draw: int, probability: int) -> bool:
    """True when the draw selects an update: ``(draw >> 16) < probability``."""
    return (int(draw) >> 16) < int(probability)


#: Bits of the low part of a gain in the 64-bit split (``gain = gh * 2^24 + gl``).
GAIN_SPLIT_BITS = 24
_GAIN_LOW_MASK = (1 << GAIN_SPLIT_BITS) - 1


_HALF = 1 << (GAIN_SHIFT - 1)


def gain_delta(contrast: int, gain: int, minor: int = PROTOCOL_MINOR) -> int:
    """The change a gate_charging/continuous update makes, ``contrast * gain / 2^48``
    rounded to an integer state change.

    Protocol minor 1 (firmware 1.2.0 on) rounds to the nearest integer, halves away from
    zero: ``sign(c) * floor((|c| * gain + 2^47) / 2^48)``, so ``gain_delta(-c) ==
    -gain_delta(c)`` and a contrast that is zero on average changes the state by zero on
    average. Minor 0 (1.1.0 and before) took ``floor(c * gain / 2^48)``, a bias of -1/2
    state unit per update. ``contrast`` in uV^2 (clipped to +-2^38), ``gain`` in state units
    per uV^2 times 2^48 (0 .. 2^40 - 1); the result, in state units, is at most 2^30 in
    magnitude. Exact (Python integers); :func:`gain_delta_int64` is the same number computed
    in 64 bits.
    """
    if minor < 1:
        return (contrast * gain) >> GAIN_SHIFT
    q = (abs(contrast) * gain + _HALF) >> GAIN_SHIFT
    return q if contrast >= 0 else -q


def gain_delta_int64(contrast: int, gain: int, minor: int = PROTOCOL_MINOR) -> int:
    """:func:`gain_delta` as a board computes it, with no intermediate beyond int64.

    Minor 1 (round half away from zero) works on ``m = |contrast| <= 2^38``: with the split
    below, ``m * gain = a1 * 2^48 + (a0 * 2^24 + B)`` where every term is non-negative, so
    ``floor((m * gain + 2^47) / 2^48) = a1 + ((a0 * 2^24 + B + 2^47) >> 48)``, the sum below
    ``2^48 + 2^62 + 2^47 < 2^63``; the sign of the contrast is put back last.

    Minor 0 (floor): ``contrast * gain`` needs up to 79 bits, so the gain is split,
    ``gain = gh * 2^24 + gl`` (0 <= gl < 2^24, 0 <= gh < 2^16), and with
    ``|contrast| <= 2^38``:

    * ``A = contrast * gh``, ``|A| < 2^54``, written ``A = a1 * 2^24 + a0`` with
      ``a1 = floor(A / 2^24)`` and ``0 <= a0 < 2^24`` (an arithmetic shift and a mask);
    * ``B = contrast * gl``, ``|B| < 2^62``;
    * ``contrast * gain = A * 2^24 + B = a1 * 2^48 + (a0 * 2^24 + B)``, so
      ``floor(contrast * gain / 2^48) = a1 + floor((a0 * 2^24 + B) / 2^48)``, where
      ``|a0 * 2^24 + B| < 2^48 + 2^62 < 2^63``.

    Below 2^24 the gain has ``gh = 0`` and this is ``floor(contrast * gain / 2^48)`` formed
    directly, as firmware 1.0.x did. Raises ValueError outside those ranges.
    """
    if not -CONTRAST_LIMIT_UV2 <= contrast <= CONTRAST_LIMIT_UV2:
        raise ValueError(f"contrast must be within +-2^38 uV^2, got {contrast}")
    if not 0 <= gain < GAIN_LIMIT:
        raise ValueError(f"gain must be 0..2^40 - 1, got {gain}")
    gh, gl = gain >> GAIN_SPLIT_BITS, gain & _GAIN_LOW_MASK
    if minor >= 1:
        m = -contrast if contrast < 0 else contrast
        a = m * gh
        q = (a >> GAIN_SPLIT_BITS) + ((((a & _GAIN_LOW_MASK) << GAIN_SPLIT_BITS) + m * gl + _HALF) >> GAIN_SHIFT)
        return -q if contrast < 0 else q
    a = contrast * gh
    a1, a0 = a >> GAIN_SPLIT_BITS, a & _GAIN_LOW_MASK  # Python's >> floors, & of a negative is mod 2^24
    return a1 + (((a0 << GAIN_SPLIT_BITS) + contrast * gl) >> GAIN_SHIFT)


def apply_rule(rule: int, state: int, contrast: int, *, gain: int = 0, dead_band_uv2: int = 0,
               state_min: int, state_max: int, minor: int = PROTOCOL_MINOR) -> int:
    """The state after one run of ``rule`` (no probability draw here).

    Args:
        rule: :class:`Rule` code.
        state: current state (tap, or gate voltage in uV).
        contrast: clipped contrast (uV^2), see :func:`contrast_uv2`.
        gain: state units per uV^2 times 2^48 (gate_charging, continuous), 0 .. 2^40 - 1.
        dead_band_uv2: dead band half-width (uV^2, tap).
        state_min, state_max: the board's limits; the result is clipped to them.

    ``tap``: +1 when ``contrast > dead_band``, -1 when ``contrast < -dead_band``;
    ``gate_charging``/``continuous``: ``state + contrast * gain / 2^48`` rounded to nearest,
    halves away from zero (``minor`` 0: the floor) (:func:`gain_delta`, up to 2^30 in
    magnitude, added before clipping); ``none``: unchanged.
    """
    rule = Rule(rule)
    if rule == Rule.TAP:
        if contrast > dead_band_uv2:
            state += 1
        elif contrast < -dead_band_uv2:
            state -= 1
    elif rule in (Rule.GATE_CHARGING, Rule.CONTINUOUS):
        state += gain_delta(contrast, gain, minor)
    return max(state_min, min(state_max, state))


def learn_step(*, rule: int, probability: int, gain: int, dead_band_uv2: int, state: int,
               state_min: int, state_max: int, draw: int, node_uv: Sequence[int],
               calibration_uv: Sequence[int] = (0, 0, 0, 0), minor: int = PROTOCOL_MINOR) -> dict:
    """One ``learn`` given the draw already taken from the generator (on a board of protocol
    minor version ``minor``, see :func:`gain_delta`).

    Returns a dict with ``dv_free_uv``, ``dv_clamped_uv`` (uV), ``contrast_uv2`` (clipped,
    uV^2), ``updated`` (0/1) and ``state`` (after). Rule ``none`` never updates.
    """
    dvf, dvc = drops_uv(node_uv, calibration_uv)
    c = contrast_uv2(dvf, dvc)
    updated = int(rule != Rule.NONE and should_update(draw, probability))
    if updated:
        state = apply_rule(rule, state, c, gain=gain, dead_band_uv2=dead_band_uv2,
                           state_min=state_min, state_max=state_max, minor=minor)
    return {"dv_free_uv": dvf, "dv_clamped_uv": dvc, "contrast_uv2": c, "updated": updated,
            "state": state}


def gate_gain(pulse_s: float, r_ohm: float, c_f: float, g_per_v: float) -> int:
    """Gen-2 ``gain`` for ``configure_rule``: ``round(pulse / (R C) * g * 1e-6 * 2^48)``.

    ``pulse_s`` (s), ``r_ohm`` (Ohm), ``c_f`` (F), ``g_per_v`` (1/V); the result is in uV of
    gate per uV^2 of contrast times 2^48. Boards take it below :data:`GAIN_LIMIT` = 2^40
    (firmware 1.1.0 and later; 2^24 before), i.e. a learning rate ``pulse / (R C) * g``
    below 2^-8 uV per uV^2 = 3906 V of gate per V^2 of contrast; the lab's Gen-2 values
    (200 us, 1 kOhm, 2.2 uF, 0.1 /V: 9.09e-3 V/V^2) give 2,558,863. The caller checks the
    limit (``configure_rule`` answers ``out_of_range``).
    """
    return round(pulse_s / (r_ohm * c_f) * g_per_v * 1e-6 * (1 << GAIN_SHIFT))


# --------------------------------------------------------------------------- reference board


class ReferenceBoard:
    """A complete edge board in pure Python, exactly per the spec.

    Args:
        address: bus address 1..247.
        uid: 8-byte unique id (seeds the generator).
        kind: :class:`Kind` (1 digipot, 2 mosfet).
        state_min, state_max: state limits (taps, or gate uV); default per kind.
        initial_state: power-on state (default ``state_min``).
        node_uv: the four node voltages (a_F, b_F, a_C, b_C) in uV: a sequence, or a
            callable returning one (called on every sample).
        uptime_ms: ms since power-on/reset: an int or a callable returning one (sent mod 2^32).
        fw_version: (major, minor, patch) of the identify reply (default
            :data:`FIRMWARE_VERSION`); it fixes the protocol minor version the board
            speaks (:func:`minor_for_firmware`): a 1.1.0 board floors and its identify
            reply has no ``protocol_minor``.
        protocol_minor: the protocol minor version to speak whatever ``fw_version`` says
            (0 or 1; default from ``fw_version``).
        calibration_uv: the four stored offsets (uV); kept across :meth:`reset`.
        storage_fails: when true, ``store_calibration`` answers ``storage`` and keeps the
            old offsets.

    :meth:`handle` takes one chunk and returns the reply's wire bytes or None.
    """

    def __init__(self, address: int, uid: bytes, kind: int, *, state_min: int | None = None,
                 state_max: int | None = None, initial_state: int | None = None,
                 node_uv: Sequence[int] | Callable[[], Sequence[int]] = (0, 0, 0, 0),
                 uptime_ms: int | Callable[[], int] = 0, fw_version: tuple[int, int, int] = FIRMWARE_VERSION,
                 calibration_uv: Sequence[int] = (0, 0, 0, 0), storage_fails: bool = False,
                 protocol_minor: int | None = None) -> None:
        if not ADDR_BOARD_MIN <= address <= ADDR_BOARD_MAX:
            raise ValueError(f"board address must be 1..247, got {address}")
        uid = bytes(uid)
        if len(uid) != 8:
            raise ValueError("uid must be 8 bytes")
        self.address = int(address)
        self.uid = uid
        self.kind = Kind(kind)
        lo, hi = DEFAULT_LIMITS[self.kind]
        self.state_min = lo if state_min is None else int(state_min)
        self.state_max = hi if state_max is None else int(state_max)
        if not I32_MIN <= self.state_min <= self.state_max <= I32_MAX:
            raise ValueError("need state_min <= state_max within i32")
        self.initial_state = self.state_min if initial_state is None else int(initial_state)
        if not self.state_min <= self.initial_state <= self.state_max:
            raise ValueError("initial_state outside the limits")
        self._node_uv = node_uv
        self._uptime_ms = uptime_ms
        self.fw_version = tuple(int(v) for v in fw_version)
        self.protocol_minor = (minor_for_firmware(self.fw_version) if protocol_minor is None
                               else int(protocol_minor))
        if not 0 <= self.protocol_minor <= PROTOCOL_MINOR:
            raise ValueError(f"protocol_minor must be 0..{PROTOCOL_MINOR}, got {protocol_minor}")
        self.calibration_uv = [int(v) for v in calibration_uv]
        self.storage_fails = bool(storage_fails)
        self._pending = b""
        self.restart()

    # -- application state

    def restart(self) -> None:
        """Power-on / ``reset``: state, rule, counters and generator; calibration kept."""
        self.state = self.initial_state
        self.rule = Rule.NONE
        self.probability = 0
        self.gain = 0
        self.dead_band_uv2 = 0
        self.frames_ok = 0
        self.frames_bad = 0
        self.updates = 0
        self.last_error = Error.OK
        self.prng = Xorshift32(seed_from_uid(self.uid))

    def node_uv(self) -> list[int]:
        """Current node voltages (a_F, b_F, a_C, b_C), uV."""
        v = self._node_uv() if callable(self._node_uv) else self._node_uv
        v = [int(x) for x in v]
        if len(v) != 4:
            raise ValueError("node_uv must give four voltages")
        return v

    def uptime_ms(self) -> int:
        """Uptime in ms, modulo 2^32."""
        u = self._uptime_ms() if callable(self._uptime_ms) else self._uptime_ms
        return int(u) & _M32

    def sample(self) -> tuple[int, int]:
        """Calibrated drops (dv_free_uv, dv_clamped_uv)."""
        return drops_uv(self.node_uv(), self.calibration_uv)

    def learn(self) -> tuple[int, int]:
        """One learn (also what the learn-trigger pin does): returns (state, updated)."""
        r = self.prng.next()
        res = learn_step(rule=self.rule, probability=self.probability, gain=self.gain,
                         dead_band_uv2=self.dead_band_uv2, state=self.state,
                         state_min=self.state_min, state_max=self.state_max, draw=r,
                         node_uv=self.node_uv(), calibration_uv=self.calibration_uv,
                         minor=self.protocol_minor)
        self.state = res["state"]
        self.updates = (self.updates + res["updated"]) & _M32
        return self.state, res["updated"]

    # -- bus

    def feed(self, data: bytes) -> list[bytes]:
        """Feed raw stream bytes; return the wire bytes of every reply, in order.

        Bytes after the last 0x00 wait for the next call; each chunk goes through
        :meth:`handle`.
        """
        parts = (self._pending + bytes(data)).split(b"\x00")
        self._pending = parts.pop()
        return [r for r in map(self.handle, parts) if r is not None]

    def handle(self, chunk: bytes) -> bytes | None:
        """Process one received chunk (with or without its trailing 0x00).

        Returns the reply's wire bytes, or None: empty chunk (not counted), malformed frame
        (counted in ``frames_bad``, ``last_error`` set), another address (ignored),
        broadcast of a non-slotted command (executed unless refused, never answered).
        """
        chunk = bytes(chunk)
        if chunk in (b"", b"\x00"):
            return None
        try:
            f = decode_frame(chunk)
        except FrameError as exc:
            self.frames_bad = (self.frames_bad + 1) & _M32
            self.last_error = exc.code
            return None
        if f.dst != self.address and f.dst != ADDR_BROADCAST:
            return None
        self.frames_ok = (self.frames_ok + 1) & _M32
        bcast = f.dst == ADDR_BROADCAST
        spec = COMMANDS_BY_CODE.get(f.cmd)
        if spec is None:
            return self._answer(f, bcast, None, Error.UNKNOWN_COMMAND)
        if bcast and spec.broadcast == BROADCAST_REFUSED:
            self.last_error = Error.BROADCAST_REFUSED
            return None
        if len(f.payload) != spec.request_size:
            return self._answer(f, bcast, spec, Error.BAD_LENGTH)
        req = unpack_request(spec.name, f.payload)
        status, fields, after = getattr(self, "_cmd_" + spec.name)(**req)
        reply = self._answer(f, bcast, spec, status, fields)
        if after is not None:
            after()
        return reply

    def _answer(self, f: Frame, bcast: bool, spec: CommandSpec | None, status: int,
                fields: dict | None = None) -> bytes | None:
        if status != Error.OK:
            self.last_error = Error(status)
        if bcast and (spec is None or spec.broadcast != BROADCAST_SLOTTED):
            return None
        code = (spec.code if spec is not None else f.cmd) | REPLY_BIT
        if status != Error.OK or spec is None:
            payload = bytes((int(status),))
        else:
            payload = pack_reply(spec.name, Error.OK, minor=self.protocol_minor, **(fields or {}))
        return encode_frame(Frame(PROTOCOL_VERSION, ADDR_HOST, self.address, f.seq, code & 0xFF, payload))

    # -- commands: each returns (status, reply fields, action after replying)

    def _cmd_identify(self):
        return Error.OK, {"uid": self.uid, "fw_major": self.fw_version[0],
                          "fw_minor": self.fw_version[1], "fw_patch": self.fw_version[2],
                          "kind": int(self.kind), "protocol": PROTOCOL_VERSION,
                          "protocol_minor": self.protocol_minor}, None

    def _cmd_read_state(self):
        return Error.OK, {"state": self.state}, None

    def _cmd_set_state(self, state):
        if not self.state_min <= state <= self.state_max:
            return Error.OUT_OF_RANGE, None, None
        self.state = state
        return Error.OK, {"state": self.state}, None

    def _cmd_configure_rule(self, rule, probability, gain, dead_band_uv2):
        if (rule not in RULES.values() or probability > PROBABILITY_ONE or gain < 0
                or gain >= GAIN_LIMIT or dead_band_uv2 < 0):
            return Error.OUT_OF_RANGE, None, None
        if self.kind not in RULE_KINDS[Rule(rule)]:
            return Error.WRONG_KIND, None, None
        self.rule, self.probability, self.gain, self.dead_band_uv2 = Rule(rule), probability, gain, dead_band_uv2
        return Error.OK, {}, None

    def _cmd_sample_drops(self):
        dvf, dvc = self.sample()
        return Error.OK, {"dv_free_uv": dvf, "dv_clamped_uv": dvc}, None

    def _cmd_learn(self):
        state, updated = self.learn()
        return Error.OK, {"state": state, "updated": updated}, None

    def _cmd_read_telemetry(self):
        return Error.OK, {"uptime_ms": self.uptime_ms(), "frames_ok": self.frames_ok,
                          "frames_bad": self.frames_bad, "updates": self.updates,
                          "last_error": int(self.last_error)}, None

    def _cmd_store_calibration(self, offset_free_a_uv, offset_free_b_uv, offset_clamped_a_uv,
                               offset_clamped_b_uv):
        if self.storage_fails:
            return Error.STORAGE, None, None
        self.calibration_uv = [offset_free_a_uv, offset_free_b_uv, offset_clamped_a_uv, offset_clamped_b_uv]
        return Error.OK, {}, None

    def _cmd_read_calibration(self):
        a, b, c, d = self.calibration_uv
        return Error.OK, {"offset_free_a_uv": a, "offset_free_b_uv": b, "offset_clamped_a_uv": c,
                          "offset_clamped_b_uv": d}, None

    def _cmd_reset(self):
        return Error.OK, {}, self.restart
