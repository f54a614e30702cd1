"""The SCPI drivers against pyvisa-sim, opening: each instrument identified and its error
queue cleared, a reply a killed run left behind read out, the wrong instrument, a 2450 in its
TSP command set, unknown kinds and options refused, and rig file options applied at opening.

Each instrument's own exchanges and failures are tested in tests/test_visa_2450.py,
test_visa_34465a.py and test_visa_e36312a.py, the SCPI values <-> text in test_visa_scpi.py;
what they share is in tests/visa_common.py. This module runs before them (pytest collects
``test_visa.py`` before ``test_visa_*.py``): pyvisa shares one simulated library, devices and
all, between the resource managers of a file, and the opening tests expect the simulated
instruments as the bench file defines them (e.g. the 2450's current limit), before the
instrument tests set them.
"""

from __future__ import annotations

import re

import pytest
import pyvisa

from instruments.interfaces import (
    Identified,
    InstrumentError,
    Multimeter,
    PowerSupply,
    SourceMeter,
)
from instruments.visa import (
    SIM_BENCH,
    Keithley2450,
    Keysight34465A,
    KeysightE36312A,
    open_instrument,
)
from visa_common import (  # noqa: F401 (rm, smu, dmm, psu: fixtures)
    DMM,
    DMM_IDN,
    KEYSIGHT_OK,
    OPENING,
    PSU,
    PSU_IDN,
    SMU,
    SMU_IDN,
    SMU_TSP,
    TIMEOUT_S,
    dmm,
    psu,
    rm,
    smu,
)


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

