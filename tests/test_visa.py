"""The SCPI drivers against pyvisa-sim: every exchange with each instrument, in order, and
every way an instrument can fail (refusal, silence, nonsense, a tripped output)."""

from __future__ import annotations

import json
import logging
import math
import re

import numpy as np
import pytest
import pyvisa
from hypothesis import given
from hypothesis import strategies as st

from instruments.interfaces import (
    Identified,
    InstrumentError,
    Multimeter,
    OverCurrent,
    PowerSupply,
    SourceMeter,
)
from instruments.visa import (
    SIM_BENCH,
    Keithley2450,
    Keysight34465A,
    KeysightE36312A,
    open_instrument,
    sim_resource_manager,
)
from instruments.visa.keithley2450 import protection_for
from instruments.visa.scpi import (
    Range,
    ScpiInstrument,
    Setting,
    format_bool,
    format_number,
    format_numbers,
    parse_bool,
    parse_error,
    parse_number,
    parse_numbers,
)

SMU = "USB0::0x05E6::0x2450::04096331::INSTR"
SMU_TSP = "USB0::0x05E6::0x2450::04099999::INSTR"
DMM = "USB0::0x2A8D::0x0101::MY57503317::INSTR"
DMM_SILENT = "USB0::0x2A8D::0x0101::MY57500001::INSTR"
DMM_GARBLED = "USB0::0x2A8D::0x0101::MY57500002::INSTR"
DMM_OVERLOADED = "USB0::0x2A8D::0x0101::MY57500003::INSTR"
DMM_OVERLOADED_NEGATIVE = "USB0::0x2A8D::0x0101::MY57500004::INSTR"
PSU = "USB0::0x2A8D::0x1102::MY59001234::INSTR"
PSU_TRIPPED = "USB0::0x2A8D::0x1102::MY59005678::INSTR"

SMU_IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"
DMM_IDN = "Keysight Technologies,34465A,MY57503317,A.02.17-02.40-02.17-00.52-03-01"
PSU_IDN = "Keysight Technologies,E36312A,MY59001234,2.1.0-1.0.4-1.12"

SMU_OK = (":SYST:ERR?", '0,"No error;0,0,0"')
KEYSIGHT_OK = ("SYST:ERR?", '+0,"No error"')

TIMEOUT_S = 0.05


@pytest.fixture(scope="module")
def rm():
    return sim_resource_manager()


def _open(rm, kind, address, **options):
    """Open recording; forget the opening exchanges (tested on their own)."""
    instrument = open_instrument(kind, address, rm, timeout_s=TIMEOUT_S, record=True, **options)
    instrument.transport.exchanges.clear()
    return instrument


@pytest.fixture
def smu(rm):
    smu = _open(rm, "keithley2450", SMU)
    yield smu
    smu.close()


@pytest.fixture
def dmm(rm):
    dmm = _open(rm, "keysight34465a", DMM)
    yield dmm
    dmm.close()


@pytest.fixture
def psu(rm):
    psu = _open(rm, "keysight_e36312a", PSU)
    yield psu
    psu.close()


# -- opening -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, address, model", [("keithley2450", DMM, "2450"), ("keysight34465a", PSU, "34465A")])
def test_the_wrong_instrument_at_an_address_is_refused(rm, kind, address, model):
    with pytest.raises(InstrumentError, match=f"{re.escape(address[:20])}.*\\*IDN\\? answered .*which is not a {model}"):
        open_instrument(kind, address, rm, timeout_s=TIMEOUT_S)


OPENING = {
    "keithley2450": [("*IDN?", SMU_IDN), ("*LANG?", "SCPI"), ("*CLS", None)],
    "keysight34465a": [("*IDN?", DMM_IDN), ("*CLS", None)],
    "keysight_e36312a": [("*IDN?", PSU_IDN), ("*CLS", None)],
}


@pytest.mark.parametrize(
    "kind, address, idn",
    [("keithley2450", SMU, SMU_IDN), ("keysight34465a", DMM, DMM_IDN), ("keysight_e36312a", PSU, PSU_IDN)],
)
def test_opening_identifies_the_instrument_and_clears_its_error_queue(rm, kind, address, idn):
    instrument = open_instrument(kind, address, rm, timeout_s=TIMEOUT_S, record=True)
    try:
        assert instrument.transport.exchanges[:len(OPENING[kind])] == OPENING[kind]
        assert instrument.identity() == idn
        assert instrument.stale_replies == []
    finally:
        instrument.close()


@pytest.mark.parametrize("kind, address, query, stale", [
    ("keysight34465a", DMM, "READ?", "+4.99987654E-01"),
    ("keithley2450", SMU, ":SOUR:VOLT:ILIM?", "1.050000E-04"),
    ("keysight_e36312a", PSU, "MEAS:CURR? (@1)", "+1.23450000E-02"),
])
def test_a_reply_a_killed_run_left_behind_is_read_out_at_opening_not_taken_for_the_identity(
        rm, kind, address, query, stale):
    killed = rm.open_resource(address)
    killed.write_termination = "\n"
    killed.write(query)  # the run died before reading the reply
    killed.close()
    instrument = open_instrument(kind, address, rm, timeout_s=TIMEOUT_S, record=True)
    try:
        assert instrument.stale_replies == [stale]
        assert instrument.transport.exchanges[:2] == [("<stale>", stale), OPENING[kind][0]]
    finally:
        instrument.close()


def test_a_2450_in_its_tsp_command_set_is_refused_in_one_line_saying_how_to_switch(rm):
    with pytest.raises(InstrumentError) as caught:
        open_instrument("keithley2450", SMU_TSP, rm, timeout_s=TIMEOUT_S)
    assert str(caught.value) == (
        f"the 2450 at {pyvisa.rname.to_canonical_name(SMU_TSP)} is in its TSP command set; switch it to SCPI "
        "(MENU > System > Settings > Command Set) and power-cycle"
    )
    assert rm.list_opened_resources() == []


def test_every_driver_is_its_interface(smu, dmm, psu):
    assert isinstance(smu, Keithley2450) and isinstance(smu, SourceMeter)
    assert isinstance(dmm, Keysight34465A) and isinstance(dmm, Multimeter)
    assert isinstance(psu, KeysightE36312A) and isinstance(psu, PowerSupply)
    assert all(isinstance(i, Identified) for i in (smu, dmm, psu))


def test_an_unknown_kind_is_refused_before_opening(rm):
    with pytest.raises(ValueError, match="'keithley2400'.*keithley2450"):
        open_instrument("keithley2400", SMU, rm)


def test_nothing_is_recorded_unless_asked(rm):
    dmm = open_instrument("keysight34465a", DMM, rm, timeout_s=TIMEOUT_S)
    try:
        dmm.measure_dc_volts()
        assert dmm.transport.exchanges == []
    finally:
        dmm.close()


def test_rig_file_options_set_the_instrument_up_when_it_opens(rm):
    psu = open_instrument(
        "keysight_e36312a", PSU, rm, timeout_s=TIMEOUT_S, record=True,
        channel=2, voltage_v=12.0, current_limit_a=0.5,
    )
    try:
        assert psu.transport.exchanges[2:] == [
            ("CURR 0.5,(@2)", None), KEYSIGHT_OK,
            ("CURR:PROT:STAT ON,(@2)", None), KEYSIGHT_OK,
            ("VOLT 12.0,(@2)", None), KEYSIGHT_OK,
        ]
    finally:
        psu.close()


def test_a_setup_out_of_range_is_refused_and_the_resource_closed(rm):
    with pytest.raises(ValueError, match=r"current_limit_a: 2.0 A is outside 1e-09..1.05 A"):
        open_instrument("keithley2450", SMU, rm, timeout_s=TIMEOUT_S, compliance_a=2.0)
    assert rm.list_opened_resources() == []


def test_an_option_the_driver_does_not_have_is_refused_and_the_resource_closed(rm):
    with pytest.raises(TypeError, match="compliant_a"):
        open_instrument("keithley2450", SMU, rm, timeout_s=TIMEOUT_S, compliant_a=1e-3)
    assert rm.list_opened_resources() == []


def test_the_bench_file_holds_every_resource_of_the_instrument_files():
    def resources(path):
        return set(pyvisa.ResourceManager(f"{path}@sim").list_resources())

    parts = ["keithley2450.yaml", "keysight34465a.yaml", "keysight_e36312a.yaml"]
    assert resources(SIM_BENCH) == set().union(*(resources(SIM_BENCH.parent / p) for p in parts))


# -- Keithley 2450 -----------------------------------------------------------------------------
def test_smu_configure_reaches_a_known_state_output_off_at_0_v_before_anything_else(smu):
    smu.configure(1e-3, nplc=2.0, voltage_protection_v=0.45)
    assert smu.transport.exchanges == [
        (":OUTP OFF", None), SMU_OK,
        (":SOUR:FUNC VOLT", None), SMU_OK,
        (":SOUR:VOLT 0.0", None), SMU_OK,
        (":SOUR:VOLT:PROT PROT2", None), SMU_OK,
        (":SOUR:VOLT:RANG:AUTO ON", None), SMU_OK,
        (':SENS:FUNC "CURR"', None), SMU_OK,
        (":SENS:CURR:RANG:AUTO ON", None), SMU_OK,
        (":SOUR:VOLT:ILIM 0.001", None), SMU_OK,
        (":SENS:CURR:NPLC 2.0", None), SMU_OK,
    ]


def test_smu_configure_leaves_no_stale_level_programmed(smu):
    smu.set_voltage(42.0)
    smu.configure(1e-3)
    assert smu.source_voltage() == 0.0


@pytest.mark.parametrize("voltage_v, setting", [
    (None, "NONE"), (0.0, "PROT2"), (0.45, "PROT2"), (2.0, "PROT2"), (2.0001, "PROT5"), (7.5, "PROT10"),
    (41.0, "PROT60"), (180.0, "PROT180"), (180.5, "NONE"), (210.0, "NONE"),
])
def test_the_overvoltage_protection_is_the_lowest_level_covering_the_largest_allowed_level(voltage_v, setting):
    assert protection_for(voltage_v) == setting


@pytest.mark.parametrize("voltage_v", [-1.0, 210.5, math.nan])
def test_an_overvoltage_protection_outside_the_2450s_range_is_refused_naming_the_option(voltage_v):
    with pytest.raises(ValueError, match=rf"^voltage_protection_v: {voltage_v} V is outside 0..210 V$"):
        protection_for(voltage_v)


def test_the_protection_option_holds_for_every_configure_and_opening_leaves_the_output_off_at_0_v(rm):
    smu = open_instrument("keithley2450", SMU, rm, timeout_s=TIMEOUT_S, record=True, voltage_protection_v=12.0)
    try:
        opened = [c for c, _ in smu.transport.exchanges if not c.startswith(":SYST")][len(OPENING["keithley2450"]):]
        assert opened == [":OUTP OFF", ":SOUR:FUNC VOLT", ":SOUR:VOLT 0.0", ":SOUR:VOLT:PROT PROT20"]
        smu.configure(1e-3)
        assert smu.settings()["voltage_protection_v"] == 20.0
    finally:
        smu.close()


def test_smu_settings_are_read_back_from_the_instrument(smu):
    smu.configure(2e-3, nplc=0.5, voltage_protection_v=4.0)
    smu.set_voltage(0.25)
    smu.output(True)
    smu.transport.exchanges.clear()
    assert smu.settings() == {
        "source_function": "VOLT", "source_voltage_v": 0.25, "source_range_v": 2.0, "source_autorange": True,
        "current_limit_a": 2e-3, "voltage_protection_v": 5.0, "voltage_protection_tripped": False,
        "sense_function": "CURR:DC", "current_range_a": 1e-4, "current_autorange": True, "nplc": 0.5,
        "output_on": True,
    }
    queries = [c for c, _ in smu.transport.exchanges]
    assert queries[:3] == [":SOUR:FUNC?", ":SOUR:VOLT?", ":SOUR:VOLT:RANG?"] and queries[-1] == ":SYST:ERR?"
    assert json.loads(json.dumps(smu.settings())) == smu.settings()


def test_smu_setting_values_read_back_what_was_set(smu):
    smu.configure(2.5e-3, nplc=0.5)
    smu.voltage_v.set(-1.25)
    assert smu.current_limit_a.get() == 2.5e-3
    assert smu.nplc.get() == 0.5
    assert smu.voltage_v.get() == -1.25


@pytest.mark.parametrize(
    "compliance_a, nplc, message",
    [
        (2.0, 1.0, r"Keithley2450.current_limit_a: 2.0 A is outside 1e-09..1.05 A"),
        (1e-10, 1.0, r"Keithley2450.current_limit_a: 1e-10 A is outside 1e-09..1.05 A"),
        (1e-3, 20.0, r"Keithley2450.nplc: 20.0 is outside 0.01..10"),
    ],
)
def test_smu_configure_out_of_range_sends_nothing(smu, compliance_a, nplc, message):
    with pytest.raises(ValueError, match=message):
        smu.configure(compliance_a, nplc)
    assert smu.transport.exchanges == []


def test_smu_output_switches_and_checks(smu):
    smu.output(True)
    smu.output(False)
    assert smu.transport.exchanges == [(":OUTP ON", None), SMU_OK, (":OUTP OFF", None), SMU_OK]


def test_smu_measure_current_sources_then_reads(smu):
    assert smu.measure_current(1.0) == pytest.approx(1.000012e-4)
    assert smu.transport.exchanges == [(":SOUR:VOLT 1.0", None), SMU_OK, (":READ?", "1.000012E-04")]


def test_smu_measure_current_out_of_range_sends_nothing(smu):
    with pytest.raises(ValueError, match=r"Keithley2450.voltage_v: 250.0 V is outside -210..210 V"):
        smu.measure_current(250.0)
    assert smu.transport.exchanges == []


def test_smu_sweep_is_a_list_sweep_run_by_the_instrument(smu):
    smu.configure(1e-3, nplc=1.0)  # the sweep's timeout follows the integration time
    smu.transport.exchanges.clear()
    sourced_v, current_a = smu.sweep(np.array([0.0, 0.5, 1.0]))
    np.testing.assert_array_equal(sourced_v, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(current_a, [2e-11, 5.00006e-5, 1.000012e-4])
    assert smu.transport.exchanges == [
        (":SENS:CURR:NPLC?", "1.000000E+00"),
        (":SOUR:LIST:VOLT 0.0, 0.5, 1.0", None), SMU_OK,
        (":SOUR:SWE:VOLT:LIST 1, 0, 1, OFF", None), SMU_OK,
        (':TRAC:CLE "defbuffer1"', None), SMU_OK,
        (":INIT", None), SMU_OK,
        ("*WAI", None),
        (
            ':TRAC:DATA? 1, 3, "defbuffer1", SOUR, READ',
            "0.000000E+00,2.000000E-11,5.000000E-01,5.000060E-05,1.000000E+00,1.000012E-04",
        ),
    ]


def test_smu_sweep_beyond_100_points_appends_to_the_list(smu):
    voltages_v = np.linspace(0.0, 1.0, 101)
    sourced_v, current_a = smu.sweep(voltages_v)
    assert sourced_v.shape == current_a.shape == (101,)
    commands = [command for command, _ in smu.transport.exchanges]
    assert commands[1] == f":SOUR:LIST:VOLT {format_numbers(voltages_v[:100])}"
    assert commands[3] == ":SOUR:LIST:VOLT:APP 1.0"


@pytest.mark.parametrize(
    "voltages_v, message",
    [
        ([0.0, 300.0], r"Keithley2450.sweep: value 1: 300.0 V is outside -210..210 V"),
        ([], r"Keithley2450.sweep: 0 values, allowed 1..2500"),
        (np.zeros(2501), r"Keithley2450.sweep: 2501 values, allowed 1..2500"),
    ],
)
def test_smu_sweep_out_of_range_sends_nothing(smu, voltages_v, message):
    with pytest.raises(ValueError, match=message):
        smu.sweep(voltages_v)
    assert smu.transport.exchanges == []


def test_smu_in_compliance_asks_the_limit_trip_state(smu):
    assert smu.in_compliance() is False
    assert smu.transport.exchanges == [(":SOUR:VOLT:ILIM:TRIP?", "0")]


def test_smu_close_switches_the_output_off_once(smu):
    smu.close()
    smu.close()
    assert smu.transport.exchanges == [(":OUTP OFF", None), SMU_OK]
    assert smu.transport.closed


def test_a_refused_command_names_instrument_command_and_error_and_empties_the_queue(smu):
    # a value the driver itself would refuse, sent raw: the instrument's own check
    with pytest.raises(InstrumentError) as caught:
        smu.send(":SOUR:VOLT 300.0")
    assert str(caught.value) == (
        f"{SMU_IDN}: ':SOUR:VOLT 300.0' refused: -222,Parameter data out of range;1,1367794863,384492889"
    )
    assert smu.transport.exchanges == [
        (":SOUR:VOLT 300.0", None),
        (":SYST:ERR?", '-222,"Parameter data out of range;1,1367794863,384492889"'),
        SMU_OK,
    ]


# -- Keysight 34465A ---------------------------------------------------------------------------
def test_dmm_configure_fixed_range(dmm):
    dmm.configure_dc_volts(10, nplc=1)
    assert dmm.transport.exchanges == [
        ("CONF:VOLT:DC", None), KEYSIGHT_OK,
        ("VOLT:DC:RANG 10.0", None), KEYSIGHT_OK,
        ("VOLT:DC:RANG:AUTO OFF", None), KEYSIGHT_OK,
        ("VOLT:DC:NPLC 1.0", None), KEYSIGHT_OK,
        ("VOLT:DC:APER:ENAB OFF", None), KEYSIGHT_OK,
        ("VOLT:DC:ZERO:AUTO ON", None), KEYSIGHT_OK,
        ("VOLT:DC:IMP:AUTO ON", None), KEYSIGHT_OK,
    ]


def test_dmm_configure_auto_range_aperture_autozero_once_and_10_mohm(dmm):
    dmm.configure_dc_volts(None, aperture_s=0.02, autozero="ONCE", input_impedance="10M")
    assert dmm.transport.exchanges == [
        ("CONF:VOLT:DC", None), KEYSIGHT_OK,
        ("VOLT:DC:RANG:AUTO ON", None), KEYSIGHT_OK,
        ("VOLT:DC:APER 0.02", None), KEYSIGHT_OK,
        ("VOLT:DC:APER:ENAB ON", None), KEYSIGHT_OK,
        ("VOLT:DC:ZERO:AUTO ONCE", None), KEYSIGHT_OK,
        ("VOLT:DC:IMP:AUTO OFF", None), KEYSIGHT_OK,
    ]


def test_opening_the_dmm_leaves_input_impedance_auto_so_it_does_not_load_the_node(rm):
    dmm = open_instrument("keysight34465a", DMM, rm, timeout_s=TIMEOUT_S)
    try:
        settings = dmm.settings()
        assert settings["input_impedance_auto"] is True and settings["input_impedance"] == "10G"
    finally:
        dmm.close()


def test_dmm_settings_are_read_back_from_the_meter(dmm):
    dmm.configure_dc_volts(100, nplc=10, autozero="OFF")
    settings = dmm.settings()
    assert settings.pop("aperture_s") > 0  # kept by the meter, not in use
    assert settings == {
        "function": "VOLT", "range_v": 100.0, "autorange": False, "nplc": 10.0, "aperture_enabled": False,
        "autozero": False, "input_impedance_auto": True, "input_impedance": "10M",
    }
    dmm.configure_dc_volts(1, aperture_s=0.5)
    settings = dmm.settings()
    assert (settings["range_v"], settings["aperture_enabled"], settings["aperture_s"]) == (1.0, True, 0.5)
    assert (settings["autozero"], settings["input_impedance"]) == (True, "10G")


@pytest.mark.parametrize("address, reading", [(DMM_OVERLOADED, "+9.90000000E+37"),
                                              (DMM_OVERLOADED_NEGATIVE, "-9.90000000E+37")])
def test_an_overload_is_an_error_naming_range_and_reading_not_a_voltage(rm, address, reading):
    dmm = open_instrument("keysight34465a", address, rm, timeout_s=TIMEOUT_S, range_v=1)
    try:
        with pytest.raises(InstrumentError) as caught:
            dmm.measure_dc_volts()
        assert str(caught.value) == (f"{dmm.identity()}: overload on the 1 V range: READ? gave {reading} "
                                     "(the input is beyond 120 % of the range)")
    finally:
        dmm.close()


def test_nplc_and_aperture_together_are_refused_before_anything_is_sent(rm):
    with pytest.raises(ValueError, match=r"give nplc \(10\) or aperture_s \(0.1 s\), not both"):
        open_instrument("keysight34465a", DMM, rm, timeout_s=TIMEOUT_S, nplc=10, aperture_s=0.1)
    assert rm.list_opened_resources() == []


@pytest.mark.parametrize("options, message", [
    ({"aperture_s": 2.0}, r"dc_aperture_s: 2.0 s is outside 2e-05..1 s"),
    ({"autozero": "SOMETIMES"}, r"dc_autozero: SOMETIMES is not one of ON, OFF, ONCE"),
    ({"input_impedance": "10G"}, r"input_impedance: '10G' is not one of auto, 10M"),
])
def test_dmm_settings_outside_their_sets_send_nothing(dmm, options, message):
    with pytest.raises(ValueError, match=message):
        dmm.configure_dc_volts(None, **options)
    assert dmm.transport.exchanges == []


def test_dmm_without_the_dig_option_refuses_the_shortest_apertures(dmm):
    with pytest.raises(InstrumentError, match=r"'VOLT:DC:APER 5e-05' refused: -224,Illegal parameter value"):
        dmm.configure_dc_volts(None, aperture_s=50e-6)


def test_dmm_setting_values_read_back_what_was_set(dmm):
    dmm.configure_dc_volts(0.1, nplc=100)
    assert dmm.dc_range_v.get() == 0.1
    assert dmm.dc_nplc.get() == 100.0


@pytest.mark.parametrize(
    "range_v, nplc, message",
    [
        (3.0, 1.0, r"Keysight34465A.dc_range_v: 3.0 V is not one of 0.1, 1, 10, 100, 1000"),
        (None, 0.5, r"Keysight34465A.dc_nplc: 0.5 is not one of 0.001, 0.002, 0.006, 0.02, 0.06, 0.2, 1, 10, 100"),
    ],
)
def test_dmm_configure_outside_the_allowed_sets_sends_nothing(dmm, range_v, nplc, message):
    with pytest.raises(ValueError, match=message):
        dmm.configure_dc_volts(range_v, nplc)
    assert dmm.transport.exchanges == []


def test_dmm_without_the_dig_option_refuses_the_fastest_integration(dmm):
    with pytest.raises(InstrumentError) as caught:
        dmm.configure_dc_volts(None, nplc=0.001)
    assert str(caught.value) == f"{DMM_IDN}: 'VOLT:DC:NPLC 0.001' refused: -224,Illegal parameter value"
    assert dmm.transport.exchanges == [
        ("CONF:VOLT:DC", None), KEYSIGHT_OK,
        ("VOLT:DC:RANG:AUTO ON", None), KEYSIGHT_OK,
        ("VOLT:DC:NPLC 0.001", None), ("SYST:ERR?", '-224,"Illegal parameter value"'), KEYSIGHT_OK,
    ]  # the later settings are not sent


def test_dmm_measure_reads_once(dmm):
    assert dmm.measure_dc_volts() == pytest.approx(0.499987654)
    assert dmm.transport.exchanges == [("READ?", "+4.99987654E-01")]


def test_a_silent_meter_times_out_naming_instrument_command_and_timeout(rm):
    dmm = _open(rm, "keysight34465a", DMM_SILENT)
    try:
        with pytest.raises(InstrumentError) as caught:
            dmm.measure_dc_volts()
        assert str(caught.value) == f"{dmm.identity()}: 'READ?' timed out after 0.05 s"
        assert isinstance(caught.value.__cause__, pyvisa.errors.VisaIOError)
        # asked why: nothing in the error queue, so nothing added
        assert dmm.transport.exchanges == [("READ?", None), KEYSIGHT_OK]
    finally:
        dmm.close()


def test_a_query_the_instrument_does_not_know_times_out_naming_what_its_error_queue_then_says(dmm):
    with pytest.raises(InstrumentError) as caught:
        dmm.ask("VOLT:DC:FILT?")
    assert str(caught.value) == (f"{dmm.identity()}: 'VOLT:DC:FILT?' timed out after 0.05 s; the instrument "
                                 "reports -224,Illegal parameter value (does it know this query?)")
    dmm.check_errors()  # the error was read out


def test_a_reply_that_is_not_a_number_names_instrument_command_and_reply(rm):
    dmm = _open(rm, "keysight34465a", DMM_GARBLED)
    try:
        with pytest.raises(InstrumentError) as caught:
            dmm.measure_dc_volts()
        assert str(caught.value) == f"{dmm.identity()}: reply '+4.99987654E-01VDC' to 'READ?' does not parse"
        assert dmm.transport.exchanges == [("READ?", "+4.99987654E-01VDC")]
    finally:
        dmm.close()


# -- Keysight E36312A --------------------------------------------------------------------------
def test_psu_set_voltage_addresses_the_channel(psu):
    psu.set_voltage(2, 12.0)
    assert psu.transport.exchanges == [("VOLT 12.0,(@2)", None), KEYSIGHT_OK]


def test_psu_current_limit_switches_over_current_protection_on(psu):
    psu.set_current_limit(1, 0.25)
    assert psu.transport.exchanges == [
        ("CURR 0.25,(@1)", None), KEYSIGHT_OK,
        ("CURR:PROT:STAT ON,(@1)", None), KEYSIGHT_OK,
    ]


def test_psu_each_channel_reads_back_its_own_settings(psu):
    psu.set_voltage(1, 5.0)
    psu.set_voltage(3, 24.0)
    psu.set_current_limit(1, 4.5)
    psu.set_current_limit(3, 0.1)
    assert (psu.voltage_v.get(1), psu.voltage_v.get(3)) == (5.0, 24.0)
    assert (psu.current_limit_a.get(1), psu.current_limit_a.get(3)) == (4.5, 0.1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: p.set_voltage(1, 7.0), r"voltage_v \(channel 1\): 7.0 V is outside 0..6 V"),
        (lambda p: p.set_voltage(2, 25.5), r"voltage_v \(channel 2\): 25.5 V is outside 0..25 V"),
        (lambda p: p.set_current_limit(3, 1.5), r"current_limit_a \(channel 3\): 1.5 A is outside 0..1 A"),
        (lambda p: p.set_current_limit(1, -0.1), r"current_limit_a \(channel 1\): -0.1 A is outside 0..5 A"),
        (lambda p: p.set_voltage(4, 1.0), r"voltage_v: channel 4 is not one of 1, 2, 3"),
        (lambda p: p.output(0, True), r"output_on: channel 0 is not one of 1, 2, 3"),
        (lambda p: p.measure_current(4), r"current_a: channel 4 is not one of 1, 2, 3"),
    ],
    ids=["ch1-7V", "ch2-25.5V", "ch3-1.5A", "ch1-negative-A", "ch4-voltage", "ch0-output", "ch4-measure"],
)
def test_psu_values_and_channels_out_of_range_send_nothing(psu, call, message):
    with pytest.raises(ValueError, match=message):
        call(psu)
    assert psu.transport.exchanges == []


def test_psu_output_addresses_the_channel(psu):
    psu.output(3, True)
    assert psu.transport.exchanges == [("OUTP ON,(@3)", None), KEYSIGHT_OK]


def test_psu_measure_current(psu):
    assert psu.measure_current(1) == pytest.approx(0.012345)
    assert psu.transport.exchanges == [("MEAS:CURR? (@1)", "+1.23450000E-02")]


def test_psu_healthy_channel_has_not_tripped(psu):
    assert psu.over_current(2) is False
    psu.check_over_current(2)
    assert psu.transport.exchanges == [("CURR:PROT:TRIP? (@2)", "0")] * 2


def test_psu_tripped_channel_raises_over_current_naming_instrument_and_channel(rm):
    psu = _open(rm, "keysight_e36312a", PSU_TRIPPED)
    try:
        assert psu.over_current(2) is True
        assert psu.over_current(1) is False
        with pytest.raises(OverCurrent) as caught:
            psu.check_over_current(2)
        assert str(caught.value) == f"{psu.identity()}: channel 2 tripped its over-current protection"
        assert isinstance(caught.value, InstrumentError)
    finally:
        psu.close()


def test_psu_a_tripped_channel_cannot_be_switched_back_on_before_its_protection_is_cleared(rm):
    psu = _open(rm, "keysight_e36312a", PSU_TRIPPED)
    try:
        with pytest.raises(InstrumentError, match=r"'OUTP ON,\(@2\)' refused"):
            psu.output(2, True)
        assert psu.over_current(2) is True
    finally:
        psu.close()


def test_psu_clearing_the_protection_is_deliberate_and_logged_with_what_was_cleared(caplog):
    # the supply's own file: a resource manager of its own, for the clear lasts (pyvisa shares
    # one simulated library, devices and all, between resource managers of the same file)
    psu = _open(pyvisa.ResourceManager(f"{SIM_BENCH.parent / 'keysight_e36312a.yaml'}@sim"), "keysight_e36312a",
                PSU_TRIPPED)
    try:
        with caplog.at_level(logging.WARNING, logger="instruments.visa.keysight_e36312a"):
            assert psu.clear_protection(2) is True
            assert psu.clear_protection(1) is False
        assert psu.transport.exchanges[:3] == [
            ("CURR:PROT:TRIP? (@2)", "1"), ("OUTP:PROT:CLE (@2)", None), KEYSIGHT_OK,
        ]
        assert [r.getMessage() for r in caplog.records] == [
            f"{psu.identity()}: channel 2 protection cleared (it had tripped its over-current protection)",
            f"{psu.identity()}: channel 1 protection cleared (nothing had tripped)",
        ]
        assert psu.over_current(2) is False
    finally:
        psu.close()


def test_opening_a_tripped_supply_clears_nothing(rm):
    psu = open_instrument("keysight_e36312a", PSU_TRIPPED, rm, timeout_s=TIMEOUT_S, record=True)
    try:
        assert not any(command.startswith("OUTP:PROT:CLE") for command, _ in psu.transport.exchanges)
        assert psu.settings()["ch2_over_current_tripped"] is True
    finally:
        psu.close()


def test_psu_settings_are_read_back_per_channel(psu):
    psu.set_current_limit(2, 0.25)
    psu.set_voltage(2, 12.0)
    psu.output(2, True)
    settings = psu.settings()
    assert {k: v for k, v in settings.items() if k.startswith("ch2_")} == {
        "ch2_voltage_v": 12.0, "ch2_current_limit_a": 0.25, "ch2_over_current_protection": True,
        "ch2_over_current_tripped": False, "ch2_output_on": True,
    }
    assert sorted(settings) == sorted(f"ch{c}_{k}" for c in (1, 2, 3) for k in (
        "voltage_v", "current_limit_a", "over_current_protection", "over_current_tripped", "output_on"))
    psu.output(2, False)


def test_psu_safe_state_switches_every_output_off_at_once(psu):
    psu.safe_state()
    assert psu.transport.exchanges == [("OUTP OFF,(@1:3)", None), KEYSIGHT_OK]


def test_psu_close_leaves_the_outputs_alone(psu):
    psu.close()
    psu.close()
    assert psu.transport.exchanges == []
    assert psu.transport.closed


# -- values <-> SCPI text ----------------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False)
# SCPI <NRf>: what an instrument accepts as a number
SCPI_NRF = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@given(finite)
def test_a_number_survives_formatting_and_parsing_exactly(value):
    assert parse_number(format_number(value)) == value


@given(finite)
def test_a_formatted_number_is_scpi_numeric_data(value):
    assert SCPI_NRF.fullmatch(format_number(value))


@given(finite)
def test_instrument_style_replies_parse_to_their_value(value):
    for reply in (f"{value:+.8E}", f"{value:.6E}", f"{value:+.8E}\n"):
        assert parse_number(reply) == float(reply)


@given(st.text())
def test_the_parser_is_no_more_lenient_than_float(text):
    try:
        float(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_number(text)


@pytest.mark.parametrize("reply", ["nan", "inf", "-Infinity", "1_000", "", "1,0", "0x10", "+4.9E-01VDC"])
def test_the_parser_refuses_what_no_scpi_instrument_sends(reply):
    with pytest.raises(ValueError):
        parse_number(reply)


@given(st.lists(finite, min_size=1, max_size=120))
def test_a_list_survives_formatting_and_parsing_exactly(values):
    np.testing.assert_array_equal(parse_numbers(format_numbers(values)), values)


@given(st.booleans())
def test_a_boolean_survives_formatting_and_parsing(on):
    assert parse_bool(format_bool(on)) is on
    assert parse_bool(str(int(on))) is on


@given(st.integers(-32768, 32767), st.text(alphabet=st.characters(blacklist_characters='"\r\n'), max_size=40))
def test_an_error_entry_parses_to_its_code_and_message(code, message):
    assert parse_error(f'{code:+d},"{message}"') == (code, message)


class _Probe(ScpiInstrument):
    """A driver of one setting: the base's formatting and checking, without an instrument."""

    voltage_v = Setting(":SOUR:VOLT {value}", Range(-210, 210), "V")


@given(st.floats(-210, 210))
def test_a_setting_command_carries_its_value_exactly(value_v):
    command = _Probe.voltage_v.command_for(value_v)
    header, argument = command.split(" ", 1)
    assert header == ":SOUR:VOLT"
    assert parse_number(argument) == value_v


@given(st.floats(allow_nan=True).filter(lambda v: not -210 <= v <= 210))
def test_a_setting_refuses_every_value_outside_its_range(value_v):
    with pytest.raises(ValueError, match=r"_Probe.voltage_v: .* V is outside -210..210 V"):
        _Probe.voltage_v.command_for(value_v)
