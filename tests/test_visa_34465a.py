"""The Keysight 34465A driver against pyvisa-sim: DC volts configured and read back, the
input impedance, overloads, settings outside their sets, the DIG option, and a meter that is
silent, answers nonsense or does not know a query."""

from __future__ import annotations

import pytest
import pyvisa

from instruments.interfaces import InstrumentError
from instruments.visa import open_instrument
from visa_common import (  # noqa: F401 (rm, dmm: fixtures)
    DMM,
    DMM_GARBLED,
    DMM_IDN,
    DMM_OVERLOADED,
    DMM_OVERLOADED_NEGATIVE,
    DMM_SILENT,
    KEYSIGHT_OK,
    TIMEOUT_S,
    dmm,
    open_recording,
    rm,
)


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
    dmm = open_recording(rm, "keysight34465a", DMM_SILENT)
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
    dmm = open_recording(rm, "keysight34465a", DMM_GARBLED)
    try:
        with pytest.raises(InstrumentError) as caught:
            dmm.measure_dc_volts()
        assert str(caught.value) == f"{dmm.identity()}: reply '+4.99987654E-01VDC' to 'READ?' does not parse"
        assert dmm.transport.exchanges == [("READ?", "+4.99987654E-01VDC")]
    finally:
        dmm.close()

