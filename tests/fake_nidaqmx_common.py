"""The nidaqmx fake's shared pieces (see :mod:`fake_nidaqmx`): the strict autospec, the
``DaqError`` DAQmx raises for a status code, calls bound to the real signatures, the check
that a property takes only a member of its enum, mocks made on first use, and the record
of what DAQmx knows about one task (:class:`TaskState`, in the states of the task state
model, :data:`STATES`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from unittest import mock

import nidaqmx.errors
import numpy as np
from nidaqmx.constants import AcquisitionType, SampleTimingType
from nidaqmx.error_codes import DAQmxErrors as E

STATES = ("unverified", "verified", "reserved", "committed", "running")
"""The task states of the NI-DAQmx task state model, in order."""


def spec(cls):
    """An instance of ``cls`` as a strict autospec: unknown names fail to get and to set."""
    return mock.create_autospec(cls, instance=True, spec_set=True)


def daq_error(message: str, code: E, task_name: str = "", cls=nidaqmx.errors.DaqError, **extra):
    """The error real nidaqmx raises for status ``code`` (message, task name and code as
    nidaqmx formats them)."""
    return cls(message, code, task_name=task_name, **extra)


def bound(real: Callable, args: tuple, kwargs: dict) -> dict:
    """The call's arguments by name, the real defaults filled in."""
    call = inspect.signature(real).bind(None, *args, **kwargs)
    call.apply_defaults()
    out = dict(call.arguments)
    out.pop("self", None)
    return out


def device_of(channel: str) -> str:
    return channel.lstrip("/").split("/", 1)[0]


@dataclass
class TaskState:
    """What DAQmx knows about one task (see :mod:`fake_nidaqmx` for the model)."""

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
        return list(dict.fromkeys(device_of(p) for p in self.physical))

    @property
    def output(self) -> bool:
        return self.kind in ("ao", "do")


def enum_check(prop: str, cls: type[Enum], task: str):
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


def on_first_use(obj: mock.NonCallableMock, attribute: str, make: Callable[[], object]) -> None:
    """``obj.<attribute>`` is ``make()``, made on first use: autospeccing a channel collection
    costs up to 30 ms and a task uses one of the four. Every mock has a class of its own,
    so the property is this mock's only."""
    made = []

    def get(_self):
        if not made:
            made.append(make())
        return made[0]

    setattr(type(obj), attribute, property(get))
