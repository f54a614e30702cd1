"""Retention: a learned gate voltage leaks away while it is held.

A MOSFET edge keeps its learned state as charge on its gate capacitor; the capacitor's
insulation, the MOSFET's gate and whatever reads the gate back leak it towards a rest
voltage (ground, or the read-back buffer's bias point) with a time constant of minutes to
days (a 2.2 uF film capacitor: hours to days; a chip's gate node: seconds to minutes):

    V_G(t) = V_rest + (V_G(0) - V_rest) exp(-t / tau).

:class:`GateLeak` applies it to a state over a time; :class:`~instruments.sim.twin.TwinNetwork`
applies it before every step (``step_period_s`` apart) and over :meth:`hold` times, so a
network can be trained, left for hours and evaluated again. The state stays within the
device's limits (the range the boards can drive; a gate below it reads as the limit).

Units: V, s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .edges import EdgeDevice

__all__ = ["GateLeak"]


@dataclass(frozen=True)
class GateLeak:
    """The gates' leak: time constant ``tau_s`` (s, > 0; a scalar or ``(E,)``) towards
    ``v_rest_v`` (V)."""

    tau_s: float | np.ndarray
    v_rest_v: float = 0.0

    def __post_init__(self) -> None:
        tau = np.asarray(self.tau_s, float)
        if not np.all(tau > 0) or not np.all(np.isfinite(tau)):
            raise ValueError(f"gate leak time constant must be positive and finite, got {self.tau_s!r}")

    def apply(self, state: np.ndarray, dt_s: float, device: EdgeDevice) -> np.ndarray:
        """Leak ``state`` (in place) over ``dt_s`` (s, >= 0) and return it."""
        if dt_s < 0:
            raise ValueError(f"a hold lasts 0 s or more, got {dt_s!r}")
        if dt_s:
            k = np.exp(-dt_s / np.asarray(self.tau_s, float))
            state -= self.v_rest_v
            state *= k
            state += self.v_rest_v
            device.clip(state, out=state)
        return state
