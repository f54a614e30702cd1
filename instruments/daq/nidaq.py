"""The NI-DAQmx driver: a twin network's boundary on a real NI DAQ (:class:`NidaqDaq`).

A training step is two hardware-timed operations (see :mod:`instruments.interfaces`), both
built the same way: the AO task generates a finite waveform that holds the step's values,
and everything else (the AI acquisition, the learn pulse) starts on the AO task's start
trigger ``/{ao_device}/ao/StartTrigger``. The settle time is therefore counted by the
hardware from the moment the outputs change, not by the host. When the outputs and the
inputs sit in different slots of a PXIe chassis (the built-in benches: AO in PXI1Slot2, AI
and counters in PXI1Slot3), DAQmx routes that trigger over the PXI trigger bus itself. A
batch evaluation is one such operation too: the waveform holds each row in turn for its
settle and sampling periods, and one acquisition of the same length is cut into rows.

The tasks are made once, at open:

- AO: one voltage channel per wiring output with min/max = the output's safety limits, so
  DAQmx too refuses a value outside them (the third check, after the safety layer's and
  this driver's own).
- AI: one voltage channel per input, +-``range_v``, referenced single-ended (RSE). The
  wiring references every node to the DAQ's ground and numbers inputs up to the device's
  single-ended count (32 on a PXIe-6363); differential would halve that and need every
  AI- wired to the ground node.
- learn: on a counter (``Dev/ctr0``, its default output terminal is the learn line), one
  finite pulse high for the pulse width after an initial delay of the settle time; on a
  digital line (``Dev/port0/line0``), a hardware-timed low-high-low waveform, or, on a
  device whose digital lines take no start trigger, software-timed high/low writes.
- watchdog: one :class:`~nidaqmx.system.WatchdogTask` per output device, expiring to
  every output's safe value when no hardware operation has reset it for
  ``timing.watchdog_s``. It is started before the other tasks exist because some devices
  refuse to reserve a watchdog while other tasks hold the device.

A task is reconfigured and committed only when a call needs a different configuration
(another sample count or trigger) than the one it last ran with: a committed task starts
without DAQmx's verify/reserve/commit pass, which otherwise costs more than a step's settle
time. The sample buffers are likewise reused: each is a view of one store that grows only
when a call needs more samples than any before it.

Checked against the installed nidaqmx package and a fake autospecced from it
(``tests/fake_nidaqmx.py``), not yet on the bench: the cross-slot trigger routing, the
watchdog's AO expiration states on a PXIe-6738, the two-sample minimum of a finite read,
DAQmx's own refusal of an AO value outside min/max, and the commit-once speed-up.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

import nidaqmx.errors
import numpy as np
from nidaqmx import Task
from nidaqmx.constants import (
    AcquisitionType,
    Edge,
    Level,
    LineGrouping,
    SampleTimingType,
    TaskMode,
    TerminalConfiguration,
    TriggerUsage,
    WatchdogAOExpirState,
)
from nidaqmx.error_codes import DAQmxErrors
from nidaqmx.stream_readers import AnalogMultiChannelReader
from nidaqmx.stream_writers import AnalogMultiChannelWriter
from nidaqmx.system import AOExpirationState, System, WatchdogTask

from ..interfaces import DaqError, DaqTimeout
from ..wiring import Timing, Wiring

log = logging.getLogger(__name__)

TIMEOUT_MARGIN_S = 1.0
"""Added to every hardware-timed operation's own duration for its timeout (s): covers task
start latency and the transfer of the last samples to the host. Also the timeout of a
static write."""

_REFUSALS_LISTED = 5
"""Out-of-limit values named in a refusal; a batch may hold thousands."""

_TIMEOUT_CODES = frozenset(
    e.value
    for e in (
        DAQmxErrors.SAMPLES_NOT_YET_AVAILABLE,  # -200284: a read timed out
        DAQmxErrors.WAIT_UNTIL_DONE_DOES_NOT_INDICATE_DONE,
        DAQmxErrors.SAMPLES_CAN_NOT_YET_BE_WRITTEN,
        DAQmxErrors.OPERATION_TIMED_OUT,
    )
)


def clock_periods(duration_s: float, rate_hz: float) -> int:
    """Sample-clock periods that cover ``duration_s`` (s) at ``rate_hz`` (Hz), at least one.

    The outputs change on the first sample clock edge, the same edge that takes the first
    input sample, so even the shortest settle discards one sample. A shortfall under a
    millionth of a period counts as none: float products such as 1e-3 s x 100e3 Hz are not
    exact, and that one must give 100 periods, not 101.
    """
    return max(1, math.ceil(duration_s * rate_hz - 1e-6))


class NidaqDaq:
    """A :class:`~instruments.interfaces.BoundaryDaq` on NI-DAQmx hardware.

    ``NidaqDaq(wiring)`` (or ``NidaqDaq.open(wiring)``) checks that every device of
    ``wiring.daq_devices`` is present and is the model the wiring names, starts the
    watchdogs, makes the tasks and drives every output to its safe value. ``system`` is the
    DAQmx system the devices are looked up in (default: the local one).

    Every value array is float64 in volts, in ``ao_channels`` / ``ai_channels`` order.
    Failures raise :class:`~instruments.interfaces.DaqError` (a timeout:
    :class:`~instruments.interfaces.DaqTimeout`) naming the operation, and the channel
    where one is to blame; NI-DAQmx's own message (with its task and channel names and
    status code) follows.
    """

    def __init__(self, wiring: Wiring, *, system: System | None = None):
        if not wiring.outputs or not wiring.inputs:
            raise DaqError(f"wiring {wiring.name}: the DAQ needs at least one output and one input")
        self.ao_channels: tuple[str, ...] = wiring.ao_channels
        self.ai_channels: tuple[str, ...] = wiring.ai_channels
        self._wiring = wiring
        self._timing: Timing = wiring.timing
        self._rate_hz = float(wiring.timing.sample_rate_hz)
        self._min_v = np.array([o.min_v for o in wiring.outputs], np.float64)
        self._max_v = np.array([o.max_v for o in wiring.outputs], np.float64)
        self._safe_v = np.array([o.safe_v for o in wiring.outputs], np.float64)
        self._ao_start = f"/{_device(self.ao_channels[0])}/ao/StartTrigger"
        self._system = System.local() if system is None else system
        self._closed = False
        self._watchdogs: list[WatchdogTask] = []
        self._tasks: list[Task] = []
        self._ao_samples = _Samples(len(self.ao_channels))
        self._ai_samples = _Samples(len(self.ai_channels))
        self._ao_buf = self._ao_samples.shaped(0)
        self._ai_buf = self._ai_samples.shaped(0)
        try:
            self._check_devices()
            self._start_watchdogs()
            self._ao = self._new_task("ao")
            for o in wiring.outputs:
                with _translated(f"open: adding output {o.channel}"):
                    self._ao.ao_channels.add_ao_voltage_chan(o.channel, min_val=o.min_v, max_val=o.max_v)
            self._ai = self._new_task("ai")
            for i in wiring.inputs:
                with _translated(f"open: adding input {i.channel}"):
                    self._ai.ai_channels.add_ai_voltage_chan(
                        i.channel, terminal_config=TerminalConfiguration.RSE, min_val=-i.range_v, max_val=i.range_v
                    )
            self._learn = self._learn_line(self._new_task("learn"))
            self._ao_writer = AnalogMultiChannelWriter(self._ao.out_stream)
            self._ai_reader = AnalogMultiChannelReader(self._ai.in_stream)
            self._ao_config = _Configured(self._ao)
            self._ai_config = _Configured(self._ai)
            self.safe_state()
        except BaseException:
            self._release()
            raise

    @classmethod
    def open(cls, wiring: Wiring, *, system: System | None = None) -> NidaqDaq:
        """The DAQ of ``wiring``, open, its outputs at their safe values (see the class)."""
        return cls(wiring, system=system)

    def __enter__(self) -> NidaqDaq:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- BoundaryDaq -----------------------------------------------------------------------
    def write(self, values_v: np.ndarray) -> None:
        """Set every output (V) now, software-timed; shape ``(len(ao_channels),)``."""
        with self._operation("write"):
            values_v = self._checked(values_v)
            self._kick()
            self._write_static(values_v)

    def read(self, n_samples: int = 1) -> np.ndarray:
        """Mean of ``n_samples`` samples per input (V) at ``timing.sample_rate_hz``."""
        with self._operation("read"):
            n_samples = _count("n_samples", n_samples)
            # Some devices refuse a finite acquisition of a single sample; the extra one is dropped.
            n = max(2, n_samples)
            timeout_s = self._duration_s("read", n) + TIMEOUT_MARGIN_S
            self._clock_ai(n, None)
            self._kick()
            with _running(self._ai):
                self._ai.start()
                self._ai_reader.read_many_sample(self._ai_buf, number_of_samples_per_channel=n, timeout=timeout_s)
            return self._ai_buf[:, :n_samples].mean(axis=1)

    def pulse(self, width_s: float) -> None:
        """One high pulse of ``width_s`` (s) on the learn line, now."""
        with self._operation("pulse"):
            _positive_s("width_s", width_s)
            self._kick()
            if not self._learn.hardware_timed:
                self._learn.fire(width_s)
                return
            learn = self._learn.task
            with _running(learn):
                duration_s = self._learn.arm(0.0, width_s, None)
                learn.wait_until_done(timeout=duration_s + TIMEOUT_MARGIN_S)

    def write_and_read(self, values_v: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """Write every output (V), and from the same start trigger sample every input for
        ``settle_s`` (s) plus ``n_samples`` sample periods; return the mean per input (V) of
        the ``n_samples`` taken after settling."""
        with self._operation("write_and_read"):
            rows = self._checked(values_v)[None, :]
            return self._acquire("write_and_read", rows, settle_s, n_samples)[0]

    def write_and_read_many(self, values_v: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """Step the outputs through the rows of ``values_v`` (V), shape ``(B, len(ao_channels))``,
        each held for ``settle_s`` (s) plus ``n_samples`` sample periods, while every input is
        sampled from the same start trigger; return the mean per row and input (V), shape
        ``(B, len(ai_channels))``, of each row's ``n_samples`` taken after settling."""
        with self._operation("write_and_read_many"):
            rows = self._checked_rows(values_v)
            return self._acquire(f"write_and_read_many of {rows.shape[0]} rows", rows, settle_s, n_samples)

    def _acquire(self, what: str, rows: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """One hardware-timed operation: the outputs step through ``rows`` (B, n_ao), each
        held for the settle and the samples; the inputs' per-row means after settling (B, n_ai)."""
        n_settle = clock_periods(_positive_s("settle_s", settle_s), self._rate_hz)
        n_row = n_settle + _count("n_samples", n_samples)
        n_batch = rows.shape[0]
        n = n_batch * n_row
        timeout_s = self._duration_s(what, n) + TIMEOUT_MARGIN_S
        self._clock_ao(n)
        self._clock_ai(n, self._ao_start)
        self._ao_buf.reshape(len(self.ao_channels), n_batch, n_row)[:] = rows.T[:, :, None]
        self._kick()
        self._ao_writer.write_many_sample(self._ao_buf, timeout=timeout_s)
        with _running(self._ai, self._ao):
            self._ai.start()
            self._ao.start()
            self._ai_reader.read_many_sample(self._ai_buf, number_of_samples_per_channel=n, timeout=timeout_s)
            self._ao.wait_until_done(timeout=timeout_s)
        per_row = self._ai_buf.reshape(len(self.ai_channels), n_batch, n_row)
        return np.ascontiguousarray(per_row[:, :, n_settle:].mean(axis=2).T)

    def write_and_pulse(self, values_v: np.ndarray, settle_s: float, width_s: float) -> None:
        """Write every output (V) and, ``settle_s`` (s) after the outputs change, pulse the
        learn line high for ``width_s`` (s). On a digital learn line without hardware timing
        the settle and the pulse are timed by the host (at least as long as asked)."""
        with self._operation("write_and_pulse"):
            values_v = self._checked(values_v)
            _positive_s("settle_s", settle_s)
            _positive_s("width_s", width_s)
            if not self._learn.hardware_timed:
                self._kick()
                self._write_static(values_v)
                _hold(settle_s)
                self._learn.fire(width_s)
                return
            n = clock_periods(settle_s, self._rate_hz) + clock_periods(width_s, self._rate_hz)
            timeout_s = self._duration_s("write_and_pulse", n) + width_s + TIMEOUT_MARGIN_S
            self._clock_ao(n)
            self._ao_buf[:] = values_v[:, None]
            self._kick()
            self._ao_writer.write_many_sample(self._ao_buf, timeout=timeout_s)
            learn = self._learn.task
            with _running(learn, self._ao):
                self._learn.arm(settle_s, width_s, self._ao_start)
                self._ao.start()
                self._ao.wait_until_done(timeout=timeout_s)
                learn.wait_until_done(timeout=timeout_s)

    def safe_state(self) -> None:
        """Stop whatever runs, write every output's ``safe_v`` and idle the learn line low.

        Every step is tried even when an earlier one fails (each failure is logged); only a
        failure to write the safe values raises, after the other steps. On a closed DAQ this
        only logs: closing already left the outputs safe.
        """
        if self._closed:
            log.info("safe_state: the DAQ of %s is closed", self._wiring.name)
            return
        _quietly("safe state: resetting the watchdog", self._kick)
        _quietly("safe state: stopping the output task", self._ao.stop)
        written = _quietly("safe state: writing the safe values", lambda: self._write_static(self._safe_v))
        _quietly("safe state: idling the learn line", self._learn.idle)
        _quietly("safe state: stopping the input task", self._ai.stop)
        if not written:
            raise DaqError(
                f"safe state: could not write the safe values to {', '.join(self.ao_channels)} "
                f"(see the log); the watchdog drives them there after {self._timing.watchdog_s:g} s"
            )

    def identity(self) -> str:
        """Every device's product type and serial number, e.g.
        ``"PXI1Slot2: NI PXIe-6738 SN 01F2A3B4; PXI1Slot3: NI PXIe-6363 SN 01E0C0DE"``."""
        with _translated("identity"):
            parts = []
            for name in self._wiring.daq_devices:
                device = self._system.devices[name]
                parts.append(f"{name}: NI {device.product_type} SN {device.serial_num:08X}")
            return "; ".join(parts)

    def close(self) -> None:
        """Safe state, then close every task and last the watchdogs (idempotent).

        Everything is released even when the safe state fails; that failure is raised
        afterwards, so the caller knows the outputs may not be safe.
        """
        if self._closed:
            return
        failure = None
        try:
            self.safe_state()
        except DaqError as e:
            failure = e
        self._closed = True
        self._release()
        if failure is not None:
            raise failure

    # -- open and close --------------------------------------------------------------------
    def _check_devices(self) -> None:
        with _translated("open: listing the DAQ devices"):
            present = set(self._system.devices.device_names)
        for name, model in self._wiring.daq_devices.items():
            if name not in present:
                listed = ", ".join(sorted(present)) or "none"
                raise DaqError(f"DAQ device {name} ({model}) not found; present: {listed}")
            with _translated(f"open: identifying {name}"):
                product = self._system.devices[name].product_type
            if product != model:
                raise DaqError(f"DAQ device {name} is a {product}, but wiring {self._wiring.name} says {model}")

    def _start_watchdogs(self) -> None:
        by_device: dict[str, list[AOExpirationState]] = {}
        for o in self._wiring.outputs:
            state = AOExpirationState(o.channel, o.safe_v, WatchdogAOExpirState.VOLTAGE)
            by_device.setdefault(_device(o.channel), []).append(state)
        for device, states in by_device.items():
            with _translated(f"open: watchdog on {device}"):
                watchdog = WatchdogTask(
                    device, task_name=f"{self._wiring.name}-watchdog-{device}", timeout=self._timing.watchdog_s
                )
                self._watchdogs.append(watchdog)
                watchdog.cfg_watchdog_ao_expir_states(states)
                watchdog.start()

    def _new_task(self, role: str) -> Task:
        with _translated(f"open: creating the {role} task"):
            task = Task(f"{self._wiring.name}-{role}")
        self._tasks.append(task)
        return task

    def _learn_line(self, task: Task) -> _CounterLine | _DigitalLine:
        line = self._wiring.learn_line
        with _translated(f"open: learn line {line}"):
            if "/ctr" in line:
                return _CounterLine(task, line, self._timing)
            if "/port" in line:
                usage = self._system.devices[_device(line)].do_trig_usage
                return _DigitalLine(task, line, self._rate_hz, TriggerUsage.START in usage)
        raise DaqError(f"learn line {line!r} is neither a counter (Dev/ctr0) nor a digital line (Dev/port0/line0)")

    def _release(self) -> None:
        """Close every task, then stop and close the watchdogs, last so that they guard the
        outputs to the end; a failure is logged and the rest are still released."""
        for task in reversed(self._tasks):
            _quietly(f"closing task {task.name}", task.close)
        for watchdog in self._watchdogs:
            _quietly("stopping the watchdog", watchdog.stop)
            _quietly("closing the watchdog", watchdog.close)
        self._tasks.clear()
        self._watchdogs.clear()

    # -- operations ------------------------------------------------------------------------
    @contextmanager
    def _operation(self, name: str) -> Iterator[None]:
        if self._closed:
            raise DaqError(f"{name}: the DAQ of {self._wiring.name} is closed")
        with _translated(name):
            yield

    def _checked(self, values_v: np.ndarray) -> np.ndarray:
        """``values_v`` as contiguous float64, refused (DaqError, nothing written) unless it
        has one value per output, each inside that output's limits."""
        values_v = np.ascontiguousarray(values_v, dtype=np.float64)
        if values_v.shape != self._min_v.shape:
            raise DaqError(f"expected {self._min_v.size} output values (one per AO channel), got shape {values_v.shape}")
        self._refuse_outside(values_v[None], row_named=False)
        return values_v

    def _checked_rows(self, values_v: np.ndarray) -> np.ndarray:
        """``values_v`` as float64 rows ``(B, n_ao)``, B >= 1, refused (DaqError naming each
        bad row, channel and value; nothing written) unless every value is inside its
        output's limits."""
        rows = np.asarray(values_v, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] != self._min_v.size:
            raise DaqError(
                f"expected output values of shape (B, {self._min_v.size}) with B >= 1 "
                f"(one row per step, one column per AO channel), got shape {rows.shape}"
            )
        self._refuse_outside(rows, row_named=True)
        return rows

    def _refuse_outside(self, rows: np.ndarray, *, row_named: bool) -> None:
        bad = np.argwhere(~((rows >= self._min_v) & (rows <= self._max_v)))
        if not bad.size:
            return
        refused = [
            f"{f'row {r}: ' if row_named else ''}{self.ao_channels[k]} = {float(rows[r, k])!r} V "
            f"is outside its limits {self._min_v[k]:g}..{self._max_v[k]:g} V"
            for r, k in bad[:_REFUSALS_LISTED]
        ]
        if len(bad) > _REFUSALS_LISTED:
            refused.append(f"and {len(bad) - _REFUSALS_LISTED} more")
        raise DaqError("refused, nothing written: " + "; ".join(refused))

    def _duration_s(self, name: str, n_samples: int) -> float:
        """How long ``n_samples`` sample periods last (s); refused if the watchdog would expire
        while they run."""
        duration_s = n_samples / self._rate_hz
        if duration_s >= self._timing.watchdog_s:
            raise DaqError(
                f"{name}: {n_samples} samples at {self._rate_hz:g} Hz take {duration_s:g} s, "
                f"not less than the {self._timing.watchdog_s:g} s watchdog"
            )
        return duration_s

    def _kick(self) -> None:
        for watchdog in self._watchdogs:
            watchdog.reset_timer()

    def _write_static(self, values_v: np.ndarray) -> None:
        self._ao_config.ensure("on demand", self._ao_on_demand)
        self._ao_writer.write_one_sample(values_v, timeout=TIMEOUT_MARGIN_S)

    def _ao_on_demand(self) -> None:
        self._ao.timing.samp_timing_type = SampleTimingType.ON_DEMAND

    def _clock_ao(self, n_samples: int) -> None:
        self._ao_config.ensure(
            ("clocked", n_samples),
            lambda: self._ao.timing.cfg_samp_clk_timing(
                self._rate_hz, sample_mode=AcquisitionType.FINITE, samps_per_chan=n_samples
            ),
        )
        self._ao_buf = self._ao_samples.shaped(n_samples)

    def _clock_ai(self, n_samples: int, trigger: str | None) -> None:
        def configure() -> None:
            self._ai.timing.cfg_samp_clk_timing(
                self._rate_hz, sample_mode=AcquisitionType.FINITE, samps_per_chan=n_samples
            )
            _start_on(self._ai, trigger)

        self._ai_config.ensure(("clocked", n_samples, trigger), configure)
        self._ai_buf = self._ai_samples.shaped(n_samples)


class _Samples:
    """A task's sample buffer, ``(n_channels, n_samples)`` float64: the stream readers and
    writers need it C-contiguous and shaped exactly, so it is a view of one flat store,
    which grows only when a call needs more samples than any before it (a smaller batch
    after a larger one allocates nothing)."""

    def __init__(self, n_channels: int):
        self._n_channels = n_channels
        self._store = np.empty(0)
        self._view = self._store.reshape(n_channels, 0)

    def shaped(self, n_samples: int) -> np.ndarray:
        """The buffer for ``n_samples`` per channel; the same array while the count stays."""
        if self._view.shape[1] != n_samples:
            size = self._n_channels * n_samples
            if self._store.size < size:
                self._store = np.empty(size)
            self._view = self._store[:size].reshape(self._n_channels, n_samples)
        return self._view


class _Configured:
    """A task and the configuration key it was last committed with."""

    def __init__(self, task: Task):
        self.task = task
        self._key: Hashable = None

    def ensure(self, key: Hashable, configure: Callable[[], None]) -> None:
        """Run ``configure`` and commit, unless the task already runs with ``key``."""
        if key == self._key:
            return
        # A configuration that fails half-way leaves the task in an unknown one.
        self._key = None
        configure()
        self.task.control(TaskMode.TASK_COMMIT)
        self._key = key


class _CounterLine:
    """The learn line on a counter output: one finite pulse per start."""

    hardware_timed = True

    def __init__(self, task: Task, line: str, timing: Timing):
        self.task = task
        self._channel = task.co_channels.add_co_pulse_chan_time(
            line,
            idle_state=Level.LOW,
            initial_delay=timing.settle_s,
            low_time=timing.pulse_s,
            high_time=timing.pulse_s,
        )
        task.timing.cfg_implicit_timing(sample_mode=AcquisitionType.FINITE, samps_per_chan=1)
        self._config = _Configured(task)

    def arm(self, delay_s: float, width_s: float, trigger: str | None) -> float:
        """Start the pulse: high for ``width_s`` (s) ``delay_s`` (s) after ``trigger``'s edge
        (or after now when None); return how long the generation lasts (s)."""

        def configure() -> None:
            self._channel.co_pulse_time_initial_delay = delay_s
            self._channel.co_pulse_high_time = width_s
            # The low time only ends the one pulse; as short as the high time keeps the step short.
            self._channel.co_pulse_low_time = width_s
            _start_on(self.task, trigger)

        self._config.ensure((delay_s, width_s, trigger), configure)
        self.task.start()
        return delay_s + 2 * width_s

    def idle(self) -> None:
        """A stopped counter rests at its idle state, low."""
        self.task.stop()


class _DigitalLine:
    """The learn line on a digital output line: a hardware-timed low-high-low waveform, or
    with ``hardware_timed`` False, host-timed high and low writes."""

    def __init__(self, task: Task, line: str, rate_hz: float, hardware_timed: bool):
        self.task = task
        self.hardware_timed = hardware_timed
        self._rate_hz = rate_hz
        task.do_channels.add_do_chan(line, line_grouping=LineGrouping.CHAN_PER_LINE)
        self._wave = np.zeros(0, bool)
        self._wave_periods = (0, 0)
        self._config = _Configured(task)

    def arm(self, delay_s: float, width_s: float, trigger: str | None) -> float:
        """As :meth:`_CounterLine.arm`, on the sample clock: the pulse is rounded up to whole
        periods and always starts low for one at least, so the boards see a clean edge."""
        n_low = clock_periods(delay_s, self._rate_hz)
        n_high = clock_periods(width_s, self._rate_hz)
        # One low sample at the end: the line keeps its last sample after the generation.
        n = n_low + n_high + 1

        def configure() -> None:
            self.task.timing.cfg_samp_clk_timing(self._rate_hz, sample_mode=AcquisitionType.FINITE, samps_per_chan=n)
            _start_on(self.task, trigger)

        self._config.ensure(("clocked", n_low, n_high, trigger), configure)
        if self._wave_periods != (n_low, n_high):
            self._wave = np.zeros(n, bool)
            self._wave[n_low : n_low + n_high] = True
            self._wave_periods = (n_low, n_high)
        self.task.write(self._wave, auto_start=False, timeout=TIMEOUT_MARGIN_S)
        self.task.start()
        return n / self._rate_hz

    def fire(self, width_s: float) -> None:
        """High for at least ``width_s`` (s), timed by the host."""
        self._on_demand()
        self.task.write(True)
        _hold(width_s)
        self.task.write(False)

    def idle(self) -> None:
        self.task.stop()
        self._on_demand()
        self.task.write(False)

    def _on_demand(self) -> None:
        def configure() -> None:
            self.task.timing.samp_timing_type = SampleTimingType.ON_DEMAND

        self._config.ensure("on demand", configure)


# -- helpers ---------------------------------------------------------------------------------


def _device(channel: str) -> str:
    """The device of a physical channel: ``"PXI1Slot2/ao0"`` -> ``"PXI1Slot2"``."""
    return channel.split("/", 1)[0]


def _start_on(task: Task, trigger: str | None) -> None:
    """Start ``task`` on a rising edge at terminal ``trigger``, or on ``start()`` when None."""
    if trigger is None:
        task.triggers.start_trigger.disable_start_trig()
    else:
        task.triggers.start_trigger.cfg_dig_edge_start_trig(trigger, trigger_edge=Edge.RISING)


def _positive_s(name: str, value_s: float) -> float:
    if not (math.isfinite(value_s) and value_s > 0):
        raise DaqError(f"{name} must be a positive number of seconds, got {value_s!r}")
    return value_s


def _count(name: str, n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise DaqError(f"{name} must be a whole number >= 1, got {n!r}")
    return int(n)


def _hold(duration_s: float) -> None:
    """Wait at least ``duration_s`` (s), spinning: sleep's resolution (about a millisecond,
    more on Windows) is coarser than a learn pulse."""
    end = time.perf_counter() + duration_s
    while time.perf_counter() < end:
        pass


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """NI-DAQmx errors raised inside become our DaqError (a timeout: DaqTimeout) that name
    ``operation``; NI's message, with its task, channel and status code, follows."""
    try:
        yield
    except nidaqmx.errors.DaqError as e:
        kind = DaqTimeout if e.error_code in _TIMEOUT_CODES else DaqError
        detail = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise kind(f"{operation}: {'timed out: ' if kind is DaqTimeout else ''}{detail}") from e
    except nidaqmx.errors.Error as e:
        # e.g. DaqNotFoundError: the NI-DAQmx driver itself is not installed.
        raise DaqError(f"{operation}: {e}") from e


@contextmanager
def _running(*tasks: Task) -> Iterator[None]:
    """Stop ``tasks`` on the way out. When an error is already on its way, a failing stop is
    only logged, so the error raised is the one that happened first."""
    try:
        yield
    except BaseException:
        for task in tasks:
            _quietly(f"stopping task {task.name}", task.stop)
        raise
    for task in tasks:
        task.stop()


def _quietly(what: str, action: Callable[[], object]) -> bool:
    """Run ``action``; log an NI-DAQmx failure instead of raising it. True if it succeeded."""
    try:
        action()
    except nidaqmx.errors.Error as e:
        log.warning("%s failed: %s", what, e)
        return False
    return True
