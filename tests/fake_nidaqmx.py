"""A stateful fake NI-DAQmx, autospecced from the installed ``nidaqmx`` package, for the driver's tests.

Every object the driver touches is made with ``create_autospec(<real class>, spec_set=True)``:
tasks, their channel collections and channels, timing, triggers, streams, the stream readers
and writers, the watchdog task, the system, its device collection and devices. A misspelt
method, a wrong argument or an assignment to a property the real class does not have fails
the test, exactly as it would fail on the bench. Calls are bound to the real signatures, so
defaults are the real defaults.

Behind the specs is a model of what NI-DAQmx and the devices do, each part from the
documents it follows; a wrong sequence raises the ``nidaqmx.errors.DaqError`` (``DaqReadError``,
``DaqWriteError``) with the status code real DAQmx uses (``nidaqmx.error_codes.DAQmxErrors``):

- devices (:mod:`instruments.daq.models`, from NI's specifications): product type, serial
  number and the physical channel lists (``ao_physical_chans``, ``ai_physical_chans``,
  ``co_physical_chans``, ``do_lines``), rates, ranges and ``do_trig_usage``; a channel the
  device does not have is ``PHYSICAL_CHAN_DOES_NOT_EXIST`` (-200170) at ``add_*_chan``, a
  value outside the device's range ``INVALID_ATTRIBUTE_VALUE`` (-200077), a sample clock
  faster than the device (aggregate over a multichannel AI task) ``SAMP_RATE_TOO_HIGH``
  (-200332), a sample clock on lines that are only software-timed
  ``BUFFERED_OPERATIONS_NOT_SUPPORTED_ON_SELECTED_LINES`` (-201062);
- the task state machine of the *NI-DAQmx Help*, "Task State Model": unverified, verified,
  reserved, committed, running; ``control(TaskMode.TASK_COMMIT)``; a stop returns a task to
  committed when it was committed explicitly, else to verified; configuring a task (timing,
  triggers, channel properties) takes it back to unverified, and is refused while it runs
  (``CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING`` -200479, a property ``CANNOT_SET_PROPERTY_WHEN_TASK_RUNNING``
  -200557); anything on a closed task is ``INVALID_TASK`` (-200088); closing twice only warns;
- timing ("Timing Types" and "Buffering" in the *NI-DAQmx Help*): a task is ``ON_DEMAND`` until
  ``cfg_samp_clk_timing`` (``SAMPLE_CLOCK``, with its sample mode, samples per channel and
  rate) or ``cfg_implicit_timing`` (``IMPLICIT``, counters only); ``timing.samp_timing_type``
  takes only a ``SampleTimingType`` (the real setter reads ``.value``: anything else is an
  AttributeError, another enum -200077); reading ``samp_clk_rate`` of a task not on a sample
  clock is ``ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT`` (-200452);
- the output buffer: a finite sample-clocked output task's buffer holds ``samps_per_chan``
  samples; its start needs them all written since it last ran (none: ``OUTPUT_BUFFER_EMPTY``
  -200462; some: ``NOT_ENOUGH_SAMPS_WRITTEN_FOR_INITIAL_XFER_RQST_CONDITION`` -200294),
  writing past it is ``CANNOT_WRITE_BEYOND_FINAL_FINITE_SAMPLE`` (-201132), a clocked output
  task without a buffer ``AO_BUFFER_SIZE_ZERO_FOR_SAMP_CLK_TIMING_TYPE`` (-200859). A one-sample
  write auto-starts the task (``write_one_sample``'s default, as the real writer): on an
  on-demand task it sets the outputs at once; on a clocked one it is one sample of the
  buffer and the start then fails. Stricter than DAQmx on one point, on purpose: DAQmx would
  regenerate a finite buffer written once; here every run needs its samples written again,
  since a driver that relies on stale samples writes a wrong waveform;
- start triggers: a task armed on ``/Dev/ao/StartTrigger`` starts when a task of that
  device's outputs starts; one whose trigger never comes times out (a read
  ``SAMPLES_NOT_YET_AVAILABLE`` -200284, a wait ``WAIT_UNTIL_DONE_DOES_NOT_INDICATE_DONE``
  -200560) after its timeout;
- reads and waits: reading more samples than a finite acquisition takes is
  ``SAMPLES_WILL_NEVER_BE_AVAILABLE`` (-200278); waiting on a task that never started is
  ``CANNOT_PERFORM_OP_WHEN_TASK_NOT_RUNNING`` (-200475; DAQmx may return at once there, the
  fake refuses it as the driver bug it is);
- counters (X Series User Manual, "Counters"): a pulse's high and low times between two
  ticks of the device's fastest timebase and a 32-bit count of its slowest, the initial
  delay 0 up to that, ``idle_state`` a ``Level``; out of range -200077;
- the watchdog (X Series User Manual, "Watchdog Timer"; *NI-DAQmx Help*, "Watchdog Timers"):
  a device without one is ``WATCHDOG_TIMER_NOT_SUPPORTED`` (-200662), a timeout outside
  0 .. (2^32 - 1) x 8 ns (and not -1) ``WATCHDOG_TIMEOUT_OUT_OF_RANGE_AND_NOT_SPECIAL_VAL``
  (-200668); analog expiration states on a device whose watchdog covers only digital lines (an
  X Series device) are ``ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT`` (-200452: DAQmxCfgWatchdogAOExpirStates
  sets the channels' AO expiration attributes, which such a device does not have); starting a
  watchdog while another task holds the device is
  ``CANT_RESERVE_WATCHDOG_TASK_WHILE_OTHER_TASKS_RESERVED`` (-201477). The fake's clock
  (:meth:`FakeNidaqmx.advance`; reads and waits advance it to the end of the acquisition,
  an on-demand analog write by the device's write time) expires a started watchdog not
  reset for its timeout: its outputs go to their expiration states, writes to them are
  ``WRITE_FAILED_BECAUSE_WATCHDOG_EXPIRED`` (-200678), a reset ``CANT_RESET_EXPIRED_WATCHDOG``
  (-200644), until ``clear_expiration``;
- levels: ``ao_levels`` (what every analog output holds, power-up 0 V) and ``line_high``
  (is a counter or digital line high now: a counter while its pulse runs; a digital line
  as last written, and high when a waveform with a high sample was stopped before its end).

For tests: every call that matters is appended to ``FakeNidaqmx.events`` as
``"<kind>.<method>"`` (the kind of a task is the kind of its channels: ``ao``, ``ai``, ``co``,
``do``; the watchdogs are ``watchdog``); ``FakeNidaqmx.fail(event, error)`` makes the next
such call raise ``error``; the writer keeps a copy of every analog write in ``writes``; the
reader fills the buffer with ``ai_samples(n_channels, n_samples)``; ``listeners`` see every
event. Use ``with installed(wiring) as fake:`` around the code under test: it patches the
names that the driver (``instruments.daq.nidaq`` and ``instruments.daq.nidaq_watchdog``)
imported from nidaqmx.

:class:`FakeNidaqmx` is put together here from one part per sibling module: the shared
pieces and the task record (``fake_nidaqmx_common``), the devices (``fake_nidaqmx_devices``),
the tasks, channels, timing and triggers (``fake_nidaqmx_tasks``), the task state model
(``fake_nidaqmx_states``), the writes and the stream readers and writers
(``fake_nidaqmx_streams``) and the watchdog (``fake_nidaqmx_watchdog``); this module holds
what tests ask of it, the clock, the record of events, and :func:`installed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from unittest import mock

import nidaqmx
import numpy as np
from fake_nidaqmx_common import STATES, TaskState, daq_error, spec
from fake_nidaqmx_devices import DevicesMixin
from fake_nidaqmx_states import StatesMixin
from fake_nidaqmx_streams import StreamsMixin
from fake_nidaqmx_tasks import TasksMixin
from fake_nidaqmx_watchdog import WatchdogMixin, WatchdogState
from nidaqmx.constants import Level
from nidaqmx.stream_readers import AnalogMultiChannelReader
from nidaqmx.stream_writers import AnalogMultiChannelWriter
from nidaqmx.system import System, WatchdogTask
from nidaqmx.system._collections.device_collection import DeviceCollection

from instruments.daq import models, nidaq, nidaq_watchdog
from instruments.wiring import Wiring

__all__ = ["STATES", "FakeNidaqmx", "TaskState", "WatchdogState", "daq_error", "installed", "spec"]


class FakeNidaqmx(DevicesMixin, TasksMixin, StatesMixin, StreamsMixin, WatchdogMixin):
    """The fake system: devices, the tasks the driver made, their states and what happened.

    Attributes:
        devices: device name -> autospecced ``Device``, as its model would report.
        device_models: device name -> its :class:`~instruments.daq.models.DaqModel`.
        system: the autospecced ``System`` that ``System.local()`` returns.
        tasks: every task made, in order; ``states[id(task)]`` is its :class:`TaskState`.
        watchdogs: device name -> autospecced ``WatchdogTask``; ``watchdog_states`` theirs.
        events: ``"<kind>.<method>"`` in call order.
        writes: ``(method, copy of the data)`` of every analog write, in order.
        ai_samples: ``(n_channels, n_samples) -> array`` that the reader copies into the
            driver's buffer; zeros unless a test says otherwise.
        listeners: called with every event and, for writes, the data written.
        now_s: the fake's clock (s).
        ao_levels: analog output channel -> what it holds now (V).
    """

    def __init__(self, wiring: Wiring):
        self.device_models = {name: models.MODELS.get(model) for name, model in wiring.daq_devices.items()}
        self.devices: dict[str, mock.NonCallableMagicMock] = {
            name: self._new_device(name, model, k) for k, (name, model) in enumerate(wiring.daq_devices.items())
        }
        collection = spec(DeviceCollection)
        collection.device_names = list(self.devices)
        collection.__getitem__.side_effect = lambda name: self.devices[name]
        self.system = spec(System)
        self.system.devices = collection
        self.tasks: list[mock.NonCallableMagicMock] = []
        self.states: dict[int, TaskState] = {}
        self.watchdogs: dict[str, mock.NonCallableMagicMock] = {}
        self.watchdog_states: dict[str, WatchdogState] = {}
        self.events: list[str] = []
        self.writes: list[tuple[str, np.ndarray]] = []
        self.ai_samples: Callable[[int, int], np.ndarray] = lambda n_channels, n: np.zeros((n_channels, n))
        self.listeners: list[Callable[[str, np.ndarray | None], None]] = []
        self.now_s = 0.0
        self.ao_levels = {ch: m.ao_power_up_v for d, m in self.device_models.items() if m
                          for ch in m.physical_channels(d, "ao")}
        self._do_levels: dict[str, bool] = {}
        self._failures: dict[str, BaseException] = {}
        self._streams: dict[int, TaskState] = {}

        self.Task = mock.create_autospec(nidaqmx.Task, side_effect=self._new_task)
        self.WatchdogTask = mock.create_autospec(WatchdogTask, side_effect=self._new_watchdog)
        self.System = mock.create_autospec(System)
        self.System.local.return_value = self.system
        self.AnalogMultiChannelReader = mock.create_autospec(AnalogMultiChannelReader, side_effect=self._new_reader)
        self.AnalogMultiChannelWriter = mock.create_autospec(AnalogMultiChannelWriter, side_effect=self._new_writer)

    # -- for tests ---------------------------------------------------------------------------
    def task(self, kind: str) -> mock.NonCallableMagicMock:
        """The one task whose channels are of ``kind`` (``"ao"``, ``"ai"``, ``"co"``, ``"do"``)."""
        (task,) = [t for t in self.tasks if self.states[id(t)].kind == kind]
        return task

    def state(self, kind: str) -> TaskState:
        return self.states[id(self.task(kind))]

    @property
    def reader(self) -> mock.NonCallableMagicMock:
        return self.AnalogMultiChannelReader.return_value

    @property
    def writer(self) -> mock.NonCallableMagicMock:
        return self.AnalogMultiChannelWriter.return_value

    def fail(self, event: str, error: BaseException) -> None:
        """The next call recorded as ``event`` (e.g. ``"ai.read_many_sample"``) raises ``error``."""
        self._failures[event] = error

    def count(self, event: str) -> int:
        return self.events.count(event)

    def advance(self, dt_s: float) -> None:
        """Let ``dt_s`` (s) pass on the fake's clock (a watchdog not reset expires)."""
        self._advance_to(self.now_s + dt_s)

    def line_high(self, line: str) -> bool:
        """Is the counter output or digital line ``line`` high now?"""
        for state in self.states.values():
            if line in state.physical and state.kind == "co":
                return state.running and state.start_s is not None and self.now_s < state.end_s
            if line in state.physical and state.kind == "do" and state.running and state.wave is not None:
                j = state.physical.index(line)
                return bool(state.wave[j].any()) if self.now_s < state.end_s else bool(state.wave[j, -1])
        return self._do_levels.get(line, False)

    # -- the clock ---------------------------------------------------------------------------
    def _advance_to(self, t_s: float) -> None:
        for wd in self.watchdog_states.values():
            if wd.running and not wd.expired and wd.timeout_s > 0 and t_s > wd.reset_s + wd.timeout_s:
                wd.expired = True
                self.ao_levels.update(wd.ao_states)
                self._do_levels.update({line: level == Level.HIGH for line, level in wd.do_states.items()})
        self.now_s = max(self.now_s, t_s)
        for state in self.states.values():
            if state.kind == "do" and state.running and state.wave is not None and self.now_s >= state.end_s:
                self._do_levels.update({line: bool(v) for line, v in zip(state.physical, state.wave[:, -1])})

    # -- recording ---------------------------------------------------------------------------
    def _record(self, event: str, data: np.ndarray | None = None) -> None:
        if event in self._failures:
            raise self._failures.pop(event)
        self.events.append(event)
        for listener in self.listeners:
            listener(event, data)


@contextmanager
def installed(wiring: Wiring) -> Iterator[FakeNidaqmx]:
    """Patch the nidaqmx names the driver uses with a :class:`FakeNidaqmx`."""
    fake = FakeNidaqmx(wiring)
    with mock.patch.multiple(
        nidaq,
        Task=fake.Task,
        System=fake.System,
        AnalogMultiChannelReader=fake.AnalogMultiChannelReader,
        AnalogMultiChannelWriter=fake.AnalogMultiChannelWriter,
    ), mock.patch.object(nidaq_watchdog, "WatchdogTask", fake.WatchdogTask):
        yield fake
