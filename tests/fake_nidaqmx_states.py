"""The nidaqmx fake's task state model (see :mod:`fake_nidaqmx`): ``control`` through
verified, reserved and committed; what a verify checks (the sample clock against the
devices); a start (the whole output buffer written), a start trigger that starts a task
when the outputs start, a stop (back to committed or verified), and a wait that times out
when the task would not be done in time.
"""

from __future__ import annotations

import math

from fake_nidaqmx_common import STATES, TaskState, daq_error, device_of
from nidaqmx.constants import AcquisitionType, SampleTimingType, TaskMode
from nidaqmx.error_codes import DAQmxErrors as E


class StatesMixin:
    """:class:`~fake_nidaqmx.FakeNidaqmx`'s task states (it holds ``states``, the clock
    ``now_s``, ``ao_levels`` and the digital lines' levels)."""

    def _control(self, state: TaskState, action) -> None:
        if not isinstance(action, TaskMode):
            raise AttributeError(f"{type(action).__name__!r} object has no attribute 'value'")
        if action in (TaskMode.TASK_VERIFY, TaskMode.TASK_RESERVE, TaskMode.TASK_COMMIT):
            self._verify(state)
            target = {TaskMode.TASK_VERIFY: "verified", TaskMode.TASK_RESERVE: "reserved",
                      TaskMode.TASK_COMMIT: "committed"}[action]
            if STATES.index(target) > STATES.index(state.state):
                state.state = target
            state.committed_explicitly = state.committed_explicitly or action == TaskMode.TASK_COMMIT
        elif action == TaskMode.TASK_START:
            self._start(state)
        elif action == TaskMode.TASK_STOP:
            self._stop(state)
        else:  # unreserve, abort
            self._stop(state)
            state.state = "verified"
            state.committed_explicitly = False

    def _verify(self, state: TaskState) -> None:
        """What DAQmx checks when it verifies a task: the sample clock against the devices."""
        if state.timing_type == SampleTimingType.ON_DEMAND and state.kind == "ao" and len(state.devices) > 1:
            raise daq_error("On Demand timing is not supported for multidevice tasks.",
                            E.MULTIDEVICE_WITH_ON_DEMAND_TIMING, state.name)
        if state.timing_type != SampleTimingType.SAMPLE_CLOCK:
            return
        if state.rate_hz is None:
            raise daq_error("Sample clock rate must be specified.", E.SAMP_CLK_RATE_MUST_BE_SPECD, state.name)
        for device in state.devices:
            m = self.device_models[device]
            on_device = [p for p in state.physical if device_of(p) == device]
            if state.kind == "ai":
                top = m.ai_max_rate_hz(len(on_device))
            elif state.kind == "ao":
                top = m.ao_rate_hz
            elif state.kind == "do":
                if not all(m.hw_timed_line(p) for p in on_device):
                    raise daq_error("Buffered operations are not supported on the selected lines.\n"
                                    f"Lines: {', '.join(on_device)}",
                                    E.BUFFERED_OPERATIONS_NOT_SUPPORTED_ON_SELECTED_LINES, state.name)
                top = math.inf
            else:
                top = math.inf
            if state.rate_hz > top:
                raise daq_error(f"Sample rate exceeds the maximum sample rate for the number of channels specified."
                                f"\nProperty: DAQmx_SampClk_Rate\nRequested Value: {state.rate_hz:g}\n"
                                f"Maximum Value: {top:g}\nDevice: {device}", E.SAMP_RATE_TOO_HIGH, state.name)

    def _duration_s(self, state: TaskState) -> float:
        if state.kind == "co" and state.timing_type == SampleTimingType.IMPLICIT:
            ch = state.channels[0]
            return ch.co_pulse_time_initial_delay + ch.co_pulse_high_time + ch.co_pulse_low_time
        if state.timing_type == SampleTimingType.SAMPLE_CLOCK and state.sample_mode == AcquisitionType.FINITE:
            return state.samps_per_chan / state.rate_hz
        return 0.0 if state.timing_type == SampleTimingType.ON_DEMAND else math.inf

    def _start(self, state: TaskState) -> None:
        if state.running:
            raise daq_error("Specified operation cannot be performed while the task is running.",
                            E.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING, state.name)
        if STATES.index(state.state) < STATES.index("committed"):
            self._verify(state)
        if state.output and state.timing_type == SampleTimingType.SAMPLE_CLOCK:
            if state.buffer_size == 0:
                raise daq_error("Output buffer size is zero, but the Sample Timing Type is Sample Clock.",
                                E.AO_BUFFER_SIZE_ZERO_FOR_SAMP_CLK_TIMING_TYPE, state.name)
            if state.written == 0:
                raise daq_error("Generation cannot be started because the output buffer is empty.\n"
                                "Write data before starting a buffered generation.", E.OUTPUT_BUFFER_EMPTY, state.name)
            if state.written < state.buffer_size:
                raise daq_error(f"Not enough samples were written to satisfy the initial data transfer request "
                                f"condition.\nSamples written: {state.written}; samples per channel: "
                                f"{state.buffer_size}", E.NOT_ENOUGH_SAMPS_WRITTEN_FOR_INITIAL_XFER_RQST_CONDITION,
                                state.name)
        state.state = "running"
        state.started = True
        state.start_s = None
        if state.trigger is None:
            self._begin(state)

    def _begin(self, state: TaskState) -> None:
        """The task really starts (now, or when its start trigger arrives)."""
        state.start_s = self.now_s
        state.end_s = self.now_s + self._duration_s(state)
        if state.kind == "ao" and state.wave is not None:
            self.ao_levels.update(zip(state.physical, state.wave[:, -1]))
        terminals = {f"/{device}/{state.kind}/StartTrigger" for device in state.devices}
        for other in self.states.values():
            if other.running and other.start_s is None and other.trigger in terminals:
                self._begin(other)

    def _stop(self, state: TaskState) -> None:
        if not state.running:
            return
        if state.kind == "do" and state.wave is not None:
            done = state.start_s is not None and self.now_s >= state.end_s
            levels = state.wave[:, -1] if done else state.wave.any(axis=1)
            self._do_levels.update({line: bool(v) for line, v in zip(state.physical, levels)})
        state.state = "committed" if state.committed_explicitly else "verified"
        if state.output and state.timing_type == SampleTimingType.SAMPLE_CLOCK:
            state.written = 0

    def _wait(self, state: TaskState, timeout: float) -> None:
        if not state.started:
            raise daq_error("Specified operation cannot be performed when the task is not running.\n"
                            "Start the task before requesting this operation.",
                            E.CANNOT_PERFORM_OP_WHEN_TASK_NOT_RUNNING, state.name)
        if not state.running or state.timing_type == SampleTimingType.ON_DEMAND:
            return
        if state.start_s is None or state.end_s - self.now_s > timeout:
            self.advance(timeout)
            raise daq_error("Wait Until Done did not indicate done within the specified timeout.",
                            E.WAIT_UNTIL_DONE_DOES_NOT_INDICATE_DONE, state.name)
        self._advance_to(state.end_s)
