"""The bench's SCPI instruments, simulated: a source-meter (:class:`SimSmu`), a voltmeter
(:class:`SimDmm`) and the boards' power supply (:class:`SimPsu`).

Each is as strict as the part it stands for, in the ways that have cost labs devices: the
source-meter keeps a stale level and puts it out the moment its output goes on, the meter
loads what it measures through its input impedance and reads overloads, the supply stays
off after a trip until its protection is cleared. Each reports its settings
(:class:`~instruments.interfaces.Configured`) under the same names as its driver in
:mod:`instruments.visa`.

Split from :mod:`instruments.sim.bench`, which builds them around its twin network.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from ..interfaces import InstrumentError, OverCurrent
from ..visa.keithley2450 import parse_protection_v, protection_for
from ..visa.keysight34465a import HIGH_IMPEDANCE_RANGES_V, NPLC, OVERLOAD_V

if TYPE_CHECKING:
    from .bench import SimBench

#: Supply current of one edge board (A).
BOARD_QUIESCENT_A = 4e-3
#: Lowest supply voltage at which the boards run (V).
BOARD_MIN_SUPPLY_V = 4.5
#: Mains frequency of the simulated lab (Hz): one power-line cycle is 20 ms.
LINE_HZ = 50.0


# -- the SCPI instruments ------------------------------------------------------------------


class SimSmu:
    """A source-meter (Keithley 2450-like) wired across one isolated edge device, as strict
    as the 2450 (Reference Manual 2450-901-01, section 6: ``:SOURce:VOLTage`` and its
    ``:PROTection`` and ``:ILIMit``, ``:OUTPut``; appendix B: ``*RST``):

    * the programmed level (:meth:`set_voltage`, :meth:`measure_current`) is kept across
      :meth:`configure`, which sets function, ranges, current limit and integration as the
      2450 does when sent only those; only :meth:`reset` (``*RST``) brings it back to 0 V;
    * switching the output on puts the programmed level across the device at once, whatever
      it is;
    * the output never exceeds the overvoltage protection: a level beyond it is held there
      (and ``voltage_protection_tripped`` reads True);
    * measuring with the output off is an error; currents beyond the compliance read as the
      compliance (sign kept); readings carry noise of 10 pA + 10 ppm, less with longer
      integration.

    :meth:`SimBench.probe_smu` chooses the edge and twin. The device is at the state its
    board gives it (a stuck device at its stuck state); for a MOSFET the drain is at the
    sourced voltage and the source at 0 V.

    Attributes:
        edge, twin: the device it is wired across (edge index; 0 free, 1 clamped twin).
        compliance_a, nplc: the current limit (A) and the integration (power-line cycles).
        level_v: the programmed source level (V).
        protection_v: the overvoltage protection's level (V), None for NONE.
        applied: what the device saw, oldest first: ``(edge, twin, volts)`` each time the
            voltage across a device changed (the output switched on, the level changed with
            the output on, the output switched off: 0 V), the last 100,000.
    """

    COMPLIANCE_RANGE_A = (1e-8, 1.05)
    NPLC_RANGE = (0.01, 10.0)
    MAX_V = 210.0
    CURRENT_RANGES_A = (10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0)

    def __init__(self, bench: "SimBench", seed):
        self._bench = bench
        self._rng = np.random.default_rng(seed)
        self.edge = 0
        self.twin = 0
        self.applied: deque[tuple[int, int, float]] = deque(maxlen=100_000)
        self._reset()

    def _reset(self) -> None:
        self.compliance_a = 105e-6
        self.nplc = 1.0
        self.level_v = 0.0
        self.protection_v: float | None = None
        self._on = False
        self._in_compliance = False
        self._last_a = 0.0

    def identity(self) -> str:
        return "TWINRIG,SIM-2450,SIMBENCH,0.1"

    def _save(self) -> dict:
        return {"rng": self._rng.bit_generator.state, "edge": self.edge, "twin": self.twin,
                "compliance_a": self.compliance_a, "nplc": self.nplc, "on": self._on,
                "in_compliance": self._in_compliance, "level_v": self.level_v, "protection_v": self.protection_v,
                "last_a": self._last_a}

    def _loader(self, saved: dict):
        values = (int(saved["edge"]), int(saved["twin"]), float(saved["compliance_a"]), float(saved["nplc"]),
                  bool(saved["on"]), bool(saved["in_compliance"]), float(saved.get("level_v", 0.0)),
                  None if saved.get("protection_v") is None else float(saved["protection_v"]),
                  float(saved.get("last_a", 0.0)))

        def load() -> None:
            self._rng.bit_generator.state = saved["rng"]
            (self.edge, self.twin, self.compliance_a, self.nplc, self._on, self._in_compliance, self.level_v,
             self.protection_v, self._last_a) = values
        return load

    def close(self) -> None:
        self.output(False)

    def reset(self) -> None:
        """``*RST``: output off, 0 V, 105 uA limit, 1 PLC, no overvoltage protection."""
        self.output(False)
        self._reset()

    def configure(self, compliance_a: float, nplc: float = 1.0) -> None:
        """Voltage source, current measurement, current limit ``compliance_a`` (A,
        1e-8..1.05), integration ``nplc`` (power-line cycles, 0.01..10); the level and the
        output are left as they are (see the class)."""
        lo, hi = self.COMPLIANCE_RANGE_A
        if not lo <= compliance_a <= hi:
            raise InstrumentError(f"SIM-2450: compliance {compliance_a} A is outside {lo}..{hi} A")
        lo, hi = self.NPLC_RANGE
        if not lo <= nplc <= hi:
            raise InstrumentError(f"SIM-2450: nplc {nplc} is outside {lo}..{hi}")
        self.compliance_a, self.nplc = float(compliance_a), float(nplc)

    def set_voltage_protection(self, voltage_v: float | None) -> None:
        """Overvoltage protection at the 2450's lowest level covering ``voltage_v`` (V,
        0..210; None: NONE), as :func:`~instruments.visa.keithley2450.protection_for` picks it."""
        try:
            setting = protection_for(voltage_v)
        except ValueError as exc:
            raise InstrumentError(f"SIM-2450: {exc}") from None
        self.protection_v = parse_protection_v(setting)
        self._apply()

    def _output_v(self) -> float:
        """What the terminals put out with the output on (V): the level, held at the protection."""
        limit = self.MAX_V if self.protection_v is None else self.protection_v
        return math.copysign(min(abs(self.level_v), limit), self.level_v)

    def _apply(self) -> None:
        """Record the voltage across the device when it changed."""
        volts = self._output_v() if self._on else 0.0
        if not self.applied or self.applied[-1] != (self.edge, self.twin, volts):
            if self._on or (self.applied and self.applied[-1][2] != 0.0):
                self.applied.append((self.edge, self.twin, volts))

    def set_voltage(self, voltage_v: float) -> None:
        """Program the level (V, -210..210); with the output on the device sees it at once."""
        if not abs(voltage_v) <= self.MAX_V:
            raise InstrumentError(f"SIM-2450: {voltage_v} V is outside +-{self.MAX_V} V")
        self.level_v = float(voltage_v)
        self._apply()

    def source_voltage(self) -> float:
        """The programmed level (V)."""
        return self.level_v

    def output(self, on: bool) -> None:
        """Switch the output on (the programmed level across the device at once) or off."""
        self._on = bool(on)
        self._apply()

    def measure_current(self, voltage_v: float) -> float:
        """Source ``voltage_v`` (V) across the device and return its current (A)."""
        if not self._on:
            raise InstrumentError("SIM-2450: measure with the output off (switch it on first)")
        self.set_voltage(voltage_v)
        i = self._bench.edge_current(self.edge, self._output_v(), self.twin)
        i += (10e-12 + 10e-6 * abs(i)) / math.sqrt(self.nplc) * self._rng.standard_normal()
        self._in_compliance = abs(i) >= self.compliance_a
        self._last_a = math.copysign(self.compliance_a, i) if self._in_compliance else i
        return self._last_a

    def sweep(self, voltages_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = np.asarray(voltages_v, dtype=float)
        return v.copy(), np.array([self.measure_current(x) for x in v])

    def in_compliance(self) -> bool:
        return self._in_compliance

    def settings(self) -> dict:
        """Under the names of :meth:`Keithley2450.settings <instruments.visa.Keithley2450.settings>`;
        auto ranges report the range the last level and current used."""
        return {
            "source_function": "VOLT", "source_voltage_v": self.level_v,
            "source_range_v": 20e-3 if abs(self.level_v) <= 21e-3 else next(
                r for r in (0.2, 2.0, 20.0, 200.0) if abs(self.level_v) <= 1.05 * r),
            "source_autorange": True, "current_limit_a": self.compliance_a,
            "voltage_protection_v": self.protection_v,
            "voltage_protection_tripped": self._on and abs(self._output_v()) < abs(self.level_v),
            "sense_function": "CURR:DC",
            "current_range_a": next((r for r in self.CURRENT_RANGES_A if abs(self._last_a) <= 1.05 * r), 1.0),
            "current_autorange": True, "nplc": self.nplc, "output_on": self._on,
        }


class SimDmm:
    """A DC voltmeter (Keysight 34465A-like, 6.5 digits, with the DIG option) on one point of
    the bench, as strict as the 34465A (Truevolt Series Operating and Service Guide, SCPI
    reference: ``[SENSe:]VOLTage:DC`` ``:RANGe``, ``:NPLC``, ``:APERture``, ``:ZERO:AUTO``,
    ``:IMPedance:AUTO``; specifications: input resistance 10 MOhm, or more than 10 GOhm on
    the 0.1 to 10 V ranges with impedance auto):

    * only the meter's ranges (0.1, 1, 10, 100, 1000 V), integration times (the NPLC set, or
      an aperture of 20 us..1 s) and autozero modes are taken;
    * the input resistance loads a node of the network: the reading is what the node falls to
      with the meter across it (the node's small-signal resistance to the circuit's fixed
      nodes in parallel with the input resistance); a DAQ output is stiff and is not loaded;
    * beyond 120 % of a fixed range the meter reads overload, which is raised as an
      :class:`~instruments.interfaces.InstrumentError` naming range and reading, as the
      driver does;
    * readings are rounded to 1 ppm of the range and carry 0.3 ppm of the range of noise
      (less with longer integration).

    :meth:`SimBench.probe_dmm` puts it on a DAQ output (what the output really puts out) or
    on a node of one twin.

    Attributes:
        range_v: the fixed range (V), or None for auto-range.
        nplc: integration (power-line cycles), or None when an aperture is set.
        aperture_s: integration (s), or None when in power-line cycles.
        autozero: True (ON) or False (OFF; ONCE leaves it OFF).
        input_impedance: ``"auto"`` or ``"10M"``.
        probe: where it is connected: ``("ao", output index)`` or ``("node", index, twin)``.
    """

    RANGES_V = (0.1, 1.0, 10.0, 100.0, 1000.0)
    OVERLOAD = OVERLOAD_V
    INPUT_OHM = {"10M": 10e6, "auto": 10e9}

    def __init__(self, bench: "SimBench", seed):
        self._bench = bench
        self._rng = np.random.default_rng(seed)
        self.range_v: float | None = None
        self.nplc: float | None = 1.0
        self.aperture_s: float | None = None
        self.autozero = True
        self.input_impedance = "auto"
        self.probe: tuple = ("node", 0, 0)
        self._last_range_v = 10.0

    def identity(self) -> str:
        return "TWINRIG,SIM-34465A,SIMBENCH,0.1"

    def _save(self) -> dict:
        return {"rng": self._rng.bit_generator.state, "range_v": self.range_v, "nplc": self.nplc,
                "probe": list(self.probe), "aperture_s": self.aperture_s, "autozero": self.autozero,
                "input_impedance": self.input_impedance}

    def _loader(self, saved: dict):
        range_v = None if saved["range_v"] is None else float(saved["range_v"])
        nplc = None if saved["nplc"] is None else float(saved["nplc"])
        aperture_s = None if saved.get("aperture_s") is None else float(saved["aperture_s"])
        autozero, impedance = bool(saved.get("autozero", True)), str(saved.get("input_impedance", "auto"))
        kind, *where = saved["probe"]
        probe = (str(kind), *(int(x) for x in where))

        def load() -> None:
            self._rng.bit_generator.state = saved["rng"]
            self.range_v, self.nplc, self.probe = range_v, nplc, probe
            self.aperture_s, self.autozero, self.input_impedance = aperture_s, autozero, impedance
        return load

    def close(self) -> None:
        pass

    def configure_dc_volts(self, range_v: float | None = None, nplc: float = 1.0, *, aperture_s: float | None = None,
                           autozero: str = "ON", input_impedance: str = "auto") -> None:
        """DC volts on ``range_v`` (V, one of :attr:`RANGES_V`) or auto-range (None),
        integrating ``nplc`` power-line cycles (one of the 34465A's) or ``aperture_s`` (s,
        20e-6..1) when given, autozero ``"ON"``, ``"OFF"`` or ``"ONCE"``, input impedance
        ``"auto"`` or ``"10M"``. Nothing changes when a value is refused."""
        if range_v is not None and range_v not in self.RANGES_V:
            raise InstrumentError(f"SIM-34465A: range_v {range_v} V is not one of {', '.join(map(str, self.RANGES_V))}")
        if aperture_s is None and nplc not in NPLC.values:
            raise InstrumentError(f"SIM-34465A: nplc {nplc} is not one of {', '.join(map(str, NPLC.values))}")
        if aperture_s is not None and not 20e-6 <= aperture_s <= 1.0:
            raise InstrumentError(f"SIM-34465A: aperture_s {aperture_s} s is outside 2e-05..1 s")
        if autozero not in ("ON", "OFF", "ONCE"):
            raise InstrumentError(f"SIM-34465A: autozero {autozero!r} is not one of ON, OFF, ONCE")
        if input_impedance not in self.INPUT_OHM:
            raise InstrumentError(f"SIM-34465A: input_impedance {input_impedance!r} is not one of auto, 10M")
        self.range_v = None if range_v is None else float(range_v)
        self.nplc, self.aperture_s = (float(nplc), None) if aperture_s is None else (None, float(aperture_s))
        self.autozero, self.input_impedance = autozero == "ON", input_impedance

    def _input_ohm(self, range_v: float) -> float:
        if self.input_impedance == "auto" and range_v in HIGH_IMPEDANCE_RANGES_V:
            return self.INPUT_OHM["auto"]
        return self.INPUT_OHM["10M"]

    def _node_ohm(self, node: int, twin: int) -> float:
        """The small-signal resistance (Ohm) from ``node`` of ``twin`` to the circuit's fixed
        nodes (sources and ground, and on the clamped twin the targets), at the present
        operating point: the diagonal entry of the inverse Jacobian of the floating nodes."""
        bench = self._bench
        net = bench.network
        v = bench.node_voltages("free" if twin == 0 else "clamped")
        fixed = set(net.sources.tolist()) | ({net.ground} if net.ground is not None else set())
        if twin == 1:
            fixed |= set(net.targets.tolist())
        if node in fixed:
            return 0.0
        free = [n for n in range(net.n_nodes) if n not in fixed]
        a, b = net.edges[:, 0], net.edges[:, 1]
        _, ga, gb = bench.device.current(bench.device_state(), v[a], v[b], twin)
        jac = np.zeros((net.n_nodes, net.n_nodes))
        np.add.at(jac, (a, a), ga)
        np.add.at(jac, (a, b), gb)
        np.add.at(jac, (b, a), -ga)
        np.add.at(jac, (b, b), -gb)
        sub = jac[np.ix_(free, free)]
        unit = np.zeros(len(free))
        unit[free.index(node)] = 1.0
        return float(np.linalg.solve(sub, unit)[free.index(node)])

    def measure_dc_volts(self) -> float:
        """One reading (V) of the probed point, loaded by the input resistance."""
        v = self._bench._probe_voltage(self.probe)
        r = self.range_v
        if r is None:
            r = next((x for x in self.RANGES_V if abs(v) <= 1.2 * x), self.RANGES_V[-1])
        if self.probe[0] == "node":
            node_ohm = self._node_ohm(self.probe[1], self.probe[2])
            v *= self._input_ohm(r) / (self._input_ohm(r) + node_ohm)
        self._last_range_v = r
        if abs(v) > 1.2 * r:
            raise InstrumentError(f"SIM-34465A: overload on the {r:g} V range: READ? gave "
                                  f"{math.copysign(self.OVERLOAD, v):+.8E} (the input is beyond 120 % of the range)")
        nplc = self.aperture_s * LINE_HZ if self.nplc is None else self.nplc
        v += 0.3e-6 * r / math.sqrt(nplc) * self._rng.standard_normal()
        step = 1e-6 * r
        return round(v / step) * step

    def settings(self) -> dict:
        """Under the names of :meth:`Keysight34465A.settings <instruments.visa.Keysight34465A.settings>`;
        with auto-range, ``range_v`` is the range the last reading used."""
        r = self._last_range_v if self.range_v is None else self.range_v
        return {
            "function": "VOLT", "range_v": r, "autorange": self.range_v is None,
            "nplc": self.aperture_s * LINE_HZ if self.nplc is None else self.nplc,
            "aperture_enabled": self.aperture_s is not None,
            "aperture_s": self.nplc / LINE_HZ if self.aperture_s is None else self.aperture_s,
            "autozero": self.autozero, "input_impedance_auto": self.input_impedance == "auto",
            "input_impedance": "10G" if self._input_ohm(r) > 1e9 else "10M",
        }


class SimPsu:
    """The boards' bench supply (Keysight E36312A-like: channel 1 up to 6 V and 5 A,
    channels 2 and 3 up to 25 V and 1 A), as strict as the E36312A (E36300 Series
    programming guide: ``CURRent:PROTection``, ``OUTPut:PROTection:CLEar``): over-current
    protection is on, a channel that trips it is switched off and stays off, refusing to be
    switched on, until :meth:`clear_protection` clears it.

    The boards hang on one channel: its current is their quiescent current plus the current
    the network draws from its driven nodes. The boards run while that channel is on, not
    tripped and at least 4.5 V; when it switches back on they restart. Over-current
    protection is evaluated when the supply is read (``measure_current``,
    ``over_current``) and on :meth:`trip`.
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
        """Switch ``channel`` on or off; a tripped channel is refused until cleared."""
        self._check(channel)
        if on and self.tripped[channel]:
            raise InstrumentError(f"SIM-E36312A: channel {channel} has tripped its over-current protection and "
                                  "stays off until it is cleared (OUTP:PROT:CLE)")
        self.on[channel] = bool(on)
        self._power_boards()

    def clear_protection(self, channel: int) -> bool:
        """Clear ``channel``'s latched protection (the output stays off); True when it had tripped."""
        self._check(channel)
        tripped, self.tripped[channel] = self.tripped[channel], False
        return tripped

    def safe_state(self) -> None:
        """Every output off."""
        for c in self.LIMITS:
            self.on[c] = False
        self._power_boards()

    def settings(self) -> dict:
        """Under the names of :meth:`KeysightE36312A.settings <instruments.visa.KeysightE36312A.settings>`."""
        out: dict = {}
        for key, per_channel in (("voltage_v", self.voltage_v), ("current_limit_a", self.limit_a),
                                 ("over_current_protection", {c: True for c in self.LIMITS}),
                                 ("over_current_tripped", self.tripped), ("output_on", self.on)):
            out.update({f"ch{c}_{key}": per_channel[c] for c in sorted(self.LIMITS)})
        return out

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

