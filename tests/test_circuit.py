"""The DC solver: analytic circuits, Kirchhoff's law, dense and sparse paths, Newton on MOSFETs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from instruments.sim import circuit
from instruments.sim.circuit import (
    DENSE_MAX_UNKNOWNS,
    ConvergenceError,
    DCSolver,
    FloatingNodeError,
    Tolerances,
    check_floating,
    solve_dc,
)
from instruments.sim.edges import GEN2_S_A_PER_V2, EdgeDevice, MixedEdges, Mosfet, Resistor
from instruments.sim.network import Network, from_edge_list, random_connected, square_grid

EPS = np.finfo(float).eps
S = GEN2_S_A_PER_V2


def resistors(net: Network) -> Resistor:
    return Resistor(net.n_edges, state_min=0.0)


def edge_currents(net, device, state, v, twin=0):
    return device.current(state, v[net.edges[:, 0]], v[net.edges[:, 1]], twin)[0]


def kcl(solver, device, state, v, twin=0):
    """Largest current imbalance (A) at an unknown node, and the largest edge current (A)."""
    r = solver.residual(device, state, v, twin)[solver.unknown]
    i = edge_currents(solver.network, device, state, v, twin)
    return float(np.max(np.abs(r), initial=0.0)), float(np.max(np.abs(i)))


def fixed_of(net, *names):
    return np.array([net.index(n) for n in names])


# -- analytic linear circuits ---------------------------------------------------------------


def test_series_divider():
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    g1, g2 = 1 / 1e3, 1 / 3e3  # 1 kOhm over 3 kOhm
    v = solve_dc(net, resistors(net), [g1, g2], {"in": 0.4, "gnd": 0.0})
    assert v[net.index("mid")] == pytest.approx(0.4 * 3e3 / 4e3, rel=1e-15)


def test_parallel_edges_add_their_conductances():
    net = from_edge_list([("in", "mid"), ("in", "mid"), ("mid", "gnd")])
    g = np.array([1e-3, 2e-3, 3e-3])
    v = solve_dc(net, resistors(net), g, {"in": 0.45, "gnd": 0.0})
    assert v[1] == pytest.approx(0.45 * 3e-3 / 6e-3, rel=1e-15)
    i = edge_currents(net, resistors(net), g, v)
    assert i[0] + i[1] == pytest.approx(i[2], rel=1e-15)


def bridge(r1, r2, r3, r4, rg, vs=0.45):
    net = from_edge_list([("top", "a"), ("a", "bot"), ("top", "b"), ("b", "bot"), ("a", "b")])
    k = 1 / np.array([r1, r2, r3, r4, rg])
    v = solve_dc(net, resistors(net), k, {"top": vs, "bot": 0.0})
    return v[net.index("a")] - v[net.index("b")]


def test_balanced_wheatstone_bridge_carries_no_bridge_current():
    assert abs(bridge(1e3, 2e3, 5e3, 10e3, 470.0)) < 1e-16


@pytest.mark.parametrize(
    "r", [(1e3, 2e3, 3e3, 1e3, 470.0), (40.0, 32e3, 1e3, 1e3, 10e3), (1e3, 1e3, 1e3, 1.01e3, 1e3)]
)
def test_unbalanced_wheatstone_bridge_matches_thevenin(r):
    r1, r2, r3, r4, rg = r
    vs = 0.45
    v_th = vs * (r2 / (r1 + r2) - r4 / (r3 + r4))
    r_th = r1 * r2 / (r1 + r2) + r3 * r4 / (r3 + r4)
    assert bridge(r1, r2, r3, r4, rg, vs) == pytest.approx(v_th * rg / (r_th + rg), rel=1e-13)


@pytest.mark.parametrize("sections", [1, 5, 30])
def test_r_2r_ladder_halves_at_every_node(sections):
    # n0 --R-- n1 --R-- n2 ... n_N; 2R from every n_k to ground, and a second 2R at n_N:
    # every node sees R to ground downstream, so v_k = V / 2^k
    pairs = [(f"n{k - 1}", f"n{k}") for k in range(1, sections + 1)]
    pairs += [(f"n{k}", "gnd") for k in range(1, sections + 1)] + [(f"n{sections}", "gnd")]
    net = from_edge_list(pairs)
    r = 1e3
    k = np.r_[np.full(sections, 1 / r), np.full(sections + 1, 1 / (2 * r))]
    v = solve_dc(net, resistors(net), k, {"n0": 0.4, "gnd": 0.0})
    expected = 0.4 / 2.0 ** np.arange(sections + 1)
    assert np.allclose(v[[net.index(f"n{j}") for j in range(sections + 1)]], expected, rtol=1e-13, atol=0)


@given(st.integers(1, 60), st.floats(0.0, 0.45), st.floats(0.0, 0.45))
@settings(max_examples=30, deadline=None)
def test_uniform_chain_is_linear_in_position(n, va, vb):
    net = from_edge_list([(f"n{j}", f"n{j + 1}") for j in range(n)])
    v = solve_dc(net, resistors(net), np.full(n, 2e-3), {"n0": va, f"n{n}": vb})
    assert np.allclose(v, va + (vb - va) * np.arange(n + 1) / n, rtol=0, atol=1e-15)


def test_all_nodes_fixed_returns_the_fixed_voltages():
    net = from_edge_list([("a", "b")])
    assert solve_dc(net, resistors(net), [1e-3], {"b": 0.2, "a": 0.1}).tolist() == [0.1, 0.2]


# -- Kirchhoff's law on random networks -----------------------------------------------------


@st.composite
def random_problem(draw, max_decades):
    n = draw(st.integers(3, 60))
    m = draw(st.integers(n - 1, min(n * (n - 1) // 2, 3 * n)))
    seed = draw(st.integers(0, 2**32 - 1))
    decades = draw(st.floats(0.0, max_decades))
    rng = np.random.default_rng(seed)
    net = random_connected(n, m, seed=seed)
    fixed = rng.choice(n, int(rng.integers(2, min(4, n - 1) + 1)), replace=False)
    k = 10 ** rng.uniform(-1 - decades, -1, m)
    vf = rng.uniform(0, 0.45, fixed.size)
    return net, fixed, k, vf


@given(random_problem(max_decades=3.0))
@settings(max_examples=100, deadline=None)
def test_kirchhoff_residual_at_machine_precision(problem):
    net, fixed, k, vf = problem
    vf[:2] = 0.0, 0.45  # the full input range, so edge currents are not all tiny
    solver = DCSolver(net, fixed)
    v = solver.solve_linear(k, vf)
    worst, largest = kcl(solver, resistors(net), k, v)
    assert worst <= 1e-12 * largest


@given(random_problem(max_decades=9.0))
@settings(max_examples=100, deadline=None)
def test_kirchhoff_residual_at_the_rounding_of_node_voltages(problem):
    # however wide the conductance range, each node balances to the rounding of its own
    # edges' currents: eps * (sum of its conductances) * (largest voltage)
    net, fixed, k, vf = problem
    solver = DCSolver(net, fixed)
    v = solver.solve_linear(k, vf)
    r = solver.residual(resistors(net), k, v)
    k_node = np.bincount(net.edges[:, 0], k, net.n_nodes) + np.bincount(net.edges[:, 1], k, net.n_nodes)
    floor = EPS * k_node * max(np.max(np.abs(vf)), 1e-3)
    assert np.all(np.abs(r[solver.unknown]) <= 2 * floor[solver.unknown])


@given(random_problem(max_decades=4.0))
@settings(max_examples=25, deadline=None)
def test_source_currents_balance(problem):
    # what the fixed nodes deliver sums to zero: no charge is lost
    net, fixed, k, vf = problem
    solver = DCSolver(net, fixed)
    v = solver.solve_linear(k, vf)
    r = solver.residual(resistors(net), k, v)
    assert abs(r.sum()) <= 1e-12 * np.max(np.abs(edge_currents(net, resistors(net), k, v))) + 1e-30


@given(random_problem(max_decades=4.0), st.integers(1, 8))
@settings(max_examples=25, deadline=None)
def test_batch_solve_equals_solves_one_by_one(problem, batch):
    net, fixed, k, _ = problem
    vf = np.random.default_rng(batch).uniform(0, 0.45, (batch, fixed.size))
    solver = DCSolver(net, fixed)
    together = solver.solve_linear(k, vf)
    assert together.shape == (batch, net.n_nodes)
    for b in range(batch):
        assert np.allclose(together[b], solver.solve_linear(k, vf[b]), rtol=1e-13, atol=1e-16)


# -- dense and sparse paths -------------------------------------------------------------------


def test_path_is_chosen_by_the_number_of_unknowns():
    small = square_grid(10, 10)
    assert DCSolver(small, [0, 99]).dense
    big = square_grid(15, 15)  # 223 unknowns
    assert big.n_nodes - 2 > DENSE_MAX_UNKNOWNS
    assert not DCSolver(big, [0, 224]).dense


def both_paths(monkeypatch, net, fixed):
    """A solver on each path for the same problem."""
    monkeypatch.setattr(circuit, "DENSE_MAX_UNKNOWNS", 10**9)
    dense = DCSolver(net, fixed)
    monkeypatch.setattr(circuit, "DENSE_MAX_UNKNOWNS", 0)
    sparse = DCSolver(net, fixed)
    assert dense.dense and not sparse.dense
    return dense, sparse


@pytest.mark.parametrize(
    "net", [square_grid(15, 15), random_connected(120, 300, seed=4)], ids=["grid", "random"]
)
def test_dense_and_sparse_linear_solves_agree(monkeypatch, net):
    rng = np.random.default_rng(0)
    fixed = rng.choice(net.n_nodes, 4, replace=False)
    dense, sparse = both_paths(monkeypatch, net, fixed)
    k = 10 ** rng.uniform(-5, -1, net.n_edges)
    vf = rng.uniform(0, 0.45, (3, 4))
    assert np.allclose(dense.solve_linear(k, vf), sparse.solve_linear(k, vf), rtol=1e-12, atol=1e-15)


def test_dense_and_sparse_newton_agree(monkeypatch):
    net = random_connected(60, 150, seed=5)
    rng = np.random.default_rng(1)
    fixed = rng.choice(net.n_nodes, 4, replace=False)
    dense, sparse = both_paths(monkeypatch, net, fixed)
    dev = Mosfet(net.n_edges)
    vg = rng.uniform(1.0, 3.0, net.n_edges)
    vf = np.array([0.0, 0.45, 0.2, 0.3])
    assert np.allclose(dense.solve(dev, vg, vf), sparse.solve(dev, vg, vf), rtol=0, atol=1e-12)


# -- MOSFET networks: Newton's method -----------------------------------------------------------


def test_mosfet_in_series_with_a_resistor_matches_the_root_of_its_equation():
    # in (0.45 V) --MOSFET, gate 2 V-- mid --1 kOhm-- ground; the MOSFET is in triode with mid
    # as its source: S (V_G - V_T - (0.45 + x)/2)(0.45 - x) = x / 1 kOhm
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    dev = MixedEdges(2, parts=((Mosfet(1, subthreshold_v=None), [0]), (Resistor(1), [1])))
    v = solve_dc(net, dev, [2.0, 1e-3], {"in": 0.45, "gnd": 0.0})

    def balance(x):
        return S * (2.0 - 0.7 - (0.45 + x) / 2) * (0.45 - x) - x * 1e-3

    assert v[1] == pytest.approx(brentq(balance, 0.0, 0.45, xtol=1e-16), rel=1e-12)


def test_parallel_mosfets_act_as_one_with_the_sum_of_their_s():
    pair = from_edge_list([("in", "mid"), ("in", "mid"), ("mid", "gnd")])
    single = from_edge_list([("in", "mid"), ("mid", "gnd")])
    fixed_v = {"in": 0.45, "gnd": 0.0}
    v2 = solve_dc(pair, Mosfet(3), [1.2, 1.2, 2.5], fixed_v)
    v1 = solve_dc(single, Mosfet(2, s_a_per_v2=[[2 * S, S]]), [1.2, 2.5], fixed_v)
    assert v2[1] == pytest.approx(v1[1], rel=1e-12)


@st.composite
def mosfet_problem(draw, gate_min_v=(0.6, 1.0)):
    n = draw(st.integers(4, 40))
    m = draw(st.integers(n - 1, min(n * (n - 1) // 2, 3 * n)))
    seed = draw(st.integers(0, 2**32 - 1))
    sub_v = draw(st.sampled_from([0.1, 0.05]))
    rng = np.random.default_rng(seed)
    net = random_connected(n, m, seed=seed)
    fixed = rng.choice(n, int(rng.integers(2, 5)), replace=False)
    # gates from below threshold to well on: triode, saturation and subthreshold edges
    vg = rng.uniform(draw(st.sampled_from(gate_min_v)), 3.0, m)
    dev = Mosfet(m, vt_v=rng.uniform(0.62, 0.7, (2, m)), subthreshold_v=sub_v, state_min=0.5)
    vf = rng.uniform(0, 0.45, (2, fixed.size))
    return net, fixed, dev, vg, vf


@given(mosfet_problem())
@settings(max_examples=60, deadline=None)
def test_newton_converges_to_kirchhoff_on_mosfet_networks(problem):
    net, fixed, dev, vg, vf = problem
    solver = DCSolver(net, fixed)
    for twin in (0, 1):
        v = solver.solve(dev, vg, vf[0], twin)
        worst, largest = kcl(solver, dev, vg, v, twin)
        assert worst <= 1e3 * (1e-18 + 1e-12 * largest)
        assert np.all((v >= -1e-12) & (v <= 0.45 + 1e-12))  # passive: within the source range


@given(mosfet_problem(), st.floats(-0.5, 1.0))
@settings(max_examples=60, deadline=None)
def test_newton_converges_from_any_start(problem, offset):
    # starts far outside the source range, with edges reversed, saturated and cut off
    net, fixed, dev, vg, vf = problem
    solver = DCSolver(net, fixed)
    v0 = np.random.default_rng(0).uniform(-0.5, 1.0, net.n_nodes) + offset
    v = solver.solve(dev, vg, vf[0], v0=v0)
    worst, largest = kcl(solver, dev, vg, v)
    assert worst <= 1e3 * (1e-18 + 1e-12 * largest)


@given(mosfet_problem(gate_min_v=(1.0,)))
@settings(max_examples=30, deadline=None)
def test_warm_start_gives_the_same_answer(problem):
    # (gates from 1 V: a node held only by deep-subthreshold edges is determined only to
    # tolerance / its conductance, which can be millivolts)
    net, fixed, dev, vg, vf = problem
    solver = DCSolver(net, fixed)
    cold = solver.solve(dev, vg, vf[1])
    previous = solver.solve(dev, vg, vf[0])
    warm = solver.solve(dev, vg, vf[1], v0=previous)
    assert np.allclose(warm, cold, rtol=0, atol=1e-9)
    # started at the answer, Newton stops at once
    solver.solve(dev, vg, vf[1], v0=cold)
    assert solver.iterations <= 1


def test_warm_start_replaces_the_fixed_voltages():
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    solver = DCSolver(net, fixed_of(net, "in", "gnd"))
    v = solver.solve(Mosfet(2), [2.0, 2.0], [0.3, 0.0], v0=np.array([9.0, 0.1, 9.0]))
    assert (v[0], v[2]) == (0.3, 0.0)


def test_twin_parameters_are_used_by_newton():
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    dev = Mosfet(2, vt_v=[[0.7, 0.7], [0.7, 0.6]])  # the clamped twin's lower edge is stronger
    solver = DCSolver(net, fixed_of(net, "in", "gnd"))
    free = solver.solve(dev, [2.0, 2.0], [0.45, 0.0], twin=0)
    clamped = solver.solve(dev, [2.0, 2.0], [0.45, 0.0], twin=1)
    assert clamped[1] < free[1] - 1e-3


# -- the stall of global step scaling ------------------------------------------------------------


def test_newton_does_not_stall_on_a_node_held_only_by_weak_edges():
    # h hangs on two MOSFETs with their gates near threshold; the rest of the network is
    # well on. Started with h at the top rail (the other nodes at 0 V), h is the drain of
    # both its edges and they are in (subthreshold) saturation: its Jacobian row is almost
    # zero and its Newton step enormous. Scaling the whole step down to max_step_v froze
    # every other node, and Newton gave up after max_iter; limiting each node on its own
    # lets the others take their full step.
    net = from_edge_list(
        [("in", "m1"), ("m1", "m2"), ("m2", "gnd"), ("in", "m2"), ("m1", "gnd"), ("h", "m1"), ("h", "m2")]
    )
    gates = np.array([3.0, 2.5, 3.5, 2.0, 4.0, 0.75, 0.75])
    dev = Mosfet(net.n_edges)
    solver = DCSolver(net, fixed_of(net, "in", "gnd"))
    cold = solver.solve(dev, gates, [0.45, 0.0])
    v0 = np.zeros(net.n_nodes)
    v0[net.index("h")] = 0.45
    warm = solver.solve(dev, gates, [0.45, 0.0], v0=v0)
    assert solver.iterations <= 30
    worst, largest = kcl(solver, dev, gates, warm)
    assert worst <= 1e-12 * largest
    assert np.allclose(warm, cold, rtol=0, atol=1e-9)


def test_node_on_a_single_saturated_edge_goes_straight_to_its_neighbour():
    # The leaf is the drain of its only edge, in saturation: the edge's current does not
    # depend on the leaf's voltage, so Newton's step is useless. The chord step puts the leaf
    # where the current vanishes, at its neighbour's voltage.
    net = from_edge_list([("in", "leaf")])
    solver = DCSolver(net, [0])
    # (Overdrive 1.2 - 0.7 - 0.3 = 0.2 V, above v_join, and Vds = 0.5 V: level-1 saturation.
    # Below threshold the current depends on Vds, as a real device's does, and Newton works.)
    v = solver.solve(Mosfet(1), [1.2], [0.3], v0=np.array([0.3, 0.8]))
    assert v[1] == pytest.approx(0.3, abs=1e-12)
    assert solver.iterations <= 2
    v = solver.solve(Mosfet(1), [0.8], [0.3], v0=np.array([0.3, 0.38]))
    assert v[1] == pytest.approx(0.3, abs=1e-12)
    assert solver.iterations <= 8


def test_node_steps_are_limited_to_max_step_v():
    # one Newton iteration from a start 2 V off: no node moves by more than max_step_v, and
    # both far-off nodes move (limited, not frozen)
    net = from_edge_list([("in", "m1"), ("m1", "m2"), ("m2", "gnd")])
    seen = []

    class Recording(Mosfet):
        def current(self, state, va, vb, twin=0):
            seen.append(np.r_[va[1], vb[1]])  # m1 and m2, the terminals of edge 1
            return super().current(state, va, vb, twin)

    solver = DCSolver(net, fixed_of(net, "in", "gnd"), Tolerances(max_iter=1, max_step_v=0.1))
    with pytest.raises(ConvergenceError):
        solver.solve(Recording(3), [2.0, 2.0, 2.0], [0.45, 0.0], v0=np.array([0.45, 2.0, -2.0, 0.0]))
    moves = np.max(np.abs(np.array(seen) - seen[0]), axis=0)
    assert np.all(moves <= 0.1 + 1e-15)
    assert np.all(moves > 0.05)


# -- errors ---------------------------------------------------------------------------------------


def test_floating_nodes_are_named_exactly():
    net = from_edge_list([("in", "a"), ("a", "gnd"), ("x", "y"), ("y", "z"), ("lone", "x")])
    with pytest.raises(FloatingNodeError) as err:
        DCSolver(net, fixed_of(net, "in", "gnd"))
    assert err.value.nodes == ["x", "y", "z", "lone"]
    assert "4 node(s) have no path to a fixed-voltage node: x, y, z, lone" in str(err.value)
    check_floating(net, fixed_of(net, "in", "gnd", "z"))  # a fixed node in the island: fine


def test_node_without_edges_is_floating():
    net = from_edge_list([("in", "gnd")], roles={"spare": "hidden"})
    with pytest.raises(FloatingNodeError, match="1 node\\(s\\) .*: spare$"):
        solve_dc(net, resistors(net), [1e-3], {"in": 0.1, "gnd": 0.0})


def test_no_fixed_node_makes_every_node_floating():
    net = from_edge_list([("a", "b")])
    with pytest.raises(FloatingNodeError) as err:
        DCSolver(net, [])
    assert err.value.nodes == ["a", "b"]


def test_many_floating_nodes_are_summarised():
    net = square_grid(5, 5)
    island = Network(net.nodes + ("f",), np.r_[net.edges, [[0, 1]]], net.roles + ("hidden",))
    with pytest.raises(FloatingNodeError) as err:
        DCSolver(island, [25])
    assert len(err.value.nodes) == 25
    assert str(err.value).endswith("and 5 more")


def test_bad_fixed_indices_are_rejected():
    net = from_edge_list([("a", "b")])
    with pytest.raises(ValueError, match="fixed twice"):
        DCSolver(net, [0, 0])
    with pytest.raises(ValueError, match=r"fixed node index outside 0\.\.1: \[0, 2\]"):
        DCSolver(net, [0, 2])
    with pytest.raises(ValueError, match="outside"):
        DCSolver(net, [-1])


def test_convergence_error_after_max_iter_names_the_worst_node():
    # a linear branch (node "lin", balanced by the first Newton step) beside a MOSFET branch
    # far from its answer (node "mos"): after one iteration "mos" is the worst node
    net = from_edge_list([("in", "lin"), ("lin", "gnd"), ("in", "mos"), ("mos", "gnd")])
    dev = MixedEdges(4, parts=((Resistor(2), [0, 1]), (Mosfet(2), [2, 3])))
    solver = DCSolver(net, fixed_of(net, "in", "gnd"), Tolerances(max_iter=1))
    with pytest.raises(ConvergenceError) as err:
        solver.solve(dev, [1e-3, 1e-3, 1.2, 3.0], [0.45, 0.0])
    e = err.value
    assert (e.iterations, e.node) == (1, "mos")
    assert e.residual_a > 1e-9
    assert str(e).startswith(
        f"DC solve did not converge in 1 iterations: worst node mos, residual {e.residual_a:.3e} A"
    )
    # with the default budget the same problem converges
    v = DCSolver(net, fixed_of(net, "in", "gnd")).solve(dev, [1e-3, 1e-3, 1.2, 3.0], [0.45, 0.0])
    assert v[net.index("lin")] == pytest.approx(0.225, rel=1e-12)


class Switch(EdgeDevice):
    """A pathological edge: a current step of ``i0_a`` (A) at zero drop plus a 1 uS leak."""

    linear = False

    def __init__(self, i0_a):
        super().__init__(len(i0_a))
        self.i0_a = np.asarray(i0_a, float)

    def conductance(self, state, va=None, vb=None, twin=0):
        return np.full(self.n_edges, 1e-6)

    def current(self, state, va, vb, twin=0):
        dv = np.asarray(va) - np.asarray(vb)
        return self.i0_a * np.sign(dv) + 1e-6 * dv, np.full(dv.shape, 1e-6), np.full(dv.shape, -1e-6)


def test_convergence_error_when_no_solution_exists():
    # 1 mA can flow into h and 2 mA out of it, never the same: there is no operating point
    net = from_edge_list([("in", "h"), ("h", "gnd")])
    solver = DCSolver(net, fixed_of(net, "in", "gnd"))
    with pytest.raises(ConvergenceError, match=r"did not converge in 100 iterations: worst node h") as err:
        solver.solve(Switch([1e-3, 2e-3]), np.zeros(2), [0.45, 0.0])
    assert err.value.iterations == 100 and err.value.node == "h"
    assert err.value.residual_a >= 0.99e-3  # at best 1 mA in, 2 mA out, less the leaks


def test_solve_dc_by_node_names():
    net = square_grid(3, 3)
    v = solve_dc(net, resistors(net), np.full(12, 1e-3), {"r0c0": 0.45, "r2c2": 0.0})
    assert v[net.index("r1c1")] == pytest.approx(0.225, rel=1e-14)  # the centre, by symmetry
    with pytest.raises(Exception, match="no node named 'r9c9'"):
        solve_dc(net, resistors(net), np.full(12, 1e-3), {"r9c9": 0.45})
