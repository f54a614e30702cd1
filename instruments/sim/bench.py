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

Everything random comes from ``seed``: the same seed gives the same bench and the same
readings. A run can be checkpointed: :meth:`SimBench.save_state` returns everything that
changes while the bench runs, and :meth:`SimBench.load_state` on a bench built with the same
arguments continues from it exactly as the saved bench would have. Units: V, A, s; board
states in taps or gate uV.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..bus import protocol as p
from ..bus.client import BusClient
from ..daq import models
from ..fingerprint import fingerprint
from ..interfaces import DaqError, DaqTimeout, InstrumentError, OverCurrent
from ..wiring import Wiring, default_wiring
from .boards import DEVICE_UNIT, SimBoards
from .circuit import check_floating
from .edges import GEN2_S_A_PER_V2, Digipot, EdgeDevice, Mosfet, spread
from .loopback import LoopbackPort
from .twin import make_backend

#: Threshold voltage of the default Gen-2 MOSFETs (V); the lab measures 0.62 to 0.7 V.
GEN2_BENCH_VT_V = 0.66
#: Range of the initial gate voltages drawn from the seed (V).
GEN2_INITIAL_GATE_V = (1.5, 2.8)
#: Range of the initial digipot taps drawn from the seed.
GEN1_INITIAL_TAPS = (40, 60)
#: Gen-2 gate charging: R (Ohm), C (F) and multiplier scale g (1/V) of the boards' rule.
GATE_R_OHM, GATE_C_F, GATE_G_PER_V = 1e3, 2.2e-6, 0.1
#: Supply current of one edge board (A).
BOARD_QUIESCENT_A = 4e-3
#: Lowest supply voltage at which the boards run (V).
BOARD_MIN_SUPPLY_V = 4.5

# typical sizes of the DAQ's imperfections (one standard deviation across channels)
AO_GAIN_SIGMA = 2e-4
AO_OFFSET_SIGMA_V = 300e-6
AI_GAIN_SIGMA = 1e-4
AI_OFFSET_SIGMA_V = 50e-6
AI_NOISE_V = 60e-6
AI_TAU_S = 20e-6

# columns of the packed per-channel parameters (one kernel argument each)
_LO, _HI, _LSB, _NMAX, _GAIN, _OFF = range(6)
_AI_GAIN, _AI_OFF, _AI_SIGMA, _AI_RANGE, _AI_LSB, _AI_NMAX = range(6)


# -- compiled kernels ----------------------------------------------------------------------


@njit(cache=True)
def _write_outputs(values, par, ao_v, src_free, src_clamped, clamp, v_fixed_free, v_fixed_clamped, v_targets):
    """Quantise and apply every output; returns (first output outside its range or -1,
    flags: 1 the free twin's boundary changed, 2 the clamped twin's)."""
    n = values.shape[0]
    for j in range(n):
        if not (par[j, _LO] <= values[j] <= par[j, _HI]):  # NaN fails too
            return j, 0
    for j in range(n):
        code = math.floor((values[j] - par[j, _LO]) / par[j, _LSB] + 0.5)
        code = min(max(code, 0.0), par[j, _NMAX])
        ao_v[j] = (par[j, _LO] + code * par[j, _LSB]) * (1.0 + par[j, _GAIN]) + par[j, _OFF]
    flags = 0
    for k in range(src_free.shape[0]):
        x = ao_v[src_free[k]]
        if x != v_fixed_free[k]:
            v_fixed_free[k] = x
            flags |= 1
    for k in range(src_clamped.shape[0]):
        x = ao_v[src_clamped[k]]
        if x != v_fixed_clamped[k]:
            v_fixed_clamped[k] = x
            flags |= 2
    for k in range(clamp.shape[0]):
        x = ao_v[clamp[k]]
        if x != v_targets[k]:
            v_targets[k] = x
            flags |= 2
    return -1, flags


@njit(cache=True)
def _read_inputs(v_free, v_clamped, node, twin, last, t0_s, dt_s, n, tau_s, par, normals, noise_factor, out):
    """Mean of ``n`` samples per input at times ``t0_s + k dt_s`` after the last change.

    What an input sees moves from ``last`` (its value at the end of the previous
    operation) to its node's voltage with time constant ``tau_s``; each sample then gets
    the gain, offset and noise of its channel and is quantised over its range.
    """
    for c in range(node.shape[0]):
        target = v_free[node[c]] if twin[c] == 0 else v_clamped[node[c]]
        start = last[c]
        acc = 0.0
        seen = target
        for k in range(n):
            if tau_s > 0.0:
                seen = target + (start - target) * math.exp(-(t0_s + k * dt_s) / tau_s)
            x = seen * (1.0 + par[c, _AI_GAIN]) + par[c, _AI_OFF]
            if noise_factor > 0.0:
                x += noise_factor * par[c, _AI_SIGMA] * normals[c * n + k]
            code = math.floor((x + par[c, _AI_RANGE]) / par[c, _AI_LSB] + 0.5)
            code = min(max(code, 0.0), par[c, _AI_NMAX])
            acc += code * par[c, _AI_LSB] - par[c, _AI_RANGE]
        out[c] = acc / n
        last[c] = seen


@njit(cache=True)
def _relax_inputs(v_free, v_clamped, node, twin, last, t_s, tau_s):
    """What each input sees after ``t_s`` of its node at its present voltage."""
    for c in range(node.shape[0]):
        target = v_free[node[c]] if twin[c] == 0 else v_clamped[node[c]]
        last[c] = target if tau_s <= 0.0 else target + (last[c] - target) * math.exp(-t_s / tau_s)


# -- checkpoints -------------------------------------------------------------------------------

#: Layout version of :meth:`SimBench.save_state`'s dict.
CHECKPOINT_FORMAT = 1


def _saved_array(saved: dict, name: str, shape: tuple, part: str) -> np.ndarray:
    """``saved[name]`` as a float array of ``shape`` (a JSON round trip makes arrays lists);
    ValueError naming the part and field when it does not fit this bench."""
    value = np.asarray(saved[name], float)
    if value.shape != tuple(shape):
        raise ValueError(f"saved {part} {name} has shape {value.shape}, this bench needs {tuple(shape)}")
    return value


def _solver_memory(backend) -> dict:
    """What the solver back end carries from one solve to the next: the Newton warm starts
    (MOSFET kernels, the general solver). A restored bench needs them to solve to the same
    last bit as the saved one would have; the linear kernels solve directly, from the state."""
    from .kernel_backends import MosfetKernelBackend
    from .twin import ReferenceBackend

    if isinstance(backend, MosfetKernelBackend):
        s = backend.solver
        return {"free_warm": s._free.warm, "free_v": s._free.v.copy(),
                "clamped_warm": s._clamped.warm, "clamped_v": s._clamped.v.copy()}
    if isinstance(backend, ReferenceBackend):
        return {"free_v": None if backend._last_free is None else backend._last_free.copy(),
                "clamped_v": None if backend._last_clamped is None else backend._last_clamped.copy()}
    return {}


def _solver_memory_loader(backend, saved: dict, n_nodes: int):
    """Check what :func:`_solver_memory` saved and return what restores it."""
    from .kernel_backends import MosfetKernelBackend
    from .twin import ReferenceBackend

    def nodes(name):
        return None if saved.get(name) is None else _saved_array(saved, name, (n_nodes,), "solver")

    if isinstance(backend, MosfetKernelBackend):
        s = backend.solver
        warm = [(st, bool(saved[f"{twin}_warm"]), nodes(f"{twin}_v"))
                for st, twin in ((s._free, "free"), (s._clamped, "clamped"))]

        def load() -> None:
            for st, is_warm, v in warm:
                st.warm = is_warm
                st.v[:] = v
        return load
    if isinstance(backend, ReferenceBackend):
        free, clamped = nodes("free_v"), nodes("clamped_v")

        def load() -> None:
            backend._last_free, backend._last_clamped = free, clamped
        return load
    return lambda: None


# -- configuration ---------------------------------------------------------------------------


def _channels(value, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    try:
        return np.broadcast_to(arr, (n,)).copy()
    except ValueError:
        raise ValueError(f"DaqErrors.{name} must be a scalar or have {n} values, got shape {arr.shape}") from None


@dataclass(frozen=True, eq=False)
class DaqErrors:
    """Imperfections of the DAQ's analog channels (all zero: an ideal DAQ).

    Attributes:
        ao_gain: relative gain error of each output (1e-4 = +0.01 %), scalar or (n_ao,).
        ao_offset_v: offset of each output (V), scalar or (n_ao,).
        ai_gain: relative gain error of each input, scalar or (n_ai,).
        ai_offset_v: offset of each input (V), scalar or (n_ai,).
        ai_noise_v: noise of one input sample (V, standard deviation), scalar or (n_ai,).
        tau_s: time constant (s) with which an input follows its node after a change; 0
            for an input that follows at once.
    """

    ao_gain: float | np.ndarray = 0.0
    ao_offset_v: float | np.ndarray = 0.0
    ai_gain: float | np.ndarray = 0.0
    ai_offset_v: float | np.ndarray = 0.0
    ai_noise_v: float | np.ndarray = 0.0
    tau_s: float = 0.0

    @classmethod
    def ideal(cls) -> "DaqErrors":
        """No gain, offset or noise; inputs follow their nodes at once."""
        return cls()

    @classmethod
    def drawn(cls, n_ao: int, n_ai: int, seed=0, scale: float = 1.0) -> "DaqErrors":
        """Typical small errors drawn from ``seed`` (an int or a numpy SeedSequence):
        gains of about 1e-4, output offsets of about 0.3 mV, input offsets of about 50 uV,
        60 uV of input noise per sample, tau 20 us; ``scale`` multiplies all but tau."""
        rng = np.random.default_rng(seed)
        return cls(
            ao_gain=scale * AO_GAIN_SIGMA * rng.standard_normal(n_ao),
            ao_offset_v=scale * AO_OFFSET_SIGMA_V * rng.standard_normal(n_ao),
            ai_gain=scale * AI_GAIN_SIGMA * rng.standard_normal(n_ai),
            ai_offset_v=scale * AI_OFFSET_SIGMA_V * rng.standard_normal(n_ai),
            ai_noise_v=scale * AI_NOISE_V,
            tau_s=AI_TAU_S,
        )


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


# -- the DAQ ---------------------------------------------------------------------------------


class SimDaq:
    """The bench's NI DAQ, simulated: a :class:`~instruments.interfaces.BoundaryDaq`.

    Outputs: each value (V) must lie inside its device's output range (else DaqError naming
    the channel); it becomes the nearest code of the device's converter, then
    ``code_v * (1 + gain) + offset`` on the wire. Inputs: what an input sees follows its
    node with time constant ``tau_s`` from its value at the end of the previous operation;
    each sample gets the channel's gain, offset and noise and is quantised to the device's
    bits over the input's range, saturating at its ends; a read returns the mean of its
    samples, taken at the wiring's sample rate. Software-timed operations (``write``,
    ``read``) see ``latency_s`` pass before them.

    Attributes:
        ao_channels, ai_channels: channel names, in the order of every values array.
        errors: the DAQ's imperfections, per channel.
        latency_s: time that passes before a software-timed read (s).
    """

    def __init__(self, bench: "SimBench", errors: DaqErrors, seed, latency_s: float = 1e-3):
        w = bench.wiring
        self._bench = bench
        self.ao_channels = w.ao_channels
        self.ai_channels = w.ai_channels
        self.latency_s = float(latency_s)
        n_ao, n_ai = len(self.ao_channels), len(self.ai_channels)
        self.errors = DaqErrors(
            _channels(errors.ao_gain, n_ao, "ao_gain"), _channels(errors.ao_offset_v, n_ao, "ao_offset_v"),
            _channels(errors.ai_gain, n_ai, "ai_gain"), _channels(errors.ai_offset_v, n_ai, "ai_offset_v"),
            _channels(errors.ai_noise_v, n_ai, "ai_noise_v"), float(errors.tau_s))
        if np.any(self.errors.ai_noise_v < 0) or self.errors.tau_s < 0:
            raise ValueError("DaqErrors.ai_noise_v and tau_s must be >= 0")
        self._models = {dev: models.model(name) for dev, name in w.daq_devices.items()}
        self._ao_model = [self._models[ch.split("/")[0]] for ch in self.ao_channels]
        self._ao_par = np.empty((n_ao, 6))
        for j, m in enumerate(self._ao_model):
            self._ao_par[j, [_LO, _HI]] = m.ao_range_v
            self._ao_par[j, _LSB] = m.ao_lsb_v()
            self._ao_par[j, _NMAX] = 2**m.ao_bits - 1
        self._ao_par[:, _GAIN] = self.errors.ao_gain
        self._ao_par[:, _OFF] = self.errors.ao_offset_v
        self._ai_par = np.empty((n_ai, 6))
        for c, inp in enumerate(w.inputs):
            m = self._models[inp.channel.split("/")[0]]
            self._ai_par[c, _AI_RANGE] = inp.range_v
            self._ai_par[c, _AI_LSB] = m.ai_lsb_v(inp.range_v)
            self._ai_par[c, _AI_NMAX] = 2**m.ai_bits - 1
        self._ai_par[:, _AI_GAIN] = self.errors.ai_gain
        self._ai_par[:, _AI_OFF] = self.errors.ai_offset_v
        self._ai_par[:, _AI_SIGMA] = self.errors.ai_noise_v
        self._noisy = bool(np.any(self.errors.ai_noise_v > 0))
        net = w.network
        self._ai_node = np.array([net.index(i.node) for i in w.inputs], np.int64)
        self._ai_twin = np.array([0 if i.twin == "free" else 1 for i in w.inputs], np.int64)
        self._reads_clamped = bool(np.any(self._ai_twin == 1))
        self._ai_last = np.zeros(n_ai)
        self._dt_s = 1.0 / w.timing.sample_rate_hz
        self._safe_v = bench.layout.safe_v.copy()
        self._rng = np.random.default_rng(seed)
        self._normals = np.zeros(0)
        self._timeouts = 0
        self._burst_factor = 1.0
        self._burst_reads = 0
        self._closed = False
        self._write(self._safe_v)
        _relax_inputs(bench._free(), bench._clamped(), self._ai_node, self._ai_twin, self._ai_last, np.inf,
                      self.errors.tau_s)

    # -- faults --------------------------------------------------------------------------
    def fail_next(self, n_operations: int = 1) -> None:
        """The next ``n_operations`` hardware-timed operations raise DaqTimeout."""
        self._timeouts = int(n_operations)

    def noise_burst(self, factor: float, n_reads: int) -> None:
        """Multiply the input noise by ``factor`` for the next ``n_reads`` reads."""
        if factor < 0 or n_reads < 0:
            raise ValueError("noise burst needs factor >= 0 and n_reads >= 0")
        self._burst_factor, self._burst_reads = float(factor), int(n_reads)

    # -- checkpoints (SimBench.save_state / load_state) -----------------------------------
    def _save(self) -> dict:
        return {"ai_last_v": self._ai_last.copy(), "rng": self._rng.bit_generator.state,
                "timeouts": self._timeouts, "burst_factor": self._burst_factor, "burst_reads": self._burst_reads}

    def _loader(self, saved: dict):
        """Check ``saved`` (from :meth:`_save`) and return what restores it."""
        ai_last = _saved_array(saved, "ai_last_v", self._ai_last.shape, "daq")
        timeouts, factor, reads = int(saved["timeouts"]), float(saved["burst_factor"]), int(saved["burst_reads"])

        def load() -> None:
            self._ai_last[:] = ai_last
            self._rng.bit_generator.state = saved["rng"]
            self._timeouts, self._burst_factor, self._burst_reads = timeouts, factor, reads
        return load

    # -- plumbing ------------------------------------------------------------------------
    def _check_open(self, op: str) -> None:
        if self._closed:
            raise DaqError(f"{op}: the DAQ is closed")

    def _hardware(self, op: str) -> None:
        self._check_open(op)
        if self._timeouts:
            self._timeouts -= 1
            raise DaqTimeout(f"{op}: the hardware-timed operation did not complete in time (simulated fault)")

    def _write(self, values_v) -> None:
        v = np.asarray(values_v, dtype=float)
        if v.shape != (len(self.ao_channels),):
            raise DaqError(f"write: expected {len(self.ao_channels)} output values, got shape {v.shape}")
        b = self._bench
        bad, flags = _write_outputs(v, self._ao_par, b._ao_v, b._src_free_ao, b._src_clamped_ao, b._clamp_ao,
                                    b._v_fixed_free, b._v_fixed_clamped, b._v_targets)
        if bad >= 0:
            m = self._ao_model[bad]
            lo, hi = m.ao_range_v
            raise DaqError(f"{self.ao_channels[bad]}: {v[bad]} V is outside the {m.name}'s output range {lo}..{hi} V")
        if flags & 1:
            b._free_ok = False
        if flags & 2:
            b._clamped_ok = False

    def _sample(self, t0_s: float, n_samples: int) -> np.ndarray:
        b = self._bench
        v_free = b._free()
        v_clamped = b._clamped() if self._reads_clamped else v_free
        factor = 0.0
        if self._noisy:
            factor = 1.0
            if self._burst_reads:
                self._burst_reads -= 1
                factor = self._burst_factor
            size = len(self.ai_channels) * n_samples
            if self._normals.size < size:
                self._normals = np.empty(size)
            self._rng.standard_normal(out=self._normals[:size])
        out = np.empty(len(self.ai_channels))
        _read_inputs(v_free, v_clamped, self._ai_node, self._ai_twin, self._ai_last, t0_s, self._dt_s, n_samples,
                     self.errors.tau_s, self._ai_par, self._normals, factor, out)
        b._time_s += n_samples * self._dt_s
        return out

    def _fire(self, before_s: float, width_s: float) -> None:
        b = self._bench
        v_free = b._free()
        v_clamped = b._clamped()
        _relax_inputs(v_free, v_clamped, self._ai_node, self._ai_twin, self._ai_last, before_s + width_s,
                      self.errors.tau_s)
        b.boards.pulse(v_free, v_clamped)
        b._time_s += width_s

    @staticmethod
    def _settle(settle_s: float) -> float:
        if not settle_s >= 0:
            raise DaqError(f"settle_s must be >= 0, got {settle_s}")
        return float(settle_s)

    @staticmethod
    def _count(n_samples: int) -> int:
        if not n_samples >= 1:
            raise DaqError(f"n_samples must be at least 1, got {n_samples}")
        return int(n_samples)

    @staticmethod
    def _width(width_s: float) -> float:
        if not width_s > 0:
            raise DaqError(f"the learn pulse's width_s must be positive, got {width_s}")
        return float(width_s)

    # -- BoundaryDaq -----------------------------------------------------------------------
    def write(self, values_v: np.ndarray) -> None:
        """Set every output (V), software-timed."""
        self._check_open("write")
        self._write(values_v)
        self._bench._time_s += self.latency_s

    def read(self, n_samples: int = 1) -> np.ndarray:
        """Mean of ``n_samples`` samples per input (V), sampled ``latency_s`` after the call."""
        self._hardware("read")
        return self._sample(self.latency_s, self._count(n_samples))

    def pulse(self, width_s: float) -> None:
        """One learn pulse of ``width_s`` (s): every powered board samples and learns."""
        self._hardware("pulse")
        self._fire(0.0, self._width(width_s))

    def write_and_read(self, values_v: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """Write all outputs (V), settle ``settle_s`` (s), return the mean of ``n_samples``
        samples of every input (V). On a timeout nothing is written."""
        self._hardware("write_and_read")
        settle_s, n_samples = self._settle(settle_s), self._count(n_samples)
        self._write(values_v)
        self._bench._time_s += settle_s
        return self._sample(settle_s, n_samples)

    def write_and_read_many(self, values_v: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """Step the outputs through the rows of ``values_v`` (B, n_ao) (V), each held for
        ``settle_s`` (s) and then sampled ``n_samples`` times; the means (B, n_ai) (V). One
        hardware-timed operation: on a timeout nothing is written."""
        self._hardware("write_and_read_many")
        settle_s, n_samples = self._settle(settle_s), self._count(n_samples)
        rows = np.asarray(values_v, dtype=float)
        if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] != len(self.ao_channels):
            raise DaqError(f"write_and_read_many: expected values of shape (B >= 1, {len(self.ao_channels)}), got {rows.shape}")
        out = np.empty((rows.shape[0], len(self.ai_channels)))
        for i, row in enumerate(rows):
            self._write(row)
            self._bench._time_s += settle_s
            out[i] = self._sample(settle_s, n_samples)
        return out

    def write_and_pulse(self, values_v: np.ndarray, settle_s: float, width_s: float) -> None:
        """Write all outputs (V), settle ``settle_s`` (s), then pulse the learn line for
        ``width_s`` (s). On a timeout nothing is written and no board learns."""
        self._hardware("write_and_pulse")
        settle_s, width_s = self._settle(settle_s), self._width(width_s)
        self._write(values_v)
        self._bench._time_s += settle_s
        self._fire(settle_s, width_s)

    def safe_state(self) -> None:
        """Every output to its wiring's safe value."""
        if not self._closed:
            self._write(self._safe_v)

    def identity(self) -> str:
        """The devices, with serial numbers that follow the bench's seed and the channels'
        errors: another seed, or other errors at the same seed (an ideal DAQ), is another
        simulated DAQ, so its calibration does not apply."""
        devices = self._bench.wiring.daq_devices.items()
        serial = zlib.crc32(f"{self._bench.seed!r} {fingerprint(self.errors)}".encode())
        return "; ".join(f"National Instruments {name} {dev} SN {serial + k:08X} (simulated)"
                         for k, (dev, name) in enumerate(devices))

    def close(self) -> None:
        self.safe_state()
        self._closed = True

    # -- truth ---------------------------------------------------------------------------
    def output_voltages(self) -> np.ndarray:
        """What each output really puts on its wire (V), errors included."""
        return self._bench._ao_v.copy()


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

    Attributes:
        wiring, layout, network, device: the bench's description.
        daq, bus, smu, dmm, psu: the instruments.
        boards: the emulated boards; port: the loopback port of the bus.
        imperfections: a fingerprint (:func:`~instruments.fingerprint.fingerprint`) of what
            calibration measures on this bench: the DAQ's errors, the edge devices'
            parameters, the boards' ADC offsets. Part of the key of its calibrations.
    """

    def __init__(self, wiring: Wiring | None = None, *, device: EdgeDevice | None = None,
                 errors: DaqErrors | None = None, faults: BenchFaults | None = None, seed: int = 0,
                 initial_state=None, rule=None, gain: int | None = None, probability: int = p.PROBABILITY_ONE,
                 dead_band_uv2: int = 0, adc_offset_uv=0.0, adc_noise_uv=0.0, bus_timeout_s: float = 0.005):
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
        if device.kind != kind or device.n_edges != e:
            raise ValueError(f"device has {device.n_edges} {device.kind} edges; wiring {self.wiring.name} "
                             f"has {e} {kind} edges")
        self.device = device
        unit = DEVICE_UNIT[p.Kind[kind.upper()]]

        if initial_state is None:
            rng = np.random.default_rng(s_state)
            if kind == "mosfet":
                initial_state = rng.uniform(*GEN2_INITIAL_GATE_V, e)
            else:
                initial_state = rng.integers(GEN1_INITIAL_TAPS[0], GEN1_INITIAL_TAPS[1] + 1, e).astype(float)
        state = device.check_state(initial_state)

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

        addresses, edges = self.wiring.board_edges()
        lo = math.ceil(round(device.state_min / unit, 6))
        hi = math.floor(round(device.state_max / unit, 6))
        self.boards = SimBoards(
            addresses, kind, seed=int(s_boards.generate_state(1)[0]), state_min=lo, state_max=hi,
            initial_state=np.rint(state[edges] / unit).astype(np.int64), edges=edges, terminals=net.edges[edges],
            adc_offset_uv=adc_offset_uv, adc_noise_uv=adc_noise_uv, update_bias=device.update_bias[edges] / unit,
            clock_ms=lambda: int(self.time_s * 1e3), nodes_uv=self._board_readings)
        if rule is None:
            rule = "gate_charging" if kind == "mosfet" else "tap"
        if gain is None and kind == "mosfet":
            gain = p.gate_gain(self.wiring.timing.pulse_s, GATE_R_OHM, GATE_C_F, GATE_G_PER_V)
        self.boards.configure(rule, probability, gain or 0, dead_band_uv2)
        self._state = self.boards.device_state()
        self._version = -1
        self.port = LoopbackPort(self.boards, port=f"loop://{self.wiring.name}/bus")
        self.bus = BusClient(self.port, timeout_s=bus_timeout_s, slot_s=0.0)

        if errors is None:
            errors = DaqErrors.drawn(self.layout.n_ao, self.layout.n_ai, s_errors)
        self.daq = SimDaq(self, errors, s_daq)
        self.smu = SimSmu(self, s_smu)
        self.dmm = SimDmm(self, s_dmm)
        opts = self.wiring.psu.options if self.wiring.psu is not None else {}
        self.psu = SimPsu(self, opts.get("channel", 1), opts.get("voltage_v", 5.0), opts.get("current_limit_a", 0.5))

        self.imperfections = fingerprint(self.daq.errors, device,
                                         np.broadcast_to(np.asarray(adc_offset_uv, float), (len(addresses), 4)))
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
        constructor's.
        """
        self._sync()  # the devices follow the boards, as on the next solve
        port = self.port
        return {
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
                       "memory": _solver_memory(self._backend)},
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

        solver_memory = _solver_memory_loader(self._backend, sol["memory"], n)
        loaders = [inst._loader(state[role]) for role, inst in
                   (("daq", self.daq), ("smu", self.smu), ("dmm", self.dmm), ("psu", self.psu))]
        bus = state["bus"]
        time_s, line_time_s = float(state["time_s"]), float(bus["line_time_s"])
        chunks_seen, seq = int(bus["chunks_seen"]), int(bus["seq"])
        free_ok, clamped_ok = bool(sol["free_ok"]), bool(sol["clamped_ok"])

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
        solver_memory()
        self._v_free, self._v_clamped = v_free, v_clamped
        self._free_ok, self._clamped_ok = free_ok, clamped_ok

    # -- the physics -------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        """Simulated time since the bench was built (s): DAQ operations and bus traffic."""
        return self._time_s + self.port.line_time_s

    def _sync(self) -> None:
        """Devices follow the boards (stuck ones excepted) after any change of state."""
        if self.boards.state_version != self._version:
            self._version = self.boards.state_version
            self.boards.device_state(self._state)
            self._backend.prepare(self._state)
            self._free_ok = self._clamped_ok = False

    def _free(self) -> np.ndarray:
        self._sync()
        if not self._free_ok:
            self._v_free = self._backend.free(self._v_fixed_free)
            self._free_ok = True
        return self._v_free

    def _clamped(self) -> np.ndarray:
        self._sync()
        if not self._clamped_ok:
            self._v_clamped = self._backend.clamped(self._v_fixed_clamped, self._v_targets)
            self._clamped_ok = True
        return self._v_clamped

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
