"""Node capacitance on the simulated bench: the twins settle after the DAQ changes their sources.

Every free node of a real twin network has a capacitance to ground (its wiring, the devices'
terminals, the boards' inputs: tens of picofarads to nanofarads on a breadboard), so after
the DAQ writes new sources (or clamps) the nodes move to their new DC voltages with time
constants of about ``C / G``; the DAQ reads, and the boards sample at the learn pulse, after
the wiring's ``settle_s``. If the network has not settled by then, they read where the
nodes are, not where they are going. :class:`SettlingNodes` gives
:class:`~instruments.sim.bench.SimBench` those voltages: each twin's node voltages at the
bench's time (its clock :attr:`~instruments.sim.bench.SimBench.time_s`), integrated from
where they were at the previous look with the sources and the devices of now:

* before every DAQ write both twins are brought to the write's time with the old sources
  (the sources step at the write, their nodes at once: a DAQ output is a stiff source);
* at a look (a read, the learn pulse, a bus command, a probe) the twin is integrated from
  its last look to now by :func:`~instruments.sim.transient.simulate` (the trapezoidal rule
  after a backward-Euler first step, every free node of capacitance ``C``), in steps of at
  most a tenth of the slowest time constant (``STEPS_PER_TAU``; ``MIN_STEPS`` to
  ``MAX_STEPS`` steps);
* unless it has *settled*: when the largest deviation from the DC solution, times
  ``sqrt(n) exp(-t / tau)`` (``tau = C / lambda_min``, the slowest time constant of the
  network linearised at its DC solution and at its start), is within ``SETTLED_V`` (1 nV,
  below every reading's resolution on the bench: the boards' ADCs read whole microvolts,
  the DAQ's inputs tens of microvolts per code), the nodes are at the DC solution, exactly:
  with a small capacitance the bench reads what it reads without one, to the last bit.

The devices' state is the one at the look (a learn pulse changes the gates during the pulse;
the network settles to them from the pulse on). Units: V, S, F, s.
"""

from __future__ import annotations

import math

import numpy as np

from .edges import EdgeDevice
from .network import Network
from .transient import simulate

__all__ = ["SettlingNodes", "SETTLED_V", "STEPS_PER_TAU", "MIN_STEPS", "MAX_STEPS", "NODE_CAPACITANCE_RANGE_F"]

#: The deviation from the DC solution (V) within which a twin counts as settled.
SETTLED_V = 1e-9
#: Integration steps per slowest time constant, and the fewest and most from one look to the next.
STEPS_PER_TAU, MIN_STEPS, MAX_STEPS = 10, 16, 400
#: The node capacitances a bench may have (F): 1 fF (a chip's node) to 1 mF.
NODE_CAPACITANCE_RANGE_F = (1e-15, 1e-3)


class SettlingNodes:
    """Both twins' node voltages in time, every free node with capacitance ``c_node_f``.

    Args:
        network: the twins' network; ``device`` their edges (both twins' parameters).
        c_node_f: the capacitance of every node to ground (F, within
            :data:`NODE_CAPACITANCE_RANGE_F`).
        fixed: nodes held by the DAQ on both twins (sources, then ground); the clamped twin
            also holds ``targets``.

    Attributes:
        v: per twin (0 free, 1 clamped) the node voltages at the last look (V, (N,)), or
            None before the first (the bench starts settled).
        t_s: per twin the time of the last look (s, the bench's clock).
    """

    def __init__(self, network: Network, device: EdgeDevice, c_node_f: float, fixed: np.ndarray,
                 targets: np.ndarray):
        lo, hi = NODE_CAPACITANCE_RANGE_F
        if not lo <= c_node_f <= hi:
            raise ValueError(f"node capacitance {c_node_f!r} F is outside {lo:g}..{hi:g} F")
        self.network, self.device, self.c_node_f = network, device, float(c_node_f)
        n = network.n_nodes
        self._fixed = (np.asarray(fixed, np.int64), np.r_[fixed, targets].astype(np.int64))
        self._free = tuple(np.setdiff1d(np.arange(n), f) for f in self._fixed)
        self.v: list[np.ndarray | None] = [None, None]
        self.t_s = [0.0, 0.0]

    def slowest_tau_s(self, twin: int, state: np.ndarray, v: np.ndarray) -> float:
        """The slowest time constant (s) of ``twin`` linearised at node voltages ``v``: ``C``
        over the smallest real part of the eigenvalues of its free nodes' conductance
        matrix (inf when that is not positive)."""
        free = self._free[twin]
        if free.size == 0:
            return 0.0
        a, b = self.network.edges[:, 0], self.network.edges[:, 1]
        _, ga, gb = self.device.current(state, v[a], v[b], twin=twin)
        where = np.full(self.network.n_nodes, -1)
        where[free] = np.arange(free.size)
        jac = np.zeros((free.size, free.size))
        ia, ib = where[a], where[b]
        for rows, cols, vals in ((ia, ia, ga), (ia, ib, gb), (ib, ia, -ga), (ib, ib, -gb)):
            ok = (rows >= 0) & (cols >= 0)
            np.add.at(jac, (rows[ok], cols[ok]), vals[ok])
        lam = float(np.min(np.linalg.eigvals(jac).real))
        return self.c_node_f / lam if lam > 0 else math.inf

    def at(self, twin: int, v_dc: np.ndarray, v_fixed: np.ndarray, state: np.ndarray, now_s: float) -> np.ndarray:
        """``twin``'s node voltages (V, (N,)) at ``now_s`` (s): from the last look, settling
        towards ``v_dc`` (its DC solution now) with its fixed nodes at ``v_fixed`` (V, in
        the order of ``fixed``, then the targets on the clamped twin) and the edges at
        ``state``. The array returned is not changed by later looks."""
        v = self.v[twin]
        if v is None:
            self.v[twin], self.t_s[twin] = v_dc.copy(), now_s
            return self.v[twin]
        dt = now_s - self.t_s[twin]
        fixed, free = self._fixed[twin], self._free[twin]
        if not dt > 0:  # no time: the sources step, the capacitors hold the free nodes
            if np.array_equal(v[fixed], v_fixed):
                return v
            v = v.copy()
            v[fixed] = v_fixed
        else:
            self.t_s[twin] = now_s
            dev = float(np.max(np.abs(v[free] - v_dc[free]), initial=0.0))
            if dev == 0.0 and np.array_equal(v[fixed], v_dc[fixed]):
                return v
            tau = max(self.slowest_tau_s(twin, state, v_dc), self.slowest_tau_s(twin, state, v))
            bound = dev * math.sqrt(free.size) * math.exp(-dt / tau) if math.isfinite(tau) else math.inf
            if bound <= SETTLED_V:
                v = v_dc.copy()
            else:
                steps = MAX_STEPS if not math.isfinite(tau) else min(MAX_STEPS, max(
                    MIN_STEPS, math.ceil(STEPS_PER_TAU * dt / tau)))
                v = simulate(self.network, self.device, state, fixed, v_fixed, dt, dt / steps,
                             c_node_f=self.c_node_f, v0=v, twin=twin).v[-1].copy()
        self.v[twin] = v
        return v

    def save(self) -> dict:
        """The last looks: times and node voltages (None before the first)."""
        return {"t_s": list(self.t_s), "free_v": None if self.v[0] is None else self.v[0].copy(),
                "clamped_v": None if self.v[1] is None else self.v[1].copy()}

    def loader(self, saved: dict):
        """Check what :meth:`save` returned and return what restores it."""
        n = self.network.n_nodes
        vs = []
        for name in ("free_v", "clamped_v"):
            value = saved[name]
            if value is not None:
                value = np.asarray(value, float)
                if value.shape != (n,):
                    raise ValueError(f"saved settling {name} has shape {value.shape}, this bench needs {(n,)}")
            vs.append(value)
        t_s = [float(t) for t in saved["t_s"]]

        def load() -> None:
            self.v, self.t_s = vs, t_s
        return load

    def watch(self, bench) -> None:
        """Bring both twins of ``bench`` to its time before every write of its DAQ (with the
        sources of before), so that a change of sources starts from where the nodes are;
        ``bench._look_before_write()`` does it (and keeps the solver's warm starts as they
        were, so that a settled network solves as one without capacitance, to the bit)."""
        write = bench.daq._write

        def _write(values_v) -> None:
            bench._look_before_write()
            write(values_v)

        bench.daq._write = _write
