"""The Keysight E36312A driver against pyvisa-sim: each channel addressed, its settings read
back and checked, over-current protection, a tripped channel (refused, cleared only
deliberately and logged), the safe state and close."""

from __future__ import annotations

import logging

import pytest
import pyvisa

from instruments.interfaces import InstrumentError, OverCurrent
from instruments.visa import SIM_BENCH, open_instrument
from visa_common import KEYSIGHT_OK, PSU_TRIPPED, TIMEOUT_S, open_recording, psu, rm  # noqa: F401 (rm, psu: fixtures)


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
    psu = open_recording(rm, "keysight_e36312a", PSU_TRIPPED)
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
    psu = open_recording(rm, "keysight_e36312a", PSU_TRIPPED)
    try:
        with pytest.raises(InstrumentError, match=r"'OUTP ON,\(@2\)' refused"):
            psu.output(2, True)
        assert psu.over_current(2) is True
    finally:
        psu.close()


def test_psu_clearing_the_protection_is_deliberate_and_logged_with_what_was_cleared(caplog):
    # the supply's own file: a resource manager of its own, for the clear lasts (pyvisa shares
    # one simulated library, devices and all, between resource managers of the same file)
    psu = open_recording(pyvisa.ResourceManager(f"{SIM_BENCH.parent / 'keysight_e36312a.yaml'}@sim"), "keysight_e36312a",
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

