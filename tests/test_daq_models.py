"""The DAQ capability table (instruments/daq/models.py): every figure the wiring check, the NI
driver, the simulated DAQ and the nidaqmx fake take from it, against NI's documents."""

from __future__ import annotations

import pytest

from instruments.daq import models
from instruments.daq.models import MODELS, model

X_SERIES = ["USB-6343", "PCIe-6363", "USB-6363", "PXIe-6363"]
ALL = X_SERIES + ["PXIe-6738", "USB-6001", "USB-6211"]


def test_the_table_has_the_devices_a_lab_uses():
    assert set(ALL) <= set(MODELS)


def test_an_unknown_model_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown DAQ model 'USB-9999'; known: .*PXIe-6738.*USB-6343"):
        model("USB-9999")


@pytest.mark.parametrize("name", ALL)
def test_each_device_lists_as_many_channels_as_it_has(name):
    m = model(name)
    assert m.physical_channels("Dev1", "ao") == tuple(f"Dev1/ao{i}" for i in range(m.n_ao))
    assert m.physical_channels("Dev1", "ai") == tuple(f"Dev1/ai{i}" for i in range(m.n_ai))
    assert m.physical_channels("Dev1", "co") == tuple(f"Dev1/ctr{i}" for i in range(m.n_co))
    assert len(m.physical_channels("Dev1", "do")) == sum(n for _, n in m.do_lines)


@pytest.mark.parametrize("name", X_SERIES)
def test_an_x_series_device_has_4_outputs_32_inputs_4_counters_and_48_digital_lines(name):
    m = model(name)
    assert (m.n_ao, m.n_ai, m.n_co) == (4, 32, 4)
    lines = m.physical_channels("Dev1", "do")
    assert lines[0] == "Dev1/port0/line0" and "Dev1/port0/line31" in lines and "Dev1/port0/line32" not in lines
    assert "Dev1/port1/line7" in lines and "Dev1/port1/line8" not in lines and "Dev1/port2/line7" in lines
    assert len(lines) == 48
    assert m.hw_timed_line("Dev1/port0/line5") and not m.hw_timed_line("Dev1/port1/line0")


@pytest.mark.parametrize("name", ["PCIe-6363", "USB-6363", "PXIe-6363"])
def test_a_6363_samples_one_input_at_2_msps_but_several_at_1_msps_together(name):
    m = model(name)
    assert (m.ai_single_rate_hz, m.ai_rate_hz) == (2e6, 1e6)
    assert m.ai_max_rate_hz(1) == 2e6
    assert m.ai_max_rate_hz(2) == 500e3
    assert m.ai_max_rate_hz(32) == pytest.approx(31.25e3)
    assert m.ai_ranges_v == (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def test_a_usb_6343_samples_at_500_ksps_single_and_aggregate():
    m = model("USB-6343")
    assert (m.ai_single_rate_hz, m.ai_rate_hz) == (500e3, 500e3)
    assert m.ai_max_rate_hz(2) == 250e3
    assert m.ai_ranges_v == (0.2, 1.0, 5.0, 10.0)


@pytest.mark.parametrize("name", X_SERIES)
def test_the_x_series_watchdog_covers_digital_lines_only_up_to_34_s(name):
    m = model(name)
    assert m.watchdog_covers == ("do",)
    assert m.watchdog_max_s == pytest.approx((2**32 - 1) * 8e-9)
    assert 34.3 < m.watchdog_max_s < 34.4


def test_the_pxie_6738_watchdog_takes_analog_expiration_states():
    m = model("PXIe-6738")
    assert "ao" in m.watchdog_covers
    assert (m.n_ao, m.n_ai) == (32, 0)
    assert m.physical_channels("PXI1Slot2", "ai") == ()


@pytest.mark.parametrize("name", ["USB-6001", "USB-6211"])
def test_the_usb_6001_and_6211_have_no_watchdog_and_only_software_timed_digital_lines(name):
    m = model(name)
    assert m.watchdog_covers == () and m.watchdog_max_s == 0.0
    assert m.hw_timed_do_ports == ()
    assert not any(m.hw_timed_line(line) for line in m.physical_channels("Dev1", "do"))


def test_the_usb_6001_counter_cannot_generate_a_pulse():
    m = model("USB-6001")
    assert m.counters == 1 and m.n_co == 0
    assert m.physical_channels("Dev1", "co") == ()
    assert m.describe("co") == "no counter that can generate a pulse"


def test_the_usb_6001_converts_14_bits_over_plus_minus_10_v():
    m = model("USB-6001")
    assert (m.ao_bits, m.ai_bits, m.ai_ranges_v, m.ai_rate_hz) == (14, 14, (10.0,), 20e3)
    assert m.ao_lsb_v() == pytest.approx(20.0 / 2**14)
    assert m.ai_lsb_v(10.0) == pytest.approx(20.0 / 2**14)


def test_the_usb_6211_outputs_on_port1_lines_0_to_3_only():
    m = model("USB-6211")
    assert m.physical_channels("Dev1", "do") == tuple(f"Dev1/port1/line{k}" for k in range(4))
    assert m.n_co == 2


@pytest.mark.parametrize("name, shortest_s", [("PXIe-6363", 20e-9), ("USB-6343", 20e-9), ("USB-6211", 25e-9)])
def test_a_counter_pulse_lasts_two_timebase_ticks_at_least_and_a_32_bit_count_at_most(name, shortest_s):
    m = model(name)
    assert m.co_min_pulse_s == pytest.approx(shortest_s)
    assert m.co_max_pulse_s == pytest.approx((2**32 - 1) / 100e3)


@pytest.mark.parametrize("name, write_s", [("USB-6343", 1e-3), ("USB-6363", 1e-3), ("USB-6001", 1e-3),
                                           ("PCIe-6363", 10e-6), ("PXIe-6363", 10e-6), ("PXIe-6738", 10e-6)])
def test_a_software_timed_write_is_estimated_by_the_bus(name, write_s):
    assert model(name).ao_write_s == write_s


@pytest.mark.parametrize("name", ALL)
def test_analog_outputs_power_up_at_0_v_inside_plus_minus_10_v(name):
    m = model(name)
    assert m.ao_power_up_v == 0.0
    assert m.ao_range_v == (-10.0, 10.0)


def test_the_narrowest_input_range_holding_a_value_is_chosen():
    m = model("PXIe-6363")
    assert m.ai_range_for(0.45) == 0.5
    with pytest.raises(ValueError, match="no input range holds 11 V"):
        m.ai_range_for(11)
    with pytest.raises(ValueError, match="widest is 0.0 V"):
        model("PXIe-6738").ai_range_for(1.0)


def test_describe_names_what_a_device_has():
    m = model("USB-6343")
    assert m.describe("ao") == "ao0..ao3"
    assert m.describe("ai") == "ai0..ai31"
    assert m.describe("do") == "port0/line0..31, port1/line0..7, port2/line0..7"
    assert model("USB-6001").describe("do") == "port0/line0..7, port1/line0..3, port2/line0"
    with pytest.raises(ValueError, match="unknown channel kind"):
        m.physical_channels("Dev1", "ci")


def test_the_table_is_hashable_and_frozen():
    m = model("USB-6343")
    assert hash(m) == hash(model("USB-6343"))
    with pytest.raises(AttributeError):
        m.n_ao = 5  # type: ignore[misc]
    assert models.WATCHDOG_KINDS == ("ao", "do")
