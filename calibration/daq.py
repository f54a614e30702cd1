"""Calibrating the DAQ's analog channels against the multimeter.

Every number the bench produces passes through a DAQ channel with its own gain and offset.
:func:`calibrate_daq` measures them, with the multimeter as the reference:

- each output: ``n_points`` voltages across its limits (the other outputs at their safe
  values), each read by the meter on that output's wire; fit ``wire = gain * requested +
  offset``;
- each input: every output that drives the input's twin is set to one voltage ``V``, for
  ``n_points`` values of ``V``; the input reads its node (mean of ``n_samples``) and the
  meter reads the same node; fit ``reading = gain * node + offset``. With no current
  flowing the twin sits at ``V``; with a ground node it sits at some fraction of ``V``,
  which the meter measures all the same.

Every write goes through the rig's safety layer. The result, a :class:`DaqCalibration`,
names every channel outside its :class:`Tolerance` in ``problems``, and gives the
corrections (:meth:`DaqCalibration.corrections`) that
:func:`instruments.calibrated.apply_daq_calibration` puts under the safety layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Callable, NamedTuple

import numpy as np

from instruments.calibrated import CalibratedDaq, DaqCorrections
from instruments.interfaces import Multimeter

ConnectDmm = Callable[..., Multimeter | None]
"""``connect_dmm(channel=None, node=None, twin="free")``: route the multimeter to output
``channel``, or to ``node`` of ``twin``, and return it (None: the rig's own ``dmm``). On the
simulated bench ``lambda channel=None, node=None, twin="free": rig.bench.probe_dmm(channel,
node=node, twin=twin)``; on a real bench the command line asks the scientist to move the
probe and waits."""


@dataclass(frozen=True)
class Tolerance:
    """How far a channel may be from perfect before it is a problem.

    Attributes:
        gain: largest ``|gain - 1|`` (relative; 0.01 = 1 %).
        offset_v: largest ``|offset|`` (V).
        linearity: largest ``max |residual| / span`` of the fit (0.002 = 0.2 % of the span;
            a 16-bit output over +-10 V is quantised to 0.3 mV, 0.07 % of 0.45 V).
    """

    gain: float = 0.01
    offset_v: float = 0.010
    linearity: float = 0.002


class LineFit(NamedTuple):
    """A straight line ``y = gain * x + offset_v`` fitted by least squares.

    ``residual_rms_v`` (V) and ``linearity`` (``max |residual|`` over the span of ``x``)
    say how well it fits; all NaN when ``x`` does not vary (no line to fit)."""

    gain: float
    offset_v: float
    residual_rms_v: float
    linearity: float


def fit_line(x_v, y_v) -> LineFit:
    """Least-squares ``y = gain * x + offset`` through points ``(x_v[k], y_v[k])`` (V)."""
    x = np.asarray(x_v, float)
    y = np.asarray(y_v, float)
    span = float(np.ptp(x)) if x.size else 0.0
    scale = max(float(np.max(np.abs(x), initial=0.0)), 1e-300)
    if x.size < 2 or not span > 1e-9 * scale:
        return LineFit(np.nan, np.nan, np.nan, np.nan)
    xc = x - x.mean()
    gain = float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))
    offset = float(y.mean() - gain * x.mean())
    residual = y - (gain * x + offset)
    return LineFit(gain, offset, float(np.sqrt(np.mean(residual**2))), float(np.max(np.abs(residual)) / span))


@dataclass(frozen=True, eq=False)
class ChannelFit:
    """One channel's calibration.

    Attributes:
        name: the channel, e.g. ``"PXI1Slot2/ao0"``.
        kind: ``"ao"`` or ``"ai"``.
        gain, offset_v: ``wire = gain * requested + offset`` (ao) or ``reading = gain *
            node + offset`` (ai); offset in V.
        residual_rms_v: RMS of the fit's residuals (V).
        linearity: ``max |residual|`` over the span of the known voltages.
        known_v: (n,) the known voltages: requested (ao), or the node by the meter (ai).
        observed_v: (n,) what came out: the wire by the meter (ao), or the reading (ai).
    """

    name: str
    kind: str
    gain: float
    offset_v: float
    residual_rms_v: float
    linearity: float
    known_v: np.ndarray
    observed_v: np.ndarray

    @property
    def n_points(self) -> int:
        return int(np.size(self.known_v))

    @classmethod
    def fitted(cls, name: str, kind: str, known_v, observed_v) -> "ChannelFit":
        known, observed = np.asarray(known_v, float), np.asarray(observed_v, float)
        return cls(name, kind, *fit_line(known, observed), known, observed)

    def problems(self, tolerance: Tolerance) -> list[str]:
        """What is outside ``tolerance``, one message each, naming the channel."""
        what = f"{self.name} ({self.kind})"
        if not np.isfinite(self.gain):
            return [f"{what}: no line to fit, the reference voltage did not change "
                    f"({self.n_points} points at {np.mean(self.known_v):.6g} V)"]
        out = []
        if abs(self.gain - 1) > tolerance.gain:
            out.append(f"{what}: gain {self.gain:.6f} is {100 * (self.gain - 1):+.3f} % off, "
                       f"tolerance {100 * tolerance.gain:g} %")
        if abs(self.offset_v) > tolerance.offset_v:
            out.append(f"{what}: offset {1e3 * self.offset_v:+.3f} mV, tolerance {1e3 * tolerance.offset_v:g} mV")
        if self.linearity > tolerance.linearity:
            out.append(f"{what}: nonlinearity {100 * self.linearity:.3f} % of the span, "
                       f"tolerance {100 * tolerance.linearity:g} %")
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "gain": self.gain, "offset_v": self.offset_v,
                "residual_rms_v": self.residual_rms_v, "linearity": self.linearity,
                "known_v": np.asarray(self.known_v, float).tolist(),
                "observed_v": np.asarray(self.observed_v, float).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "ChannelFit":
        return cls(str(d["name"]), str(d["kind"]), float(d["gain"]), float(d["offset_v"]),
                   float(d["residual_rms_v"]), float(d["linearity"]),
                   np.asarray(d["known_v"], float), np.asarray(d["observed_v"], float))


@dataclass(frozen=True, eq=False)
class DaqCalibration:
    """The DAQ's channels, calibrated.

    Attributes:
        rig: the rig's name (its wiring's).
        ao, ai: one :class:`ChannelFit` per channel, in the DAQ's channel order.
        identities: who every instrument was (role -> identity), the meter's included.
        date: when (ISO 8601, UTC).
        tolerance: what the channels were checked against.
        problems: every channel outside the tolerance, one message each (empty: all good).
        n_samples: input samples averaged per reading.
    """

    rig: str
    ao: tuple[ChannelFit, ...]
    ai: tuple[ChannelFit, ...]
    identities: dict
    date: str
    tolerance: Tolerance = Tolerance()
    problems: tuple[str, ...] = ()
    n_samples: int = 1

    @property
    def ao_channels(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.ao)

    @property
    def ai_channels(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.ai)

    def channels(self) -> tuple[ChannelFit, ...]:
        return self.ao + self.ai

    def corrections(self) -> DaqCorrections:
        """The gains and offsets as plain arrays, for
        :func:`instruments.calibrated.apply_daq_calibration`; ValueError naming a channel
        whose gain cannot be corrected (not finite or not positive)."""
        col = lambda fits, a: np.array([getattr(c, a) for c in fits], float)  # noqa: E731
        return DaqCorrections(self.ao_channels, col(self.ao, "gain"), col(self.ao, "offset_v"),
                              self.ai_channels, col(self.ai, "gain"), col(self.ai, "offset_v"))

    def correct_outputs(self, values_v) -> np.ndarray:
        """The raw values (V) to write so that the outputs carry ``values_v`` (V); the last
        axis in :attr:`ao_channels` order."""
        return self.corrections().raw_outputs(values_v)

    def correct_inputs(self, readings_v) -> np.ndarray:
        """The node voltages (V) behind raw ``readings_v``; last axis in :attr:`ai_channels` order."""
        return self.corrections().true_inputs(readings_v)

    def to_dict(self) -> dict:
        """Plain JSON-able values."""
        return {"rig": self.rig, "ao": [c.to_dict() for c in self.ao], "ai": [c.to_dict() for c in self.ai],
                "identities": dict(self.identities), "date": self.date, "tolerance": asdict(self.tolerance),
                "problems": list(self.problems), "n_samples": self.n_samples}

    @classmethod
    def from_dict(cls, d: dict) -> "DaqCalibration":
        return cls(str(d["rig"]), tuple(ChannelFit.from_dict(c) for c in d["ao"]),
                   tuple(ChannelFit.from_dict(c) for c in d["ai"]), dict(d["identities"]), str(d["date"]),
                   Tolerance(**d["tolerance"]), tuple(d["problems"]), int(d["n_samples"]))


# -- the routine ---------------------------------------------------------------------------


def _span(limits, driven: np.ndarray, what: str) -> tuple[float, float]:
    """The range (V) the ``driven`` outputs can share (all at one voltage) with every other
    output at its safe value: their limits, and the cross limits to the undriven ones."""
    lo, hi = float(np.max(limits.min_v[driven])), float(np.min(limits.max_v[driven]))
    inside = np.zeros(limits.min_v.size, bool)
    inside[driven] = True
    for a, b, d in zip(limits.cross_a, limits.cross_b, limits.cross_max_v):
        if inside[a] != inside[b]:
            other = limits.safe_v[b if inside[a] else a]
            lo, hi = max(lo, other - d), min(hi, other + d)
    if not hi > lo:
        raise ValueError(f"{what}: the limits leave no range to calibrate over ({lo:g}..{hi:g} V)")
    return lo, hi


def _driving(wiring, twin: str) -> np.ndarray:
    """Indices of the outputs that drive ``twin``."""
    return np.array([j for j, o in enumerate(wiring.outputs) if o.twin in (twin, "both")], np.int64)


def calibrate_daq(rig, connect_dmm: ConnectDmm, *, n_points: int = 11, n_samples: int = 100,
                  tolerance: Tolerance = Tolerance(),
                  on_progress: Callable[[str, int, int], None] | None = None) -> DaqCalibration:
    """Calibrate every analog output and input of ``rig`` against the multimeter.

    Args:
        rig: an open :class:`~instruments.rig.Rig` without a calibration applied (its raw
            channels are what is measured).
        connect_dmm: routes the meter (see :data:`ConnectDmm`).
        n_points: voltages per channel (>= 2), evenly spread over the range it can take.
        n_samples: input samples averaged per reading (>= 1).
        tolerance: what counts as a problem.
        on_progress: called as ``on_progress(channel, done, total)`` before each channel, and
            as ``on_progress("", total, total)`` at the end.

    Returns:
        the calibration; the outputs are back at their safe values.

    Raises:
        ValueError: bad arguments, a calibrated rig, or limits that leave a channel no range.
    """
    if n_points < 2 or n_samples < 1:
        raise ValueError(f"need n_points >= 2 and n_samples >= 1, got {n_points} and {n_samples}")
    daq, limits, wiring = rig.daq, rig.limits, rig.wiring
    if isinstance(daq.daq, CalibratedDaq):
        raise ValueError("calibrate_daq measures the raw channels, and this rig's DAQ has a calibration "
                         "applied: apply_daq_calibration(rig, None) first")
    progress = on_progress or (lambda channel, done, total: None)
    total = len(daq.ao_channels) + len(daq.ai_channels)
    identities = dict(rig.identities())
    safe_v = limits.safe_v

    def meter(**where) -> Multimeter:
        m = connect_dmm(**where)
        m = rig.dmm if m is None else m
        if m is None:
            raise ValueError("no multimeter: connect_dmm returned None and the rig has none")
        identities["dmm"] = m.identity()
        return m

    fits: dict[str, list[ChannelFit]] = {"ao": [], "ai": []}
    try:
        for j, ch in enumerate(daq.ao_channels):
            progress(ch, j, total)
            lo, hi = _span(limits, np.array([j]), ch)
            dmm = meter(channel=ch)
            requested = np.linspace(lo, hi, n_points)
            wire = np.empty(n_points)
            for k, v in enumerate(requested):
                values = safe_v.copy()
                values[j] = v
                daq.ramp_to(values)
                wire[k] = dmm.measure_dc_volts()
            daq.ramp_to(safe_v)
            fits["ao"].append(ChannelFit.fitted(ch, "ao", requested, wire))

        settle_s = wiring.timing.settle_s
        for c, inp in enumerate(wiring.inputs):
            progress(inp.channel, len(daq.ao_channels) + c, total)
            driven = _driving(wiring, inp.twin)
            lo, hi = _span(limits, driven, f"{inp.channel} (outputs driving the {inp.twin} twin)")
            dmm = meter(node=inp.node, twin=inp.twin)
            node = np.empty(n_points)
            reading = np.empty(n_points)
            for k, v in enumerate(np.linspace(lo, hi, n_points)):
                values = safe_v.copy()
                values[driven] = v
                daq.ramp_to(values)
                reading[k] = daq.write_and_read(values, settle_s, n_samples)[c]
                node[k] = dmm.measure_dc_volts()
            daq.ramp_to(safe_v)
            fits["ai"].append(ChannelFit.fitted(inp.channel, "ai", node, reading))
    finally:
        daq.safe_state()
    progress("", total, total)

    problems = [p for fit in fits["ao"] + fits["ai"] for p in fit.problems(tolerance)]
    return DaqCalibration(
        rig=wiring.name, ao=tuple(fits["ao"]), ai=tuple(fits["ai"]), identities=identities,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"), tolerance=tolerance,
        problems=tuple(problems), n_samples=int(n_samples))
