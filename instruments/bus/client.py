"""The host's edge-bus client: request and reply over a serial port (pyserial).

:class:`BusClient` sends one request at a time and waits for the reply whose source,
command and sequence number match; anything else that arrives meanwhile (a late duplicate
of an earlier reply, a corrupted frame, a reply from another board) is counted and
dropped, never mistaken for the answer. Requests that are safe to repeat are retried after
a timeout or a corrupted reply; ``learn`` and ``reset`` change the board in a way a repeat
would double, so a lost reply to them is reported, not retried.

Every frame goes out with a 0x00 before it as well as after
(:func:`~instruments.bus.protocol.line_frame`), so line noise received before it cannot
glue onto it. A scan repeats its identify broadcast until two passes agree and reports
the replies that arrived garbled (:class:`ScanResult`).

Framing and checksums come from :mod:`instruments.bus.protocol` (the ``cobs`` and ``crc``
packages). Times are in seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import serial

from . import protocol as p

#: Commands whose repetition leaves the board as one execution would.
IDEMPOTENT = frozenset(
    {"identify", "read_state", "set_state", "configure_rule", "sample_drops", "read_telemetry",
     "store_calibration", "read_calibration"}
)
KIND_NAMES = {int(k): k.name.lower() for k in p.Kind}
#: Longest single read while waiting for a reply (s); a deadline can overrun by this much.
_POLL_S = 0.002
#: Line rates a port is opened at (baud): what RS-485 transceivers and USB adapters run.
BAUDRATE_MIN, BAUDRATE_MAX = 300, 4_000_000


class BusError(RuntimeError):
    """A request failed; the message names the board and the command."""


class BusTimeout(BusError):
    """No valid reply arrived in time (after the retries allowed for the command)."""


class BoardError(BusError):
    """The board answered with a status other than ok.

    Attributes:
        status: the error code (:class:`~instruments.bus.protocol.Error`).
    """

    def __init__(self, address: int, command: str, status: int):
        self.address, self.command, self.status = address, command, status
        try:
            name = p.Error(status).name.lower()
        except ValueError:
            name = f"unknown status {status}"
        super().__init__(f"board {address}: {command} refused: {name} ({status})")


class ProtocolMismatch(BusError):
    """A board speaks another protocol version than this host."""


@dataclass(frozen=True)
class BoardInfo:
    """What a board says of itself (the identify reply)."""

    address: int
    uid: str  # hex
    kind: str  # "digipot" or "mosfet"
    firmware: str  # "major.minor.patch"
    protocol: int
    #: 0 for a board whose identify reply ends before ``protocol_minor`` (firmware 1.1.0 and
    #: before: the rule floors); 1 from firmware 1.2.0 (the rule rounds to nearest).
    protocol_minor: int = 0

    def as_dict(self) -> dict:
        return {"address": self.address, "uid": self.uid, "kind": self.kind,
                "firmware": self.firmware, "protocol": self.protocol,
                "protocol_minor": self.protocol_minor}


class ScanResult(list):
    """The boards a scan found (a list of :class:`BoardInfo`, in address order), with how
    the scan went.

    Attributes:
        passes: identify broadcasts sent (2 or more).
        garbled: replies that arrived corrupted (bad COBS, CRC, length) over all passes.
        agreed: True when the last two passes heard the same boards say the same; False
            when the scan gave up after ``max_passes`` (the boards are then every board
            heard in any pass).
        missed: addresses of boards heard in some passes but not in every one (their
            reply lost or garbled in the others), in address order.
    """

    def __init__(self, boards=(), passes: int = 0, garbled: int = 0, agreed: bool = True,
                 missed=()):
        super().__init__(boards)
        self.passes, self.garbled, self.agreed = passes, garbled, agreed
        self.missed = sorted(missed)

    def summary(self) -> str:
        """One line: boards, passes, garbled replies, boards missing from some passes."""
        agreed = "" if self.agreed else ", the passes did not agree"
        missed = f", {len(self.missed)} missing from some passes" if self.missed else ""
        return (f"{len(self)} board(s) in {self.passes} passes, {self.garbled} "
                f"repl{'y' if self.garbled == 1 else 'ies'} garbled{missed}{agreed}")


def scan_passes(one_pass, max_passes: int) -> tuple[dict[int, dict], int, int, bool, set[int]]:
    """The passes of a scan, for either protocol's client: ``one_pass()`` broadcasts identify
    once and returns ({address: reply} of the clean replies, replies garbled); passes repeat
    until two in a row hear the same and the second garbled nothing, at most ``max_passes``
    (2..16, checked by the caller). Returns (every board heard, its last reply; passes;
    replies garbled; agreed; addresses some pass missed)."""
    heard: dict[int, dict] = {}
    previous = None
    garbled = passes = 0
    missed: set[int] = set()
    while passes < max_passes:
        current, bad = one_pass()
        passes += 1
        garbled += bad
        missed |= set(heard) - set(current)
        if passes > 1:
            missed |= set(current) - set(heard)
        heard.update(current)
        if current == previous and bad == 0:
            return heard, passes, garbled, True, missed
        previous = current
    return heard, passes, garbled, False, missed


@dataclass
class BusStats:
    """Counters of what the client saw: requests sent, retries, dropped frames."""

    requests: int = 0
    retries: int = 0
    corrupted: int = 0
    stray: int = 0


class BusClient:
    """Request/reply client of the edge bus.

    Args:
        port: a device path or pyserial URL, or an open :class:`serial.Serial`.
        baudrate: line rate (baud), 300..4,000,000, default 115200.
        timeout_s: how long to wait for one reply (s), default 0.05.
        retries: extra attempts for idempotent commands, default 2.
        slot_s: reply slot per address for slotted broadcasts (s), default 0.002.
    """

    def __init__(self, port, baudrate: int = 115200, timeout_s: float = 0.05, retries: int = 2,
                 slot_s: float = 0.002):
        if isinstance(port, str):
            if not BAUDRATE_MIN <= baudrate <= BAUDRATE_MAX:
                raise BusError(f"baudrate must be {BAUDRATE_MIN}..{BAUDRATE_MAX:,} baud, got {baudrate}")
            try:
                self.serial = serial.serial_for_url(port, baudrate=baudrate)
            except (serial.SerialException, ValueError, OSError, OverflowError) as exc:
                raise BusError(f"cannot open the bus port {port}: {exc}") from None
        else:
            self.serial = port
        self.port_name = getattr(self.serial, "port", str(port))
        # short reads, set once: the receive loop polls against its own deadline
        self.serial.timeout = _POLL_S
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.slot_s = float(slot_s)
        self._seq = 0
        self._splitter = p.FrameSplitter()
        self.stats = BusStats()
        #: Replies that arrived garbled in the last broadcast (or in all passes of the last scan).
        self.last_broadcast_garbled = 0

    # -- plumbing ------------------------------------------------------------------------------
    def close(self) -> None:
        self.serial.close()

    def __enter__(self) -> "BusClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _send(self, frame: p.Frame) -> None:
        self.serial.reset_input_buffer()
        self._splitter.reset()
        self.serial.write(p.line_frame(frame))  # 0x00 first: noise before it ends there
        self.serial.flush()

    def _receive(self, deadline: float):
        """Frames and errors received until ``deadline`` (monotonic s), as they arrive."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            data = self.serial.read(max(1, self.serial.in_waiting))
            if data:
                yield from self._splitter.feed(data)

    # -- requests ------------------------------------------------------------------------------
    def request(self, address: int, command: str, **fields) -> dict:
        """Send ``command`` to board ``address`` and return its reply fields (status ok).

        Raises:
            BusTimeout: no valid reply after the allowed attempts.
            BoardError: the board refused the request (its status names why).
        """
        if not p.ADDR_BOARD_MIN <= address <= p.ADDR_BOARD_MAX:
            raise BusError(f"board address must be {p.ADDR_BOARD_MIN}..{p.ADDR_BOARD_MAX}, got {address}")
        spec = p.command_spec(command)
        attempts = 1 + (self.retries if spec.name in IDEMPOTENT else 0)
        last = "no reply"
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
            seq = self._next_seq()
            self.stats.requests += 1
            self._send(p.request_frame(address, seq, spec.name, **fields))
            for item in self._receive(time.monotonic() + self.timeout_s):
                if isinstance(item, p.FrameError):
                    self.stats.corrupted += 1
                    last = f"corrupted reply ({item.name})"
                    break  # the reply we wait for may be the one that was corrupted
                if (item.src, item.seq, item.cmd) != (address, seq, spec.code | p.REPLY_BIT) or item.dst != p.ADDR_HOST:
                    self.stats.stray += 1
                    continue
                try:
                    reply = p.unpack_reply(spec.name, item.payload)
                except p.PayloadError as exc:
                    self.stats.corrupted += 1
                    last = f"malformed reply ({exc})"
                    break
                if reply["status"] != p.Error.OK:
                    raise BoardError(address, spec.name, reply["status"])
                return reply
        unsafe = "" if spec.name in IDEMPOTENT else " (not retried: repeating it is not safe; check the board's state)"
        raise BusTimeout(f"board {address}: {spec.name}: {last} after {attempts} attempt(s){unsafe} on {self.port_name}")

    def broadcast(self, command: str, expect=None, **fields) -> dict[int, dict]:
        """Broadcast ``command``; for slotted commands, the replies by address, else {}.

        A slotted broadcast listens until the slot of address 247 has passed, or, when
        ``expect`` (a collection of addresses) is given, until every one of them has answered.
        Replies that arrive garbled are counted (``stats.corrupted`` and
        ``last_broadcast_garbled``) and dropped.
        """
        replies, self.last_broadcast_garbled = self._broadcast(command, expect, **fields)
        return replies

    def _broadcast(self, command: str, expect=None, **fields) -> tuple[dict[int, dict], int]:
        spec = p.command_spec(command)
        if spec.broadcast == "refused":
            raise BusError(f"{spec.name} may not be broadcast")
        seq = self._next_seq()
        self.stats.requests += 1
        self._send(p.request_frame(p.ADDR_BROADCAST, seq, spec.name, **fields))
        if spec.broadcast != "slotted":
            return {}, 0
        replies: dict[int, dict] = {}
        garbled = 0
        waiting = None if expect is None else set(expect)
        if waiting is not None and not waiting:
            return replies, 0
        deadline = time.monotonic() + self.timeout_s + self.slot_s * p.ADDR_BOARD_MAX
        for item in self._receive(deadline):
            if isinstance(item, p.FrameError):
                self.stats.corrupted += 1
                garbled += 1
                continue
            if item.seq != seq or item.cmd != spec.code | p.REPLY_BIT or item.dst != p.ADDR_HOST:
                self.stats.stray += 1
                continue
            try:
                reply = p.unpack_reply(spec.name, item.payload)
            except p.PayloadError:
                self.stats.corrupted += 1
                garbled += 1
                continue
            replies[item.src] = reply
            if waiting is not None:
                waiting.discard(item.src)
                if not waiting:
                    break
        return replies, garbled

    # -- board-level operations ------------------------------------------------------------------
    @staticmethod
    def _info(address: int, r: dict) -> BoardInfo:
        return BoardInfo(address, r["uid"].hex(), KIND_NAMES.get(r["kind"], f"kind {r['kind']}"),
                         f"{r['fw_major']}.{r['fw_minor']}.{r['fw_patch']}", r["protocol"],
                         r.get("protocol_minor", 0))

    def identify(self, address: int) -> BoardInfo:
        """The board's identity; :class:`ProtocolMismatch` if it speaks another version.
        Boards of every minor version of this protocol are accepted (minor 0, whose reply
        has no ``protocol_minor``, and minor 1)."""
        info = self._info(address, self.request(address, "identify"))
        self._check_version(info)
        return info

    def _check_version(self, info: BoardInfo) -> None:
        if info.protocol != p.PROTOCOL_VERSION:
            raise ProtocolMismatch(
                f"board {info.address} (uid {info.uid}, firmware {info.firmware}) speaks protocol "
                f"version {info.protocol}; this host speaks {p.PROTOCOL_VERSION}"
            )

    def scan(self, max_passes: int = 6) -> ScanResult:
        """Every board on the bus, in address order.

        A pass is one slotted identify broadcast; passes repeat until two in a row hear the
        same boards say the same and the second of them garbled no reply (at least two
        passes, at most ``max_passes``, 2..16), so a reply lost to a garbled frame in one pass
        is heard in another, and passes that hear the same because colliding boards garble
        each other every time do not count as agreeing. The result holds
        every board heard in any pass (the last reply of each), how many passes were sent,
        how many replies arrived garbled and which boards some pass missed.
        """
        if not 2 <= int(max_passes) <= 16:
            raise BusError(f"a scan takes 2..16 passes, got {max_passes}")

        def one_pass():
            replies, bad = self._broadcast("identify")
            return {a: r for a, r in replies.items() if r["status"] == 0}, bad

        heard, passes, garbled, agreed, missed = scan_passes(one_pass, int(max_passes))
        self.last_broadcast_garbled = garbled
        boards = [self._info(a, r) for a, r in sorted(heard.items())]
        for info in boards:
            self._check_version(info)
        return ScanResult(boards, passes, garbled, agreed, missed)

    def read_states(self, addresses=None) -> dict[int, int]:
        """Learned state of every board (one slotted broadcast, which ends as soon as every
        board in ``addresses`` has answered); boards in ``addresses`` that did not answer are
        asked one by one."""
        expect = [] if addresses is None else [int(a) for a in addresses]
        replies = self.broadcast("read_state", expect=expect or None)
        states = {a: r["state"] for a, r in replies.items() if r["status"] == 0}
        for a in expect:
            if a not in states:
                states[a] = self.request(a, "read_state")["state"]
        return states
