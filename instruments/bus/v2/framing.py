"""Frame codec of the edge-bus protocol, version 2: CRC, COBS framing and the stream splitter.

``firmware/protocol/PROTOCOL.md``, "Frames" and "Receiving". The layout is protocol 1's
(header version, dst, src, seq, cmd; payload; big-endian CRC-16/CCITT-FALSE; COBS and a 0x00
delimiter; the host's 0x00 before each frame) with version byte 2 and payloads up to 247
bytes, so a decoded frame is 7..254 bytes and COBS adds exactly one byte. The CRC and the
COBS coder are protocol 1's (:func:`instruments.bus.framing.crc16`, a calculator per thread;
the ``cobs`` package).

:func:`decode_any` runs every receive check but the version's and returns the frame of
whatever version; :func:`decode_frame` adds the version check (``bad_version`` unless 2), as
a protocol-2 host does; a protocol-2 board looks at the version itself, since it answers
protocol 1's identify probe ("Protocol 1 boards").

Units: sizes in bytes; every header field an integer 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass

from cobs import cobs as _cobs

from ..framing import FrameError, crc16, wire_from_bytes
from .constants import (
    ADDR_BROADCAST, MAX_FRAME_SIZE, MAX_PAYLOAD, MIN_FRAME_SIZE, PROTOCOL_VERSION, REPLY_BIT, Error,
)

__all__ = [
    "Frame", "FrameError", "crc16", "frame_bytes", "wire_from_bytes", "encode_frame",
    "line_frame", "decode_any", "decode_frame", "FrameSplitter", "split_stream",
]


@dataclass(frozen=True)
class Frame:
    """One frame before encoding (any version byte; payload 0..247 bytes).

    Attributes:
        version: protocol version byte (2; 1 for protocol 1's identify probe and its reply).
        dst: destination (0 host, 1..247 a board, 248 the unassigned boards, 255 broadcast).
        src: sender (0 host, 1..248 a board).
        seq: sequence number 0..255 (a reply echoes the request's).
        cmd: command code; a reply has ``REPLY_BIT`` (0x80) set.
        payload: 0..247 bytes, fields little-endian.
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


def frame_bytes(frame) -> bytes:
    """The decoded frame: header, payload and the big-endian CRC (7..254 bytes). Takes this
    module's :class:`Frame` or protocol 1's."""
    body = bytes((frame.version, frame.dst, frame.src, frame.seq, frame.cmd)) + bytes(frame.payload)
    return body + crc16(body).to_bytes(2, "big")


def encode_frame(frame) -> bytes:
    """Wire bytes of ``frame``: COBS of header + payload + CRC, then one 0x00."""
    return wire_from_bytes(frame_bytes(frame))


def line_frame(frame) -> bytes:
    """What the host puts on the line: 0x00, then :func:`encode_frame`'s bytes."""
    return b"\x00" + encode_frame(frame)


def decode_any(chunk: bytes) -> Frame:
    """Decode one chunk with every receive check but the version's, in the spec's order:
    COBS (``bad_cobs``), fewer than 7 bytes (``too_short``), more than 254 (``too_long``),
    CRC (``bad_crc``). One trailing 0x00 is removed first. Raises :class:`FrameError`;
    never any other exception for ``bytes`` input."""
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
    return Frame(raw[0], raw[1], raw[2], raw[3], raw[4], raw[5:-2])


def decode_frame(chunk: bytes) -> Frame:
    """:func:`decode_any`, then ``bad_version`` unless the version byte is 2."""
    f = decode_any(chunk)
    if f.version != PROTOCOL_VERSION:
        raise FrameError(Error.BAD_VERSION, f"version {f.version}, this is {PROTOCOL_VERSION}")
    return f


class FrameSplitter:
    """Stream decoder: feed bytes, get a :class:`Frame` or :class:`FrameError` per chunk.

    Splits at 0x00 and skips empty chunks; ``decoder`` is :func:`decode_frame` (a host) or
    :func:`decode_any` (a board, which looks at the version itself). A chunk longer than
    ``max_chunk`` is not stored: it is walked code byte by code byte and ends as
    ``bad_cobs`` if a code byte points past its end, else ``too_long``.
    """

    def __init__(self, max_chunk: int = 4096, decoder=decode_frame) -> None:
        self.max_chunk = max(int(max_chunk), MAX_FRAME_SIZE + 2)
        self.decoder = decoder
        self.reset()

    @property
    def pending(self) -> int:
        """Bytes received after the last delimiter."""
        return self._len if self._overflow else len(self._buf)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
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
                    out.append(self.decoder(bytes(self._buf)))
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
        self._buf = bytearray()
        self._overflow = False
        self._len = 0
        self._next_code = 0


def split_stream(data: bytes, decoder=decode_frame) -> list[Frame | FrameError]:
    """Decode a whole byte stream at once (a trailing partial chunk is discarded)."""
    return FrameSplitter(max(4096, len(data) + 1), decoder).feed(data)
