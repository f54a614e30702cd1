"""The NI-DAQmx driver against a fake nidaqmx autospecced from the installed package.

The tests pin down the exact DAQmx calls (channels, timing, triggers, buffers, order) and the
driver's behaviour (averaging after settling, refusals, error translation, safe state and
close). What only the bench can show is listed in the driver's module docstring.

The fake is strict enough that each of these mutations of the driver fails at least the tests
named (each was applied to instruments/daq/nidaq.py or nidaq_lines.py, the file run with
its hypothesis tests deselected, and reverted):

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
import json
import logging
import math
import re
from unittest.mock import call

import nidaqmx.errors
import numpy as np
import pytest
from fake_nidaqmx import installed
from hypothesis import given, settings
from hypothesis import strategies as st
from nidaqmx.constants import (
    AcquisitionType,
    Edge,
    Level,
    LineGrouping,
    SampleTimingType,
    TaskMode,
    TerminalConfiguration,
    WatchdogAOExpirState,
)
from nidaqmx.error_codes import DAQmxErrors
from nidaqmx.system import AOExpirationState, DOExpirationState

from instruments.daq import nidaq_lines
from instruments.daq.nidaq import NidaqDaq
from instruments.interfaces import BoundaryDaq, DaqError, DaqTimeout
from instruments.wiring import Input, Output, Wiring, default_wiring

WIRING = default_wiring("gen2")
TIMING = WIRING.timing
AO_START = "/PXI1Slot2/ao/StartTrigger"
N_AO, N_AI = len(WIRING.outputs), len(WIRING.inputs)
SAFE_V = np.array([o.safe_v for o in WIRING.outputs])
MID_V = np.array([(o.min_v + o.max_v) / 2 for o in WIRING.outputs])


@pytest.fixture
def fake():
    with installed(WIRING) as fake:
        yield fake


@pytest.fixture
def daq(fake):
    daq = NidaqDaq(WIRING)
    fake.events.clear()
    yield daq
    daq.close()


def periods(duration_s: float, rate_hz: float) -> int:
    """The fewest sample periods (>= 1) that last ``duration_s``, short by less than a
    millionth of a period at most (float products of durations and rates are not exact)."""
    k = 1
    while k < duration_s * rate_hz - 1e-6:
        k += 1
    return k


def read_timeout() -> nidaqmx.errors.DaqReadError:
    return nidaqmx.errors.DaqReadError(
        "Some or all of the samples requested have not yet been acquired.",
        DAQmxErrors.SAMPLES_NOT_YET_AVAILABLE,
        samps_per_chan_read=0,
        task_name="gen2-sim-ai",
    )


def in_order(events: list[str], *expected: str) -> bool:
    """True when ``expected`` occur in ``events`` in this order (other events between)."""
    it = iter(events)
    return all(e in it for e in expected)


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

ROWS = np.array([SAFE_V, MID_V, np.full(N_AO, 0.4)])


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

DIGITAL = dataclasses.replace(WIRING, learn_line="PXI1Slot3/port0/line0")


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


# == the fake is as strict as DAQmx ================================================================


@pytest.fixture
def task(fake):
    """A fresh AO task on the PXIe-6738 with two channels."""
    t = fake.Task("t")
    t.ao_channels.add_ao_voltage_chan("PXI1Slot2/ao0")
    t.ao_channels.add_ao_voltage_chan("PXI1Slot2/ao1")
    return t


def code(excinfo) -> int:
    return excinfo.value.error_code


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


def ao_levels(fake) -> np.ndarray:
    return np.array([fake.ao_levels[ch] for ch in WIRING.ao_channels])


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


def usb_wiring() -> Wiring:
    """The gen2 lattice with two sources and one target on one USB-6363 (3 outputs, 1 input)."""
    net = WIRING.network.with_roles(sources=["r0c0", "r2c2"], targets=["r1c1"], ground="r1c3")
    outputs = (Output("Dev1/ao0", "r0c0", "both", 0.0, 0.45), Output("Dev1/ao1", "r2c2", "both", 0.0, 0.45),
               Output("Dev1/ao2", "r1c1", "clamped", 0.0, 0.45))
    return Wiring(name="usb-bench", network=net, daq_devices={"Dev1": "USB-6363"}, outputs=outputs,
                  inputs=(Input("Dev1/ai0", "r1c1", "free", 1.0),), learn_line="Dev1/ctr0", boards=WIRING.boards,
                  timing=TIMING)


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


def ramped(wiring, step_v: float):
    return dataclasses.replace(wiring, outputs=tuple(dataclasses.replace(o, max_step_v=step_v) for o in wiring.outputs))


def static_writes(fake) -> np.ndarray:
    return np.array([data for method, data in fake.writes if method == "write_one_sample"])


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


# == the simulated DAQ agrees ================================================================================


def simulated(wiring, **kw):
    from instruments.sim.bench import DaqErrors, SimBench

    return SimBench(wiring, errors=DaqErrors.ideal(), **kw).daq


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
