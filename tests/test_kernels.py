"""The compiled kernels (instruments/sim/kernels.py) against the general DCSolver."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instruments.sim.circuit import ConvergenceError, DCSolver, FloatingNodeError, Tolerances
from instruments.sim.edges import Mosfet, spread
from instruments.sim.kernels import ORDERINGS, LinearTwinSolver, MosfetTwinSolver, SingularMatrixError
from instruments.sim.network import Network, gen2_lattice, random_connected, square_grid

REL = 1e-12


def roles(net: Network, n_fixed: int, n_targets: int, seed: int):
    pick = np.random.default_rng(seed).choice(net.n_nodes, n_fixed + n_targets, replace=False)
    return pick[:n_fixed].astype(np.int64), pick[n_fixed:].astype(np.int64)


def lattice_roles():
    net = gen2_lattice()
    return net, np.r_[net.sources, [net.ground]].astype(np.int64), net.targets


NETWORKS = {
    "lattice": lattice_roles,
    "random30": lambda: (lambda n: (n, *roles(n, 3, 2, 1)))(random_connected(30, 60, seed=2)),
    "random150": lambda: (lambda n: (n, *roles(n, 4, 3, 2)))(random_connected(150, 600, seed=5)),
    "random300": lambda: (lambda n: (n, *roles(n, 4, 2, 3)))(random_connected(300, 1500, seed=3)),
    "grid15": lambda: (lambda n: (n, *roles(n, 4, 2, 4)))(square_grid(15, 15)),
    "torus6x9": lambda: (lambda n: (n, *roles(n, 2, 3, 5)))(square_grid(6, 9, periodic=True)),
    "grid40": lambda: (lambda n: (n, *roles(n, 3, 2, 6)))(square_grid(40, 40)),
}


def close(a, b, rel=REL):
    scale = max(np.max(np.abs(b)), 1e-300)
    assert np.max(np.abs(a - b)) <= rel * scale, np.max(np.abs(a - b)) / scale


def reference(net, fixed, targets, k, vf, vt):
    free = DCSolver(net, fixed).solve_linear(k, vf)
    clamped = DCSolver(net, np.r_[fixed, targets]).solve_linear(k, np.r_[vf, vt])
    return free, clamped


# -- linear edges ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(NETWORKS))
def test_linear_matches_dcsolver(name):
    net, fixed, targets = NETWORKS[name]()
    rng = np.random.default_rng(7)
    s = LinearTwinSolver(net.edges, net.n_nodes, fixed, targets, node_names=net.nodes)
    assert np.array_equal(np.sort(s.perm[s.n_hidden :]), np.sort(targets))  # targets last
    for _ in range(3):
        k = 10 ** rng.uniform(-4, -2, net.n_edges)
        vf = rng.uniform(0, 0.45, fixed.size)
        vt = rng.uniform(0, 0.45, targets.size)
        ref_f, ref_c = reference(net, fixed, targets, k, vf, vt)
        s.factor(k)
        assert s.shared
        close(s.solve_free(vf), ref_f)
        close(s.solve_clamped(vf, vt), ref_c)
        close(s.factor_solve_free(k, vf), ref_f)
        close(s.solve_clamped(vf, vt), ref_c)


@pytest.mark.parametrize("name", ["lattice", "random150", "grid15"])
def test_linear_separate_factors(name):
    net, fixed, targets = NETWORKS[name]()
    rng = np.random.default_rng(8)
    s = LinearTwinSolver(net.edges, net.n_nodes, fixed, targets)
    k_f = 10 ** rng.uniform(-4, -2, net.n_edges)
    k_c = k_f * (1 + 0.05 * rng.standard_normal(net.n_edges))
    vf = rng.uniform(0, 0.45, fixed.size)
    vt = rng.uniform(0, 0.45, targets.size)
    ref_f, _ = reference(net, fixed, targets, k_f, vf, vt)
    _, ref_c = reference(net, fixed, targets, k_c, vf, vt)
    _, ref_c_shared = reference(net, fixed, targets, k_f, vf, vt)
    s.factor(k_f, k_c)
    assert not s.shared
    close(s.solve_free(vf), ref_f)
    close(s.solve_clamped(vf, vt), ref_c)
    # back to sharing, then a clamped-only refactorisation leaves the free factor alone
    s.factor(k_f)
    close(s.solve_clamped(vf, vt), ref_c_shared)
    s.factor_clamped(k_c)
    close(s.solve_clamped(vf, vt), ref_c)
    close(s.solve_free(vf), ref_f)
    s.factor_solve_free(k_f, vf)
    close(s.solve_clamped(vf, vt), ref_c_shared)


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_linear_every_ordering(ordering):
    net, fixed, targets = NETWORKS["random150"]()
    rng = np.random.default_rng(9)
    s = LinearTwinSolver(net.edges, net.n_nodes, fixed, targets, ordering=ordering)
    assert s.ordering == ordering
    k = 10 ** rng.uniform(-4, -2, net.n_edges)
    vf = rng.uniform(0, 0.45, fixed.size)
    vt = rng.uniform(0, 0.45, targets.size)
    ref_f, ref_c = reference(net, fixed, targets, k, vf, vt)
    s.factor(k)
    close(s.solve_free(vf), ref_f)
    close(s.solve_clamped(vf, vt), ref_c)


@pytest.mark.parametrize("name", ["lattice", "random300", "grid40"])
def test_linear_batch(name):
    net, fixed, targets = NETWORKS[name]()
    rng = np.random.default_rng(10)
    s = LinearTwinSolver(net.edges, net.n_nodes, fixed, targets)
    k = 10 ** rng.uniform(-4, -2, net.n_edges)
    vf = rng.uniform(0, 0.45, (17, fixed.size))
    s.factor(k)
    out = s.solve_free_batch(vf)
    assert out.shape == (17, net.n_nodes)
    close(out, DCSolver(net, fixed).solve_linear(k, vf))
    close(out[3], s.solve_free(vf[3]))


def test_linear_parallel_edges_and_no_hidden_nodes():
    # two parallel edges between the same nodes, and a network where every node is fixed
    # or a target (clamped state with no unknown)
    edges = np.array([[0, 1], [1, 2], [0, 1], [2, 3]])
    s = LinearTwinSolver(edges, 4, [0, 3], [1, 2])
    k = np.array([1.0, 2.0, 3.0, 4.0])
    s.factor(k)
    net = Network(("a", "b", "c", "d"), edges, ("hidden",) * 4)
    ref = DCSolver(net, [0, 3]).solve_linear(k, np.array([1.0, 0.0]))
    close(s.solve_free([1.0, 0.0]), ref)
    assert np.array_equal(s.solve_clamped([1.0, 0.0], [0.3, 0.2]), [1.0, 0.3, 0.2, 0.0])


def test_linear_errors():
    net, fixed, targets = NETWORKS["grid15"]()
    s = LinearTwinSolver(net.edges, net.n_nodes, fixed, targets, node_names=net.nodes)
    with pytest.raises(RuntimeError):
        s.solve_free(np.zeros(fixed.size))
    with pytest.raises(ValueError):
        s.factor(np.ones(net.n_edges - 1))
    k = np.ones(net.n_edges)
    s.factor(k)
    with pytest.raises(ValueError):
        s.solve_free(np.zeros(fixed.size + 1))
    with pytest.raises(ValueError):
        s.solve_clamped(np.zeros(fixed.size), np.zeros(targets.size + 1))
    # a corner node cut off by zero conductances: non-positive pivot, named
    corner = [j for j, (a, b) in enumerate(net.edges) if 0 in (a, b)]
    k[corner] = 0.0
    if 0 not in fixed:
        with pytest.raises(SingularMatrixError):
            s.factor(k)
    k[:] = np.nan
    with pytest.raises(SingularMatrixError):
        s.factor(k)
    # a component with no fixed node
    edges = np.array([[0, 1], [2, 3]])
    with pytest.raises(FloatingNodeError):
        LinearTwinSolver(edges, 4, [0], [1])
    with pytest.raises(ValueError):
        LinearTwinSolver(net.edges, net.n_nodes, [0, 1], [1, 2])


@st.composite
def small_networks(draw):
    n = draw(st.integers(3, 40))
    extra = draw(st.integers(0, 3 * n))
    n_edges = min(n - 1 + extra, n * (n - 1) // 2)
    seed = draw(st.integers(0, 2**31))
    net = random_connected(n, n_edges, seed=seed)
    n_fixed = draw(st.integers(1, n - 1))
    n_targets = draw(st.integers(0, n - n_fixed))
    fixed, targets = roles(net, n_fixed, n_targets, seed)
    span = draw(st.floats(0.0, 6.0))
    return net, fixed, targets, seed, span


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_networks())
def test_linear_kirchhoff_property(case):
    net, fixed, targets, seed, span = case
    rng = np.random.default_rng(seed)
    k = 10 ** rng.uniform(-span, 0, net.n_edges)
    vf = rng.uniform(-1, 1, fixed.size)
    vt = rng.uniform(-1, 1, targets.size)
    s = LinearTwinSolver(net.edges, net.n_nodes, fixed, targets)
    s.factor(k)
    a, b = net.edges[:, 0], net.edges[:, 1]
    for v, known in ((s.solve_free(vf), fixed), (s.solve_clamped(vf, vt), np.r_[fixed, targets])):
        assert np.array_equal(v[fixed], vf)
        i = k * (v[a] - v[b])
        net_i = np.bincount(a, i, net.n_nodes) - np.bincount(b, i, net.n_nodes)
        # the scale of the rounding error of each edge current: k (|v_a| + |v_b|)
        g = k * (np.abs(v[a]) + np.abs(v[b]))
        gross = np.bincount(a, g, net.n_nodes) + np.bincount(b, g, net.n_nodes)
        unknown = np.setdiff1d(np.arange(net.n_nodes), known)
        # Kirchhoff's current law at machine precision
        assert np.all(np.abs(net_i[unknown]) <= 1e-12 * gross[unknown] + 1e-300)
        # and the voltages are those of the reference solver
        ref = DCSolver(net, known).solve_linear(k, v[known])
        close(v, ref, 1e-12 * max(1.0, 10 ** (span / 2)))


# -- MOSFET edges ------------------------------------------------------------------------------


def mosfet_case(name, subthreshold, mismatch, seed=0):
    net, fixed, targets = NETWORKS[name]()
    rng = np.random.default_rng(seed)
    e = net.n_edges
    dev = Mosfet(
        e,
        s_a_per_v2=spread(8.5e-4, e, 0.05, mismatch, rng),
        vt_v=spread(0.66, e, 0.03, mismatch, rng),
        subthreshold_v=subthreshold,
    )
    vg = rng.uniform(1.5, 2.8, e)
    return net, fixed, targets, dev, vg, rng


def mos_reference(net, fixed, targets, dev, vg, vf, vt):
    free = DCSolver(net, fixed).solve(dev, vg, vf, 0)
    clamped = DCSolver(net, np.r_[fixed, targets]).solve(dev, vg, np.r_[vf, vt], 1)
    return free, clamped


@pytest.mark.parametrize("name", ["lattice", "random30", "grid15"])
@pytest.mark.parametrize("subthreshold", [0.1, None])
def test_mosfet_matches_dcsolver(name, subthreshold):
    net, fixed, targets, dev, vg, rng = mosfet_case(name, subthreshold, 0.02)
    m = MosfetTwinSolver.from_device(net, dev, fixed, targets)
    vf = rng.uniform(0, 0.45, fixed.size)
    vt = rng.uniform(0.05, 0.4, targets.size)
    ref_f, ref_c = mos_reference(net, fixed, targets, dev, vg, vf, vt)
    close(m.solve_free(vg, vf), ref_f)
    close(m.solve_clamped(vg, vf, vt), ref_c)


@pytest.mark.parametrize("subthreshold", [0.1, None])
def test_mosfet_warm_started_training_sequence(subthreshold):
    net, fixed, targets, dev, vg, rng = mosfet_case("lattice", subthreshold, 0.01, seed=3)
    m = MosfetTwinSolver.from_device(net, dev, fixed, targets)
    a, b = net.edges[:, 0], net.edges[:, 1]
    x = rng.uniform(0, 0.45, (4, net.sources.size))
    want = rng.uniform(0.05, 0.4, (4, targets.size))
    for step in range(24):
        vf = np.r_[x[step % 4], 0.0]
        v_f = m.solve_free(vg, vf).copy()
        o_c = v_f[targets] + (128 / 129) * (want[step % 4] - v_f[targets])
        v_c = m.solve_clamped(vg, vf, o_c).copy()
        ref_f, ref_c = mos_reference(net, fixed, targets, dev, vg, vf, o_c)
        close(v_f, ref_f)
        close(v_c, ref_c)
        if step:
            assert max(m.iterations) <= 8  # warm starts
        vg = np.clip(vg + 0.5 * ((v_f[a] - v_f[b]) ** 2 - (v_c[a] - v_c[b]) ** 2), 1.0, 5.5)
    m.reset()
    close(m.solve_free(vg, vf), DCSolver(net, fixed).solve(dev, vg, vf, 0))


def test_mosfet_sparse_path_and_twins():
    net, fixed, targets, dev, vg, rng = mosfet_case("grid15", 0.1, 0.03, seed=4)
    dense = MosfetTwinSolver.from_device(net, dev, fixed, targets)
    sparse = MosfetTwinSolver.from_device(net, dev, fixed, targets, dense_max=0)
    for _ in range(3):
        vf = rng.uniform(0, 0.45, fixed.size)
        vt = rng.uniform(0.05, 0.4, targets.size)
        ref_f, ref_c = mos_reference(net, fixed, targets, dev, vg, vf, vt)
        close(sparse.solve_free(vg, vf), ref_f)
        close(sparse.solve_clamped(vg, vf, vt), ref_c)
        close(dense.solve_free(vg, vf), ref_f)
        close(dense.solve_clamped(vg, vf, vt), ref_c)
        # the clamped state with the free twin's parameters
        ref_c0 = DCSolver(net, np.r_[fixed, targets]).solve(dev, vg, np.r_[vf, vt], 0)
        close(dense.solve_clamped(vg, vf, vt, twin=0), ref_c0)
        vg = np.clip(vg + rng.normal(0, 0.05, vg.size), 1.0, 5.5)


def test_mosfet_convergence_error_and_kirchhoff():
    net, fixed, targets, dev, vg, rng = mosfet_case("lattice", 0.1, 0.0)
    vf = rng.uniform(0, 0.45, fixed.size)
    m = MosfetTwinSolver.from_device(net, dev, fixed, targets, tol=Tolerances(max_iter=1))
    with pytest.raises(ConvergenceError) as info:
        m.solve_free(vg, vf)
    assert info.value.node in net.nodes and info.value.iterations == 1
    m = MosfetTwinSolver.from_device(net, dev, fixed, targets)
    v = m.solve_free(vg, vf)
    i, _, _ = dev.current(vg, v[net.edges[:, 0]], v[net.edges[:, 1]], 0)
    f = np.bincount(net.edges[:, 0], i, 16) - np.bincount(net.edges[:, 1], i, 16)
    unknown = np.setdiff1d(np.arange(16), fixed)
    assert np.max(np.abs(f[unknown])) <= 1e-18 + 1e-12 * np.max(np.abs(i))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([0.1, 0.05, None]), st.floats(0.8, 4.0))
def test_mosfet_kirchhoff_property(seed, subthreshold, gate_hi):
    net, fixed, targets = NETWORKS["random30"]()
    rng = np.random.default_rng(seed)
    e = net.n_edges
    dev = Mosfet(e, vt_v=rng.uniform(0.62, 0.7, (2, e)), subthreshold_v=subthreshold)
    # gates low enough that some edges sit in saturation or below threshold
    vg = rng.uniform(0.7, gate_hi, e)
    if subthreshold is None:
        vg = np.maximum(vg, 1.3)  # keep every node conducting: the solution is unique
    m = MosfetTwinSolver.from_device(net, dev, fixed, targets)
    a, b = net.edges[:, 0], net.edges[:, 1]
    for _ in range(3):
        vf = rng.uniform(0, 0.45, fixed.size)
        vt = rng.uniform(0, 0.45, targets.size)
        for known, twin in ((fixed, 0), (np.r_[fixed, targets], 1)):
            try:
                v = m.solve_free(vg, vf) if twin == 0 else m.solve_clamped(vg, vf, vt)
            except ConvergenceError:
                # only where the reference (cold start) fails as well
                with pytest.raises(ConvergenceError):
                    DCSolver(net, known).solve(dev, vg, np.r_[vf, vt][: known.size], twin)
                continue
            i, _, _ = dev.current(vg, v[a], v[b], twin)
            f = np.bincount(a, i, net.n_nodes) - np.bincount(b, i, net.n_nodes)
            unknown = np.setdiff1d(np.arange(net.n_nodes), known)
            assert np.max(np.abs(f[unknown])) <= 1e3 * (1e-18 + 1e-12 * np.max(np.abs(i)))
        vg = np.clip(vg + rng.normal(0, 0.02, e), 0.7, 5.5)


def test_inputs_are_coerced():
    # lists, integer arrays and strided views give the same answer as float64 arrays
    net, fixed, targets = NETWORKS["lattice"]()
    s = LinearTwinSolver(net.edges, net.n_nodes, fixed, targets)
    k = np.linspace(1e-3, 2e-3, 2 * net.n_edges)
    vf = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    s.factor(k[::2])
    a = s.solve_free(vf).copy()
    s.factor(np.ascontiguousarray(k[::2]))
    assert np.array_equal(a, s.solve_free(list(vf)))
    c = s.solve_clamped(vf, [0, 1]).copy()
    assert np.array_equal(c, s.solve_clamped(vf, np.array([0.0, 1.0])))
    assert c[targets[1]] == 1.0
