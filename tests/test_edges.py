"""Edge device models: limits, currents and their derivatives, subthreshold law, spread."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from instruments.sim.edges import (
    DIGIPOT_R_MAX_OHM,
    DIGIPOT_R_MIN_OHM,
    DIGIPOT_TAPS,
    GEN2_GATE_MAX_V,
    GEN2_GATE_MIN_V,
    GEN2_S_A_PER_V2,
    GEN2_VT_V,
    Digipot,
    MixedEdges,
    Mosfet,
    Resistor,
    spread,
)

S = GEN2_S_A_PER_V2
volts = st.floats(0.0, 0.45)


def fd_derivatives(dev, state, va, vb, h=1e-7):
    """Central finite differences of dev.current with respect to va and vb (S)."""
    def i(x, y):
        return dev.current(state, x, y)[0]

    return (i(va + h, vb) - i(va - h, vb)) / (2 * h), (i(va, vb + h) - i(va, vb - h)) / (2 * h)


def level1(vg, va, vb, s=S, vt=GEN2_VT_V):
    """SPICE level-1 NMOS (LAMBDA = GAMMA = 0), written out for one edge: I from a to b (A)."""
    sign = 1.0 if va >= vb else -1.0
    vs, vds = min(va, vb), abs(va - vb)
    vov = vg - vt - vs
    if vov <= 0:
        return 0.0
    if vov > vds:
        return sign * s * (vov - vds / 2) * vds
    return sign * s / 2 * vov**2


# -- limits, clip and state checks --------------------------------------------------------------


def test_resistor_limits_and_clip():
    r = Resistor(3)
    assert (r.state_min, r.state_max, r.state_unit) == (1e-6, 1.0, "S")
    assert r.clip(np.array([1e-9, 0.5, 2.0])).tolist() == [1e-6, 0.5, 1.0]
    out = np.array([1e-9, 0.5, 2.0])
    r.clip(out, out=out)
    assert out.tolist() == [1e-6, 0.5, 1.0]


def test_check_state_names_the_edge_and_limits():
    with pytest.raises(ValueError, match=r"resistor state of edge 1 is 2 S, outside \[1e-06, 1\]"):
        Resistor(3).check_state([0.1, 2.0, 0.1])
    with pytest.raises(ValueError, match=r"mosfet state of edge 0 is 0.9 V, outside \[1, 5.5\]"):
        Mosfet(2).check_state([0.9, 2.0])
    with pytest.raises(ValueError, match="edge 2 is nan"):
        Resistor(3).check_state([0.1, 0.1, np.nan])
    with pytest.raises(ValueError, match=r"must have shape \(3,\), got \(2,\)"):
        Resistor(3).check_state([0.1, 0.1])
    assert Mosfet(2).check_state([1.0, 5.5]).tolist() == [1.0, 5.5]


def test_mosfet_gate_limits_and_clip():
    m = Mosfet(3)
    assert (m.state_min, m.state_max) == (GEN2_GATE_MIN_V, GEN2_GATE_MAX_V) == (1.0, 5.5)
    assert m.clip(np.array([0.2, 3.0, 7.0])).tolist() == [1.0, 3.0, 5.5]


def test_digipot_taps_are_whole_numbers_within_range():
    d = Digipot(3)
    assert (d.state_min, d.state_max) == (0.0, DIGIPOT_TAPS - 1.0)
    assert d.integer_state
    assert d.clip(np.array([-3.0, 41.6, 150.0])).tolist() == [0.0, 42.0, 99.0]
    with pytest.raises(ValueError, match="edge 1 is 2.5, not a whole number of taps"):
        d.check_state([1.0, 2.5, 3.0])
    with pytest.raises(ValueError, match=r"edge 2 is 100 tap, outside \[0, 99\]"):
        d.check_state([1.0, 2.0, 100.0])


def test_update_bias_defaults_to_zero_and_broadcasts():
    assert Resistor(4).update_bias.tolist() == [0.0] * 4
    assert Mosfet(3, update_bias=0.01).update_bias.tolist() == [0.01] * 3


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError, match="S must be positive"):
        Mosfet(2, s_a_per_v2=[1e-3, 0.0])
    with pytest.raises(ValueError, match="subthreshold_v"):
        Mosfet(2, subthreshold_v=0.0)
    with pytest.raises(ValueError, match="vt_v must be finite"):
        Mosfet(2, vt_v=np.inf)
    with pytest.raises(ValueError, match="n_taps >= 2"):
        Digipot(2, n_taps=1)
    with pytest.raises(ValueError, match="r_min_ohm < r_max_ohm"):
        Digipot(2, r_min_ohm=100.0, r_max_ohm=50.0)


# -- resistor -----------------------------------------------------------------------------------


def test_resistor_current_is_ohms_law_per_twin():
    gain = np.array([[1.0, 1.1], [0.9, 1.0]])
    r = Resistor(2, gain=gain)
    k = np.array([1e-3, 2e-3])
    va, vb = np.array([0.3, 0.1]), np.array([0.1, 0.4])
    for twin in (0, 1):
        assert np.allclose(r.conductance(k, twin=twin), k * gain[twin], rtol=1e-15)
        i, ga, gb = r.current(k, va, vb, twin)
        assert np.allclose(i, k * gain[twin] * (va - vb), rtol=1e-15)
        assert np.array_equal(ga, k * gain[twin]) and np.array_equal(gb, -k * gain[twin])
    assert not r.twins_identical
    assert Resistor(2).twins_identical


# -- digipot ------------------------------------------------------------------------------------


def test_digipot_default_taps_are_log_spaced_from_32k_to_40_ohm():
    d = Digipot(1)
    r = d.tap_resistance_ohm
    assert r.size == DIGIPOT_TAPS == 100
    assert r[0] == pytest.approx(DIGIPOT_R_MAX_OHM) and r[0] == pytest.approx(32e3)
    assert r[-1] == pytest.approx(DIGIPOT_R_MIN_OHM) and r[-1] == pytest.approx(40.0)
    ratios = r[:-1] / r[1:]
    assert np.allclose(ratios, (32e3 / 40.0) ** (1 / 99), rtol=1e-12)


def test_digipot_tap_up_means_more_conductance():
    d = Digipot(100)
    g = d.conductance(np.arange(100.0))
    assert np.all(np.diff(g) > 0)
    assert g[0] == pytest.approx(1 / 32e3) and g[-1] == pytest.approx(1 / 40.0)


def test_digipot_custom_taps():
    d = Digipot(2, n_taps=5, r_min_ohm=10.0, r_max_ohm=1e5)
    assert d.state_max == 4.0
    assert np.allclose(d.tap_resistance_ohm, [1e5, 1e4, 1e3, 1e2, 10.0], rtol=1e-12)


def test_digipot_state_between_or_beyond_taps_uses_nearest_tap():
    d = Digipot(4)
    g = d.conductance(np.array([2.9999999, 3.4, -1.0, 120.0]))
    assert np.array_equal(g, d.conductance(np.array([3.0, 3.0, 0.0, 99.0])))


def test_digipot_is_linear_with_twin_gain():
    d = Digipot(2, gain=[[1.0, 1.0], [1.02, 0.98]])
    taps = np.array([10.0, 50.0])
    k0, k1 = d.conductance(taps, twin=0), d.conductance(taps, twin=1)
    assert np.allclose(k1 / k0, [1.02, 0.98], rtol=1e-14)
    i, ga, gb = d.current(taps, np.array([0.2, 0.0]), np.array([0.0, 0.3]), twin=1)
    assert np.allclose(i, k1 * np.array([0.2, -0.3]), rtol=1e-14)
    assert np.array_equal(ga, k1) and np.array_equal(gb, -k1)


# -- MOSFET: SPICE level 1 ----------------------------------------------------------------------


def test_mosfet_defaults_are_the_gen2_values():
    m = Mosfet(2)
    assert np.all(m.s_a_per_v2 == 8.5e-4) and m.s_a_per_v2.shape == (2, 2)
    assert np.all(m.vt_v == 0.7)
    assert m.subthreshold_v == 0.1
    assert not m.linear


def test_level1_triode_by_hand():
    m = Mosfet(1, subthreshold_v=None)
    # Vov = 2.0 - 0.7 - 0.1 = 1.2 V > Vds = 0.2 V: I = S (1.2 - 0.1) 0.2
    i, ga, gb = m.current([2.0], [0.3], [0.1])
    assert i[0] == pytest.approx(1.87e-4, rel=1e-12)
    # the lab's form: S (V_G - V_T - (Va + Vb)/2)(Va - Vb)
    assert i[0] == pytest.approx(S * (2.0 - 0.7 - 0.2) * 0.2, rel=1e-12)
    assert ga[0] == pytest.approx(S * 1.0, rel=1e-12)  # S (Vov - Vds)
    assert gb[0] == pytest.approx(-S * 1.2, rel=1e-12)  # -S (Vov - Vds) - S Vds


def test_level1_saturation_by_hand():
    m = Mosfet(1, subthreshold_v=None)
    # Vov = 1.0 - 0.7 - 0.1 = 0.2 V <= Vds = 0.35 V: I = S/2 0.2^2
    i, ga, gb = m.current([1.0], [0.45], [0.1])
    assert i[0] == pytest.approx(1.7e-5, rel=1e-12)
    assert ga[0] == 0.0
    assert gb[0] == pytest.approx(-S * 0.2, rel=1e-12)


def test_level1_cut_off_is_exactly_zero():
    m = Mosfet(2, subthreshold_v=None)
    i, ga, gb = m.current([0.75, 0.9], [0.45, 0.45], [0.1, 0.3])  # Vov = -0.05 and -0.1 V
    assert np.all(i == 0.0) and np.all(ga == 0.0) and np.all(gb == 0.0)


def test_level1_uses_each_twins_parameters():
    m = Mosfet(1, s_a_per_v2=[[8e-4], [9e-4]], vt_v=[[0.62], [0.7]], subthreshold_v=None)
    for twin, (s, vt) in enumerate(((8e-4, 0.62), (9e-4, 0.7))):
        i, _, _ = m.current([1.5], [0.3], [0.1], twin)
        assert i[0] == pytest.approx(level1(1.5, 0.3, 0.1, s, vt), rel=1e-12)


@given(st.floats(0.0, 5.5), volts, volts)
@settings(max_examples=200, deadline=None)
def test_without_subthreshold_current_is_level1(vg, va, vb):
    i, _, _ = Mosfet(1, subthreshold_v=None).current([vg], [va], [vb])
    assert i[0] == pytest.approx(level1(vg, va, vb), rel=1e-12, abs=1e-30)


@given(st.floats(0.0, 5.5), volts, volts)
@settings(max_examples=100, deadline=None)
def test_subthreshold_changes_nothing_above_v_join(vg, va, vb):
    m = Mosfet(1)
    if vg - GEN2_VT_V - min(va, vb) < m.v_join:
        return
    i, _, _ = m.current([vg], [va], [vb])
    assert i[0] == pytest.approx(level1(vg, va, vb), rel=1e-12)


# -- MOSFET: subthreshold -----------------------------------------------------------------------


def saturation_current(m, vov, vs=0.05):
    """Current (A) with source at vs and drain at 0.45 V, far into saturation."""
    vg = np.atleast_1d(vov) + GEN2_VT_V + vs
    return m.current(vg, np.full(vg.shape, 0.45), np.full(vg.shape, vs))[0]


def test_v_join_value():
    assert Mosfet(1).v_join == pytest.approx(0.2 / math.log(10))
    assert Mosfet(1, subthreshold_v=0.05).v_join == pytest.approx(0.1 / math.log(10))
    assert Mosfet(1, subthreshold_v=None).v_join == 0.0


@pytest.mark.parametrize("sub_v", [0.1, 0.05])
def test_subthreshold_joins_square_law_in_value_and_slope(sub_v):
    m = Mosfet(1, subthreshold_v=sub_v)
    vj, h = m.v_join, 1e-6
    below, at, above = saturation_current(m, np.array([vj - h, vj, vj + h]))
    assert at == pytest.approx(S / 2 * vj**2, rel=1e-12)
    # value: the jump across v_join vanishes with h (no step)
    assert abs(above - below) < 2 * h * S * vj * 1.001
    # slope: both one-sided slopes equal the square law's S * v_join
    assert (at - below) / h == pytest.approx(S * vj, rel=1e-4)
    assert (above - at) / h == pytest.approx(S * vj, rel=1e-4)


@given(st.floats(-0.6, 0.0), st.sampled_from([0.1, 0.05, 0.02]))
@settings(max_examples=60, deadline=None)
def test_subthreshold_current_falls_tenfold_per_subthreshold_v(vov, sub_v):
    m = Mosfet(1, subthreshold_v=sub_v)
    upper, lower = saturation_current(m, np.array([vov, vov - sub_v]))
    assert upper / lower == pytest.approx(10.0, rel=1e-9)
    assert lower > 0.0  # never exactly zero


def test_subthreshold_small_vds_conductance_falls_tenfold_per_subthreshold_v():
    # issue 14: the small-Vds conductance fell tenfold per 2 subthreshold_v (0.2 V)
    m = Mosfet(2)
    vs = np.full(2, 0.05)
    vg = np.array([0.0, -0.1]) + GEN2_VT_V + vs
    k = m.conductance(vg, vs, vs)
    assert k[0] / k[1] == pytest.approx(10.0, rel=1e-9)


@given(st.floats(-0.6, 0.0), st.floats(1e-6, 0.45), st.sampled_from([0.1, 0.05, 0.02]))
@example(vov=0.0, vds=1e-6, sub_v=0.1)
@example(vov=-0.3, vds=0.05, sub_v=0.1)
@settings(max_examples=100, deadline=None)
def test_subthreshold_gate_slope_is_the_same_at_every_vds(vov, vds, sub_v):
    """Below threshold the current falls tenfold per subthreshold_v of gate, at any Vds."""
    m = Mosfet(1, subthreshold_v=sub_v)
    vs = 0.05
    vg = np.array([vov, vov - sub_v]) + GEN2_VT_V + vs
    upper, lower = m.current(vg, np.full(2, vs + vds), np.full(2, vs))[0]
    assert upper / lower == pytest.approx(10.0, rel=1e-9)
    # and the local slope d ln I / d V_G is ln 10 / subthreshold_v
    h = 1e-6  # from below: above threshold the blend to level 1 begins
    i0, i1 = m.current(vg[:1] + np.array([-2 * h, 0.0]), np.full(2, vs + vds), np.full(2, vs))[0]
    assert (math.log(i1) - math.log(i0)) / (2 * h) == pytest.approx(math.log(10) / sub_v, rel=1e-5)


@given(st.floats(-0.3, 0.4), st.floats(0.0, 0.45), st.floats(0.0, 0.45), st.sampled_from([0.1, 0.05]))
@example(vov=0.0, va=0.1, vb=0.1, sub_v=0.1)
@example(vov=0.2 / math.log(10), va=0.3, vb=0.0, sub_v=0.1)
@settings(max_examples=300, deadline=None)
def test_current_and_derivatives_are_continuous_across_every_region_boundary(vov, va, vb, sub_v):
    """Value and first derivatives in V_G, va and vb continuous: the jump over 2h vanishes as h."""
    m = Mosfet(1, subthreshold_v=sub_v)
    vg = vov + GEN2_VT_V + min(va, vb)
    h = 1e-7

    def at(g, a, b):
        return np.array(m.current([g], [a], [b])).ravel()

    base = at(vg, va, vb)
    for dg, da, db in ((h, 0, 0), (0, h, 0), (0, 0, h)):
        hi, lo = at(vg + dg, va + da, vb + db), at(vg - dg, va - da, vb - db)
        # value: a Lipschitz step; derivatives: no jump beyond h * (second derivative)
        assert abs(hi[0] - lo[0]) <= 2 * h * S * 1.01
        assert np.all(np.abs(hi[1:] - lo[1:]) <= 1e-5 * S)
        assert np.all(np.abs(base[1:] - 0.5 * (hi[1:] + lo[1:])) <= 1e-5 * S)
    # the gate derivative is -(dI/dva + dI/dvb), by the model's dependence on V_G - V
    ig = (at(vg + h, va, vb)[0] - at(vg - h, va, vb)[0]) / (2 * h)
    assert ig == pytest.approx(-(base[1] + base[2]), rel=1e-5, abs=1e-6 * S)


def test_subthreshold_current_is_continuous_and_monotone_in_gate():
    m = Mosfet(1)
    vov = np.linspace(-0.5, 0.5, 20001)
    i = saturation_current(m, vov)
    assert np.all(np.diff(i) > 0)
    assert np.max(np.abs(np.diff(i))) < 1e-4 * S  # 50 uV steps give no jumps


# -- MOSFET: symmetry and derivatives -----------------------------------------------------------


@given(st.floats(0.5, 5.5), volts, volts, st.sampled_from([0.1, 0.05, None]))
@settings(max_examples=150, deadline=None)
def test_current_is_antisymmetric_in_the_terminals(vg, va, vb, sub_v):
    m = Mosfet(1, subthreshold_v=sub_v)
    i_ab, ga_ab, gb_ab = m.current([vg], [va], [vb])
    i_ba, ga_ba, gb_ba = m.current([vg], [vb], [va])
    assert i_ab[0] == -i_ba[0]
    assert ga_ab[0] == pytest.approx(-gb_ba[0], rel=1e-12, abs=1e-30)
    assert gb_ab[0] == pytest.approx(-ga_ba[0], rel=1e-12, abs=1e-30)


@given(st.floats(0.5, 5.5), volts, volts, st.sampled_from([0.1, 0.05, None]))
@settings(max_examples=300, deadline=None)
def test_derivatives_match_finite_differences(vg, va, vb, sub_v):
    m = Mosfet(1, subthreshold_v=sub_v)
    _, ga, gb = m.current([vg], [va], [vb])
    fa, fb = fd_derivatives(m, [vg], np.array([va]), np.array([vb]))
    # the model is C1; central differences err by h * (jump of the second derivative)
    tol = 1e-6 * S
    assert abs(ga[0] - fa[0]) <= tol + 1e-6 * abs(fa[0])
    assert abs(gb[0] - fb[0]) <= tol + 1e-6 * abs(fb[0])


def test_current_never_flows_uphill():
    rng = np.random.default_rng(0)
    m = Mosfet(2000)
    vg = rng.uniform(0.5, 5.5, 2000)
    va, vb = rng.uniform(0, 0.45, (2, 2000))
    i, ga, gb = m.current(vg, va, vb)
    assert np.all(i * (va - vb) >= 0)
    assert np.all(ga >= 0) and np.all(gb <= 0)


def test_current_and_conductance_are_vectorised_over_edges():
    rng = np.random.default_rng(1)
    e = 64
    m = Mosfet(e, s_a_per_v2=spread(S, e, 0.05, 0.01, rng=2), vt_v=spread(0.66, e, 0.02, 0.0, rng=3))
    vg = rng.uniform(0.5, 3.0, e)  # triode, saturation and subthreshold edges
    va, vb = rng.uniform(0, 0.45, (2, e))
    for twin in (0, 1):
        i, ga, gb = m.current(vg, va, vb, twin)
        k = m.conductance(vg, va, vb, twin)
        for j in range(e):
            one = Mosfet(1, s_a_per_v2=m.s_a_per_v2[:, j : j + 1], vt_v=m.vt_v[:, j : j + 1])
            ij, gaj, gbj = one.current(vg[j : j + 1], va[j : j + 1], vb[j : j + 1], twin)
            assert (i[j], ga[j], gb[j]) == (ij[0], gaj[0], gbj[0])
            assert k[j] == one.conductance(vg[j : j + 1], va[j : j + 1], vb[j : j + 1], twin)[0]


def test_mosfet_chord_conductance():
    m = Mosfet(3, subthreshold_v=None)
    vg = np.array([2.0, 1.0, 2.0])
    va, vb = np.array([0.3, 0.45, 0.2]), np.array([0.1, 0.1, 0.2])
    k = m.conductance(vg, va, vb)
    assert k[0] == pytest.approx(1.87e-4 / 0.2, rel=1e-12)
    assert k[1] == pytest.approx(1.7e-5 / 0.35, rel=1e-12)
    # no drop: the small-signal limit S (V_G - V_T - V)
    assert k[2] == pytest.approx(S * (2.0 - 0.7 - 0.2), rel=1e-12)
    # without voltages: both terminals at 0 V
    assert m.conductance(vg)[0] == pytest.approx(S * 1.3, rel=1e-12)


def test_mosfet_chord_conductance_is_continuous_at_zero_drop():
    m = Mosfet(2)
    vg = np.array([2.0, 0.75])
    v = np.full(2, 0.2)
    assert np.allclose(m.conductance(vg, v + 1e-9, v), m.conductance(vg, v, v), rtol=1e-7)


# -- mixed edges --------------------------------------------------------------------------------


def mixed():
    parts = ((Resistor(2), [0, 3]), (Mosfet(2, subthreshold_v=None), [1, 4]), (Digipot(1), [2]))
    return MixedEdges(5, parts=parts)


def test_mixed_edges_assemble_each_part():
    m = mixed()
    assert not m.linear
    state = np.array([1e-3, 2.0, 50.0, 2e-3, 1.5])
    va, vb = np.array([0.3, 0.3, 0.2, 0.1, 0.45]), np.array([0.1, 0.1, 0.0, 0.4, 0.1])
    i, ga, gb = m.current(state, va, vb)
    ri, rga, rgb = Resistor(2).current(state[[0, 3]], va[[0, 3]], vb[[0, 3]])
    mi, mga, mgb = Mosfet(2, subthreshold_v=None).current(state[[1, 4]], va[[1, 4]], vb[[1, 4]])
    di, _, _ = Digipot(1).current(state[[2]], va[[2]], vb[[2]])
    assert np.array_equal(i[[0, 3]], ri) and np.array_equal(i[[1, 4]], mi) and np.array_equal(i[[2]], di)
    assert np.array_equal(ga[[1, 4]], mga) and np.array_equal(gb[[0, 3]], rgb)
    k = m.conductance(state, va, vb)
    assert k[1] == pytest.approx(1.87e-4 / 0.2, rel=1e-12)
    assert k[2] == pytest.approx(Digipot(1).conductance([50.0])[0])


def test_mixed_edges_clip_and_check_each_part():
    m = mixed()
    clipped = m.clip(np.array([5.0, 0.2, 41.7, 1e-9, 9.0]))
    assert clipped.tolist() == [1.0, 1.0, 42.0, 1e-6, 5.5]
    with pytest.raises(ValueError, match=r"mixed state of edge 4 \(mosfet\) is 9 V, outside \[1, 5.5\]"):
        m.check_state([1e-3, 2.0, 50.0, 2e-3, 9.0])
    with pytest.raises(ValueError, match=r"edge 2 \(digipot\) is 50.5, not a whole number of taps"):
        m.check_state([1e-3, 2.0, 50.5, 2e-3, 2.0])
    assert m.check_state([1e-3, 2.0, 50.0, 2e-3, 2.0]).shape == (5,)


def test_mixed_edges_linear_only_when_every_part_is():
    assert MixedEdges(3, parts=((Resistor(1), [0]), (Digipot(2), [1, 2]))).linear


def test_mixed_edges_validate_parts():
    with pytest.raises(ValueError, match=r"part 0 \(resistor\) has 2 edges but 1 indices"):
        MixedEdges(3, parts=((Resistor(2), [0]), (Mosfet(2), [1, 2])))
    with pytest.raises(ValueError, match="an edge belongs to two parts"):
        MixedEdges(3, parts=((Resistor(2), [0, 1]), (Mosfet(2), [1, 2])))
    with pytest.raises(ValueError, match=r"edges without a device: \[2\]"):
        MixedEdges(3, parts=((Resistor(2), [0, 1]),))


def test_mixed_edges_twins_identical_follows_the_parts():
    assert mixed().twins_identical
    odd = MixedEdges(2, parts=((Resistor(1), [0]), (Mosfet(1, vt_v=[[0.7], [0.71]]), [1])))
    assert not odd.twins_identical


# -- spread -------------------------------------------------------------------------------------


def test_spread_is_reproducible_by_seed():
    a = spread(8.5e-4, 50, 0.05, 0.01, rng=7)
    assert a.shape == (2, 50)
    assert np.array_equal(a, spread(8.5e-4, 50, 0.05, 0.01, rng=7))
    assert np.array_equal(a, spread(8.5e-4, 50, 0.05, 0.01, rng=np.random.default_rng(7)))
    assert not np.array_equal(a, spread(8.5e-4, 50, 0.05, 0.01, rng=8))


def test_spread_zero_is_the_nominal_value():
    assert np.array_equal(spread(0.7, 10, rng=1), np.full((2, 10), 0.7))


def test_per_edge_spread_is_shared_by_both_twins_with_the_asked_size():
    x = spread(2.0, 40000, rel_spread=0.05, rng=3) / 2.0 - 1.0
    assert np.array_equal(x[0], x[1])
    assert np.std(x[0]) == pytest.approx(0.05, rel=0.02)
    assert abs(np.mean(x[0])) < 4 * 0.05 / np.sqrt(40000)


def test_twin_mismatch_is_independent_per_twin_with_the_asked_size():
    x = spread(2.0, 40000, twin_mismatch=0.01, rng=4) / 2.0 - 1.0
    assert np.std(x[0]) == pytest.approx(0.01, rel=0.02)
    assert np.std(x[1]) == pytest.approx(0.01, rel=0.02)
    assert abs(np.corrcoef(x[0], x[1])[0, 1]) < 0.03
    # the twins of one board differ by sqrt(2) times the mismatch
    assert np.std(x[0] - x[1]) == pytest.approx(0.01 * np.sqrt(2), rel=0.02)


def test_spread_and_mismatch_combine():
    rel, mis = 0.05, 0.02
    x = spread(1.0, 40000, rel, mis, rng=5)
    # the twins share the per-edge factor: correlation rel^2 / (rel^2 + mis^2)
    assert np.corrcoef(x[0], x[1])[0, 1] == pytest.approx(rel**2 / (rel**2 + mis**2), abs=0.02)
    assert np.std(x[1] / x[0] - 1) == pytest.approx(mis * np.sqrt(2), rel=0.03)


def test_spread_drives_twin_mismatch_of_a_device():
    gain = spread(1.0, 20, twin_mismatch=0.01, rng=6)
    r = Resistor(20, gain=gain)
    k = np.full(20, 1e-3)
    assert not r.twins_identical
    assert np.allclose(r.conductance(k, twin=1) / r.conductance(k, twin=0), gain[1] / gain[0], rtol=1e-14)


def test_mixed_edges_carry_the_update_bias_of_each_part():
    res = Resistor(2, update_bias=[1e-6, 2e-6])
    mos = Mosfet(1, update_bias=0.01)
    mixed = MixedEdges(3, parts=((res, [0, 2]), (mos, [1])), update_bias=0.5)
    np.testing.assert_array_equal(mixed.update_bias, [0.5 + 1e-6, 0.51, 0.5 + 2e-6])


# -- MOSFET: channel-length modulation (LAMBDA) ------------------------------------------------


@given(st.floats(0.5, 5.5), volts, volts, st.sampled_from([0.1, None]), st.floats(0.0, 0.2))
@settings(max_examples=150, deadline=None)
def test_lambda_multiplies_the_current_by_one_plus_lambda_vds(vg, va, vb, sub_v, lam):
    plain = Mosfet(1, subthreshold_v=sub_v)
    clm = Mosfet(1, subthreshold_v=sub_v, lambda_per_v=lam)
    i0 = plain.current([vg], [va], [vb])[0][0]
    i1, ga, gb = clm.current([vg], [va], [vb])
    assert i1[0] == pytest.approx(i0 * (1 + lam * abs(va - vb)), rel=1e-13, abs=1e-300)
    fa, fb = fd_derivatives(clm, [vg], np.array([va]), np.array([vb]))
    assert abs(ga[0] - fa[0]) <= 1e-6 * S + 1e-6 * abs(fa[0])
    assert abs(gb[0] - fb[0]) <= 1e-6 * S + 1e-6 * abs(fb[0])


def test_lambda_is_level1s_in_saturation_and_triode():
    m = Mosfet(1, subthreshold_v=None, lambda_per_v=0.05)
    # saturation: Vov = 0.2 V, Vds = 0.35 V
    assert m.current([1.0], [0.45], [0.1])[0][0] == pytest.approx(S / 2 * 0.04 * (1 + 0.05 * 0.35), rel=1e-13)
    # triode: Vov = 1.2 V, Vds = 0.2 V
    assert m.current([2.0], [0.3], [0.1])[0][0] == pytest.approx(S * 1.1 * 0.2 * (1 + 0.05 * 0.2), rel=1e-13)
    with pytest.raises(ValueError, match="LAMBDA"):
        Mosfet(1, lambda_per_v=-0.1)
