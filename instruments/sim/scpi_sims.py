"""The bench's SCPI instruments, simulated: a source-meter (:class:`SimSmu`), a voltmeter
(:class:`SimDmm`) and the boards' power supply (:class:`SimPsu`).

Split from :mod:`instruments.sim.bench`, which builds them around its twin network.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..interfaces import InstrumentError, OverCurrent

if TYPE_CHECKING:
    from .bench import SimBench

#: Supply current of one edge board (A).
BOARD_QUIESCENT_A = 4e-3
#: Lowest supply voltage at which the boards run (V).
BOARD_MIN_SUPPLY_V = 4.5


# -- the SCPI instruments ------------------------------------------------------------------


class SimSmu:
    """A source-meter (Keithley 2450-like) wired across one isolated edge device.

    :meth:`SimBench.probe_smu` chooses the edge and twin. The device is at the state its
    board gives it (a stuck device at its stuck state); for a MOSFET the drain is at the
    sourced voltage and the source at 0 V. Currents beyond the compliance read as the
    compliance (sign kept); readings carry noise of 10 pA + 10 ppm, less with longer
    integration.

    Attributes:
        edge, twin: the device it is wired across (edge index; 0 free, 1 clamped twin).
        compliance_a, nplc: the current limit (A) and the integration (power-line cycles).
    """

    COMPLIANCE_RANGE_A = (1e-8, 1.05)
    NPLC_RANGE = (0.01, 10.0)
    MAX_V = 210.0

    def __init__(self, bench: "SimBench", seed):
        self._bench = bench
        self._rng = np.random.default_rng(seed)
        self.edge = 0
        self.twin = 0
        self.compliance_a = 105e-6
        self.nplc = 1.0
        self._on = False
        self._in_compliance = False

    def identity(self) -> str:
        return "TWINRIG,SIM-2450,SIMBENCH,0.1"

    def _save(self) -> dict:
        return {"rng": self._rng.bit_generator.state, "edge": self.edge, "twin": self.twin,
                "compliance_a": self.compliance_a, "nplc": self.nplc, "on": self._on,
                "in_compliance": self._in_compliance}

    def _loader(self, saved: dict):
        values = (int(saved["edge"]), int(saved["twin"]), float(saved["compliance_a"]), float(saved["nplc"]),
                  bool(saved["on"]), bool(saved["in_compliance"]))

        def load() -> None:
            self._rng.bit_generator.state = saved["rng"]
            self.edge, self.twin, self.compliance_a, self.nplc, self._on, self._in_compliance = values
        return load

    def close(self) -> None:
        self._on = False

    def configure(self, compliance_a: float, nplc: float = 1.0) -> None:
        lo, hi = self.COMPLIANCE_RANGE_A
        if not lo <= compliance_a <= hi:
            raise InstrumentError(f"SIM-2450: compliance {compliance_a} A is outside {lo}..{hi} A")
        lo, hi = self.NPLC_RANGE
        if not lo <= nplc <= hi:
            raise InstrumentError(f"SIM-2450: nplc {nplc} is outside {lo}..{hi}")
        self.compliance_a, self.nplc = float(compliance_a), float(nplc)

    def output(self, on: bool) -> None:
        self._on = bool(on)

    def measure_current(self, voltage_v: float) -> float:
        """Source ``voltage_v`` (V) across the device and return its current (A)."""
        if not self._on:
            raise InstrumentError("SIM-2450: measure with the output off (switch it on first)")
        if not abs(voltage_v) <= self.MAX_V:
            raise InstrumentError(f"SIM-2450: {voltage_v} V is outside +-{self.MAX_V} V")
        i = self._bench.edge_current(self.edge, voltage_v, self.twin)
        i += (10e-12 + 10e-6 * abs(i)) / math.sqrt(self.nplc) * self._rng.standard_normal()
        self._in_compliance = abs(i) >= self.compliance_a
        return math.copysign(self.compliance_a, i) if self._in_compliance else i

    def sweep(self, voltages_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = np.asarray(voltages_v, dtype=float)
        return v.copy(), np.array([self.measure_current(x) for x in v])

    def in_compliance(self) -> bool:
        return self._in_compliance


class SimDmm:
    """A DC voltmeter (Keysight 34465A-like, 6.5 digits) on one point of the bench.

    :meth:`SimBench.probe_dmm` puts it on a DAQ output (what the output really puts out) or
    on a node of one twin. Readings are rounded to 1 ppm of the range and carry 0.3 ppm of
    the range of noise (less with longer integration); beyond 120 % of a fixed range the
    meter reads the overload value 9.9e37.

    Attributes:
        range_v: the fixed range (V), or None for auto-range.
        nplc: integration (power-line cycles).
        probe: where it is connected: ``("ao", output index)`` or ``("node", index, twin)``.
    """

    RANGES_V = (0.1, 1.0, 10.0, 100.0, 1000.0)
    OVERLOAD = 9.9e37

    def __init__(self, bench: "SimBench", seed):
        self._bench = bench
        self._rng = np.random.default_rng(seed)
        self.range_v: float | None = None
        self.nplc = 1.0
        self.probe: tuple = ("node", 0, 0)

    def identity(self) -> str:
        return "TWINRIG,SIM-34465A,SIMBENCH,0.1"

    def _save(self) -> dict:
        return {"rng": self._rng.bit_generator.state, "range_v": self.range_v, "nplc": self.nplc,
                "probe": list(self.probe)}

    def _loader(self, saved: dict):
        range_v = None if saved["range_v"] is None else float(saved["range_v"])
        nplc = float(saved["nplc"])
        kind, *where = saved["probe"]
        probe = (str(kind), *(int(x) for x in where))

        def load() -> None:
            self._rng.bit_generator.state = saved["rng"]
            self.range_v, self.nplc, self.probe = range_v, nplc, probe
        return load

    def close(self) -> None:
        pass

    def configure_dc_volts(self, range_v: float | None = None, nplc: float = 1.0) -> None:
        if range_v is not None:
            fits = [r for r in self.RANGES_V if abs(range_v) <= r]
            if not fits:
                raise InstrumentError(f"SIM-34465A: no range holds {range_v} V (widest {self.RANGES_V[-1]} V)")
            range_v = fits[0]
        if not 0.001 <= nplc <= 100:
            raise InstrumentError(f"SIM-34465A: nplc {nplc} is outside 0.001..100")
        self.range_v, self.nplc = range_v, float(nplc)

    def measure_dc_volts(self) -> float:
        v = self._bench._probe_voltage(self.probe)
        r = self.range_v
        if r is None:
            r = next((x for x in self.RANGES_V if abs(v) <= 1.2 * x), self.RANGES_V[-1])
        if abs(v) > 1.2 * r:
            return self.OVERLOAD
        v += 0.3e-6 * r / math.sqrt(self.nplc) * self._rng.standard_normal()
        step = 1e-6 * r
        return round(v / step) * step


class SimPsu:
    """The boards' bench supply (Keysight E36312A-like: channel 1 up to 6 V and 5 A,
    channels 2 and 3 up to 25 V and 1 A).

    The boards hang on one channel: its current is their quiescent current plus the current
    the network draws from its driven nodes. The boards run while that channel is on, not
    tripped and at least 4.5 V; when it switches back on they restart. Over-current
    protection is evaluated when the supply is read (``measure_current``,
    ``over_current``) and on :meth:`trip`; switching a tripped channel on clears it.
    """

    LIMITS = {1: (6.0, 5.0), 2: (25.0, 1.0), 3: (25.0, 1.0)}

    def __init__(self, bench: "SimBench", channel: int, voltage_v: float, current_limit_a: float):
        self._bench = bench
        self.board_channel = int(channel)
        self._check(self.board_channel)
        self.voltage_v = {c: 0.0 for c in self.LIMITS}
        self.limit_a = {c: lim[1] for c, lim in self.LIMITS.items()}
        # the bench starts with the boards' channel on: switching it on here would restart them
        self.on = {c: c == self.board_channel for c in self.LIMITS}
        self.tripped = {c: False for c in self.LIMITS}
        self.voltage_v[self.board_channel] = self._checked_voltage(self.board_channel, voltage_v)
        self.limit_a[self.board_channel] = self._checked_limit(self.board_channel, current_limit_a)
        self._power_boards()

    def _check(self, channel: int) -> None:
        if channel not in self.LIMITS:
            raise InstrumentError(f"SIM-E36312A: no channel {channel} (channels 1..3)")

    def _power_boards(self) -> None:
        c = self.board_channel
        self._bench.boards.powered = self.on[c] and not self.tripped[c] and self.voltage_v[c] >= BOARD_MIN_SUPPLY_V

    def identity(self) -> str:
        return "TWINRIG,SIM-E36312A,SIMBENCH,0.1"

    def _save(self) -> dict:
        # per channel 1..3, as lists: JSON keys would turn the channel numbers into strings
        channels = sorted(self.LIMITS)
        return {"voltage_v": [self.voltage_v[c] for c in channels], "limit_a": [self.limit_a[c] for c in channels],
                "on": [self.on[c] for c in channels], "tripped": [self.tripped[c] for c in channels]}

    def _loader(self, saved: dict):
        channels = sorted(self.LIMITS)
        values = {}
        for name, kind in (("voltage_v", float), ("limit_a", float), ("on", bool), ("tripped", bool)):
            if len(saved[name]) != len(channels):
                raise ValueError(f"saved psu {name} has {len(saved[name])} channels, this supply has {len(channels)}")
            values[name] = dict(zip(channels, map(kind, saved[name])))

        def load() -> None:
            # the boards' power is part of the boards' state: not switched here
            for name, per_channel in values.items():
                getattr(self, name).update(per_channel)
        return load

    def close(self) -> None:
        pass

    def _checked_voltage(self, channel: int, voltage_v: float) -> float:
        self._check(channel)
        vmax = self.LIMITS[channel][0]
        if not 0 <= voltage_v <= vmax:
            raise InstrumentError(f"SIM-E36312A: channel {channel}: {voltage_v} V is outside 0..{vmax} V")
        return float(voltage_v)

    def _checked_limit(self, channel: int, current_a: float) -> float:
        self._check(channel)
        imax = self.LIMITS[channel][1]
        if not 0 < current_a <= imax:
            raise InstrumentError(f"SIM-E36312A: channel {channel}: current limit {current_a} A is outside 0..{imax} A")
        return float(current_a)

    def set_voltage(self, channel: int, voltage_v: float) -> None:
        self.voltage_v[channel] = self._checked_voltage(channel, voltage_v)
        self._power_boards()

    def set_current_limit(self, channel: int, current_a: float) -> None:
        self.limit_a[channel] = self._checked_limit(channel, current_a)

    def output(self, channel: int, on: bool) -> None:
        self._check(channel)
        self.on[channel] = bool(on)
        if on:
            self.tripped[channel] = False
        self._power_boards()

    def _load_a(self, channel: int) -> float:
        if channel != self.board_channel or not self.on[channel] or self.tripped[channel]:
            return 0.0
        boards = self._bench.boards
        return (boards.n * BOARD_QUIESCENT_A if boards.powered else 0.0) + self._bench.network_current()

    def _protect(self, channel: int) -> float:
        i = self._load_a(channel)
        if i > self.limit_a[channel]:
            self.trip(channel)
            return 0.0
        return i

    def trip(self, channel: int | None = None) -> None:
        """Trip the over-current protection of ``channel`` (default the boards')."""
        c = self.board_channel if channel is None else channel
        self._check(c)
        self.tripped[c] = True
        self.on[c] = False
        self._power_boards()

    def measure_current(self, channel: int) -> float:
        """Output current of ``channel`` (A); OverCurrent when the reading trips it."""
        self._check(channel)
        was = self.tripped[channel]
        i = self._protect(channel)
        if self.tripped[channel] and not was:
            raise OverCurrent(f"SIM-E36312A: channel {channel} tripped: load above {self.limit_a[channel]} A")
        return i

    def over_current(self, channel: int) -> bool:
        self._check(channel)
        self._protect(channel)
        return self.tripped[channel]

