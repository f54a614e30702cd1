"""The fake nidaqmx is as strict as DAQmx (channels, ranges, timing types, buffers, the task state
model, triggers, rates, counters, the watchdog), and the driver runs its real sequences on it
(on-demand and clocked outputs, the acquisition armed before the outputs start); then the
settings the driver reads back, and the simulated DAQ agreeing with the driver."""

from __future__ import annotations

import dataclasses
import re

import nidaqmx.errors
import numpy as np
import pytest
from fake_nidaqmx import installed
from nidaq_common import daq, fake, task  # noqa: F401  (pytest fixtures, used by name)
from nidaq_common import (
    WIRING, AO_START, N_AO, SAFE_V, MID_V, ROWS,
    DIGITAL, code, ao_levels, usb_wiring, ramped, simulated,
)
from nidaqmx.constants import (
    AcquisitionType,
    Level,
    SampleTimingType,
    TaskMode,
    WatchdogAOExpirState,
)
from nidaqmx.error_codes import DAQmxErrors
from nidaqmx.system import AOExpirationState, DOExpirationState

from instruments.daq.nidaq import NidaqDaq
from instruments.interfaces import DaqError


# == the fake is as strict as DAQmx ================================================================


@pytest.mark.parametrize("add", [
    lambda t: t.ao_channels.add_ao_voltage_chan("PXI1Slot2/ao32"),
    lambda t: t.ai_channels.add_ai_voltage_chan("PXI1Slot3/ai32"),
    lambda t: t.ai_channels.add_ai_voltage_chan("PXI1Slot2/ai0"),
    lambda t: t.co_channels.add_co_pulse_chan_time("PXI1Slot3/ctr4"),
    lambda t: t.do_channels.add_do_chan("PXI1Slot3/port0/line32"),
], ids=["ao32", "ai32", "ai-on-6738", "ctr4", "line32"])
def test_the_fake_refuses_a_channel_the_device_does_not_have(fake, add):
    with pytest.raises(nidaqmx.errors.DaqError, match="Physical channel specified does not exist") as e:
        add(fake.Task("t"))
    assert code(e) == DAQmxErrors.PHYSICAL_CHAN_DOES_NOT_EXIST == -200170


def test_the_fake_refuses_a_range_beyond_the_device(fake):
    with pytest.raises(nidaqmx.errors.DaqError, match="DAQmx_AO_Max") as e:
        fake.Task("t").ao_channels.add_ao_voltage_chan("PXI1Slot2/ao0", min_val=0.0, max_val=12.0)
    assert code(e) == DAQmxErrors.INVALID_ATTRIBUTE_VALUE


def test_the_fake_takes_only_a_sample_timing_type_for_the_timing_type(task):
    with pytest.raises(AttributeError):
        task.timing.samp_timing_type = 10390  # ON_DEMAND's value, not the enum
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        task.timing.samp_timing_type = AcquisitionType.FINITE
    assert code(e) == DAQmxErrors.INVALID_ATTRIBUTE_VALUE
    task.timing.samp_timing_type = SampleTimingType.ON_DEMAND
    assert task.timing.samp_timing_type == SampleTimingType.ON_DEMAND


def test_the_fake_starts_on_demand_and_clocks_after_cfg_samp_clk_timing(task):
    assert task.timing.samp_timing_type == SampleTimingType.ON_DEMAND
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        task.timing.samp_clk_rate
    assert code(e) == DAQmxErrors.ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT
    task.timing.cfg_samp_clk_timing(10e3, samps_per_chan=4)
    assert task.timing.samp_timing_type == SampleTimingType.SAMPLE_CLOCK
    assert (task.timing.samp_clk_rate, task.timing.samp_quant_samp_per_chan) == (10e3, 4)
    assert task.timing.samp_quant_samp_mode == AcquisitionType.FINITE


def test_a_clocked_output_task_starts_only_with_its_whole_buffer_written(fake, task):
    writer = fake.AnalogMultiChannelWriter(task.out_stream)
    task.timing.cfg_samp_clk_timing(10e3, samps_per_chan=4)
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        task.start()
    assert code(e) == DAQmxErrors.OUTPUT_BUFFER_EMPTY == -200462
    writer.write_many_sample(np.zeros((2, 3)))
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        task.start()
    assert code(e) == DAQmxErrors.NOT_ENOUGH_SAMPS_WRITTEN_FOR_INITIAL_XFER_RQST_CONDITION
    writer.write_many_sample(np.zeros((2, 1)))
    task.start()
    task.wait_until_done()
    task.stop()
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        task.start()  # every run needs its samples written again
    assert code(e) == DAQmxErrors.OUTPUT_BUFFER_EMPTY


def test_a_static_write_to_a_clocked_output_task_is_one_sample_of_its_buffer_and_fails_to_start(fake, task):
    writer = fake.AnalogMultiChannelWriter(task.out_stream)
    task.timing.cfg_samp_clk_timing(10e3, samps_per_chan=4)
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        writer.write_one_sample(np.array([1.0, 2.0]))
    assert code(e) == DAQmxErrors.NOT_ENOUGH_SAMPS_WRITTEN_FOR_INITIAL_XFER_RQST_CONDITION
    assert fake.ao_levels["PXI1Slot2/ao0"] == 0.0


def test_a_static_write_on_demand_sets_the_outputs_at_once(fake, task):
    fake.AnalogMultiChannelWriter(task.out_stream).write_one_sample(np.array([1.0, 2.0]))
    assert (fake.ao_levels["PXI1Slot2/ao0"], fake.ao_levels["PXI1Slot2/ao1"]) == (1.0, 2.0)
    assert not fake.states[id(task)].running


def test_the_fake_refuses_to_configure_a_running_task(fake, task):
    writer = fake.AnalogMultiChannelWriter(task.out_stream)
    task.timing.cfg_samp_clk_timing(10e3, samps_per_chan=2)
    writer.write_many_sample(np.zeros((2, 2)))
    task.start()
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        task.timing.cfg_samp_clk_timing(10e3, samps_per_chan=3)
    assert code(e) == DAQmxErrors.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        task.timing.samp_timing_type = SampleTimingType.ON_DEMAND
    assert code(e) == DAQmxErrors.CANNOT_SET_PROPERTY_WHEN_TASK_RUNNING
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        task.start()
    assert code(e) == DAQmxErrors.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING


def test_the_fake_follows_the_task_state_model(fake, task):
    state = fake.states[id(task)]
    assert state.state == "unverified"
    task.control(TaskMode.TASK_COMMIT)
    assert state.state == "committed"
    fake.AnalogMultiChannelWriter(task.out_stream)
    task.start()
    assert state.state == "running"
    task.stop()
    assert state.state == "committed"  # committed explicitly: a stop keeps it so
    task.timing.samp_timing_type = SampleTimingType.ON_DEMAND
    assert state.state == "unverified"  # a new configuration needs a new commit
    task.start()
    task.stop()
    assert state.state == "verified"


def test_waiting_on_a_task_that_never_started_is_refused(task):
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        task.wait_until_done()
    assert code(e) == DAQmxErrors.CANNOT_PERFORM_OP_WHEN_TASK_NOT_RUNNING


def test_reading_more_samples_than_a_finite_acquisition_takes_is_refused(fake):
    t = fake.Task("ai")
    t.ai_channels.add_ai_voltage_chan("PXI1Slot3/ai0")
    reader = fake.AnalogMultiChannelReader(t.in_stream)
    t.timing.cfg_samp_clk_timing(10e3, samps_per_chan=5)
    t.start()
    with pytest.raises(nidaqmx.errors.DaqReadError) as e:
        reader.read_many_sample(np.zeros((1, 6)), number_of_samples_per_channel=6)
    assert code(e) == DAQmxErrors.SAMPLES_WILL_NEVER_BE_AVAILABLE


def test_an_acquisition_whose_start_trigger_never_comes_times_out(fake):
    t = fake.Task("ai")
    t.ai_channels.add_ai_voltage_chan("PXI1Slot3/ai0")
    reader = fake.AnalogMultiChannelReader(t.in_stream)
    t.timing.cfg_samp_clk_timing(10e3, samps_per_chan=5)
    t.triggers.start_trigger.cfg_dig_edge_start_trig(AO_START)
    t.start()
    with pytest.raises(nidaqmx.errors.DaqReadError) as e:
        reader.read_many_sample(np.zeros((1, 5)), number_of_samples_per_channel=5, timeout=0.5)
    assert code(e) == DAQmxErrors.SAMPLES_NOT_YET_AVAILABLE
    assert fake.now_s == 0.5


def test_a_sample_clock_beyond_the_aggregate_rate_is_refused_at_start(fake):
    t = fake.Task("ai")
    t.ai_channels.add_ai_voltage_chan("PXI1Slot3/ai0")
    t.ai_channels.add_ai_voltage_chan("PXI1Slot3/ai1")
    t.timing.cfg_samp_clk_timing(600e3, samps_per_chan=5)  # 1.2 MS/s over two inputs of a 1 MS/s 6363
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        t.start()
    assert code(e) == DAQmxErrors.SAMP_RATE_TOO_HIGH


def test_a_sample_clock_on_static_pfi_lines_is_refused(fake):
    t = fake.Task("do")
    t.do_channels.add_do_chan("PXI1Slot3/port1/line0")
    t.timing.cfg_samp_clk_timing(10e3, samps_per_chan=3)
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        t.control(TaskMode.TASK_COMMIT)
    assert code(e) == DAQmxErrors.BUFFERED_OPERATIONS_NOT_SUPPORTED_ON_SELECTED_LINES


@pytest.mark.parametrize("name, value", [("co_pulse_high_time", 0.0), ("co_pulse_high_time", 10e-9),
                                         ("co_pulse_low_time", 1e6), ("co_pulse_time_initial_delay", -1e-3)])
def test_a_counter_pulse_outside_the_counters_limits_is_refused(fake, name, value):
    t = fake.Task("co")
    channel = t.co_channels.add_co_pulse_chan_time("PXI1Slot3/ctr0")
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        setattr(channel, name, value)
    assert code(e) == DAQmxErrors.INVALID_ATTRIBUTE_VALUE
    with pytest.raises(AttributeError):
        channel.co_pulse_idle_state = 10214  # Level.LOW's value, not the enum


def test_analog_expiration_states_on_an_x_series_device_are_refused(fake):
    watchdog = fake.WatchdogTask("PXI1Slot3", timeout=2.0)
    with pytest.raises(nidaqmx.errors.DaqError, match="DAQmx_Watchdog_AO_ExpirState") as e:
        watchdog.cfg_watchdog_ao_expir_states([AOExpirationState("PXI1Slot3/ao0", 0.0, WatchdogAOExpirState.VOLTAGE)])
    assert code(e) == DAQmxErrors.ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT
    watchdog.cfg_watchdog_do_expir_states([DOExpirationState("PXI1Slot3/port0/line0", Level.LOW)])


@pytest.mark.parametrize("timeout", [40.0, 0.0, -2.0])
def test_a_watchdog_timeout_beyond_34_s_is_refused(fake, timeout):
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        fake.WatchdogTask("PXI1Slot2", timeout=timeout)
    assert code(e) == DAQmxErrors.WATCHDOG_TIMEOUT_OUT_OF_RANGE_AND_NOT_SPECIAL_VAL


def test_a_watchdog_on_a_device_without_one_is_refused():
    wiring = dataclasses.replace(WIRING, daq_devices={"PXI1Slot2": "PXIe-6738", "PXI1Slot3": "USB-6211"})
    with installed(wiring) as fake, pytest.raises(nidaqmx.errors.DaqError) as e:
        fake.WatchdogTask("PXI1Slot3", timeout=1.0)
    assert code(e) == DAQmxErrors.WATCHDOG_TIMER_NOT_SUPPORTED


def test_the_fakes_watchdog_expires_when_not_reset_and_locks_its_outputs_until_cleared(fake, task):
    watchdog = fake.WatchdogTask("PXI1Slot2", timeout=1.0)
    watchdog.cfg_watchdog_ao_expir_states([AOExpirationState("PXI1Slot2/ao0", -1.0, WatchdogAOExpirState.VOLTAGE)])
    watchdog.start()
    writer = fake.AnalogMultiChannelWriter(task.out_stream)
    writer.write_one_sample(np.array([2.0, 3.0]))
    fake.advance(0.9)
    watchdog.reset_timer()
    fake.advance(0.9)
    assert not watchdog.expired and fake.ao_levels["PXI1Slot2/ao0"] == 2.0
    fake.advance(0.2)
    assert watchdog.expired and fake.ao_levels["PXI1Slot2/ao0"] == -1.0
    assert fake.ao_levels["PXI1Slot2/ao1"] == 3.0  # no expiration state: it keeps its value
    with pytest.raises(nidaqmx.errors.DaqWriteError) as e:
        writer.write_one_sample(np.array([0.0, 0.0]))
    assert code(e) == DAQmxErrors.WRITE_FAILED_BECAUSE_WATCHDOG_EXPIRED
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        watchdog.reset_timer()
    assert code(e) == DAQmxErrors.CANT_RESET_EXPIRED_WATCHDOG
    watchdog.clear_expiration()
    writer.write_one_sample(np.array([0.5, 0.5]))
    assert fake.ao_levels["PXI1Slot2/ao0"] == 0.5


def test_a_watchdog_cannot_start_while_another_task_holds_its_device(fake, task):
    task.control(TaskMode.TASK_COMMIT)
    watchdog = fake.WatchdogTask("PXI1Slot2", timeout=1.0)
    with pytest.raises(nidaqmx.errors.DaqError) as e:
        watchdog.start()
    assert code(e) == DAQmxErrors.CANT_RESERVE_WATCHDOG_TASK_WHILE_OTHER_TASKS_RESERVED


# == the driver in sequence: on-demand and clocked outputs ============================================


def test_a_static_write_after_a_clocked_step_is_on_demand_and_reaches_the_outputs(fake, daq):
    daq.write_and_read(MID_V, 1e-3, 10)
    daq.write(ROWS[2])
    assert fake.task("ao").timing.samp_timing_type == SampleTimingType.ON_DEMAND
    assert not fake.state("ao").running
    np.testing.assert_array_equal(ao_levels(fake), ROWS[2])


def test_a_clocked_step_after_a_static_write_holds_its_values_on_the_outputs(fake, daq):
    daq.write(ROWS[2])
    daq.write_and_read(MID_V, 1e-3, 10)
    assert fake.task("ao").timing.samp_timing_type == SampleTimingType.SAMPLE_CLOCK
    np.testing.assert_array_equal(ao_levels(fake), MID_V)


def test_a_whole_training_sequence_runs_on_the_strict_fake(fake, daq):
    for _ in range(2):
        daq.write(ROWS[1])
        daq.write_and_read(ROWS[1], 1e-3, 10)
        daq.write_and_pulse(ROWS[2], 1e-3, 100e-6)
        daq.write(ROWS[2])
        daq.read(10)
        daq.pulse(100e-6)
        daq.write_and_read_many(ROWS, 1e-3, 10)
    daq.safe_state()
    np.testing.assert_array_equal(ao_levels(fake), SAFE_V)
    assert not any(state.running for state in fake.states.values())


def test_the_acquisition_is_armed_before_the_outputs_start_or_it_never_triggers(fake, daq):
    daq.write_and_read(MID_V, 1e-3, 10)
    ai = fake.state("ai")
    assert ai.trigger == AO_START and ai.start_s is not None




# == the simulated DAQ agrees ================================================================================


@pytest.mark.parametrize("wiring", [WIRING, DIGITAL, usb_wiring()], ids=["gen2", "digital", "usb"])
def test_the_simulated_daq_reports_the_same_watchdog_and_worst_case(wiring):
    with installed(wiring), NidaqDaq(wiring) as daq:
        assert simulated(wiring).hardware_watchdog == daq.hardware_watchdog
    with installed(wiring), NidaqDaq(ramped(wiring, 0.1)) as daq:
        assert simulated(ramped(wiring, 0.1)).worst_case_safe_s() == pytest.approx(daq.worst_case_safe_s())


def test_the_simulated_daq_reports_the_same_settings_names(fake, daq):
    daq.write_and_read(MID_V, 1e-3, 10)
    real, sim = daq.settings(), simulated(WIRING).settings()
    assert set(real) - {"ao.sample_rate_hz", "ao.sample_mode", "ao.samples_per_channel", "ai.sample_mode",
                        "ai.samples_per_channel", "learn.pulse_low_s", "learn.initial_delay_s"} <= set(sim)
    for key in ("PXI1Slot2/ao3.max_v", "PXI1Slot3/ai0.terminal_config", "watchdog.PXI1Slot2.covers",
                "watchdog.PXI1Slot2.timeout_s", "learn.kind", "watchdog.host_guarded"):
        assert sim[key] == real[key]


@pytest.mark.parametrize("operation, message", [
    (lambda daq: daq.pulse(1.0), "pulse: a pulse of 1 s after 0 s takes 2 s, not less than the 2 s watchdog"),
    (lambda daq: daq.pulse(10e-9), "width_s 1e-08 s is outside what the PXIe-6363's counter can time"),
    (lambda daq: daq.read(200_010), "take 2.0001 s, not less than the 2 s watchdog"),
    (lambda daq: daq.write_and_read_many(np.tile(MID_V, (1819, 1)), 1e-3, 10), "take 2.0009 s"),
    (lambda daq: daq.write_and_read(MID_V, 0.0, 10), "settle_s must be a positive number of seconds"),
], ids=["long-pulse", "short-pulse", "long-read", "long-batch", "no-settle"])
def test_the_simulated_daq_refuses_what_the_driver_refuses(fake, daq, operation, message):
    with pytest.raises(DaqError, match=re.escape(message)):
        operation(daq)
    with pytest.raises(DaqError, match=re.escape(message)):
        operation(simulated(WIRING))


def test_the_simulated_daq_ramps_from_held_v_at_open_and_from_its_last_write_to_the_safe_state(monkeypatch):
    from instruments.sim.bench import DaqErrors, SimBench, SimDaq

    wiring = ramped(WIRING, 0.1)
    bench = SimBench(wiring, errors=DaqErrors.ideal())
    writes = []
    original = SimDaq._write
    monkeypatch.setattr(SimDaq, "_write", lambda self, v: (writes.append(np.array(v)), original(self, v))[1])
    daq = SimDaq(bench, DaqErrors.ideal(), 0, held_v=np.full(N_AO, 0.45))
    steps = np.abs(np.diff(np.array(writes), axis=0))
    assert len(writes) == 1 + 5 and steps.max() <= 0.1 + 1e-12  # what is held, then the ramp
    np.testing.assert_array_equal(writes[-1], SAFE_V)
    daq.write(np.full(N_AO, 0.3))
    writes.clear()
    daq.safe_state()
    np.testing.assert_allclose(np.array(writes)[:, 0], [0.2, 0.1, 0.0])
