"""More than one bus: one :class:`~.client.Bus` per host port, run concurrently.

``firmware/protocol/PROTOCOL.md``, "More than one bus": each bus has its own addresses
1..247, so a board is keyed by (bus, address) and named by its uid; scans and firmware
updates run on every bus in parallel (one thread per bus: each waits on its own port); a
uid heard on two buses is a wiring fault, named.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .client import Bus, BoardInfo, BusError, Duplicates, ScanResult
from .host_update import BusUpdate, Progress, update_bus

__all__ = ["Rig", "RigUpdate", "WiringFault"]


class WiringFault(BusError):
    """A uid answers on two buses (or twice on one)."""


@dataclass
class RigUpdate:
    """Every bus's :class:`~.host_update.BusUpdate`, and the errors of buses that failed."""

    buses: list[BusUpdate] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def boards(self) -> dict[tuple[str, int], object]:
        return {(u.bus, a): b for u in self.buses for a, b in u.boards.items()}

    def count(self, outcome: str) -> int:
        return sum(len(u.by_outcome(outcome)) for u in self.buses)

    @property
    def bus_time_us(self) -> int:
        """The longest bus's time, from its probe and scan to the last confirmation: the
        buses ran at once."""
        return max((u.bus_time_us for u in self.buses), default=0)

    def summary(self) -> str:
        n = sum(len(u.boards) for u in self.buses)
        version = self.buses[0].version if self.buses else "?"
        parts = [f"{n} board(s) on {len(self.buses)} bus(es) updated to {version}: "
                 f"{self.count('confirmed')} confirmed"]
        rolled = [f"{u.bus} board {b.address}" for u in self.buses for b in u.by_outcome("rolled_back")]
        if rolled:
            parts.append(f"{len(rolled)} rolled back ({', '.join(rolled)})")
        failed = [f"{u.bus} board {b.address}" for u in self.buses for b in u.by_outcome("failed")]
        if failed:
            parts.append(f"{len(failed)} failed ({', '.join(failed)})")
        resent = sum(u.blocks_resent for u in self.buses)
        parts.append(f"{resent} block(s) resent")
        if self.errors:
            parts.append(f"{len(self.errors)} bus(es) not updated ({', '.join(self.errors)})")
        return ", ".join(parts) + f"; bus time {self.bus_time_us / 1e6:.1f} s"


class Rig:
    """The buses of a rig, one :class:`~.client.Bus` per port (``bus_args`` as Bus's)."""

    def __init__(self, ports, **bus_args) -> None:
        ports = list(ports)
        if not ports:
            raise BusError("a rig needs at least one bus port")
        if len(set(map(str, ports))) != len(ports):
            raise BusError(f"a port is named twice: {', '.join(map(str, ports))}")
        self.buses: list[Bus] = []
        #: The last :meth:`scan`'s result and each bus's time when it started (bus time us).
        self._last_scan: tuple[dict | None, dict] = (None, {})
        try:
            for p in ports:
                self.buses.append(Bus(p, **bus_args))
        except BusError:
            self.close()
            raise

    def close(self) -> None:
        for b in self.buses:
            b.close()

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def each(self, fn):
        """``fn(bus)`` on every bus at once; results in bus order (the first error raised)."""
        with ThreadPoolExecutor(max_workers=len(self.buses)) as pool:
            futures = [pool.submit(fn, b) for b in self.buses]
            return [f.result() for f in futures]

    def scan(self, probe: bool = True) -> dict[str, ScanResult]:
        """Every bus surveyed (:meth:`~.client.Bus.survey`: protocol-1 boards refused, the
        boards scanned, shared addresses found; ``duplicates`` by bus) or, without
        ``probe``, scanned, in parallel; raises :class:`WiringFault` when a uid answers on
        two buses."""
        def one(bus: Bus):
            return bus.survey() if probe else (bus.scan(), Duplicates())
        started = {b.name: b.bus_time_us() for b in self.buses}
        done = self.each(one)
        scans = {b.name: r[0] for b, r in zip(self.buses, done)}
        self._last_scan = (scans, started)
        self.duplicates = {b.name: r[1] for b, r in zip(self.buses, done)}
        self.check_wiring(scans)
        return scans

    @staticmethod
    def check_wiring(scans: dict[str, ScanResult]) -> None:
        seen: dict[str, BoardInfo] = {}
        for name, scan in scans.items():
            for info in scan:
                if info.uid in seen:
                    o = seen[info.uid]
                    raise WiringFault(f"wiring fault: board {info.uid} answers on {o.bus} at address "
                                      f"{o.address} and on {info.bus} at address {info.address}")
                seen[info.uid] = info

    def boards(self, scans: dict[str, ScanResult]) -> dict[tuple[str, int], BoardInfo]:
        """Boards keyed by (bus, address)."""
        return {info.key: info for scan in scans.values() for info in scan}

    def telemetry(self) -> dict[tuple[str, int], dict]:
        """Every board's telemetry, keyed by (bus, address): after a learn triggered on the
        shared line, every board's ``learns`` count says whether it took it."""
        return {(bus.name, a): t for bus, tel in zip(self.buses, self.each(lambda b: b.telemetry()))
                for a, t in tel.items()}

    def learn(self) -> None:
        """A learn broadcast on every bus (they reach the buses a frame apart; the shared
        learn-trigger line reaches every board at once)."""
        self.each(lambda b: b.learn())

    def update(self, image: bytes, version: tuple[int, int, int], *, progress: Progress | None = None,
               scans: dict[str, ScanResult] | None = None) -> RigUpdate:
        """Update every board of every bus, the buses in parallel. A bus that fails (no
        board, a protocol-1 board) is reported in ``errors``; the others go on."""
        if scans is None:
            scans = self.scan()
        # the bus time counts from the start of the scan the update uses when that is this
        # rig's last scan, else from now (a scan of the caller's, timed or not by it)
        last_scans, last_started = self._last_scan
        started = last_started if scans is last_scans else {b.name: b.bus_time_us() for b in self.buses}
        out = RigUpdate()

        def one(bus: Bus):
            try:
                return update_bus(bus, image, version, scan=scans[bus.name], probe=False, progress=progress)
            except BusError as exc:
                return exc
        for bus, r in zip(self.buses, self.each(one)):
            if isinstance(r, Exception):
                out.errors[bus.name] = str(r)
            else:
                r.bus_time_us = bus.bus_time_us() - started[bus.name]  # with the probe and scan
                out.buses.append(r)
        return out
