"""The SCPI drivers against pyvisa-sim: every exchange with each instrument, in order, and
every way an instrument can fail (refusal, silence, nonsense, a tripped output)."""

from __future__ import annotations

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
DMM = "USB0::0x2A8D::0x0101::MY57503317::INSTR"
DMM_SILENT = "USB0::0x2A8D::0x0101::MY57500001::INSTR"
DMM_GARBLED = "USB0::0x2A8D::0x0101::MY57500002::INSTR"
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


@pytest.mark.parametrize(
    "kind, address, idn",
    [("keithley2450", SMU, SMU_IDN), ("keysight34465a", DMM, DMM_IDN), ("keysight_e36312a", PSU, PSU_IDN)],
)
def test_opening_identifies_the_instrument_and_clears_its_error_queue(rm, kind, address, idn):
    instrument = open_instrument(kind, address, rm, timeout_s=TIMEOUT_S, record=True)
    try:
        assert instrument.transport.exchanges == [("*IDN?", idn), ("*CLS", None)]
        assert instrument.identity() == idn
    finally:
        instrument.close()


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
def test_smu_configure_sends_each_setting_then_checks_for_errors(smu):
    smu.configure(1e-3, nplc=2.0)
    assert smu.transport.exchanges == [
        (":SOUR:FUNC VOLT", None), SMU_OK,
        (':SENS:FUNC "CURR"', None), SMU_OK,
        (":SOUR:VOLT:RANG:AUTO ON", None), SMU_OK,
        (":SENS:CURR:RANG:AUTO ON", None), SMU_OK,
        (":SOUR:VOLT:ILIM 0.001", None), SMU_OK,
        (":SENS:CURR:NPLC 2.0", None), SMU_OK,
    ]


def test_smu_settings_read_back_what_was_set(smu):
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
        ("VOLT:DC:NPLC 1.0", None), KEYSIGHT_OK,
    ]


def test_dmm_configure_auto_range(dmm):
    dmm.configure_dc_volts(None, nplc=10)
    assert dmm.transport.exchanges == [
        ("CONF:VOLT:DC", None), KEYSIGHT_OK,
        ("VOLT:DC:RANG:AUTO ON", None), KEYSIGHT_OK,
        ("VOLT:DC:NPLC 10.0", None), KEYSIGHT_OK,
    ]


def test_dmm_settings_read_back_what_was_set(dmm):
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
    ]


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
        assert dmm.transport.exchanges == [("READ?", None)]
    finally:
        dmm.close()


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
