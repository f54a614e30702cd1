"""The RS-485 edge bus in emulated time: who drives the line when, and what each receiver hears.

Emulated time is integer microseconds on the wire; nothing here reads a clock. The model:

- **Characters.** A byte is :data:`~instruments.bus.timing.BITS_PER_CHAR` bits (8N1) at the
  bus's baud rate, :func:`~instruments.bus.timing.char_us` long; a transmission's bytes follow
  one another without gaps (Modbus over Serial Line V1.02, section 2.5.1.1: a frame is sent
  as a continuous stream of characters, frames are separated by silence).
- **Drivers.** TIA/EIA-485-A: every node shares one differential pair; a transceiver whose
  driver enable (DE) is asserted drives the pair, idle (mark) included, so a second enabled
  driver fights it and every receiver's output is undefined while they overlap. A board keeps
  DE asserted :data:`~instruments.bus.timing.DE_HOLD_US` after its last stop bit; the host's
  adapter one bit time (FTDI FT232R datasheet, CBUS option TXDEN: deasserted one bit time
  after the last stop bit). A byte sent while another driver is enabled is garbled, and so is
  that driver's byte: :func:`collide`. Each stretch of garbled bytes reaches the receivers as
  one random byte per character time of the stretch (a UART resynchronising on whatever
  start bits it sees), drawn from the wire's seed.
- **Receivers.** Half-duplex wiring ties each transceiver's receiver enable to its DE, so a
  node hears nothing while it drives (:class:`Receiver`). A chunk that holds a garbled byte,
  or lost bytes between two it kept, never decodes as a frame: the one case in 65,536 where the
  CRC-16 would miss the damage is ruled out (the chunk's last byte is changed again), so no
  test's outcome rests on it and no board executes a forged request.
- **Boards' reply timing** is a policy per board (:class:`V1Timing`, :class:`V2Timing`, or
  anything with their two methods): the board notices the end of a request some latency
  after the delimiter's stop bit, then waits an offset timed on its own crystal, off by its
  clock skew (within :data:`~instruments.bus.timing.CLOCK_TOLERANCE_PPM`).
- **Flash erase.** RP2040 datasheet section 4.2 (UART, an ARM PrimeCell PL011): the receive
  FIFO holds :data:`FIFO_BYTES` characters; with interrupts off nobody empties it, and a
  character arriving when it is full is lost (overrun). Erasing flash runs with interrupts
  off (pico-sdk ``flash_range_erase``), for :data:`FLASH_SECTOR_ERASE_US` per 4 KiB sector
  (Winbond W25Q16JV datasheet, AC electrical characteristics, tSE typical; 400 ms worst).
  A stalled board keeps the first :data:`FIFO_BYTES` bytes of the stall and notices a
  request that ended in it only when the stall ends (:meth:`Wire.stall`).
- **Reset.** After answering ``reset`` (PROTOCOL.md, "Commands": it answers first), a board
  hears nothing and says nothing for its boot time, and whatever its receive buffer held is
  gone.

:class:`Wire` runs exchanges: :meth:`Wire.send` puts one host chunk on the line and returns
the bytes the host receives until the line is quiet again.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import timing
from .constants import ADDR_BOARD_MAX, ADDR_BOARD_MIN, ADDR_BROADCAST, BROADCAST_SLOTTED, REPLY_BIT
from .framing import Frame, FrameError, decode_frame, split_stream
from .payloads import COMMANDS, COMMANDS_BY_CODE, Cmd

__all__ = [
    "FIFO_BYTES", "FLASH_SECTOR_ERASE_US", "BOOT_US", "LONGEST_SLOTTED_PAYLOAD", "HOST",
    "HOST_TIMEOUT_US", "HOST_LISTEN_US",
    "ReplyTiming", "V1Timing", "V2Timing", "Transmission", "Line", "collide", "Receiver", "Wire",
]

#: RP2040 UART receive FIFO depth (characters), datasheet section 4.2.
FIFO_BYTES = 32
#: One 4 KiB flash sector erase, typical (us): W25Q16JV datasheet, tSE.
FLASH_SECTOR_ERASE_US = 45_000
#: Default boot time after a reset (us). Chosen, not measured: pass the firmware's own.
BOOT_US = 20_000
#: Payload bytes of the longest slotted reply of protocol 1 (identify: status and 15 bytes).
LONGEST_SLOTTED_PAYLOAD = max(s.reply_size for s in COMMANDS.values() if s.broadcast == BROADCAST_SLOTTED)
#: The host's driver id on the wire.
HOST = -1
#: The host's listening windows (us): :class:`~instruments.bus.client.BusClient`'s defaults,
#: 0.05 s for a reply, and that plus 247 slots of 2 ms after a slotted broadcast.
HOST_TIMEOUT_US = 50_000
HOST_LISTEN_US = HOST_TIMEOUT_US + ADDR_BOARD_MAX * timing.V1_SLOT_US


class ReplyTiming(Protocol):
    """When a board answers: ``notice_us`` draws how late it notices a request's end (us);
    ``offset_us`` is how long it then waits on its own clock (us, nominal)."""

    def notice_us(self, rng: np.random.Generator) -> int: ...

    def offset_us(self, address: int, baud: int, slotted: bool) -> int: ...


@dataclass(frozen=True)
class V1Timing:
    """Protocol 1 (PROTOCOL.md 1.1, "Broadcast"): the main loop notices the end of a request
    0..``loop_latency_us`` late (us; :data:`~instruments.bus.timing.V1_LOOP_LATENCY_US` by
    default, a board with a slower loop has more); a slotted reply starts ``address`` slots
    of :data:`~instruments.bus.timing.V1_SLOT_US` later, any other reply at once, with no
    guard for the reply's length or the DE hold (:func:`~instruments.bus.timing.v1_reply_window_us`)."""

    loop_latency_us: int = timing.V1_LOOP_LATENCY_US

    def notice_us(self, rng: np.random.Generator) -> int:
        return int(rng.integers(0, self.loop_latency_us + 1))

    def offset_us(self, address: int, baud: int, slotted: bool) -> int:
        return address * timing.V1_SLOT_US if slotted else 0


@dataclass(frozen=True)
class V2Timing:
    """Protocol 2's timing (:mod:`~instruments.bus.timing`): the end of frame stamped in the
    receive interrupt 0..``eof_jitter_us`` late (us); a slotted reply at
    :func:`~instruments.bus.timing.reply_start_us` for slots sized for
    ``longest_reply_payload`` bytes, any other reply after
    :func:`~instruments.bus.timing.turnaround_us`."""

    longest_reply_payload: int = LONGEST_SLOTTED_PAYLOAD
    eof_jitter_us: int = timing.EOF_JITTER_US

    def __post_init__(self) -> None:
        timing.wire_bytes(self.longest_reply_payload)  # refuses a payload no frame can carry

    def notice_us(self, rng: np.random.Generator) -> int:
        return int(rng.integers(0, self.eof_jitter_us + 1))

    def offset_us(self, address: int, baud: int, slotted: bool) -> int:
        if slotted:
            return timing.reply_start_us(address, baud, self.longest_reply_payload)
        return timing.turnaround_us(baud)


@dataclass(frozen=True)
class Transmission:
    """One driver's bytes on the line: ``driver`` (:data:`HOST` or a board's index), the
    first start bit at ``start_us``, ``char_us`` per byte, DE held ``hold_us`` after the
    last stop bit."""

    driver: int
    start_us: int
    data: bytes
    char_us: int
    hold_us: int

    @property
    def end_us(self) -> int:
        """The last stop bit's end (us)."""
        return self.start_us + len(self.data) * self.char_us

    @property
    def release_us(self) -> int:
        """When the driver lets go of the line (us)."""
        return self.end_us + self.hold_us


@dataclass
class Line:
    """What a receiver that hears everything gets over one stretch: ``data[i]`` starts at
    ``t0[i]`` (us) and lasts ``char_us``; ``garbled[i]`` is 1 where it is collision garbage."""

    data: bytes
    t0: list
    garbled: bytes
    char_us: int


def _mark(x: Transmission, y: Transmission, bad: dict) -> None:
    """Mark ``x``'s bytes that overlap ``y``'s driver-enable interval."""
    flags = bad.get(id(x))
    if flags is None:
        return
    lo, hi = max(x.start_us, y.start_us), min(x.end_us, y.release_us)
    if lo < hi:
        c = x.char_us
        i0, i1 = (lo - x.start_us) // c, -(-(hi - x.start_us) // c)
        flags[i0:i1] = b"\x01" * (i1 - i0)


def collide(new, context=(), *, rng: np.random.Generator, char_us: int) -> Line:
    """The line made by the transmissions ``new``, with ``context`` (earlier ones whose DE may
    still be up) garbling them but contributing no bytes of their own (their bytes were heard
    already). Bytes that overlap another driver's enable interval are garbled in both."""
    new = list(new)
    bad = {id(t): bytearray(len(t.data)) for t in new}
    txs = sorted(new + list(context), key=lambda t: t.start_us)
    for i, a in enumerate(txs):
        for j in range(i + 1, len(txs)):
            b = txs[j]
            if b.start_us >= a.release_us:
                break
            if a.driver != b.driver:
                _mark(a, b, bad)
                _mark(b, a, bad)
    events, spans = [], []
    for t in new:
        flags = bad[id(t)]
        for k, byte in enumerate(t.data):
            s = t.start_us + k * t.char_us
            if flags[k]:
                spans.append((s, s + t.char_us))
            else:
                events.append((s, byte, 0))
    spans.sort()
    merged: list[list[int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    for s, e in merged:
        n = max(1, (e - s) // char_us)
        for k, byte in enumerate(rng.integers(0, 256, n).tolist()):
            events.append((s + k * char_us, byte, 1))
    events.sort(key=lambda ev: ev[0])
    return Line(bytes(ev[1] for ev in events), [ev[0] for ev in events],
                bytes(ev[2] for ev in events), char_us)


@dataclass
class Heard:
    """A chunk a receiver completed: the bytes through the delimiter, the delimiter's stop
    bit (us), whether it holds garbled or lost bytes, and the delimiter's place in
    :attr:`Receiver.stream`."""

    chunk: bytes
    eof_us: int
    suspect: bool
    at: int


class Receiver:
    """A transceiver's receive side and its UART: what one node gets of the line.

    ``deaf`` windows (us, start and end) lose every byte that overlaps them (driving, booting);
    ``stalls`` (start, end, bytes kept) keep only the first :data:`FIFO_BYTES` bytes whose stop
    bit falls in them. ``stream`` is the last :meth:`hear`'s bytes, after the ``base`` bytes
    left pending before it.
    """

    def __init__(self) -> None:
        self.pending = bytearray()
        self.pending_flags = bytearray()
        self.lost = False  # bytes lost since the last byte kept, in the chunk in progress
        self.deaf: list[tuple[int, int]] = []
        self.stalls: list[list[int]] = []
        self.stream = bytearray()
        self.base = 0

    def stall_end_us(self, t_us: int) -> int:
        """When an interrupt due at ``t_us`` runs (us): at once, or when a stall ends."""
        for s, e, _ in self.stalls:
            if s < t_us <= e:
                return e
        return t_us

    def _drops(self, line: Line) -> list[tuple[int, int]]:
        c, t0 = line.char_us, line.t0
        first = t0[0]
        self.deaf = [w for w in self.deaf if w[1] > first]
        drops = []
        for s, e in self.deaf:
            a, b = bisect.bisect_right(t0, s - c), bisect.bisect_left(t0, e)
            if a < b:
                drops.append((a, b))
        for st in self.stalls:
            a, b = bisect.bisect_right(t0, st[0] - c), bisect.bisect_right(t0, st[1] - c)
            take = max(0, min(FIFO_BYTES - st[2], b - a))
            st[2] += take
            if a + take < b:
                drops.append((a + take, b))
        drops.sort()
        merged: list[tuple[int, int]] = []
        for a, b in drops:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged

    def hear(self, line: Line) -> list[Heard]:
        """Receive ``line``: the chunks completed, in order. The bytes received are
        ``stream[base:]``; those after the last delimiter stay pending."""
        if not line.data:
            return []
        stream, flags = self.pending, self.pending_flags
        self.base = len(stream)
        segs: list[tuple[int, int]] = []  # (stream position, line index) of each kept run
        pos, n = 0, len(line.data)
        for a, b in [*self._drops(line), (n, n)]:
            if pos < a:
                segs.append((len(stream), pos))
                stream += line.data[pos:a]
                flags += line.garbled[pos:a]
                if self.lost:
                    flags[segs[-1][0]] |= 2
                    self.lost = False
            if a < b:
                self.lost |= bool(stream and stream[-1] != 0)  # a chunk in progress loses bytes
            pos = b
        marks = [s for s, _ in segs]
        out, start = [], 0
        while (q := stream.find(0, start)) >= 0:
            k = bisect.bisect_right(marks, q) - 1
            i = segs[k][1] + q - segs[k][0]
            suspect = flags.count(0, start, q + 1) != q + 1 - start
            out.append(Heard(bytes(stream[start:q + 1]), line.t0[i] + line.char_us, suspect, q))
            start = q + 1
        self.stream = stream
        self.pending, self.pending_flags = stream[start:], flags[start:]
        return out


class _Node:
    """A board on the wire: its receiver, reply timing, clock skew (ppm) and boot time (us)."""

    def __init__(self, index: int, board, policy: ReplyTiming, skew_ppm: float, boot_us: int):
        self.index, self.board, self.policy = index, board, policy
        self.address = board.address
        self.skew_ppm, self.boot_us = skew_ppm, boot_us
        self.is_board = ADDR_BOARD_MIN <= self.address <= ADDR_BOARD_MAX
        self.rx = Receiver()
        self.boot_end_us = 0

    def accepts(self, frame: Frame) -> bool:
        """Whether the board acts on ``frame`` (PROTOCOL.md, "Receiving": a good frame for
        another address is ignored). A participant at no board address (a group of boards
        behind one transceiver) takes every frame."""
        return not self.is_board or frame.dst in (self.address, ADDR_BROADCAST)


def _forged(chunk: bytes) -> bool:
    """Whether a chunk passes the COBS, length and CRC checks of either protocol (both share
    the frame's layout and CRC-16; protocol 2's decoder checks everything but the version)."""
    from .v2.framing import FrameError as V2FrameError, decode_any

    try:
        decode_any(chunk)
    except V2FrameError:
        return False
    return True


class Wire:
    """Boards on one RS-485 line in emulated time, and the host's side of it.

    Args:
        boards: objects with ``address`` and ``handle(chunk) -> bytes | None``.
        baud: the line rate (baud).
        policy: a :class:`ReplyTiming` for every board, or a dict of them by address (boards
            not in it get :class:`V2Timing`).
        seed: seeds the clock skews, the notice latencies and the garbage.
        host_gap_us: the host's silence after the last board's last stop bit before its next
            byte (us, >= 0); default :func:`~instruments.bus.timing.turnaround_us`. Less than
            :data:`~instruments.bus.timing.DE_HOLD_US` collides with that board's DE hold.
        boot_us: boot time after ``reset`` (us): one for all, or a dict by address.
        host_timeout_us: how long the host listens for a unicast reply (us; the client's
            default ``timeout_s``).
        host_listen_us: how long the host listens after a slotted broadcast (us; the
            client's default, ``timeout_s`` and 247 slots of ``slot_s``).
        transmit: ``transmit(address, reply) -> bytes | None``, what a board's transmitter
            puts on the line for a reply (default: the reply); faults hook in here.

    Emulated time relates to the host's requests thus: a chunk the host sends starts when the
    host's previous byte ended or ``host_gap_us`` after the last board's stop bit, whichever is
    later, never earlier, since the host has already been given every byte before it. A host
    waits out its listening window: after a slotted broadcast, and after a unicast request
    that got no good reply, the next chunk starts no earlier than that window after the
    request's end of frame (plus any :meth:`idle_us`). How long the host really waited does
    not enter.
    """

    def __init__(self, boards, baud: int = 115200, policy=None, seed: int = 0,
                 host_gap_us: int | None = None, boot_us=BOOT_US, host_timeout_us: int = HOST_TIMEOUT_US,
                 host_listen_us: int = HOST_LISTEN_US, transmit=None):
        self.baud = int(baud)
        self.char_us = timing.char_us(self.baud)
        self.host_gap_us = timing.turnaround_us(self.baud) if host_gap_us is None else int(host_gap_us)
        if self.host_gap_us < 0:
            raise ValueError(f"host_gap_us must be >= 0, got {host_gap_us}")
        self._rng_skew, self._rng_time, self._rng_garble = (
            np.random.default_rng([int(seed), k]) for k in range(3))
        self.nodes: list[_Node] = []
        for i, board in enumerate(sorted(boards, key=lambda b: b.address)):
            pol = policy.get(board.address, V2Timing()) if isinstance(policy, dict) else (policy or V2Timing())
            boot = boot_us.get(board.address, BOOT_US) if isinstance(boot_us, dict) else int(boot_us)
            skew = float(self._rng_skew.uniform(-timing.CLOCK_TOLERANCE_PPM, timing.CLOCK_TOLERANCE_PPM))
            self.nodes.append(_Node(i, board, pol, skew, boot))
        self._by_address = {n.address: n for n in self.nodes}
        self._transmit = transmit or (lambda address, reply: reply)
        self.host_timeout_us, self.host_listen_us = int(host_timeout_us), int(host_listen_us)
        self.host = Receiver()
        self._host_end_us = 0
        self._listen_end_us = 0
        self._quiet_us = 0
        self._idle_us = 0
        self._recent: list[Transmission] = []

    # -- the host's side ----------------------------------------------------------------------
    @property
    def now_us(self) -> int:
        """When the host's next byte goes out (us of emulated time)."""
        return max(self._host_end_us, self._quiet_us + self.host_gap_us, self._listen_end_us) + self._idle_us

    def idle_us(self, duration_us: int) -> None:
        """The host stays silent ``duration_us`` longer before its next byte (us)."""
        self._idle_us += int(duration_us)

    def stall(self, address: int, duration_us: int = FLASH_SECTOR_ERASE_US,
              start_us: int | None = None) -> tuple[int, int]:
        """Board ``address`` runs with interrupts off (a flash erase) for ``duration_us`` from
        ``start_us`` (default :attr:`now_us`); returns the stall's (start, end) in us."""
        start = self.now_us if start_us is None else int(start_us)
        self._node(address).rx.stalls.append([start, start + int(duration_us), 0])
        return start, start + int(duration_us)

    def booting_until_us(self, address: int) -> int:
        """The end of board ``address``'s latest boot (us; 0 if it never reset)."""
        return self._node(address).boot_end_us

    def send(self, chunk: bytes) -> bytes:
        """Put the host's ``chunk`` (through its 0x00) on the line; return the bytes the host
        receives until the line is quiet again."""
        start = self.now_us
        self._idle_us = 0
        tx = Transmission(HOST, start, bytes(chunk), self.char_us, -(-self.char_us // timing.BITS_PER_CHAR))
        self._host_end_us = tx.end_us
        self.host.deaf.append((tx.start_us, tx.release_us))
        self._recent = [t for t in self._recent if t.release_us > start]
        new = [tx]
        received = bytearray()
        while new:
            line = collide(new, self._recent, rng=self._rng_garble, char_us=self.char_us)
            self._recent += new
            received += self._host_hears(line)
            frames: dict[bytes, Frame | None] = {}  # decoded once per line, for every board
            new = []
            for node in self.nodes:
                new += self._board_hears(node, line, frames)
            if new:
                self._quiet_us = max(self._quiet_us, max(t.end_us for t in new))
        self._listen_end_us = tx.end_us + self._listening_us(tx.data, received)
        return bytes(received)

    def _listening_us(self, chunk: bytes, received: bytes) -> int:
        """How long after the end of ``chunk`` the host listens, having got ``received``."""
        try:
            request = decode_frame(chunk)
        except FrameError:
            return 0
        if request.dst == ADDR_BROADCAST:
            spec = COMMANDS_BY_CODE.get(request.cmd)
            return self.host_listen_us if spec is not None and spec.broadcast == BROADCAST_SLOTTED else 0
        answer = (request.dst, request.seq, request.cmd | REPLY_BIT)
        if any(isinstance(f, Frame) and (f.src, f.seq, f.cmd) == answer for f in split_stream(received)):
            return 0
        return self.host_timeout_us

    def _node(self, address: int) -> _Node:
        try:
            return self._by_address[address]
        except KeyError:
            raise ValueError(f"no board at address {address} on this wire") from None

    @staticmethod
    def _unforge(rx: Receiver, heard: Heard) -> Heard:
        """A chunk with garbled or lost bytes that still decodes gets its last byte changed."""
        i = heard.at - 1
        if not heard.suspect or i < rx.base or not _forged(heard.chunk):
            return heard
        for bit in range(8):
            rx.stream[i] ^= 1 << bit
            chunk = heard.chunk[:-2] + bytes((rx.stream[i], 0))
            if rx.stream[i] and not _forged(chunk):
                return Heard(chunk, heard.eof_us, True, heard.at)
            rx.stream[i] ^= 1 << bit
        return heard

    def _host_hears(self, line: Line) -> bytes:
        for heard in self.host.hear(line):
            self._unforge(self.host, heard)
        return bytes(self.host.stream[self.host.base:])

    def _board_hears(self, node: _Node, line: Line, frames: dict) -> list[Transmission]:
        out = []
        for heard in node.rx.hear(line):
            if heard.chunk == b"\x00":
                continue
            if heard.chunk not in frames:
                try:
                    frames[heard.chunk] = decode_frame(heard.chunk)
                except FrameError:
                    frames[heard.chunk] = None
            frame = frames[heard.chunk]
            if frame is not None and heard.suspect:
                heard, frame = self._unforge(node.rx, heard), None
            if frame is not None and not node.accepts(frame):
                continue
            reply = node.board.handle(heard.chunk)
            resets = node.is_board and frame is not None and frame.cmd == Cmd.RESET
            if reply is None and not resets:
                continue
            notice = node.rx.stall_end_us(heard.eof_us) + node.policy.notice_us(self._rng_time)
            boot_from = notice
            reply = None if reply is None else self._transmit(node.address, reply)
            if reply:
                slotted = node.is_board and frame is not None and frame.dst == ADDR_BROADCAST
                address = node.address if node.is_board else ADDR_BOARD_MIN
                offset = node.policy.offset_us(address, self.baud, slotted)
                begin = node.rx.stall_end_us(notice + round(offset * (1 + node.skew_ppm * 1e-6)))
                tx = Transmission(node.index, begin, reply, self.char_us, timing.DE_HOLD_US)
                node.rx.deaf.append((tx.start_us, tx.release_us))
                out.append(tx)
                boot_from = tx.release_us
            if resets:
                node.boot_end_us = boot_from + node.boot_us
                node.rx.deaf.append((boot_from, node.boot_end_us))
                node.rx.pending.clear()
                node.rx.pending_flags.clear()
                node.rx.lost = False
        return out
