"""DC operating point of a network: node voltages that satisfy Kirchhoff's current law.

Some nodes are *fixed* (held by ideal voltage sources: sources, ground, and on the clamped
twin the targets); the rest are unknown. For linear edges the unknown voltages solve the
reduced Laplacian system ``K_uu v_u = -K_uf v_f`` (plus one round of iterative refinement);
for nonlinear edges Newton's method solves the current balance.

The Newton iteration, and why each safeguard is there:

* each node's step is limited to ``max_step_v`` on its own (SPICE's voltage limiting). A node
  whose edges are all saturated with it as the drain, or cut off, has an (almost) zero
  Jacobian row and so an enormous Newton step; scaling the whole step down to it would
  freeze every other node and stall the iteration;
* when the Newton step needs limiting, the chord (Picard) step, the linear solve at the
  present chord conductances ``I / dV``, is tried first: it puts such a node between its
  neighbours, where it belongs;
* each step is halved until the largest node imbalance falls (backtracking); if no fraction
  of either step does, the first is taken whole, as SPICE does;
* the Jacobian gets a rounding-level conductance to ground on its diagonal to stay regular,
  not a GMIN of 1e-12 S, which would swamp nodes held only by deep-subthreshold edges
  (1e-14 S) and make Newton crawl towards them.

:class:`DCSolver` is the general solver used by the netlist tools and the reference for the
fast kernels of :mod:`instruments.sim.kernels`: it factorises densely for small systems and
with a sparse direct solver for large ones, and checks the topology once (a node with no
path to a fixed node is reported by name, never returned as NaN). A node that has a path but
whose conductance to the rest of the network is below :attr:`Tolerances.cutoff_s` at the
solution (held only by cut-off edges, or by edges of zero conductance) has no unique voltage:
:class:`CutOffNodeError` names every such node instead of returning an arbitrary one. A
shunt conductance from each node to a given voltage (``shunt_s``, ``shunt_v``: SPICE's GMIN
from each junction to the bulk, as :mod:`instruments.sim.netlist` adds for a circuit read
from a netlist) makes such nodes determined, as in ngspice.

Units: voltages in V, conductances in S, currents in A.
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
#: Conductance (S) that stands in for an edge in cut-off: the floor of the small-signal
#: conductances Newton's method starts from, and the GMIN the compiled kernels add to their
#: Jacobian diagonal. Residuals never include it.
GMIN_S = 1e-12
#: Halvings of a Newton step tried before the whole (limited) step is taken regardless.
_MAX_HALVINGS = 30
_EPS = np.finfo(float).eps


class FloatingNodeError(ValueError):
    """Some nodes have no conducting path to any fixed-voltage node.

    Attributes:
        nodes: the names of all such nodes, in node order.
    """

    def __init__(self, nodes: list[str]):
        self.nodes = nodes
        shown = ", ".join(nodes[:20]) + (f" and {len(nodes) - 20} more" if len(nodes) > 20 else "")
        super().__init__(f"{len(nodes)} node(s) have no path to a fixed-voltage node: {shown}")


class CutOffNodeError(FloatingNodeError):
    """Some nodes are connected, but only through edges that conduct (almost) nothing at the
    solution (MOSFETs in cut-off, zero conductances): their voltage is not determined.

    Attributes:
        nodes: the names of all such nodes, in node order.
        conductances_s: each one's conductance to the rest of the network at the solution (S).
        floor_s: the floor they fall below (S).
    """

    def __init__(self, nodes: list[str], conductances_s: list[float], floor_s: float):
        self.nodes = nodes
        self.conductances_s = conductances_s
        self.floor_s = floor_s
        shown = ", ".join(f"{n} ({g:.3g} S)" for n, g in zip(nodes[:20], conductances_s))
        more = f" and {len(nodes) - 20} more" if len(nodes) > 20 else ""
        ValueError.__init__(
            self,
            f"{len(nodes)} node(s) held only by cut-off edges have no unique DC voltage (conductance "
            f"to the rest below {floor_s:g} S at the solution): {shown}{more}; raise their gates, "
            "give them a conductance to a fixed node, or pass shunt_s (SPICE's GMIN, which a "
            "netlist read by instruments.sim.netlist gets)",
        )


class ConvergenceError(RuntimeError):
    """Newton's method did not reach the tolerance.

    Attributes:
        iterations: Newton iterations taken.
        node: name of the node with the largest current imbalance at the last iterate.
        residual_a: that imbalance (A).
    """

    def __init__(self, iterations: int, node: str, residual_a: float, reason: str = ""):
        self.iterations = iterations
        self.node = node
        self.residual_a = residual_a
        super().__init__(
            f"DC solve did not converge in {iterations} iterations: worst node {node}, "
            f"residual {residual_a:.3e} A" + (f" ({reason})" if reason else "")
        )


@dataclass(frozen=True)
class Tolerances:
    """Newton stopping rule and safeguards.

    Converged when every unknown node's current imbalance is below ``abs_a + rel * scale``
    (A; ``scale``: the largest edge current), or when the applied step falls below ``step_v``
    (V) with the imbalance within 1000 times that bound (the rounding floor).

    Attributes:
        abs_a: absolute current tolerance (A).
        rel: tolerance relative to the largest edge current.
        step_v: smallest useful step (V).
        max_iter: most Newton iterations.
        max_step_v: largest change of any one node voltage in one iteration (V); each node's
            step is limited on its own, as SPICE limits junction voltages.
        cutoff_s: a node whose conductance to the rest of the network at the solution (the
            diagonal of the Jacobian: the sum of its edges' dI/dV, plus any shunt) is below
            this (S) is reported as :class:`CutOffNodeError`. The default 1e-18 S is
            ``abs_a`` per volt: below it the current tolerance alone moves the node by more
            than 1 V. Deep-subthreshold edges (1e-14 S) stay well above it.
    """

    abs_a: float = 1e-18
    rel: float = 1e-12
    step_v: float = 1e-13
    max_iter: int = 100
    max_step_v: float = 0.5
    cutoff_s: float = 1e-18


class DCSolver:
    """Node voltages of ``network`` with the nodes ``fixed`` held at given voltages.

    Parallel edges (two edges joining the same pair of nodes) are legal: their conductances
    add, as for parallel resistors.

    Args:
        network: the topology.
        fixed: indices of the fixed-voltage nodes (at least one, each once).
        tol: Newton tolerances, for nonlinear devices.

    Attributes:
        unknown: indices of the unknown nodes, in node order.
        dense: True when systems are factorised densely (at most
            :data:`DENSE_MAX_UNKNOWNS` unknowns), else with a sparse LU.
        iterations: Newton iterations of the last nonlinear solve (0 after a linear one).

    Raises:
        FloatingNodeError: some node has no path to a fixed node.
        ValueError: a fixed index is out of range or repeated.
    """

    def __init__(self, network: Network, fixed, tol: Tolerances = Tolerances()):
        self.network = network
        self.tol = tol
        fixed = np.asarray(fixed, dtype=np.int64).ravel()
        if fixed.size == 0:
            raise FloatingNodeError(list(network.nodes))
        if fixed.min() < 0 or fixed.max() >= network.n_nodes:
            raise ValueError(f"fixed node index outside 0..{network.n_nodes - 1}: {fixed.tolist()}")
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
        self._inc = inc.tocsr()  # (E, N)
        self._a_u = inc[:, self.unknown].tocsr()  # (E, U)
        self._a_f = inc[:, fixed].tocsr()  # (E, F)
        self.dense = self.unknown.size <= DENSE_MAX_UNKNOWNS
        self.iterations = 0

    # -- linear edges ---------------------------------------------------------------------
    def _reduced(self, k: np.ndarray):
        kd = sp.diags(k)
        k_uu = (self._a_u.T @ kd @ self._a_u).tocsc()
        k_uf = (self._a_u.T @ kd @ self._a_f).tocsr()
        return k_uu, k_uf

    def solve_linear(self, conductance_s: np.ndarray, v_fixed: np.ndarray, check: bool = True) -> np.ndarray:
        """Node voltages (V) for edge conductances ``conductance_s`` (S, shape (E,)).

        ``v_fixed`` (V) has shape ``(F,)`` or ``(B, F)`` for a batch of B boundary conditions
        sharing one factorisation; the result has shape ``(N,)`` or ``(B, N)``.
        """
        k = np.asarray(conductance_s, float)
        vf = np.asarray(v_fixed, float)
        batch = vf.ndim == 2
        vf2 = vf if batch else vf[None, :]
        self.iterations = 0
        out = np.empty((vf2.shape[0], self.network.n_nodes))
        out[:, self.fixed] = vf2
        if self.unknown.size == 0:
            return out if batch else out[0]
        if check:
            self._check_cut_off(np.abs(k), -np.abs(k))
        k_uu, k_uf = self._reduced(k)
        if self.dense:
            factor = sla.cho_factor(k_uu.toarray())

            def solve(rhs):
                return sla.cho_solve(factor, rhs)
        else:
            lu = spla.splu(k_uu, permc_spec="MMD_AT_PLUS_A")

            def solve(rhs):
                return lu.solve(np.ascontiguousarray(rhs))

        out[:, self.unknown] = solve(-(k_uf @ vf2.T)).T
        # One round of iterative refinement with the residual summed from edge currents:
        # the Laplacian form leaves an imbalance of order eps * (largest conductance) * V,
        # far above the edge currents when conductances span many decades; one round brings
        # it down to the rounding of the node voltages themselves.
        i = k * (self._inc @ out.T).T  # (B, E) edge currents a -> b
        out[:, self.unknown] -= solve(self._a_u.T @ i.T).T
        return out if batch else out[0]

    # -- any edges --------------------------------------------------------------------------
    def residual(self, device: EdgeDevice, state, v: np.ndarray, twin: int = 0) -> np.ndarray:
        """Net current (A) flowing out of every node through the edges, shape (N,).

        Zero at the unknown nodes of a solution; at a fixed node it is the current its
        source delivers into the network.
        """
        e = self.network.edges
        i, _, _ = device.current(state, v[e[:, 0]], v[e[:, 1]], twin)
        return self._net_out(i)

    def _net_out(self, i: np.ndarray) -> np.ndarray:
        e = self.network.edges
        n = self.network.n_nodes
        return np.bincount(e[:, 0], i, n) - np.bincount(e[:, 1], i, n)

    def solve(
        self,
        device: EdgeDevice,
        state,
        v_fixed: np.ndarray,
        twin: int = 0,
        v0: np.ndarray | None = None,
        shunt_s: np.ndarray | None = None,
        shunt_v: np.ndarray | float = 0.0,
        inject_a: np.ndarray | None = None,
    ) -> np.ndarray:
        """Node voltages (V, shape (N,)) for any edge device.

        Linear devices take one factorisation; nonlinear ones take Newton's method started
        from ``v0`` (a previous solution, shape (N,); its fixed entries are replaced by
        ``v_fixed``) or from the linear solution at the small-signal conductances.

        Args:
            shunt_s: ``(N,)`` conductance (S, >= 0) from each node to ``shunt_v`` (V, scalar
                or ``(N,)``), on top of the edges: SPICE's GMIN from each junction to the
                bulk. None for none.
            inject_a: ``(N,)`` current (A) driven into each node from outside the network
                (independent current sources); entries at fixed nodes are ignored. None
                for none.

        Raises:
            ConvergenceError: Newton's method did not converge.
            CutOffNodeError: some node's conductance to the rest is below ``tol.cutoff_s`` at
                the solution; every such node is named.
        """
        vf = np.asarray(v_fixed, float)
        shunt = None
        if shunt_s is not None:
            g = np.broadcast_to(np.asarray(shunt_s, float), (self.network.n_nodes,))[self.unknown]
            if np.any(~np.isfinite(g) | (g < 0)):
                raise ValueError("shunt_s must be finite and >= 0 S")
            ref = np.broadcast_to(np.asarray(shunt_v, float), (self.network.n_nodes,))[self.unknown]
            shunt = (np.ascontiguousarray(g), np.ascontiguousarray(ref))
        if inject_a is not None:
            inj = np.broadcast_to(np.asarray(inject_a, float), (self.network.n_nodes,))[self.unknown]
            if not np.all(np.isfinite(inj)):
                raise ValueError("inject_a must be finite (A)")
            shunt = shunt if shunt is not None else (np.zeros(self.unknown.size), np.zeros(self.unknown.size))
            # a current source is a shunt's offset: g (v - ref) - I = g (v - (ref + I / g)) in
            # form; carried as its own term so that g may be 0
            shunt = (shunt[0], shunt[1], np.ascontiguousarray(inj))
        if device.linear and shunt is None:
            return self.solve_linear(device.conductance(state, twin=twin), vf)
        if v0 is None:
            v = self.solve_linear(np.maximum(device.conductance(state, twin=twin), GMIN_S), vf, check=False)
        else:
            v = np.array(v0, dtype=float, copy=True)
            v[self.fixed] = vf
        v = self._newton(device, state, v, twin, shunt)
        e = self.network.edges
        _, ga, gb = device.current(state, v[e[:, 0]], v[e[:, 1]], twin)
        self._check_cut_off(ga, gb, None if shunt is None else shunt[0])
        return v

    def _check_cut_off(self, ga: np.ndarray, gb: np.ndarray, shunt_u: np.ndarray | None = None) -> None:
        """Raise :class:`CutOffNodeError` for every unknown node whose Jacobian diagonal (its
        edges' dI/dV at the solution, plus the shunt) is below ``tol.cutoff_s``."""
        if self.unknown.size == 0:
            return
        e = self.network.edges
        n = self.network.n_nodes
        diag = (np.bincount(e[:, 0], np.abs(ga), n) + np.bincount(e[:, 1], np.abs(gb), n))[self.unknown]
        if shunt_u is not None:
            diag = diag + shunt_u
        bad = np.flatnonzero(~(diag >= self.tol.cutoff_s))
        if bad.size:
            raise CutOffNodeError(
                [self.network.nodes[self.unknown[i]] for i in bad], [float(diag[i]) for i in bad],
                self.tol.cutoff_s,
            )

    def _newton(self, device, state, v, twin, shunt=None):
        e = self.network.edges
        a, b = e[:, 0], e[:, 1]
        u = self.unknown
        pa, pb = self.pos[a], self.pos[b]
        tol = self.tol
        lim = tol.max_step_v

        def evaluate(x):
            """Imbalance at the unknown nodes (A), its max norm, the largest edge current (A)
            and the edge derivatives (S)."""
            i, ga, gb = device.current(state, x[a], x[b], twin)
            f = self._net_out(i)[u]
            if shunt is not None:
                f = f + shunt[0] * (x[u] - shunt[1])
                if len(shunt) == 3:
                    f = f - shunt[2]
            return f, float(np.max(np.abs(f), initial=0.0)), float(np.max(np.abs(i), initial=0.0)), ga, gb

        def converged(f_norm, scale, slack=1.0):
            return f_norm <= slack * (tol.abs_a + tol.rel * scale)

        def fail(iterations, f, f_norm, reason=""):
            worst = int(np.argmax(np.abs(f))) if f.size else 0
            name = self.network.nodes[u[worst]] if u.size else "-"
            return ConvergenceError(iterations, name, f_norm, reason)

        def solve(ga, gb, f):
            """-J^-1 f, with a rounding-level conductance to ground on the diagonal: enough to
            keep J regular, too small to slow a node held only by subthreshold edges (a GMIN
            of 1e-12 S would swamp their 1e-14 S and make Newton crawl)."""
            g_max = max(float(np.max(np.abs(ga), initial=0.0)), float(np.max(np.abs(gb), initial=0.0)))
            diag = _EPS * max(g_max, GMIN_S) + (0.0 if shunt is None else shunt[0])
            return -self._lin_solve(self._jacobian(pa, pb, ga, gb, diag), f)

        now = evaluate(v)
        for it in range(tol.max_iter):
            f, f_norm, scale, ga, gb = now
            self.iterations = it
            if converged(f_norm, scale):
                return v
            self.iterations = it + 1
            newton = solve(ga, gb, f)

            def newton_limited():
                # Limit each node on its own, as SPICE limits junction voltages; scaling the
                # whole step down to its largest entry would freeze every other node.
                return np.clip(newton, -lim, lim)

            def chord():
                # the Picard step: the linear solve at the present chord conductances I/dV
                k = np.maximum(device.conductance(state, v[a], v[b], twin), 0.0)
                return np.clip(solve(k, -k, f), -lim, lim)

            # A Newton step beyond the limit comes from a node whose edges are all saturated
            # (as its drain) or cut off: its Jacobian row is almost zero. The chord step knows
            # where such a node belongs, between its neighbours; try it first there.
            if np.max(np.abs(newton), initial=0.0) > lim:
                candidates = (chord, newton_limited)
            else:
                candidates = (newton_limited, chord)
            first = None
            for make in candidates:
                dv = make()
                first = dv if first is None else first
                big = float(np.max(np.abs(dv), initial=0.0))
                # backtracking: halve the step until the residual falls
                step = 1.0
                for _ in range(_MAX_HALVINGS + 1):
                    trial = v.copy()
                    trial[u] += step * dv
                    after = evaluate(trial)
                    if after[1] < f_norm or step * big < tol.step_v:
                        break
                    step *= 0.5
                if after[1] < f_norm:
                    break
            if after[1] < f_norm:
                v, now = trial, after
                if step * big < tol.step_v and converged(after[1], max(after[2], 1e-30), 1e3):
                    return v  # the rounding floor
                continue
            if float(np.max(np.abs(first), initial=0.0)) < tol.step_v:
                if converged(f_norm, max(scale, 1e-30), 1e3):
                    return v  # the rounding floor
                raise fail(it + 1, f, f_norm, f"stalled: step below {tol.step_v:g} V")
            # No fraction of either step lowers the residual: take the first one whole, as
            # SPICE does, rather than creep along it.
            v = v.copy()
            v[u] += first
            now = evaluate(v)
        f, f_norm, scale, _, _ = now
        self.iterations = tol.max_iter
        if converged(f_norm, scale):
            return v
        raise fail(tol.max_iter, f, f_norm)

    def _jacobian(self, pa, pb, ga, gb, gmin_s=GMIN_S):
        """d(net current out of unknown node)/d(unknown voltage), with ``gmin_s`` (S, scalar
        or one per unknown) added on the diagonal."""
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
        vals.append(np.broadcast_to(np.asarray(gmin_s, float), (nu,)))
        return sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nu, nu)
        )

    def _lin_solve(self, jac, f):
        if self.dense:
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
    tol: Tolerances = Tolerances(),
    shunt_s: np.ndarray | None = None,
    shunt_v: np.ndarray | float = 0.0,
    inject_a: np.ndarray | None = None,
) -> np.ndarray:
    """One-shot DC solve: node voltages (V) with the named nodes held at ``fixed_v`` (V); the
    shunts and injected currents as in :meth:`DCSolver.solve`."""
    idx = np.array([network.index(n) for n in fixed_v], dtype=np.int64)
    return DCSolver(network, idx, tol).solve(
        device, state, np.array(list(fixed_v.values()), float), twin, shunt_s=shunt_s, shunt_v=shunt_v,
        inject_a=inject_a,
    )
