"""The nidaqmx fake's stream readers and writers and the writes of a task (see
:mod:`fake_nidaqmx`): buffers checked as the real readers and writers check them, a read
refused past the end of a finite acquisition or timing out before its samples come, an
on-demand write setting the outputs at once, a clocked one filling the output buffer (not
past its end), auto-start as the real writers default it, and writes refused on outputs an
expired watchdog holds.
"""

from __future__ import annotations

import inspect
import math

import nidaqmx
import nidaqmx.errors
import numpy as np
from fake_nidaqmx_common import TaskState, daq_error
from nidaqmx.constants import READ_ALL_AVAILABLE, AcquisitionType, SampleTimingType
from nidaqmx.error_codes import DAQmxErrors as E
from nidaqmx.stream_writers import AUTO_START_UNSET

TASK_AUTO_START_UNSET = inspect.signature(nidaqmx.Task.write).parameters["auto_start"].default
"""``Task.write``'s own "auto start unset" default (the stream writers have another)."""


class StreamsMixin:
    """:class:`~fake_nidaqmx.FakeNidaqmx`'s writes and streams (it holds the streams' tasks,
    ``writes``, ``ai_samples`` and the reader and writer mocks)."""

    # -- writes ------------------------------------------------------------------------------
    def _write(self, state: TaskState, data: np.ndarray, auto_start: bool, method: str) -> int:
        """One write of ``data`` (channels, samples) to an output task, as DAQmx takes it."""
        if state.closed:
            raise daq_error("Task specified is invalid or does not exist.", E.INVALID_TASK, state.name)
        device = self._expired_for(state)
        if device is not None:
            raise daq_error(f"Write failed, because the watchdog timer expired.\nDevice: {device}",
                            E.WRITE_FAILED_BECAUSE_WATCHDOG_EXPIRED, state.name, nidaqmx.errors.DaqWriteError,
                            samps_per_chan_written=0)
        k = data.shape[-1]
        if state.timing_type != SampleTimingType.SAMPLE_CLOCK:
            if not state.running:
                self._verify(state)
            if state.kind == "ao":
                self.ao_levels.update(zip(state.physical, data[:, -1]))
                m = self.device_models[state.devices[0]]
                self._advance_to(self.now_s + m.ao_write_s * k)
            else:
                self._do_levels.update({line: bool(data[j, -1]) for j, line in enumerate(state.physical)})
            return k
        if state.buffer_size == 0:
            code = (E.AO_BUFFER_SIZE_ZERO_FOR_SAMP_CLK_TIMING_TYPE if auto_start
                    else E.CANNOT_WRITE_NOT_STARTED_AUTO_START_FALSE_NOT_ON_DEMAND_BUF_SIZE_ZERO)
            raise daq_error("Output buffer size is zero, but the Sample Timing Type is Sample Clock.", code,
                            state.name, nidaqmx.errors.DaqWriteError, samps_per_chan_written=0)
        if state.running or state.written + k > state.buffer_size:
            raise daq_error(f"Attempted to write beyond the final sample of a finite generation.\n"
                            f"Samples per channel: {state.buffer_size}; already written: {state.written}; "
                            f"writing: {k}", E.CANNOT_WRITE_BEYOND_FINAL_FINITE_SAMPLE, state.name,
                            nidaqmx.errors.DaqWriteError, samps_per_chan_written=0)
        wave = data if state.wave is None or state.written == 0 else np.concatenate([state.wave, data], axis=1)
        state.wave = np.array(wave, copy=True)
        state.written += k
        if auto_start:
            self._start(state)
        return k

    def _write_do(self, state: TaskState, data, auto_start) -> int:
        """``Task.write`` of a digital line: one value or a waveform; auto-start as the real
        ``write`` defaults it (only for a single sample)."""
        data = np.atleast_1d(np.asarray(data, dtype=bool))
        if auto_start is TASK_AUTO_START_UNSET:
            auto_start = data.size == 1
        return self._write(state, data.reshape(1, -1), bool(auto_start), "write")

    # -- streams -----------------------------------------------------------------------------
    def _new_reader(self, task_in_stream):
        state = self._streams[id(task_in_stream)]
        reader = self.AnalogMultiChannelReader.return_value

        def read_many_sample(data, number_of_samples_per_channel=READ_ALL_AVAILABLE, timeout=10.0):
            n = number_of_samples_per_channel
            check_buffer(data, (state.n_channels, n), state)
            self._record(f"{state.kind}.read_many_sample")
            finite = state.timing_type == SampleTimingType.SAMPLE_CLOCK and state.sample_mode == AcquisitionType.FINITE
            if finite and n > state.samps_per_chan:
                raise daq_error(f"Attempted to read samples that will never be available. Requested: {n}; "
                                f"samples per channel: {state.samps_per_chan}", E.SAMPLES_WILL_NEVER_BE_AVAILABLE,
                                state.name, nidaqmx.errors.DaqReadError, samps_per_chan_read=0)
            if not state.running:
                self._start(state)
            ready_s = math.inf if state.start_s is None else state.start_s + n / (state.rate_hz or math.inf)
            if ready_s - self.now_s > timeout:
                self.advance(timeout)
                raise daq_error("Some or all of the samples requested have not yet been acquired.",
                                E.SAMPLES_NOT_YET_AVAILABLE, state.name, nidaqmx.errors.DaqReadError,
                                samps_per_chan_read=0)
            self._advance_to(ready_s)
            data[:] = self.ai_samples(state.n_channels, n)
            return n

        reader.read_many_sample.side_effect = read_many_sample
        return reader

    def _new_writer(self, task_out_stream, auto_start=AUTO_START_UNSET):
        state = self._streams[id(task_out_stream)]
        writer = self.AnalogMultiChannelWriter.return_value

        def start_flag(default: bool) -> bool:
            return default if auto_start is AUTO_START_UNSET else bool(auto_start)

        def write_many_sample(data, timeout=10.0):
            check_buffer(data, (state.n_channels, data.shape[-1]), state)
            self._record(f"{state.kind}.write_many_sample", data)
            self.writes.append(("write_many_sample", data.copy()))
            return self._write(state, data, start_flag(False), "write_many_sample")

        def write_one_sample(data, timeout=10):
            check_buffer(data, (state.n_channels,), state)
            self._record(f"{state.kind}.write_one_sample", data)
            self.writes.append(("write_one_sample", data.copy()))
            self._write(state, data[:, None], start_flag(True), "write_one_sample")
            return 1

        writer.write_many_sample.side_effect = write_many_sample
        writer.write_one_sample.side_effect = write_one_sample
        return writer


def check_buffer(data, shape: tuple[int, ...], state: TaskState) -> None:
    """The real stream readers and writers check the shape and hand the buffer to C as
    contiguous float64; a buffer that would fail there fails here."""
    if state.closed:
        raise daq_error("Task specified is invalid or does not exist.", E.INVALID_TASK, state.name)
    if not isinstance(data, np.ndarray) or data.dtype != np.float64 or not data.flags.c_contiguous:
        raise TypeError(f"expected a C-contiguous float64 numpy array, got {type(data).__name__}")
    if data.shape != shape:
        raise daq_error(f"NumPy array is not shaped correctly: provided {data.shape}, required {shape}",
                        E.UNKNOWN, state.name)
