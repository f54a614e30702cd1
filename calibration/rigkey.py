"""The key of a rig: what a calibration belongs to.

A calibration is valid on the bench it was measured on and on no other: the same DAQ (its
identity, serial numbers included), the same edge boards (each board's unique id, at its
address), the same network and the same wiring; for a simulated bench also the same seed
and the same imperfections (channel errors, device spread, ADC offsets). The DAQ's identity
alone does not say it: one DAQ is often shared by several PCBs, and every simulated bench of
one seed has the same DAQ.

:func:`key_of` reads the key of an open rig (each board is asked for its uid over the bus);
:func:`differences` names, one short phrase each, what differs between the key a
calibration was made with and the rig at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from instruments.fingerprint import fingerprint, network_fingerprint, wiring_fingerprint


@dataclass(frozen=True)
class RigKey:
    """What a calibration belongs to.

    Attributes:
        daq: the DAQ's identity (devices, models, serial numbers).
        boards: bus address -> the board's unique id (hex), None for a board that did not
            answer; empty for a rig without an edge bus.
        network: :func:`~instruments.fingerprint.network_fingerprint` of the network.
        wiring: :func:`~instruments.fingerprint.wiring_fingerprint` of the wiring.
        simulated: None for a real bench; for a simulated one ``{"seed": int,
            "imperfections": str}`` (the bench's seed and
            :attr:`~instruments.sim.bench.SimBench.imperfections`).
        rig: the rig's name when the key was read, for people; two keys that differ only
            in the name are the same rig (a rig file renamed, the built-in benches' names).
    """

    daq: str
    boards: dict = field(default_factory=dict)
    network: str = ""
    wiring: str = ""
    simulated: dict | None = None
    rig: str = ""

    def to_dict(self) -> dict:
        """Plain JSON-able values (board addresses as strings)."""
        return {"daq": self.daq, "boards": {str(a): u for a, u in sorted(self.boards.items())},
                "network": self.network, "wiring": self.wiring,
                "simulated": None if self.simulated is None else dict(self.simulated), "rig": self.rig}

    @classmethod
    def from_dict(cls, d: dict) -> "RigKey":
        sim = d.get("simulated")
        return cls(daq=str(d["daq"]), boards={int(a): (None if u is None else str(u)) for a, u in d["boards"].items()},
                   network=str(d["network"]), wiring=str(d["wiring"]),
                   simulated=None if sim is None else {"seed": int(sim["seed"]), "imperfections": str(sim["imperfections"])},
                   rig=str(d.get("rig", "")))

    def digest(self) -> str:
        """A short fingerprint of the whole key (name excluded), for listings."""
        d = self.to_dict()
        del d["rig"]
        return fingerprint(d)[:8]

    def matches(self, other: "RigKey") -> bool:
        """Same rig: nothing but (perhaps) the name differs."""
        return not differences(self, other)


def _ranges(addresses) -> str:
    """``[1, 2, 3, 7]`` -> ``"1..3, 7"``."""
    out: list[str] = []
    addrs = sorted(addresses)
    start = prev = None
    for a in addrs + [None]:
        if start is not None and (a is None or a != prev + 1):
            out.append(str(start) if start == prev else f"{start}..{prev}")
            start = None
        if a is not None and start is None:
            start = a
        prev = a
    return ", ".join(out)


def board_differences(recorded: dict, present: dict) -> list[str]:
    """What differs between two ``boards`` maps (address -> uid), one phrase per kind."""
    out = []
    absent = [a for a in recorded if a not in present]
    new = [a for a in present if a not in recorded]
    silent = [a for a in recorded if a in present and present[a] is None]
    replaced = [a for a in recorded if present.get(a) is not None and present[a] != recorded[a]]
    if absent:
        out.append(f"boards {_ranges(absent)} are not on this rig")
    if new:
        out.append(f"boards {_ranges(new)} were not calibrated")
    if silent:
        out.append(f"boards {_ranges(silent)} did not answer")
    if replaced:
        shown = ", ".join(f"{a} (uid {recorded[a]} -> {present[a]})" for a in replaced[:3])
        more = f" and {len(replaced) - 3} more" if len(replaced) > 3 else ""
        out.append(f"board{'s' if len(replaced) > 1 else ''} {shown}{more} replaced")
    return out


def differences(recorded: RigKey, present: RigKey) -> list[str]:
    """What differs between the key a calibration was made with (``recorded``) and the rig
    at hand (``present``), one short phrase each; empty when they are the same rig."""
    out: list[str] = []
    rs, ps = recorded.simulated, present.simulated
    if (rs is None) != (ps is None):
        out.append("calibrated on the simulated bench, this is a real one" if ps is None
                   else "calibrated on a real bench, this is the simulated one")
    elif rs is not None:
        if rs["seed"] != ps["seed"]:
            out.append(f"simulated bench of seed {rs['seed']}, this one has seed {ps['seed']}")
        elif rs["imperfections"] != ps["imperfections"]:
            out.append("the simulated bench's imperfections (DAQ errors, devices or ADC offsets) differ")
    if recorded.daq != present.daq:
        out.append(f"another DAQ (calibrated: {recorded.daq}; here: {present.daq})")
    if recorded.network != present.network:
        out.append("another network")
    if recorded.wiring != present.wiring:
        out.append("another wiring (DAQ channels, their nodes or ranges, or the boards' edges)")
    out.extend(board_differences(recorded.boards, present.boards))
    return out


def key_of(rig) -> RigKey:
    """The key of an open :class:`~instruments.rig.Rig`: its DAQ's identity, the uid of every
    board of its wiring (asked over the bus; None for one that does not answer), the
    network's and the wiring's fingerprints, and on the simulated bench its seed and
    imperfections."""
    from instruments.bus.client import BusError

    boards: dict[int, str | None] = {}
    if rig.bus is not None:
        for address in sorted(rig.wiring.boards):
            try:
                boards[int(address)] = rig.bus.identify(int(address)).uid
            except BusError:
                boards[int(address)] = None
    simulated = None
    if rig.simulated:
        simulated = {"seed": int(rig.bench.seed), "imperfections": str(rig.bench.imperfections)}
    return RigKey(daq=rig.daq.identity(), boards=boards, network=network_fingerprint(rig.wiring.network),
                  wiring=wiring_fingerprint(rig.wiring), simulated=simulated, rig=rig.wiring.name)
