"""The simulated twin pair: its two states, the training step, and coupled learning's gradient."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from instruments.sim.circuit import DCSolver, FloatingNodeError
from instruments.sim.edges import Digipot, Mosfet, Resistor, spread
from instruments.sim.network import Network, Role, gen2_lattice, random_connected, square_grid
from instruments.sim.rules import CoupledLearning, DropSensor, GateCharging, Nudge, TapRule
from instruments.sim.twin import TwinNetwork


def roles(net: Network, n_src: int, n_tgt: int, seed: int) -> Network:
    pick = np.random.default_rng(seed).choice(net.n_nodes, n_src + n_tgt + 1, replace=False)
    return net.with_roles(sources=pick[:n_src].tolist(), targets=pick[n_src:-1].tolist(), ground=int(pick[-1]))


def linear_twin(net, seed=0, **kw):
    rng = np.random.default_rng(seed)
    k = 10 ** rng.uniform(-4, -2, net.n_edges)
    return TwinNetwork(net, Resistor(net.n_edges, state_min=1e-6, state_max=1.0), k, **kw)


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def finite_difference_gradient(twin, cost):
    k0 = twin.state
    grad = np.empty(k0.size)
    for j in range(k0.size):
        h = 1e-6 * k0[j]
        up, down = k0.copy(), k0.copy()
        up[j] += h
        down[j] -= h
        grad[j] = (cost(up) - cost(down)) / (2 * h)
    twin.state = k0
    return grad


def small_eta_case(n_nodes, n_targets, seed):
    rng = np.random.default_rng(seed)
    n_edges = min(n_nodes * (n_nodes - 1) // 2, int(rng.integers(n_nodes, 3 * n_nodes)))
    net = roles(random_connected(n_nodes, n_edges, seed=seed), 2, n_targets, seed)
    eta = 1e-5
    twin = linear_twin(net, seed, rule=CoupledLearning(alpha=1e-6, eta=eta), nudge=Nudge(eta=eta))
    x = rng.uniform(0, 0.45, 2)
    desired = twin.outputs(x) + rng.choice([-1.0, 1.0], n_targets) * rng.uniform(0.01, 0.05, n_targets)
    return twin, x, desired


def coupled_update(twin, x, desired):
    k0 = twin.state
    twin.step(x, desired)
    update = twin.state - k0
    twin.state = k0
    return update


@settings(max_examples=40, deadline=None)
@given(st.integers(6, 30), st.integers(0, 2**31 - 1))
def test_small_eta_update_points_down_the_gradient_of_the_output_error(n_nodes, seed):
    twin, x, desired = small_eta_case(n_nodes, 1, seed)

    def cost(k):
        twin.state = k
        d = twin.outputs(x) - desired
        return 0.5 * float(d @ d)

    grad = finite_difference_gradient(twin, cost)
    # An output that no conductance can move (a target hanging off a source through a dead
    # end) has no descent direction; its finite-difference gradient is rounding noise.
    assume(np.max(np.abs(grad * twin.state)) > 1e-6 * np.sqrt(2 * cost(twin.state)))
    assert cosine(coupled_update(twin, x, desired), -grad) >= 0.99


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 30), st.integers(2, 3), st.integers(0, 2**31 - 1))
def test_with_several_targets_the_update_descends_the_response_weighted_error(n_nodes, n_targets, seed):
    # Clamping several targets at once weighs their errors by the inverse of the free
    # state's transfer resistance between the targets, R_TT (an effective metric, frozen at
    # the current state): the update follows the gradient of 1/2 (O_F - L)^T R_TT^-1 (O_F - L),
    # which is the plain output error for a single target.
    twin, x, desired = small_eta_case(n_nodes, n_targets, seed)
    net = twin.network
    unknown = DCSolver(net, twin.fixed).unknown
    inc = net.incidence()
    lap = (inc.T @ inc.multiply(twin.state[:, None])).toarray()
    r = np.linalg.inv(lap[np.ix_(unknown, unknown)])
    pos = np.searchsorted(unknown, net.targets)
    metric = np.linalg.inv(r[np.ix_(pos, pos)])

    def cost(k):
        twin.state = k
        d = twin.outputs(x) - desired
        return 0.5 * float(d @ metric @ d)

    grad = finite_difference_gradient(twin, cost)
    # An output that no conductance can move (a target hanging off a source through a dead
    # end) has no descent direction; its finite-difference gradient is rounding noise.
    assume(np.max(np.abs(grad * twin.state)) > 1e-6 * np.sqrt(2 * cost(twin.state)))
    assert cosine(coupled_update(twin, x, desired), -grad) >= 0.99


def test_free_state_solves_kirchhoff_with_the_sources_and_ground_fixed():
    net = gen2_lattice()
    twin = linear_twin(net)
    x = np.array([0.1, 0.45, 0.0, 0.3])
    v = twin.free_state(x)
    ref = DCSolver(net, twin.fixed).solve_linear(twin.conductance(), np.r_[x, 0.0])
    np.testing.assert_allclose(v, ref, rtol=1e-12, atol=1e-15)
    assert v[net.ground] == 0.0
    np.testing.assert_array_equal(v[net.sources], x)


def test_clamped_state_holds_targets_at_the_nudged_values():
    net = gen2_lattice()
    twin = linear_twin(net)
    x = np.array([0.1, 0.45, 0.0, 0.3])
    v = twin.clamped_state(x, [0.2, 0.05])
    np.testing.assert_array_equal(v[net.targets], [0.2, 0.05])
    ref = DCSolver(net, np.r_[twin.fixed, net.targets]).solve_linear(
        twin.conductance(twin=1), np.r_[x, 0.0, 0.2, 0.05]
    )
    np.testing.assert_allclose(v, ref, rtol=1e-12, atol=1e-15)


def test_step_imposes_the_nudge_and_reports_the_error_before_learning():
    net = gen2_lattice()
    twin = linear_twin(net, rule=CoupledLearning(alpha=1e-3, eta=0.5), nudge=Nudge(eta=0.5))
    x = np.array([0.1, 0.45, 0.0, 0.3])
    free = twin.outputs(x)
    res = twin.step(x, [0.3, 0.1])
    np.testing.assert_allclose(res.o_free, free, rtol=1e-13)
    np.testing.assert_allclose(res.o_clamped, free + 0.5 * (np.array([0.3, 0.1]) - free), rtol=1e-13)
    assert res.error == pytest.approx(0.5 * np.sum((free - [0.3, 0.1]) ** 2), rel=1e-12)
    assert res.learned


def test_learn_false_leaves_the_state_unchanged():
    twin = linear_twin(gen2_lattice(), rule=CoupledLearning(alpha=1e-2))
    before = twin.state
    res = twin.step([0.1, 0.45, 0.0, 0.3], [0.3, 0.1], learn=False)
    assert not res.learned
    np.testing.assert_array_equal(twin.state, before)


def test_update_only_on_error_skips_correctly_classified_samples():
    net = gen2_lattice()
    twin = linear_twin(net, rule=CoupledLearning(alpha=1e-2), update_only_on_error="difference")
    x = np.array([0.1, 0.45, 0.0, 0.3])
    o = twin.outputs(x)
    right = np.array([o[0], o[1]]) + np.sign(o[0] - o[1]) * np.array([0.01, -0.01])
    before = twin.state
    assert not twin.step(x, right).learned
    np.testing.assert_array_equal(twin.state, before)
    assert twin.step(x, right[::-1]).learned
    assert not np.array_equal(twin.state, before)


def teacher_task(net, device, teacher_state, n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.45, (n, net.sources.size))
    y = TwinNetwork(net, device, teacher_state).outputs(x)
    return x, y


def train(twin, x, y, steps, seed=0):
    order = np.random.default_rng(seed).integers(len(x), size=steps)
    for i in order:
        twin.step(x[i], y[i])


def test_coupled_learning_on_resistors_learns_a_teacher_network():
    net = gen2_lattice()
    dev = Resistor(net.n_edges, state_min=1e-5, state_max=1e-2)
    rng = np.random.default_rng(2)
    x, y = teacher_task(net, dev, 10 ** rng.uniform(-4, -2.5, net.n_edges))
    twin = TwinNetwork(net, dev, np.full(net.n_edges, 10**-3.25), rule=CoupledLearning(alpha=2e-2))
    before = twin.error(x, y)
    train(twin, x, y, 600)
    assert twin.error(x, y) < 1e-3 * before


def test_gen2_gate_charging_lowers_the_error_of_mosfet_lattice():
    net = gen2_lattice()
    dev = Mosfet(net.n_edges)
    rng = np.random.default_rng(4)
    x, y = teacher_task(net, dev, rng.uniform(1.5, 4.5, net.n_edges))
    twin = TwinNetwork(net, dev, np.full(net.n_edges, 2.5), rule=GateCharging(pulse_s=200e-6, gain_per_v=1.0))
    before = twin.error(x, y)
    train(twin, x, y, 1500)
    assert twin.error(x, y) < 0.5 * before


def test_gen1_tap_rule_lowers_the_error_of_digipot_network():
    net = gen2_lattice()
    dev = Digipot(net.n_edges)
    rng = np.random.default_rng(5)
    x, y = teacher_task(net, dev, rng.integers(20, 80, net.n_edges).astype(float))
    twin = TwinNetwork(net, dev, np.full(net.n_edges, 50.0), rule=TapRule(dead_band_v2=1e-6, update_probability=0.3))
    before = twin.error(x, y)
    train(twin, x, y, 400)
    assert twin.error(x, y) < 0.5 * before
    assert np.array_equal(twin.state, np.rint(twin.state))


def test_a_fixed_seed_gives_the_same_run():
    def run():
        net = gen2_lattice()
        twin = linear_twin(
            net,
            rule=CoupledLearning(alpha=1e-2, update_probability=0.5),
            sensor=DropSensor(noise_v=1e-3, lsb_v=1e-4),
            seed=11,
        )
        x, y = teacher_task(net, twin.device, np.full(net.n_edges, 1e-3))
        train(twin, x, y, 50)
        return twin.state

    np.testing.assert_array_equal(run(), run())


@pytest.mark.parametrize("kind", ["resistor", "mosfet", "digipot"])
def test_compiled_and_reference_backends_train_identically_with_twin_mismatch(kind):
    net = roles(square_grid(5, 6), 3, 2, 7)
    e = net.n_edges
    rng = np.random.default_rng(8)
    if kind == "resistor":
        dev = Resistor(e, gain=spread(1.0, e, 0.1, 0.02, rng), state_min=1e-5, state_max=1e-1)
        state, rule = 10 ** rng.uniform(-4, -2, e), CoupledLearning(alpha=1e-2)
    elif kind == "mosfet":
        dev = Mosfet(e, s_a_per_v2=spread(8.5e-4, e, 0.1, 0.02, rng), vt_v=spread(0.7, e, 0.02, 0.01, rng))
        state, rule = rng.uniform(1.5, 3.0, e), GateCharging(gain_per_v=10.0)
    else:
        dev = Digipot(e, gain=spread(1.0, e, 0.05, 0.01, rng))
        state, rule = rng.integers(10, 90, e).astype(float), TapRule(dead_band_v2=1e-5)
    x, y = teacher_task(net, dev, state[::-1].copy())
    twins = [TwinNetwork(net, dev, state, rule=rule, backend=b) for b in ("auto", "reference")]
    for tw in twins:
        train(tw, x, y, 40)
    np.testing.assert_allclose(twins[0].state, twins[1].state, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(twins[0].outputs(x), twins[1].outputs(x), rtol=1e-9, atol=1e-13)


def test_batch_outputs_equal_one_by_one_outputs():
    net = roles(square_grid(6, 6, periodic=True), 3, 3, 2)
    twin = linear_twin(net)
    x = np.random.default_rng(1).uniform(0, 0.45, (20, 3))
    batch = twin.outputs(x)
    single = np.stack([twin.outputs(xi) for xi in x])
    np.testing.assert_allclose(batch, single, rtol=1e-12, atol=1e-15)


def test_wrong_number_of_inputs_is_refused():
    twin = linear_twin(gen2_lattice())
    with pytest.raises(ValueError, match="4 source voltages"):
        twin.step([0.1, 0.2], [0.1, 0.1])


def test_a_floating_island_is_named_when_the_twin_is_built():
    net = Network(
        ("a", "b", "c", "d"),
        [[0, 1], [2, 3]],
        (Role.SOURCE, Role.TARGET, Role.HIDDEN, Role.HIDDEN),
    )
    with pytest.raises(FloatingNodeError, match="c, d"):
        linear_twin(net)


def test_state_outside_device_limits_is_refused():
    net = gen2_lattice()
    with pytest.raises(ValueError, match="outside"):
        TwinNetwork(net, Mosfet(net.n_edges), np.full(net.n_edges, 7.0))
