"""The bench's NI DAQ, simulated (:class:`SimDaq`), and its imperfections (:class:`DaqErrors`).

Split from :mod:`instruments.sim.bench`, which builds a :class:`SimDaq` in front of its twin
network; see that module for how the parts fit together.
"""

from __future__ import annotations

import math
import zlib

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from ..daq import models
from ..fingerprint import fingerprint
from ..interfaces import DaqError, DaqTimeout
from ..safety import Limits
from ..wiring import safe_path

if TYPE_CHECKING:
    from .bench import SimBench
    from .simsystem import SimSystem

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



def _saved_array(saved: dict, name: str, shape: tuple, part: str) -> np.ndarray:
    """``saved[name]`` as a float array of ``shape`` (a JSON round trip makes arrays lists);
    ValueError naming the part and field when it does not fit this bench."""
    value = np.asarray(saved[name], float)
    if value.shape != tuple(shape):
        raise ValueError(f"saved {part} {name} has shape {value.shape}, this bench needs {tuple(shape)}")
    return value


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

    It refuses what the NI driver (:class:`~instruments.daq.nidaq.NidaqDaq`) refuses on the
    same wiring: an operation the watchdog would outlast (its samples at the sample rate, or
    a pulse's delay, high and low times, not less than ``timing.watchdog_s``), a pulse the
    learn counter cannot time (:class:`~instruments.daq.models.DaqModel`'s
    ``co_min_pulse_s`` .. ``co_max_pulse_s``), a settle time or width that is not a positive
    number of seconds. Like the driver, it opens by ramping from what the outputs hold
    (``held_v``; the devices' power-up value, 0 V, when None) to the safe values in writes
    within every limit (:func:`~instruments.wiring.safe_path`), and goes safe the same way
    from the values last written. The open and the safe state take no time on the bench's
    clock: the clock counts the run, and a resumed run must see the same clock as an
    uninterrupted one.

    Attributes:
        ao_channels, ai_channels: channel names, in the order of every values array.
        errors: the DAQ's imperfections, per channel.
        latency_s: time that passes before a software-timed read (s).
        hardware_watchdog: device -> what the real bench's hardware watchdog would guard
            (the same answer as :attr:`~instruments.daq.nidaq.NidaqDaq.hardware_watchdog`).
    """

    def __init__(self, bench: "SimBench", errors: DaqErrors, seed, latency_s: float = 1e-3,
                 held_v: np.ndarray | None = None):
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
        self._wiring = w
        self._limits = Limits.from_wiring(w)
        self.hardware_watchdog = w.hardware_watchdog()
        learn_device = w.learn_line.split("/")[0]
        self._learn_model = self._models[learn_device] if "/ctr" in w.learn_line else None
        self._rng = np.random.default_rng(seed)
        self._normals = np.zeros(0)
        self._timeouts = 0
        self._burst_factor = 1.0
        self._burst_reads = 0
        self._closed = False
        if held_v is None:
            held = np.array([m.ao_power_up_v for m in self._ao_model], float)
        else:
            held = np.asarray(held_v, dtype=float)
            if held.shape != (n_ao,) or not np.all(np.isfinite(held)):
                raise DaqError(f"held_v must be {n_ao} finite voltages (one per AO channel), got {held_v!r}")
        path = safe_path(self._limits, held)
        self._write(held)
        for row in path:
            self._write(row)
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
            # what was last written: the restored outputs without their errors, inside the limits
            e = self.errors
            self._held_v[:] = np.clip((self._bench._ao_v - e.ao_offset_v) / (1.0 + e.ao_gain),
                                      self._limits.min_v, self._limits.max_v)
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
        self._held_v = v.copy()
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
        if not (math.isfinite(settle_s) and settle_s > 0):
            raise DaqError(f"settle_s must be a positive number of seconds, got {settle_s!r}")
        return float(settle_s)

    @staticmethod
    def _count(n_samples: int) -> int:
        if not n_samples >= 1:
            raise DaqError(f"n_samples must be at least 1, got {n_samples}")
        return int(n_samples)

    def _width(self, op: str, delay_s: float, width_s: float) -> float:
        """``width_s`` if the learn line can pulse it ``delay_s`` after the start, within the
        watchdog; DaqError as the NI driver words it otherwise."""
        if not (math.isfinite(width_s) and width_s > 0):
            raise DaqError(f"width_s must be a positive number of seconds, got {width_s!r}")
        m = self._learn_model
        if m is not None:
            if not m.co_min_pulse_s <= width_s <= m.co_max_pulse_s:
                raise DaqError(f"{op}: width_s {width_s!r} s is outside what the {m.name}'s counter can time "
                               f"({m.co_min_pulse_s:g}..{m.co_max_pulse_s:g} s)")
            duration_s = delay_s + 2 * width_s
        elif self._models[self._wiring.learn_line.split("/")[0]].hw_timed_line(self._wiring.learn_line):
            duration_s = (self._periods(delay_s) + self._periods(width_s) + 1) * self._dt_s
        else:
            duration_s = width_s  # timed by the host, the settle apart
        watchdog_s = self._wiring.timing.watchdog_s
        if duration_s >= watchdog_s:
            raise DaqError(f"{op}: a pulse of {width_s:g} s after {delay_s:g} s takes {duration_s:g} s, "
                           f"not less than the {watchdog_s:g} s watchdog")
        return float(width_s)

    def _within_watchdog(self, op: str, n_samples: int) -> None:
        """DaqError when ``n_samples`` sample periods last as long as the watchdog or longer."""
        duration_s = n_samples * self._dt_s
        watchdog_s = self._wiring.timing.watchdog_s
        if duration_s >= watchdog_s:
            raise DaqError(f"{op}: {n_samples} samples at {1.0 / self._dt_s:g} Hz take {duration_s:g} s, "
                           f"not less than the {watchdog_s:g} s watchdog")

    # -- BoundaryDaq -----------------------------------------------------------------------
    def write(self, values_v: np.ndarray) -> None:
        """Set every output (V), software-timed."""
        self._check_open("write")
        self._write(values_v)
        self._bench._time_s += self.latency_s

    def read(self, n_samples: int = 1) -> np.ndarray:
        """Mean of ``n_samples`` samples per input (V), sampled ``latency_s`` after the call."""
        self._hardware("read")
        n_samples = self._count(n_samples)
        self._within_watchdog("read", max(2, n_samples))
        return self._sample(self.latency_s, n_samples)

    def pulse(self, width_s: float) -> None:
        """One learn pulse of ``width_s`` (s): every powered board samples and learns."""
        self._hardware("pulse")
        self._fire(0.0, self._width("pulse", 0.0, width_s))

    def write_and_read(self, values_v: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """Write all outputs (V), settle ``settle_s`` (s), return the mean of ``n_samples``
        samples of every input (V). On a timeout nothing is written."""
        self._hardware("write_and_read")
        settle_s, n_samples = self._settle(settle_s), self._count(n_samples)
        self._within_watchdog("write_and_read", self._periods(settle_s) + n_samples)
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
        self._within_watchdog(f"write_and_read_many of {rows.shape[0]} rows",
                              rows.shape[0] * (self._periods(settle_s) + n_samples))
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
        settle_s = self._settle(settle_s)
        width_s = self._width("write_and_pulse", settle_s, width_s)
        self._within_watchdog("write_and_pulse", self._periods(settle_s) + self._periods(width_s))
        self._write(values_v)
        self._bench._time_s += settle_s
        self._fire(settle_s, width_s)

    def _periods(self, duration_s: float) -> int:
        """Sample periods that cover ``duration_s`` (s), at least one (as the NI driver counts)."""
        return max(1, math.ceil(duration_s / self._dt_s - 1e-6))

    def safe_state(self) -> None:
        """Every output to its wiring's safe value, ramped from the values last written in
        writes within every limit (one write when no such ramp exists)."""
        if self._closed:
            return
        try:
            path = safe_path(self._limits, self._held_v)
        except DaqError:
            path = self._safe_v[None, :]
        for row in path:
            self._write(row)

    def worst_case_safe_s(self) -> float:
        """The longest time (s) the ramp to the safe values takes on the real bench of this
        wiring, from anywhere inside the limits (the same as
        :meth:`~instruments.daq.nidaq.NidaqDaq.worst_case_safe_s`: the ramp's writes at the
        capability table's write time, an estimate)."""
        return self._limits.safe_ramp_writes() * self._wiring.ao_write_s()

    def settings(self) -> dict:
        """The simulated tasks' settings, named as :meth:`~instruments.daq.nidaq.NidaqDaq.settings`
        names the real ones (ranges, terminal configuration, sample clock, learn line,
        watchdog), from the wiring the simulation runs."""
        w = self._wiring
        out: dict = {}
        for o in w.outputs:
            out[f"{o.channel}.min_v"] = float(o.min_v)
            out[f"{o.channel}.max_v"] = float(o.max_v)
        for i in w.inputs:
            out[f"{i.channel}.min_v"] = -float(i.range_v)
            out[f"{i.channel}.max_v"] = float(i.range_v)
            out[f"{i.channel}.terminal_config"] = "RSE"
        out["ao.timing"] = "ON_DEMAND"
        out["ai.timing"] = "SAMPLE_CLOCK"
        out["ai.sample_rate_hz"] = float(w.timing.sample_rate_hz)
        out["learn.line"] = w.learn_line
        if "/ctr" in w.learn_line:
            out.update({"learn.kind": "counter", "learn.idle_state": "LOW",
                        "learn.pulse_high_s": float(w.timing.pulse_s)})
        else:
            model = self._models[w.learn_line.split("/")[0]]
            out.update({"learn.kind": "digital", "learn.hardware_timed": model.hw_timed_line(w.learn_line)})
        for device, covers in self.hardware_watchdog.items():
            out[f"watchdog.{device}.covers"] = covers
            if covers is not None:
                out[f"watchdog.{device}.timeout_s"] = float(w.timing.watchdog_s)
        out["watchdog.host_guarded"] = w.host_guarded_summary()
        out["simulated"] = True
        return out

    def identity(self) -> str:
        """The devices, with serial numbers that follow the bench's seed and the channels'
        errors: another seed, or other errors at the same seed (an ideal DAQ), is another
        simulated DAQ, so its calibration does not apply."""
        devices = self._bench.wiring.daq_devices.items()
        serial = self._first_serial()
        return "; ".join(f"National Instruments {name} {dev} SN {serial + k:08X} (simulated)"
                         for k, (dev, name) in enumerate(devices))

    def system(self) -> "SimSystem":
        """The NI-DAQmx system of this simulated bench (:mod:`instruments.sim.simsystem`): its
        devices with the capability table's channels and the serial numbers of
        :meth:`identity`."""
        from .simsystem import SimSystem

        return SimSystem(dict(self._bench.wiring.daq_devices), self._first_serial())

    def _first_serial(self) -> int:
        return zlib.crc32(f"{self._bench.seed!r} {fingerprint(self.errors)}".encode())

    def close(self) -> None:
        self.safe_state()
        self._closed = True

    # -- truth ---------------------------------------------------------------------------
    def output_voltages(self) -> np.ndarray:
        """What each output really puts on its wire (V), errors included."""
        return self._bench._ao_v.copy()

