"""The drivers against QCoDeS-style minimal simulations (tests/visa_sims/minimal_*.yaml):
instruments that know only a few commands. Wherever the driver sends a command or a query
the instrument does not know, it stops with one InstrumentError naming that command and what
the instrument said, whether the instrument queues an error (as SCPI instruments do) or
answers ``ERROR`` (as QCoDeS's simulations do), instead of timing out silently or reading a
stale ``ERROR`` as the next answer."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvisa

from instruments.interfaces import InstrumentError
from instruments.visa import open_instrument

SIMS = Path(__file__).parent / "visa_sims"
TIMEOUT_S = 0.05


def manager(name: str) -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager(f"{SIMS / name}@sim")


def test_a_2450_that_does_not_know_the_overvoltage_protection_is_named_at_configure():
    rm = manager("minimal_keithley2450.yaml")
    with pytest.raises(InstrumentError) as caught:
        open_instrument("keithley2450", "USB0::0x05E6::0x2450::00000001::INSTR", rm, timeout_s=TIMEOUT_S,
                        compliance_a=1e-3)
    assert str(caught.value) == ("KEITHLEY INSTRUMENTS,MODEL 2450,00000001,1.0.0: ':SOUR:VOLT:PROT NONE' refused: "
                                 "-113,Undefined header;1;2019/01/01 00:00:00.000")
    assert rm.list_opened_resources() == []


def test_a_2450_that_answers_an_unknown_command_with_error_is_named_and_its_answer_not_left_behind():
    rm = manager("minimal_keithley2450.yaml")
    with pytest.raises(InstrumentError) as caught:
        open_instrument("keithley2450", "USB0::0x05E6::0x2450::00000002::INSTR", rm, timeout_s=TIMEOUT_S)
    assert str(caught.value) == ("KEITHLEY INSTRUMENTS,MODEL 2450,00000002,1.0.0: ':SOUR:VOLT:PROT NONE' was "
                                 "answered 'ERROR' instead of being executed: the instrument does not know this "
                                 "command")
    # the next opening finds nothing stale: the driver read the ERROR and what followed it
    raw = rm.open_resource("USB0::0x05E6::0x2450::00000002::INSTR", timeout=TIMEOUT_S * 1000)
    raw.read_termination = raw.write_termination = "\n"
    assert raw.query("*IDN?") == "KEITHLEY INSTRUMENTS,MODEL 2450,00000002,1.0.0"
    raw.close()


def test_a_2450_that_does_not_know_lang_is_refused_naming_the_reply():
    rm = manager("minimal_keithley2450.yaml")
    with pytest.raises(InstrumentError) as caught:
        open_instrument("keithley2450", "USB0::0x05E6::0x2450::00000003::INSTR", rm, timeout_s=TIMEOUT_S)
    assert str(caught.value) == ("KEITHLEY INSTRUMENTS,MODEL 2450,00000003,1.0.0: *LANG? answered 'ERROR', not a "
                                 "command set of the 2450 (SCPI, TSP, SCPI2400)")


def test_a_meter_that_does_not_know_the_input_impedance_is_named_at_configure():
    rm = manager("minimal_keysight34465a.yaml")
    with pytest.raises(InstrumentError) as caught:
        open_instrument("keysight34465a", "USB0::0x2A8D::0x0101::MY00000001::INSTR", rm, timeout_s=TIMEOUT_S)
    identity = "Keysight Technologies,34465A,MY00000001,A.02.17-02.40-02.17-00.52-03-01"
    assert str(caught.value) == f"{identity}: 'VOLT:DC:IMP:AUTO ON' refused: -113,Undefined header"


def test_a_settings_query_the_meter_does_not_know_is_named_with_what_its_error_queue_says():
    from instruments.visa.keysight34465a import Keysight34465A

    rm = manager("minimal_keysight34465a.yaml")
    resource = rm.open_resource("USB0::0x2A8D::0x0101::MY00000001::INSTR", timeout=TIMEOUT_S * 1000)
    dmm = Keysight34465A(resource)
    try:
        with pytest.raises(InstrumentError) as caught:
            dmm.settings()
        assert str(caught.value) == (f"{dmm.identity()}: 'VOLT:DC:RANG?' timed out after 0.05 s; the instrument "
                                     "reports -113,Undefined header (does it know this query?)")
        assert dmm.measure_dc_volts() == 0.1  # nothing of the failed query is left to answer the next one
    finally:
        dmm.close()


def test_a_supply_that_cannot_clear_its_protection_says_so_naming_the_command():
    rm = manager("minimal_keysight_e36312a.yaml")
    psu = open_instrument("keysight_e36312a", "USB0::0x2A8D::0x1102::MY00000001::INSTR", rm, timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(InstrumentError) as caught:
            psu.clear_protection(2)
        assert str(caught.value) == f"{psu.identity()}: 'OUTP:PROT:CLE (@2)' refused: -113,Undefined header"
    finally:
        psu.close()
