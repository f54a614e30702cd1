"""Compiled solve kernels for the training step of a twin network (the hot path).

Two solvers, both built once per network and reused for every step:

:class:`LinearTwinSolver` (linear edges: resistors, digipots)
    A sparse up-looking LDL^T factorisation (the elimination-tree algorithm of CSparse /
    QDLDL), written in numba. The unknowns of the free state are ordered as
    ``[hidden nodes in a fill-reducing order..., targets]``. The clamped state's unknowns are
    the hidden nodes only, so its reduced Laplacian is the *leading principal block* of the
    free state's, and its LDL^T factor is the leading block of the free factor: one numeric
    factorisation per step serves both twins when they have equal conductances. The symbolic
    analysis (ordering, elimination tree, pattern of L, the row patterns that drive the
    up-looking numeric phase) and a scatter map from edge conductances to matrix entries are
    computed in the constructor; every buffer is preallocated there.

:class:`MosfetTwinSolver` (n-MOSFET edges, :class:`~instruments.sim.edges.Mosfet`)
    Newton's method on the current balance (the equations of ``Mosfet.current``, with the
    optional subthreshold extension), dense LU with partial pivoting of the reduced Jacobian,
    GMIN on the Jacobian diagonal only, step limiting and backtracking, each state
    warm-started from its own previous solution. Compiled in numba for small networks; above
    ``dense_max`` unknowns the same iteration runs with the Jacobian assembled into a fixed
    sparse pattern and factorised by scipy's ``splu``.

Choices (measured on this project's 2-core machine, benchmarks/bench_kernels.py):

* Ordering: the constructor computes the elimination-tree column counts of every candidate
  (natural, reverse Cuthill-McKee, METIS nested dissection via pymetis, AMD as computed by
  qdldl) and keeps the one with the fewest factorisation flops; it picks AMD on small and
  random graphs and METIS on large grids, in each case also the fastest when timed.
* One up-looking LDL^T for all sizes: with unsigned indices in the inner loops (numba then
  drops its negative-index wraparound and LLVM vectorises) and a contiguous path for the
  trailing block of dense columns, it beats scipy's splu (SuperLU) and qdldl at every size
  tried, 300 x 300 grid included (factor 0.11 s vs splu 0.28-0.35 s and qdldl 0.14 s), and
  serves both states, so no supernodal code or response trick is needed.
* The integer structure and the float buffers sit in two packed arrays, so that a compiled
  call takes few arguments: a numba dispatch costs ~0.2 us plus ~45 ns per array.

Both agree with :class:`~instruments.sim.circuit.DCSolver` (tests/test_kernels.py).
Voltages are in V, conductances in S, currents in A. Arrays returned by the solve methods are
internal buffers, overwritten by the next call of the same method: copy what you keep.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numba import njit
from scipy.sparse.csgraph import connected_components, reverse_cuthill_mckee

from .circuit import GMIN_S, ConvergenceError, CutOffNodeError, FloatingNodeError, Tolerances
from .edges import GEN2_S_A_PER_V2, GEN2_VT_V, SUBTHRESHOLD_V_PER_DECADE, mosfet_current

__all__ = ["LinearTwinSolver", "MosfetTwinSolver", "SingularMatrixError", "ORDERINGS"]

#: Fill-reducing orderings tried for the hidden nodes (the targets always go last).
ORDERINGS = ("natural", "rcm", "metis", "amd")
#: Systems with at most this many unknowns try every ordering; above it, "natural" and
#: "rcm" (band orderings, hopeless on 2-D meshes) are skipped.
_SMALL_UNKNOWNS = 2000


class SingularMatrixError(ValueError):
    """A pivot of the LDL^T factorisation was not positive (zero, negative or non-finite
    conductances, or a node cut off by zero conductances)."""


# =========================================================================================
# numba kernels: sparse LDL^T
# =========================================================================================


@njit(cache=True)
def _etree_counts(n, ap, ai, parent, lnz, work):
    """Elimination tree and column counts of L for the upper-triangular CSC pattern
    (ap, ai) of an n x n symmetric matrix; returns nnz(L) (strictly lower part)."""
    for i in range(n):
        work[i] = -1
        lnz[i] = 0
        parent[i] = -1
    for j in range(n):
        work[j] = j
        for p in range(ap[j], ap[j + 1]):
            i = ai[p]
            while i < j and work[i] != j:
                if parent[i] == -1:
                    parent[i] = j
                lnz[i] += 1
                work[i] = j
                i = parent[i]
    total = 0
    for i in range(n):
        total += lnz[i]
    return total


@njit(cache=True)
def _pattern(n, nlead, ap, ai, parent, lp, li, rp, rj, rpos, lend_lead):
    """Pattern of L (columns, rows ascending) and of its rows (row k: the columns j < k with
    L[k, j] != 0, ascending, and where L[k, j] lives in li/lx). ``lend_lead[j]`` is the end
    of column j's entries with row < nlead (the leading block)."""
    work = np.full(n, -1, np.int64)
    nextp = lp[:n].copy()
    stack = np.empty(n, np.int64)
    for j in range(n):
        lend_lead[j] = lp[j]
    q = 0
    for k in range(n):
        rp[k] = q
        work[k] = k
        top = 0
        for p in range(ap[k], ap[k + 1]):
            i = ai[p]
            while i < k and work[i] != k:
                work[i] = k
                stack[top] = i
                top += 1
                i = parent[i]
        row = np.sort(stack[:top])
        for t in range(top):
            j = row[t]
            rj[q] = j
            rpos[q] = nextp[j]
            li[nextp[j]] = k
            nextp[j] += 1
            if k < nlead:
                lend_lead[j] = nextp[j]
            q += 1
    rp[n] = q


@njit(cache=True)
def _factor(nrows, tail, k, kbuf, emap, ap, ai, ax, lp, li, rp, rrow, lx, dinv, y):
    """Assemble the reduced Laplacian for conductances k (copied into kbuf) and factorise
    its leading nrows x nrows block as L D L^T, up-looking; stores L (unit diagonal
    implied) in lx and 1/D in dinv. ``emap`` (3, E): each edge's diagonal entries at
    terminals a, b and its off-diagonal entry in ax (-1: none). ``rrow`` (2, nnz(L)): for
    row k of L, its columns j (ascending) and where L[k, j] lives. Columns from ``tail`` on
    are dense in L. Returns -1, or the row of the first non-positive pivot."""
    for p in range(ax.size):
        ax[p] = 0.0
    ma = emap[0]
    mb = emap[1]
    mo = emap[2]
    for e in range(k.size):
        ke = k[e]
        kbuf[e] = ke
        if ma[e] >= 0:
            ax[ma[e]] += ke
        if mb[e] >= 0:
            ax[mb[e]] += ke
        if mo[e] >= 0:
            ax[mo[e]] -= ke
    rj = rrow[0]
    rpos = rrow[1]
    for kk in range(nrows):
        dk = 0.0
        for p in range(ap[kk], ap[kk + 1]):
            i = ai[p]
            if i == kk:
                dk += ax[p]
            else:
                y[i] += ax[p]
        for q in range(rp[kk], rp[kk + 1]):
            uq = np.uint64(q)
            j = rj[uq]
            pend = rpos[uq]
            yj = y[j]
            y[j] = 0.0
            # unsigned indices: no negative-index wraparound, so LLVM can vectorise
            if j >= tail:
                # dense trailing columns: rows j+1.. are contiguous, a plain (SIMD) axpy
                b0 = np.uint64(lp[j])
                r0 = np.uint64(j + 1)
                for t in range(kk - j - 1):
                    ut = np.uint64(t)
                    y[r0 + ut] -= lx[b0 + ut] * yj
            else:
                for p in range(lp[j], pend):
                    up = np.uint64(p)
                    y[np.uint64(li[up])] -= lx[up] * yj
            lkj = yj * dinv[j]
            lx[pend] = lkj
            dk -= lkj * yj
        if not (dk > 0.0 and dk < np.inf):
            for i in range(y.size):
                y[i] = 0.0
            return kk
        dinv[kk] = 1.0 / dk
    return -1


@njit(cache=True)
def _ldl_solve(n, lp, lend, li, lx, dinv, x):
    """x <- (L D L^T)^-1 x for the leading n x n block (column j ends at lend[j])."""
    for j in range(n):
        xj = x[j]
        if xj != 0.0:
            for p in range(lp[j], lend[j]):
                up = np.uint64(p)
                x[np.uint64(li[up])] -= lx[up] * xj
    for j in range(n):
        x[j] *= dinv[j]
    for j in range(n - 1, -1, -1):
        s = x[j]
        for p in range(lp[j], lend[j]):
            up = np.uint64(p)
            s -= lx[up] * x[np.uint64(li[up])]
        x[j] = s


@njit(cache=True)
def _solve_free(nu, lp, li, lx, dinv, kbuf, vf, bnd, perm, fixed, x, v):
    """Free state: right-hand side from the edges to fixed nodes (``bnd`` (3, nb): unknown
    position, fixed index, edge), LDL^T solve, scatter into the node vector v."""
    for i in range(nu):
        x[i] = 0.0
    bu = bnd[0]
    bf = bnd[1]
    be = bnd[2]
    for c in range(bu.size):
        x[bu[c]] += kbuf[be[c]] * vf[bf[c]]
    _ldl_solve(nu, lp, lp[1:], li, lx, dinv, x)
    for i in range(nu):
        v[perm[i]] = x[i]
    for i in range(fixed.size):
        v[fixed[i]] = vf[i]


@njit(cache=True)
def _solve_clamped(nh, lp, lend, li, lx, dinv, kbuf, vf, vt, nb_h, bnd, tbnd, perm, fixed, targets, x, v):
    """Clamped state on the leading (hidden) block: right-hand side from the edges from
    hidden nodes to fixed nodes (the first nb_h of ``bnd``) and to targets (``tbnd`` (3, nt):
    hidden position, target index, edge)."""
    for i in range(nh):
        x[i] = 0.0
    bu = bnd[0]
    bf = bnd[1]
    be = bnd[2]
    for c in range(nb_h):
        x[bu[c]] += kbuf[be[c]] * vf[bf[c]]
    tu = tbnd[0]
    tt = tbnd[1]
    te = tbnd[2]
    for c in range(tu.size):
        x[tu[c]] += kbuf[te[c]] * vt[tt[c]]
    _ldl_solve(nh, lp, lend, li, lx, dinv, x)
    for i in range(nh):
        v[perm[i]] = x[i]
    for i in range(fixed.size):
        v[fixed[i]] = vf[i]
    for i in range(targets.size):
        v[targets[i]] = vt[i]


# -- packed entry points ----------------------------------------------------------------------
# A numba dispatch costs ~0.2 us plus ~45 ns per array argument; at 16 nodes that is most of
# a solve. The solver therefore keeps its integer structure in one int64 buffer and its
# floating-point buffers in one float64 buffer, and the entry points below take those two,
# a table of offsets (``meta``) and the per-call arrays only.

_INT_FIELDS = ("lp", "li", "rp", "rrow", "lend_h", "emap", "ap", "ai", "bnd", "tbnd", "perm", "fixed", "targets")
_FLOAT_FIELDS = ("ax", "lx", "dinv", "lx_c", "dinv_c", "kf", "kc", "y", "x", "xb")
(_LP, _LI, _RP, _RROW, _LEND, _EMAP, _AP, _AI, _BND, _TBND, _PERM, _FIXED, _TARGETS) = range(13)
(_AX, _LX, _DINV, _LXC, _DINVC, _KF, _KC, _Y, _X, _XB) = range(10)
_NI = len(_INT_FIELDS)
_NF = len(_FLOAT_FIELDS)
_M_NU = 2 * _NI + 2 * _NF  # then n_hidden, tail, nb_h
_M_NH = _M_NU + 1
_M_TAIL = _M_NU + 2
_M_NBH = _M_NU + 3


@njit(cache=True)
def _iv(ib, meta, f):
    o = meta[f]
    return ib[o : o + meta[_NI + f]]


@njit(cache=True)
def _fv(fb, meta, f):
    o = meta[2 * _NI + f]
    return fb[o : o + meta[2 * _NI + _NF + f]]


@njit(cache=True)
def _p_factor(ib, fb, meta, k, clamped):
    if clamped:
        nrows = meta[_M_NH]
        lx = _fv(fb, meta, _LXC)
        dinv = _fv(fb, meta, _DINVC)
        kbuf = _fv(fb, meta, _KC)
    else:
        nrows = meta[_M_NU]
        lx = _fv(fb, meta, _LX)
        dinv = _fv(fb, meta, _DINV)
        kbuf = _fv(fb, meta, _KF)
    emap = _iv(ib, meta, _EMAP).reshape(3, k.size)
    rrow = _iv(ib, meta, _RROW)
    rrow2 = rrow.reshape(2, rrow.size // 2)
    return _factor(nrows, meta[_M_TAIL], k, kbuf, emap, _iv(ib, meta, _AP), _iv(ib, meta, _AI),
                   _fv(fb, meta, _AX), _iv(ib, meta, _LP), _iv(ib, meta, _LI), _iv(ib, meta, _RP), rrow2,
                   lx, dinv, _fv(fb, meta, _Y))


@njit(cache=True)
def _p_solve_free(ib, fb, meta, vf, v):
    bnd = _iv(ib, meta, _BND)
    _solve_free(meta[_M_NU], _iv(ib, meta, _LP), _iv(ib, meta, _LI), _fv(fb, meta, _LX), _fv(fb, meta, _DINV),
                _fv(fb, meta, _KF), vf, bnd.reshape(3, bnd.size // 3), _iv(ib, meta, _PERM),
                _iv(ib, meta, _FIXED), _fv(fb, meta, _X), v)


@njit(cache=True)
def _p_factor_solve_free(ib, fb, meta, k, vf, v):
    bad = _p_factor(ib, fb, meta, k, False)
    if bad < 0:
        _p_solve_free(ib, fb, meta, vf, v)
    return bad


@njit(cache=True)
def _p_solve_free_batch(ib, fb, meta, vf, v):
    for s in range(vf.shape[0]):
        _p_solve_free(ib, fb, meta, vf[s], v[s])


@njit(cache=True)
def _p_solve_clamped(ib, fb, meta, separate, vf, vt, v):
    if separate:
        lx = _fv(fb, meta, _LXC)
        dinv = _fv(fb, meta, _DINVC)
        kbuf = _fv(fb, meta, _KC)
    else:
        lx = _fv(fb, meta, _LX)
        dinv = _fv(fb, meta, _DINV)
        kbuf = _fv(fb, meta, _KF)
    bnd = _iv(ib, meta, _BND)
    tbnd = _iv(ib, meta, _TBND)
    _solve_clamped(meta[_M_NH], _iv(ib, meta, _LP), _iv(ib, meta, _LEND), _iv(ib, meta, _LI), lx, dinv, kbuf,
                   vf, vt, meta[_M_NBH], bnd.reshape(3, bnd.size // 3), tbnd.reshape(3, tbnd.size // 3),
                   _iv(ib, meta, _PERM), _iv(ib, meta, _FIXED), _iv(ib, meta, _TARGETS), _fv(fb, meta, _XB), v)


def _pack(arrays: dict, names, dtype):
    """One buffer holding ``arrays[name]`` for every name, in order; returns the buffer, the
    offsets and lengths, and views of the buffer in the original shapes."""
    sizes = [arrays[nm].size for nm in names]
    offs = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    buf = np.zeros(int(offs[-1]), dtype)
    views = {}
    for nm, o, sz in zip(names, offs, sizes):
        buf[o : o + sz] = arrays[nm].ravel()
        views[nm] = buf[o : o + sz].reshape(arrays[nm].shape)
    return buf, offs[:-1], np.asarray(sizes, np.int64), views


# =========================================================================================
# the linear solver
# =========================================================================================


def _as_index(x, name: str, n: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.int64).ravel()
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"{name} refers to a node outside 0..{n - 1}")
    if np.unique(a).size != a.size:
        raise ValueError(f"a node appears twice in {name}")
    return a


def _check_topology(edges: np.ndarray, n: int, fixed: np.ndarray, names) -> None:
    """FloatingNodeError naming every node with no path to a fixed node."""
    if fixed.size == 0:
        raise FloatingNodeError([names(i) for i in range(n)])
    g = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = connected_components(g, directed=False)
    grounded = np.zeros(label.max() + 1, bool)
    grounded[label[fixed]] = True
    bad = np.flatnonzero(~grounded[label])
    if bad.size:
        raise FloatingNodeError([names(int(i)) for i in bad])


def _upper_pattern(edges_pos: np.ndarray, nu: int):
    """Upper-triangular CSC pattern (rows ascending, diagonal last in each column) of the
    reduced Laplacian over unknown positions; edges_pos is (E, 2) of positions or -1.
    Returns ap, ai, the position of every diagonal and of every edge's off-diagonal entry."""
    pa, pb = edges_pos[:, 0], edges_pos[:, 1]
    both = (pa >= 0) & (pb >= 0)
    lo = np.minimum(pa, pb)[both]
    hi = np.maximum(pa, pb)[both]
    rows = np.r_[lo, np.arange(nu)]
    cols = np.r_[hi, np.arange(nu)]
    key = cols * max(nu, 1) + rows  # column-major order = CSC order, rows ascending
    ukey, inv = np.unique(key, return_inverse=True)
    ucol = ukey // max(nu, 1)
    ai = (ukey % max(nu, 1)).astype(np.int64)
    ap = np.zeros(nu + 1, np.int64)
    np.cumsum(np.bincount(ucol, minlength=nu), out=ap[1:])
    off = np.full(len(edges_pos), -1, np.int64)
    off[both] = inv[: lo.size]
    diag = inv[lo.size :].astype(np.int64)
    return ap, ai, diag, off


def _symbolic_cost(ap, ai, nu):
    parent = np.empty(nu, np.int64)
    lnz = np.empty(nu, np.int64)
    work = np.empty(nu, np.int64)
    nnz = _etree_counts(nu, ap, ai, parent, lnz, work)
    flops = float(np.sum(lnz.astype(float) * (lnz + 3.0)))  # ~ multiply-adds of factor
    return nnz, flops, parent, lnz


def _hidden_orderings(edges: np.ndarray, hidden: np.ndarray, n: int, which) -> dict:
    """Candidate orders of the hidden nodes: name -> array of hidden node ids."""
    nh = hidden.size
    hpos = np.full(n, -1, np.int64)
    hpos[hidden] = np.arange(nh)
    pa, pb = hpos[edges[:, 0]], hpos[edges[:, 1]]
    m = (pa >= 0) & (pb >= 0)
    adj = sp.coo_matrix((np.ones(2 * m.sum()), (np.r_[pa[m], pb[m]], np.r_[pb[m], pa[m]])), shape=(nh, nh)).tocsr()
    adj.sum_duplicates()
    adj.setdiag(0)
    adj.eliminate_zeros()
    adj.sort_indices()
    out = {}
    if nh < 3:
        return {"natural": hidden.copy()}
    for name in which:
        if name == "natural":
            out[name] = hidden.copy()
        elif name == "rcm":
            out[name] = hidden[reverse_cuthill_mckee(adj, symmetric_mode=True)]
        elif name == "metis":
            try:
                import pymetis
            except ImportError:  # pragma: no cover - optional dependency
                continue
            if adj.nnz == 0:
                continue
            perm, _ = pymetis.nested_dissection(
                pymetis.CSRAdjacency(adj.indptr.astype(np.int64), adj.indices.astype(np.int64))
            )
            out[name] = hidden[np.asarray(perm, np.int64)]
        elif name == "amd":
            try:
                import qdldl
            except ImportError:  # pragma: no cover
                continue
            # AMD as computed by qdldl on a Laplacian-like SPD matrix of the same pattern
            lap = sp.diags(np.asarray(adj.sum(axis=1)).ravel() + 1.0) - adj
            p = qdldl.Solver(sp.triu(lap, format="csc"), upper=True).factors()[2]
            out[name] = hidden[np.asarray(p, np.int64)]
        else:
            raise ValueError(f"unknown ordering {name!r}; choose from {ORDERINGS} or 'auto'")
    return out


_F64 = np.dtype(np.float64)


def _f64(x, n: int, what: str) -> np.ndarray:
    """x as a contiguous float64 array of shape (n,), no copy when it already is one
    (~0.15 us). The compiled kernels do not check bounds, so the shapes are checked here,
    and a strided input would make numba compile another specialisation (seconds)."""
    if type(x) is not np.ndarray or x.dtype is not _F64 or x.ndim != 1 or x.strides[0] != 8:
        x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 1 or len(x) != n:
        raise ValueError(f"{what} must have shape ({n},), got {x.shape}")
    return x


def _out(out, n: int) -> np.ndarray:
    if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (n,)):
        raise ValueError(f"out must be a float64 array of shape ({n},)")
    return out


class LinearTwinSolver:
    """Free and clamped states of a twin network with linear edges, from one LDL^T factor.

    Args:
        edges: ``(E, 2)`` node indices of the edges (parallel edges are allowed).
        n_nodes: number of nodes N.
        fixed: nodes fixed in BOTH states (sources and ground), F of them; ``v_fixed`` is in
            this order.
        targets: nodes fixed only in the clamped state, T of them; ``v_targets`` is in this
            order.
        ordering: fill-reducing order of the hidden nodes: ``"auto"`` (the candidate of
            :data:`ORDERINGS` with the fewest factorisation flops), or one of them.
        node_names: optional names for error messages.

    Raises:
        FloatingNodeError: some node has no path to a fixed node (the free state would be
            singular).

    A training step is ``factor(k)`` -> ``solve_free(v_fixed)`` -> (clamp targets, in numpy)
    -> ``solve_clamped(v_fixed, v_targets)``; :meth:`factor_solve_free` fuses the first two
    into one compiled call. Factor slots and their interplay:

    * ``factor(k_free)`` factorises the free state's reduced Laplacian; the clamped state
      then *shares* that factor (its leading block, same conductances): no second
      factorisation.
    * ``factor(k_free, k_clamped)`` also factorises the clamped twin's own matrix with
      ``k_clamped`` into a second slot (twin mismatch); :meth:`solve_clamped` uses it.
    * ``factor_clamped(k_clamped)`` refactorises only the clamped slot (the free factor is
      left as it is) and makes :meth:`solve_clamped` use it, until the next :meth:`factor`
      or :meth:`factor_solve_free` without ``k_clamped`` switches back to sharing.

    The clamped slot factorises only the leading (hidden) rows. Every solve uses the
    conductances of the factorisation it uses. The arrays returned by the solves are
    internal buffers, overwritten by the next call of the same method (or pass ``out``).

    Attributes:
        ordering: the ordering chosen; ``ordering_costs``: name -> (nnz(L), flop estimate)
            of every candidate tried; ``perm``: node id of every unknown of the free state in
            elimination order (hidden nodes, then the targets); ``nnz_l``: entries of L.
    """

    def __init__(self, edges, n_nodes: int, fixed, targets, ordering: str = "auto", node_names=None):
        n = int(n_nodes)
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        if edges.size and (edges.min() < 0 or edges.max() >= n):
            raise ValueError(f"edge refers to a node outside 0..{n - 1}")
        if np.any(edges[:, 0] == edges[:, 1]):
            raise ValueError("an edge joins a node to itself")
        fixed = _as_index(fixed, "fixed", n)
        targets = _as_index(targets, "targets", n)
        if np.intersect1d(fixed, targets).size:
            raise ValueError("a node is both fixed and a target")
        self.node_names = None if node_names is None else tuple(node_names)
        names = (lambda i: self.node_names[i]) if self.node_names is not None else (lambda i: f"node {i}")
        _check_topology(edges, n, fixed, names)

        self.n_nodes, self.n_edges = n, len(edges)
        self.edges, self.fixed, self.targets = edges, fixed, targets
        is_known = np.zeros(n, bool)
        is_known[fixed] = True
        is_known[targets] = True
        hidden = np.flatnonzero(~is_known)
        nh, nt = hidden.size, targets.size
        nu = nh + nt
        self.n_hidden, self.n_unknown = nh, nu

        # -- ordering: try the candidates, keep the cheapest --------------------------------
        if ordering == "auto":
            cand = ORDERINGS if nu <= _SMALL_UNKNOWNS else ("metis", "amd")
        elif ordering in ORDERINGS:
            cand = (ordering,)
        else:
            raise ValueError(f"unknown ordering {ordering!r}; choose from {ORDERINGS} or 'auto'")
        orders = _hidden_orderings(edges, hidden, n, cand)
        if not orders:
            orders = {"natural": hidden.copy()}
        self.ordering_costs: dict[str, tuple[int, float]] = {}
        best = None
        for name, h_order in orders.items():
            perm = np.r_[h_order, targets].astype(np.int64)
            ap, ai, diag, off, epos = self._structure(perm)
            nnz, flops, parent, lnz = _symbolic_cost(ap, ai, nu)
            self.ordering_costs[name] = (int(nnz), flops)
            if best is None or flops < best[0]:
                best = (flops, name, perm, ap, ai, diag, off, epos, parent, lnz)
        _, self.ordering, perm, ap, ai, diag, off, epos, parent, lnz = best
        self.perm = perm  # node id of unknown position i (free state); [:nh] for clamped

        # -- scatter maps: edge conductance -> matrix entries and right-hand sides ----------
        pa, pb = epos[:, 0], epos[:, 1]
        self._emap = np.ascontiguousarray(np.stack([
            np.where(pa >= 0, diag[np.maximum(pa, 0)], -1),
            np.where(pb >= 0, diag[np.maximum(pb, 0)], -1),
            off,
        ]).astype(np.int64))
        fpos = np.full(n, -1, np.int64)
        fpos[fixed] = np.arange(fixed.size)
        tpos = np.full(n, -1, np.int64)
        tpos[targets] = np.arange(nt)
        a, b = edges[:, 0], edges[:, 1]
        # edges from an unknown (free state) to a fixed node, hidden rows first; and edges
        # from a hidden node to a target (the clamped state's extra boundary terms)
        ends = ((pa, b), (pb, a))  # (position of one end, node id of the other end)
        to_fixed = [(u >= 0) & (fpos[o] >= 0) for u, o in ends]
        bnd = np.concatenate([np.stack([u[m], fpos[o][m], np.flatnonzero(m)]) for (u, o), m in zip(ends, to_fixed)], axis=1)
        bnd = bnd[:, np.argsort(bnd[0] >= nh, kind="stable")]
        self._bnd = np.ascontiguousarray(bnd, dtype=np.int64)
        self._nb_h = int(np.sum(bnd[0] < nh))
        to_target = [(u >= 0) & (u < nh) & (tpos[o] >= 0) for u, o in ends]
        tbnd = np.concatenate([np.stack([u[m], tpos[o][m], np.flatnonzero(m)]) for (u, o), m in zip(ends, to_target)], axis=1)
        self._tbnd = np.ascontiguousarray(tbnd, dtype=np.int64)

        # -- symbolic factorisation ---------------------------------------------------------
        self._ap, self._ai = ap, ai
        self._ax = np.zeros(ai.size)
        lp = np.zeros(nu + 1, np.int64)
        np.cumsum(lnz, out=lp[1:])
        nnz_l = int(lp[-1])
        self._lp = lp
        self._li = np.empty(nnz_l, np.int64)
        self._rp = np.empty(nu + 1, np.int64)
        self._rrow = np.empty((2, nnz_l), np.int64)
        self._lend_h = np.empty(nu, np.int64)
        _pattern(nu, nh, ap, ai, parent, lp, self._li, self._rp, self._rrow[0], self._rrow[1], self._lend_h)
        self.nnz_l = nnz_l
        self.factor_flops = self.ordering_costs[self.ordering][1]
        # start of the trailing block of L whose columns are dense (all rows below the
        # diagonal): the factorisation runs it with contiguous, vectorisable loops
        not_dense = np.flatnonzero(lnz != (nu - 1 - np.arange(nu)))
        self._tail = int(not_dense[-1] + 1) if not_dense.size else 0

        # -- numeric buffers: slot 0 free (shared with the clamped state), slot 1 clamped --
        e = self.n_edges
        ints = dict(lp=lp, li=self._li, rp=self._rp, rrow=self._rrow, lend_h=self._lend_h, emap=self._emap,
                    ap=ap, ai=ai, bnd=self._bnd, tbnd=self._tbnd, perm=perm, fixed=fixed, targets=targets)
        floats = dict(ax=np.zeros(ai.size), lx=np.zeros(nnz_l), dinv=np.ones(nu), lx_c=np.zeros(nnz_l),
                      dinv_c=np.ones(nu), kf=np.zeros(e), kc=np.zeros(e), y=np.zeros(nu), x=np.zeros(nu),
                      xb=np.zeros(nu))
        self._ib, ioff, ilen, iv = _pack(ints, _INT_FIELDS, np.int64)
        self._fb, foff, flen, fv = _pack(floats, _FLOAT_FIELDS, np.float64)
        self._meta = np.r_[ioff, ilen, foff, flen, nu, nh, self._tail, self._nb_h].astype(np.int64)
        for name, view in (*iv.items(), *fv.items()):  # views into the packed buffers
            setattr(self, "_" + name, view)
        self.perm, self.fixed, self.targets = iv["perm"], iv["fixed"], iv["targets"]
        self.perm.setflags(write=False)
        self.fixed.setflags(write=False)
        self.targets.setflags(write=False)
        self._v_free = np.zeros(n)
        self._v_clamped = np.zeros(n)
        self._v_batch = np.zeros((0, n))
        self._have_free = False
        self._have_clamped = False
        self._shared = True

    # -- construction helpers ------------------------------------------------------------
    def _structure(self, perm):
        pos = np.full(self.n_nodes, -1, np.int64)
        pos[perm] = np.arange(perm.size)
        epos = pos[self.edges]
        ap, ai, diag, off = _upper_pattern(epos, perm.size)
        return ap, ai, diag, off, epos

    def _fail(self, row: int, which: str):
        node = int(self.perm[row])
        name = self.node_names[node] if self.node_names is not None else f"node {node}"
        raise SingularMatrixError(
            f"{which} factorisation failed at {name}: non-positive pivot (are all "
            "conductances positive and finite?)"
        )

    # -- numeric factorisation -----------------------------------------------------------
    def factor(self, k_free, k_clamped=None) -> None:
        """Factorise for edge conductances ``k_free`` (S, shape (E,)). The clamped state
        shares this factor unless ``k_clamped`` (S, (E,)) is given: then the clamped twin
        gets its own factor with those conductances (:meth:`factor_clamped`)."""
        k = _f64(k_free, self.n_edges, "k_free")
        self._have_free = False
        bad = _p_factor(self._ib, self._fb, self._meta, k, False)
        if bad >= 0:
            self._fail(bad, "free")
        self._have_free = True
        if k_clamped is None:
            self._shared = True
            self._have_clamped = True
        else:
            self.factor_clamped(k_clamped)

    def factor_solve_free(self, k_free, v_fixed, out=None) -> np.ndarray:
        """``factor(k_free)`` then ``solve_free(v_fixed)`` in one compiled call (one dispatch
        less, ~0.4 us on small networks); the clamped state shares the factor."""
        k = _f64(k_free, self.n_edges, "k_free")
        vf = _f64(v_fixed, self.fixed.size, "v_fixed")
        v = self._v_free if out is None else _out(out, self.n_nodes)
        self._have_free = False
        bad = _p_factor_solve_free(self._ib, self._fb, self._meta, k, vf, v)
        if bad >= 0:
            self._fail(bad, "free")
        self._have_free = True
        self._shared = True
        self._have_clamped = True
        return v

    def factor_clamped(self, k_clamped) -> None:
        """Factorise the clamped twin alone with its own conductances ``k_clamped`` (S, (E,));
        :meth:`solve_clamped` uses this factor until the next :meth:`factor` without
        ``k_clamped``. The free factor is untouched."""
        k = _f64(k_clamped, self.n_edges, "k_clamped")
        self._have_clamped = False
        self._shared = False
        bad = _p_factor(self._ib, self._fb, self._meta, k, True)
        if bad >= 0:
            self._fail(bad, "clamped")
        self._have_clamped = True

    # -- solves ----------------------------------------------------------------------------
    def solve_free(self, v_fixed, out=None) -> np.ndarray:
        """Node voltages (V, (N,)) of the free state with the fixed nodes at ``v_fixed``
        (V, (F,)), from the last :meth:`factor`."""
        if not self._have_free:
            raise RuntimeError("call factor() first")
        v = self._v_free if out is None else _out(out, self.n_nodes)
        _p_solve_free(self._ib, self._fb, self._meta, _f64(v_fixed, self.fixed.size, "v_fixed"), v)
        return v

    def solve_clamped(self, v_fixed, v_targets, out=None) -> np.ndarray:
        """Node voltages (V, (N,)) of the clamped state: fixed nodes at ``v_fixed`` (V, (F,)),
        targets at ``v_targets`` (V, (T,)); from the shared free factor or the clamped slot
        (see the class notes)."""
        if not self._have_clamped:
            raise RuntimeError("call factor() or factor_clamped() first")
        v = self._v_clamped if out is None else _out(out, self.n_nodes)
        _p_solve_clamped(self._ib, self._fb, self._meta, not self._shared,
                         _f64(v_fixed, self.fixed.size, "v_fixed"),
                         _f64(v_targets, self.targets.size, "v_targets"), v)
        return v

    def solve_free_batch(self, v_fixed, out=None) -> np.ndarray:
        """Free-state node voltages (V, (B, N)) for B boundary conditions ``v_fixed`` (V,
        (B, F)) with one factorisation. Returns an internal buffer kept while B stays the
        same (or ``out``)."""
        if not self._have_free:
            raise RuntimeError("call factor() first")
        vf = np.ascontiguousarray(v_fixed, dtype=np.float64)
        if vf.ndim != 2 or vf.shape[1] != self.fixed.size:
            raise ValueError(f"v_fixed must have shape (B, {self.fixed.size}), got {vf.shape}")
        if out is None:
            if self._v_batch.shape[0] != vf.shape[0]:
                self._v_batch = np.empty((vf.shape[0], self.n_nodes))
            out = self._v_batch
        elif not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (vf.shape[0], self.n_nodes)):
            raise ValueError(f"out must be a float64 array of shape ({vf.shape[0]}, {self.n_nodes})")
        _p_solve_free_batch(self._ib, self._fb, self._meta, vf, out)
        return out

    @property
    def shared(self) -> bool:
        """True when the clamped state uses the leading block of the free factor."""
        return self._shared

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the factor, its pattern, the maps and the work buffers."""
        return int(self._ib.nbytes + self._fb.nbytes + self._v_free.nbytes * 2 + self._v_batch.nbytes)


# =========================================================================================
# numba kernels: MOSFET Newton
# =========================================================================================

_LN10 = math.log(10.0)


@njit(cache=True)
def _f_law(u, sub_v):
    """F(u) (V^2), F'(u) (V), D(u), D'(u) of Mosfet (edges._f_law), one value; sub_v > 0."""
    up = u if u > 0.0 else 0.0
    n = sub_v / _LN10
    vj = 2.0 * n
    if u < vj:
        f = 0.5 * vj * vj * math.exp((u - vj) / n)
        df = f / n
    else:
        f = 0.5 * u * u
        df = u
    return f, df, 0.5 * up * up - f, up - df


@njit(cache=True)
def _mos(s, vt, sub_v, vg, va, vb):
    """Current a -> b (A) and dI/dva, dI/dvb (S) of one MOSFET edge, as
    edges.mosfet_current (the same law, term for term; sub_v = 0 means level 1)."""
    a_high = va >= vb
    vs = vb if a_high else va
    vds = abs(va - vb)
    x = vg - vt - vs
    y = x - vds
    vj = 2.0 * sub_v / _LN10
    if sub_v <= 0.0 or x >= vj:
        if y > 0.0:
            i = s * (x - 0.5 * vds) * vds
            d_drain = s * y
        else:
            xp = x if x > 0.0 else 0.0
            i = 0.5 * s * xp * xp
            d_drain = 0.0
        d_source = -s * (x if x > 0.0 else 0.0)
    else:
        n = sub_v / _LN10
        fx, dfx, dx, ddx = _f_law(x, sub_v)
        fy, dfy, dy, ddy = _f_law(y, sub_v)
        t = x / vj
        if t < 0.0:
            t = 0.0
        lam = t * t * (3.0 - 2.0 * t)
        dlam = 6.0 * t * (1.0 - t) / vj if x > 0.0 else 0.0
        i = s * (fx * -math.expm1(-vds / n) - lam * (dy - dx))
        d_drain = s * (dfy + lam * ddy)
        d_source = -s * (dfx - dlam * (dy - dx) + lam * ddx)
    if a_high:
        return i, d_drain, d_source
    return -i, -d_source, -d_drain


@njit(cache=True)
def _mos_residual(ea, eb, pos, s, vt, sub_v, vg, v, f, ga, gb, deriv):
    """Net current out of each unknown node into f; returns (max |f|, max |edge current|);
    with deriv, the edge derivatives go to ga, gb."""
    for i in range(f.size):
        f[i] = 0.0
    scale = 0.0
    for e in range(ea.size):
        a = ea[e]
        b = eb[e]
        i, da, db = _mos(s[e], vt[e], sub_v, vg[e], v[a], v[b])
        if deriv:
            ga[e] = da
            gb[e] = db
        if abs(i) > scale:
            scale = abs(i)
        if pos[a] >= 0:
            f[pos[a]] += i
        if pos[b] >= 0:
            f[pos[b]] -= i
    fn = 0.0
    for i in range(f.size):
        if abs(f[i]) > fn:
            fn = abs(f[i])
    return fn, scale


@njit(cache=True)
def _lu_solve_inplace(a, x, piv):
    """Solve a x = rhs (x holds rhs) by LU with partial pivoting, destroying a.
    Returns False if a pivot is exactly zero."""
    n = x.size
    for k in range(n):
        p = k
        big = abs(a[k, k])
        for i in range(k + 1, n):
            if abs(a[i, k]) > big:
                big = abs(a[i, k])
                p = i
        if big == 0.0:
            return False
        piv[k] = p
        if p != k:
            for j in range(n):
                t = a[k, j]
                a[k, j] = a[p, j]
                a[p, j] = t
            t = x[k]
            x[k] = x[p]
            x[p] = t
        inv = 1.0 / a[k, k]
        for i in range(k + 1, n):
            m = a[i, k] * inv
            if m != 0.0:
                a[i, k] = m
                for j in range(k + 1, n):
                    a[i, j] -= m * a[k, j]
                x[i] -= m * x[k]
            else:
                a[i, k] = 0.0
    for i in range(n - 1, -1, -1):
        s = x[i]
        for j in range(i + 1, n):
            s -= a[i, j] * x[j]
        x[i] = s / a[i, i]
    return True


@njit(cache=True)
def _mos_linear_guess(ea, eb, pos, unk, s, vt, sub_v, vg, v, jac, x, piv):
    """v[unknown] <- linear solution with the small-signal conductances at 0 V (as DCSolver
    does without a starting point), floored at GMIN."""
    nu = unk.size
    for i in range(nu):
        x[i] = 0.0
        for j in range(nu):
            jac[i, j] = 0.0
    for e in range(ea.size):
        # the small-signal conductance at both terminals 0 V: dI/dva there
        g = max(_mos(s[e], vt[e], sub_v, vg[e], 0.0, 0.0)[1], 1e-12)
        pa = pos[ea[e]]
        pb = pos[eb[e]]
        if pa >= 0:
            jac[pa, pa] += g
            if pb >= 0:
                jac[pa, pb] -= g
            else:
                x[pa] += g * v[eb[e]]
        if pb >= 0:
            jac[pb, pb] += g
            if pa >= 0:
                jac[pb, pa] -= g
            else:
                x[pb] += g * v[ea[e]]
    ok = _lu_solve_inplace(jac, x, piv)
    for i in range(nu):
        v[unk[i]] = x[i]
    return ok


@njit(cache=True)
def _mos_newton(ea, eb, pos, unk, s, vt, sub_v, vg, v, cold, jac, f, dv, trial, tf, ga, gb, piv,
                abs_a, rel, step_v, max_iter, max_step, gmin):
    """Newton's method in place on v (fixed entries set; unknowns hold the start, or cold
    start). Returns (status, iterations, worst unknown position, residual): status 0
    converged, 1 not converged, 2 singular Jacobian."""
    nu = unk.size
    if cold:
        if not _mos_linear_guess(ea, eb, pos, unk, s, vt, sub_v, vg, v, jac, dv, piv):
            return 2, 0, 0, np.inf
    fn = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        fn, scale = _mos_residual(ea, eb, pos, s, vt, sub_v, vg, v, f, ga, gb, True)
        if fn <= abs_a + rel * scale:
            return 0, it, -1, fn
        for i in range(nu):
            for j in range(nu):
                jac[i, j] = 0.0
            jac[i, i] = gmin
            dv[i] = -f[i]
        for e in range(ea.size):
            pa = pos[ea[e]]
            pb = pos[eb[e]]
            if pa >= 0:
                jac[pa, pa] += ga[e]
                if pb >= 0:
                    jac[pa, pb] += gb[e]
                    jac[pb, pa] -= ga[e]
            if pb >= 0:
                jac[pb, pb] -= gb[e]
        if not _lu_solve_inplace(jac, dv, piv):
            worst = 0
            for i in range(nu):
                if abs(f[i]) > abs(f[worst]):
                    worst = i
            return 2, it, worst, fn
        big = 0.0
        for i in range(nu):
            if abs(dv[i]) > big:
                big = abs(dv[i])
        if big > max_step:
            r = max_step / big
            for i in range(nu):
                dv[i] *= r
            big = max_step
        step = 1.0
        for i in range(trial.size):
            trial[i] = v[i]
        improved = False
        for _ in range(30):
            for i in range(nu):
                trial[unk[i]] = v[unk[i]] + step * dv[i]
            tn, _sc = _mos_residual(ea, eb, pos, s, vt, sub_v, vg, trial, tf, ga, gb, False)
            if tn < fn or step * big < step_v:
                improved = True
                break
            step *= 0.5
        for i in range(nu):
            v[unk[i]] = trial[unk[i]]
        if not improved:
            # 30 halvings without progress: the same Jacobian would give the same direction
            # again (DCSolver keeps going until max_iter); stop and report
            break
        if step * big < step_v:
            fn, _sc = _mos_residual(ea, eb, pos, s, vt, sub_v, vg, v, f, ga, gb, False)
            if fn <= 1e3 * (abs_a + rel * max(scale, 1e-30)):
                return 0, it, -1, fn
    # not converged: the worst node of the last residual
    fn, _sc = _mos_residual(ea, eb, pos, s, vt, sub_v, vg, v, f, ga, gb, False)
    worst = 0
    for i in range(nu):
        if abs(f[i]) > abs(f[worst]):
            worst = i
    return 1, it, worst, fn


@njit(cache=True)
def _mos_jac_values(ea, eb, pos, ga, gb, slot, data, gmin, diag):
    """Values of the sparse Jacobian in its fixed CSC pattern (slot: (E, 4) data positions
    of (a,a), (a,b), (b,a), (b,b) or -1)."""
    for p in range(data.size):
        data[p] = 0.0
    for i in range(diag.size):
        data[diag[i]] = gmin
    for e in range(ea.size):
        if slot[e, 0] >= 0:
            data[slot[e, 0]] += ga[e]
        if slot[e, 1] >= 0:
            data[slot[e, 1]] += gb[e]
        if slot[e, 2] >= 0:
            data[slot[e, 2]] -= ga[e]
        if slot[e, 3] >= 0:
            data[slot[e, 3]] -= gb[e]


class _MosState:
    """Index sets and buffers of one state (free or clamped) of the MOSFET solver."""

    def __init__(self, edges, n, fixed, dense_max):
        self.fixed = fixed
        known = np.zeros(n, bool)
        known[fixed] = True
        self.unk = np.flatnonzero(~known).astype(np.int64)
        nu = self.unk.size
        self.pos = np.full(n, -1, np.int64)
        self.pos[self.unk] = np.arange(nu)
        self.dense = nu <= dense_max
        self.v = np.zeros(n)
        self.out = np.zeros(n)
        self.trial = np.zeros(n)
        self.f = np.zeros(nu)
        self.tf = np.zeros(nu)
        self.dv = np.zeros(nu)
        self.piv = np.zeros(nu, np.int64)
        self.ga = np.zeros(len(edges))
        self.gb = np.zeros(len(edges))
        self.warm = False
        self.iterations = 0
        self.general = None
        if self.dense:
            self.jac = np.zeros((nu, nu))
        else:
            self.jac = np.zeros((1, 1))
            pa, pb = self.pos[edges[:, 0]], self.pos[edges[:, 1]]
            e = len(edges)
            rows = np.c_[pa, pa, pb, pb]
            cols = np.c_[pa, pb, pa, pb]
            ok = (rows >= 0) & (cols >= 0)
            r_all = np.r_[rows[ok], np.arange(nu)]
            c_all = np.r_[cols[ok], np.arange(nu)]
            key = c_all * nu + r_all
            ukey, inv = np.unique(key, return_inverse=True)
            self.indices = (ukey % nu).astype(np.int32)
            self.indptr = np.zeros(nu + 1, np.int32)
            np.cumsum(np.bincount(ukey // nu, minlength=nu), out=self.indptr[1:])
            self.slot = np.full((e, 4), -1, np.int64)
            self.slot[ok] = inv[: ok.sum()]
            self.diag = inv[ok.sum() :].astype(np.int64)
            self.data = np.zeros(ukey.size)
            self.nu = nu


class MosfetTwinSolver:
    """Free and clamped states of a twin network with n-MOSFET edges, by Newton's method.

    Args:
        edges: ``(E, 2)`` node indices; terminal a, terminal b (current positive a -> b).
        n_nodes: number of nodes N.
        fixed: nodes fixed in both states (sources, ground), F of them.
        targets: nodes fixed only in the clamped state, T of them.
        s_a_per_v2: ``(2, E)`` (or broadcastable) transconductance factor S (A/V^2), row 0
            the free twin, row 1 the clamped twin.
        vt_v: ``(2, E)`` threshold voltages V_T (V).
        subthreshold_v: volts of overdrive per decade of subthreshold current, or None for
            the plain level-1 model (as :class:`~instruments.sim.edges.Mosfet`).
        node_names: optional node names for :class:`ConvergenceError`.
        tol: Newton tolerances (as :class:`~instruments.sim.circuit.DCSolver`).
        dense_max: states with at most this many unknowns use the compiled dense Newton;
            larger ones assemble a sparse Jacobian in numba and factorise it with ``splu``.

    Each state starts from its own previous solution (its warm start); the first solve of a
    state, the first after :meth:`reset` or after a failure starts from the linear solution
    at the small-signal conductances, as DCSolver does. The iteration is DCSolver's (same
    tolerances, GMIN on the Jacobian diagonal only, the step scaled to at most
    ``max_step_v``, backtracking on max |residual|): fast, and enough for almost every step
    of training. When a warm-started solve does not converge it is retried once from the
    cold start; an attempt stops early when 30 halvings of the step all fail to lower the
    residual. If the cold start fails too, the state is solved by DCSolver's more careful
    iteration (per-node step limits, a chord step for nodes held only by saturated or cut-off
    edges, a rounding-level diagonal), which raises :class:`ConvergenceError` if it also
    fails; ``iterations`` counts every attempt.
    """

    def __init__(self, edges, n_nodes: int, fixed, targets, s_a_per_v2=GEN2_S_A_PER_V2,
                 vt_v=GEN2_VT_V, subthreshold_v: float | None = SUBTHRESHOLD_V_PER_DECADE,
                 node_names=None, tol: Tolerances = Tolerances(), dense_max: int = 200):
        n = int(n_nodes)
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        if edges.size and (edges.min() < 0 or edges.max() >= n):
            raise ValueError(f"edge refers to a node outside 0..{n - 1}")
        fixed = _as_index(fixed, "fixed", n)
        targets = _as_index(targets, "targets", n)
        if np.intersect1d(fixed, targets).size:
            raise ValueError("a node is both fixed and a target")
        e = len(edges)
        self.n_nodes, self.n_edges = n, e
        self.edges, self.fixed, self.targets = edges, fixed, targets
        self.node_names = None if node_names is None else tuple(node_names)
        names = (lambda i: self.node_names[i]) if self.node_names is not None else (lambda i: f"node {i}")
        _check_topology(edges, n, fixed, names)
        self._ea = np.ascontiguousarray(edges[:, 0])
        self._eb = np.ascontiguousarray(edges[:, 1])
        self.s = np.ascontiguousarray(np.broadcast_to(np.asarray(s_a_per_v2, float), (2, e)))
        self.vt = np.ascontiguousarray(np.broadcast_to(np.asarray(vt_v, float), (2, e)))
        if np.any(self.s <= 0):
            raise ValueError("MOSFET S must be positive")
        if subthreshold_v is not None and not subthreshold_v > 0:
            raise ValueError("subthreshold_v must be positive or None")
        self.subthreshold_v = subthreshold_v
        self._sub = 0.0 if subthreshold_v is None else float(subthreshold_v)
        self.tol = tol
        self._free = _MosState(edges, n, fixed, dense_max)
        self._clamped = _MosState(edges, n, np.r_[fixed, targets], dense_max)

    @classmethod
    def from_device(cls, network, device, fixed, targets, **kw) -> "MosfetTwinSolver":
        """Solver for a :class:`~instruments.sim.network.Network` and a
        :class:`~instruments.sim.edges.Mosfet` device (its S, V_T and subthreshold law)."""
        if device.has_lambda:
            raise ValueError("the compiled MOSFET kernel has no channel-length modulation (LAMBDA > 0): "
                             "use DCSolver")
        return cls(network.edges, network.n_nodes, fixed, targets, device.s_a_per_v2, device.vt_v,
                   device.subthreshold_v, node_names=network.nodes, **kw)

    def reset(self) -> None:
        """Forget the warm starts: the next solve of each state starts cold."""
        self._free.warm = False
        self._clamped.warm = False

    @property
    def iterations(self) -> tuple[int, int]:
        """Newton iterations of the last free and the last clamped solve."""
        return self._free.iterations, self._clamped.iterations

    def solve_free(self, vg, v_fixed, twin: int = 0) -> np.ndarray:
        """Node voltages (V, (N,)) of the free state for gate voltages ``vg`` (V, (E,)),
        fixed nodes at ``v_fixed`` (V, (F,)), with the parameters of twin ``twin``."""
        st = self._free
        st.v[self.fixed] = _f64(v_fixed, self.fixed.size, "v_fixed")
        return self._run(st, vg, twin)

    def solve_clamped(self, vg, v_fixed, v_targets, twin: int = 1) -> np.ndarray:
        """Node voltages (V, (N,)) of the clamped state: fixed nodes at ``v_fixed`` (V, (F,)),
        targets at ``v_targets`` (V, (T,)), parameters of twin ``twin``."""
        st = self._clamped
        st.v[self.fixed] = _f64(v_fixed, self.fixed.size, "v_fixed")
        st.v[self.targets] = _f64(v_targets, self.targets.size, "v_targets")
        return self._run(st, vg, twin)

    def _run(self, st: _MosState, vg, twin: int) -> np.ndarray:
        vg = _f64(vg, self.n_edges, "vg")
        status, it, worst, res = self._newton(st, vg, twin, not st.warm)
        if status != 0 and st.warm:
            # A warm start can stall where the cold start does not (a node whose edges all
            # sit in saturation with it as drain has a GMIN-only Jacobian row: the huge step
            # there, scaled to 0.5 V, shrinks every other component and backtracking fails).
            status, it2, worst, res = self._newton(st, vg, twin, True)
            it += it2
        st.iterations = it
        if status != 0:
            # Last resort: the general solver's safeguarded Newton (per-node step limits, a
            # chord step for nodes held only by saturated or cut-off edges), which raises
            # ConvergenceError itself when it fails too.
            st.warm = False
            v = self._general(st).solve(self._device, vg, st.v[st.fixed].copy(), twin)
            st.v[:] = v
            st.iterations = it + getattr(st.general, "iterations", 0)
        if self._sub == 0.0:
            # level 1 has exact cut-off: a node held only by cut-off edges has no unique
            # voltage (with subthreshold conduction every edge conducts a little)
            self._check_cut_off(st, vg, twin)
        st.warm = True
        st.out[:] = st.v
        return st.out

    def _check_cut_off(self, st: _MosState, vg, twin: int) -> None:
        """CutOffNodeError naming every unknown node whose conductance to the rest is below
        ``tol.cutoff_s`` (S) at the solution, as DCSolver reports them."""
        v = st.v
        _, ga, gb = mosfet_current(self.s[twin], self.vt[twin], None, vg, v[self._ea], v[self._eb])
        n = self.n_nodes
        diag = (np.bincount(self._ea, np.abs(ga), n) + np.bincount(self._eb, np.abs(gb), n))[st.unk]
        bad = np.flatnonzero(~(diag >= self.tol.cutoff_s))
        if bad.size:
            st.warm = False
            names = self.node_names or tuple(f"node {i}" for i in range(n))
            raise CutOffNodeError([names[st.unk[i]] for i in bad], [float(diag[i]) for i in bad],
                                  self.tol.cutoff_s)

    def _general(self, st: _MosState):
        """The :class:`~instruments.sim.circuit.DCSolver` of one state (built on first use)."""
        if st.general is None:
            from .circuit import DCSolver
            from .edges import Mosfet
            from .network import Network, Role

            names = self.node_names or tuple(f"node {i}" for i in range(self.n_nodes))
            net = Network(names, self.edges, (Role.HIDDEN,) * self.n_nodes, name="mosfet-kernel")
            self._device = Mosfet(self.n_edges, s_a_per_v2=self.s, vt_v=self.vt,
                                  subthreshold_v=self.subthreshold_v, state_min=-np.inf, state_max=np.inf)
            st.general = DCSolver(net, st.fixed, self.tol)
        return st.general

    def _newton(self, st: _MosState, vg, twin: int, cold: bool):
        if not st.dense:
            return self._newton_sparse(st, vg, twin, cold)
        tol = self.tol
        return _mos_newton(
            self._ea, self._eb, st.pos, st.unk, self.s[twin], self.vt[twin], self._sub, vg, st.v, cold,
            st.jac, st.f, st.dv, st.trial, st.tf, st.ga, st.gb, st.piv,
            tol.abs_a, tol.rel, tol.step_v, tol.max_iter, tol.max_step_v, GMIN_S)

    def _newton_sparse(self, st: _MosState, vg, twin: int, cold: bool):
        """The iteration of _mos_newton with a sparse Jacobian and splu (large networks)."""
        tol = self.tol
        s, vt, sub = self.s[twin], self.vt[twin], self._sub
        args = (self._ea, self._eb, st.pos)
        nu = st.nu
        v = st.v
        if cold:
            # linear start at the small-signal conductances at 0 V, floored at GMIN
            zero = np.zeros_like(vg)
            g = np.maximum(mosfet_current(s, vt, self.subthreshold_v, vg, zero, zero)[1], GMIN_S)
            st.ga[:] = g
            st.gb[:] = -g
            _mos_jac_values(*args, st.ga, st.gb, st.slot, st.data, 0.0, st.diag)
            jac = sp.csc_matrix((st.data, st.indices, st.indptr), shape=(nu, nu))
            known = st.pos < 0
            rhs = np.zeros(nu)
            pa, pb = st.pos[self._ea], st.pos[self._eb]
            m = (pa >= 0) & known[self._eb]
            np.add.at(rhs, pa[m], g[m] * v[self._eb[m]])
            m = (pb >= 0) & known[self._ea]
            np.add.at(rhs, pb[m], g[m] * v[self._ea[m]])
            v[st.unk] = spla.splu(jac).solve(rhs)
        fn = np.inf
        it = 0
        for it in range(1, tol.max_iter + 1):
            fn, scale = _mos_residual(*args, s, vt, sub, vg, v, st.f, st.ga, st.gb, True)
            if fn <= tol.abs_a + tol.rel * scale:
                return 0, it, -1, fn
            _mos_jac_values(*args, st.ga, st.gb, st.slot, st.data, GMIN_S, st.diag)
            jac = sp.csc_matrix((st.data, st.indices, st.indptr), shape=(nu, nu))
            try:
                dv = -spla.splu(jac).solve(st.f)
            except RuntimeError:
                return 2, it, int(np.argmax(np.abs(st.f))), fn
            big = float(np.max(np.abs(dv), initial=0.0))
            if big > tol.max_step_v:
                dv *= tol.max_step_v / big
                big = tol.max_step_v
            step = 1.0
            trial = st.trial
            trial[:] = v
            improved = False
            for _ in range(30):
                trial[st.unk] = v[st.unk] + step * dv
                tn, _sc = _mos_residual(*args, s, vt, sub, vg, trial, st.tf, st.ga, st.gb, False)
                if tn < fn or step * big < tol.step_v:
                    improved = True
                    break
                step *= 0.5
            v[st.unk] = trial[st.unk]
            if not improved:
                break
            if step * big < tol.step_v:
                fn, _sc = _mos_residual(*args, s, vt, sub, vg, v, st.f, st.ga, st.gb, False)
                if fn <= 1e3 * (tol.abs_a + tol.rel * max(scale, 1e-30)):
                    return 0, it, -1, fn
        fn, _sc = _mos_residual(*args, s, vt, sub, vg, v, st.f, st.ga, st.gb, False)
        return 1, it, int(np.argmax(np.abs(st.f))), fn
