"""Calibrating the MOSFET edge boards' gates over a protocol-2 bus (protocol 2.1).

A MOSFET board moves its gate in pulses through a resistor and reads it back; how far a
pulse moves the gate (its *slope*, V/s of pulse at each gate voltage) and how fast the gate
drifts with no pulse (its *leak*) depend on the board's own parts. Each board measures both
itself when asked (``calibrate_actuator``: ``firmware/protocol/PROTOCOL.md``, "Actuator
calibration"), stores them in its flash and times its pulses by them; the host asks every
board at once, reads each table back, checks it and keeps it.

:func:`calibrate_gates` does that on an open :class:`~instruments.bus.v2.client.Bus`: it
reads every MOSFET board's table before (nominal, or the last measured), broadcasts
``calibrate_actuator`` (all boards measure in one quiet time, 3.4 s, whatever their
number), reads every table after, and checks each against what a gate charged through a
resistor must look like and against the table before:

- every slope positive (a slope of 0 is a gate that does not move: an open driver stage);
- charging slows as the gate rises towards the rail, discharging speeds up (an RC gate's
  dV/dt is (rail - V) / RC charging and V / RC discharging): a slope table that runs the
  other way is a swapped charge and discharge pin, or a read-back divider wired wrong;
- every slope within ``tolerance`` (relative) of the table before (the point that moved
  most is named): more is a part changed
  or failing (or a nominal table far from the parts fitted);
- the leak within ``leak_limit_v_per_s``: more is a leaky gate capacitor or switch, whose
  drift the board can restore between learns but which is worth knowing.

A board that fails a check is still calibrated (its table is its own measurement); the
problems name it by address and uid. The result is plain data (:meth:`GateRun.to_dict`),
kept in the calibration store as the ``edges`` part of a calibration of the bus.

Units: gate voltages V, slopes V/s of pulse (the protocol's nV/us are mV/s), leak V/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from instruments.bus.v2.actuator import GateCalibration

__all__ = ["GateBoard", "GateRun", "calibrate_gates", "check", "summary"]

#: nV/us to V/s.
NV_PER_US = 1e-3
#: uV/s to V/s.
UV_PER_S = 1e-6


@dataclass(frozen=True)
class GateBoard:
    """One board's gate calibration: before and after, and what is wrong with it."""

    address: int
    uid: str
    before: GateCalibration
    before_source: int
    after: GateCalibration
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"address": self.address, "uid": self.uid, "before_source": self.before_source,
                "before": self.before.fields(), "after": self.after.fields(), "problems": list(self.problems)}


@dataclass(frozen=True)
class GateRun:
    """Every MOSFET board's gate calibration on one bus, and the boards that would not."""

    bus: str
    boards: tuple[GateBoard, ...]
    skipped: dict = field(default_factory=dict)  # address -> why (a digipot, a 2.0 board)
    refused: dict = field(default_factory=dict)  # address -> the error of a board that failed
    created: str = ""

    @property
    def problems(self) -> list[str]:
        return [f"board {b.address} ({b.uid}): {p}" for b in self.boards for p in b.problems]

    @classmethod
    def from_dict(cls, d: dict) -> "GateRun":
        """The run :meth:`to_dict` gave (its ``{"gates": ...}`` dict)."""
        g = d["gates"]
        boards = tuple(GateBoard(int(b["address"]), uid, GateCalibration.from_fields(b["before"]),
                                 int(b["before_source"]), GateCalibration.from_fields(b["after"]),
                                 tuple(b["problems"])) for uid, b in g["boards"].items())
        return cls(str(g["bus"]), boards, {int(a): w for a, w in g["skipped"].items()},
                   {int(a): w for a, w in g["refused"].items()}, str(g["created"]))

    def to_dict(self) -> dict:
        """Plain JSON-able values (the calibration store's ``edges`` part)."""
        return {"gates": {"bus": self.bus, "created": self.created,
                          "boards": {b.uid: b.to_dict() for b in self.boards},
                          "skipped": {str(a): w for a, w in self.skipped.items()},
                          "refused": {str(a): w for a, w in self.refused.items()}}}


def check(after: GateCalibration, before: GateCalibration, *, tolerance: float = 0.3,
          leak_limit_v_per_s: float = 1e-3) -> list[str]:
    """What is wrong with a measured table ``after`` (see the module's description), one
    phrase each; ``before`` is the table the board used until now."""
    out = []
    for name, direction, falls in (("charge", "charging", True), ("discharge", "discharging", False)):
        gates = getattr(after, f"{name}_gate_uv")
        slopes = getattr(after, f"{name}_nv_per_us")
        old = getattr(before, f"{name}_nv_per_us")
        flat = [g for g, s in zip(gates, slopes) if s <= 0]
        if flat:
            out.append(f"the gate does not move {direction} at {', '.join(f'{g * 1e-6:.2f} V' for g in flat)} "
                       "(slope <= 0: check the driver stage)")
            continue
        steps = [b - a for a, b in zip(slopes, slopes[1:])]
        if any((d > 0) if falls else (d < 0) for d in steps):
            out.append(f"{direction} {'speeds up' if falls else 'slows down'} as the gate rises "
                       "(not an RC gate: charge and discharge swapped, or the read-back divider wrong)")
        changes = [(abs(s / o - 1.0), g, s, o) for g, s, o in zip(gates, slopes, old) if o > 0]
        if changes and max(changes)[0] > tolerance:
            _, g, s, o = max(changes)  # the point that moved most
            out.append(f"{direction} slope at {g * 1e-6:.2f} V is {s * NV_PER_US:.4g} V/s, "
                       f"{100 * (s / o - 1):+.0f} % from {o * NV_PER_US:.4g} V/s before "
                       f"(tolerance {100 * tolerance:.0f} %; the largest change of the five points)")
    leak = after.leak_uv_per_s * UV_PER_S
    if abs(leak) > leak_limit_v_per_s:
        out.append(f"the gate leaks {leak * 1e3:+.3g} mV/s (limit {leak_limit_v_per_s * 1e3:.3g} mV/s)")
    return out


def calibrate_gates(bus, *, addresses=None, tolerance: float = 0.3, leak_limit_v_per_s: float = 1e-3,
                    on_progress=None) -> GateRun:
    """Calibrate every MOSFET board's gate on ``bus`` (an open protocol-2
    :class:`~instruments.bus.v2.client.Bus`); see the module's description.

    Args:
        addresses: the boards to calibrate (default: every board a scan finds).
        tolerance: largest relative change of a slope from the table before.
        leak_limit_v_per_s: largest gate leak (V/s) not reported as a problem.
        on_progress: called as ``on_progress(what, done, total)``.

    Raises:
        instruments.bus.v2.client.BusError: the bus failed (a board's own refusal is in
        ``refused``, not raised).
    """
    from instruments.bus.v2.client import BoardError, BusError

    progress = on_progress or (lambda what, done, total: None)
    if addresses is None:
        found = bus.scan()
        boards = [(b.address, b.uid, b.kind, b.protocol_minor) for b in found]
    else:
        boards = []
        for a in addresses:
            i = bus.identify(int(a))
            boards.append((i.address, i.uid, i.kind, i.protocol_minor))
    skipped, refused, before = {}, {}, {}
    for a, uid, kind, minor in boards:
        if kind != "mosfet":
            skipped[a] = f"a {kind} board has no gate to calibrate"
        elif minor < 1:
            skipped[a] = f"speaks protocol 2.{minor}; the gate calibration needs 2.1 (update its firmware)"
        else:
            try:
                before[a] = (uid, *bus.read_actuator_calibration(a))
            except BoardError as exc:
                refused[a] = str(exc)
    total = len(before)
    progress("measuring", 0, total)
    if before:
        if addresses is None:
            # every board at once, one quiet time (a digipot or a 2.0 board ignores it, silently)
            bus.calibrate_actuator()
        else:
            for a in before:  # only these boards (a broadcast would calibrate the others too)
                try:
                    bus.calibrate_actuator(a)
                except BoardError as exc:
                    refused[a] = str(exc)
    out = []
    for n, (a, (uid, source, old)) in enumerate(sorted(before.items())):
        if a in refused:
            continue
        try:
            new_source, new = bus.read_actuator_calibration(a)
        except BoardError as exc:
            refused[a] = str(exc)
            continue
        problems = check(new, old, tolerance=tolerance, leak_limit_v_per_s=leak_limit_v_per_s)
        if new_source != 1:
            problems.insert(0, "the board still uses its nominal table: its measurement was not stored "
                               "(flash failed?)")
        out.append(GateBoard(a, uid, old, source, new, tuple(problems)))
        progress("reading back", n + 1, total)
    if not out and not refused and not skipped:
        raise BusError(f"{bus.name}: no boards answered")
    return GateRun(bus.name, tuple(out), skipped, refused, datetime.now(timezone.utc).isoformat(timespec="seconds"))


def summary(run: GateRun) -> str:
    """A table of every board's slopes at the five points (V/s) and leak (mV/s)."""
    lines = [f"gates of {len(run.boards)} MOSFET board(s) on {run.bus}, slopes in V/s of pulse at the gate voltages:"]
    for b in run.boards:
        c = b.after
        pts = "  ".join(f"{g * 1e-6:.2f} V: +{s * NV_PER_US:.4g}/-{d * NV_PER_US:.4g}"
                        for g, s, d in zip(c.charge_gate_uv, c.charge_nv_per_us, c.discharge_nv_per_us))
        mark = "  PROBLEM" if b.problems else ""
        lines.append(f"  {b.address:>3} {b.uid}  {pts}  leak {c.leak_uv_per_s * 1e-3:+.3g} mV/s{mark}")
    for a, why in sorted(run.skipped.items()):
        lines.append(f"  {a:>3} skipped: {why}")
    for a, why in sorted(run.refused.items()):
        lines.append(f"  {a:>3} refused: {why}")
    return "\n".join(lines)
