"""Local learning rules of a twin pair, the nudge, and the boards' measurement of drops.

Every rule acts on the state of all edges at once from the two voltage drops each board
measures: ``dv_free`` across its free-twin edge and ``dv_clamped`` across its clamped-twin
edge (V, arrays of shape (E,)). Rules:

* :class:`CoupledLearning`: continuous ``dk = (alpha / eta) [(dV_F)^2 - (dV_C)^2]``;
* :class:`TapRule`: the Gen-1 digital potentiometer, one tap by the sign, with a dead band;
* :class:`GateCharging`: the Gen-2 gate capacitor, ``dV_G = (t_pulse / RC) g [(dV_F)^2 - (dV_C)^2]``
  (or the RC charge itself, ``1 - exp(-t_pulse / RC)`` for ``t_pulse / RC``).

All three share desynchronous updates (each edge updates with probability
``update_probability`` per step), the device's constant per-edge bias and its state limits.
:class:`Nudge` turns free outputs into clamped targets; :class:`DropSensor` adds the
read-out noise and quantisation of the boards' ADCs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .edges import EdgeDevice

#: Denominator of the Gen-2 nudge grid: eta = m / 129.
ETA_GRID_DENOMINATOR = 129


@dataclass(frozen=True)
class Nudge:
    """How far the clamped twin's outputs are pushed toward the desired answer.

    ``O_C = O_F + eta (L - O_F)``.

    Attributes:
        eta: nudge amplitude in (0, 1]; ignored when ``grid_m`` is set.
        grid_m: hardware grid, ``eta = grid_m / 129`` with integer ``grid_m`` in 1..129
            (the Gen-2 standard is 128; "overclamping" uses 32).
        overclamp_v: with overclamping (arXiv:2505.22887), the clamp aims not at L but at a
            fixed overshoot ``L + sign(L - O_F) * overclamp_v`` (V, > 0), and the update is
            scaled by the error size, ``rms(L - O_F) / overclamp_v``.
    """

    eta: float = 1.0
    grid_m: int | None = None
    overclamp_v: float | None = None

    def __post_init__(self) -> None:
        if self.grid_m is not None:
            if not (1 <= int(self.grid_m) <= ETA_GRID_DENOMINATOR) or int(self.grid_m) != self.grid_m:
                raise ValueError(f"nudge grid_m must be an integer in 1..129, got {self.grid_m}")
        elif not (0.0 < self.eta <= 1.0):
            raise ValueError(f"nudge eta must be in (0, 1], got {self.eta}")
        if self.overclamp_v is not None and not self.overclamp_v > 0:
            raise ValueError(f"overclamp_v must be positive, got {self.overclamp_v}")

    @property
    def effective_eta(self) -> float:
        """The nudge actually applied (on the hardware grid when ``grid_m`` is set)."""
        return self.grid_m / ETA_GRID_DENOMINATOR if self.grid_m is not None else self.eta

    def clamp(self, o_free: np.ndarray, desired: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Clamped target voltages ``O_C`` (V) for free outputs ``o_free`` and answer ``desired``."""
        eta = self.effective_eta
        if out is None:
            out = np.empty_like(o_free, dtype=float)
        if self.overclamp_v is None:
            np.subtract(desired, o_free, out=out)
        else:
            np.subtract(desired, o_free, out=out)
            np.sign(out, out=out)
            out *= self.overclamp_v
            out += desired
            out -= o_free
        out *= eta
        out += o_free
        return out

    def update_scale(self, o_free: np.ndarray, desired: np.ndarray) -> float:
        """Factor on the update: 1, or with overclamping ``rms(L - O_F) / overclamp_v``."""
        if self.overclamp_v is None:
            return 1.0
        err = np.asarray(desired, float) - o_free
        return float(np.sqrt(np.mean(err * err))) / self.overclamp_v


@dataclass(frozen=True)
class DropSensor:
    """The board's measurement of a voltage drop: Gaussian noise, then quantisation.

    Attributes:
        noise_v: standard deviation of the read-out noise (V), >= 0.
        lsb_v: quantisation step of the measured drop (V); 0 for none.
    """

    noise_v: float = 0.0
    lsb_v: float = 0.0

    def __post_init__(self) -> None:
        if self.noise_v < 0 or self.lsb_v < 0:
            raise ValueError("sensor noise_v and lsb_v must be >= 0")

    @property
    def ideal(self) -> bool:
        return self.noise_v == 0 and self.lsb_v == 0

    def measure(self, dv: np.ndarray, rng: np.random.Generator, out: np.ndarray | None = None) -> np.ndarray:
        """Measured drops (V) for true drops ``dv`` (V)."""
        if out is None:
            out = np.array(dv, dtype=float, copy=True)
        else:
            np.copyto(out, dv)
        if self.noise_v:
            out += self.noise_v * rng.standard_normal(out.shape)
        if self.lsb_v:
            np.divide(out, self.lsb_v, out=out)
            np.rint(out, out=out)
            out *= self.lsb_v
        return out


@dataclass
class Rule:
    """Common part of the local rules.

    Attributes:
        update_probability: chance (0, 1] that a given edge updates on a given step
            (desynchronous learning when < 1).
    """

    update_probability: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 < self.update_probability <= 1.0):
            raise ValueError(f"update_probability must be in (0, 1], got {self.update_probability}")
        self._delta: np.ndarray | None = None

    def _buffer(self, n: int) -> np.ndarray:
        if self._delta is None or self._delta.size != n:
            self._delta = np.empty(n)
        return self._delta

    def raw_change(self, contrast: np.ndarray, out: np.ndarray) -> np.ndarray:
        """State change of every edge from ``contrast = dV_F^2 - dV_C^2`` (V^2)."""
        raise NotImplementedError

    def update(
        self,
        state: np.ndarray,
        dv_free: np.ndarray,
        dv_clamped: np.ndarray,
        device: EdgeDevice,
        rng: np.random.Generator,
        scale: float = 1.0,
    ) -> np.ndarray:
        """Apply one update to ``state`` in place and return it.

        Args:
            state: (E,) learned state in the device's unit; changed in place.
            dv_free, dv_clamped: (E,) measured drops across each board's two edges (V).
            device: the edge model (limits and per-edge bias).
            rng: random generator for desynchronous updates.
            scale: factor on the change (overclamping scales by the error size).
        """
        delta = self._buffer(state.size)
        np.multiply(dv_free, dv_free, out=delta)
        delta -= dv_clamped * dv_clamped
        self.raw_change(delta, delta)
        if scale != 1.0:
            delta *= scale
        delta += device.update_bias
        if self.update_probability < 1.0:
            delta *= rng.random(state.size) < self.update_probability
        state += delta
        device.clip(state, out=state)
        return state


@dataclass
class CoupledLearning(Rule):
    """Continuous coupled learning: ``d(state) = (alpha / eta) (dV_F^2 - dV_C^2)``.

    Attributes:
        alpha: learning rate in state units per V^2 (S/V^2 for resistor edges, V/V^2 for
            gate voltages), > 0.
        eta: the nudge amplitude the contrast is divided by (use ``Nudge.effective_eta``).
    """

    alpha: float = 1e-3
    eta: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.alpha > 0 or not (0 < self.eta <= 1):
            raise ValueError(f"coupled learning needs alpha > 0 and eta in (0, 1], got {self.alpha}, {self.eta}")

    def raw_change(self, contrast, out):
        return np.multiply(contrast, self.alpha / self.eta, out=out)


@dataclass
class TapRule(Rule):
    """Gen-1 digital potentiometer rule: one tap toward more conductance when
    ``dV_F^2 - dV_C^2 > dead_band_v2``, one tap toward less when it is below
    ``-dead_band_v2``, none inside the dead band.

    Attributes:
        dead_band_v2: half-width of the dead band (V^2), >= 0.
    """

    dead_band_v2: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dead_band_v2 < 0:
            raise ValueError(f"dead_band_v2 must be >= 0, got {self.dead_band_v2}")

    def raw_change(self, contrast, out):
        inside = np.abs(contrast) <= self.dead_band_v2
        np.sign(contrast, out=out)
        out[inside] = 0.0
        return out


@dataclass
class GateCharging(Rule):
    """Gen-2 rule: the gate capacitor charges through R during the learning pulse towards
    the multiplier's output, ``g (dV_F^2 - dV_C^2)`` away from the gate.

    ``charging = "linear"`` is the lab's formula, the first order of the RC charge in
    ``pulse_s / RC``: ``dV_G = (pulse_s / (r_ohm c_f)) g (dV_F^2 - dV_C^2)``;
    ``charging = "rc"`` is the charge itself, ``dV_G = (1 - exp(-pulse_s / RC)) g (...)``
    (2.2 % less at the lab's 100 us on 2.2 ms, 13 % less at a pulse of RC / 4).

    Attributes:
        pulse_s: learning pulse (s), lab range 25e-6 to 200e-6, default 100e-6.
        r_ohm: charging resistor (Ohm), default 1e3.
        c_f: gate capacitor (F), default 2.2e-6.
        gain_per_v: multiplier scale g (1/V), default 0.1.
        charging: ``"linear"`` (default, the lab's formula) or ``"rc"`` (the exponential).
    """

    pulse_s: float = 100e-6
    r_ohm: float = 1e3
    c_f: float = 2.2e-6
    gain_per_v: float = 0.1
    charging: str = "linear"

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.pulse_s, self.r_ohm, self.c_f, self.gain_per_v) <= 0:
            raise ValueError("gate charging needs positive pulse_s, r_ohm, c_f and gain_per_v")
        if self.charging not in ("linear", "rc"):
            raise ValueError(f"gate charging is 'linear' or 'rc', got {self.charging!r}")

    @property
    def volts_per_v2(self) -> float:
        """Gate change (V) per V^2 of contrast."""
        x = self.pulse_s / (self.r_ohm * self.c_f)
        return (x if self.charging == "linear" else -np.expm1(-x)) * self.gain_per_v

    def raw_change(self, contrast, out):
        return np.multiply(contrast, self.volts_per_v2, out=out)


def misclassified(o_free: np.ndarray, desired: np.ndarray, readout: str) -> bool:
    """True when the free outputs give the wrong class (for update-only-on-error).

    Args:
        o_free: free outputs (V), shape (T,).
        desired: desired outputs (V), shape (T,).
        readout: ``"argmax"`` (the class is the target with the highest voltage, e.g. Iris)
            or ``"difference"`` (two targets; the class is the sign of ``O[0] - O[1]``).
    """
    if readout == "argmax":
        return int(np.argmax(o_free)) != int(np.argmax(desired))
    if readout == "difference":
        return bool(np.sign(o_free[0] - o_free[1]) != np.sign(desired[0] - desired[1]))
    raise ValueError(f"unknown read-out {readout!r}; expected 'argmax' or 'difference'")
