"""The simulated bench: one twin network behind simulated versions of every instrument.

:class:`SimBench` builds one physical twin pair (network, edge devices, learned state) and
puts in front of it what the real bench has, each behind the same interface as the real
part (:mod:`instruments.interfaces`), with the same limits and the same failure modes:

* ``bench.daq`` (:class:`SimDaq`, a ``BoundaryDaq``): analog outputs quantised to the
  device's codes with per-channel gain and offset errors; each output drives its node on
  the twins its wiring names (a source on both, a clamp on the clamped twin; the free twin's
  targets float); analog inputs with gain and offset errors, Gaussian noise per sample,
  settling, quantisation and saturation over their range; the learn line;
* ``bench.bus``: the real :class:`~instruments.bus.client.BusClient`, over a
  :class:`~instruments.sim.loopback.LoopbackPort` to :class:`~instruments.sim.boards.SimBoards`
  running the firmware's integer rule;
* ``bench.smu``, ``bench.dmm``, ``bench.psu``: a source-meter on one isolated edge device,
  a voltmeter on an output or a node, and the boards' power supply.

A learn pulse lets every board read its four terminals (free twin a, b; clamped twin a, b)
through its ADC and run its rule; the board states then set the devices (gate volts or
taps), except stuck ones, and the circuit is solved again on the next read. Faults are set
at construction (:class:`BenchFaults`) or mid-run by the bench's methods.

The parts live in their own modules: the DAQ in :mod:`instruments.sim.simdaq`, the SCPI
instruments in :mod:`instruments.sim.scpi_sims`; this module builds the bench around them and
re-exports their names. Imperfections of time and temperature, each off unless asked for:
the gates' leak over the bench's clock (:mod:`instruments.sim.retention`), the devices at a
temperature (:mod:`instruments.sim.temperature`), node capacitance through which the twins
settle after each write (:mod:`instruments.sim.settling`).

Everything random comes from ``seed``: the same seed gives the same bench and the same
readings. A run can be checkpointed: :meth:`SimBench.save_state` returns everything that
changes while the bench runs, and :meth:`SimBench.load_state` on a bench built with the same
arguments continues from it exactly as the saved bench would have. Units: V, A, s; board
states in taps or gate uV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..bus import protocol as p
from ..bus.client import BusClient
from ..fingerprint import fingerprint
from ..wiring import Wiring, default_wiring
from .boards import DEVICE_UNIT, SimBoards
from .circuit import check_floating
from .edges import GEN2_S_A_PER_V2, Digipot, EdgeDevice, MixedEdges, Mosfet, spread
from .loopback import LoopbackPort
from .retention import BoardGates, GateLeak
from .settling import SettlingNodes
from .scpi_sims import BOARD_MIN_SUPPLY_V, BOARD_QUIESCENT_A, SimDmm, SimPsu, SimSmu
from .simdaq import DaqErrors, SimDaq, _saved_array
from .solver_memory import solver_memory, solver_memory_loader
from .temperature import T_NOMINAL_C, at_temperature
from .twin import make_backend

__all__ = [
    "BenchFaults", "DaqErrors", "SimBench", "SimDaq", "SimDmm", "SimPsu", "SimSmu", "default_device",
    "BOARD_MIN_SUPPLY_V", "BOARD_QUIESCENT_A", "CHECKPOINT_FORMAT", "GEN2_BENCH_VT_V", "GEN2_INITIAL_GATE_V", "GEN1_INITIAL_TAPS",
]


#: Threshold voltage of the default Gen-2 MOSFETs (V); the lab measures 0.62 to 0.7 V.
GEN2_BENCH_VT_V = 0.66
#: Range of the initial gate voltages drawn from the seed (V).
GEN2_INITIAL_GATE_V = (1.5, 2.8)
#: Range of the initial digipot taps drawn from the seed.
GEN1_INITIAL_TAPS = (40, 60)
#: Gen-2 gate charging: R (Ohm), C (F) and multiplier scale g (1/V) of the boards' rule.
GATE_R_OHM, GATE_C_F, GATE_G_PER_V = 1e3, 2.2e-6, 0.1


# -- checkpoints -------------------------------------------------------------------------------

#: Layout version of :meth:`SimBench.save_state`'s dict.
CHECKPOINT_FORMAT = 1


@dataclass
class BenchFaults:
    """Faults of a :class:`SimBench` from the start; the bench's methods set them mid-run.

    Attributes:
        mute: addresses of boards that no longer answer on the bus (they still learn).
        stuck: edges whose device no longer follows its board (it keeps its initial state).
        daq_timeouts: the next N hardware-timed DAQ operations raise DaqTimeout.
        noise_factor, noise_reads: input noise multiplied by ``noise_factor`` for the next
            ``noise_reads`` reads.
        psu_trip: the boards' supply trips its over-current protection at once.
        edge_spread: relative spread of the device parameters from edge to edge (default
            device only), e.g. 0.05.
        twin_mismatch: relative difference between the two twins of each edge (default
            device only), e.g. 0.01.
        update_bias: constant change of every update of each edge, in device units (gate V
            or taps) per update, scalar or (E,) (default device only).
    """

    mute: set = field(default_factory=set)
    stuck: set = field(default_factory=set)
    daq_timeouts: int = 0
    noise_factor: float = 1.0
    noise_reads: int = 0
    psu_trip: bool = False
    edge_spread: float = 0.0
    twin_mismatch: float = 0.0
    update_bias: float | np.ndarray = 0.0

    @property
    def shapes_device(self) -> bool:
        """True when a fault is built into the device model."""
        return bool(self.edge_spread or self.twin_mismatch or np.any(self.update_bias))


def default_device(edge_kind: str, n_edges: int, faults: BenchFaults | None = None, seed=0) -> EdgeDevice:
    """The device of a built-in bench: Gen-2 MOSFETs (S = 8.5e-4 A/V^2, V_T = 0.66 V) or
    Gen-1 digipots, with the spread, twin mismatch and update bias of ``faults``; ``seed``
    (an int or a numpy SeedSequence) fixes the spread."""
    faults = BenchFaults() if faults is None else faults
    rng = np.random.default_rng(seed)
    bias = faults.update_bias
    if edge_kind == "mosfet":
        s = spread(GEN2_S_A_PER_V2, n_edges, faults.edge_spread, faults.twin_mismatch, rng)
        vt = spread(GEN2_BENCH_VT_V, n_edges, faults.edge_spread, faults.twin_mismatch, rng)
        return Mosfet(n_edges, update_bias=bias, s_a_per_v2=s, vt_v=vt)
    if edge_kind == "digipot":
        gain = spread(1.0, n_edges, faults.edge_spread, faults.twin_mismatch, rng)
        return Digipot(n_edges, update_bias=bias, gain=gain)
    raise ValueError(f"no default device for edge kind {edge_kind!r}")


def _learning_part(device: EdgeDevice, learning: np.ndarray) -> EdgeDevice | None:
    """The device of the learning edges (``learning``, (E,) bool): ``device`` itself, or the
    one part of a mixed device that holds them all; None when they span several kinds."""
    if not isinstance(device, MixedEdges):
        return device
    parts = [dev for dev, idx in device.parts if learning[idx].any()]
    if len({dev.kind for dev in parts}) != 1:
        return None
    lo = min(dev.state_min for dev in parts)
    hi = max(dev.state_max for dev in parts)
    return next(dev for dev in parts if dev.state_min == lo) if all(
        (dev.state_min, dev.state_max) == (lo, hi) for dev in parts) else None


class _Boards(SimBoards):
    """The emulated boards; those of fixed edges (``held``, by position) never update: any
    rule configured on them, by broadcast or addressed, is stored as none."""

    held: np.ndarray | None = None

    def _hold(self) -> None:
        if self.held is not None and self.held.any():
            self._cfg[self.held, 0] = 0

    def configure(self, *args, **kwargs) -> None:
        super().configure(*args, **kwargs)
        self._hold()

    def set_config(self, index, rule, probability, gain, dead_band_uv2) -> None:
        super().set_config(index, rule, probability, gain, dead_band_uv2)
        self._hold()

    def load_state(self, saved: dict) -> None:
        super().load_state(saved)
        self._hold()


class _Port(LoopbackPort):
    """The bus's loopback port; ``before`` (when set) runs before the boards see any bytes."""

    before = None

    def write(self, data: bytes) -> int:
        if self.before is not None:
            self.before()
        return super().write(data)


# -- the bench ---------------------------------------------------------------------------------


class SimBench:
    """One simulated twin network behind a simulated DAQ, bus, SMU, DMM and power supply.

    Args:
        wiring: the bench's wiring; default the built-in Gen-2 MOSFET lattice
            (:func:`~instruments.wiring.default_wiring` ``("gen2")``).
        device: the edge model (both twins' parameters, limits, update bias), of the
            wiring's edge kind; default :func:`default_device`, shaped by ``faults``.
        errors: the DAQ's imperfections; default :meth:`DaqErrors.drawn` from the seed,
            :meth:`DaqErrors.ideal` for none.
        faults: faults from the start (:class:`BenchFaults`).
        seed: every random choice (initial states, errors, device spread, noise, uids).
        initial_state: the edges' initial state in device units (gate V or taps), (E,);
            default gates 1.5..2.8 V or taps 40..60 drawn from the seed.
        rule: the boards' rule (name or code); default ``gate_charging`` on MOSFET boards
            (gain from :func:`~instruments.bus.protocol.gate_gain` at the wiring's pulse, 1
            kOhm, 2.2 uF, 0.1 /V) and ``tap`` on digipot boards.
        gain, probability, dead_band_uv2: the rule's settings (see the protocol).
        adc_offset_uv, adc_noise_uv: the boards' ADCs (uV), ideal by default.
        bus_timeout_s: the bus client's reply timeout (s): replies are immediate here.
        fixed_edges: indices of edges that do not learn: their devices keep their initial
            state (any device of a ``mixed`` one, e.g. a fixed resistor beside MOSFETs, whose
            other edges are of the wiring's kind) and their boards never update (whatever
            rule the bus configures, theirs is none; a board's state is its lowest).
        gate_leak: the gates' leak (:class:`~instruments.sim.retention.GateLeak`; MOSFET
            boards only), over the bench's clock :attr:`time_s` (see
            :class:`~instruments.sim.retention.BoardGates`); None: the gates hold.
        temperature_c: the bench's temperature (C; both twins): the device, whose parameters
            are at 27 C, as :func:`~instruments.sim.temperature.at_temperature` makes it;
            None: the device as given.
        node_capacitance_f: every node's capacitance to ground (F): the twins settle in time
            after each write, and a read or a pulse before they have settled sees them on
            the way (:class:`~instruments.sim.settling.SettlingNodes`); None: at once.

    Attributes:
        wiring, layout, network, device: the bench's description.
        daq, bus, smu, dmm, psu: the instruments.
        boards: the emulated boards; port: the loopback port of the bus.
        imperfections: a fingerprint (:func:`~instruments.fingerprint.fingerprint`) of what
            calibration measures on this bench: the DAQ's errors, the edge devices'
            parameters (with their spread, twin mismatch and update bias), the boards' ADC
            offsets, and their ADC noise when there is any. Part of the key of its
            calibrations.
    """

    def __init__(self, wiring: Wiring | None = None, *, device: EdgeDevice | None = None,
                 errors: DaqErrors | None = None, faults: BenchFaults | None = None, seed: int = 0,
                 initial_state=None, rule=None, gain: int | None = None, probability: int = p.PROBABILITY_ONE,
                 dead_band_uv2: int = 0, adc_offset_uv=0.0, adc_noise_uv=0.0, bus_timeout_s: float = 0.005,
                 fixed_edges=(), gate_leak: GateLeak | None = None, temperature_c: float | None = None,
                 node_capacitance_f: float | None = None):
        self.wiring = default_wiring("gen2") if wiring is None else wiring
        self.seed = seed
        self.layout = self.wiring.layout()
        faults = BenchFaults() if faults is None else faults
        net = self.network = self.wiring.network
        e = net.n_edges
        s_state, s_errors, s_device, s_daq, s_smu, s_dmm, s_boards = np.random.SeedSequence(seed).spawn(7)
        kind = self.wiring.edge_kind
        if device is None:
            device = default_device(kind, e, faults, s_device)
        elif faults.shapes_device:
            raise ValueError("BenchFaults edge_spread, twin_mismatch and update_bias shape the default device; "
                             "with an explicit device, give them to the device")
        if temperature_c is not None:
            device = at_temperature(device, temperature_c)
            temperature_c = None if temperature_c == T_NOMINAL_C else temperature_c  # nominal: as none
        held = self.fixed_edges = np.unique(np.asarray(fixed_edges, np.int64))
        if held.size and not (0 <= held[0] and held[-1] < e):
            raise ValueError(f"fixed_edges {held.tolist()}: edges are 0..{e - 1}")
        learning = np.ones(e, bool)
        learning[held] = False
        lim_dev = _learning_part(device, learning)
        if lim_dev is None or lim_dev.kind != kind or device.n_edges != e:
            raise ValueError(f"device has {device.n_edges} {device.kind} edges; wiring {self.wiring.name} "
                             f"has {e} {kind} edges (a mixed device's learning edges must be of this kind)")
        self.device = device
        unit = DEVICE_UNIT[p.Kind[kind.upper()]]

        if initial_state is None:
            rng = np.random.default_rng(s_state)
            if kind == "mosfet":
                initial_state = rng.uniform(*GEN2_INITIAL_GATE_V, e)
            else:
                initial_state = rng.integers(GEN1_INITIAL_TAPS[0], GEN1_INITIAL_TAPS[1] + 1, e).astype(float)
        state = device.check_state(initial_state)
        self._fixed_state = state[held].copy()

        # the circuit: sources then ground fixed on both twins, targets on the clamped one
        ground = net.ground
        fixed = np.r_[net.sources, [] if ground is None else [ground]].astype(np.int64)
        check_floating(net, fixed)
        self._backend = make_backend(net, device, fixed, net.targets)
        src_pos = {net.nodes[s]: k for k, s in enumerate(net.sources)}
        self._src_free_ao = np.zeros(len(src_pos), np.int64)
        self._src_clamped_ao = np.zeros(len(src_pos), np.int64)
        for j, o in enumerate(self.wiring.outputs):
            if o.node in src_pos:
                if o.twin in ("both", "free"):
                    self._src_free_ao[src_pos[o.node]] = j
                if o.twin in ("both", "clamped"):
                    self._src_clamped_ao[src_pos[o.node]] = j
        self._clamp_ao = self.layout.clamp_ao
        self._ao_v = np.zeros(self.layout.n_ao)
        self._v_fixed_free = np.zeros(fixed.size)
        self._v_fixed_clamped = np.zeros(fixed.size)
        self._v_targets = np.zeros(net.targets.size)
        self._v_free = np.zeros(net.n_nodes)
        self._v_clamped = np.zeros(net.n_nodes)
        self._free_ok = self._clamped_ok = False
        self._time_s = 0.0
        self._settling = None if node_capacitance_f is None else SettlingNodes(
            net, device, node_capacitance_f, fixed, net.targets)

        addresses, edges = self.wiring.board_edges()
        lo = math.ceil(round(lim_dev.state_min / unit, 6))
        hi = math.floor(round(lim_dev.state_max / unit, 6))
        boards_state = np.clip(np.rint(state[edges] / unit), lo, hi).astype(np.int64)
        boards_state[np.isin(edges, held)] = lo
        self.boards = _Boards(
            addresses, kind, seed=int(s_boards.generate_state(1)[0]), state_min=lo, state_max=hi,
            initial_state=boards_state, edges=edges, terminals=net.edges[edges],
            adc_offset_uv=adc_offset_uv, adc_noise_uv=adc_noise_uv, update_bias=device.update_bias[edges] / unit,
            clock_ms=lambda: int(self.time_s * 1e3), nodes_uv=self._board_readings)
        if rule is None:
            rule = "gate_charging" if kind == "mosfet" else "tap"
        if gain is None and kind == "mosfet":
            gain = p.gate_gain(self.wiring.timing.pulse_s, GATE_R_OHM, GATE_C_F, GATE_G_PER_V)
        self.boards.held = np.isin(edges, held)
        self.boards.configure(rule, probability, gain or 0, dead_band_uv2)
        self._state = self.boards.device_state()
        self._state[held] = self._fixed_state
        self._version = -1
        self.port = _Port(self.boards, port=f"loop://{self.wiring.name}/bus")
        self._gates = None
        if gate_leak is not None:
            if kind != "mosfet":
                raise ValueError(f"gate_leak: {kind} boards have no gate to leak")
            self._gates = BoardGates(gate_leak, self.boards, self.boards.held)
            self.port.before = lambda: self._gates.advance(self.time_s)
        self.bus = BusClient(self.port, timeout_s=bus_timeout_s, slot_s=0.0)

        if errors is None:
            errors = DaqErrors.drawn(self.layout.n_ao, self.layout.n_ai, s_errors)
        self.daq = SimDaq(self, errors, s_daq)
        if self._settling is not None:
            self._settling.watch(self)
        self.smu = SimSmu(self, s_smu)
        self.dmm = SimDmm(self, s_dmm)
        opts = self.wiring.psu.options if self.wiring.psu is not None else {}
        self.psu = SimPsu(self, opts.get("channel", 1), opts.get("voltage_v", 5.0), opts.get("current_limit_a", 0.5))

        parts = [self.daq.errors, device, np.broadcast_to(np.asarray(adc_offset_uv, float), (len(addresses), 4))]
        if np.any(np.asarray(adc_noise_uv, float)):  # a noiseless bench keeps its fingerprint of before
            parts.append({"adc_noise_uv": np.broadcast_to(np.asarray(adc_noise_uv, float), (len(addresses),))})
        if held.size:
            parts.append({"fixed_edges": held})
        if temperature_c is not None:
            parts.append({"temperature_c": float(temperature_c)})
        if node_capacitance_f is not None:
            parts.append({"node_capacitance_f": float(node_capacitance_f)})
        if gate_leak is not None:
            parts.append({"gate_leak_s": np.asarray(gate_leak.tau_s, float), "gate_rest_v": gate_leak.v_rest_v})
        self.imperfections = fingerprint(*parts)
        for a in faults.mute:
            self.mute_board(a)
        for j in faults.stuck:
            self.stick_edge(j)
        if faults.daq_timeouts:
            self.daq.fail_next(faults.daq_timeouts)
        if faults.noise_reads:
            self.daq.noise_burst(faults.noise_factor, faults.noise_reads)
        if faults.psu_trip:
            self.trip_psu()

    # -- checkpoints ---------------------------------------------------------------------------
    def save_state(self) -> dict:
        """Everything that changes while the bench runs, so that a bench built with the same
        arguments and given it by :meth:`load_state` continues exactly as this one would:
        the same reads, the same board states, to the last bit.

        Numpy arrays and plain values only (a JSON round trip with the arrays as lists
        restores the same): ``boards`` (:meth:`SimBoards.save_state`: states, rule
        configuration, xorshift generators, calibration offsets, counters, stuck devices,
        mute and storage faults, power, ADC noise generator); ``outputs`` (what every DAQ
        output holds, V); ``solver`` (node voltages of the last solves, V, and the solver's
        warm starts); ``device_state`` (gate V or taps); ``time_s`` and ``bus`` (the clock:
        DAQ time and line time; the client's sequence number); ``daq`` (what each input
        sees, its noise generator, pending timeouts and noise burst); ``smu``, ``dmm``
        (settings, probe, noise generators); ``psu`` (per channel: voltage, limit, on,
        tripped). The wiring, device, DAQ errors and seed are not saved: they are the
        constructor's. With a gate leak, ``gate_leak`` (:meth:`BoardGates.save`).
        """
        self._sync(leak=False)  # the devices follow the boards; the leak waits, as it would
        port = self.port
        extra = {} if self._gates is None else {"gate_leak": self._gates.save()}
        if self._settling is not None:
            extra["settling"] = self._settling.save()
        return extra | {
            "format": CHECKPOINT_FORMAT,
            "wiring": self.wiring.name,
            "time_s": self._time_s,
            "bus": {"line_time_s": port.line_time_s, "chunks_seen": port.chunks_seen,
                    "seq": self.bus._seq},  # replies echo it: same seq, same bytes on the bus
            "boards": self.boards.save_state(),
            "device_state": self._state.copy(),
            "outputs": {"ao_v": self._ao_v.copy(), "free_fixed_v": self._v_fixed_free.copy(),
                        "clamped_fixed_v": self._v_fixed_clamped.copy(), "targets_v": self._v_targets.copy()},
            "solver": {"free_v": self._v_free.copy(), "free_ok": self._free_ok,
                       "clamped_v": self._v_clamped.copy(), "clamped_ok": self._clamped_ok,
                       "memory": solver_memory(self._backend)},
            "daq": self.daq._save(),
            "smu": self.smu._save(),
            "dmm": self.dmm._save(),
            "psu": self.psu._save(),
        }

    def load_state(self, state: dict) -> None:
        """Continue from what :meth:`save_state` returned (on this bench or on another built
        with the same arguments); arrays may be lists. The solver is prepared for the saved
        device state. ValueError naming the field when the state is not of such a bench."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"bench state format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
        if state["wiring"] != self.wiring.name:
            raise ValueError(f"bench state of wiring {state['wiring']!r}, this bench is {self.wiring.name!r}")
        n = self.network.n_nodes
        out = state["outputs"]
        ao_v = _saved_array(out, "ao_v", self._ao_v.shape, "outputs")
        free_fixed = _saved_array(out, "free_fixed_v", self._v_fixed_free.shape, "outputs")
        clamped_fixed = _saved_array(out, "clamped_fixed_v", self._v_fixed_clamped.shape, "outputs")
        targets = _saved_array(out, "targets_v", self._v_targets.shape, "outputs")
        device_state = _saved_array(state, "device_state", self._state.shape, "bench")
        sol = state["solver"]
        v_free = _saved_array(sol, "free_v", (n,), "solver")
        v_clamped = _saved_array(sol, "clamped_v", (n,), "solver")

        restore_memory = solver_memory_loader(self._backend, sol["memory"], n)
        loaders = [inst._loader(state[role]) for role, inst in
                   (("daq", self.daq), ("smu", self.smu), ("dmm", self.dmm), ("psu", self.psu))]
        bus = state["bus"]
        time_s, line_time_s = float(state["time_s"]), float(bus["line_time_s"])
        chunks_seen, seq = int(bus["chunks_seen"]), int(bus["seq"])
        free_ok, clamped_ok = bool(sol["free_ok"]), bool(sol["clamped_ok"])
        if self._gates is not None:
            if "gate_leak" not in state:
                raise ValueError("bench state has no gate_leak: it is of a bench without one")
            loaders.append(self._gates.loader(state["gate_leak"]))
        if self._settling is not None:
            if "settling" not in state:
                raise ValueError("bench state has no settling: it is of a bench without node capacitance")
            loaders.append(self._settling.loader(state["settling"]))

        self.boards.load_state(state["boards"])  # checks all its fields before it changes any
        for load in loaders:
            load()
        self._time_s, self.port.line_time_s = time_s, line_time_s
        self.port.chunks_seen, self.bus._seq = chunks_seen, seq
        self._ao_v[:], self._v_fixed_free[:], self._v_fixed_clamped[:], self._v_targets[:] = (
            ao_v, free_fixed, clamped_fixed, targets)
        self._state[:] = device_state
        self._version = self.boards.state_version
        self._backend.prepare(self._state)
        restore_memory()
        self._v_free, self._v_clamped = v_free, v_clamped
        self._free_ok, self._clamped_ok = free_ok, clamped_ok

    # -- the physics -------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        """Simulated time since the bench was built (s): DAQ operations and bus traffic."""
        return self._time_s + self.port.line_time_s

    def hold(self, duration_s: float) -> None:
        """``duration_s`` (s, >= 0) pass with nothing written or read (a pause): the bench's
        clock moves on, and what acts over time (a gate leak) acts."""
        if not (math.isfinite(duration_s) and duration_s >= 0):
            raise ValueError(f"a hold lasts 0 s or more, got {duration_s!r}")
        self._time_s += float(duration_s)

    def _sync(self, leak: bool = True) -> None:
        """Devices follow the boards (stuck ones excepted) after any change of state, and
        (``leak``) the gates' leak up to now."""
        if leak and self._gates is not None:
            self._gates.advance(self.time_s)
        if self.boards.state_version != self._version:
            self._version = self.boards.state_version
            self.boards.device_state(self._state)
            if self._gates is not None:
                self._gates.device_state(self._state, self.boards.edges, 1e-6)
            self._state[self.fixed_edges] = self._fixed_state
            self._backend.prepare(self._state)
            self._free_ok = self._clamped_ok = False

    def _free(self) -> np.ndarray:
        self._sync()
        if not self._free_ok:
            self._v_free = self._backend.free(self._v_fixed_free)
            self._free_ok = True
        if self._settling is not None:
            return self._settling.at(0, self._v_free, self._v_fixed_free, self._state, self.time_s)
        return self._v_free

    def _clamped(self) -> np.ndarray:
        self._sync()
        if not self._clamped_ok:
            self._v_clamped = self._backend.clamped(self._v_fixed_clamped, self._v_targets)
            self._clamped_ok = True
        if self._settling is not None:
            return self._settling.at(1, self._v_clamped, np.r_[self._v_fixed_clamped, self._v_targets],
                                     self._state, self.time_s)
        return self._v_clamped

    def _look_before_write(self) -> None:
        """Both twins to now, before a DAQ write (node capacitance only); the solver's warm
        starts are put back, so the next solves start where they would without the look."""
        restore = solver_memory_loader(self._backend, solver_memory(self._backend), self.network.n_nodes)
        self._free()
        self._clamped()
        restore()

    def _board_readings(self) -> np.ndarray:
        """What the boards' ADCs read now, for a command over the bus (uV)."""
        return self.boards.sample(self._free(), self._clamped())

    def edge_current(self, edge: int, voltage_v: float, twin: int = 0) -> float:
        """Current (A) through edge ``edge``'s device of twin ``twin`` (0 free, 1 clamped)
        at its present state, terminal a at ``voltage_v`` (V) and b at 0 V."""
        self._sync()
        va = np.zeros(self.network.n_edges)
        va[edge] = voltage_v
        return float(self.device.current(self._state, va, np.zeros_like(va), twin)[0][edge])

    def network_current(self) -> float:
        """Current (A) the network draws from its driven nodes, both twins together."""
        net = self.network
        a, b = net.edges[:, 0], net.edges[:, 1]
        total = 0.0
        for twin, v, driven in ((0, self._free(), net.sources), (1, self._clamped(), np.r_[net.sources, net.targets])):
            i = self.device.current(self._state, v[a], v[b], twin)[0]
            out = np.bincount(a, i, net.n_nodes) - np.bincount(b, i, net.n_nodes)
            total += float(np.sum(np.maximum(out[driven.astype(np.int64)], 0.0)))
        return total

    def _probe_voltage(self, probe: tuple) -> float:
        """The voltage (V) at a probe point: ``("ao", index)`` or ``("node", index, twin)``."""
        if probe[0] == "ao":
            return float(self._ao_v[probe[1]])
        return float((self._free() if probe[2] == 0 else self._clamped())[probe[1]])

    # -- instruments' connections --------------------------------------------------------------
    def probe_smu(self, edge: int, twin: str = "free") -> SimSmu:
        """Connect the SMU across edge ``edge``'s device of the ``"free"`` or ``"clamped"`` twin."""
        if not 0 <= edge < self.network.n_edges:
            raise ValueError(f"no edge {edge}: edges are 0..{self.network.n_edges - 1}")
        self.smu.edge, self.smu.twin = int(edge), self._twin(twin)
        return self.smu

    def probe_dmm(self, channel: str | None = None, *, node: str | None = None, twin: str = "free") -> SimDmm:
        """Connect the DMM to a DAQ output (``"PXI1Slot2/ao0"``) or to ``node`` of ``twin``."""
        if (channel is None) == (node is None):
            raise ValueError("probe either a DAQ output channel or a node")
        if channel is not None:
            if channel not in self.daq.ao_channels:
                raise ValueError(f"no output channel {channel!r}; outputs: {', '.join(self.daq.ao_channels)}")
            self.dmm.probe = ("ao", self.daq.ao_channels.index(channel))
        else:
            self.dmm.probe = ("node", self.network.index(node), self._twin(twin))
        return self.dmm

    @staticmethod
    def _twin(twin: str) -> int:
        if twin not in ("free", "clamped"):
            raise ValueError(f"twin must be 'free' or 'clamped', got {twin!r}")
        return 0 if twin == "free" else 1

    # -- faults --------------------------------------------------------------------------------
    def mute_board(self, address: int) -> None:
        """Board ``address`` stops answering on the bus (it still learns)."""
        if self.boards.index(address) < 0:
            raise ValueError(f"no board at address {address}")
        self.boards.mute.add(int(address))

    def unmute_board(self, address: int) -> None:
        self.boards.mute.discard(int(address))

    def _address_of(self, edge: int) -> int:
        addrs = [a for a, j in self.wiring.boards.items() if j == edge]
        if not addrs:
            raise ValueError(f"no board carries edge {edge}")
        return addrs[0]

    def stick_edge(self, edge: int, state=None) -> None:
        """Edge ``edge``'s device stops following its board: it stays at ``state`` (device
        units, gate V or taps; default where it is now)."""
        unit = self.boards.device_unit[0]
        self.boards.stick(self._address_of(edge), None if state is None else int(round(state / unit)))

    def unstick_edge(self, edge: int) -> None:
        self.boards.unstick(self._address_of(edge))

    def fail_daq(self, n_operations: int = 1) -> None:
        """The next ``n_operations`` hardware-timed DAQ operations raise DaqTimeout."""
        self.daq.fail_next(n_operations)

    def noise_burst(self, factor: float, n_reads: int) -> None:
        """The DAQ's input noise is ``factor`` times larger for the next ``n_reads`` reads."""
        self.daq.noise_burst(factor, n_reads)

    def trip_psu(self) -> None:
        """The boards' supply trips its over-current protection now."""
        self.psu.trip()

    # -- truth ---------------------------------------------------------------------------------
    def node_voltages(self, twin: str = "free") -> np.ndarray:
        """Node voltages (V, (N,)) of ``"free"`` or ``"clamped"`` twin at the present outputs."""
        return (self._free() if self._twin(twin) == 0 else self._clamped()).copy()

    def device_state(self) -> np.ndarray:
        """The state each edge's device really has (gate V or taps, (E,)), in edge order."""
        self._sync()
        return self._state.copy()

    def close(self) -> None:
        self.daq.close()
        self.bus.close()
        self.smu.close()
        self.dmm.close()
        self.psu.close()

    def __enter__(self) -> "SimBench":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
