"""The QCoDeS adapters against QCoDeS's own drivers on pyvisa-sim.

Each QCoDeS instrument is opened as QCoDeS's tests open it: on the pyvisa-sim file that ships
with qcodes (``pyvisa_sim_file="Keithley_2450.yaml"``), or, for what that file lacks, on the
extended copy in ``tests/visa_sims/qcodes/`` (given as ``visalib``, since QCoDeS looks a
``pyvisa_sim_file`` up in an importable package). On the stock files the adapters fail with
one InstrumentError naming the missing command; on the extended ones they work.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

qcodes = pytest.importorskip("qcodes")

from qcodes.instrument_drivers.Keithley import Keithley2450  # noqa: E402
from qcodes.instrument_drivers.Keysight import Keysight34465A  # noqa: E402

from instruments.interfaces import (  # noqa: E402
    Configured,
    Identified,
    InstrumentError,
    Multimeter,
    SourceMeter,
)
from instruments.qcodes_adapters import (  # noqa: E402
    Keithley2450Adapter,
    Keysight34465AAdapter,
    adapt,
)

SIMS = Path(__file__).parent / "visa_sims" / "qcodes"
SMU_SIM = f"{SIMS / 'Keithley_2450.yaml'}@sim"
DMM_SIM = f"{SIMS / 'Keysight_34465A.yaml'}@sim"
SMU_IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"

_names = itertools.count()


def _open(driver, address: str, **where):
    """A QCoDeS instrument under a fresh name (QCoDeS refuses two of one name), closed at the
    end of the test by the fixture that asked for it."""
    return driver(f"{driver.__name__.lower()}_{next(_names)}", address, **where)


def _record(instrument) -> list[str]:
    """Every command the QCoDeS driver sends from now on, in order (writes and queries)."""
    sent: list[str] = []
    write, ask = instrument.write_raw, instrument.ask_raw

    def write_raw(cmd: str) -> None:
        sent.append(cmd)
        write(cmd)

    def ask_raw(cmd: str) -> str:
        sent.append(cmd)
        return ask(cmd)

    instrument.write_raw, instrument.ask_raw = write_raw, ask_raw
    return sent


@pytest.fixture
def qsmu():
    smu = _open(Keithley2450, "GPIB::2::INSTR", visalib=SMU_SIM)
    yield smu
    smu.close()


@pytest.fixture
def qdmm():
    dmm = _open(Keysight34465A, "GPIB::1::INSTR", visalib=DMM_SIM)
    yield dmm
    dmm.close()


@pytest.fixture
def smu(qsmu):
    adapter = adapt(qsmu)
    yield adapter
    adapter.close()


@pytest.fixture
def dmm(qdmm):
    adapter = adapt(qdmm)
    yield adapter
    adapter.close()


@pytest.fixture
def stock_smu():
    smu = _open(Keithley2450, "GPIB::2::INSTR", pyvisa_sim_file="Keithley_2450.yaml")
    yield smu
    smu.close()


@pytest.fixture
def stock_dmm():
    dmm = _open(Keysight34465A, "GPIB::1::INSTR", pyvisa_sim_file="Keysight_34465A.yaml")
    yield dmm
    dmm.close()


# -- choosing the adapter ----------------------------------------------------------------------
def test_adapt_makes_a_keithley_2450_a_source_meter(qsmu):
    adapter = adapt(qsmu)
    assert isinstance(adapter, Keithley2450Adapter)
    assert isinstance(adapter, SourceMeter) and isinstance(adapter, Identified)
    assert isinstance(adapter, Configured)


def test_adapt_makes_a_keysight_34465a_a_multimeter(qdmm):
    adapter = adapt(qdmm)
    assert isinstance(adapter, Keysight34465AAdapter)
    assert isinstance(adapter, Multimeter) and isinstance(adapter, Configured)


def test_adapt_refuses_an_instrument_it_has_no_adapter_for_naming_it():
    from qcodes.instrument_drivers.mock_instruments import DummyInstrument

    dummy = DummyInstrument("dummy_unsupported")
    try:
        with pytest.raises(TypeError,
                           match=r"DummyInstrument \('dummy_unsupported'\).*Keithley2450.*Keysight34465A"):
            adapt(dummy)
    finally:
        dummy.close()


def test_an_adapter_refuses_the_other_driver(qdmm):
    with pytest.raises(TypeError, match="Keithley2450, got .*Keysight34465A"):
        Keithley2450Adapter(qdmm)


def test_a_2450_in_its_tsp_command_set_is_refused_by_name():
    # the stock file's "wrong mode" device
    smu = _open(Keithley2450, "GPIB::1::INSTR", pyvisa_sim_file="Keithley_2450.yaml")
    try:
        with pytest.raises(InstrumentError, match="not in its SCPI command set.*set_correct_language"):
            adapt(smu)
    finally:
        smu.close()


# -- the source-meter --------------------------------------------------------------------------
def test_smu_identity_is_the_idn_reply_as_twinrig_drivers_record_it(smu):
    assert smu.identity() == SMU_IDN  # QCoDeS's IDN parameter would say model "2450"


def test_smu_configure_sets_and_reads_back_every_setting(smu, qsmu):
    qsmu.output_enabled(True)
    smu.configure(1e-3, nplc=2.0, voltage_protection_v=0.45)
    assert smu.settings() == {
        "output_on": False, "source_function": "VOLT", "sense_function": "CURR:DC",
        "source_voltage_v": 0.0, "source_range_v": 2.0, "source_autorange": True,
        "voltage_protection_v": 2.0, "voltage_protection_tripped": False, "current_limit_a": 1e-3,
        "current_range_a": 1e-4, "current_autorange": True, "nplc": 2.0,
    }


def test_smu_configure_sets_the_overvoltage_protection_the_driver_has_no_parameter_for(qsmu):
    smu = adapt(qsmu, voltage_protection_v=12.0)
    sent = _record(qsmu)
    smu.configure(1e-3)
    assert ":SOUR:VOLT:PROT PROT20" in sent
    assert sent.index(":SOUR:VOLT:PROT PROT20") < sent.index("SOUR:voltage:ILIM 0.001")
    smu.set_voltage_protection(None)
    assert smu.settings()["voltage_protection_v"] is None
    smu.close()


def test_smu_refuses_a_voltage_protection_outside_210_v_before_sending(qsmu):
    with pytest.raises(ValueError, match="voltage_protection_v: 250 V is outside 0..210 V"):
        adapt(qsmu, voltage_protection_v=250)


def test_smu_settings_are_a_flat_json_dict(smu):
    smu.configure(1e-4)
    settings = smu.settings()
    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in settings.values())
    assert json.loads(json.dumps(settings)) == settings


def test_smu_configure_switches_the_output_off_first_and_zeroes_a_stale_level(smu, qsmu):
    qsmu.source_function("voltage")
    qsmu.source.voltage(150.0)
    qsmu.output_enabled(True)
    sent = _record(qsmu)
    smu.configure(1e-3)
    assert [c for c in sent if not c.endswith("?")][0] == ":OUTP 0"
    assert "SOUR:voltage 0.0" in sent
    assert qsmu.source.voltage() == 0.0


def test_smu_output_is_switched_on_only_after_0_v_and_the_limit_were_set(smu, qsmu):
    sent = _record(qsmu)
    smu.configure(1e-3)
    smu.output(True)
    on = sent.index(":OUTP 1")
    assert sent.index("SOUR:voltage 0.0") < on and sent.index("SOUR:voltage:ILIM 0.001") < on
    assert {"SOUR:voltage?", "SOUR:voltage:ILIM?"} <= set(sent[sent.index("SOUR:voltage:ILIM 0.001") + 1:on])
    assert qsmu.output_enabled() is True


def test_smu_output_goes_on_at_the_level_programmed_through_the_adapter(smu, qsmu):
    smu.configure(1e-3)
    smu.set_voltage(0.2)
    smu.output(True)
    assert smu.source_voltage() == 0.2 and qsmu.output_enabled() is True


def test_smu_output_stays_off_when_the_station_changed_the_level_since(smu, qsmu):
    smu.configure(1e-3)
    qsmu.source.voltage(150.0)
    with pytest.raises(InstrumentError, match="reads 150.0 V with a 0.001 A limit, not the 0.0 V"):
        smu.output(True)
    assert qsmu.output_enabled() is False


def test_smu_output_on_before_configure_is_refused_and_nothing_is_sent(smu, qsmu):
    sent = _record(qsmu)
    with pytest.raises(InstrumentError, match="cannot switch the output on before configure"):
        smu.output(True)
    assert sent == []


def test_smu_output_stays_off_when_the_station_changed_the_limit_since_configure(smu, qsmu):
    smu.configure(1e-3)
    qsmu.source.limit(0.5)
    with pytest.raises(InstrumentError, match="reads 0.0 V with a 0.5 A limit, not the 0.0 V and 0.001 A"):
        smu.output(True)
    assert qsmu.output_enabled() is False


def test_smu_measure_current_sources_the_voltage_and_reads_the_current(smu, qsmu):
    smu.configure(1e-3)
    smu.output(True)
    qsmu.write("SIM:CURRent 2.5e-05")
    assert smu.measure_current(0.3) == 2.5e-05
    assert qsmu.source.voltage() == 0.3


@pytest.mark.parametrize("voltage_v", [210.5, -300.0, float("nan")])
@pytest.mark.parametrize("method", ["measure_current", "set_voltage"])
def test_smu_refuses_a_voltage_outside_210_v_naming_it(smu, qsmu, voltage_v, method):
    smu.configure(1e-3)
    smu.output(True)
    sent = _record(qsmu)
    with pytest.raises(ValueError, match=rf"{method} voltage_v: {voltage_v} V is outside -210..210 V"):
        getattr(smu, method)(voltage_v)
    assert sent == []


def test_smu_measure_current_with_the_output_off_is_an_instrument_error(smu):
    smu.configure(1e-3)
    with pytest.raises(InstrumentError, match="Output needs to be on"):
        smu.measure_current(0.1)


def test_smu_refuses_to_measure_once_the_station_switched_it_to_another_function(smu, qsmu):
    smu.configure(1e-3)
    smu.output(True)
    qsmu.source_function("current")
    with pytest.raises(InstrumentError, match="source current and measure current since configure"):
        smu.measure_current(0.1)


def test_smu_sweep_returns_levels_read_back_and_currents(smu, qsmu):
    smu.configure(1e-3)
    smu.output(True)
    qsmu.write("SIM:CURRent 1e-06")
    levels_v, currents_a = smu.sweep(np.array([0.0, 0.1, -0.2]))
    np.testing.assert_array_equal(levels_v, [0.0, 0.1, -0.2])
    np.testing.assert_array_equal(currents_a, [1e-06, 1e-06, 1e-06])


def test_smu_sweep_does_not_stop_at_the_current_limit(smu, qsmu):
    smu.configure(1e-6)
    smu.output(True)
    qsmu.write("SIM:TRIPped 1")
    levels_v, _ = smu.sweep([0.1, 0.2, 0.3])
    assert levels_v.size == 3
    assert smu.in_compliance() is True


def test_smu_sweep_refuses_a_point_out_of_range_before_sending_anything(smu, qsmu):
    smu.configure(1e-3)
    smu.output(True)
    sent = _record(qsmu)
    with pytest.raises(ValueError, match="sweep"):
        smu.sweep([0.0, 1.0, 250.0])
    assert sent == []


def test_smu_in_compliance_reads_the_limit_trip_flag(smu, qsmu):
    smu.configure(1e-3)
    assert smu.in_compliance() is False
    qsmu.write("SIM:TRIPped 1")
    assert smu.in_compliance() is True


def test_smu_configure_discards_and_logs_errors_queued_before_it(smu, qsmu, caplog):
    qsmu.write(":SOUR:VOLT:BOGUS 1")  # an unknown command: queued, no reply
    smu.configure(1e-3)
    assert 'discarded 1 error(s) queued before this configuration: -113,"Undefined header' in caplog.text


def test_smu_configure_reports_an_error_the_instrument_queued_during_it(smu, qsmu, monkeypatch):
    # a command the instrument refuses although the setting then reads back as wanted
    qsmu.source_function("voltage")
    monkeypatch.setattr(qsmu.source.auto_range, "set",
                        lambda on: qsmu.write(":SOURce:voltage:RANGe:AUTO BOGUS"))
    with pytest.raises(InstrumentError, match=r'error queue \(:SYST:ERR\?\) held -113,"Undefined header'):
        smu.configure(1e-3)


def test_smu_close_switches_the_output_off_and_leaves_the_qcodes_instrument_open(smu, qsmu):
    smu.configure(1e-3)
    smu.output(True)
    smu.close()
    smu.close()
    assert qsmu.output_enabled() is False
    assert qsmu.ask("*IDN?") == SMU_IDN
    with pytest.raises(InstrumentError, match="closed"):
        smu.configure(1e-3)


def test_smu_on_the_stock_qcodes_sim_fails_once_naming_the_missing_command(stock_smu):
    smu = adapt(stock_smu)
    with pytest.raises(InstrumentError, match=r"reading the error queue \(:SYST:ERR\?\) failed: .*'ERROR'"):
        smu.configure(1e-3)
    smu.close()  # the instrument answers in step again: off, confirmed
    assert stock_smu.output_enabled() is False


def test_smu_a_setting_that_does_not_read_back_is_an_instrument_error_naming_it(smu, qsmu, monkeypatch):
    smu.configure(1e-3)
    # an instrument that takes the command and keeps its old value
    monkeypatch.setattr(qsmu.sense.nplc, "get", lambda: "1")
    with pytest.raises(InstrumentError,
                       match=r"set \w+_sense_nplc to 5.0 \(:SENSe:current:NPLCycles \{\}\) "
                             r"but it reads back '1'"):
        smu.configure(1e-3, nplc=5.0)
    with pytest.raises(InstrumentError, match="before configure"):
        smu.output(True)  # a failed configure leaves it unconfigured


# -- the multimeter ----------------------------------------------------------------------------
def test_dmm_configure_sets_and_reads_back_every_setting(dmm):
    dmm.configure_dc_volts(10, 1)
    assert dmm.settings() == {
        "function": "VOLT", "range_v": 10.0, "autorange": False, "nplc": 1.0,
        "aperture_enabled": False, "aperture_s": 0.0, "autozero": True,
        "input_impedance_auto": True, "input_impedance": "10G",
    }


def test_dmm_configure_without_a_range_autoranges(dmm):
    dmm.configure_dc_volts(None, 10, autozero="OFF", input_impedance="10M")
    settings = dmm.settings()
    assert settings["autorange"] is True and settings["nplc"] == 10.0
    assert settings["autozero"] is False and settings["input_impedance"] == "10M"
    assert json.loads(json.dumps(settings)) == settings


def test_dmm_configure_with_an_aperture_integrates_for_that_time(dmm):
    dmm.configure_dc_volts(1, aperture_s=0.001)
    settings = dmm.settings()
    assert settings["aperture_enabled"] is True and settings["aperture_s"] == 0.001


def test_dmm_configure_sets_the_input_impedance_the_driver_has_no_parameter_for(dmm, qdmm):
    sent = _record(qdmm)
    dmm.configure_dc_volts(1, 1)
    assert "SENSe:VOLTage:DC:IMPedance:AUTO 1" in sent
    assert qdmm.ask("SENSe:VOLTage:DC:IMPedance:AUTO?") == "1"


@pytest.mark.parametrize(("options", "match"), [
    ({"range_v": 3}, "range_v: 3 V is not one of 0.1, 1, 10, 100, 1000"),
    ({"nplc": 3}, "nplc: 3 is not one of"),
    ({"aperture_s": 5.0}, "aperture_s: 5.0 s is outside 2e-05..1 s"),
    ({"autozero": "ONCE"}, "autozero: ONCE is not one of ON, OFF"),
    ({"input_impedance": "1G"}, "input_impedance: 1G is not one of auto, 10M"),
])
def test_dmm_configure_refuses_a_value_it_does_not_take_before_sending(dmm, qdmm, options, match):
    sent = _record(qdmm)
    with pytest.raises(ValueError, match=match):
        dmm.configure_dc_volts(**options)
    assert sent == []


def test_dmm_measure_dc_volts_reads_the_meter(dmm, qdmm):
    qdmm.write("SIM:VOLTage 0.4125")
    assert dmm.measure_dc_volts() == 0.4125


@pytest.mark.parametrize("reading", ["9.9E+37", "-9.9E+37", "9.91E+37"])
def test_dmm_overload_is_an_instrument_error_never_a_voltage(dmm, qdmm, reading):
    dmm.configure_dc_volts(1)
    qdmm.write(f"SIM:VOLTage {reading}")
    with pytest.raises(InstrumentError, match=r"overload on the 1 V range: READ\? gave [+-]9.9E\+37"):
        dmm.measure_dc_volts()
    qdmm.write("SIM:VOLTage 0.2")
    assert dmm.measure_dc_volts() == 0.2


def test_dmm_configure_discards_and_logs_errors_queued_before_it(dmm, qdmm, caplog):
    qdmm.write("VOLT:DC:BOGUS 1")
    dmm.configure_dc_volts(10, 1)
    assert 'discarded 1 error(s) queued before this configuration: -113,"Undefined header"' in caplog.text


def test_dmm_configure_reports_an_error_the_meter_queued_during_it(dmm, qdmm, monkeypatch):
    # a range the meter refuses, leaving the 1 V range it was asked for
    monkeypatch.setattr(qdmm.range, "set", lambda range_v: qdmm.write("SENSe:VOLTage:DC:RANGe 3"))
    with pytest.raises(InstrumentError, match=r'error queue \(SYSTem:ERRor\?\) held -113,"Undefined header"'):
        dmm.configure_dc_volts(1, 1)


def test_adapting_reads_off_a_reply_an_interrupted_script_left_waiting(qdmm, caplog):
    qdmm.visa_handle.write("READ?")  # asked, never read
    dmm = adapt(qdmm)
    assert "discarded 1 stale reply: '10'" in caplog.text
    dmm.configure_dc_volts(10, 1)
    assert dmm.measure_dc_volts() == 10.0


def test_after_a_failed_exchange_the_next_command_is_answered_in_step(dmm, qdmm):
    qdmm.visa_handle.write("READ?")  # a reply the adapter does not expect
    with pytest.raises(InstrumentError, match=r"reading the error queue \(SYSTem:ERRor\?\) failed"):
        dmm.configure_dc_volts(10, 1)
    dmm.configure_dc_volts(10, 1)
    assert dmm.settings()["range_v"] == 10.0


def test_dmm_close_leaves_the_qcodes_instrument_open(dmm, qdmm):
    dmm.close()
    dmm.close()
    assert qdmm.volt() == 10.0
    with pytest.raises(InstrumentError, match="closed"):
        dmm.measure_dc_volts()


def test_dmm_on_the_stock_qcodes_sim_fails_once_naming_the_missing_command(stock_dmm):
    dmm = adapt(stock_dmm)
    assert dmm.measure_dc_volts() == 10.0  # the stock file reads 10 V
    with pytest.raises(InstrumentError,
                       match=r"reading the error queue \(SYSTem:ERRor\?\) failed: .*'ERROR'"):
        dmm.configure_dc_volts(10, 1)
    assert dmm.measure_dc_volts() == 10.0  # in step again


# -- from a station, on a rig ------------------------------------------------------------------
def test_the_adapters_configure_instruments_a_station_holds_after_its_snapshot(qsmu, qdmm, caplog):
    # the station's snapshot asks for parameters the simulated instruments refuse; each is
    # an error queued, and a timeout (kept short here) since no reply comes
    qsmu.timeout(0.02)
    qdmm.timeout(0.02)
    station = qcodes.Station(qsmu, qdmm)
    smu, dmm = adapt(station.components[qsmu.name]), adapt(station.components[qdmm.name])
    smu.configure(1e-3)
    dmm.configure_dc_volts(10, 1)
    assert "queued before this configuration" in caplog.text
    smu.output(True)
    assert smu.measure_current(0.1) == 1.5e-06 and dmm.measure_dc_volts() == 10.0
    smu.close()


def test_a_rig_given_the_adapters_records_them_and_switches_the_smu_off_at_close(smu, dmm, qsmu, qdmm):
    from instruments.rig import open_rig

    rig = open_rig()
    rig.smu, rig.dmm = smu, dmm
    smu.configure(1e-3)
    smu.output(True)
    assert rig.identities()["smu"] == SMU_IDN
    assert rig.settings()["smu"]["output_on"] is True
    assert rig.settings()["dmm"]["function"] == "VOLT"
    rig.close()
    assert qsmu.output_enabled() is False
    assert qdmm.volt() == 10.0  # the station's instruments stay open



# -- a station's instruments behind the rig's safety layer --------------------------------------


def _gen2_with_smu_step(max_step_v: float):
    from dataclasses import replace

    from instruments.wiring import default_wiring

    wiring = default_wiring("gen2")
    return replace(wiring, smu=replace(wiring.smu, options={**wiring.smu.options, "max_step_v": max_step_v}))


def test_a_stations_source_meter_handed_to_open_rig_is_ramped_and_limited_by_the_safety_layer(qsmu, qdmm):
    from instruments.rig import open_rig
    from instruments.safe_instruments import SafeSourceMeter
    from instruments.safety import LimitError
    from instruments.wiring import NODE_MAX_V

    rig = open_rig(_gen2_with_smu_step(0.1), simulate=True, instruments={"smu": adapt(qsmu), "dmm": adapt(qdmm)})
    try:
        assert isinstance(rig.smu, SafeSourceMeter)
        rig.smu.configure(1e-3)
        rig.smu.output(True)
        assert qsmu.output_enabled() is True and qsmu.source.voltage() == 0.0
        sent = _record(qsmu)
        rig.smu.set_voltage(0.4)
        levels = [float(c.split()[1]) for c in sent if c.startswith("SOUR:voltage ")]
        assert levels == pytest.approx([0.1, 0.2, 0.3, 0.4])
        del sent[:]
        with pytest.raises(LimitError, match=f"above its limit {NODE_MAX_V['mosfet']:g} V"):
            rig.smu.set_voltage(5.0)
        assert [c for c in sent if c.startswith("SOUR:voltage ")] == [], "refused before anything was sent"
        assert qsmu.source.voltage() == pytest.approx(0.4)
        assert rig.dmm.identity().startswith("Keysight")
    finally:
        rig.close()
    # closing the rig ramps the station's source-meter down and switches it off, and leaves
    # the QCoDeS instrument itself open for the station
    assert qsmu.output_enabled() is False and qsmu.source.voltage() == pytest.approx(0.0)
    assert qsmu.IDN()["model"] == "2450"


def test_a_stations_source_meter_is_switched_on_only_at_0_v_through_the_rig(qsmu, qdmm):
    from instruments.rig import open_rig

    qsmu.source_function("voltage")
    qsmu.source.voltage(150.0)  # a stale level the station left behind
    rig = open_rig(_gen2_with_smu_step(0.1), simulate=True, instruments={"smu": adapt(qsmu), "dmm": adapt(qdmm)})
    try:
        sent = _record(qsmu)
        rig.smu.output(True)  # configures first: off, 0 V, limit, protection, then on
        on = sent.index(":OUTP 1")
        assert sent.index("SOUR:voltage 0.0") < on
        assert qsmu.source.voltage() == 0.0 and qsmu.output_enabled() is True
    finally:
        rig.close()
    assert qsmu.output_enabled() is False
