"""A fake NI-DAQmx, autospecced from the installed ``nidaqmx`` package, for the driver's tests.

Every object the driver touches is made with ``create_autospec(<real class>, spec_set=True)``:
tasks, their channel collections and channels, timing, triggers, streams, the stream readers
and writers, the watchdog task, the system, its device collection and devices. A misspelt
method, a wrong argument or an assignment to a property the real class does not have fails
the test, exactly as it would fail on the bench.

The fake is faithful where the driver could get the hardware wrong:

- a task remembers whether it runs and whether it is closed, and refuses what DAQmx refuses
  with the same ``nidaqmx.errors.DaqError`` (starting a running task, reconfiguring timing
  while it runs, anything on a closed task; closing twice only warns, as the real ``close``);
- the reader and writer check the buffer like the real ones (shape, float64, C order), the
  reader fills it with ``FakeNidaqmx.ai_samples(n_channels, n_samples)``, the writer keeps a
  copy of every write (the driver reuses its buffers);
- every call that matters is appended to ``FakeNidaqmx.events`` as ``"<kind>.<method>"`` (the
  kind of a task is the kind of its channels: ``ao``, ``ai``, ``co``, ``do``; the watchdogs
  are ``watchdog``), so tests can assert the order across tasks;
- ``FakeNidaqmx.fail(event, error)`` makes the next such call raise ``error``.

Use ``with installed(wiring) as fake:`` around the code under test: it patches the names that
``instruments.daq.nidaq`` imported from nidaqmx.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from unittest import mock

import nidaqmx
import nidaqmx.errors
import numpy as np
from nidaqmx.constants import READ_ALL_AVAILABLE, TriggerUsage
from nidaqmx.error_codes import DAQmxErrors
from nidaqmx.stream_readers import AnalogMultiChannelReader
from nidaqmx.stream_writers import AUTO_START_UNSET, AnalogMultiChannelWriter
from nidaqmx.system import Device, System, WatchdogTask
from nidaqmx.system._collections.device_collection import DeviceCollection
from nidaqmx.task import InStream, OutStream, Timing
from nidaqmx.task.channels import AIChannel, AOChannel, COChannel, DOChannel
from nidaqmx.task.collections import (
    AIChannelCollection,
    AOChannelCollection,
    COChannelCollection,
    DOChannelCollection,
)
from nidaqmx.task.triggering import StartTrigger, Triggers

from instruments.daq import nidaq
from instruments.wiring import Wiring


def spec(cls):
    """An instance of ``cls`` as a strict autospec: unknown names fail to get and to set."""
    return mock.create_autospec(cls, instance=True, spec_set=True)


@dataclass
class TaskState:
    """What DAQmx knows about one task."""

    name: str
    kind: str = "task"
    running: bool = False
    closed: bool = False
    channels: list = field(default_factory=list)

    @property
    def n_channels(self) -> int:
        return len(self.channels)


class FakeNidaqmx:
    """The fake system: devices, the tasks the driver made, and what happened to them.

    Attributes:
        devices: device name -> autospecced ``Device`` (product type, serial number and
            ``do_trig_usage`` as the wiring's models would report).
        system: the autospecced ``System`` that ``System.local()`` returns.
        tasks: every task made, in order; ``states[id(task)]`` is its :class:`TaskState`.
        watchdogs: device name -> autospecced ``WatchdogTask``.
        events: ``"<kind>.<method>"`` in call order.
        writes: ``(method, copy of the data)`` of every analog write, in order.
        ai_samples: ``(n_channels, n_samples) -> array`` that the reader copies into the
            driver's buffer; zeros unless a test says otherwise.
        listeners: called with every event and, for writes, the data written, after it is
            recorded (a test can couple the fake to a simulated circuit this way).
    """

    def __init__(self, wiring: Wiring):
        self.devices: dict[str, mock.NonCallableMagicMock] = {}
        for k, (name, model) in enumerate(wiring.daq_devices.items()):
            device = spec(Device)
            device.name = name
            device.product_type = model
            device.serial_num = 0x01F2A3B0 + k
            device.do_trig_usage = [TriggerUsage.START, TriggerUsage.PAUSE]
            self.devices[name] = device
        collection = spec(DeviceCollection)
        collection.device_names = list(self.devices)
        collection.__getitem__.side_effect = lambda name: self.devices[name]
        self.system = spec(System)
        self.system.devices = collection
        self.tasks: list[mock.NonCallableMagicMock] = []
        self.states: dict[int, TaskState] = {}
        self.watchdogs: dict[str, mock.NonCallableMagicMock] = {}
        self.events: list[str] = []
        self.writes: list[tuple[str, np.ndarray]] = []
        self.ai_samples: Callable[[int, int], np.ndarray] = lambda n_channels, n: np.zeros((n_channels, n))
        self.listeners: list[Callable[[str, np.ndarray | None], None]] = []
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

    # -- the fakes ---------------------------------------------------------------------------
    def _record(self, event: str, data: np.ndarray | None = None) -> None:
        if event in self._failures:
            raise self._failures.pop(event)
        self.events.append(event)
        for listener in self.listeners:
            listener(event, data)

    def _track(self, method: mock.Mock, state: TaskState, name: str, *, while_running: bool = True, then=None):
        """Give an autospecced task method DAQmx's state checks and an event."""

        def side_effect(*args, **kwargs):
            if state.closed:
                raise nidaqmx.errors.DaqError(
                    "Task specified is invalid or does not exist.", DAQmxErrors.INVALID_TASK, task_name=state.name
                )
            if state.running and not while_running:
                raise nidaqmx.errors.DaqError(
                    "Specified operation cannot be performed while the task is running.",
                    DAQmxErrors.CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING,
                    task_name=state.name,
                )
            self._record(f"{state.kind}.{name}")
            return mock.DEFAULT if then is None else then(*args, **kwargs)

        method.side_effect = side_effect

    def _new_task(self, new_task_name="", *, grpc_options=None):
        state = TaskState(new_task_name)
        task = spec(nidaqmx.Task)
        task.name = new_task_name
        self.tasks.append(task)
        self.states[id(task)] = state
        self.events.append(f"new task {new_task_name}")

        def channels(collection_cls, method: str, kind: str, channel_cls):
            collection = spec(collection_cls)

            def add(physical_channel, *args, **kwargs):
                state.kind = kind
                channel = spec(channel_cls)
                state.channels.append(channel)
                return channel

            getattr(collection, method).side_effect = add
            return collection

        for attribute, collection_cls, method, kind, channel_cls in (
            ("ao_channels", AOChannelCollection, "add_ao_voltage_chan", "ao", AOChannel),
            ("ai_channels", AIChannelCollection, "add_ai_voltage_chan", "ai", AIChannel),
            ("co_channels", COChannelCollection, "add_co_pulse_chan_time", "co", COChannel),
            ("do_channels", DOChannelCollection, "add_do_chan", "do", DOChannel),
        ):
            _on_first_use(task, attribute, functools.partial(channels, collection_cls, method, kind, channel_cls))
        task.timing = spec(Timing)
        task.triggers = spec(Triggers)
        task.triggers.start_trigger = spec(StartTrigger)
        task.in_stream = spec(InStream)
        task.out_stream = spec(OutStream)
        self._streams[id(task.in_stream)] = state
        self._streams[id(task.out_stream)] = state

        def start():
            state.running = True

        def stop():
            state.running = False

        def close():
            state.running = False
            state.closed = True

        self._track(task.start, state, "start", while_running=False, then=start)
        self._track(task.stop, state, "stop", then=stop)
        self._track(task.wait_until_done, state, "wait_until_done")
        self._track(task.control, state, "control", while_running=False)
        self._track(task.write, state, "write")
        self._track(task.timing.cfg_samp_clk_timing, state, "cfg_samp_clk_timing", while_running=False)
        self._track(task.timing.cfg_implicit_timing, state, "cfg_implicit_timing", while_running=False)
        self._track(
            task.triggers.start_trigger.cfg_dig_edge_start_trig, state, "cfg_dig_edge_start_trig", while_running=False
        )
        self._track(task.triggers.start_trigger.disable_start_trig, state, "disable_start_trig", while_running=False)

        def close_side_effect():
            if state.closed:
                warnings.warn(
                    f'Attempted to close NI-DAQmx task of name "{state.name}" but task was already closed.',
                    nidaqmx.errors.DaqResourceWarning,
                )
                return None
            self._record(f"{state.kind}.close")
            close()
            return None

        task.close.side_effect = close_side_effect
        return task

    def _new_watchdog(self, device_name, task_name="", timeout=10, grpc_options=None):
        watchdog = spec(WatchdogTask)
        self.watchdogs[device_name] = watchdog
        closed = False

        def tracked(name: str):
            def side_effect(*args, **kwargs):
                nonlocal closed
                if closed and name == "close":
                    warnings.warn(
                        f'Attempted to close NI-DAQmx task of name "{task_name}" but task was already closed.',
                        nidaqmx.errors.DaqResourceWarning,
                    )
                    return None
                if closed:
                    raise nidaqmx.errors.DaqError(
                        "Task specified is invalid or does not exist.", DAQmxErrors.INVALID_TASK, task_name=task_name
                    )
                self._record(f"watchdog.{name}")
                closed = name == "close"
                return mock.DEFAULT

            getattr(watchdog, name).side_effect = side_effect

        for name in ("cfg_watchdog_ao_expir_states", "start", "stop", "reset_timer", "close"):
            tracked(name)
        return watchdog

    def _new_reader(self, task_in_stream):
        state = self._streams[id(task_in_stream)]
        reader = self.AnalogMultiChannelReader.return_value

        def read_many_sample(data, number_of_samples_per_channel=READ_ALL_AVAILABLE, timeout=10.0):
            _check_buffer(data, (state.n_channels, number_of_samples_per_channel), state)
            self._record(f"{state.kind}.read_many_sample")
            data[:] = self.ai_samples(state.n_channels, number_of_samples_per_channel)
            return number_of_samples_per_channel

        reader.read_many_sample.side_effect = read_many_sample
        return reader

    def _new_writer(self, task_out_stream, auto_start=AUTO_START_UNSET):
        state = self._streams[id(task_out_stream)]
        writer = self.AnalogMultiChannelWriter.return_value

        def write_many_sample(data, timeout=10.0):
            _check_buffer(data, (state.n_channels, data.shape[-1]), state)
            self._record(f"{state.kind}.write_many_sample", data)
            self.writes.append(("write_many_sample", data.copy()))
            return data.shape[1]

        def write_one_sample(data, timeout=10):
            _check_buffer(data, (state.n_channels,), state)
            self._record(f"{state.kind}.write_one_sample", data)
            self.writes.append(("write_one_sample", data.copy()))
            return 1

        writer.write_many_sample.side_effect = write_many_sample
        writer.write_one_sample.side_effect = write_one_sample
        return writer


def _check_buffer(data, shape: tuple[int, ...], state: TaskState) -> None:
    """The real stream readers and writers check the shape and hand the buffer to C as
    contiguous float64; a buffer that would fail there fails here."""
    if state.closed:
        raise nidaqmx.errors.DaqError(
            "Task specified is invalid or does not exist.", DAQmxErrors.INVALID_TASK, task_name=state.name
        )
    if not isinstance(data, np.ndarray) or data.dtype != np.float64 or not data.flags.c_contiguous:
        raise TypeError(f"expected a C-contiguous float64 numpy array, got {type(data).__name__}")
    if data.shape != shape:
        raise nidaqmx.errors.DaqError(
            f"NumPy array is not shaped correctly: provided {data.shape}, required {shape}",
            DAQmxErrors.UNKNOWN,
            task_name=state.name,
        )


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
