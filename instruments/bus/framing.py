"""Frame codec of the edge-bus protocol: CRC, COBS framing and the stream splitter.

``firmware/protocol/PROTOCOL-1.md``, "Frames" and "Receiving". A :class:`Frame` is the header
(version, dst, src, seq, cmd: one byte each), a payload of 0..64 bytes and, once encoded, a
big-endian CRC-16/CCITT-FALSE of header and payload (the ``crc`` package, which calls it
``Crc16.IBM_3740``); on the wire the decoded 7..71 bytes are COBS-encoded (the ``cobs``
package) and followed by one 0x00. :func:`line_frame` is what the host sends: a 0x00
before the frame as well. :func:`decode_frame` runs the receive checks in the spec's order
and raises :class:`FrameError` with the spec's error code; :class:`FrameSplitter` decodes a
byte stream with bounded memory. Payload contents are :mod:`instruments.bus.payloads`'.

Units: sizes in bytes; every header field is an integer 0..255.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import crc as _crc
from cobs import cobs as _cobs

from .constants import (
    ADDR_BROADCAST, CRC_INIT, CRC_POLY, CRC_XOROUT, MAX_FRAME_SIZE, MAX_PAYLOAD, MIN_FRAME_SIZE,
    PROTOCOL_VERSION, REPLY_BIT, Error,
)

__all__ = [
    "CRC_CONFIG", "Frame", "FrameError", "crc16", "frame_bytes", "wire_from_bytes",
    "encode_frame", "line_frame", "decode_frame", "FrameSplitter", "split_stream",
]

#: The ``crc`` package's configuration of CRC-16/CCITT-FALSE (its name for it: IBM_3740).
CRC_CONFIG = _crc.Configuration(
    width=16,
    polynomial=CRC_POLY,
    init_value=CRC_INIT,
    final_xor_value=CRC_XOROUT,
    reverse_input=False,
    reverse_output=False,
)
assert CRC_CONFIG == _crc.Crc16.IBM_3740.value  # CCITT-FALSE is IBM-3740 in the crc package

_LOCAL = threading.local()


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, no reflection, xorout 0).

    One calculator per thread: the ``crc`` package's calculator keeps its register between
    ``init`` and ``digest``, so one shared by threads (a host client and the emulator
    serving it, several buses) mixes their data and gives wrong CRCs."""
    calc = getattr(_LOCAL, "calc", None)
    if calc is None:
        calc = _LOCAL.calc = _crc.Calculator(CRC_CONFIG, optimized=True)
    return calc.checksum(bytes(data))


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
