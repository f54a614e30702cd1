"""The nidaqmx fake's tasks as the driver configures them (see :mod:`fake_nidaqmx`): the
autospecced ``Task``, its channel collections and channels, timing, start trigger and
streams; their methods and properties given DAQmx's checks (a closed task, a running one,
values outside the device's range or not of their enum), and configuring a task taking it
back to unverified. What starting, stopping and waiting do is :mod:`fake_nidaqmx_states`.
"""

from __future__ import annotations

import functools
import warnings
from unittest import mock

import nidaqmx
import nidaqmx.errors
from fake_nidaqmx_common import TaskState, bound, daq_error, enum_check, on_first_use, spec
from nidaqmx.constants import AcquisitionType, Edge, Level, SampleTimingType, TerminalConfiguration
from nidaqmx.error_codes import DAQmxErrors as E
from nidaqmx.task import InStream, OutStream, Timing
from nidaqmx.task.channels import AIChannel, AOChannel, COChannel, DOChannel
from nidaqmx.task.collections import AIChannelCollection, AOChannelCollection, COChannelCollection, DOChannelCollection
from nidaqmx.task.triggering import StartTrigger, Triggers

from instruments.daq import models

CHANNEL_ARGS = {
    "ao": {"ao_min": "min_val", "ao_max": "max_val"},
    "ai": {"ai_min": "min_val", "ai_max": "max_val", "ai_term_cfg": "terminal_config"},
    "co": {"co_pulse_idle_state": "idle_state", "co_pulse_time_initial_delay": "initial_delay",
           "co_pulse_low_time": "low_time", "co_pulse_high_time": "high_time"},
    "do": {},
}
"""Channel property -> the ``add_*_chan`` argument that sets it."""


class TasksMixin:
    """:class:`~fake_nidaqmx.FakeNidaqmx`'s tasks (it holds ``tasks``, ``states`` and the
    streams' tasks; :mod:`fake_nidaqmx_states` runs them)."""

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
            return impl(**bound(real, args, kwargs)) if real is not None else impl(*args, **kwargs)

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
            on_first_use(task, attribute, make)
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
            a = bound(real, args, kwargs)
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
            for name, argument in CHANNEL_ARGS[kind].items():
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
                    "ai_term_cfg": enum_check("DAQmx_AI_TermCfg", TerminalConfiguration, task)}
        if kind == "co":
            shortest, longest = m.co_min_pulse_s, m.co_max_pulse_s
            return {"co_pulse_high_time": within("DAQmx_CO_Pulse_HighTime", shortest, longest),
                    "co_pulse_low_time": within("DAQmx_CO_Pulse_LowTime", shortest, longest),
                    "co_pulse_time_initial_delay": within("DAQmx_CO_Pulse_Time_InitialDelay", 0.0, longest),
                    "co_pulse_idle_state": enum_check("DAQmx_CO_Pulse_IdleState", Level, task)}
        return {}

    def _timing(self, task, state: TaskState) -> None:
        task.timing = spec(Timing)
        timing = task.timing
        store = {"samp_timing_type": SampleTimingType.ON_DEMAND}

        def clocked():
            if state.timing_type != SampleTimingType.SAMPLE_CLOCK:
                raise daq_error("Specified property is not supported by the device or is not applicable to the task."
                                "\nProperty: DAQmx_SampClk_Rate", E.ATTRIBUTE_NOT_SUPPORTED_IN_TASK_CONTEXT, state.name)

        check_type = enum_check("DAQmx_SampTimingType", SampleTimingType, state.name)

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
