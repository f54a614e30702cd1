"""Calibrating the DAQ's channels against the multimeter, on the simulated bench."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.daq import DaqCalibration, Tolerance, calibrate_daq, fit_line
from instruments.calibrated import CalibratedDaq, DaqCorrections, apply_daq_calibration
from instruments.interfaces import DaqError
from instruments.rig import open_rig
from instruments.safety import LimitError
from instruments.sim.bench import DaqErrors
from instruments.wiring import CrossLimit, default_wiring

WIRING = default_wiring("gen2")  # 6 outputs (4 sources on both twins, 2 clamps), 2 inputs
# errors of a badly trimmed DAQ, signs mixed across channels
ERRORS = DaqErrors(
    ao_gain=[0.005, -0.005, 0.004, -0.003, 0.005, -0.005],
    ao_offset_v=[0.005, -0.005, 0.003, -0.004, -0.005, 0.005],
    ai_gain=[0.005, -0.005],
    ai_offset_v=[0.003, -0.003],
    ai_noise_v=60e-6,
)
INPUT_NODES = [WIRING.network.index(i.node) for i in WIRING.inputs]


def sim_rig(errors: DaqErrors = ERRORS, wiring=WIRING, seed: int = 1):
    return open_rig(wiring, simulate=True, seed=seed, errors=errors)


def probe(rig):
    return lambda channel=None, node=None, twin="free": rig.bench.probe_dmm(channel, node=node, twin=twin)


def errors_over_random_voltages(rig, n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(output errors (n, n_ao), input errors (n, n_ai)) in V: what each output really
    carries minus what was asked for, and each input's reading minus its node's truth."""
    rng = np.random.default_rng(seed)
    lay = rig.layout
    out_err, in_err = [], []
    for _ in range(n):
        v = rng.uniform(lay.min_v, lay.max_v)
        rig.daq.ramp_to(v)
        reading = rig.daq.write_and_read(v, WIRING.timing.settle_s, 100)
        out_err.append(rig.bench.daq.output_voltages() - v)
        in_err.append(reading - rig.bench.node_voltages("free")[INPUT_NODES])
    rig.daq.ramp_to(lay.safe_v)
    return np.array(out_err), np.array(in_err)


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


@pytest.fixture(scope="module")
def before_and_after():
    """Errors before and after calibrating the same bench, and the calibration."""
    rig = sim_rig()
    before = errors_over_random_voltages(rig)
    cal = calibrate_daq(rig, probe(rig))
    apply_daq_calibration(rig, cal.corrections())
    after = errors_over_random_voltages(rig)
    return before, after, cal


# -- the routine on the simulated bench ------------------------------------------------------


def test_output_errors_shrink_at_least_20x(before_and_after):
    (out_before, _), (out_after, _), _ = before_and_after
    # before: about 5 mV rms; after: the outputs' 16-bit quantisation (0.3 mV codes, 88 uV rms)
    assert rms(out_before) > 3e-3
    assert rms(out_after) < rms(out_before) / 20
    assert np.max(np.abs(out_after)) < np.max(np.abs(out_before)) / 20


def test_input_errors_shrink_at_least_20x(before_and_after):
    (_, in_before), (_, in_after), _ = before_and_after
    assert rms(in_before) > 2e-3
    assert rms(in_after) < rms(in_before) / 20
    assert np.max(np.abs(in_after)) < np.max(np.abs(in_before)) / 20


def test_fitted_gains_and_offsets_match_the_injected_errors(before_and_after):
    *_, cal = before_and_after
    ao = cal.corrections()
    # an output's gain applies to its code voltage; quantisation leaves a few 1e-4
    np.testing.assert_allclose(ao.ao_gain, 1 + np.asarray(ERRORS.ao_gain), atol=5e-4)
    np.testing.assert_allclose(ao.ao_offset_v, ERRORS.ao_offset_v, atol=2e-4)
    np.testing.assert_allclose(ao.ai_gain, 1 + np.asarray(ERRORS.ai_gain), atol=2e-4)
    np.testing.assert_allclose(ao.ai_offset_v, ERRORS.ai_offset_v, atol=2e-5)


def test_a_well_trimmed_daq_has_no_problems(before_and_after):
    *_, cal = before_and_after
    assert cal.problems == ()
    assert cal.ao_channels == WIRING.ao_channels and cal.ai_channels == WIRING.ai_channels
    assert all(c.n_points == 11 for c in cal.channels())
    assert cal.identities["dmm"].startswith("TWINRIG,SIM-34465A")
    assert cal.date.endswith("+00:00")


def test_outputs_span_their_limits_and_inputs_span_what_the_sources_reach(before_and_after):
    *_, cal = before_and_after
    for c in cal.ao:
        assert c.known_v[0] == 0.0 and c.known_v[-1] == 0.45
    for c in cal.ai:  # the Gen-2 lattice has a ground, so its targets reach a fraction of 0.45 V
        assert np.ptp(c.known_v) > 0.2


@pytest.mark.parametrize("kind, index", [("ao", 2), ("ai", 1)])
def test_a_channel_with_a_gross_gain_error_is_named_in_problems(kind, index):
    gain = np.zeros(6 if kind == "ao" else 2)
    gain[index] = 0.10
    rig = sim_rig(dataclasses.replace(ERRORS, **{f"{kind}_gain": gain}))
    cal = calibrate_daq(rig, probe(rig))
    channel = (WIRING.ao_channels if kind == "ao" else WIRING.ai_channels)[index]
    assert len(cal.problems) == 1
    assert re.fullmatch(rf"{re.escape(channel)} \({kind}\): gain 1\.\d+ is \+10\.0\d* % off, tolerance 1 %",
                        cal.problems[0])


def test_outputs_are_safe_after_calibrating():
    rig = sim_rig()
    calibrate_daq(rig, probe(rig), n_points=3, n_samples=5)
    np.testing.assert_array_equal(rig.daq.held_v, rig.limits.safe_v)


def test_a_cross_limit_narrows_the_span_of_an_output():
    wiring = dataclasses.replace(WIRING, cross_limits=(CrossLimit("PXI1Slot2/ao0", "PXI1Slot2/ao4", 0.2),))
    rig = sim_rig(wiring=wiring)
    cal = calibrate_daq(rig, probe(rig), n_points=5, n_samples=5)
    assert cal.ao[0].known_v[-1] == pytest.approx(0.2)
    assert cal.ao[4].known_v[-1] == pytest.approx(0.2)
    assert cal.ao[1].known_v[-1] == pytest.approx(0.45)


def test_progress_is_reported_once_per_channel_and_at_the_end():
    rig = sim_rig()
    seen = []
    calibrate_daq(rig, probe(rig), n_points=3, n_samples=5, on_progress=lambda ch, done, total: seen.append((ch, done, total)))
    assert [s[0] for s in seen] == [*WIRING.ao_channels, *WIRING.ai_channels, ""]
    assert [s[1] for s in seen] == list(range(9)) and {s[2] for s in seen} == {8}


def test_a_calibrated_rig_is_refused():
    rig = sim_rig()
    apply_daq_calibration(rig, DaqCorrections.identity(WIRING.ao_channels, WIRING.ai_channels))
    with pytest.raises(ValueError, match="apply_daq_calibration"):
        calibrate_daq(rig, probe(rig))


def test_the_routine_drives_the_real_multimeter_driver_on_pyvisa_sim():
    from instruments.visa import open_instrument, sim_resource_manager

    rm = sim_resource_manager()
    meter = open_instrument("keysight34465a", "USB0::0x2A8D::0x0101::MY57503317::INSTR", rm, record=True)
    try:
        rig = sim_rig()
        cal = calibrate_daq(rig, lambda channel=None, node=None, twin="free": meter, n_points=4, n_samples=5)
    finally:
        meter.close()
    reads = [reply for command, reply in meter.transport.exchanges if command == "READ?"]
    assert len(reads) == 4 * (6 + 2)
    assert cal.identities["dmm"].startswith("Keysight Technologies,34465A,MY57503317")
    # the simulated meter always reads 0.49998765 V: outputs fit a flat line, inputs no line
    assert cal.ao[0].gain == pytest.approx(0.0, abs=1e-12)
    assert cal.ao[0].offset_v == pytest.approx(0.49998765)
    assert np.isnan(cal.ai[0].gain)
    named = {p.split(" ")[0] for p in cal.problems}
    assert named == set(WIRING.ao_channels) | set(WIRING.ai_channels)
    with pytest.raises(ValueError, match="PXI1Slot2/ao0"):
        cal.corrections()


# -- the calibrated DAQ ----------------------------------------------------------------------


def test_correct_outputs_and_inputs_invert_the_fitted_lines(before_and_after):
    *_, cal = before_and_after
    c = cal.corrections()
    v = np.linspace(0.0, 0.45, 6)
    np.testing.assert_allclose(c.ao_gain * cal.correct_outputs(v) + c.ao_offset_v, v, atol=1e-15)
    nodes = np.array([[0.1, 0.2], [0.3, 0.05]])
    np.testing.assert_allclose(cal.correct_inputs(c.ai_gain * nodes + c.ai_offset_v), nodes, atol=1e-15)


def test_the_safety_layer_checks_the_requested_voltages_above_the_calibration():
    rig = sim_rig(DaqErrors(ao_gain=0.1))
    apply_daq_calibration(rig, DaqCorrections(WIRING.ao_channels, np.full(6, 1.1), np.zeros(6),
                                              WIRING.ai_channels, np.ones(2), np.zeros(2)))
    assert isinstance(rig.daq.daq, CalibratedDaq)
    v = np.full(6, 0.45)
    rig.daq.ramp_to(v)  # 0.45 V asked, 0.409 V raw, 0.45 V on the wire
    np.testing.assert_allclose(rig.bench.daq.output_voltages(), v, atol=2e-4)
    with pytest.raises(LimitError, match="above its limit"):
        rig.daq.write(np.full(6, 0.46))


def test_a_raw_value_outside_the_device_range_is_refused_naming_the_channel():
    rig = sim_rig()
    gain = np.ones(6)
    gain[3] = 0.01  # 0.45 V would need 45 V raw
    apply_daq_calibration(rig, DaqCorrections(WIRING.ao_channels, gain, np.zeros(6),
                                              WIRING.ai_channels, np.ones(2), np.zeros(2)))
    before = rig.bench.daq.output_voltages()
    with pytest.raises(DaqError, match=r"PXI1Slot2/ao3: 0.45 V needs a raw value of 45 V .* -10..10 V"):
        rig.daq.write(np.full(6, 0.45))
    np.testing.assert_array_equal(rig.bench.daq.output_voltages(), before)


def test_removing_the_calibration_gives_back_the_raw_daq():
    rig = sim_rig()
    raw = rig.daq.daq
    apply_daq_calibration(rig, DaqCorrections.identity(WIRING.ao_channels, WIRING.ai_channels))
    apply_daq_calibration(rig, None)
    assert rig.daq.daq is raw


def test_corrections_for_other_channels_are_refused():
    rig = sim_rig()
    with pytest.raises(ValueError, match="corrections are for"):
        apply_daq_calibration(rig, DaqCorrections.identity(("Dev1/ao0",), WIRING.ai_channels))


def test_a_calibration_round_trips_through_a_dict(before_and_after):
    *_, cal = before_and_after
    again = DaqCalibration.from_dict(cal.to_dict())
    assert again.to_dict() == cal.to_dict()
    assert again.tolerance == Tolerance()


# -- the fit -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    gain=st.floats(0.5, 2.0),
    offset_v=st.floats(-0.1, 0.1),
    lo=st.floats(-5.0, 5.0),
    span=st.floats(0.01, 5.0),
    n=st.integers(2, 50),
)
def test_fit_line_recovers_gain_and_offset_from_noise_free_points(gain, offset_v, lo, span, n):
    x = np.linspace(lo, lo + span, n)
    fit = fit_line(x, gain * x + offset_v)
    assert fit.gain == pytest.approx(gain, rel=1e-9)
    assert fit.offset_v == pytest.approx(offset_v, abs=1e-9 * (1 + abs(lo) + span))
    assert fit.residual_rms_v < 1e-9 and fit.linearity < 1e-9


def test_fit_line_reports_the_worst_residual_over_the_span():
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    fit = fit_line(x, x + np.array([0, 0, 1e-3, 0, 0]))  # a bump in the middle: slope unchanged
    assert fit.gain == pytest.approx(1.0) and fit.offset_v == pytest.approx(2e-4)
    assert fit.linearity == pytest.approx(8e-4 / 0.4)  # residuals -0.2, -0.2, +0.8, -0.2, -0.2 mV
    assert fit.residual_rms_v == pytest.approx(np.sqrt((4 * 0.2**2 + 0.8**2) / 5) * 1e-3)


def test_fit_line_without_a_changing_reference_is_nan():
    assert all(np.isnan(fit_line([0.3, 0.3, 0.3], [0.1, 0.2, 0.3])))
