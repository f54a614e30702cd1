"""Calibrating the edge boards' ADC offsets and their devices, on the simulated bench."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration.edges import (EdgeCalibration, calibrate_adc, calibrate_devices, calibrate_edges, device_model,
                               fit_triode, summary, write_adc_offsets)
from instruments.rig import open_rig
from instruments.sim.bench import GEN2_BENCH_VT_V, BenchFaults, DaqErrors
from instruments.sim.edges import GEN2_S_A_PER_V2, Digipot, Mosfet
from instruments.wiring import default_wiring

GEN2 = default_wiring("gen2")  # 32 MOSFET edges, boards 1..32, a ground node
GEN1 = default_wiring("gen1")  # 24 digipot edges
FAULTS = BenchFaults(edge_spread=0.05, twin_mismatch=0.02)
ADC_OFFSET_UV = np.random.default_rng(7).uniform(-400.0, 400.0, (32, 4))
ADC_NOISE_UV = 10.0
TAPS = (0, 13, 37, 61, 85, 99)


def drop_offsets_truth() -> np.ndarray:
    """(E, 2) uV: ADC offset of terminal a minus that of b, free and clamped twin."""
    o = ADC_OFFSET_UV
    return np.stack([o[:, 0] - o[:, 1], o[:, 2] - o[:, 3]], axis=1)


def as_array(result: dict, *keys: str) -> np.ndarray:
    return np.array([[result[a][k] for k in keys] for a in sorted(result)])


def dmm(rig):
    return lambda channel=None, node=None, twin="free": rig.bench.probe_dmm(channel, node=node, twin=twin)


@pytest.fixture(scope="module")
def mosfet_rig():
    return open_rig(GEN2, simulate=True, seed=11, faults=FAULTS)


@pytest.fixture(scope="module")
def mosfet_cal(mosfet_rig):
    return calibrate_devices(mosfet_rig, mosfet_rig.bench.probe_smu, kind="mosfet")


# -- MOSFETs -----------------------------------------------------------------------------------


def test_fitted_s_and_vt_are_within_1_percent_of_the_truth_for_every_edge_and_twin(mosfet_rig, mosfet_cal):
    truth = mosfet_rig.bench.device
    assert mosfet_cal.s_a_per_v2.shape == mosfet_cal.vt_v.shape == (2, 32)
    np.testing.assert_allclose(mosfet_cal.s_a_per_v2, truth.s_a_per_v2, rtol=0.01)
    np.testing.assert_allclose(mosfet_cal.vt_v, truth.vt_v, rtol=0.01)
    assert not mosfet_cal.refused


def test_fit_residual_is_at_the_smus_noise(mosfet_cal):
    # 10 ppm of currents up to ~0.2 mA
    assert np.all(mosfet_cal.residual_a < 1e-8)


def test_mismatch_report_matches_the_truth(mosfet_rig, mosfet_cal):
    d = mosfet_rig.bench.device
    s, vt = d.s_a_per_v2, d.vt_v
    s_rel = (s[1] - s[0]) / (0.5 * (s[0] + s[1]))
    np.testing.assert_allclose(mosfet_cal.mismatch["s_rel"], s_rel, atol=1e-3)
    np.testing.assert_allclose(mosfet_cal.mismatch["vt_v"], vt[1] - vt[0], atol=1e-3)
    assert mosfet_cal.mismatch["s_rel_rms"] == pytest.approx(np.sqrt(np.mean(s_rel**2)), rel=0.05)
    assert mosfet_cal.mismatch["vt_max_abs_v"] == pytest.approx(np.max(np.abs(vt[1] - vt[0])), abs=1e-3)


def test_board_states_are_restored_and_the_smu_is_off(mosfet_rig):
    before = mosfet_rig.bus.read_states()
    device_before = mosfet_rig.bench.device_state()
    calibrate_devices(mosfet_rig, mosfet_rig.bench.probe_smu, kind="mosfet", gates_v=(1.5, 3.0), vds_v=(0.05,))
    assert mosfet_rig.bus.read_states() == before
    np.testing.assert_array_equal(mosfet_rig.bench.device_state(), device_before)
    with pytest.raises(Exception, match="output off"):
        mosfet_rig.smu.measure_current(0.01)
    assert mosfet_rig.bench.smu.source_voltage() == 0.0  # ramped down before it was switched off


def test_the_old_sequence_put_a_stale_level_on_the_edge_the_new_one_starts_at_0_v_and_ramps():
    rig = open_rig(GEN2, simulate=True, seed=11)
    smu = rig.bench.probe_smu(4, "free")
    smu.set_voltage(5.0)  # left programmed by the SMU's last user; its output is off
    # the sequence calibration used to follow: configure, output on, and only then the level
    smu.configure(1e-3)
    smu.output(True)
    smu.measure_current(0.02)
    smu.output(False)
    assert [v for *_, v in smu.applied][0] == 5.0  # the edge saw 5 V, 11 times its node range

    smu.applied.clear()
    smu.set_voltage(5.0)
    calibrate_devices(rig, rig.bench.probe_smu, kind="mosfet", gates_v=(1.5, 3.0), vds_v=(0.02, 0.06, 0.1),
                      smu_max_step_v=0.03)
    seen = [v for *_, v in smu.applied]
    assert len({(e, t) for e, t, _ in smu.applied}) == 64  # every device of both twins
    assert seen[0] == 0.0 and max(seen) == pytest.approx(0.1)
    assert np.max(np.abs(np.diff(seen))) <= 0.03 + 1e-12  # every change within the ramp, switch-on included
    assert seen[-1] == 0.0 and smu.source_voltage() == 0.0


@pytest.mark.parametrize("options, message", [
    ({"kind": "mosfet", "vds_v": (0.02, 0.5)}, r"vds_v: drain voltages must be in \(0, 0.45\] V, the mosfet boards' "
                                               r"node range; got \[0.02, 0.5\]"),
    ({"kind": "mosfet", "vds_v": (0.0, 0.1)}, r"vds_v: drain voltages must be in \(0, 0.45\] V"),
])
def test_drain_voltages_beyond_the_boards_node_range_are_refused_before_the_smu_is_touched(mosfet_rig, options,
                                                                                           message):
    mosfet_rig.bench.smu.applied.clear()
    with pytest.raises(ValueError, match=message):
        calibrate_devices(mosfet_rig, mosfet_rig.bench.probe_smu, **options)
    assert not mosfet_rig.bench.smu.applied


def test_device_model_carries_the_fitted_parameters(mosfet_rig, mosfet_cal):
    base = Mosfet(32, update_bias=0.01)
    model = device_model(mosfet_cal, base)
    np.testing.assert_array_equal(model.s_a_per_v2, mosfet_cal.s_a_per_v2)
    np.testing.assert_array_equal(model.vt_v, mosfet_cal.vt_v)
    assert model.subthreshold_v == base.subthreshold_v and np.all(model.update_bias == 0.01)
    # the model's currents are the bench's, both twins, in triode
    truth = mosfet_rig.bench.device
    gate, va, vb = np.full(32, 2.2), np.full(32, 0.3), np.full(32, 0.25)
    for twin in (0, 1):
        np.testing.assert_allclose(model.current(gate, va, vb, twin)[0], truth.current(gate, va, vb, twin)[0],
                                   rtol=0.01)


def test_round_trip_through_json(mosfet_cal):
    cal = EdgeCalibration.from_dict(json.loads(json.dumps(mosfet_cal.to_dict(), allow_nan=False)))
    np.testing.assert_array_equal(cal.s_a_per_v2, mosfet_cal.s_a_per_v2)
    np.testing.assert_array_equal(cal.vt_v, mosfet_cal.vt_v)
    np.testing.assert_array_equal(cal.residual_a, mosfet_cal.residual_a)
    assert cal.to_dict() == mosfet_cal.to_dict()
    assert (cal.addresses, cal.gates_v, cal.kind) == (mosfet_cal.addresses, mosfet_cal.gates_v, "mosfet")


def strong_device_rig(factor: float):
    """A bench whose edge 5 has ``factor`` times the usual S."""
    s = np.full((2, 32), GEN2_S_A_PER_V2)
    s[:, 5] *= factor
    return open_rig(GEN2, simulate=True, seed=3, device=Mosfet(32, s_a_per_v2=s, vt_v=GEN2_BENCH_VT_V))


def recording(rig, log: list):
    """connect_smu that records every current of every device: (edge, twin, V, I, in compliance)."""
    def connect(edge, twin):
        smu = rig.bench.probe_smu(edge, twin)
        measure = type(smu).measure_current

        def measure_current(v):
            i = measure(smu, v)
            log.append((edge, twin, v, i, smu.in_compliance()))
            return i
        smu.measure_current = measure_current
        return smu
    return connect


def test_a_device_that_would_exceed_the_compliance_is_reported_not_driven():
    rig = strong_device_rig(10.0)  # 2 mA at 3 V of gate and 0.1 V
    log: list = []
    cal = calibrate_devices(rig, recording(rig, log), kind="mosfet", compliance_a=1e-3)
    assert {(r["edge"], r["twin"]) for r in cal.refused} == {(5, "free"), (5, "clamped")}
    assert all(r["why"] == "would exceed the compliance" for r in cal.refused)
    assert not any(hit for *_, hit in log)
    assert max(abs(i) for e, _, _, i, _ in log if e == 5) < 1e-3
    assert np.all(np.isnan(cal.s_a_per_v2[:, 5])) and np.all(np.isfinite(np.delete(cal.s_a_per_v2, 5, axis=1)))
    # the controller's view keeps the design value for the device it could not measure
    assert np.all(device_model(cal, rig.bench.device).s_a_per_v2[:, 5] == rig.bench.device.s_a_per_v2[:, 5])


def test_a_device_in_compliance_at_the_first_point_is_driven_no_further():
    rig = strong_device_rig(100.0)  # 1.4 mA already at 1.5 V of gate and 0.02 V
    log: list = []
    cal = calibrate_devices(rig, recording(rig, log), kind="mosfet", compliance_a=1e-3)
    assert [r["why"] for r in cal.refused] == ["hit the compliance"] * 2
    assert [(t, v) for e, t, v, *_ in log if e == 5] == [("free", 0.02), ("clamped", 0.02)]


def test_fit_triode_recovers_s_and_vt_from_exact_currents():
    vg, vds = np.repeat([1.5, 2.5], 3), np.tile([0.02, 0.05, 0.1], 2)
    s, vt, res = fit_triode(vg, vds, 8e-4 * (vg - 0.65 - vds / 2) * vds)
    assert (s, vt) == (pytest.approx(8e-4), pytest.approx(0.65))
    assert res < 1e-15


def test_the_kind_must_be_the_wirings(mosfet_rig):
    with pytest.raises(ValueError, match="mosfet boards"):
        calibrate_devices(mosfet_rig, mosfet_rig.bench.probe_smu, kind="digipot")


# -- digipots -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digipot_rig():
    return open_rig(GEN1, simulate=True, seed=11, faults=FAULTS)


def test_digipot_tap_resistances_match_the_device_within_1_percent(digipot_rig):
    before = digipot_rig.bus.read_states()
    cal = calibrate_devices(digipot_rig, digipot_rig.bench.probe_smu, kind="digipot", taps=TAPS)
    d = digipot_rig.bench.device
    truth = d.tap_resistance_ohm[list(TAPS)][None, None, :] / d.gain[..., None]
    assert cal.r_ohm.shape == (2, 24, len(TAPS))
    np.testing.assert_allclose(cal.r_ohm, truth, rtol=0.01)
    assert digipot_rig.bus.read_states() == before
    model = device_model(cal, Digipot(24))
    np.testing.assert_allclose(model.gain, d.gain, rtol=0.01)
    g = d.gain
    np.testing.assert_allclose(cal.mismatch["r_rel"], (1 / g[1] - 1 / g[0]) / (0.5 * (1 / g[0] + 1 / g[1])), atol=1e-3)
    back = EdgeCalibration.from_dict(json.loads(json.dumps(cal.to_dict(), allow_nan=False)))
    np.testing.assert_array_equal(back.r_ohm, cal.r_ohm)


def test_a_digipot_probe_voltage_beyond_the_boards_node_range_is_refused(digipot_rig):
    with pytest.raises(ValueError, match=r"probe_v in \(0, 1\] V \(the digipot boards' node range\).* probe_v 1.5"):
        calibrate_devices(digipot_rig, digipot_rig.bench.probe_smu, kind="digipot", taps=TAPS, probe_v=1.5)


def test_digipot_taps_beyond_the_compliance_are_reported_not_driven(digipot_rig):
    cal = calibrate_devices(digipot_rig, digipot_rig.bench.probe_smu, kind="digipot", taps=range(80, 100, 2),
                            probe_v=0.02, compliance_a=2.5e-4)  # 80 Ohm and below exceed it
    refused = {(r["edge"], r["twin"], r["tap"]) for r in cal.refused}
    assert refused
    assert all(np.isnan(cal.r_ohm[0 if tw == "free" else 1, e, cal.taps.index(t)]) for e, tw, t in refused)
    assert np.all(cal.r_ohm[np.isfinite(cal.r_ohm)] > 0.02 / 2.5e-4)


# -- ADC offsets ------------------------------------------------------------------------------


def adc_rig(errors=None):
    return open_rig(GEN2, simulate=True, seed=5, errors=DaqErrors.ideal() if errors is None else errors,
                    adc_offset_uv=ADC_OFFSET_UV, adc_noise_uv=ADC_NOISE_UV)


def drops_now(rig, n_reads: int = 16) -> np.ndarray:
    """Mean drops (E, 2) uV the boards read now."""
    return np.array([[np.mean([rig.bus.request(a, "sample_drops")[k] for _ in range(n_reads)])
                      for k in ("dv_free_uv", "dv_clamped_uv")] for a in range(1, 33)])


def test_adc_offsets_are_measured_and_stored_so_that_equal_nodes_read_zero_drops():
    rig = adc_rig()
    result = calibrate_adc(rig)
    # 10 uV of noise per reading, 8 reads: about 5 uV per drop
    np.testing.assert_allclose(as_array(result, "free_uv", "clamped_uv"), drop_offsets_truth(), atol=30.0)
    assert np.all(np.abs(as_array(result, "check_free_uv", "check_clamped_uv")) < 40.0)
    stored = np.array([[v for v in rig.bus.request(a, "read_calibration").values()][1:] for a in range(1, 33)])
    np.testing.assert_array_equal(stored, np.array([result[a]["stored_uv"] for a in sorted(result)]))
    assert np.all(stored[:, [1, 3]] == 0)
    rig.daq.ramp_to(np.zeros(6))  # every node at the ground's 0 V
    assert np.all(np.abs(drops_now(rig)) < 40.0)
    np.testing.assert_array_equal(rig.daq.held_v, rig.limits.safe_v)


def test_calibrating_again_finds_the_same_offsets_under_the_stored_ones():
    rig = adc_rig()
    first = calibrate_adc(rig)
    second = calibrate_adc(rig)
    np.testing.assert_allclose(as_array(second, "free_uv", "clamped_uv"), as_array(first, "free_uv", "clamped_uv"),
                               atol=30.0)


def test_on_a_grounded_network_only_0_v_is_a_level_without_the_multimeter():
    with pytest.raises(ValueError, match="ground node"):
        calibrate_adc(adc_rig(), levels_v=(0.05, 0.2, 0.4))


def test_with_the_multimeter_the_offsets_are_right_despite_unequal_outputs():
    # a real DAQ's outputs differ by hundreds of uV, so current flows even at 0 V
    rig = adc_rig(DaqErrors.drawn(6, 2, seed=1))
    result = calibrate_adc(rig, levels_v=(0.05, 0.2, 0.4), connect_dmm=dmm(rig))
    np.testing.assert_allclose(as_array(result, "free_uv", "clamped_uv"), drop_offsets_truth(), atol=30.0)
    assert np.all(np.abs(as_array(result, "check_free_uv", "check_clamped_uv")) < 40.0)


def test_the_whole_edge_calibration_can_be_written_back_and_summarised():
    rig = adc_rig()
    cal = calibrate_edges(rig, rig.bench.probe_smu, gates_v=(1.5, 2.5), vds_v=(0.05, 0.1))
    assert set(cal.adc) == set(range(1, 33)) and np.all(np.isfinite(cal.s_a_per_v2))
    for a in range(1, 33):
        rig.bus.request(a, "store_calibration", offset_free_a_uv=0, offset_free_b_uv=0,
                        offset_clamped_a_uv=0, offset_clamped_b_uv=0)
    write_adc_offsets(rig, cal.to_dict())
    assert rig.bus.request(3, "read_calibration")["offset_free_a_uv"] == cal.adc[3]["stored_uv"][0]
    text = summary(cal.to_dict())
    assert "32 mosfet edges" in text and "twin mismatch" in text
