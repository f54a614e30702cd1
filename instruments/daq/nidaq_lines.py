"""The NI-DAQmx driver's parts (see :mod:`instruments.daq.nidaq`): the learn line on a counter
or a digital line, the configure-once and sample-buffer helpers its tasks share, and the
translation of NI-DAQmx errors into :class:`~instruments.interfaces.DaqError`.
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
from nidaqmx.constants import AcquisitionType, Edge, Level, LineGrouping, SampleTimingType, TaskMode
from nidaqmx.error_codes import DAQmxErrors

from ..interfaces import DaqError, DaqTimeout
from ..wiring import Timing

log = logging.getLogger("instruments.daq.nidaq")

TIMEOUT_MARGIN_S = 1.0
"""Added to every hardware-timed operation's own duration for its timeout (s): covers task
start latency and the transfer of the last samples to the host. Also the timeout of a
static write."""

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


class Samples:
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


class Configured:
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


class CounterLine:
    """The learn line on a counter output: one finite pulse per start, which ends low in
    hardware (the counter's idle state) however the host fares."""

    hardware_timed = True
    kind = "counter"

    def __init__(self, task: Task, line: str, timing: Timing):
        self.task = task
        self.channel = task.co_channels.add_co_pulse_chan_time(
            line,
            idle_state=Level.LOW,
            initial_delay=timing.settle_s,
            low_time=timing.pulse_s,
            high_time=timing.pulse_s,
        )
        task.timing.cfg_implicit_timing(sample_mode=AcquisitionType.FINITE, samps_per_chan=1)
        self._config = Configured(task)

    @staticmethod
    def duration_s(delay_s: float, width_s: float) -> float:
        """How long one armed pulse lasts (s): the delay, the high time, and the low time
        that ends it (as long as the high time)."""
        return delay_s + 2 * width_s

    def arm(self, delay_s: float, width_s: float, trigger: str | None) -> float:
        """Start the pulse: high for ``width_s`` (s) ``delay_s`` (s) after ``trigger``'s edge
        (or after now when None); return how long the generation lasts (s)."""

        def configure() -> None:
            self.channel.co_pulse_time_initial_delay = delay_s
            self.channel.co_pulse_high_time = width_s
            # The low time only ends the one pulse; as short as the high time keeps the step short.
            self.channel.co_pulse_low_time = width_s
            start_on(self.task, trigger)

        self._config.ensure((delay_s, width_s, trigger), configure)
        self.task.start()
        return self.duration_s(delay_s, width_s)

    def idle(self) -> None:
        """A stopped counter rests at its idle state, low."""
        self.task.stop()

    def settings(self) -> dict:
        """The pulse as the counter channel reports it."""
        return {
            "learn.kind": self.kind,
            "learn.idle_state": self.channel.co_pulse_idle_state.name,
            "learn.pulse_high_s": float(self.channel.co_pulse_high_time),
            "learn.pulse_low_s": float(self.channel.co_pulse_low_time),
            "learn.initial_delay_s": float(self.channel.co_pulse_time_initial_delay),
        }


class DigitalLine:
    """The learn line on a digital output line: a hardware-timed low-high-low waveform, or
    with ``hardware_timed`` False, host-timed high and low writes."""

    kind = "digital"

    def __init__(self, task: Task, line: str, rate_hz: float, hardware_timed: bool):
        self.task = task
        self.hardware_timed = hardware_timed
        self._rate_hz = rate_hz
        task.do_channels.add_do_chan(line, line_grouping=LineGrouping.CHAN_PER_LINE)
        self._wave = np.zeros(0, bool)
        self._wave_periods = (0, 0)
        self._config = Configured(task)

    def duration_s(self, delay_s: float, width_s: float) -> float:
        """How long one pulse lasts (s): on the sample clock, whole periods and a last low
        sample; timed by the host, the width."""
        if not self.hardware_timed:
            return width_s
        return (clock_periods(delay_s, self._rate_hz) + clock_periods(width_s, self._rate_hz) + 1) / self._rate_hz

    def arm(self, delay_s: float, width_s: float, trigger: str | None) -> float:
        """As :meth:`CounterLine.arm`, on the sample clock: the pulse is rounded up to whole
        periods and always starts low for one at least, so the boards see a clean edge."""
        n_low = clock_periods(delay_s, self._rate_hz)
        n_high = clock_periods(width_s, self._rate_hz)
        # One low sample at the end: the line keeps its last sample after the generation.
        n = n_low + n_high + 1

        def configure() -> None:
            self.task.timing.cfg_samp_clk_timing(self._rate_hz, sample_mode=AcquisitionType.FINITE, samps_per_chan=n)
            start_on(self.task, trigger)

        self._config.ensure(("clocked", n_low, n_high, trigger), configure)
        if self._wave_periods != (n_low, n_high):
            self._wave = np.zeros(n, bool)
            self._wave[n_low : n_low + n_high] = True
            self._wave_periods = (n_low, n_high)
        self.task.write(self._wave, auto_start=False, timeout=TIMEOUT_MARGIN_S)
        self.task.start()
        return n / self._rate_hz

    def fire(self, width_s: float) -> None:
        """High for at least ``width_s`` (s), timed by the host. The driver calls it inside
        its learn-line guard, which drives the line low (:meth:`idle`) when an exception or a
        KeyboardInterrupt ends the pulse early."""
        self._on_demand()
        self.task.write(True)
        hold(width_s)
        self.task.write(False)

    def idle(self) -> None:
        self.task.stop()
        self._on_demand()
        self.task.write(False)

    def settings(self) -> dict:
        return {"learn.kind": self.kind, "learn.hardware_timed": self.hardware_timed}

    def _on_demand(self) -> None:
        def configure() -> None:
            self.task.timing.samp_timing_type = SampleTimingType.ON_DEMAND

        self._config.ensure("on demand", configure)


# -- helpers ---------------------------------------------------------------------------------


def device_of(channel: str) -> str:
    """The device of a physical channel: ``"PXI1Slot2/ao0"`` -> ``"PXI1Slot2"``."""
    return channel.split("/", 1)[0]


def start_on(task: Task, trigger: str | None) -> None:
    """Start ``task`` on a rising edge at terminal ``trigger``, or on ``start()`` when None."""
    if trigger is None:
        task.triggers.start_trigger.disable_start_trig()
    else:
        task.triggers.start_trigger.cfg_dig_edge_start_trig(trigger, trigger_edge=Edge.RISING)


def positive_s(name: str, value_s: float) -> float:
    if not (math.isfinite(value_s) and value_s > 0):
        raise DaqError(f"{name} must be a positive number of seconds, got {value_s!r}")
    return value_s


def count(name: str, n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise DaqError(f"{name} must be a whole number >= 1, got {n!r}")
    return int(n)


def hold(duration_s: float) -> None:
    """Wait at least ``duration_s`` (s), spinning: sleep's resolution (about a millisecond,
    more on Windows) is coarser than a learn pulse."""
    end = time.perf_counter() + duration_s
    while time.perf_counter() < end:
        pass


@contextmanager
def translated(operation: str) -> Iterator[None]:
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
def running(*tasks: Task) -> Iterator[None]:
    """Stop ``tasks`` on the way out. When an error is already on its way, a failing stop is
    only logged, so the error raised is the one that happened first."""
    try:
        yield
    except BaseException:
        for task in tasks:
            quietly(f"stopping task {task.name}", task.stop)
        raise
    for task in tasks:
        task.stop()


def quietly(what: str, action: Callable[[], object]) -> bool:
    """Run ``action``; log an NI-DAQmx failure (or this driver's DaqError) instead of raising
    it. True if it succeeded."""
    try:
        action()
    except (nidaqmx.errors.Error, DaqError) as e:
        log.warning("%s failed: %s", what, e)
        return False
    return True
