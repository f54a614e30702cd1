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

The wiring is checked first (:meth:`~instruments.wiring.Wiring.problems`: channels the
devices have, ranges, rates, the watchdog's maximum, safe values inside every limit); an
unsound one is refused before anything is opened. The tasks are made once, at open:

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
  line that takes no start trigger, software-timed high/low writes. Whatever ends a pulse
  (an error, a KeyboardInterrupt), the line is driven low before the exception leaves.
- watchdog: one :class:`~nidaqmx.system.WatchdogTask` per device whose hardware watchdog
  covers an output of the wiring (:meth:`~instruments.wiring.Wiring.hardware_watchdog`): on
  an AO Series device (PXIe-6738) the analog outputs expire to their safe values; on any
  device whose watchdog covers digital lines, a digital learn line expires low. The X Series
  watchdog covers digital and PFI lines only, so analog outputs on a USB-6343 or a PCIe-6363
  get no expiration states; the host's safety layer alone drives them safe, and the open
  says so in a warning (:attr:`NidaqDaq.hardware_watchdog` tells which device is which). A
  watchdog is started before the other tasks exist because some devices refuse to reserve
  a watchdog while other tasks hold the device.
- the safe state: from what the outputs hold at open (``held_v``; their power-up value when
  not known) the outputs ramp to their safe values in writes each within every output's
  ``max_step_v``; :meth:`NidaqDaq.safe_state` and :meth:`NidaqDaq.close` ramp the same way
  from the last values written.

A task is reconfigured and committed only when a call needs a different configuration
(another sample count or trigger) than the one it last ran with: a committed task starts
without DAQmx's verify/reserve/commit pass, which otherwise costs more than a step's settle
time. The sample buffers are likewise reused: each is a view of one store that grows only
when a call needs more samples than any before it.

The driver's parts are its sibling modules: :mod:`~instruments.daq.nidaq_lines` (the learn
line, the configure-once and sample-buffer helpers, the translation of NI-DAQmx errors),
:mod:`~instruments.daq.nidaq_watchdog` (the watchdog tasks) and
:mod:`~instruments.daq.nidaq_checks` (what is refused before anything is sent).

Checked against the installed nidaqmx package and a stateful fake autospecced from it
(``tests/fake_nidaqmx.py``: timing types, buffers, the task state machine, the watchdog's
expiry, the devices' channel lists and limits), not yet on the bench: the cross-slot trigger
routing, the watchdog's AO expiration states on a PXIe-6738, the two-sample minimum of a
finite read, DAQmx's own refusal of an AO value outside min/max, and the commit-once speed-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from nidaqmx import Task
from nidaqmx.constants import AcquisitionType, SampleTimingType, TerminalConfiguration, TriggerUsage
from nidaqmx.stream_readers import AnalogMultiChannelReader
from nidaqmx.stream_writers import AnalogMultiChannelWriter
from nidaqmx.system import System

from ..interfaces import DaqError
from ..safety import Limits
from ..wiring import Timing, Wiring, safe_path
from . import models
from .nidaq_checks import Checks
from .nidaq_lines import (
    TIMEOUT_MARGIN_S,
    Configured,
    CounterLine,
    DigitalLine,
    Samples,
    clock_periods,
    count,
    device_of,
    hold,
    positive_s,
    quietly,
    running,
    start_on,
    translated,
)
from .nidaq_watchdog import Watchdogs

__all__ = ["NidaqDaq", "TIMEOUT_MARGIN_S", "clock_periods"]

log = logging.getLogger(__name__)


class NidaqDaq:
    """A :class:`~instruments.interfaces.BoundaryDaq` on NI-DAQmx hardware.

    ``NidaqDaq(wiring)`` (or ``NidaqDaq.open(wiring)``) checks the wiring (DaqError listing
    its problems, nothing opened), checks that every device of ``wiring.daq_devices`` is
    present and is the model the wiring names, starts the watchdogs, makes the tasks and
    ramps every output to its safe value. ``system`` is the DAQmx system the devices are
    looked up in (default: the local one). ``held_v`` is what the outputs hold now (V, one
    value per output, in ``ao_channels`` order) when known; None takes each device's
    power-up value (:attr:`~instruments.daq.models.DaqModel.ao_power_up_v`, 0 V on NI
    analog outputs).

    Every value array is float64 in volts, in ``ao_channels`` / ``ai_channels`` order.
    Failures raise :class:`~instruments.interfaces.DaqError` (a timeout:
    :class:`~instruments.interfaces.DaqTimeout`) naming the operation, and the channel
    where one is to blame; NI-DAQmx's own message (with its task and channel names and
    status code) follows.
    """

    def __init__(self, wiring: Wiring, *, system: System | None = None, held_v: np.ndarray | None = None):
        if not wiring.outputs or not wiring.inputs:
            raise DaqError(f"wiring {wiring.name}: the DAQ needs at least one output and one input")
        problems = wiring.problems()
        if problems:
            raise DaqError(f"wiring {wiring.name} is unsound, nothing opened: " + "; ".join(problems))
        self.ao_channels: tuple[str, ...] = wiring.ao_channels
        self.ai_channels: tuple[str, ...] = wiring.ai_channels
        self._wiring = wiring
        self._timing: Timing = wiring.timing
        self._rate_hz = float(wiring.timing.sample_rate_hz)
        self._models = {dev: models.model(name) for dev, name in wiring.daq_devices.items()}
        self._limits = Limits.from_wiring(wiring)
        self._safe_v = self._limits.safe_v
        self._checks = Checks(wiring, self._limits, self._models)
        self._held_v = self._checks.held(held_v)
        opening_path = safe_path(self._limits, self._held_v)
        self._ao_start = f"/{device_of(self.ao_channels[0])}/ao/StartTrigger"
        self._system = System.local() if system is None else system
        self._closed = False
        self._op = "open"
        self._watchdogs = Watchdogs(wiring)
        self._tasks: list[Task] = []
        self._ao_samples = Samples(len(self.ao_channels))
        self._ai_samples = Samples(len(self.ai_channels))
        self._ao_buf = self._ao_samples.shaped(0)
        self._ai_buf = self._ai_samples.shaped(0)
        try:
            self._check_devices()
            self._watchdogs.start()
            self._ao = self._new_task("ao")
            self._ao_chans = []
            for o in wiring.outputs:
                with translated(f"open: adding output {o.channel}"):
                    self._ao_chans.append(
                        self._ao.ao_channels.add_ao_voltage_chan(o.channel, min_val=o.min_v, max_val=o.max_v))
            self._ai = self._new_task("ai")
            self._ai_chans = []
            for i in wiring.inputs:
                with translated(f"open: adding input {i.channel}"):
                    self._ai_chans.append(self._ai.ai_channels.add_ai_voltage_chan(
                        i.channel, terminal_config=TerminalConfiguration.RSE, min_val=-i.range_v, max_val=i.range_v
                    ))
            self._learn = self._learn_line(self._new_task("learn"))
            self._ao_writer = AnalogMultiChannelWriter(self._ao.out_stream)
            self._ai_reader = AnalogMultiChannelReader(self._ai.in_stream)
            self._ao_config = Configured(self._ao)
            self._ai_config = Configured(self._ai)
            self._watchdogs.warn_host_guarded()
            self._safe_state(opening_path, "open")
        except BaseException:
            self._release()
            raise

    @classmethod
    def open(cls, wiring: Wiring, *, system: System | None = None, held_v: np.ndarray | None = None) -> NidaqDaq:
        """The DAQ of ``wiring``, open, its outputs at their safe values (see the class)."""
        return cls(wiring, system=system, held_v=held_v)

    def __enter__(self) -> NidaqDaq:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what guards the outputs ------------------------------------------------------------------
    @property
    def hardware_watchdog(self) -> dict[str, str | None]:
        """Device -> what its hardware watchdog guards: ``"ao"`` (the analog outputs expire to
        their safe values), ``"do"`` (a digital learn line expires low), ``"ao+do"``, or None
        (no watchdog task on that device: it has no output, or its watchdog covers none of
        them; the host's safety layer alone drives those safe), e.g. ``{"PXI1Slot2": "ao",
        "PXI1Slot3": None}``."""
        return self._wiring.hardware_watchdog()

    def worst_case_safe_s(self) -> float:
        """The longest time (s) the ramp to the safe values takes from anywhere inside the
        limits: :meth:`~instruments.safety.Limits.safe_ramp_writes` writes at the slowest
        output device's software-timed write
        (:attr:`~instruments.daq.models.DaqModel.ao_write_s`, an estimate: about 1 ms over
        USB, 10 us on PCIe and PXIe)."""
        return self._limits.safe_ramp_writes() * self._wiring.ao_write_s()

    # -- BoundaryDaq -----------------------------------------------------------------------
    def write(self, values_v: np.ndarray) -> None:
        """Set every output (V) now, software-timed; shape ``(len(ao_channels),)``."""
        with self._operation("write"):
            values_v = self._checks.values(values_v)
            self._kick()
            self._held_v = values_v.copy()
            self._write_static(values_v)

    def read(self, n_samples: int = 1) -> np.ndarray:
        """Mean of ``n_samples`` samples per input (V) at ``timing.sample_rate_hz``."""
        with self._operation("read"):
            n_samples = count("n_samples", n_samples)
            # Some devices refuse a finite acquisition of a single sample; the extra one is dropped.
            n = max(2, n_samples)
            timeout_s = self._checks.duration_s("read", n) + TIMEOUT_MARGIN_S
            self._clock_ai(n, None)
            self._kick()
            with running(self._ai):
                self._ai.start()
                self._ai_reader.read_many_sample(self._ai_buf, number_of_samples_per_channel=n, timeout=timeout_s)
            return self._ai_buf[:, :n_samples].mean(axis=1)

    def pulse(self, width_s: float) -> None:
        """One high pulse of ``width_s`` (s) on the learn line, now. Refused before anything
        is armed when the counter cannot time it or the watchdog would expire during it; the
        line is low again however the pulse ends."""
        with self._operation("pulse"):
            duration_s = self._checks.pulse_s("pulse", 0.0, width_s, self._learn)
            self._kick()
            with self._learn_guarded():
                if not self._learn.hardware_timed:
                    self._learn.fire(width_s)
                    return
                learn = self._learn.task
                with running(learn):
                    self._learn.arm(0.0, width_s, None)
                    learn.wait_until_done(timeout=duration_s + TIMEOUT_MARGIN_S)

    def write_and_read(self, values_v: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """Write every output (V), and from the same start trigger sample every input for
        ``settle_s`` (s) plus ``n_samples`` sample periods; return the mean per input (V) of
        the ``n_samples`` taken after settling."""
        with self._operation("write_and_read"):
            rows = self._checks.values(values_v)[None, :]
            return self._acquire("write_and_read", rows, settle_s, n_samples)[0]

    def write_and_read_many(self, values_v: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """Step the outputs through the rows of ``values_v`` (V), shape ``(B, len(ao_channels))``,
        each held for ``settle_s`` (s) plus ``n_samples`` sample periods, while every input is
        sampled from the same start trigger; return the mean per row and input (V), shape
        ``(B, len(ai_channels))``, of each row's ``n_samples`` taken after settling."""
        with self._operation("write_and_read_many"):
            rows = self._checks.rows(values_v)
            return self._acquire(f"write_and_read_many of {rows.shape[0]} rows", rows, settle_s, n_samples)

    def _acquire(self, what: str, rows: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """One hardware-timed operation: the outputs step through ``rows`` (B, n_ao), each
        held for the settle and the samples; the inputs' per-row means after settling (B, n_ai)."""
        n_settle = clock_periods(positive_s("settle_s", settle_s), self._rate_hz)
        n_row = n_settle + count("n_samples", n_samples)
        n_batch = rows.shape[0]
        n = n_batch * n_row
        timeout_s = self._checks.duration_s(what, n) + TIMEOUT_MARGIN_S
        self._clock_ao(n)
        self._clock_ai(n, self._ao_start)
        self._ao_buf.reshape(len(self.ao_channels), n_batch, n_row)[:] = rows.T[:, :, None]
        self._kick()
        self._held_v = rows[-1].copy()  # before the write: a failed operation may have written
        self._ao_writer.write_many_sample(self._ao_buf, timeout=timeout_s)
        with running(self._ai, self._ao):
            self._ai.start()
            self._ao.start()
            self._ai_reader.read_many_sample(self._ai_buf, number_of_samples_per_channel=n, timeout=timeout_s)
            self._ao.wait_until_done(timeout=timeout_s)
        per_row = self._ai_buf.reshape(len(self.ai_channels), n_batch, n_row)
        return np.ascontiguousarray(per_row[:, :, n_settle:].mean(axis=2).T)

    def write_and_pulse(self, values_v: np.ndarray, settle_s: float, width_s: float) -> None:
        """Write every output (V) and, ``settle_s`` (s) after the outputs change, pulse the
        learn line high for ``width_s`` (s). On a digital learn line without hardware timing
        the settle and the pulse are timed by the host (at least as long as asked). The
        pulse is checked as :meth:`pulse` checks it; the line is low however it ends."""
        with self._operation("write_and_pulse"):
            values_v = self._checks.values(values_v)
            positive_s("settle_s", settle_s)
            pulse_s = self._checks.pulse_s("write_and_pulse", settle_s, width_s, self._learn)
            if not self._learn.hardware_timed:
                self._kick()
                self._held_v = values_v.copy()
                self._write_static(values_v)
                hold(settle_s)
                with self._learn_guarded():
                    self._learn.fire(width_s)
                return
            n = clock_periods(settle_s, self._rate_hz) + clock_periods(width_s, self._rate_hz)
            timeout_s = max(self._checks.duration_s("write_and_pulse", n), pulse_s) + TIMEOUT_MARGIN_S
            self._clock_ao(n)
            self._ao_buf[:] = values_v[:, None]
            self._kick()
            self._held_v = values_v.copy()
            self._ao_writer.write_many_sample(self._ao_buf, timeout=timeout_s)
            learn = self._learn.task
            with self._learn_guarded(), running(learn, self._ao):
                self._learn.arm(settle_s, width_s, self._ao_start)
                self._ao.start()
                self._ao.wait_until_done(timeout=timeout_s)
                learn.wait_until_done(timeout=timeout_s)

    def safe_state(self) -> None:
        """Stop whatever runs, ramp every output from the values last written to its
        ``safe_v`` (each write within every limit) and idle the learn line low.

        Every step is tried even when an earlier one fails (each failure is logged); a ramp
        write that fails is followed by one write of the safe values; only a failure to
        write the safe values raises, after the other steps. On a closed DAQ this only logs:
        closing already left the outputs safe.
        """
        if self._closed:
            log.info("safe_state: the DAQ of %s is closed", self._wiring.name)
            return
        try:
            path = safe_path(self._limits, self._held_v)
        except DaqError as e:
            log.warning("safe state: %s; going there in one write", e)
            path = self._safe_v[None, :]
        self._safe_state(path, "safe state")

    def _safe_state(self, path: np.ndarray, what: str) -> None:
        self._op = what
        quietly(f"{what}: resetting the watchdog", self._kick)
        quietly(f"{what}: stopping the output task", self._ao.stop)
        written = self._ramp(path, what)
        quietly(f"{what}: idling the learn line", self._learn.idle)
        quietly(f"{what}: stopping the input task", self._ai.stop)
        if not written and set(self._watchdogs.expired()) >= {device_of(ch) for ch in self.ao_channels}:
            log.warning("%s: the outputs could not be written, but the expired watchdog holds them at their safe "
                        "values", what)
            written = True
        if not written:
            guard = ("the watchdog drives them there after {:g} s".format(self._timing.watchdog_s)
                     if all(self.hardware_watchdog.get(device_of(ch)) for ch in self.ao_channels)
                     else "no hardware watchdog guards them all")
            raise DaqError(
                f"{what}: could not write the safe values to {', '.join(self.ao_channels)} (see the log); {guard}"
            )

    def _ramp(self, path: np.ndarray, what: str) -> bool:
        """Write the rows of ``path``, the watchdog reset before each; after a failed write,
        one write of the safe values. True when the safe values were written."""
        for k, row in enumerate(path):
            if k:
                quietly(f"{what}: resetting the watchdog", self._kick)
            if not quietly(f"{what}: writing {'the safe values' if k == len(path) - 1 else f'ramp step {k + 1}'}",
                           lambda row=row: self._write_static(row)):
                if k == len(path) - 1:
                    return False
                log.warning("%s: the ramp to the safe values stopped at step %d of %d; going there in one write",
                            what, k + 1, len(path))
                return quietly(f"{what}: writing the safe values", lambda: self._write_static(self._safe_v))
            self._held_v = row.copy()
        return True

    def identity(self) -> str:
        """Every device's product type and serial number, e.g.
        ``"PXI1Slot2: NI PXIe-6738 SN 01F2A3B4; PXI1Slot3: NI PXIe-6363 SN 01E0C0DE"``."""
        with translated("identity"):
            parts = []
            for name in self._wiring.daq_devices:
                device = self._system.devices[name]
                parts.append(f"{name}: NI {device.product_type} SN {device.serial_num:08X}")
            return "; ".join(parts)

    def settings(self) -> dict:
        """The tasks' settings as DAQmx reports them (see
        :class:`~instruments.interfaces.Configured`), a flat dict, e.g. ``{"PXI1Slot2/ao0.min_v":
        0.0, "PXI1Slot2/ao0.max_v": 0.45, "PXI1Slot3/ai0.terminal_config": "RSE",
        "ao.timing": "ON_DEMAND", "ai.timing": "SAMPLE_CLOCK", "ai.sample_rate_hz": 100000.0,
        "learn.kind": "counter", "watchdog.PXI1Slot2.covers": "ao",
        "watchdog.PXI1Slot2.timeout_s": 2.0, ...}``."""
        with self._operation("settings"):
            out: dict = {}
            for o, ch in zip(self._wiring.outputs, self._ao_chans):
                out[f"{o.channel}.min_v"] = float(ch.ao_min)
                out[f"{o.channel}.max_v"] = float(ch.ao_max)
            for i, ch in zip(self._wiring.inputs, self._ai_chans):
                out[f"{i.channel}.min_v"] = float(ch.ai_min)
                out[f"{i.channel}.max_v"] = float(ch.ai_max)
                out[f"{i.channel}.terminal_config"] = ch.ai_term_cfg.name
            for role, task in (("ao", self._ao), ("ai", self._ai)):
                timing = task.timing.samp_timing_type
                out[f"{role}.timing"] = timing.name
                if timing == SampleTimingType.SAMPLE_CLOCK:
                    out[f"{role}.sample_rate_hz"] = float(task.timing.samp_clk_rate)
                    out[f"{role}.sample_mode"] = task.timing.samp_quant_samp_mode.name
                    out[f"{role}.samples_per_channel"] = int(task.timing.samp_quant_samp_per_chan)
            out["learn.line"] = self._wiring.learn_line
            out.update(self._learn.settings())
            for device, covers in self.hardware_watchdog.items():
                out[f"watchdog.{device}.covers"] = covers
                if device in self._watchdogs:
                    out[f"watchdog.{device}.timeout_s"] = self._watchdogs.timeout_s(device)
            out["watchdog.host_guarded"] = self._wiring.host_guarded_summary()
            return out

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
        with translated("open: listing the DAQ devices"):
            present = set(self._system.devices.device_names)
        for name, model in self._wiring.daq_devices.items():
            if name not in present:
                listed = ", ".join(sorted(present)) or "none"
                raise DaqError(f"DAQ device {name} ({model}) not found; present: {listed}")
            with translated(f"open: identifying {name}"):
                product = self._system.devices[name].product_type
            if product != model:
                raise DaqError(f"DAQ device {name} is a {product}, but wiring {self._wiring.name} says {model}")

    def _new_task(self, role: str) -> Task:
        with translated(f"open: creating the {role} task"):
            task = Task(f"{self._wiring.name}-{role}")
        self._tasks.append(task)
        return task

    def _learn_line(self, task: Task) -> CounterLine | DigitalLine:
        line = self._wiring.learn_line
        with translated(f"open: learn line {line}"):
            if "/ctr" in line:
                return CounterLine(task, line, self._timing)
            if "/port" in line:
                usage = self._system.devices[device_of(line)].do_trig_usage
                timed = TriggerUsage.START in usage and self._models[device_of(line)].hw_timed_line(line)
                return DigitalLine(task, line, self._rate_hz, timed)
        raise DaqError(f"learn line {line!r} is neither a counter (Dev/ctr0) nor a digital line (Dev/port0/line0)")

    def _release(self) -> None:
        """Close every task, then stop and close the watchdogs, last so that they guard the
        outputs to the end; a failure is logged and the rest are still released."""
        for task in reversed(self._tasks):
            quietly(f"closing task {task.name}", task.close)
        self._watchdogs.release()
        self._tasks.clear()

    # -- operations ------------------------------------------------------------------------
    @contextmanager
    def _operation(self, name: str) -> Iterator[None]:
        if self._closed:
            raise DaqError(f"{name}: the DAQ of {self._wiring.name} is closed")
        self._op = name
        with translated(name):
            yield

    @contextmanager
    def _learn_guarded(self) -> Iterator[None]:
        """Whatever leaves the block (an error, a KeyboardInterrupt), the learn line is
        driven low first; a failure to do so is logged, the first exception is raised."""
        try:
            yield
        except BaseException:
            quietly("driving the learn line low", self._learn.idle)
            raise

    def _kick(self) -> None:
        self._watchdogs.kick(self._op)

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
            start_on(self._ai, trigger)

        self._ai_config.ensure(("clocked", n_samples, trigger), configure)
        self._ai_buf = self._ai_samples.shaped(n_samples)

