"""The host's protocol-2 client of one edge bus: requests, broadcasts, finding boards.

:class:`Bus` speaks protocol 2 (``firmware/protocol/PROTOCOL.md``) over one port
(:mod:`.link`: a real serial port, or an emulator's pseudo-terminal in emulated time). Every
wait is the spec's, counted from the request's end of frame: a unicast reply within the
turnaround, the reply latency and the command's quiet time
(:func:`~instruments.bus.v2.slots.unicast_reply_window_us`); a slotted broadcast heard until
:func:`~instruments.bus.v2.slots.listen_us`; after a command that blocks, nothing sent for
its quiet time (:func:`~instruments.bus.v2.payloads.quiet_ms`); the version-1 probe's reply
within :func:`~instruments.bus.v2.slots.v1_probe_timeout_us`.

A reply is the answer only when its version, destination, source, sequence number and
command match; anything else is counted and dropped. Requests that are safe to repeat are
retried after no reply or a garbled one; ``learn``, ``reset``, ``store_state``,
``fw_begin`` and ``fw_swap`` are not (a lost reply to them is reported).

Finding boards ("Finding boards"): :meth:`Bus.probe_v1` refuses protocol-1 boards by name;
:meth:`Bus.scan` repeats the slotted identify until two passes agree with no garbled reply;
:meth:`Bus.assign_unassigned` discovers unassigned boards in hashed slots with fresh salts
and gives each an address by its uid; :meth:`Bus.find_duplicates` names the addresses two
boards share. Firmware update is :mod:`.host_update`; several buses, :mod:`.rig`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .. import payloads as v1_payloads, timing
from ..client import ScanResult, scan_passes  # one scan rule and its result for both protocols
from .. import client as _v1  # protocol 1's error classes, which protocol 2's extend
from .constants import (
    ADDR_BOARD_MAX, ADDR_BOARD_MIN, ADDR_BROADCAST, ADDR_HOST, ADDR_UNASSIGNED, BAUD_DEFAULT,
    BROADCAST_HASHED, BROADCAST_REFUSED, BROADCAST_SELECTED, BROADCAST_SILENT, BROADCAST_SLOTTED,
    DISCOVER_SLOTS_MAX, PROTOCOL_VERSION, REPLY_BIT, V1_VERSION, Error, Flag, Kind, ResetCause,
    ResetMode,
)
from .framing import Frame, FrameError
from .link import PortError, open_port
from .payloads import PayloadError, command_spec, request_frame, unpack_reply
from . import windows
from .windows import RESTARTS
from .actuator import GateCalibration

__all__ = [
    "BusError", "BusTimeout", "BusGarbled", "BoardError", "ProtocolMismatch", "BoardInfo",
    "ScanResult", "Heard", "Duplicates", "Bus", "IDEMPOTENT",
]

#: Commands whose repetition leaves the board as one execution would (writing a block or an
#: address twice is harmless; a second verify of a verified image is ok).
IDEMPOTENT = frozenset({
    "identify", "read_state", "set_state", "configure_rule", "sample_drops", "read_telemetry",
    "store_calibration", "read_calibration", "read_actuator", "discover", "assign_address",
    "fw_block", "fw_status", "fw_verify", "calibrate_actuator", "read_actuator_calibration",
})
KIND_NAMES = {int(k): k.name.lower() for k in Kind}
_V1_IDENTIFY = 1


class BusError(_v1.BusError):
    """A request failed; the message names the bus, the board and the command. Each error
    class of protocol 2 is also protocol 1's of the same name (``except
    instruments.bus.client.BusError`` catches both protocols')."""


class BusTimeout(BusError, _v1.BusTimeout):
    """No valid reply arrived in time (after the retries allowed for the command)."""


class BusGarbled(BusTimeout):
    """Only garbled replies arrived: two boards answered at once (or the line is noisy)."""


class BoardError(BusError, _v1.BoardError):
    """The board answered with a status other than ok (``status``, :class:`Error`)."""

    def __init__(self, bus: str, address: int, command: str, status: int):
        self.address, self.command, self.status = address, command, status
        try:
            name = Error(status).name.lower()
        except ValueError:
            name = f"unknown status {status}"
        RuntimeError.__init__(self, f"{bus}: board {address}: {command} refused: {name} ({status})")


class ProtocolMismatch(BusError, _v1.ProtocolMismatch):
    """Boards on the bus speak protocol 1 (``boards``: their probe replies, by address)."""

    def __init__(self, message: str, boards: dict):
        RuntimeError.__init__(self, message)
        self.boards = boards


@dataclass(frozen=True)
class BoardInfo:
    """What a board says of itself (identify or discover), and the bus it is on."""

    bus: str
    address: int
    uid: str  # 16 hex digits
    kind: str
    firmware: str  # "major.minor.patch"
    protocol: int
    protocol_minor: int
    flags: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.bus, self.address)

    @property
    def duplicate_flag(self) -> bool:
        return bool(self.flags & Flag.DUPLICATE_ADDRESS)

    def as_dict(self) -> dict:
        return {"bus": self.bus, "address": self.address, "uid": self.uid, "kind": self.kind,
                "firmware": self.firmware, "protocol": self.protocol,
                "protocol_minor": self.protocol_minor, "flags": self.flags}


def version_text(r: dict) -> str:
    return f"{r['fw_major']}.{r['fw_minor']}.{r['fw_patch']}"


@dataclass
class Heard:
    """What one broadcast heard: ``replies`` by source address (slotted), or in order
    (``hashed``, ``selected``); ``garbled`` replies dropped."""

    replies: dict | list
    garbled: int = 0


@dataclass
class Duplicates:
    """Addresses two or more boards share: the uids heard at each (``by_address``), and the
    addresses found shared whose uids discovery could not all hear (``unresolved``)."""

    by_address: dict[int, list[str]] = field(default_factory=dict)
    unresolved: list[int] = field(default_factory=list)
    #: Addresses no board answered, asked one by one: free for :meth:`Bus.resolve_duplicates`.
    empty: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.by_address or self.unresolved)

    def summary(self, bus: str) -> str:
        parts = [f"address {a} is shared by boards {', '.join(u)}" for a, u in sorted(self.by_address.items())]
        parts += [f"address {a} is shared by two or more boards not all heard" for a in self.unresolved]
        return f"{bus}: " + ("; ".join(parts) if parts else "no address is shared")


@dataclass
class BusStats:
    requests: int = 0
    retries: int = 0
    garbled: int = 0
    stray: int = 0


class Bus:
    """Protocol-2 client of one bus.

    Args:
        port: a device path or pyserial URL (an emulator of this process is found by its
            path), an open :class:`serial.Serial`, or a port of :mod:`.link`.
        baud: line rate, 115200 by default (the slots and timeouts are sized from it).
        name: the bus's name in messages and board keys (default the port's path).
        latency_s: a real port's extra wait beyond every bus-time window (s).
        retries: extra attempts of the commands in :data:`IDEMPOTENT`.
        seed: seeds the salts of ``discover`` (default: fresh from the system).
    """

    def __init__(self, port, baud: int = BAUD_DEFAULT, *, name: str | None = None,
                 latency_s: float = 0.05, retries: int = 2, seed: int | None = None):
        if hasattr(port, "exchange"):
            self.port = port
        else:
            try:
                self.port = open_port(port, baud, latency_s)
            except PortError as exc:
                raise BusError(str(exc)) from None
        self.baud = int(baud)
        self.char_us = timing.char_us(self.baud)
        self.name = name or self.port.name
        self.retries = int(retries)
        self.rng = random.Random(seed)
        self.stats = BusStats()
        #: Addresses whose version-1 probe was answered garbled every time (the last probe).
        self.probe_garbled: list[int] = []
        self._seq = 0

    def close(self) -> None:
        self.port.close()

    def _exchange(self, frame: Frame, window_us: int, done=None, replies: bool = True) -> list:
        """The port's exchange; a port that fails is a :class:`BusError` naming it."""
        try:
            return self.port.exchange(frame, window_us, done, replies)
        except PortError as exc:
            raise BusError(str(exc)) from None

    def __enter__(self) -> "Bus":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def bus_time_us(self) -> int:
        """The bus's clock (us): emulated time on an emulator, real time on a real port."""
        return self.port.bus_time_us()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    # -- windows (:mod:`.windows`) -----------------------------------------------------------
    def unicast_window_us(self, command: str, **fields) -> int:
        """How long after the end of frame a unicast reply may still be arriving (us)."""
        return windows.unicast_window_us(command, self.baud, **fields)

    # -- requests -----------------------------------------------------------------------
    def request(self, address: int, command: str, *, reply_from: int | None = None,
                retries: int | None = None, **fields) -> dict:
        """Send ``command`` to board ``address`` (1..248) and return its reply (status ok).
        ``retries`` overrides the bus's for a command that may be repeated.

        Raises :class:`BusTimeout` (:class:`BusGarbled` when only garbled replies came),
        :class:`BoardError` for a status other than ok.
        """
        if not ADDR_BOARD_MIN <= address <= ADDR_UNASSIGNED:
            raise BusError(f"{self.name}: board address must be 1..{ADDR_UNASSIGNED}, got {address}")
        spec = command_spec(command)
        src = address if reply_from is None else reply_from
        attempts = 1 + ((self.retries if retries is None else int(retries)) if spec.name in IDEMPOTENT else 0)
        window = self.unicast_window_us(spec.name, **fields)
        last, garbled_only = "no reply", False
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
            seq = self._next_seq()
            self.stats.requests += 1
            want = (PROTOCOL_VERSION, ADDR_HOST, src, seq, spec.code | REPLY_BIT)

            def done(items, want=want):
                return any(isinstance(it, Frame) and (it.version, it.dst, it.src, it.seq, it.cmd) == want
                           for it in items)

            items = self._exchange(request_frame(address, seq, spec.name, **fields), window, done)
            reply, bad = None, 0
            for it in items:
                if isinstance(it, FrameError):
                    bad += 1
                elif (it.version, it.dst, it.src, it.seq, it.cmd) == want:
                    try:
                        reply = unpack_reply(spec.name, it.payload)
                    except PayloadError as exc:
                        bad += 1
                        last = f"malformed reply ({exc})"
                else:
                    self.stats.stray += 1
            self.stats.garbled += bad
            if reply is not None:
                if spec.name in RESTARTS:
                    self.port.wait(window)
                if reply["status"] != Error.OK:
                    raise BoardError(self.name, address, spec.name, reply["status"])
                return reply
            if bad:
                last, garbled_only = f"{bad} garbled repl{'y' if bad == 1 else 'ies'}", True
            else:
                garbled_only = False
                last = "no reply"
        unsafe = "" if spec.name in IDEMPOTENT else " (not retried: repeating it is not safe; check the board)"
        cls = BusGarbled if garbled_only else BusTimeout
        raise cls(f"{self.name}: board {address}: {spec.name}: {last} after {attempts} attempt(s){unsafe}")

    def broadcast(self, command: str, **fields) -> Heard:
        """Broadcast ``command`` (dst 255) and wait as its broadcast handling says: a slotted
        one is heard until its last slot (replies by address), a hashed ``discover`` until
        its last slot (replies in order), a selected ``assign_address`` until its reply, a
        silent one for its quiet time."""
        spec = command_spec(command)
        if spec.broadcast == BROADCAST_REFUSED:
            raise BusError(f"{spec.name} may not be broadcast")
        seq = self._next_seq()
        self.stats.requests += 1
        want = (PROTOCOL_VERSION, ADDR_HOST, seq, spec.code | REPLY_BIT)
        if spec.broadcast == BROADCAST_HASHED and not 1 <= fields["slots"] <= DISCOVER_SLOTS_MAX:
            raise BusError(f"discover takes 1..{DISCOVER_SLOTS_MAX} slots, got {fields['slots']}")
        window = windows.broadcast_window_us(spec.name, self.baud, **fields)

        def answered_by_one(items):  # a selected command: one board answers, as to a unicast
            return any(isinstance(it, Frame) and (it.version, it.dst, it.seq, it.cmd) == want for it in items)

        done = answered_by_one if spec.broadcast == BROADCAST_SELECTED else None
        answered = spec.broadcast != BROADCAST_SILENT
        items = self._exchange(request_frame(ADDR_BROADCAST, seq, spec.name, **fields), window, done,
                                   replies=answered)
        by_src: dict[int, dict] = {}
        ordered: list[dict] = []
        garbled = 0
        for it in items:
            if isinstance(it, FrameError):
                garbled += 1
                continue
            if (it.version, it.dst, it.seq, it.cmd) != want:
                self.stats.stray += 1
                continue
            try:
                reply = unpack_reply(spec.name, it.payload)
            except PayloadError:
                garbled += 1
                continue
            reply["src"] = it.src
            by_src[it.src] = reply
            ordered.append(reply)
        self.stats.garbled += garbled
        return Heard(by_src if spec.broadcast == BROADCAST_SLOTTED else ordered, garbled)

    # -- identities -----------------------------------------------------------------------
    def _info(self, address: int, r: dict) -> BoardInfo:
        return BoardInfo(self.name, address, bytes(r["uid"]).hex(), KIND_NAMES.get(r["kind"], f"kind {r['kind']}"),
                         version_text(r), r["protocol"], r["protocol_minor"], r.get("flags", 0))

    def identify(self, address: int) -> BoardInfo:
        return self._info(address, self.request(address, "identify"))

    def _probe_one(self, a: int, window: int) -> tuple[dict | None, int]:
        """One version-1 probe of address ``a``: its reply (status ok) or None, and the
        garbled replies heard."""
        seq = self._next_seq()
        self.stats.requests += 1
        want = (V1_VERSION, ADDR_HOST, a, seq, _V1_IDENTIFY | REPLY_BIT)

        def done(items):
            return any(isinstance(it, Frame) and (it.version, it.dst, it.src, it.seq, it.cmd) == want
                       for it in items)

        reply, bad = None, 0
        for it in self._exchange(Frame(V1_VERSION, a, ADDR_HOST, seq, _V1_IDENTIFY), window, done):
            if isinstance(it, Frame) and (it.version, it.dst, it.src, it.seq, it.cmd) == want:
                r = _v1_identify(it)
                if r is None:
                    bad += 1
                elif r["status"] == 0:
                    reply = r
            elif isinstance(it, FrameError):
                bad += 1
        self.stats.garbled += bad
        return reply, bad

    def _probe_train(self, addresses, window: int) -> tuple[dict[int, dict], int]:
        """Protocol 1's probe of every address in one train (PROTOCOL.md, "Protocol 1
        boards": each waited ``window``, under 0.8 s for 247 at 115200 baud, a real port's
        latency once at the end): the clean replies by address, and how many were garbled."""
        sent: dict[tuple[int, int], int] = {}
        frames = []
        for a in addresses:
            seq = self._next_seq()
            sent[(a, seq)] = a
            frames.append(Frame(V1_VERSION, a, ADDR_HOST, seq, _V1_IDENTIFY))
        self.stats.requests += len(frames)
        if len(sent) < len(frames):  # more than 256 probes: sequence numbers would repeat
            raise BusError(f"{self.name}: at most 256 addresses per probe, got {len(frames)}")
        replies: dict[int, dict] = {}
        bad = 0
        try:
            items = self.port.exchange_train(frames, window, window)
        except PortError as exc:
            raise BusError(str(exc)) from None
        for it in items:
            if isinstance(it, FrameError):
                bad += 1
                continue
            a = sent.get((it.src, it.seq))
            if it.version != V1_VERSION or it.dst != ADDR_HOST or it.cmd != _V1_IDENTIFY | REPLY_BIT or a is None:
                self.stats.stray += 1
                continue
            r = _v1_identify(it)
            if r is None:
                bad += 1
            elif r["status"] == 0:
                replies[a] = r
        self.stats.garbled += bad
        return replies, bad

    def probe_v1(self, addresses=None) -> dict[int, dict]:
        """Protocol 1's identify probe, unicast to each address (default 1..247) in one
        train, each waited for :func:`~instruments.bus.v2.slots.v1_probe_timeout_us`; when a
        reply of the train was garbled, every address that gave no clean reply is asked
        again one by one (an address whose reply is garbled twice more); the replies by
        address. Raises
        :class:`ProtocolMismatch` naming every board that speaks protocol 1. Addresses
        whose every reply was garbled (two boards answer there) are left in
        ``probe_garbled``: :meth:`survey` tells two protocol-2 boards from a protocol-1
        board behind a protocol-2 one."""
        addresses = list(range(ADDR_BOARD_MIN, ADDR_BOARD_MAX + 1) if addresses is None else addresses)
        window = windows.probe_window_us(self.baud)
        replies, bad = self._probe_train(addresses, window)
        garbled: list[int] = []
        # a garbled reply of the train cannot be told apart by address (an adapter hands
        # replies over late): only then are the addresses that gave no reply asked one by one
        for a in (addresses if bad else ()):
            if a in replies:
                continue
            for attempt in range(1 + self.retries):
                reply, bad = self._probe_one(a, window)
                if reply is not None or not bad:
                    break
            if reply is not None:
                replies[a] = reply
            elif bad:
                garbled.append(a)
        old = {a: r for a, r in replies.items() if r["protocol"] != PROTOCOL_VERSION}
        if old:
            a, r = min(old.items())
            first = (f"{self.name}: board {a} (uid {bytes(r['uid']).hex()}, firmware {version_text(r)}) "
                     f"speaks protocol {r['protocol']}.{r['protocol_minor']}; this host speaks protocol "
                     f"{PROTOCOL_VERSION}: update its firmware, see MIGRATION.md")
            more = sorted(old)[1:]
            if more:
                first += f" (boards {', '.join(map(str, more))} too)"
            raise ProtocolMismatch(first, old)
        self.probe_garbled = garbled
        return replies

    def survey(self, max_passes: int = 6) -> tuple[ScanResult, Duplicates]:
        """What a host does before it drives a bus: the protocol-1 probe (protocol-1 boards
        refused by name), the scan, and, when either was garbled, the duplicate search.
        Returns the scan and the addresses boards share; raises :class:`BusGarbled` for an
        address the probe found garbled that no two protocol-2 boards explain (a protocol-1
        board there answers no protocol-2 frame)."""
        self.probe_v1()
        garbled = list(self.probe_garbled)
        scan = self.scan(max_passes)
        dups = Duplicates()
        if garbled or not scan.agreed:
            dups = self.find_duplicates(scan)
        hidden = [a for a in garbled if a not in dups.by_address and a not in dups.unresolved]
        if hidden:
            raise BusGarbled(f"{self.name}: the protocol-1 probe of address{'es' if len(hidden) > 1 else ''} "
                             f"{', '.join(map(str, hidden))} was answered garbled every time, and no two "
                             "protocol-2 boards share it: a protocol-1 board may answer there")
        return scan, dups

    def scan(self, max_passes: int = 6) -> ScanResult:
        """Every assigned board, by slotted identify passes until two in a row hear the same
        boards say the same and the second garbled nothing (2..16 passes)."""
        if not 2 <= int(max_passes) <= 16:
            raise BusError(f"a scan takes 2..16 passes, got {max_passes}")

        def one_pass():
            h = self.broadcast("identify")
            return {a: {k: v for k, v in r.items() if k != "src"} for a, r in h.replies.items()
                    if r["status"] == 0 and ADDR_BOARD_MIN <= a <= ADDR_BOARD_MAX}, h.garbled

        heard, passes, garbled, agreed, missed = scan_passes(one_pass, int(max_passes))
        return ScanResult([self._info(a, r) for a, r in sorted(heard.items())], passes, garbled, agreed, missed)

    # -- unassigned boards and duplicates -------------------------------------------------
    def discover(self, slots: int, *, only_unassigned: bool = True, salt: int | None = None) -> Heard:
        """One hashed ``discover`` (a fresh salt unless given); replies in order."""
        salt = self.rng.getrandbits(32) if salt is None else int(salt)
        return self.broadcast("discover", salt=salt, slots=int(slots), only_unassigned=int(only_unassigned))

    def assign_address(self, uid: bytes | str, address: int) -> None:
        """``assign_address`` broadcast, selected by ``uid``; the board answers from ``address``."""
        uid = bytes.fromhex(uid) if isinstance(uid, str) else bytes(uid)
        if len(uid) != 8:
            raise BusError(f"a uid is 8 bytes (16 hex digits), got {uid.hex()!r}")
        if not ADDR_BOARD_MIN <= address <= ADDR_UNASSIGNED:
            raise BusError(f"address must be {ADDR_BOARD_MIN}..{ADDR_UNASSIGNED}, got {address}")
        spec = command_spec("assign_address")
        last = "no reply"
        for attempt in range(1 + self.retries):
            if attempt:
                self.stats.retries += 1
            h = self.broadcast("assign_address", uid=uid, address=address)
            for r in h.replies:
                if r["src"] == address:
                    if r["status"] != Error.OK:
                        raise BoardError(self.name, address, spec.name, r["status"])
                    return
            last = f"{h.garbled} garbled repl{'y' if h.garbled == 1 else 'ies'}" if h.garbled else "no reply"
        raise BusTimeout(f"{self.name}: assign_address of uid {uid.hex()} to {address}: {last} "
                         f"after {1 + self.retries} attempt(s)")

    def assign_unassigned(self, taken=(), addresses=None, *, expected: int | None = None,
                          max_rounds: int = 200) -> dict[str, int]:
        """Give every unassigned board an address: ``discover`` (only unassigned) with a
        fresh salt and about twice as many slots as boards expected, ``assign_address`` to
        each board heard cleanly, until a discover hears nothing, garbled or not, twice in a
        row. Addresses come from ``addresses`` (default 1..247) less ``taken``; returns
        {uid hex: address}."""
        pool = [a for a in (addresses or range(ADDR_BOARD_MIN, ADDR_BOARD_MAX + 1)) if a not in set(taken)]
        pool.reverse()
        out: dict[str, int] = {}
        slots = max(4, min(DISCOVER_SLOTS_MAX, 2 * expected)) if expected else 32
        silent = rounds = 0
        while silent < 2:
            if rounds >= max_rounds:
                raise BusError(f"{self.name}: unassigned boards still answer after {max_rounds} discover rounds")
            rounds += 1
            h = self.discover(slots)
            clean = [r for r in h.replies if r["status"] == 0]
            for r in clean:
                uid = bytes(r["uid"]).hex()
                if uid in out:
                    continue
                if not pool:
                    raise BusError(f"{self.name}: no free address left for board {uid}")
                address = pool.pop()
                self.assign_address(uid, address)
                out[uid] = address
            silent = 0 if (clean or h.garbled) else silent + 1
            # a garbled slot holds two boards or more: about twice the slots of those left
            slots = max(4, min(DISCOVER_SLOTS_MAX, 4 * h.garbled)) if h.garbled else 4
        return out

    def find_duplicates(self, scan: ScanResult | None = None, *, max_rounds: int = 24) -> Duplicates:
        """Addresses two boards or more share. A clean identify reply is one board; every
        other address (and any board whose ``duplicate_address`` flag is set) is asked by
        unicast ``identify``: garbled on every attempt, two boards answered at once. The
        uids at those addresses are then heard by ``discover`` of every board (hashed, a
        fresh salt each round) until each shared address has two uids or more."""
        scan = self.scan() if scan is None else scan
        clean = {b.address for b in scan if not b.duplicate_flag}
        shared: set[int] = set()
        dups = Duplicates()
        for a in range(ADDR_BOARD_MIN, ADDR_BOARD_MAX + 1):
            if a in clean:
                continue
            try:  # silence once is an empty address; garbled is asked again, to rule out noise
                self.request(a, "identify", retries=0)
                continue
            except BusGarbled:
                pass
            except BusTimeout:
                dups.empty.append(a)
                continue
            try:
                self.request(a, "identify")
            except BusGarbled:
                shared.add(a)
            except BusTimeout:
                dups.empty.append(a)
        if not shared:
            return dups
        uids: dict[int, set[str]] = {a: set() for a in shared}
        for _ in range(max_rounds):
            for r in self.discover(DISCOVER_SLOTS_MAX, only_unassigned=False).replies:
                if r["status"] == 0 and r["address"] in uids:
                    uids[r["address"]].add(bytes(r["uid"]).hex())
            if all(len(u) >= 2 for u in uids.values()):
                break
        dups.by_address = {a: sorted(u) for a, u in sorted(uids.items()) if len(u) >= 2}
        dups.unresolved = sorted(a for a, u in uids.items() if len(u) < 2)
        return dups

    def resolve_duplicates(self, dups: Duplicates) -> dict[str, int]:
        """Keep the first uid (in order) at each shared address and give the others
        addresses no board answered (``dups.empty``); returns {uid: new address}."""
        free = sorted(dups.empty, reverse=True)
        moved: dict[str, int] = {}
        for _, uids in sorted(dups.by_address.items()):
            for uid in uids[1:]:
                if not free:
                    raise BusError(f"{self.name}: no free address left for board {uid}")
                a = free.pop()
                self.assign_address(uid, a)
                moved[uid] = a
        return moved

    # -- state, learning, telemetry ---------------------------------------------------------
    def read_state(self, address: int) -> dict:
        """{state, residue, generation} of one board."""
        r = self.request(address, "read_state")
        return {k: r[k] for k in ("state", "residue", "generation")}

    def read_states(self) -> dict[int, dict]:
        """Every assigned board's state (one slotted broadcast), by address."""
        return {a: {k: r[k] for k in ("state", "residue", "generation")}
                for a, r in self.broadcast("read_state").replies.items() if r["status"] == 0}

    def set_state(self, address: int, state: int) -> dict:
        """Move the target; the reply's {state reached, residue}."""
        r = self.request(address, "set_state", state=int(state))
        return {"state": r["state"], "residue": r["residue"]}

    def configure_rule(self, address: int | None, rule: int, probability: int, gain: int,
                       dead_band_uv2: int) -> None:
        """The rule of one board (or, with no address, of every board: silent)."""
        f = dict(rule=int(rule), probability=int(probability), gain=int(gain), dead_band_uv2=int(dead_band_uv2))
        if address is None:
            self.broadcast("configure_rule", **f)
        else:
            self.request(address, "configure_rule", **f)

    def learn(self, address: int | None = None) -> dict | None:
        """One learn: unicast, the reply's {state, residue, updated}; broadcast (no
        address), silent: every board learns, None."""
        if address is None:
            self.broadcast("learn")
            return None
        r = self.request(address, "learn")
        return {"state": r["state"], "residue": r["residue"], "updated": r["updated"]}

    def read_telemetry(self, address: int) -> dict:
        """Telemetry of one board (learn count, reset cause, supply, temperature, ...)."""
        r = self.request(address, "read_telemetry")
        return _telemetry(r)

    def telemetry(self) -> dict[int, dict]:
        """Telemetry of every assigned board (one slotted broadcast), by address."""
        return {a: _telemetry(r) for a, r in self.broadcast("read_telemetry").replies.items() if r["status"] == 0}

    def store_state(self, address: int | None = None) -> int | None:
        """Store the target in flash: unicast, the record's generation; broadcast, None
        (after its quiet time)."""
        if address is None:
            self.broadcast("store_state")
            return None
        return self.request(address, "store_state")["generation"]

    def calibrate_actuator(self, address: int | None = None) -> tuple[int, GateCalibration] | None:
        """Protocol 2.1: a MOSFET board measures its gate's slopes and leak, stores and uses
        them (PROTOCOL.md, "Actuator calibration"). Unicast: (source, the table measured);
        broadcast (None): every board measures at once, the host waits the quiet time and
        returns None (read each with :meth:`read_actuator_calibration`). A digipot board or
        a protocol-2.0 board raises :class:`BoardError` (``wrong_kind``, ``unknown_command``)."""
        if address is None:
            self.broadcast("calibrate_actuator")
            return None
        r = self.request(address, "calibrate_actuator")
        return r["source"], GateCalibration.from_fields(r)

    def read_actuator_calibration(self, address: int) -> tuple[int, GateCalibration]:
        """Protocol 2.1: (source, table) of a MOSFET board's gate, source 0 nominal (its part
        values), 1 measured."""
        r = self.request(address, "read_actuator_calibration")
        return r["source"], GateCalibration.from_fields(r)

    def reset(self, address: int | None = None, mode: str | int = "restart") -> None:
        """Restart a board (or every board): ``restart`` keeps the stored state, ``factory``
        erases it; the host then waits the mode's quiet time."""
        m = ResetMode[mode.upper()] if isinstance(mode, str) else ResetMode(mode)
        if address is None:
            self.broadcast("reset", mode=int(m))
        else:
            self.request(address, "reset", mode=int(m))


def _v1_identify(frame: Frame) -> dict | None:
    """A version-1 identify reply's fields, or None when no protocol-1 layout fits its
    payload (garbled)."""
    try:
        return v1_payloads.unpack_reply("identify", frame.payload)
    except Exception:
        return None


def _telemetry(r: dict) -> dict:
    out = {k: v for k, v in r.items() if k not in ("status", "src")}
    try:
        out["reset_cause_name"] = ResetCause(r["reset_cause"]).name.lower()
    except ValueError:
        out["reset_cause_name"] = f"cause {r['reset_cause']}"
    out["flag_names"] = [f.name.lower() for f in Flag if r["flags"] & f]
    return out
