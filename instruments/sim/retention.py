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

:class:`BoardGates` does the same on the simulated bench (:class:`~instruments.sim.bench.SimBench`),
over the bench's own clock: a MOSFET board's state *is* its gate voltage in integer uV
(``firmware/protocol/PROTOCOL-1.md``), so the leak moves the boards' states, and what the
rounding to whole microvolts leaves (under 0.5 uV a board) is carried, so that the gate the
network sees follows the exponential exactly, whatever the times between the updates.

Units: V, s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .edges import EdgeDevice

__all__ = ["BoardGates", "GateLeak"]


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


class BoardGates:
    """The gates of a bench's MOSFET boards, leaking over the bench's clock.

    Args:
        leak: the leak (one ``tau_s`` or one per board, board order; ``v_rest_v``).
        boards: the :class:`~instruments.sim.boards.SimBoards` whose states (gate uV) leak.
        held: ``(n,)`` bool, boards whose device does not follow them (fixed edges): their
            states do not leak.

    The gate of board ``i`` is ``(state[i] + residue_uv[i]) * 1e-6`` V; :meth:`advance`
    relaxes it from the time of the previous advance to ``now_s`` (s), writes the whole
    microvolts into the board's state (what it reads back and learns from) and keeps the
    rest in ``residue_uv`` ([-0.5, 0.5] uV). A learn adds its change to the state, and so
    to the gate; the residue stays. Stuck devices (:meth:`SimBoards.stick`) do not follow
    their boards: their states do not leak either.
    """

    def __init__(self, leak: GateLeak, boards, held: np.ndarray):
        self.leak = leak
        self.boards = boards
        n = boards.n
        tau = np.broadcast_to(np.asarray(leak.tau_s, float), (n,))
        self._inv_tau = 1.0 / tau
        self._rest_uv = float(leak.v_rest_v) * 1e6
        self._lo = boards.state_min.astype(float)
        self._hi = boards.state_max.astype(float)
        self._held = np.asarray(held, bool)
        self.residue_uv = np.zeros(n)
        self.t_s = 0.0

    def advance(self, now_s: float) -> bool:
        """Leak the gates from the last advance to ``now_s`` (s); True when time passed."""
        dt = now_s - self.t_s
        if not dt > 0:
            return False
        self.t_s = now_s
        b = self.boards
        g = b.state + self.residue_uv
        g -= self._rest_uv
        g *= np.exp(-dt * self._inv_tau)
        g += self._rest_uv
        np.clip(g, self._lo, self._hi, out=g)
        whole = np.floor(g + 0.5)
        keep = self._held | b._stuck
        whole[keep] = b.state[keep]
        g[keep] = whole[keep] + self.residue_uv[keep]
        b.state[:] = whole.astype(np.int64)
        self.residue_uv[:] = g - whole
        b.state_version += 1
        return True

    def device_state(self, out: np.ndarray, edges: np.ndarray, unit: float) -> np.ndarray:
        """Add the carried residues to the boards' device states ``out`` (gate V, edge order)."""
        follow = ~(self._held | self.boards._stuck)
        out[edges[follow]] += self.residue_uv[follow] * unit
        return out

    def save(self) -> dict:
        return {"t_s": self.t_s, "residue_uv": self.residue_uv.copy()}

    def loader(self, saved: dict):
        """Check what :meth:`save` returned and return what restores it."""
        residue = np.asarray(saved["residue_uv"], float)
        if residue.shape != self.residue_uv.shape:
            raise ValueError(f"saved gate leak residue_uv has shape {residue.shape}, this bench needs "
                             f"{self.residue_uv.shape}")
        t_s = float(saved["t_s"])

        def load() -> None:
            self.t_s = t_s
            self.residue_uv[:] = residue
        return load
