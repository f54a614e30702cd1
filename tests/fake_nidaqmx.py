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
names that ``instruments.daq.nidaq`` imported from nidaqmx.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from unittest import mock

import nidaqmx
import nidaqmx.errors
import numpy as np
from nidaqmx.constants import (
    READ_ALL_AVAILABLE,
    AcquisitionType,
    Edge,
    Level,
    SampleTimingType,
    TaskMode,
    TerminalConfiguration,
    TriggerUsage,
)
from nidaqmx.error_codes import DAQmxErrors as E
from nidaqmx.stream_readers import AnalogMultiChannelReader
from nidaqmx.stream_writers import AUTO_START_UNSET, AnalogMultiChannelWriter
from nidaqmx.system import Device, System, WatchdogTask
from nidaqmx.system._collections.device_collection import DeviceCollection
from nidaqmx.system._collections.physical_channel_collection import PhysicalChannelCollection
from nidaqmx.task import InStream, OutStream, Timing
from nidaqmx.task.channels import AIChannel, AOChannel, COChannel, DOChannel
from nidaqmx.task.collections import AIChannelCollection, AOChannelCollection, COChannelCollection, DOChannelCollection
from nidaqmx.task.triggering import StartTrigger, Triggers

from instruments.daq import models, nidaq
from instruments.wiring import Wiring

_TASK_AUTO_START_UNSET = inspect.signature(nidaqmx.Task.write).parameters["auto_start"].default
"""``Task.write``'s own "auto start unset" default (the stream writers have another)."""

STATES = ("unverified", "verified", "reserved", "committed", "running")
"""The task states of the NI-DAQmx task state model, in order."""


def spec(cls):
    """An instance of ``cls`` as a strict autospec: unknown names fail to get and to set."""
    return mock.create_autospec(cls, instance=True, spec_set=True)


def daq_error(message: str, code: E, task_name: str = "", cls=nidaqmx.errors.DaqError, **extra):
    """The error real nidaqmx raises for status ``code`` (message, task name and code as
    nidaqmx formats them)."""
    return cls(message, code, task_name=task_name, **extra)


def _bound(real: Callable, args: tuple, kwargs: dict) -> dict:
    """The call's arguments by name, the real defaults filled in."""
    bound = inspect.signature(real).bind(None, *args, **kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.pop("self", None)
    return out


def _device(channel: str) -> str:
    return channel.lstrip("/").split("/", 1)[0]


@dataclass
class TaskState:
    """What DAQmx knows about one task (see the module docstring for the model)."""

    name: str
    kind: str = "task"
    state: str = "unverified"
    closed: bool = False
    channels: list = field(default_factory=list)
    physical: list = field(default_factory=list)
    timing_type: SampleTimingType = SampleTimingType.ON_DEMAND
    sample_mode: AcquisitionType = AcquisitionType.FINITE
    samps_per_chan: int = 1000
    rate_hz: float | None = None
    buffer_size: int = 0
    written: int = 0
    wave: np.ndarray | None = None
    trigger: str | None = None
    started: bool = False
    committed_explicitly: bool = False
    start_s: float | None = None
    end_s: float = math.inf

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def devices(self) -> list[str]:
        return list(dict.fromkeys(_device(p) for p in self.physical))

    @property
    def output(self) -> bool:
        return self.kind in ("ao", "do")


@dataclass
class WatchdogState:
    """One watchdog timer task."""

    device: str
    name: str
    timeout_s: float
    running: bool = False
    closed: bool = False
    expired: bool = False
    reset_s: float = 0.0
    ao_states: dict = field(default_factory=dict)
    do_states: dict = field(default_factory=dict)


class FakeNidaqmx:
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

    def _expired_for(self, state: TaskState) -> str | None:
        for wd in self.watchdog_states.values():
            guarded = set(wd.ao_states) | set(wd.do_states)
            if wd.expired and guarded & set(state.physical):
                return wd.device
        return None

    # -- recording ---------------------------------------------------------------------------
    def _record(self, event: str, data: np.ndarray | None = None) -> None:
        if event in self._failures:
            raise self._failures.pop(event)
        self.events.append(event)
        for listener in self.listeners:
            listener(event, data)

    # -- devices -----------------------------------------------------------------------------
    def _new_device(self, name: str, model_name: str, k: int):
        m = models.MODELS.get(model_name)
        device = spec(Device)
        device.name = name
        device.product_type = model_name
        device.serial_num = 0x01F2A3B0 + k
        for attribute, kind in (("ao_physical_chans", "ao"), ("ai_physical_chans", "ai"),
                                ("co_physical_chans", "co"), ("do_lines", "do")):
            _on_first_use(device, attribute, functools.partial(_channel_list, m, name, kind))
        if m is not None:
            device.ai_max_single_chan_rate = m.ai_single_rate_hz
            device.ai_max_multi_chan_rate = m.ai_rate_hz
            device.ao_max_rate = m.ao_rate_hz
            device.ao_voltage_rngs = list(m.ao_range_v) if m.n_ao else []
            device.ai_voltage_rngs = [x for r in sorted(m.ai_ranges_v) for x in (-r, r)]
            device.do_trig_usage = [TriggerUsage.START, TriggerUsage.PAUSE] if m.hw_timed_do_ports else []
        return device

    def _model(self, channel: str, kind: str, task_name: str) -> models.DaqModel:
        """The model of the device of ``channel``; -200220 / -200170 as DAQmx when the device
        or the channel is not there."""
        device = _device(channel)
        m = self.device_models.get(device)
        if m is None:
            raise daq_error(f"Device identifier is invalid.\nDevice Specified: {device}", E.INVALID_DEVICE_ID, task_name)
        if channel not in m.physical_channels(device, kind):
            raise daq_error(
                f"Physical channel specified does not exist on this device.\n"
                f"Refer to the documentation for channels available on this device.\n"
                f"Device: {device}\nPhysical Channel Name: {channel.split('/', 1)[1]}",
                E.PHYSICAL_CHAN_DOES_NOT_EXIST, task_name)
        return m

    # -- tasks -------------------------------------------------------------------------------
    def _method(self, method: mock.Mock, state: TaskState, name: str, impl=None, *, real=None,
                while_running: bool = True, configures: bool = False):
        """Give an autospecced task method DAQmx's state checks, an event and ``impl``
        (called with the arguments bound to ``real``'s signature)."""

        def side_effect(*args, **kwargs):
            if state.closed:
                raise daq_error("Task specified is invalid or does not exist.", E.INVALID_TASK, state.name)
            if state.running and not while_running:
                raise daq_error("Specified operation cannot be performed while the task is running.",
                                E.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING, state.name)
            self._record(f"{state.kind}.{name}")
            if configures:
                self._unverify(state)
            if impl is None:
                return None
            return impl(**_bound(real, args, kwargs)) if real is not None else impl(*args, **kwargs)

        method.side_effect = side_effect

    def _property(self, obj, state: TaskState, name: str, store: dict, check=None, readable=None) -> None:
        """``obj.<name>`` as a DAQmx property: set checked by ``check`` (returns the value to
        keep), refused while the task runs, and taking the task back to unverified."""

        def get(_self):
            if state.closed:
                raise daq_error("Task specified is invalid or does not exist.", E.INVALID_TASK, state.name)
            if readable is not None:
                readable()
            return store[name]

        def set_(_self, value):
            if state.closed:
                raise daq_error("Task specified is invalid or does not exist.", E.INVALID_TASK, state.name)
            if state.running:
                raise daq_error(f"Specified property cannot be set while the task is running.\nProperty: {name}",
                                E.CANNOT_SET_PROPERTY_WHEN_TASK_RUNNING, state.name)
            store[name] = value if check is None else check(value)
            self._unverify(state)

        setattr(type(obj), name, property(get, set_))

    def _unverify(self, state: TaskState) -> None:
        if not state.running:
            state.state = "unverified"
            state.committed_explicitly = False

    def _new_task(self, new_task_name="", *, grpc_options=None):
        state = TaskState(new_task_name)
        task = spec(nidaqmx.Task)
        task.name = new_task_name
        self.tasks.append(task)
        self.states[id(task)] = state
        self.events.append(f"new task {new_task_name}")
        for attribute, collection_cls, method, kind, channel_cls in (
            ("ao_channels", AOChannelCollection, "add_ao_voltage_chan", "ao", AOChannel),
            ("ai_channels", AIChannelCollection, "add_ai_voltage_chan", "ai", AIChannel),
            ("co_channels", COChannelCollection, "add_co_pulse_chan_time", "co", COChannel),
            ("do_channels", DOChannelCollection, "add_do_chan", "do", DOChannel),
        ):
            make = functools.partial(self._channels, state, collection_cls, method, kind, channel_cls)
            _on_first_use(task, attribute, make)
        self._timing(task, state)
        task.triggers = spec(Triggers)
        task.triggers.start_trigger = spec(StartTrigger)
        trig = task.triggers.start_trigger

        def arm(trigger_source, trigger_edge):
            if not isinstance(trigger_edge, Edge):
                raise daq_error(f"Requested value is not a supported value for this property.\n"
                                f"Property: DAQmx_DigEdge_StartTrig_Edge\nRequested Value: {trigger_edge!r}",
                                E.INVALID_ATTRIBUTE_VALUE, state.name)
            state.trigger = trigger_source

        self._method(trig.cfg_dig_edge_start_trig, state, "cfg_dig_edge_start_trig", arm,
                     real=StartTrigger.cfg_dig_edge_start_trig, while_running=False, configures=True)
        self._method(trig.disable_start_trig, state, "disable_start_trig", lambda: setattr(state, "trigger", None),
                     while_running=False, configures=True)
        task.in_stream = spec(InStream)
        task.out_stream = spec(OutStream)
        self._streams[id(task.in_stream)] = state
        self._streams[id(task.out_stream)] = state
        self._method(task.start, state, "start", lambda: self._start(state), while_running=False)
        self._method(task.stop, state, "stop", lambda: self._stop(state))
        self._method(task.wait_until_done, state, "wait_until_done", lambda timeout: self._wait(state, timeout),
                     real=nidaqmx.Task.wait_until_done)
        self._method(task.control, state, "control", lambda action: self._control(state, action),
                     real=nidaqmx.Task.control, while_running=False)
        self._method(task.write, state, "write", lambda data, auto_start, timeout: self._write_do(
            state, data, auto_start), real=nidaqmx.Task.write)

        def close():
            if state.closed:
                warnings.warn(f'Attempted to close NI-DAQmx task of name "{state.name}" but task was already closed.',
                              nidaqmx.errors.DaqResourceWarning)
                return None
            self._record(f"{state.kind}.close")
            self._stop(state)
            state.closed = True
            return None

        task.close.side_effect = close
        return task

    def _channels(self, state: TaskState, collection_cls, method: str, kind: str, channel_cls):
        collection = spec(collection_cls)
        real = getattr(collection_cls, method)

        def add(*args, **kwargs):
            if state.closed:
                raise daq_error("Task specified is invalid or does not exist.", E.INVALID_TASK, state.name)
            a = _bound(real, args, kwargs)
            physical = a.get("physical_channel") or a.get("counter") or a.get("lines")
            m = self._model(physical, kind, state.name)
            if physical in state.physical:
                raise daq_error(f"Physical channel specified more than once.\nPhysical Channel: {physical}",
                                E.REPEATED_PHYSICAL_CHAN, state.name)
            channel = spec(channel_cls)
            store: dict = {}
            check = self._channel_checks(kind, m, physical, state.name)
            for name in check:
                self._property(channel, state, name, store, check[name])
            for name, argument in _CHANNEL_ARGS[kind].items():
                setattr(channel, name, a[argument])
            state.kind = kind
            state.channels.append(channel)
            state.physical.append(physical)
            self._unverify(state)
            return channel

        getattr(collection, method).side_effect = add
        return collection

    def _channel_checks(self, kind: str, m: models.DaqModel, physical: str, task: str) -> dict:
        """Property name -> its check, for a channel of ``kind`` on a device of model ``m``."""

        def within(prop: str, lo: float, hi: float):
            def check(value):
                if not (isinstance(value, (int, float)) and lo <= value <= hi):
                    raise daq_error(
                        f"Requested value is not a supported value for this property. The property value may be "
                        f"invalid because it conflicts with another property.\nProperty: {prop}\n"
                        f"Requested Value: {value!r}\nPossible Values: {lo:g} to {hi:g}\nChannel Name: {physical}",
                        E.INVALID_ATTRIBUTE_VALUE, task)
                return float(value)
            return check

        if kind == "ao":
            lo, hi = m.ao_range_v
            return {"ao_min": within("DAQmx_AO_Min", lo, hi), "ao_max": within("DAQmx_AO_Max", lo, hi)}
        if kind == "ai":
            widest = max(m.ai_ranges_v, default=0.0)
            return {"ai_min": within("DAQmx_AI_Min", -widest, widest), "ai_max": within("DAQmx_AI_Max", -widest, widest),
                    "ai_term_cfg": _enum("DAQmx_AI_TermCfg", TerminalConfiguration, task)}
        if kind == "co":
            shortest, longest = m.co_min_pulse_s, m.co_max_pulse_s
            return {"co_pulse_high_time": within("DAQmx_CO_Pulse_HighTime", shortest, longest),
                    "co_pulse_low_time": within("DAQmx_CO_Pulse_LowTime", shortest, longest),
                    "co_pulse_time_initial_delay": within("DAQmx_CO_Pulse_Time_InitialDelay", 0.0, longest),
                    "co_pulse_idle_state": _enum("DAQmx_CO_Pulse_IdleState", Level, task)}
        return {}

    def _timing(self, task, state: TaskState) -> None:
        task.timing = spec(Timing)
        timing = task.timing
        store = {"samp_timing_type": SampleTimingType.ON_DEMAND}

        def clocked():
            if state.timing_type != SampleTimingType.SAMPLE_CLOCK:
                raise daq_error("Specified property is not supported by the device or is not applicable to the task."
                                "\nProperty: DAQmx_SampClk_Rate", E.ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT, state.name)

        check_type = _enum("DAQmx_SampTimingType", SampleTimingType, state.name)

        def timing_type(value):
            value = check_type(value)
            self._set_timing(state, value)
            return value

        self._property(timing, state, "samp_timing_type", store, timing_type)
        type(timing).samp_timing_type = property(lambda _s: state.timing_type, type(timing).samp_timing_type.fset)
        type(timing).samp_clk_rate = property(lambda _s: (clocked(), state.rate_hz)[1])
        type(timing).samp_quant_samp_mode = property(lambda _s: state.sample_mode)
        type(timing).samp_quant_samp_per_chan = property(lambda _s: state.samps_per_chan)

        def sample_clock(rate, source, active_edge, sample_mode, samps_per_chan):
            if not isinstance(sample_mode, AcquisitionType) or not isinstance(active_edge, Edge):
                raise daq_error(f"Requested value is not a supported value for this property.\n"
                                f"Property: DAQmx_SampQuant_SampMode\nRequested Value: {sample_mode!r}",
                                E.INVALID_ATTRIBUTE_VALUE, state.name)
            if not (isinstance(rate, (int, float)) and rate > 0) or int(samps_per_chan) < 1:
                raise daq_error(f"Requested value is not a supported value for this property.\n"
                                f"Property: DAQmx_SampClk_Rate\nRequested Value: {rate!r}",
                                E.INVALID_ATTRIBUTE_VALUE, state.name)
            self._set_timing(state, SampleTimingType.SAMPLE_CLOCK)
            state.rate_hz, state.sample_mode, state.samps_per_chan = float(rate), sample_mode, int(samps_per_chan)
            state.buffer_size = state.samps_per_chan if state.output else 0

        def implicit(sample_mode, samps_per_chan):
            if state.kind != "co":
                raise daq_error("Specified property is not supported by the device or is not applicable to the task."
                                "\nProperty: DAQmx_SampTimingType\nRequested Value: Implicit",
                                E.ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT, state.name)
            self._set_timing(state, SampleTimingType.IMPLICIT)
            state.sample_mode, state.samps_per_chan = sample_mode, int(samps_per_chan)

        self._method(timing.cfg_samp_clk_timing, state, "cfg_samp_clk_timing", sample_clock,
                     real=Timing.cfg_samp_clk_timing, while_running=False, configures=True)
        self._method(timing.cfg_implicit_timing, state, "cfg_implicit_timing", implicit,
                     real=Timing.cfg_implicit_timing, while_running=False, configures=True)

    @staticmethod
    def _set_timing(state: TaskState, timing_type: SampleTimingType) -> None:
        """A new timing type: the output buffer is emptied (an on-demand task has none)."""
        state.timing_type = timing_type
        state.written = 0
        state.wave = None
        if timing_type != SampleTimingType.SAMPLE_CLOCK:
            state.buffer_size = 0

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
            on_device = [p for p in state.physical if _device(p) == device]
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
        if auto_start is _TASK_AUTO_START_UNSET:
            auto_start = data.size == 1
        return self._write(state, data.reshape(1, -1), bool(auto_start), "write")

    # -- the watchdog ------------------------------------------------------------------------
    def _new_watchdog(self, device_name, task_name="", timeout=10, grpc_options=None):
        m = self.device_models.get(device_name)
        if m is None:
            raise daq_error(f"Device identifier is invalid.\nDevice Specified: {device_name}", E.INVALID_DEVICE_ID,
                            task_name)
        if not m.watchdog_covers:
            raise daq_error(f"The watchdog timer is not supported by this device.\nDevice: {device_name}",
                            E.WATCHDOG_TIMER_NOT_SUPPORTED, task_name)
        if not (timeout == -1 or 0 < timeout <= m.watchdog_max_s):
            raise daq_error(f"Watchdog timeout is out of range and is not a special value.\nRequested Value: "
                            f"{timeout!r}\nPossible Values: 0 to {m.watchdog_max_s:g}, or -1",
                            E.WATCHDOG_TIMEOUT_OUT_OF_RANGE_AND_NOT_SPECIAL_VAL, task_name)
        wd = WatchdogState(device_name, task_name, float(timeout))
        watchdog = spec(WatchdogTask)
        self.watchdogs[device_name] = watchdog
        self.watchdog_states[device_name] = wd
        type(watchdog).timeout = property(lambda _s: wd.timeout_s)
        type(watchdog).expired = property(lambda _s: wd.expired)

        def ao_states(expiration_states):
            if "ao" not in m.watchdog_covers:
                raise daq_error(f"Specified property is not supported by the device or is not applicable to the task."
                                f"\nProperty: DAQmx_Watchdog_AO_ExpirState\nDevice: {device_name}",
                                E.ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT, task_name)
            for state in expiration_states:
                self._model(state.physical_channel, "ao", task_name)
                lo, hi = m.ao_range_v
                if not lo <= state.expiration_state <= hi or state.output_type.name != "VOLTAGE":
                    raise daq_error(f"Requested value is not a supported value for this property.\n"
                                    f"Property: DAQmx_Watchdog_AO_ExpirState\nRequested Value: "
                                    f"{state.expiration_state!r}", E.INVALID_ATTRIBUTE_VALUE, task_name)
                wd.ao_states[state.physical_channel] = float(state.expiration_state)

        def do_states(expiration_states):
            if "do" not in m.watchdog_covers:
                raise daq_error(f"Specified property is not supported by the device or is not applicable to the task."
                                f"\nProperty: DAQmx_Watchdog_DO_ExpirState\nDevice: {device_name}",
                                E.ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT, task_name)
            for state in expiration_states:
                self._model(state.physical_channel, "do", task_name)
                wd.do_states[state.physical_channel] = _enum("DAQmx_Watchdog_DO_ExpirState", Level, task_name)(
                    state.expiration_state)

        def start():
            holders = [s.name for s in self.states.values() if not s.closed and device_name in s.devices
                       and STATES.index(s.state) >= STATES.index("reserved")]
            if holders:
                raise daq_error(f"Watchdog timer task cannot be reserved while other tasks are reserved.\n"
                                f"Tasks: {', '.join(holders)}",
                                E.CANT_RESERVE_WATCHDOG_TASK_WHILE_OTHER_TASKS_RESERVED, task_name)
            wd.running, wd.reset_s = True, self.now_s

        def reset_timer():
            self._advance_to(self.now_s)
            if wd.expired:
                raise daq_error("Watchdog timer cannot be reset because it has expired. Clear the expiration first.",
                                E.CANT_RESET_EXPIRED_WATCHDOG, task_name)
            if not wd.running:
                raise daq_error("Specified operation cannot be performed when the task is not running.",
                                E.CANNOT_PERFORM_OP_WHEN_TASK_NOT_RUNNING, task_name)
            wd.reset_s = self.now_s

        def clear_expiration():
            wd.expired, wd.reset_s = False, self.now_s

        def stop():
            wd.running = False

        actions = {"cfg_watchdog_ao_expir_states": ao_states, "cfg_watchdog_do_expir_states": do_states,
                   "start": start, "stop": stop, "reset_timer": reset_timer, "clear_expiration": clear_expiration,
                   "close": stop}
        for name, action in actions.items():
            getattr(watchdog, name).side_effect = self._watchdog_call(wd, name, action)
        return watchdog

    def _watchdog_call(self, wd: WatchdogState, name: str, action: Callable):
        def side_effect(*args, **kwargs):
            if wd.closed and name == "close":
                warnings.warn(f'Attempted to close NI-DAQmx task of name "{wd.name}" but task was already closed.',
                              nidaqmx.errors.DaqResourceWarning)
                return None
            if wd.closed:
                raise daq_error("Task specified is invalid or does not exist.", E.INVALID_TASK, wd.name)
            self._record(f"watchdog.{name}")
            action(*args, **kwargs)
            wd.closed = name == "close"
            return None

        return side_effect

    # -- streams -----------------------------------------------------------------------------
    def _new_reader(self, task_in_stream):
        state = self._streams[id(task_in_stream)]
        reader = self.AnalogMultiChannelReader.return_value

        def read_many_sample(data, number_of_samples_per_channel=READ_ALL_AVAILABLE, timeout=10.0):
            n = number_of_samples_per_channel
            _check_buffer(data, (state.n_channels, n), state)
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
            _check_buffer(data, (state.n_channels, data.shape[-1]), state)
            self._record(f"{state.kind}.write_many_sample", data)
            self.writes.append(("write_many_sample", data.copy()))
            return self._write(state, data, start_flag(False), "write_many_sample")

        def write_one_sample(data, timeout=10):
            _check_buffer(data, (state.n_channels,), state)
            self._record(f"{state.kind}.write_one_sample", data)
            self.writes.append(("write_one_sample", data.copy()))
            self._write(state, data[:, None], start_flag(True), "write_one_sample")
            return 1

        writer.write_many_sample.side_effect = write_many_sample
        writer.write_one_sample.side_effect = write_one_sample
        return writer


_CHANNEL_ARGS = {
    "ao": {"ao_min": "min_val", "ao_max": "max_val"},
    "ai": {"ai_min": "min_val", "ai_max": "max_val", "ai_term_cfg": "terminal_config"},
    "co": {"co_pulse_idle_state": "idle_state", "co_pulse_time_initial_delay": "initial_delay",
           "co_pulse_low_time": "low_time", "co_pulse_high_time": "high_time"},
    "do": {},
}
"""Channel property -> the ``add_*_chan`` argument that sets it."""


def _enum(prop: str, cls: type[Enum], task: str):
    """A check that a property value is a member of ``cls``: the real setter reads ``.value``
    (AttributeError for a plain value), and DAQmx refuses a member of another enum (-200077)."""

    def check(value):
        if not isinstance(value, Enum):
            raise AttributeError(f"{type(value).__name__!r} object has no attribute 'value'")
        if not isinstance(value, cls):
            raise daq_error(f"Requested value is not a supported value for this property.\nProperty: {prop}\n"
                            f"Requested Value: {value!r}", E.INVALID_ATTRIBUTE_VALUE, task)
        return value

    return check


def _channel_list(m: models.DaqModel | None, device: str, kind: str):
    """A device's physical channel collection of ``kind``, its names as NI-DAQmx lists them."""
    collection = spec(PhysicalChannelCollection)
    collection.channel_names = list(m.physical_channels(device, kind)) if m else []
    return collection


def _check_buffer(data, shape: tuple[int, ...], state: TaskState) -> None:
    """The real stream readers and writers check the shape and hand the buffer to C as
    contiguous float64; a buffer that would fail there fails here."""
    if state.closed:
        raise daq_error("Task specified is invalid or does not exist.", E.INVALID_TASK, state.name)
    if not isinstance(data, np.ndarray) or data.dtype != np.float64 or not data.flags.c_contiguous:
        raise TypeError(f"expected a C-contiguous float64 numpy array, got {type(data).__name__}")
    if data.shape != shape:
        raise daq_error(f"NumPy array is not shaped correctly: provided {data.shape}, required {shape}",
                        E.UNKNOWN, state.name)


def _on_first_use(obj: mock.NonCallableMock, attribute: str, make: Callable[[], object]) -> None:
    """``obj.<attribute>`` is ``make()``, made on first use: autospeccing a channel collection
    costs up to 30 ms and a task uses one of the four. Every mock has a class of its own,
    so the property is this mock's only."""
    made = []

    def get(_self):
        if not made:
            made.append(make())
        return made[0]

    setattr(type(obj), attribute, property(get))


@contextmanager
def installed(wiring: Wiring) -> Iterator[FakeNidaqmx]:
    """Patch the nidaqmx names ``instruments.daq.nidaq`` uses with a :class:`FakeNidaqmx`."""
    fake = FakeNidaqmx(wiring)
    with mock.patch.multiple(
        nidaq,
        Task=fake.Task,
        WatchdogTask=fake.WatchdogTask,
        System=fake.System,
        AnalogMultiChannelReader=fake.AnalogMultiChannelReader,
        AnalogMultiChannelWriter=fake.AnalogMultiChannelWriter,
    ):
        yield fake
