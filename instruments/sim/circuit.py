"""DC operating point of a network: node voltages that satisfy Kirchhoff's current law.

Some nodes are *fixed* (held by ideal voltage sources: sources, ground, and on the clamped
twin the targets); the rest are unknown. For linear edges the unknown voltages solve the
reduced Laplacian system ``K_uu v_u = -K_uf v_f``; for nonlinear edges Newton's method solves
the current balance, with step limiting and backtracking as safeguards.

:class:`DCSolver` is the general solver used by the netlist tools and as the reference for
the fast kernels of :mod:`instruments.sim.twin`: it factorises densely for small systems and
with a sparse direct solver for large ones, and checks the topology once (a node with no
path to a fixed node is reported by name, never returned as NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components

from .edges import EdgeDevice
from .network import Network

#: Systems with at most this many unknowns are factorised densely.
DENSE_MAX_UNKNOWNS = 200
#: Conductance (S) added from every unknown node to ground in the Newton Jacobian only, so
#: that an edge in cut-off cannot make it singular; the residual stays exact.
GMIN_S = 1e-12


class FloatingNodeError(ValueError):
    """Some nodes have no conducting path to any fixed-voltage node."""

    def __init__(self, nodes: list[str]):
        self.nodes = nodes
        shown = ", ".join(nodes[:20]) + (f" and {len(nodes) - 20} more" if len(nodes) > 20 else "")
        super().__init__(f"{len(nodes)} node(s) have no path to a fixed-voltage node: {shown}")


class ConvergenceError(RuntimeError):
    """Newton's method did not reach the tolerance."""

    def __init__(self, iterations: int, node: str, residual_a: float):
        self.iterations = iterations
        self.node = node
        self.residual_a = residual_a
        super().__init__(
            f"DC solve did not converge in {iterations} iterations: worst node {node}, "
            f"residual {residual_a:.3e} A"
        )


@dataclass(frozen=True)
class Tolerances:
    """Newton stopping rule: every node's current imbalance below ``abs_a + rel * scale``
    (``scale``: the largest edge current), or the last step below ``step_v`` volts."""

    abs_a: float = 1e-18
    rel: float = 1e-12
    step_v: float = 1e-13
    max_iter: int = 100
    max_step_v: float = 0.5


class DCSolver:
    """Node voltages of ``network`` with the nodes ``fixed`` held at given voltages.

    Args:
        network: the topology.
        fixed: indices of the fixed-voltage nodes (at least one).

    Raises:
        FloatingNodeError: some node has no path to a fixed node.
    """

    def __init__(self, network: Network, fixed, tol: Tolerances = Tolerances()):
        self.network = network
        self.tol = tol
        fixed = np.asarray(fixed, dtype=np.int64).ravel()
        if fixed.size == 0:
            raise FloatingNodeError(list(network.nodes))
        if np.unique(fixed).size != fixed.size:
            raise ValueError("a node is fixed twice")
        self.fixed = fixed
        is_fixed = np.zeros(network.n_nodes, bool)
        is_fixed[fixed] = True
        self.unknown = np.flatnonzero(~is_fixed)
        self.pos = np.full(network.n_nodes, -1, dtype=np.int64)
        self.pos[self.unknown] = np.arange(self.unknown.size)
        self.fpos = np.full(network.n_nodes, -1, dtype=np.int64)
        self.fpos[fixed] = np.arange(fixed.size)
        check_floating(network, fixed)
        inc = network.incidence().tocsc()
        self._a_u = inc[:, self.unknown].tocsr()  # (E, U)
        self._a_f = inc[:, fixed].tocsr()  # (E, F)
        self._dense = self.unknown.size <= DENSE_MAX_UNKNOWNS

    # -- linear edges ---------------------------------------------------------------------
    def _reduced(self, k: np.ndarray):
        kd = sp.diags(k)
        k_uu = (self._a_u.T @ kd @ self._a_u).tocsc()
        k_uf = (self._a_u.T @ kd @ self._a_f).tocsr()
        return k_uu, k_uf

    def solve_linear(self, conductance_s: np.ndarray, v_fixed: np.ndarray) -> np.ndarray:
        """Node voltages (V) for edge conductances ``conductance_s`` (S, shape (E,)).

        ``v_fixed`` (V) has shape ``(F,)`` or ``(B, F)`` for a batch of B boundary conditions
        sharing one factorisation; the result has shape ``(N,)`` or ``(B, N)``.
        """
        k = np.asarray(conductance_s, float)
        vf = np.asarray(v_fixed, float)
        batch = vf.ndim == 2
        vf2 = vf if batch else vf[None, :]
        k_uu, k_uf = self._reduced(k)
        rhs = -(k_uf @ vf2.T)  # (U, B)
        if self.unknown.size == 0:
            vu = np.zeros((0, vf2.shape[0]))
        elif self._dense:
            vu = sla.cho_solve(sla.cho_factor(k_uu.toarray()), rhs)
        else:
            vu = spla.splu(k_uu, permc_spec="MMD_AT_PLUS_A").solve(np.ascontiguousarray(rhs))
        out = np.empty((vf2.shape[0], self.network.n_nodes))
        out[:, self.unknown] = vu.T
        out[:, self.fixed] = vf2
        return out if batch else out[0]

    # -- any edges --------------------------------------------------------------------------
    def residual(self, device: EdgeDevice, state, v: np.ndarray, twin: int = 0) -> np.ndarray:
        """Net current (A) flowing out of every node through the edges, shape (N,)."""
        e = self.network.edges
        i, _, _ = device.current(state, v[e[:, 0]], v[e[:, 1]], twin)
        return np.bincount(e[:, 0], i, self.network.n_nodes) - np.bincount(e[:, 1], i, self.network.n_nodes)

    def solve(
        self,
        device: EdgeDevice,
        state,
        v_fixed: np.ndarray,
        twin: int = 0,
        v0: np.ndarray | None = None,
    ) -> np.ndarray:
        """Node voltages (V, shape (N,)) for any edge device.

        Linear devices take one factorisation; nonlinear ones take Newton's method started
        from ``v0`` (a previous solution, shape (N,)) or from the linear solution at the
        small-signal conductances.
        """
        vf = np.asarray(v_fixed, float)
        if device.linear:
            return self.solve_linear(device.conductance(state, twin=twin), vf)
        if v0 is None:
            v = self.solve_linear(np.maximum(device.conductance(state, twin=twin), GMIN_S), vf)
        else:
            v = np.array(v0, dtype=float, copy=True)
            v[self.fixed] = vf
        return self._newton(device, state, v, twin)

    def _newton(self, device, state, v, twin):
        e = self.network.edges
        a, b = e[:, 0], e[:, 1]
        n = self.network.n_nodes
        u = self.unknown
        pa, pb = self.pos[a], self.pos[b]
        tol = self.tol
        f_norm = np.inf
        for it in range(1, tol.max_iter + 1):
            i, ga, gb = device.current(state, v[a], v[b], twin)
            f = (np.bincount(a, i, n) - np.bincount(b, i, n))[u]
            scale = float(np.max(np.abs(i), initial=0.0))
            f_norm = float(np.max(np.abs(f), initial=0.0))
            if f_norm <= tol.abs_a + tol.rel * scale:
                return v
            jac = self._jacobian(pa, pb, ga, gb)
            dv = -self._lin_solve(jac, f)
            big = float(np.max(np.abs(dv), initial=0.0))
            if big > tol.max_step_v:
                dv *= tol.max_step_v / big
            # backtracking: halve the step until the residual falls
            step = 1.0
            for _ in range(30):
                trial = v.copy()
                trial[u] += step * dv
                ti, _, _ = device.current(state, trial[a], trial[b], twin)
                tf = (np.bincount(a, ti, n) - np.bincount(b, ti, n))[u]
                if np.max(np.abs(tf), initial=0.0) < f_norm or step * big < tol.step_v:
                    break
                step *= 0.5
            v = trial
            if step * big < tol.step_v:
                i, _, _ = device.current(state, v[a], v[b], twin)
                f = (np.bincount(a, i, n) - np.bincount(b, i, n))[u]
                f_norm = float(np.max(np.abs(f), initial=0.0))
                if f_norm <= 1e3 * (tol.abs_a + tol.rel * max(scale, 1e-30)):
                    return v
        worst = int(np.argmax(np.abs(f))) if f.size else 0
        raise ConvergenceError(tol.max_iter, self.network.nodes[u[worst]], f_norm)

    def _jacobian(self, pa, pb, ga, gb):
        """d(net current out of unknown node)/d(unknown voltage), with GMIN on the diagonal."""
        nu = self.unknown.size
        rows, cols, vals = [], [], []
        # current i_ab leaves a and enters b
        for r_pos, sign in ((pa, 1.0), (pb, -1.0)):
            for c_pos, g in ((pa, ga), (pb, gb)):
                m = (r_pos >= 0) & (c_pos >= 0)
                rows.append(r_pos[m])
                cols.append(c_pos[m])
                vals.append(sign * g[m])
        rows.append(np.arange(nu))
        cols.append(np.arange(nu))
        vals.append(np.full(nu, GMIN_S))
        return sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nu, nu)
        )

    def _lin_solve(self, jac, f):
        if self._dense:
            return sla.lu_solve(sla.lu_factor(jac.toarray()), f)
        return spla.splu(jac).solve(f)


def check_floating(network: Network, fixed) -> None:
    """Raise :class:`FloatingNodeError` naming every node with no path to a fixed node."""
    n = network.n_nodes
    e = network.edges
    graph = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    grounded = np.zeros(label.max() + 1, bool)
    grounded[label[np.asarray(fixed, dtype=np.int64)]] = True
    bad = np.flatnonzero(~grounded[label])
    if bad.size:
        raise FloatingNodeError([network.nodes[i] for i in bad])


def solve_dc(
    network: Network,
    device: EdgeDevice,
    state,
    fixed_v: dict[str, float],
    twin: int = 0,
) -> np.ndarray:
    """One-shot DC solve: node voltages (V) with the named nodes held at ``fixed_v`` (V)."""
    idx = np.array([network.index(n) for n in fixed_v], dtype=np.int64)
    return DCSolver(network, idx).solve(device, state, np.array(list(fixed_v.values()), float), twin)
