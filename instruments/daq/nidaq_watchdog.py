"""The NI-DAQmx driver's hardware watchdogs (see :mod:`instruments.daq.nidaq`): one
:class:`~nidaqmx.system.WatchdogTask` per device whose watchdog guards an output of the
wiring, started before the other tasks, reset before every hardware operation, asked
whether it expired, and released last; and the warning about the outputs no hardware
watchdog guards.
"""

from __future__ import annotations

import logging

import nidaqmx.errors
from nidaqmx.constants import Level, WatchdogAOExpirState
from nidaqmx.error_codes import DAQmxErrors
from nidaqmx.system import AOExpirationState, DOExpirationState, WatchdogTask

from ..interfaces import DaqError
from ..wiring import Wiring
from .nidaq_lines import device_of, quietly, translated

log = logging.getLogger("instruments.daq.nidaq")


class Watchdogs:
    """The watchdog tasks of a wiring's devices, by device name (none until :meth:`start`)."""

    def __init__(self, wiring: Wiring):
        self._wiring = wiring
        self._tasks: dict[str, WatchdogTask] = {}

    def __contains__(self, device: str) -> bool:
        return device in self._tasks

    def timeout_s(self, device: str) -> float:
        """The timeout (s) of ``device``'s watchdog task, as DAQmx reports it."""
        return float(self._tasks[device].timeout)

    def start(self) -> None:
        """One watchdog per device whose watchdog guards an output of the wiring: analog
        outputs expire to their safe values, a digital learn line expires low."""
        for device, covers in self._wiring.hardware_watchdog().items():
            if covers is None:
                continue
            with translated(f"open: watchdog on {device}"):
                watchdog = WatchdogTask(
                    device, task_name=f"{self._wiring.name}-watchdog-{device}", timeout=self._wiring.timing.watchdog_s
                )
                self._tasks[device] = watchdog
                if "ao" in covers.split("+"):
                    watchdog.cfg_watchdog_ao_expir_states([
                        AOExpirationState(o.channel, o.safe_v, WatchdogAOExpirState.VOLTAGE)
                        for o in self._wiring.outputs if device_of(o.channel) == device
                    ])
                if "do" in covers.split("+"):
                    watchdog.cfg_watchdog_do_expir_states([DOExpirationState(self._wiring.learn_line, Level.LOW)])
                watchdog.start()

    def warn_host_guarded(self) -> None:
        """Log a warning naming the outputs no hardware watchdog guards, if any."""
        text = self._wiring.host_guarded_summary()
        if text is not None:
            log.warning("%s: no hardware watchdog guards %s; only the host's safety layer drives them safe if this "
                        "process stops servicing the DAQ", self._wiring.name, text)

    def kick(self, op: str) -> None:
        """Reset every watchdog; DaqError naming ``op`` and the device when one has expired."""
        for device, watchdog in self._tasks.items():
            try:
                watchdog.reset_timer()
            except nidaqmx.errors.DaqError as e:
                if e.error_code != DAQmxErrors.CANT_RESET_EXPIRED_WATCHDOG:
                    raise
                raise DaqError(
                    f"{op}: the watchdog on {device} expired: the host did not service the DAQ for "
                    f"{self._wiring.timing.watchdog_s:g} s, and the device holds its outputs at their safe values and "
                    f"refuses writes until the DAQ is closed and opened again"
                ) from e

    def expired(self) -> list[str]:
        """The devices whose watchdog has expired (a watchdog that cannot tell counts as not)."""
        out = []
        for device, watchdog in self._tasks.items():
            try:
                if watchdog.expired:
                    out.append(device)
            except nidaqmx.errors.Error:
                pass
        return out

    def release(self) -> None:
        """Stop and close every watchdog; a failure is logged and the rest are still released."""
        for watchdog in self._tasks.values():
            quietly("stopping the watchdog", watchdog.stop)
            quietly("closing the watchdog", watchdog.close)
        self._tasks.clear()
