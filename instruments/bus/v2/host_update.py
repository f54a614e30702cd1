"""The host's side of a firmware update over the bus: every board of a bus at once.

``firmware/protocol/PROTOCOL.md``, "Firmware update", in its order: the boards are found
(:meth:`~.client.Bus.probe_v1` refuses protocol-1 boards, :meth:`~.client.Bus.scan`),
``store_state`` broadcast, ``fw_begin`` broadcast, every ``fw_block`` broadcast, then
``fw_status`` (slotted) collects what each board still misses and only those blocks are
sent again (:func:`plan_resend`: broadcast when several boards miss a block, unicast when
one does), until none misses any; ``fw_verify`` broadcast and ``fw_status`` to see every
board verified; ``fw_swap`` broadcast; then ``identify``, ``fw_status`` and
``read_telemetry`` say, board by board, whether the new version booted and confirmed
itself or the board rolled back (:class:`BusUpdate`).

``fw_status`` lists at most the first eight missing blocks of a board; a board missing more
is sent those eight and asked again. A board that answers ``fw_status`` idle after the
blocks (it missed ``fw_begin``, or restarted) is begun again by unicast and sent every
block. Units: sizes bytes, times us.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from .client import Bus, BusError, BusTimeout, ScanResult
from .constants import ADDR_BROADCAST, IMAGE_MAX_BYTES, NO_BLOCK, Flag, Phase
from .update import crc32, image_blocks

__all__ = ["plan_resend", "listed_missing", "BoardUpdate", "BusUpdate", "update_bus", "parse_version", "Progress"]

#: ``progress(bus, stage, done, total)``: stage "blocks" (done of total blocks broadcast),
#: "resend" (blocks resent so far), or a word naming the step.
Progress = Callable[[str, str, int, int], None]


def parse_version(text: str) -> tuple[int, int, int]:
    """``"2.1.0"`` -> (2, 1, 0); each part 0..255. Raises ValueError."""
    parts = str(text).strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"a firmware version is MAJOR.MINOR.PATCH, got {text!r}")
    v = tuple(int(p) for p in parts)
    if not all(0 <= x <= 255 for x in v):
        raise ValueError(f"each part of a firmware version is 0..255, got {text!r}")
    return v  # type: ignore[return-value]


def listed_missing(status: dict) -> list[int]:
    """The block numbers a ``fw_status`` reply lists as missing (at most eight)."""
    return [b for b in status["first_missing"] if b != NO_BLOCK][: status["missing"]]


def plan_resend(missing: dict[int, list[int]]) -> list[tuple[int, int]]:
    """The blocks to send again, as (destination, block): ``missing`` maps each board's
    address to the blocks it says it misses. A block that two boards or more miss is sent
    once, broadcast (destination 255); a block one board misses is sent to it alone. In
    block order, broadcasts first for each block."""
    who: dict[int, list[int]] = defaultdict(list)
    for address, blocks in missing.items():
        for b in set(blocks):
            who[b].append(address)
    plan: list[tuple[int, int]] = []
    for b in sorted(who):
        boards = sorted(who[b])
        plan += [(ADDR_BROADCAST, b)] if len(boards) > 1 else [(boards[0], b)]
    return plan


@dataclass
class BoardUpdate:
    """How the update went on one board."""

    address: int
    uid: str
    old_version: str
    version: str = ""
    outcome: str = "pending"  # "confirmed", "rolled_back", "failed"
    reason: str = ""
    resent: list[int] = field(default_factory=list)
    reset_cause: str = ""
    flags: int = 0

    def line(self, bus: str) -> str:
        extra = f" ({self.reason})" if self.reason else ""
        resent = f", {len(self.resent)} block(s) resent" if self.resent else ""
        return (f"{bus} board {self.address} (uid {self.uid}): {self.outcome.replace('_', ' ')}, "
                f"firmware {self.old_version} -> {self.version or '?'}{resent}{extra}")


@dataclass
class BusUpdate:
    """One bus's update: each board's :class:`BoardUpdate` by address, the rounds of
    ``fw_status``, the blocks sent, and the bus time it took (us; emulated on an emulator)."""

    bus: str
    version: str
    image_bytes: int
    blocks: int
    boards: dict[int, BoardUpdate] = field(default_factory=dict)
    status_rounds: int = 0
    blocks_broadcast: int = 0
    blocks_resent: int = 0
    bus_time_us: int = 0

    def by_outcome(self, outcome: str) -> list[BoardUpdate]:
        return [b for b in self.boards.values() if b.outcome == outcome]


def _status_all(bus: Bus, addresses) -> dict[int, dict]:
    """``fw_status`` of every board: one slotted broadcast, then unicast to those it did not
    hear; boards that never answer are left out."""
    heard = {a: r for a, r in bus.broadcast("fw_status").replies.items() if r["status"] == 0}
    for a in addresses:
        if a not in heard:
            try:
                heard[a] = bus.request(a, "fw_status")
            except BusTimeout:
                pass
    return {a: heard[a] for a in addresses if a in heard}


def update_bus(bus: Bus, image: bytes, version: tuple[int, int, int], *, scan: ScanResult | None = None,
               probe: bool = True, progress: Progress | None = None, max_rounds: int = 32) -> BusUpdate:
    """Update every board on ``bus`` to ``image`` (its ``version``); returns the
    :class:`BusUpdate`. Without ``scan``, the bus is surveyed first
    (:meth:`~.client.Bus.survey`). Raises :class:`~.client.BusError` when no board is found
    or two share an address, and :class:`~.client.ProtocolMismatch` when a protocol-1 board
    answers the probe."""
    image = bytes(image)
    if not 1 <= len(image) <= IMAGE_MAX_BYTES:
        raise BusError(f"an image is 1..{IMAGE_MAX_BYTES:,} bytes, got {len(image):,}")
    report_progress = progress or (lambda *a: None)
    t0 = bus.bus_time_us()
    vtext = ".".join(map(str, version))
    blocks = image_blocks(image)
    crc = crc32(image)
    block_crc = [crc32(b) for b in blocks]
    if scan is None:
        report_progress(bus.name, "scan", 0, 0)
        scan, dups = bus.survey() if probe else (bus.scan(), None)
        if dups:
            raise BusError(f"{dups.summary(bus.name)}: give one of each its own address before updating")
    elif probe:
        report_progress(bus.name, "probe", 0, 0)
        bus.probe_v1()
    if not len(scan):
        raise BusError(f"{bus.name}: no board answers identify")
    rep = BusUpdate(bus.name, vtext, len(image), len(blocks))
    for b in scan:
        rep.boards[b.address] = BoardUpdate(b.address, b.uid, b.firmware)
    addresses = sorted(rep.boards)

    def send_block(dst: int, n: int) -> None:
        fields = dict(image_crc32=crc, block=n, block_crc32=block_crc[n], data=blocks[n])
        if dst == ADDR_BROADCAST:
            bus.broadcast("fw_block", **fields)
        else:
            bus.request(dst, "fw_block", **fields)

    def begin(dst: int) -> None:
        fields = dict(size=len(image), image_crc32=crc, fw_major=version[0], fw_minor=version[1],
                      fw_patch=version[2])
        if dst == ADDR_BROADCAST:
            bus.broadcast("fw_begin", **fields)
        else:
            bus.request(dst, "fw_begin", **fields)

    report_progress(bus.name, "store_state", 0, 0)
    bus.store_state()
    report_progress(bus.name, "fw_begin", 0, 0)
    begin(ADDR_BROADCAST)
    for n in range(len(blocks)):
        send_block(ADDR_BROADCAST, n)
        rep.blocks_broadcast += 1
        report_progress(bus.name, "blocks", n + 1, len(blocks))

    # collect what is missing, send only that, until nothing is
    active = set(addresses)
    for _ in range(max_rounds):
        status = _status_all(bus, sorted(active))
        rep.status_rounds += 1
        for a in sorted(active - set(status)):
            rep.boards[a].outcome, rep.boards[a].reason = "failed", "no fw_status reply"
            active.discard(a)
        missing: dict[int, list[int]] = {}
        for a, st in status.items():
            if st["phase"] == Phase.RECEIVING and st["blocks"] == len(blocks) and \
                    (st["fw_major"], st["fw_minor"], st["fw_patch"]) == tuple(version):
                if st["missing"]:
                    missing[a] = listed_missing(st)
            else:  # idle (missed fw_begin, or restarted): begin it again, every block missing
                try:
                    begin(a)
                except BusError as exc:
                    rep.boards[a].outcome, rep.boards[a].reason = "failed", f"fw_begin: {exc}"
                    active.discard(a)
                    continue
                missing[a] = list(range(len(blocks)))
        if not missing:
            break
        for dst, n in plan_resend(missing):
            if dst != ADDR_BROADCAST and dst not in active:
                continue  # its fw_block failed already
            try:
                send_block(dst, n)
            except BusError as exc:
                rep.boards[dst].outcome, rep.boards[dst].reason = "failed", f"fw_block {n}: {exc}"
                active.discard(dst)
                continue
            for a, m in missing.items():
                if n in m and (dst == ADDR_BROADCAST or dst == a):
                    rep.boards[a].resent.append(n)
            rep.blocks_resent += 1
            report_progress(bus.name, "resend", rep.blocks_resent, 0)

    report_progress(bus.name, "fw_verify", 0, 0)
    bus.broadcast("fw_verify")
    status = _status_all(bus, sorted(active))
    rep.status_rounds += 1
    for a in sorted(active):
        st = status.get(a)
        if st is None or st["phase"] != Phase.VERIFIED:
            phase = "no reply" if st is None else _phase_name(st["phase"])
            if st is not None and st["missing"]:
                phase += f", {st['missing']} block(s) missing after {rep.status_rounds - 1} fw_status rounds"
            rep.boards[a].outcome, rep.boards[a].reason = "failed", f"not verified ({phase})"
            active.discard(a)

    report_progress(bus.name, "fw_swap", 0, 0)
    bus.broadcast("fw_swap")

    report_progress(bus.name, "confirm", 0, 0)
    after = bus.scan()
    now = {b.address: b for b in after}
    status = _status_all(bus, sorted(active))
    telemetry = bus.telemetry()
    for a in sorted(active):
        b = rep.boards[a]
        info, st, tel = now.get(a), status.get(a), telemetry.get(a)
        if tel is None:
            try:
                tel = bus.read_telemetry(a)
            except BusError:
                tel = None
        if info is None:
            try:
                info = bus.identify(a)
            except BusError:
                info = None
        if info is None or st is None:
            b.outcome, b.reason = "failed", "no answer after fw_swap"
            continue
        b.version, b.flags = info.firmware, info.flags
        if tel is not None:
            b.reset_cause = tel["reset_cause_name"]
        if st["phase"] == Phase.CONFIRMED and info.firmware == vtext:
            b.outcome = "confirmed"
        elif st["phase"] == Phase.ROLLED_BACK or info.flags & Flag.ROLLED_BACK:
            b.outcome = "rolled_back"
            b.reason = f"the new image failed its trial boot; runs {info.firmware} again"
        else:
            b.outcome = "failed"
            b.reason = f"phase {_phase_name(st['phase'])} after fw_swap, runs {info.firmware}"
    rep.bus_time_us = bus.bus_time_us() - t0
    report_progress(bus.name, "done", 0, 0)
    return rep


def _phase_name(phase: int) -> str:
    """A ``fw_status`` phase by name; a number the spec does not name (a newer or faulty
    board) as ``phase N``, so one board's odd reply fails that board, not the update."""
    try:
        return Phase(phase).name.lower()
    except ValueError:
        return f"phase {phase} (unknown)"
