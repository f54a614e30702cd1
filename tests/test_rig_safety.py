"""A rig puts every output on the bench behind the safety layer: the DAQ, the source-meter
and the supply, opened from a rig file or handed over already open."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hostctl.rigfile import RigFileError, loads_rig
from instruments.rig import open_rig
from instruments.safe_instruments import SafeSourceMeter, SafeSupply
from instruments.safety import LimitError
from instruments.wiring import Instrument, default_wiring

RIG = open("examples/rig_gen2.toml").read()


def test_the_simulated_benchs_source_meter_and_supply_are_behind_the_safety_layer():
    rig = open_rig(default_wiring("gen2"), simulate=True)
    try:
        assert isinstance(rig.smu, SafeSourceMeter) and isinstance(rig.psu, SafeSupply)
        assert rig.smu.max_v == 0.45  # the Gen-2 boards' node range
        rig.smu.configure(1e-3)
        with pytest.raises(LimitError, match="0.5"):
            rig.smu.set_voltage(0.5)
        rig.smu.output(True)
        rig.smu.set_voltage(0.2)  # ramped: 0.05 V a write at most
        steps = [volts for _, _, volts in rig.bench.smu.applied]
        assert steps[-1] == pytest.approx(0.2)
        assert max(abs(b - a) for a, b in zip([0.0, *steps], steps)) <= 0.05 + 1e-12
    finally:
        rig.close()
    assert rig.bench.smu.source_voltage() == 0.0  # ramped down before the output went off


def test_the_rig_files_safety_options_set_the_source_meters_limits():
    wiring = default_wiring("gen2")
    smu = Instrument("sim", "sim", {"compliance_a": 2e-4, "max_v": 0.3, "max_step_v": 0.01})
    rig = open_rig(replace(wiring, smu=smu), simulate=True)
    try:
        assert (rig.smu.max_v, rig.smu.max_step_v, rig.smu.compliance_a) == (0.3, 0.01, 2e-4)
        with pytest.raises(LimitError):
            rig.smu.configure(1e-3)  # above the rig's compliance
    finally:
        rig.close()


def test_an_instrument_already_open_goes_behind_the_safety_layer_too():
    from instruments.sim.bench import SimBench

    other = SimBench(default_wiring("gen2"), seed=5).smu
    rig = open_rig(default_wiring("gen2"), simulate=True, instruments={"smu": other})
    try:
        assert isinstance(rig.smu, SafeSourceMeter) and rig.smu.smu is other
    finally:
        rig.close()
    with pytest.raises(ValueError, match="unknown role scope"):
        open_rig(default_wiring("gen2"), simulate=True, instruments={"scope": other})


@pytest.mark.parametrize("line, field", [
    ("voltage_protection_v = 500.0", "instruments.smu.voltage_protection_v"),
    ("max_step_v = 0.0", "instruments.smu.max_step_v"),
    ("min_v = 1.0", "instruments.smu.min_v"),
])
def test_bad_source_meter_safety_options_are_refused_by_name(line, field):
    text = RIG.replace("compliance_a = 1e-3", f"compliance_a = 1e-3\n{line}", 1)
    assert text != RIG
    with pytest.raises(RigFileError, match=field.replace(".", r"\.")):
        loads_rig(text, "rig.toml")


def test_the_meters_and_supplys_new_options_are_read():
    text = RIG
    for role, extra in (("dmm", 'autozero = "OFF"\ninput_impedance = "10M"\naperture_s = 0.02'),
                        ("psu", "max_v = 5.5\nmax_step_v = 0.5")):
        head = f"[instruments.{role}]"
        assert head in text
        text = text.replace(head, f"{head}\n{extra}", 1)
    wiring = loads_rig(text, "rig.toml")
    assert wiring.dmm.options["input_impedance"] == "10M" and wiring.dmm.options["aperture_s"] == 0.02
    assert wiring.psu.options["max_step_v"] == 0.5


def test_a_run_file_keeps_what_every_instrument_was_set_to_read_back_from_it(tmp_path):
    from hostctl import session
    from hostctl.experiment import builtin_experiment_text, loads_experiment
    from hostctl.runfile import load

    text = builtin_experiment_text("xor_gen2").replace("epochs = ", "epochs = 1 #", 1)
    exp = loads_experiment(text, "<xor_gen2>")
    rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
    try:
        rig.bench.dmm.configure_dc_volts(10.0, 10)  # set behind the driver's back: read back, not remembered
        session.train(exp, rig, tmp_path / "run.h5")
    finally:
        rig.close()
    settings = load(tmp_path / "run.h5").provenance["settings"]
    assert {"daq", "smu", "dmm", "psu"} <= set(settings)
    assert settings["dmm"]["range_v"] == 10.0 and settings["dmm"]["nplc"] == 10
    assert settings["smu"]["output_on"] is False
    assert settings["daq"], "the DAQ's task settings"


# -- what only the host guards, in the run's event log -------------------------------------------


def _xor_gen2_bench():
    from hostctl import session
    from hostctl.experiment import builtin_experiment_text, loads_experiment

    text = builtin_experiment_text("xor_gen2").replace("epochs = ", "epochs = 1 #", 1)
    exp = loads_experiment(text, "<xor_gen2>")
    return exp, session.open_bench(exp, session.wiring_for(exp, None), simulate=True)


def _outputs_on_an_x_series_device(wiring):
    """The wiring with its analog-output device an X Series PXIe-6363, whose watchdog takes no
    analog expiration states (its other fields as they were)."""
    ao_device = wiring.outputs[0].channel.split("/")[0]
    return replace(wiring, daq_devices={**wiring.daq_devices, ao_device: "PXIe-6363"})


def test_a_run_on_a_bench_whose_watchdog_guards_every_output_logs_no_watchdog_event(tmp_path):
    from hostctl import session
    from hostctl.runfile import load

    exp, rig = _xor_gen2_bench()
    try:
        assert session.watchdog_event(rig) is None
        session.train(exp, rig, tmp_path / "run.h5")
    finally:
        rig.close()
    assert not [m for m in load(tmp_path / "run.h5").events["message"] if "watchdog" in m]


def test_a_run_names_the_outputs_only_the_host_guards_in_its_event_log(tmp_path):
    from hostctl import session
    from hostctl.runfile import load

    exp, rig = _xor_gen2_bench()
    rig.wiring = _outputs_on_an_x_series_device(rig.wiring)
    ao_device = rig.wiring.outputs[0].channel.split("/")[0]
    try:
        session.train(exp, rig, tmp_path / "run.h5")
    finally:
        rig.close()
    events = load(tmp_path / "run.h5").events
    hits = events[events["message"].str.contains("watchdog")]
    assert len(hits) == 1 and hits["step"].iloc[0] == 0 and hits["level"].iloc[0] == "info"
    assert f"the analog outputs of {ao_device} (PXIe-6363)" in hits["message"].iloc[0]
    assert "on the real bench" in hits["message"].iloc[0]


def test_on_a_real_bench_the_outputs_only_the_host_guards_are_a_warning():
    from hostctl import session

    exp, rig = _xor_gen2_bench()
    try:
        real = replace(rig, wiring=_outputs_on_an_x_series_device(rig.wiring), bench=None)
        level, message = session.watchdog_event(real)
    finally:
        rig.close()
    assert level == "warning"
    assert message.startswith("no hardware watchdog guards the analog outputs of ")
    assert "a host that hangs leaves them at their last values" in message
