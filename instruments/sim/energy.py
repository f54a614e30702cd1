"""Power and energy of a network: per edge, per twin, per inference, per update, per parameter.

Energy per parameter per inference is the headline figure of physical learning: Gen-2 on
breadboards about 1e-11 J, Gen-3 chips projected 1e-14 J, a digital accelerator about
1e-12 J (shared/physics.md and the literature it cites). This module computes it from the
simulator's own solution:

- :func:`edge_power_w`: the power each edge dissipates, ``I (va - vb)`` (W, never negative
  for a passive device);
- :func:`source_power_w`: the power each source delivers, its voltage times the current it
  drives into the network. By Tellegen's theorem the two totals are equal at a DC solution
  (a test checks it, and checks both against ngspice's source currents);
- :class:`Energy`: an inference is both twins held at their operating points for
  ``t_inference_s`` (the settling time, :mod:`instruments.sim.transient`, plus the read-out
  time), so its energy is the sum of the twins' power times it; an update adds the learning
  pulse: the twins' power over ``t_pulse_s`` and, for MOSFET edges, the charge each gate
  takes from its charging source, ``C_g |dV_G| V_source`` (charging a capacitor through a
  resistor by ``dV`` from a source at ``V`` draws ``C dV V`` from it; half of ``C dV^2``
  stays on the capacitor for a small step, the rest heats the resistor).

Units: V, A, W, J, s, F.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .edges import EdgeDevice
from .network import Network

__all__ = ["edge_power_w", "source_power_w", "Energy", "energy"]


def edge_power_w(network: Network, device: EdgeDevice, state, v, twin: int = 0) -> np.ndarray:
    """``(E,)`` power each edge dissipates at node voltages ``v`` (W)."""
    v = np.asarray(v, float)
    a, b = network.edges[:, 0], network.edges[:, 1]
    i, _, _ = device.current(np.asarray(state, float), v[a], v[b], twin=twin)
    return i * (v[a] - v[b])


def source_power_w(network: Network, device: EdgeDevice, state, v, fixed, twin: int = 0) -> np.ndarray:
    """Power each fixed node's source delivers into the network (W), in ``fixed``'s order:
    its voltage times the current leaving it through its edges (negative: the source sinks)."""
    v = np.asarray(v, float)
    a, b = network.edges[:, 0], network.edges[:, 1]
    i, _, _ = device.current(np.asarray(state, float), v[a], v[b], twin=twin)
    out = np.zeros(network.n_nodes)
    np.add.at(out, a, i)
    np.subtract.at(out, b, i)
    fixed = np.asarray(fixed, dtype=int)
    return v[fixed] * out[fixed]


@dataclass(frozen=True)
class Energy:
    """One step's power and energy figures.

    Attributes:
        power_free_w, power_clamped_w: each twin's dissipation at its operating point (W).
        inference_j: both twins over ``t_inference_s`` (J).
        update_j: the learning pulse: both twins over ``t_pulse_s`` and the gates' charge (J).
        per_parameter_inference_j: ``inference_j`` per learning edge (J).
        n_parameters: the learning edges.
    """

    power_free_w: float
    power_clamped_w: float
    inference_j: float
    update_j: float
    per_parameter_inference_j: float
    n_parameters: int

    def to_dict(self) -> dict:
        return {k: (float(v) if isinstance(v, (float, np.floating)) else int(v)) for k, v in self.__dict__.items()}


def energy(network: Network, device: EdgeDevice, state, v_free, v_clamped, *, t_inference_s: float,
           t_pulse_s: float = 0.0, gate_c_f: float = 0.0, gate_source_v: float = 0.0,
           gate_change_v=None, n_parameters: int | None = None) -> Energy:
    """The step's :class:`Energy` from both twins' node voltages (V).

    Args:
        t_inference_s: how long an inference holds the twins at their operating points (s).
        t_pulse_s: the learning pulse (s); 0 for a step without an update.
        gate_c_f, gate_source_v, gate_change_v: MOSFET edges: the gate capacitor (F), the
            charging source's voltage (V) and each edge's gate change this update (``(E,)``, V).
        n_parameters: the learning edges (default every edge).
    """
    p_free = float(edge_power_w(network, device, state, v_free, 0).sum())
    p_clamped = float(edge_power_w(network, device, state, v_clamped, 1).sum())
    inference = (p_free + p_clamped) * t_inference_s
    update = (p_free + p_clamped) * t_pulse_s
    if gate_change_v is not None and gate_c_f:
        update += float(gate_c_f * abs(gate_source_v) * np.sum(np.abs(gate_change_v)))
    n = network.n_edges if n_parameters is None else int(n_parameters)
    return Energy(p_free, p_clamped, inference, update, inference / max(n, 1), n)
