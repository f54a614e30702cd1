"""The Keithley 2450 driver against pyvisa-sim: configure, the overvoltage protection,
settings read back, output, measuring, list sweeps, the current limit, close, and a command
the instrument refuses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from instruments.interfaces import InstrumentError
from instruments.visa import open_instrument
from instruments.visa.keithley2450 import protection_for
from instruments.visa.scpi import format_numbers
from visa_common import OPENING, SMU, SMU_IDN, SMU_OK, TIMEOUT_S, rm, smu  # noqa: F401 (rm, smu: fixtures)


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

