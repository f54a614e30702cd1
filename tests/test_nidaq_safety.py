"""The NI-DAQmx driver's guards on the strict fake: the watchdog, the safe state and close, the
learn line (counter and digital), the ramp on the way to the safe state, and the pulse checks.
The driver mutations these tests catch are listed in test_nidaq.py's docstring."""

from __future__ import annotations

import dataclasses
import json
import logging
from unittest.mock import call

import nidaqmx.errors
import numpy as np
import pytest
from fake_nidaqmx import installed
from nidaq_common import daq, fake  # noqa: F401  (pytest fixtures, used by name)
from nidaq_common import (
    WIRING, TIMING, AO_START, N_AO, SAFE_V, MID_V,
    ROWS, DIGITAL, in_order, ao_levels, usb_wiring, ramped,
    static_writes,
)
from nidaqmx.constants import (
    AcquisitionType,
    Edge,
    Level,
    LineGrouping,
)
from nidaqmx.system import DOExpirationState

from instruments.daq import nidaq_lines
from instruments.daq.nidaq import NidaqDaq
from instruments.interfaces import DaqError


# -- watchdog, safe state, close -----------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        lambda daq: daq.write(MID_V),
        lambda daq: daq.read(10),
        lambda daq: daq.pulse(100e-6),
        lambda daq: daq.write_and_read(MID_V, 1e-3, 10),
        lambda daq: daq.write_and_pulse(MID_V, 1e-3, 100e-6),
        lambda daq: daq.write_and_read_many(ROWS, 1e-3, 10),
        lambda daq: daq.safe_state(),
    ],
    ids=["write", "read", "pulse", "write_and_read", "write_and_pulse", "write_and_read_many", "safe_state"],
)
def test_every_hardware_operation_resets_the_watchdog_first(fake, daq, operation):
    operation(daq)
    assert fake.count("watchdog.reset_timer") == 1
    hardware = [e for e in fake.events if e.endswith(("start", "write_one_sample", "write_many_sample"))]
    assert fake.events.index("watchdog.reset_timer") < fake.events.index(hardware[0])


def test_safe_state_writes_every_safe_value(fake, daq):
    daq.write(MID_V)
    daq.safe_state()
    method, data = fake.writes[-1]
    assert method == "write_one_sample"
    np.testing.assert_array_equal(data, SAFE_V)


def test_safe_state_keeps_going_when_the_learn_task_is_already_closed(fake, daq, caplog):
    fake.task("co").close()
    with caplog.at_level(logging.WARNING):
        daq.safe_state()
    np.testing.assert_array_equal(fake.writes[-1][1], SAFE_V)
    assert "idling the learn line failed" in caplog.text
    assert fake.events[-1] == "ai.stop"
    with pytest.warns(nidaqmx.errors.DaqResourceWarning, match="already closed"):
        daq.close()
    assert all(state.closed for state in fake.states.values())


def test_safe_state_raises_after_every_step_when_the_outputs_cannot_be_written(fake, daq):
    fake.task("ao").close()
    with pytest.raises(DaqError, match="safe state: could not write the safe values"):
        daq.safe_state()
    assert fake.events[-2:] == ["co.stop", "ai.stop"]
    with pytest.raises(DaqError, match="could not write the safe values"):
        daq.close()


def test_close_writes_the_safe_state_then_closes_the_tasks_then_the_watchdog(fake, daq):
    daq.write(MID_V)
    fake.events.clear()
    daq.close()
    assert fake.events == [
        "watchdog.reset_timer",
        "ao.stop",
        "ao.write_one_sample",
        "co.stop",
        "ai.stop",
        "co.close",
        "ai.close",
        "ao.close",
        "watchdog.stop",
        "watchdog.close",
    ]
    np.testing.assert_array_equal(fake.writes[-1][1], SAFE_V)


def test_close_is_idempotent(fake, daq):
    daq.close()
    events = list(fake.events)
    daq.close()
    daq.safe_state()
    assert fake.events == events
    assert fake.count("ao.close") == fake.count("watchdog.close") == 1


def test_an_operation_after_close_is_refused(daq):
    daq.close()
    with pytest.raises(DaqError, match="write_and_read: the DAQ of gen2-sim is closed"):
        daq.write_and_read(MID_V, 1e-3, 10)


def test_close_releases_everything_even_when_the_safe_state_fails(fake, daq):
    fake.fail("ao.write_one_sample", nidaqmx.errors.DaqError("Device has been removed.", -201003))
    with pytest.raises(DaqError, match="could not write the safe values"):
        daq.close()
    assert all(state.closed for state in fake.states.values())
    assert fake.count("watchdog.close") == 1


# -- identity ---------------------------------------------------------------------------------


def test_identity_names_every_device_with_its_product_and_serial_number(daq):
    assert daq.identity() == "PXI1Slot2: NI PXIe-6738 SN 01F2A3B0; PXI1Slot3: NI PXIe-6363 SN 01F2A3B1"


# -- a digital learn line --------------------------------------------------------------------------


def test_a_digital_learn_line_writes_a_hardware_timed_pulse_from_the_output_start_trigger():
    with installed(DIGITAL) as fake, NidaqDaq(DIGITAL) as daq:
        learn = fake.task("do")
        learn.do_channels.add_do_chan.assert_called_once_with(
            "PXI1Slot3/port0/line0", line_grouping=LineGrouping.CHAN_PER_LINE
        )
        learn.write.reset_mock()
        daq.write_and_pulse(MID_V, 1e-3, 50e-6)
        n = 100 + 5 + 1
        learn.timing.cfg_samp_clk_timing.assert_called_once_with(100e3, sample_mode=AcquisitionType.FINITE, samps_per_chan=n)
        learn.triggers.start_trigger.cfg_dig_edge_start_trig.assert_called_once_with(AO_START, trigger_edge=Edge.RISING)
        (wave,), kwargs = learn.write.call_args
        assert kwargs == {"auto_start": False, "timeout": 1.0}
        np.testing.assert_array_equal(wave, [False] * 100 + [True] * 5 + [False])
        assert in_order(fake.events, "do.write", "do.start", "ao.start", "do.wait_until_done", "do.stop")


def test_a_digital_learn_line_without_a_start_trigger_is_pulsed_by_the_host():
    with installed(DIGITAL) as fake:
        fake.devices["PXI1Slot3"].do_trig_usage = []
        with NidaqDaq(DIGITAL) as daq:
            learn = fake.task("do")
            learn.write.reset_mock()
            daq.write_and_pulse(MID_V, 1e-4, 20e-6)
            assert learn.write.call_args_list == [call(True), call(False)]
            learn.timing.cfg_samp_clk_timing.assert_not_called()
            np.testing.assert_array_equal(fake.writes[-1][1], MID_V)
            assert in_order(fake.events, "ao.write_one_sample", "do.write", "do.write")


def test_a_digital_learn_line_idles_low_in_the_safe_state():
    with installed(DIGITAL) as fake, NidaqDaq(DIGITAL) as daq:
        learn = fake.task("do")
        daq.pulse(50e-6)
        learn.write.reset_mock()
        daq.safe_state()
        assert learn.write.call_args_list == [call(False)]


def test_a_digital_learn_line_is_guarded_by_its_devices_watchdog_expiring_low():
    with installed(DIGITAL) as fake, NidaqDaq(DIGITAL) as daq:
        assert daq.hardware_watchdog == {"PXI1Slot2": "ao", "PXI1Slot3": "do"}
        fake.watchdogs["PXI1Slot3"].cfg_watchdog_do_expir_states.assert_called_once_with(
            [DOExpirationState("PXI1Slot3/port0/line0", Level.LOW)]
        )
        fake.watchdogs["PXI1Slot3"].cfg_watchdog_ao_expir_states.assert_not_called()


def test_a_digital_learn_line_on_a_pfi_line_is_pulsed_by_the_host():
    wiring = dataclasses.replace(WIRING, learn_line="PXI1Slot3/port1/line0")  # PFI 0: static only
    with installed(wiring) as fake, NidaqDaq(wiring) as daq:
        learn = fake.task("do")
        learn.write.reset_mock()
        daq.pulse(20e-6)
        assert learn.write.call_args_list == [call(True), call(False)]
        assert not fake.line_high("PXI1Slot3/port1/line0")



# == the watchdog ======================================================================================


def test_operations_shorter_than_the_watchdog_keep_it_from_expiring(fake, daq):
    for _ in range(3):
        daq.read(150_000)  # 1.5 s each at 100 kHz, 4.5 s in all, against a 2 s watchdog
    assert fake.now_s >= 4.5
    assert not fake.watchdogs["PXI1Slot2"].expired
    daq.write(MID_V)
    np.testing.assert_array_equal(ao_levels(fake), MID_V)


def test_a_host_that_stops_servicing_the_daq_leaves_the_watchdog_to_drive_the_outputs_safe(fake, daq):
    daq.write(MID_V)
    fake.advance(TIMING.watchdog_s + 0.1)
    np.testing.assert_array_equal(ao_levels(fake), SAFE_V)
    with pytest.raises(DaqError, match=r"^write: the watchdog on PXI1Slot2 expired: the host did not service the "
                                       r"DAQ for 2 s, and the device holds its outputs at their safe values"):
        daq.write(MID_V)
    np.testing.assert_array_equal(ao_levels(fake), SAFE_V)
    daq.close()  # the outputs are safe already: closing says so in the log and does not raise
    assert all(state.closed for state in fake.states.values())


def test_the_gen2_bench_has_the_pxie_6738_watchdog_on_its_outputs_and_none_on_the_6363(fake, daq):
    assert daq.hardware_watchdog == {"PXI1Slot2": "ao", "PXI1Slot3": None}
    assert set(fake.watchdogs) == {"PXI1Slot2"}


def test_an_x_series_bench_opens_without_analog_expiration_states_and_says_only_the_host_guards_it(caplog):
    wiring = usb_wiring()
    assert wiring.problems() == []
    with caplog.at_level(logging.WARNING), installed(wiring) as fake, NidaqDaq(wiring) as daq:
        assert daq.hardware_watchdog == {"Dev1": None}
        assert fake.WatchdogTask.call_count == 0
        assert "usb-bench: no hardware watchdog guards the analog outputs of Dev1 (USB-6363)" in caplog.text
        assert daq.settings()["watchdog.host_guarded"] == "the analog outputs of Dev1 (USB-6363)"


def test_the_gen2_bench_opens_without_a_host_guard_warning(fake, caplog):
    with caplog.at_level(logging.WARNING), NidaqDaq(WIRING):
        assert "no hardware watchdog guards" not in caplog.text


def test_an_unsound_wiring_is_refused_before_anything_is_opened(fake):
    wiring = dataclasses.replace(WIRING, timing=dataclasses.replace(TIMING, watchdog_s=40.0))
    with pytest.raises(DaqError, match=r"wiring gen2-sim is unsound, nothing opened: timing.watchdog_s 40 s exceeds "
                                       r"the PXIe-6738's longest watchdog timeout 34.36 s on PXI1Slot2"):
        NidaqDaq(wiring)
    assert fake.Task.call_count == 0 and fake.WatchdogTask.call_count == 0


# == the way to the safe state ==========================================================================


def test_open_ramps_from_what_the_outputs_hold_to_the_safe_values_within_the_ramp_limit():
    wiring = ramped(WIRING, 0.1)
    held = np.full(N_AO, 0.45)
    with installed(wiring) as fake, NidaqDaq(wiring, held_v=held):
        writes = static_writes(fake)
    steps = np.abs(np.diff(np.vstack([held, writes]), axis=0))
    assert len(writes) == 5 and steps.max() <= 0.1 + 1e-12
    np.testing.assert_array_equal(writes[-1], SAFE_V)


def test_open_starts_from_the_power_up_value_when_nothing_is_known():
    wiring = ramped(dataclasses.replace(WIRING, outputs=tuple(
        dataclasses.replace(o, safe_v=0.3) for o in WIRING.outputs)), 0.1)
    with installed(wiring) as fake, NidaqDaq(wiring):
        writes = static_writes(fake)
    np.testing.assert_allclose(writes[:, 0], [0.1, 0.2, 0.3])


def test_open_refuses_outputs_held_farther_outside_their_limits_than_one_step_before_opening_anything():
    wiring = ramped(WIRING, 0.1)
    with installed(wiring) as fake:
        with pytest.raises(DaqError, match=r"no ramp to the safe values from .* PXI1Slot2/ao0: a step of 1\.45 V"):
            NidaqDaq(wiring, held_v=np.full(N_AO, -1.45))
        assert fake.Task.call_count == 0 and fake.WatchdogTask.call_count == 0


@pytest.mark.parametrize("held", [np.zeros(N_AO - 1), np.full(N_AO, np.nan), 0.2], ids=["short", "nan", "scalar"])
def test_open_refuses_a_held_value_that_is_not_one_finite_voltage_per_output(fake, held):
    with pytest.raises(DaqError, match="held_v must be 6 finite voltages"):
        NidaqDaq(WIRING, held_v=held)


def test_the_safe_state_ramps_from_the_last_values_written():
    wiring = ramped(WIRING, 0.1)
    with installed(wiring) as fake, NidaqDaq(wiring) as daq:
        daq.write_and_read(np.full(N_AO, 0.1), 1e-3, 10)
        for v in (0.2, 0.3):
            daq.write(np.full(N_AO, v))
        fake.writes.clear()
        daq.safe_state()
        np.testing.assert_allclose(static_writes(fake)[:, 0], [0.2, 0.1, 0.0])


def test_the_worst_case_way_to_the_safe_state_is_its_writes_at_the_devices_write_time(fake):
    assert NidaqDaq(WIRING).worst_case_safe_s() == pytest.approx(10e-6)  # one write on PXIe
    with installed(ramped(WIRING, 0.1)):
        assert NidaqDaq(ramped(WIRING, 0.1)).worst_case_safe_s() == pytest.approx(5 * 10e-6)
    with installed(usb_wiring()):
        assert NidaqDaq(ramped(usb_wiring(), 0.1)).worst_case_safe_s() == pytest.approx(5 * 1e-3)


def test_the_ramp_from_the_far_limits_takes_no_longer_than_the_worst_case_on_the_fakes_clock():
    wiring = ramped(usb_wiring(), 0.04)
    with installed(wiring) as fake, NidaqDaq(wiring) as daq:
        daq.write(np.array([o.max_v for o in wiring.outputs]))
        start_s = fake.now_s
        daq.safe_state()
        assert 0 < fake.now_s - start_s <= daq.worst_case_safe_s() + 1e-12



# == the learn line ===========================================================================================


@pytest.mark.parametrize("operation", [
    lambda daq: daq.pulse(100e-6),
    lambda daq: daq.write_and_pulse(MID_V, 1e-3, 100e-6),
], ids=["pulse", "write_and_pulse"])
def test_a_keyboard_interrupt_inside_the_pulse_leaves_the_counter_low(fake, daq, operation):
    fake.fail("co.wait_until_done", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        operation(daq)
    assert not fake.line_high(WIRING.learn_line)
    assert not fake.state("co").running


def test_a_keyboard_interrupt_inside_a_hardware_timed_digital_pulse_leaves_the_line_low():
    with installed(DIGITAL) as fake, NidaqDaq(DIGITAL) as daq:
        fake.fail("do.wait_until_done", KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            daq.write_and_pulse(MID_V, 1e-3, 50e-6)
        assert not fake.line_high(DIGITAL.learn_line)


def test_a_keyboard_interrupt_while_the_host_holds_a_digital_line_high_leaves_it_low(monkeypatch):
    def interrupted(duration_s):
        raise KeyboardInterrupt

    with installed(DIGITAL) as fake:
        fake.devices["PXI1Slot3"].do_trig_usage = []
        with NidaqDaq(DIGITAL) as daq:
            monkeypatch.setattr(nidaq_lines, "hold", interrupted)
            with pytest.raises(KeyboardInterrupt):
                daq.pulse(50e-6)
            assert not fake.line_high(DIGITAL.learn_line)


def test_a_pulse_the_watchdog_would_outlast_is_refused_before_anything_is_armed(fake, daq):
    with pytest.raises(DaqError, match=r"^pulse: a pulse of 1 s after 0 s takes 2 s, not less than the 2 s watchdog"):
        daq.pulse(1.0)
    with pytest.raises(DaqError, match=r"^write_and_pulse: a pulse of 0.9 s after 0.3 s takes 2.1 s"):
        daq.write_and_pulse(MID_V, 0.3, 0.9)
    assert fake.events == []


def test_a_pulse_shorter_than_the_counter_can_time_is_refused_before_anything_is_armed(fake, daq):
    with pytest.raises(DaqError, match=r"width_s 1e-08 s is outside what the PXIe-6363's counter can time "
                                       r"\(2e-08\.\.42949\.7 s\)"):
        daq.pulse(10e-9)
    assert fake.events == []


# == settings ==================================================================================================


def test_settings_are_read_back_from_the_tasks(fake, daq):
    daq.write_and_read(MID_V, 1e-3, 10)
    s = daq.settings()
    assert json.loads(json.dumps(s)) == s
    assert s["PXI1Slot2/ao0.min_v"] == 0.0 and s["PXI1Slot2/ao0.max_v"] == 0.45
    assert s["PXI1Slot3/ai1.min_v"] == -1.0 and s["PXI1Slot3/ai1.terminal_config"] == "RSE"
    assert (s["ai.timing"], s["ai.sample_rate_hz"], s["ai.samples_per_channel"]) == ("SAMPLE_CLOCK", 100e3, 110)
    assert s["ao.timing"] == "SAMPLE_CLOCK"
    assert (s["learn.kind"], s["learn.idle_state"], s["learn.pulse_high_s"]) == ("counter", "LOW", 100e-6)
    assert (s["watchdog.PXI1Slot2.covers"], s["watchdog.PXI1Slot2.timeout_s"]) == ("ao", 2.0)
    assert s["watchdog.PXI1Slot3.covers"] is None and s["watchdog.host_guarded"] is None
    daq.write(MID_V)
    assert daq.settings()["ao.timing"] == "ON_DEMAND"


def test_settings_follow_what_the_channels_report_not_what_was_asked(fake, daq):
    fake.state("ao").channels[0].ao_max = 0.4
    assert daq.settings()["PXI1Slot2/ao0.max_v"] == 0.4
