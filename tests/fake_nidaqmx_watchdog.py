"""The nidaqmx fake's watchdog timer tasks (see :mod:`fake_nidaqmx`): refused on a device
without one or for a timeout out of range, analog expiration states refused where the
watchdog covers only digital lines, a start refused while another task holds the device,
reset, expiry (on the fake's clock, :meth:`~fake_nidaqmx.FakeNidaqmx.advance`), the lock
of an expired watchdog's outputs until ``clear_expiration``, and closing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import nidaqmx.errors
from fake_nidaqmx_common import STATES, TaskState, daq_error, enum_check, spec
from nidaqmx.constants import Level
from nidaqmx.error_codes import DAQmxErrors as E
from nidaqmx.system import WatchdogTask


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


class WatchdogMixin:
    """:class:`~fake_nidaqmx.FakeNidaqmx`'s watchdogs (it holds ``watchdogs``,
    ``watchdog_states``, ``device_models`` and the clock ``now_s``)."""

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
                wd.do_states[state.physical_channel] = enum_check("DAQmx_Watchdog_DO_ExpirState", Level, task_name)(
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

    def _expired_for(self, state: TaskState) -> str | None:
        """The device whose expired watchdog holds an output of ``state``'s task, if any."""
        for wd in self.watchdog_states.values():
            guarded = set(wd.ao_states) | set(wd.do_states)
            if wd.expired and guarded & set(state.physical):
                return wd.device
        return None
