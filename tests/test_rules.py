"""The local learning rules, the nudge and the boards' drop read-out."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.sim.edges import Digipot, Mosfet, Resistor
from instruments.sim.rules import (
    CoupledLearning,
    DropSensor,
    GateCharging,
    Nudge,
    TapRule,
    misclassified,
)

RNG = np.random.default_rng(0)


def drops(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.3, 0.3, n), rng.uniform(-0.3, 0.3, n)


def test_coupled_learning_changes_state_by_alpha_over_eta_times_contrast():
    dev = Resistor(50, state_min=0.0, state_max=10.0)
    f, c = drops(50)
    state = np.full(50, 1.0)
    CoupledLearning(alpha=0.02, eta=0.5).update(state, f, c, dev, RNG)
    np.testing.assert_allclose(state, 1.0 + 0.02 / 0.5 * (f**2 - c**2), rtol=1e-14)


def test_coupled_learning_clips_to_device_limits():
    dev = Resistor(3, state_min=1e-3, state_max=2e-3)
    state = np.array([1e-3, 1.5e-3, 2e-3])
    f = np.array([0.0, 0.0, 1.0])
    c = np.array([1.0, 0.0, 0.0])
    CoupledLearning(alpha=1.0, eta=1.0).update(state, f, c, dev, RNG)
    assert state.tolist() == [1e-3, 1.5e-3, 2e-3]


def test_tap_rule_moves_one_tap_by_sign_outside_dead_band():
    dev = Digipot(4)
    state = np.array([10.0, 10.0, 10.0, 10.0])
    f = np.array([0.2, 0.1, 0.10001, 0.0])
    c = np.array([0.1, 0.2, 0.1, 0.0])
    TapRule(dead_band_v2=1e-3).update(state, f, c, dev, RNG)
    assert state.tolist() == [11.0, 9.0, 10.0, 10.0]


def test_tap_rule_never_leaves_the_tap_range():
    dev = Digipot(2, n_taps=100)
    state = np.array([0.0, 99.0])
    TapRule().update(state, np.array([0.0, 0.3]), np.array([0.3, 0.0]), dev, RNG)
    assert state.tolist() == [0.0, 99.0]


def test_gate_charging_follows_rc_pulse_formula():
    dev = Mosfet(20)
    f, c = drops(20)
    state = np.full(20, 2.0)
    rule = GateCharging(pulse_s=50e-6, r_ohm=1e3, c_f=2.2e-6, gain_per_v=0.1)
    rule.update(state, f, c, dev, RNG)
    expected = 2.0 + (50e-6 / (1e3 * 2.2e-6)) * 0.1 * (f**2 - c**2)
    np.testing.assert_allclose(state, expected, rtol=1e-14)


def test_gate_charging_clips_to_gate_limits():
    dev = Mosfet(2)
    state = np.array([1.0, 5.5])
    rule = GateCharging(pulse_s=200e-6, gain_per_v=1e3)
    rule.update(state, np.array([0.0, 0.4]), np.array([0.4, 0.0]), dev, RNG)
    assert state.tolist() == [1.0, 5.5]


def test_desynchronous_updates_touch_about_p_of_the_edges():
    n = 20000
    dev = Resistor(n, state_min=0.0, state_max=10.0)
    state = np.ones(n)
    CoupledLearning(alpha=1.0, eta=1.0, update_probability=0.25).update(
        state, np.full(n, 0.5), np.zeros(n), dev, np.random.default_rng(3)
    )
    frac = np.mean(state != 1.0)
    assert 0.23 < frac < 0.27


def test_per_edge_bias_is_added_to_every_update():
    bias = np.array([1e-3, -2e-3, 0.0])
    dev = Mosfet(3, update_bias=bias)
    state = np.full(3, 2.0)
    GateCharging().update(state, np.zeros(3), np.zeros(3), dev, RNG)
    np.testing.assert_allclose(state, 2.0 + bias)


@pytest.mark.parametrize("p", [0.0, 1.5, -0.1])
def test_update_probability_outside_unit_interval_is_refused(p):
    with pytest.raises(ValueError, match="update_probability"):
        CoupledLearning(update_probability=p)


def test_nudge_moves_outputs_eta_of_the_way_to_the_answer():
    o = np.array([0.1, 0.3])
    l = np.array([0.2, 0.1])
    np.testing.assert_allclose(Nudge(eta=0.25).clamp(o, l), o + 0.25 * (l - o))


def test_nudge_on_hardware_grid_uses_m_over_129():
    nudge = Nudge(eta=0.9, grid_m=32)
    assert nudge.effective_eta == 32 / 129
    np.testing.assert_allclose(nudge.clamp(np.array([0.0]), np.array([1.29])), [0.32])


@pytest.mark.parametrize("m", [0, 130, 2.5])
def test_nudge_grid_outside_1_to_129_is_refused(m):
    with pytest.raises(ValueError, match="grid_m"):
        Nudge(grid_m=m)


def test_overclamping_aims_past_the_answer_by_the_sign_of_the_error():
    nudge = Nudge(eta=0.1, overclamp_v=0.05)
    o = np.array([0.1, 0.3])
    l = np.array([0.2, 0.25])
    overshoot = l + np.array([0.05, -0.05])
    np.testing.assert_allclose(nudge.clamp(o, l), o + 0.1 * (overshoot - o))
    assert nudge.update_scale(o, l) == pytest.approx(np.sqrt(np.mean((l - o) ** 2)) / 0.05)


def test_plain_nudge_does_not_scale_the_update():
    assert Nudge().update_scale(np.array([0.1]), np.array([0.3])) == 1.0


@given(st.lists(st.floats(-0.5, 0.5), min_size=1, max_size=50), st.sampled_from([1e-4, 2.5e-3, 0.01]))
def test_quantised_drops_are_multiples_of_the_lsb_and_within_half_an_lsb(values, lsb):
    dv = np.array(values)
    out = DropSensor(lsb_v=lsb).measure(dv, RNG)
    np.testing.assert_allclose(out / lsb, np.rint(out / lsb), atol=1e-9)
    assert np.all(np.abs(out - dv) <= lsb / 2 + 1e-12)


def test_read_out_noise_has_the_given_spread():
    out = DropSensor(noise_v=1e-3).measure(np.zeros(100000), np.random.default_rng(5))
    assert abs(np.std(out) - 1e-3) < 2e-5
    assert abs(np.mean(out)) < 2e-5


def test_ideal_sensor_returns_the_drops_unchanged():
    dv = np.array([0.1, -0.2])
    assert DropSensor().measure(dv, RNG).tolist() == dv.tolist()


def test_misclassified_by_argmax_and_by_difference():
    assert not misclassified(np.array([0.3, 0.1, 0.2]), np.array([1.0, 0.0, 0.0]), "argmax")
    assert misclassified(np.array([0.1, 0.3, 0.2]), np.array([1.0, 0.0, 0.0]), "argmax")
    assert not misclassified(np.array([0.3, 0.1]), np.array([0.4, 0.0]), "difference")
    assert misclassified(np.array([0.1, 0.3]), np.array([0.4, 0.0]), "difference")
    with pytest.raises(ValueError, match="read-out"):
        misclassified(np.zeros(2), np.zeros(2), "nearest")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 200), st.floats(0.01, 1.0), st.integers(0, 2**31))
def test_continuous_rule_keeps_state_inside_limits(n, p, seed):
    rng = np.random.default_rng(seed)
    dev = Resistor(n, state_min=1e-4, state_max=1e-2)
    state = rng.uniform(1e-4, 1e-2, n)
    f, c = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    CoupledLearning(alpha=rng.uniform(1e-4, 1.0), eta=0.5, update_probability=p).update(state, f, c, dev, rng)
    assert np.all((state >= 1e-4) & (state <= 1e-2))
