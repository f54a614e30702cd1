"""Transient of a network: node voltages in time, with a capacitance at every free node.

A DC solve (:mod:`instruments.sim.circuit`) gives where a network ends; this module gives how
it gets there: how long one inference takes to settle after the sources change, which is the
inference latency of the hardware. Every node that is not held by a source has a capacitance
``C`` to ground (the node's wiring and the devices' terminals: picofarads on a chip, tens of
picofarads to nanofarads on a breadboard); the fixed nodes follow their sources. Kirchhoff's
current law at each free node ``u`` is then

    C_u dv_u/dt + f_u(v) = 0,

``f_u`` the current leaving ``u`` through its edges (the device models of
:mod:`instruments.sim.edges`, nonlinear for MOSFETs). It is integrated with a fixed time step
``dt`` by the trapezoidal rule (second order, as SPICE's default ``method=trap``) or backward
Euler (first order, L-stable: no ringing after a step of the sources); the first step after
the start is always backward Euler, as SPICE does after a breakpoint, so a step of the
sources at t = 0 does not ring. Each step solves its implicit equation by Newton's method,
the node steps limited to ``MAX_STEP_V``; with linear edges the matrix is factorised once.

:func:`settling_time` is the earliest time after which every (chosen) node stays within a
tolerance of its final value. Units: V, A, S, F, s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import scipy.linalg as sla

from .edges import EdgeDevice
from .network import Network

__all__ = ["TransientResult", "simulate", "settling_time", "TransientError", "METHODS"]

METHODS = ("trapezoidal", "backward_euler")
#: Largest change of a node in one Newton iteration (V), as SPICE limits junction voltages.
MAX_STEP_V = 0.5
#: Newton iterations of one time step before the step is given up.
MAX_ITERATIONS = 60


class TransientError(RuntimeError):
    """A time step's Newton iteration did not converge, or the input is not a transient."""


@dataclass(frozen=True)
class TransientResult:
    """Node voltages at the time points.

    Attributes:
        t_s: ``(K + 1,)`` times from 0 (s).
        v: ``(K + 1, N)`` every node's voltage at each time (V), fixed nodes included.
        network: the network (node names).
        method: the integration rule.
    """

    t_s: np.ndarray
    v: np.ndarray
    network: Network
    method: str

    def node(self, name: str) -> np.ndarray:
        """One node's voltage against time (V)."""
        return self.v[:, self.network.index(name)]


def _fixed_voltages(v_fixed) -> Callable[[float], np.ndarray]:
    if callable(v_fixed):
        return lambda t: np.asarray(v_fixed(t), float)
    arr = np.asarray(v_fixed, float)
    return lambda t: arr


def simulate(network: Network, device: EdgeDevice, state, fixed: Sequence[int], v_fixed,
             t_stop_s: float, dt_s: float, *, c_node_f=1e-9, v0=None, method: str = "trapezoidal",
             twin: int = 0, abstol_a: float = 1e-15, vntol_v: float = 1e-12) -> TransientResult:
    """Integrate the network from ``t = 0`` to ``t_stop_s`` in steps of ``dt_s``.

    Args:
        network: nodes and edges.
        device: the edge model (its twin ``twin``), ``state`` the edges' learned state.
        fixed: indices of the nodes held by sources.
        v_fixed: their voltages (V) from ``t = 0+`` on: an array, or a function of t (s)
            giving one (a source that changes during the transient).
        c_node_f: capacitance to ground of each node (F, > 0), a scalar or ``(N,)``; fixed
            nodes' entries are not used.
        v0: every node's voltage at ``t = 0`` (V, ``(N,)``; default 0): the state before
            the sources changed.
        method: ``"trapezoidal"`` or ``"backward_euler"``.
        abstol_a, vntol_v: Newton's tolerances per node: current (A) and voltage step (V).

    Raises:
        TransientError: bad arguments, or a step whose Newton iteration fails.
    """
    if method not in METHODS:
        raise TransientError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (dt_s > 0 and t_stop_s > 0 and np.isfinite(dt_s) and np.isfinite(t_stop_s)):
        raise TransientError(f"dt and t_stop must be positive, got dt {dt_s!r} s, t_stop {t_stop_s!r} s")
    n = network.n_nodes
    fixed = np.asarray(fixed, dtype=int)
    free = np.setdiff1d(np.arange(n), fixed)
    c = np.broadcast_to(np.asarray(c_node_f, float), (n,))
    if np.any(~(c[free] > 0)) or not np.all(np.isfinite(c)):
        raise TransientError("every free node needs a positive capacitance")
    state = np.asarray(state, float)
    source = _fixed_voltages(v_fixed)
    steps = int(np.ceil(t_stop_s / dt_s - 1e-9))
    t = np.arange(steps + 1) * dt_s
    out = np.empty((steps + 1, n))
    v = np.zeros(n) if v0 is None else np.array(v0, float)
    if v.shape != (n,):
        raise TransientError(f"v0 must have one voltage per node ({n}), got shape {v.shape}")
    out[0] = v
    a, b = network.edges[:, 0], network.edges[:, 1]
    where = np.full(n, -1)
    where[free] = np.arange(free.size)
    c_u = c[free]

    def currents(x):
        """Net current out of every node, and the edges' currents and derivatives."""
        i, ga, gb = device.current(state, x[a], x[b], twin=twin)
        f = np.zeros(n)
        np.add.at(f, a, i)
        np.subtract.at(f, b, i)
        return f, ga, gb

    def jacobian(ga, gb):
        """d f_free / d v_free (S), dense."""
        jac = np.zeros((free.size, free.size))
        ia, ib = where[a], where[b]
        for rows, cols, vals in ((ia, ia, ga), (ia, ib, gb), (ib, ia, -ga), (ib, ib, -gb)):
            ok = (rows >= 0) & (cols >= 0)
            np.add.at(jac, (rows[ok], cols[ok]), vals[ok])
        return jac

    lin_lu = {}
    f_old, ga, gb = currents(v)
    for k in range(1, steps + 1):
        x = v.copy()
        x[fixed] = source(t[k])
        theta = 1.0 if (method == "backward_euler" or k == 1) else 0.5
        # G(x) = C (x - v) / dt + theta f(x) + (1 - theta) f(v) on the free nodes
        for it in range(MAX_ITERATIONS):
            f_new, ga, gb = currents(x)
            g = c_u * (x[free] - v[free]) / dt_s + theta * f_new[free] + (1.0 - theta) * f_old[free]
            if device.linear:
                key = theta
                if key not in lin_lu:
                    lin_lu[key] = sla.lu_factor(np.diag(c_u / dt_s) + theta * jacobian(ga, gb))
                step = sla.lu_solve(lin_lu[key], g)
            else:
                step = np.linalg.solve(np.diag(c_u / dt_s) + theta * jacobian(ga, gb), g)
            step = np.clip(step, -MAX_STEP_V, MAX_STEP_V)
            x[free] -= step
            if np.max(np.abs(step), initial=0.0) <= vntol_v + 1e-9 * np.max(np.abs(x), initial=0.0):
                f_new, ga, gb = currents(x)
                g = c_u * (x[free] - v[free]) / dt_s + theta * f_new[free] + (1.0 - theta) * f_old[free]
                if np.max(np.abs(g), initial=0.0) <= abstol_a + 1e-9 * np.max(np.abs(c_u * x[free] / dt_s), initial=0.0):
                    break
        else:
            worst = int(free[np.argmax(np.abs(g))]) if free.size else 0
            raise TransientError(f"no convergence at t = {t[k]:.6g} s after {MAX_ITERATIONS} Newton "
                                 f"iterations (node {network.nodes[worst]})")
        v, f_old = x, f_new
        out[k] = v
    return TransientResult(t, out, network, method)


def settling_time(result: TransientResult, tol_v: float, nodes: Sequence[str] | None = None,
                  final_v: np.ndarray | None = None) -> float:
    """The earliest time (s) after which every node of ``nodes`` (default all) stays within
    ``tol_v`` of its final value (``final_v``, ``(N,)``, default the last time point's): the
    settling time to that tolerance. ``inf`` when the last point is not within it."""
    if not tol_v > 0:
        raise ValueError(f"tolerance must be positive, got {tol_v!r} V")
    idx = np.arange(result.v.shape[1]) if nodes is None else np.array([result.network.index(x) for x in nodes])
    final = result.v[-1] if final_v is None else np.asarray(final_v, float)
    off = np.max(np.abs(result.v[:, idx] - final[idx]), axis=1) > tol_v
    if off[-1]:
        return float("inf")
    bad = np.flatnonzero(off)
    return 0.0 if bad.size == 0 else float(result.t_s[bad[-1] + 1])
