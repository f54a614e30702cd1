"""The NI-DAQmx driver against a fake nidaqmx autospecced from the installed package.

The tests pin down the exact DAQmx calls (channels, timing, triggers, buffers, order) and the
driver's behaviour (averaging after settling, refusals, error translation, safe state and
close). What only the bench can show is listed in the driver's module docstring.

The fake is strict enough that each of these mutations of the driver fails at least the tests
named, here or in test_nidaq_safety.py and test_nidaq_fake.py (each was applied to
instruments/daq/nidaq.py or nidaq_lines.py, the three files run with their hypothesis tests
deselected, and reverted):

- no switch to on-demand timing before static writes (``_ao_on_demand`` does nothing):
  test_a_static_write_after_a_clocked_step_is_on_demand_and_reaches_the_outputs,
  test_a_whole_training_sequence_runs_on_the_strict_fake, test_settings_are_read_back_from_the_tasks
  and 3 more;
- ``cfg_samp_clk_timing`` (one sample) where on-demand is meant: 44 tests, the first of them
  test_a_static_write_after_a_clocked_step_is_on_demand_and_reaches_the_outputs;
- the waveform not written before the output task starts: 27 tests (OUTPUT_BUFFER_EMPTY),
  e.g. test_a_clocked_step_after_a_static_write_holds_its_values_on_the_outputs;
- a static value written while the AO task is clocked (``write`` bypassing the on-demand
  switch): test_a_static_write_after_a_clocked_step_is_on_demand_and_reaches_the_outputs and 3 more;
- AO expiration states on every AO device, an X Series one too:
  test_an_x_series_bench_opens_without_analog_expiration_states_and_says_only_the_host_guards_it
  and 3 more (ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT at open);
- the watchdog never reset: test_a_host_that_stops_servicing_the_daq_leaves_the_watchdog_to_drive_the_outputs_safe,
  test_every_hardware_operation_resets_the_watchdog_first and 5 more;
- the learn line unguarded (no idle on an exception):
  test_a_keyboard_interrupt_inside_a_hardware_timed_digital_pulse_leaves_the_line_low,
  test_a_keyboard_interrupt_while_the_host_holds_a_digital_line_high_leaves_it_low;
- the open jumping to the safe values in one write:
  test_open_ramps_from_what_the_outputs_hold_to_the_safe_values_within_the_ramp_limit and 2 more;
- the safe state jumping in one write, or ``write`` not recording what the outputs hold:
  test_the_safe_state_ramps_from_the_last_values_written;
- the pulse width not checked: test_a_pulse_the_watchdog_would_outlast_is_refused_before_anything_is_armed,
  test_a_pulse_shorter_than_the_counter_can_time_is_refused_before_anything_is_armed and 2 more;
- the outputs started before the acquisition is armed (its trigger never comes): 25 tests
  (DaqTimeout), e.g. test_a_repeated_step_keeps_the_committed_configuration;
- the acquisition's start trigger dropped:
  test_the_acquisition_is_armed_before_the_outputs_start_or_it_never_triggers and 2 more;
- configured tasks not committed: test_a_repeated_step_keeps_the_committed_configuration;
- a digital learn line expiring high:
  test_a_digital_learn_line_is_guarded_by_its_devices_watchdog_expiring_low.
"""

from __future__ import annotations

import dataclasses
import math
from unittest.mock import call

import nidaqmx.errors
import numpy as np
import pytest
from fake_nidaqmx import installed
from nidaq_common import daq, fake  # noqa: F401  (pytest fixtures, used by name)
from nidaq_common import (
    WIRING, TIMING, AO_START, N_AO, N_AI, SAFE_V,
    MID_V, ROWS, periods, read_timeout, in_order,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from nidaqmx.constants import (
    AcquisitionType,
    Edge,
    Level,
    TerminalConfiguration,
    WatchdogAOExpirState,
)
from nidaqmx.error_codes import DAQmxErrors
from nidaqmx.system import AOExpirationState

from instruments.daq.nidaq import NidaqDaq
from instruments.interfaces import BoundaryDaq, DaqError, DaqTimeout


# -- the fake is strict ------------------------------------------------------------------------


def test_the_fake_refuses_a_misspelt_method_or_argument(fake):
    task = fake.Task("t")
    with pytest.raises(AttributeError):
        task.ao_channels.add_ao_voltage_channel("PXI1Slot2/ao0")
    with pytest.raises(TypeError):
        task.timing.cfg_samp_clk_timing(100e3, samples_per_channel=10)
    with pytest.raises(AttributeError):
        task.triggers.start_trigger.dig_edge_source = AO_START


# -- open ---------------------------------------------------------------------------------


def test_the_driver_is_a_boundary_daq(daq):
    assert isinstance(daq, BoundaryDaq)
    assert daq.ao_channels == WIRING.ao_channels
    assert daq.ai_channels == WIRING.ai_channels


def test_open_is_the_constructor(fake):
    with NidaqDaq.open(WIRING) as daq:
        assert isinstance(daq, NidaqDaq)
    assert fake.count("ao.close") == 1


def test_each_output_is_added_with_its_safety_limits(fake, daq):
    assert fake.task("ao").ao_channels.add_ao_voltage_chan.call_args_list == [
        call(o.channel, min_val=o.min_v, max_val=o.max_v) for o in WIRING.outputs
    ]


def test_each_input_is_referenced_single_ended_on_its_range(fake, daq):
    assert fake.task("ai").ai_channels.add_ai_voltage_chan.call_args_list == [
        call(i.channel, terminal_config=TerminalConfiguration.RSE, min_val=-i.range_v, max_val=i.range_v)
        for i in WIRING.inputs
    ]


def test_the_learn_counter_makes_one_finite_pulse_after_the_settle_time(fake, daq):
    learn = fake.task("co")
    learn.co_channels.add_co_pulse_chan_time.assert_called_once_with(
        WIRING.learn_line,
        idle_state=Level.LOW,
        initial_delay=TIMING.settle_s,
        low_time=TIMING.pulse_s,
        high_time=TIMING.pulse_s,
    )
    learn.timing.cfg_implicit_timing.assert_called_once_with(sample_mode=AcquisitionType.FINITE, samps_per_chan=1)


def test_the_watchdog_expires_to_every_safe_value(fake, daq):
    fake.WatchdogTask.assert_called_once_with(
        "PXI1Slot2", task_name="gen2-sim-watchdog-PXI1Slot2", timeout=TIMING.watchdog_s
    )
    watchdog = fake.watchdogs["PXI1Slot2"]
    watchdog.cfg_watchdog_ao_expir_states.assert_called_once_with(
        [AOExpirationState(o.channel, o.safe_v, WatchdogAOExpirState.VOLTAGE) for o in WIRING.outputs]
    )
    watchdog.start.assert_called_once_with()


def test_the_watchdog_starts_before_the_tasks_are_made(fake):
    NidaqDaq(WIRING).close()
    assert in_order(fake.events, "watchdog.start", "new task gen2-sim-ao")


def test_open_drives_every_output_to_its_safe_value(fake):
    NidaqDaq(WIRING)
    method, data = fake.writes[-1]
    assert method == "write_one_sample"
    np.testing.assert_array_equal(data, SAFE_V)


def test_open_refuses_a_missing_device_and_leaves_nothing_open(fake):
    fake.system.devices.device_names = ["PXI1Slot2"]
    with pytest.raises(DaqError, match=r"PXI1Slot3 \(PXIe-6363\) not found; present: PXI1Slot2"):
        NidaqDaq(WIRING)
    assert fake.Task.call_count == 0 and fake.WatchdogTask.call_count == 0


def test_open_refuses_a_device_of_another_model(fake):
    fake.devices["PXI1Slot3"].product_type = "USB-6211"
    with pytest.raises(DaqError, match="PXI1Slot3 is a USB-6211, but wiring gen2-sim says PXIe-6363"):
        NidaqDaq(WIRING)


def test_open_closes_what_it_made_when_the_learn_line_is_refused(fake):
    fake.fail("co.cfg_implicit_timing", nidaqmx.errors.DaqError("The specified resource is reserved.", -50103))
    with pytest.raises(DaqError, match="^open: learn line PXI1Slot3/ctr0: The specified resource is reserved"):
        NidaqDaq(WIRING)
    assert all(state.closed for state in fake.states.values())
    assert fake.events[-5:] == ["co.close", "ai.close", "ao.close", "watchdog.stop", "watchdog.close"]


def test_open_without_the_nidaqmx_driver_is_a_daq_error(fake):
    fake.WatchdogTask.side_effect = nidaqmx.errors.DaqNotFoundError("Could not find an installation of NI-DAQmx.")
    with pytest.raises(DaqError, match="open: watchdog on PXI1Slot2: Could not find an installation of NI-DAQmx"):
        NidaqDaq(WIRING)


# -- write_and_read --------------------------------------------------------------------------


def test_write_and_read_clocks_outputs_and_inputs_for_settle_plus_samples(fake, daq):
    daq.write_and_read(MID_V, 1e-3, 10)
    n = 100 + 10  # 1 ms at 100 kHz, then 10 samples
    for kind in ("ao", "ai"):
        fake.task(kind).timing.cfg_samp_clk_timing.assert_called_once_with(
            100e3, sample_mode=AcquisitionType.FINITE, samps_per_chan=n
        )
    fake.task("ai").triggers.start_trigger.cfg_dig_edge_start_trig.assert_called_once_with(
        AO_START, trigger_edge=Edge.RISING
    )


def test_a_settle_time_of_whole_periods_is_not_rounded_up_by_float_error(fake, daq):
    settle_s = 9 * 100e-6  # 0.0009000000000000001 s, i.e. 90.00000000000001 periods at 100 kHz
    daq.write_and_read(MID_V, settle_s, 10)
    fake.task("ai").timing.cfg_samp_clk_timing.assert_called_once_with(
        100e3, sample_mode=AcquisitionType.FINITE, samps_per_chan=90 + 10
    )


def test_write_and_read_holds_the_values_for_the_whole_acquisition(fake, daq):
    daq.write_and_read(MID_V, 1e-3, 10)
    method, data = fake.writes[-1]
    assert method == "write_many_sample"
    np.testing.assert_array_equal(data, np.repeat(MID_V[:, None], 110, axis=1))


def test_write_and_read_arms_the_inputs_before_starting_the_outputs(fake, daq):
    daq.write_and_read(MID_V, 1e-3, 10)
    assert in_order(
        fake.events,
        "ao.write_many_sample",
        "ai.start",
        "ao.start",
        "ai.read_many_sample",
        "ao.wait_until_done",
        "ai.stop",
        "ao.stop",
    )
    assert not any(state.running for state in fake.states.values())


def test_write_and_read_reads_into_one_preallocated_buffer(fake, daq):
    daq.write_and_read(MID_V, 1e-3, 10)
    daq.write_and_read(MID_V, 1e-3, 10)
    first, second = fake.reader.read_many_sample.call_args_list
    assert first.args[0] is second.args[0]
    assert first.args[0].shape == (N_AI, 110)
    assert first == call(first.args[0], number_of_samples_per_channel=110, timeout=pytest.approx(110 / 100e3 + 1.0))


def test_a_repeated_step_keeps_the_committed_configuration(fake, daq):
    for _ in range(3):
        daq.write_and_read(MID_V, 1e-3, 10)
        daq.write_and_pulse(MID_V, 1e-3, 100e-6)
    assert fake.task("ao").timing.cfg_samp_clk_timing.call_count == 1
    assert fake.task("ai").timing.cfg_samp_clk_timing.call_count == 1
    assert fake.count("ao.control") == 1 and fake.count("ai.control") == 1 and fake.count("co.control") == 1


def test_write_and_read_returns_the_mean_of_the_samples_after_settling(fake, daq):
    def samples(n_channels, n):
        data = np.full((n_channels, n), 99.0)  # what the inputs see while settling
        data[:, 100:] = np.arange(n - 100) + np.array([[0.0], [0.5]])
        return data

    fake.ai_samples = samples
    np.testing.assert_allclose(daq.write_and_read(MID_V, 1e-3, 10), [4.5, 5.0])


@settings(max_examples=30, deadline=None)
@given(
    rate_hz=st.sampled_from([1e3, 10e3, 25e3, 100e3, 250e3, 500e3]),
    settle_s=st.floats(1e-6, 10e-3),
    n_samples=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_mean_excludes_exactly_the_settling_samples(rate_hz, settle_s, n_samples, seed):
    wiring = dataclasses.replace(WIRING, timing=dataclasses.replace(TIMING, sample_rate_hz=rate_hz))
    n_settle = periods(settle_s, rate_hz)
    tail = np.random.default_rng(seed).uniform(-1, 1, (N_AI, n_samples))
    with installed(wiring) as fake:
        fake.ai_samples = lambda n_channels, n: np.concatenate([np.full((n_channels, n_settle), 50.0), tail], axis=1)
        with NidaqDaq(wiring) as daq:
            means = daq.write_and_read(MID_V, settle_s, n_samples)
        fake.task("ai").timing.cfg_samp_clk_timing.assert_called_once_with(
            rate_hz, sample_mode=AcquisitionType.FINITE, samps_per_chan=n_settle + n_samples
        )
    np.testing.assert_allclose(means, tail.mean(axis=1), rtol=1e-12, atol=1e-15)


# -- write_and_read_many ----------------------------------------------------------------------


def test_write_and_read_many_clocks_one_acquisition_of_every_row(fake, daq):
    daq.write_and_read_many(ROWS, 1e-3, 10)
    n = 3 * (100 + 10)  # per row: 1 ms at 100 kHz, then 10 samples
    for kind in ("ao", "ai"):
        fake.task(kind).timing.cfg_samp_clk_timing.assert_called_once_with(
            100e3, sample_mode=AcquisitionType.FINITE, samps_per_chan=n
        )
    fake.task("ai").triggers.start_trigger.cfg_dig_edge_start_trig.assert_called_once_with(
        AO_START, trigger_edge=Edge.RISING
    )
    (read,) = fake.reader.read_many_sample.call_args_list
    assert read == call(read.args[0], number_of_samples_per_channel=n, timeout=pytest.approx(n / 100e3 + 1.0))


def test_write_and_read_many_holds_each_row_for_its_settle_and_samples(fake, daq):
    daq.write_and_read_many(ROWS, 1e-3, 10)
    (method, data), = [w for w in fake.writes if w[0] == "write_many_sample"]
    assert data.shape == (N_AO, 3 * 110)
    np.testing.assert_array_equal(data, np.repeat(ROWS.T, 110, axis=1))


def test_write_and_read_many_is_one_hardware_operation(fake, daq):
    daq.write_and_read_many(ROWS, 1e-3, 10)
    assert in_order(
        fake.events,
        "watchdog.reset_timer",
        "ao.write_many_sample",
        "ai.start",
        "ao.start",
        "ai.read_many_sample",
        "ao.wait_until_done",
        "ai.stop",
        "ao.stop",
    )
    for event in ("watchdog.reset_timer", "ao.write_many_sample", "ai.start", "ao.start", "ai.read_many_sample"):
        assert fake.count(event) == 1
    assert not any(state.running for state in fake.states.values())


def test_write_and_read_many_returns_the_mean_of_each_rows_samples_after_settling(fake, daq):
    def samples(n_channels, n):
        data = np.full((n_channels, 3, 110), 99.0)  # what the inputs see while each row settles
        data[:, :, 100:] = np.arange(10) + 100.0 * np.arange(3)[:, None] + np.array([[[0.0]], [[0.5]]])
        return data.reshape(n_channels, n)

    fake.ai_samples = samples
    np.testing.assert_allclose(daq.write_and_read_many(ROWS, 1e-3, 10), [[4.5, 5.0], [104.5, 105.0], [204.5, 205.0]])


def test_a_batch_of_one_row_is_write_and_read(fake, daq):
    fake.ai_samples = lambda n_channels, n: np.random.default_rng(7).uniform(-1, 1, (n_channels, n))
    one = daq.write_and_read(MID_V, 1e-3, 10)
    batch = daq.write_and_read_many(MID_V[None], 1e-3, 10)
    assert batch.shape == (1, N_AI)
    np.testing.assert_array_equal(batch[0], one)


@settings(max_examples=30, deadline=None)
@given(
    n_rows=st.integers(1, 20),
    rate_hz=st.sampled_from([1e3, 10e3, 25e3, 100e3, 250e3, 500e3]),
    settle_s=st.floats(1e-6, 10e-3),
    n_samples=st.integers(1, 100),
    seed=st.integers(0, 2**32 - 1),
)
def test_each_rows_mean_excludes_exactly_its_settling_samples(n_rows, rate_hz, settle_s, n_samples, seed):
    # 20 rows of 110 periods at 1 kHz take 2.2 s: a watchdog of 30 s (the X Series allow 34 s) outlasts them
    wiring = dataclasses.replace(WIRING, timing=dataclasses.replace(TIMING, sample_rate_hz=rate_hz, watchdog_s=30.0))
    n_settle = periods(settle_s, rate_hz)
    tails = np.random.default_rng(seed).uniform(-1, 1, (N_AI, n_rows, n_samples))
    acquired = np.concatenate([np.full((N_AI, n_rows, n_settle), 50.0), tails], axis=2).reshape(N_AI, -1)
    rows = np.random.default_rng(seed).uniform(SAFE_V, MID_V, (n_rows, N_AO))
    with installed(wiring) as fake:
        fake.ai_samples = lambda n_channels, n: acquired
        with NidaqDaq(wiring) as daq:
            means = daq.write_and_read_many(rows, settle_s, n_samples)
        fake.task("ai").timing.cfg_samp_clk_timing.assert_called_once_with(
            rate_hz, sample_mode=AcquisitionType.FINITE, samps_per_chan=n_rows * (n_settle + n_samples)
        )
        (_, wave), = [w for w in fake.writes if w[0] == "write_many_sample"]
    np.testing.assert_array_equal(wave, np.repeat(rows.T, n_settle + n_samples, axis=1))
    np.testing.assert_allclose(means, tails.mean(axis=2).T, rtol=1e-12, atol=1e-15)


def test_write_and_read_many_reads_into_a_buffer_that_grows_only_with_the_batch(fake, daq):
    for n_rows in (4, 4, 2, 4, 8, 3):
        daq.write_and_read_many(np.tile(MID_V, (n_rows, 1)), 1e-3, 10)
    buffers = [c.args[0] for c in fake.reader.read_many_sample.call_args_list]
    assert [b.shape for b in buffers] == [(N_AI, n * 110) for n in (4, 4, 2, 4, 8, 3)]
    assert buffers[1] is buffers[0]
    assert all(np.shares_memory(b, buffers[0]) for b in buffers[:4])
    assert not np.shares_memory(buffers[4], buffers[0])
    assert np.shares_memory(buffers[5], buffers[4])


def test_a_batch_after_a_single_step_reuses_the_step_buffer_when_it_fits(fake, daq):
    daq.write_and_read(MID_V, 1e-3, 100)
    daq.write_and_read_many(np.tile(MID_V, (1, 1)), 1e-3, 10)
    first, second = (c.args[0] for c in fake.reader.read_many_sample.call_args_list)
    assert np.shares_memory(first, second)


def test_a_batch_with_a_row_outside_the_limits_is_refused_naming_the_row_before_anything_is_written(fake, daq):
    rows = np.tile(MID_V, (4, 1))
    rows[2, 3] = 0.46
    writes_before = list(fake.writes)
    with pytest.raises(DaqError, match=r"refused, nothing written: row 2: PXI1Slot2/ao3 = 0.46 V is outside its limits 0..0.45 V$"):
        daq.write_and_read_many(rows, 1e-3, 10)
    assert fake.events == []
    assert fake.writes == writes_before


def test_a_refused_batch_lists_the_first_values_and_counts_the_rest(daq):
    rows = np.full((100, N_AO), 0.46)
    with pytest.raises(DaqError, match=r"row 0: PXI1Slot2/ao0 = 0.46 V .*; row 0: PXI1Slot2/ao4 = 0.46 V .*; and 595 more$"):
        daq.write_and_read_many(rows, 1e-3, 10)


@pytest.mark.parametrize("shape", [(N_AO,), (0, N_AO), (2, N_AO - 1), (2, N_AO, 1)])
def test_a_batch_of_the_wrong_shape_is_refused(fake, daq, shape):
    with pytest.raises(DaqError, match=rf"expected output values of shape \(B, {N_AO}\) with B >= 1"):
        daq.write_and_read_many(np.full(shape, 0.1), 1e-3, 10)
    assert fake.events == []


def test_a_batch_longer_than_the_watchdog_is_refused_before_anything_is_written(fake, daq):
    rows = np.tile(MID_V, (1819, 1))  # 1819 x 110 samples at 100 kHz: 2.0009 s
    with pytest.raises(DaqError, match="^write_and_read_many of 1819 rows: 200090 samples .* take 2.0009 s, not less than the 2 s watchdog"):
        daq.write_and_read_many(rows, 1e-3, 10)
    assert fake.events == []
    daq.write_and_read_many(rows[:1818], 1e-3, 10)


def test_a_batch_read_timeout_is_a_daq_timeout_naming_the_operation(fake, daq):
    fake.fail("ai.read_many_sample", read_timeout())
    with pytest.raises(DaqTimeout, match=r"^write_and_read_many: timed out: Some or all of the samples"):
        daq.write_and_read_many(ROWS, 1e-3, 10)
    assert not any(state.running for state in fake.states.values())


# -- write_and_pulse and pulse -----------------------------------------------------------------


def test_write_and_pulse_fires_the_counter_from_the_output_start_trigger(fake, daq):
    daq.write_and_pulse(MID_V, 2e-3, 50e-6)
    learn = fake.task("co")
    channel = fake.state("co").channels[0]
    assert channel.co_pulse_time_initial_delay == 2e-3
    assert channel.co_pulse_high_time == 50e-6
    learn.triggers.start_trigger.cfg_dig_edge_start_trig.assert_called_once_with(AO_START, trigger_edge=Edge.RISING)
    fake.task("ao").timing.cfg_samp_clk_timing.assert_called_once_with(
        100e3, sample_mode=AcquisitionType.FINITE, samps_per_chan=200 + 5
    )
    np.testing.assert_array_equal(fake.writes[-1][1], np.repeat(MID_V[:, None], 205, axis=1))


def test_write_and_pulse_arms_the_counter_before_starting_the_outputs(fake, daq):
    daq.write_and_pulse(MID_V, 1e-3, 100e-6)
    assert in_order(
        fake.events, "ao.write_many_sample", "co.start", "ao.start", "ao.wait_until_done", "co.wait_until_done"
    )
    assert not any(state.running for state in fake.states.values())


def test_pulse_fires_the_counter_now(fake, daq):
    daq.pulse(50e-6)
    learn = fake.task("co")
    learn.triggers.start_trigger.disable_start_trig.assert_called_once_with()
    channel = fake.state("co").channels[0]
    assert (channel.co_pulse_time_initial_delay, channel.co_pulse_high_time) == (0.0, 50e-6)
    assert in_order(fake.events, "co.start", "co.wait_until_done", "co.stop")
    assert not any(e.startswith("ao.") for e in fake.events)


# -- read -------------------------------------------------------------------------------------


def test_read_samples_now_and_returns_the_means(fake, daq):
    fake.ai_samples = lambda n_channels, n: np.tile(np.arange(n, dtype=float), (n_channels, 1))
    np.testing.assert_allclose(daq.read(5), [2.0, 2.0])
    ai = fake.task("ai")
    ai.timing.cfg_samp_clk_timing.assert_called_once_with(100e3, sample_mode=AcquisitionType.FINITE, samps_per_chan=5)
    ai.triggers.start_trigger.disable_start_trig.assert_called_once_with()
    assert in_order(fake.events, "ai.start", "ai.read_many_sample", "ai.stop")


def test_read_of_one_sample_acquires_two_and_keeps_the_first(fake, daq):
    fake.ai_samples = lambda n_channels, n: np.tile(np.arange(n, dtype=float) + 7.0, (n_channels, 1))
    np.testing.assert_allclose(daq.read(1), [7.0, 7.0])
    fake.task("ai").timing.cfg_samp_clk_timing.assert_called_once_with(
        100e3, sample_mode=AcquisitionType.FINITE, samps_per_chan=2
    )


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        lambda daq, v: daq.write(v),
        lambda daq, v: daq.write_and_read(v, 1e-3, 10),
        lambda daq, v: daq.write_and_pulse(v, 1e-3, 100e-6),
    ],
    ids=["write", "write_and_read", "write_and_pulse"],
)
def test_a_value_outside_an_outputs_limits_is_refused_before_anything_is_written(fake, daq, operation):
    values = MID_V.copy()
    values[3] = 0.46
    writes_before = list(fake.writes)
    with pytest.raises(DaqError, match=r"PXI1Slot2/ao3 = 0.46 V is outside its limits 0..0.45 V"):
        operation(daq, values)
    assert fake.events == []
    assert fake.writes == writes_before


def test_not_a_number_is_refused(daq):
    values = MID_V.copy()
    values[0] = math.nan
    with pytest.raises(DaqError, match=r"PXI1Slot2/ao0 = nan V"):
        daq.write(values)


def test_the_wrong_number_of_values_is_refused(daq):
    with pytest.raises(DaqError, match=r"expected 6 output values"):
        daq.write(np.zeros(5))


def test_an_operation_longer_than_the_watchdog_is_refused(fake, daq):
    with pytest.raises(DaqError, match="take 2.0001 s, not less than the 2 s watchdog"):
        daq.read(200_010)
    assert fake.events == []


# -- errors -----------------------------------------------------------------------------------


def test_a_read_timeout_is_a_daq_timeout_naming_the_operation(fake, daq):
    fake.fail("ai.read_many_sample", read_timeout())
    with pytest.raises(DaqTimeout, match=r"^write_and_read: timed out: Some or all of the samples .*-200284"):
        daq.write_and_read(MID_V, 1e-3, 10)
    assert not any(state.running for state in fake.states.values())


def test_the_step_after_a_timeout_runs(fake, daq):
    fake.fail("ai.read_many_sample", read_timeout())
    with pytest.raises(DaqTimeout):
        daq.write_and_read(MID_V, 1e-3, 10)
    fake.ai_samples = lambda n_channels, n: np.ones((n_channels, n))
    np.testing.assert_array_equal(daq.write_and_read(MID_V, 1e-3, 10), [1.0, 1.0])


def test_a_device_error_is_a_daq_error_but_not_a_timeout(fake, daq):
    fake.fail("ao.start", nidaqmx.errors.DaqError("Device has been removed.", -201003, task_name="gen2-sim-ao"))
    with pytest.raises(DaqError, match=r"^write_and_pulse: Device has been removed\.; Task Name: gen2-sim-ao") as e:
        daq.write_and_pulse(MID_V, 1e-3, 100e-6)
    assert not isinstance(e.value, DaqTimeout)
    assert isinstance(e.value.__cause__, nidaqmx.errors.DaqError)


def test_a_pulse_that_never_ends_is_a_daq_timeout(fake, daq):
    fake.fail(
        "co.wait_until_done",
        nidaqmx.errors.DaqError("Wait Until Done did not indicate done.", DAQmxErrors.WAIT_UNTIL_DONE_DOES_NOT_INDICATE_DONE),
    )
    with pytest.raises(DaqTimeout, match="^pulse: timed out"):
        daq.pulse(100e-6)
