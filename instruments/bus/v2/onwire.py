"""Protocol-2 boards on the emulated RS-485 line (:class:`~instruments.bus.emulator.BusEmulator`).

The emulator's wire takes boards whose ``handle(chunk)`` returns wire bytes and times each
reply by a policy that knows protocol 1's commands only. A protocol-2
:class:`~instruments.bus.v2.reference.ReferenceBoard` computes its own start for every reply
(the turnaround, its slot by address, discover's hashed slot; PROTOCOL.md, "Timing"), so
:class:`WiredBoard` hands the wire the bytes and :class:`OwnTiming` starts them when the
board said: the wire asks the policy for the offset right after ``handle`` returns, and the
policy gives that reply's start. The end-of-frame stamp is late by 0..``EOF_JITTER_US``
and the board's crystal skews the offset, as the wire does for every board.

A reply from another board (``dst`` 0, another ``src``) is not passed to the board: the
spec has it neither counted nor answered, and with 247 boards hearing 247 replies that is
most of the emulation's work. Frames are decoded once per chunk for all boards
(:class:`_Decoded`).

:class:`V2Emulator` is the emulator a protocol-2 host is timed against: it counts the bytes
it has taken from the host and given back (so a host in the same process can tell when the
wire has carried everything a request caused, :class:`~instruments.bus.v2.link.EmulatedPort`),
and its wire is told how long the host then waited in bus time (:meth:`V2Wire.host_waited`):
a listening window, a reply timeout, a quiet time. The wire's own host model knows protocol
1's windows only; a protocol-2 host in this process says what it waited, so the emulated bus
time is what the host's timing makes it, and a host in another process (``hostctl firmware
emulate --protocol 2``) is taken to wait as protocol 2 says (:mod:`.windows`). A running
emulator is found by its port's path (:func:`serving`). Boards that write flash stall their
receiver for the typical time (:func:`busy_us`), so a host that does not keep the quiet
times loses frames.

Units: times us.
"""

from __future__ import annotations

from typing import Iterable

import threading

import numpy as np

from .. import timing
from ..emulator import BusEmulator
from ..wire import FLASH_SECTOR_ERASE_US, V1Timing, Wire
from .constants import (
    ADDR_BROADCAST, ADDR_HOST, ADDR_UNASSIGNED, BROADCAST_SELECTED, IMAGE_MAX_BYTES, REPLY_BIT,
    SECTOR_BYTES, Kind, Phase, ResetMode,
)
from . import windows
from .framing import Frame, FrameError, decode_any, split_stream
from .payloads import COMMANDS_BY_CODE, unpack_request
from .reference import ReferenceBoard
from .slots import v1_probe_timeout_us

__all__ = ["WiredBoard", "OwnTiming", "V2Wire", "V2Emulator", "LossyBoard", "make_boards", "emulate",
           "serving"]

#: Emulators running in this process, by the path of the port they serve.
_SERVING: dict[str, "V2Emulator"] = {}
_SERVING_LOCK = threading.Lock()


def serving(port: str) -> "V2Emulator | None":
    """The running :class:`V2Emulator` of this process that serves ``port``, if any."""
    with _SERVING_LOCK:
        return _SERVING.get(str(port))


class OwnTiming:
    """A wire timing policy that starts a reply when the board's own reply says (us after
    the end of frame); one policy serves every :class:`WiredBoard` of a wire."""

    def __init__(self) -> None:
        self.start_us = 0

    def notice_us(self, rng: np.random.Generator) -> int:
        return int(rng.integers(0, timing.EOF_JITTER_US + 1))

    def offset_us(self, address: int, baud: int, slotted: bool) -> int:
        return self.start_us


class _Decoded(dict):
    """Decoded frames by chunk, shared by the boards of one wire (the last few chunks)."""

    def frame(self, chunk: bytes):
        if chunk not in self:
            if len(self) > 64:
                self.clear()
            try:
                self[chunk] = decode_any(chunk)
            except FrameError:
                self[chunk] = None
        return self[chunk]


#: Typical flash timings (us), W25Q16JV datasheet: sector erase tSE typical 45 ms (the
#: wire's :data:`~instruments.bus.wire.FLASH_SECTOR_ERASE_US`), page program tPP typical 0.4 ms.
PAGE_PROGRAM_TYP_US = 400
STORE_WRITE_TYP_US = FLASH_SECTOR_ERASE_US + PAGE_PROGRAM_TYP_US
#: A MOSFET board's typical gate calibration before its record is stored (us): five points
#: of a set and two pulses read back (about 20 ms each) and the leak's hold of 1 s.
ACTUATOR_CAL_TYP_US = 1_100_000


def busy_us(frame, board) -> tuple[int, bool]:
    """How long ``board`` works with interrupts off on ``frame`` (erasing and programming its
    flash, typical times) before it answers, and whether it then restarts (us, bool)."""
    spec = COMMANDS_BY_CODE.get(frame.cmd)
    if spec is None or len(frame.payload) != spec.request_size:
        return 0, False
    name = spec.name
    if name in ("store_state", "store_calibration"):
        return STORE_WRITE_TYP_US, False
    if name == "assign_address":
        return (STORE_WRITE_TYP_US if unpack_request(name, frame.payload)["uid"] == board.uid else 0), False
    if name == "fw_begin":
        size = unpack_request(name, frame.payload)["size"]
        return (-(-min(size, IMAGE_MAX_BYTES) // SECTOR_BYTES) * FLASH_SECTOR_ERASE_US if size else 0), False
    if name == "fw_block":
        return PAGE_PROGRAM_TYP_US, False
    if name == "reset":
        factory = unpack_request(name, frame.payload)["mode"] == ResetMode.FACTORY
        return (2 * FLASH_SECTOR_ERASE_US if factory else 0), True
    if name == "fw_swap":
        return STORE_WRITE_TYP_US, board.firmware.phase == Phase.VERIFIED
    if name == "calibrate_actuator":  # a digipot, or a board whose flash fails, refuses at once
        refuses = board.kind != Kind.MOSFET or getattr(board, "storage_fails", False)
        return (0 if refuses else ACTUATOR_CAL_TYP_US + STORE_WRITE_TYP_US), False
    return 0, False


class WiredBoard:
    """A protocol-2 board as the wire's participant: ``address`` and ``handle(chunk) -> bytes``.

    A command that writes flash stalls the board's receiver for its typical time
    (:func:`busy_us`; the wire keeps only the UART's FIFO meanwhile, as for any stall) and
    the board answers once done; after ``reset`` or ``fw_swap`` it hears nothing for its boot
    time. So a host that does not keep a command's quiet time loses frames, as on a real
    bus. (The wire's own reset model reads protocol-1 frames only.)

    Args:
        board: the board (a :class:`ReferenceBoard`, or anything with its ``address`` and
            ``handle(chunk) -> Reply | None``, the reply with its ``status``).
        policy: the wire's :class:`OwnTiming`, told each reply's start.
        decoded: the decode cache shared by the wire's boards.
    """

    def __init__(self, board, policy: OwnTiming, decoded: _Decoded | None = None) -> None:
        self.board, self.policy = board, policy
        self._decoded = decoded if decoded is not None else _Decoded()
        self.wire = self.node = None  # set by V2Emulator: the flash stalls need them

    @property
    def address(self) -> int:
        return self.board.address

    def handle(self, chunk: bytes) -> bytes | None:
        frame = self._decoded.frame(bytes(chunk))
        if frame is not None and frame.dst == ADDR_HOST and frame.src != self.board.address:
            return None
        acts = (frame is not None and frame.version == 2 and self.node is not None
                and frame.dst in (self.board.address, ADDR_BROADCAST))
        busy, restarts = busy_us(frame, self.board) if acts else (0, False)
        reply = self.board.handle(chunk)
        if reply is not None and reply.status != 0:
            busy, restarts = 0, False  # refused: nothing written, no restart
        if busy or restarts:
            self._stall(busy, restarts, reply)
        if reply is None:
            return None
        self.policy.start_us = max(reply.start_us, busy)
        return reply.wire

    def _stall(self, busy: int, restarts: bool, reply) -> None:
        eof = self.wire.now_us  # while the wire hands out a request: its end of frame
        rx = self.node.rx
        rx.stalls = [st for st in rx.stalls if st[1] > eof]
        if busy:
            rx.stalls.append([eof, eof + busy, 0])
        if restarts:
            down = eof + busy
            if reply is not None:
                down = eof + max(reply.start_us, busy) + len(reply.wire) * self.wire.char_us + timing.DE_HOLD_US
            rx.deaf.append((down, down + self.node.boot_us))


class LossyBoard(ReferenceBoard):
    """A reference board whose receiver misses some firmware-update frames (as one does
    that was busy, or behind a bad connector): the first ``fw_block`` of each block number in
    ``lose`` and the first ``lose_begin`` ``fw_begin`` frames never reach it. It logs every
    ``fw_block`` it does receive for itself as (dst, block) in ``blocks_heard``."""

    def __init__(self, *args, lose=(), lose_begin: int = 0, **kw) -> None:
        super().__init__(*args, **kw)
        self.lose, self.lose_begin = set(lose), int(lose_begin)
        self.blocks_heard: list[tuple[int, int]] = []

    @classmethod
    def like(cls, board: ReferenceBoard, **kw) -> "LossyBoard":
        """A lossy board with ``board``'s uid, kind, address and self-test."""
        new = cls(board.uid, board.kind, address=board.address, baud=board.baud, **kw)
        new.firmware.self_test = board.firmware.self_test
        return new

    def handle(self, chunk: bytes):
        from .payloads import Cmd, unpack_request

        try:
            f = decode_any(chunk)
        except FrameError:
            f = None
        if f is not None and f.version == 2 and f.dst in (self.address, 255):
            if f.cmd == Cmd.FW_BEGIN and self.lose_begin > 0:
                self.lose_begin -= 1
                return None
            if f.cmd == Cmd.FW_BLOCK:
                try:
                    n = unpack_request("fw_block", f.payload)["block"]
                except ValueError:
                    n = None
                if n in self.lose:
                    self.lose.discard(n)
                    return None
                if n is not None:
                    self.blocks_heard.append((f.dst, n))
        return super().handle(chunk)


def make_boards(n: int, *, unassigned: bool = False, kind: Kind = Kind.MOSFET, seed: int = 0,
                **board_args) -> list[ReferenceBoard]:
    """``n`` protocol-2 reference boards (1..247) with distinct uids drawn from ``seed``: at
    addresses 1..n, or all at the unassigned address 248 (``unassigned``)."""
    if not 1 <= n <= 247:
        raise ValueError(f"number of boards must be 1..247, got {n}")
    rng = np.random.default_rng(seed)
    uids: list[bytes] = []
    while len(uids) < n:
        uid = bytes(rng.integers(0, 256, 8, dtype=np.uint8))
        if uid not in uids:
            uids.append(uid)
    return [ReferenceBoard(uid, kind, address=ADDR_UNASSIGNED if unassigned else a, **board_args)
            for a, uid in enumerate(uids, start=1)]


class V2Wire(Wire):
    """The wire, with a protocol-2 host's waits. A host in this process says how long it
    waited after each request (:meth:`host_waited`; an :class:`~.link.EmulatedPort` sets
    ``host_declares``); a host in another process, which waits in real time, is taken to
    wait as protocol 2 says (:mod:`.windows`: the reply or its window, the last slot, the
    quiet time), since the wire cannot see it wait."""

    host_declares = False
    #: The window (us after its end of frame) the host listens for its next request's
    #: replies, told before it sends (:meth:`host_will_listen`); None when not told.
    _window_us: int | None = None

    @property
    def now_us(self) -> int:
        """When the host's next byte goes out (us). A host that declares its waits sends as
        soon as they end, whether or not a board is still talking: a reply later than the
        host's window is not heard by it and collides with its next request, as on a real
        bus. Otherwise as :attr:`Wire.now_us <instruments.bus.wire.Wire.now_us>` (the host
        waits until the line is quiet)."""
        if self.host_declares and self._window_us is not None:
            return max(self._host_end_us, self._listen_end_us) + self._idle_us
        return super().now_us

    def host_will_listen(self, window_us: int) -> None:
        """The host's next request is listened to for ``window_us`` after its end of frame
        (or until the reply it waits for): what arrives later is not heard."""
        self._window_us = int(window_us)

    def send(self, chunk: bytes) -> bytes:
        self._heard_end_us = None
        received = super().send(chunk)
        if self.host_declares and self._window_us is not None:
            # the host resumes its gap after the last reply it heard in its window (its
            # software's and adapter's silence after a stop bit: Wire's host_gap_us), or, if
            # it heard none, when it says it stopped waiting (host_waited)
            self._listen_end_us = (self._host_end_us if self._heard_end_us is None
                                   else self._heard_end_us + self.host_gap_us)
        return received

    def _host_hears(self, line) -> bytes:
        """What the host receives of ``line``: every chunk whose delimiter arrives within its
        window (when it declared one), none after."""
        chunks = self.host.hear(line)
        for heard in chunks:
            self._unforge(self.host, heard)
        stream, base = self.host.stream, self.host.base
        if not self.host_declares or self._window_us is None:
            return bytes(stream[base:])
        out, start = bytearray(), base
        deadline = self._host_end_us + self._window_us
        for heard in chunks:
            if heard.eof_us <= deadline:
                out += stream[max(start, base):heard.at + 1]
                self._heard_end_us = max(self._heard_end_us or 0, heard.eof_us)
            start = heard.at + 1
        out += stream[max(start, base):]  # a chunk in progress (completed later, or garbled)
        return bytes(out)

    def _listening_us(self, chunk: bytes, received: bytes) -> int:
        if self.host_declares:
            return super()._listening_us(chunk, received)
        try:
            f = decode_any(chunk)
        except FrameError:
            return 0
        spec = COMMANDS_BY_CODE.get(f.cmd)
        if f.version != 2 or f.is_reply or spec is None:
            return super()._listening_us(chunk, received)  # protocol 1's (the probe's timeout)
        try:
            req = unpack_request(spec.name, f.payload)
        except ValueError:
            return 0  # no board answers a request of the wrong length
        answer = (f.seq, f.cmd | REPLY_BIT)
        answered = any(isinstance(r, Frame) and r.dst == ADDR_HOST and (r.seq, r.cmd) == answer
                       for r in split_stream(received, decode_any))
        if f.dst == ADDR_BROADCAST:
            window = windows.broadcast_window_us(spec.name, self.baud, **req)
            selected = spec.broadcast == BROADCAST_SELECTED
            return 0 if selected and answered else window
        if answered and spec.name not in windows.RESTARTS:
            return 0
        return windows.unicast_window_us(spec.name, self.baud, **req)

    def host_waited(self, window_us: int) -> None:
        """The host sent nothing until ``window_us`` after its last request's end of frame
        (a listening window, a reply timeout or a quiet time): its next byte goes out no
        earlier (us)."""
        self._listen_end_us = max(self._listen_end_us, self._host_end_us + int(window_us))


class V2Emulator(BusEmulator):
    """A :class:`~instruments.bus.emulator.BusEmulator` on a :class:`V2Wire` that counts the
    bytes it took from the host (``bytes_in``) and gave back (``bytes_out``) once each chunk
    is done, and registers itself by port while running (:func:`serving`)."""

    wire_class = V2Wire

    def __init__(self, boards, faults=None, **kw) -> None:
        super().__init__(boards, faults, **kw)
        for node in self.wire.nodes:
            if isinstance(node.board, WiredBoard):
                node.board.wire, node.board.node = self.wire, node
        self.bytes_in = self.bytes_out = 0
        self.done = threading.Condition()
        #: The exception that stopped the emulator, if one did.
        self.error: Exception | None = None

    def start(self) -> None:
        with _SERVING_LOCK:
            _SERVING[self.port] = self
        super().start()

    def close(self) -> None:
        with _SERVING_LOCK:
            if _SERVING.get(self.port) is self:
                del _SERVING[self.port]
        super().close()

    def bus_time_us(self) -> int:
        """Emulated time when the host's next byte would go out (us)."""
        return self.wire.now_us

    def _feed(self, data: bytes) -> None:
        try:
            super()._feed(data)
        except Exception as exc:  # a broken emulator: the host is told at once, not after a timeout
            with self.done:
                self.error = exc
                self.done.notify_all()
            raise

    def _chunk_done(self, taken: int, given: int) -> None:
        with self.done:
            self.bytes_out += given
            self.bytes_in += taken
            self.done.notify_all()


def emulate(boards: Iterable, others: Iterable = (), *, others_timing=None, **emulator_args) -> V2Emulator:
    """A :class:`V2Emulator` serving protocol-2 ``boards`` (wrapped in :class:`WiredBoard`)
    and ``others`` as they are (protocol-1 boards, which answer with wire bytes, by
    ``others_timing``, protocol 1's :class:`~instruments.bus.wire.V1Timing` by default).
    The host's unicast timeout the wire assumes is the version-1 probe's, the only
    protocol-1 frame a protocol-2 host sends."""
    policy, decoded = OwnTiming(), _Decoded()
    wired = [WiredBoard(b, policy, decoded) for b in boards]
    others = list(others)
    timing_by_address = {o.address: others_timing or V1Timing() for o in others}
    timing_by_address.update({w.address: policy for w in wired})
    emulator_args.setdefault("host_timeout_us", v1_probe_timeout_us(emulator_args.get("baud", 115200)))
    return V2Emulator([*wired, *others], timing=timing_by_address, **emulator_args)
