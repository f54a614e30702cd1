"""What the SCPI driver tests (tests/test_visa_*.py) share: the simulated bench's addresses
and identities, the replies of an empty error queue, the opening exchanges, and the fixtures
opening each instrument on pyvisa-sim with its exchanges recorded.

A test module takes the fixtures by importing them (``from visa_common import rm, smu``).
"""

from __future__ import annotations

import pytest

from instruments.visa import open_instrument, sim_resource_manager

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

OPENING = {
    "keithley2450": [("*IDN?", SMU_IDN), ("*LANG?", "SCPI"), ("*CLS", None)],
    "keysight34465a": [("*IDN?", DMM_IDN), ("*CLS", None)],
    "keysight_e36312a": [("*IDN?", PSU_IDN), ("*CLS", None)],
}
"""The exchanges of opening each kind of instrument, in order."""


@pytest.fixture(scope="module")
def rm():
    return sim_resource_manager()


def open_recording(rm, kind, address, **options):
    """Open recording; forget the opening exchanges (tested on their own)."""
    instrument = open_instrument(kind, address, rm, timeout_s=TIMEOUT_S, record=True, **options)
    instrument.transport.exchanges.clear()
    return instrument


@pytest.fixture
def smu(rm):
    smu = open_recording(rm, "keithley2450", SMU)
    yield smu
    smu.close()


@pytest.fixture
def dmm(rm):
    dmm = open_recording(rm, "keysight34465a", DMM)
    yield dmm
    dmm.close()


@pytest.fixture
def psu(rm):
    psu = open_recording(rm, "keysight_e36312a", PSU)
    yield psu
    psu.close()
