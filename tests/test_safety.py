"""The safety layer: limits checked before any write; the safe state whatever ends a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.interfaces import OverCurrent
from instruments.safety import Interrupted, Limits, LimitError, SafeDaq, SafetyGuard
from instruments.wiring import CrossLimit, default_wiring


class RecordingDaq:
    """A BoundaryDaq that records every call (the safety layer's view of a DAQ)."""

    def __init__(self, ao_channels, ai_channels=("ai0",), fail_on=()):
        self.ao_channels = tuple(ao_channels)
        self.ai_channels = tuple(ai_channels)
        self.calls: list[tuple] = []
        self.fail_on = set(fail_on)

    def _call(self, name, *args):
        self.calls.append((name, *args))
        if name in self.fail_on:
            raise RuntimeError(f"{name} failed")

    def write(self, values_v):
        self._call("write", tuple(values_v))

    def write_and_read(self, values_v, settle_s, n_samples):
        self._call("write_and_read", tuple(values_v), settle_s, n_samples)
        return np.zeros(len(self.ai_channels))

    def write_and_pulse(self, values_v, settle_s, width_s):
        self._call("write_and_pulse", tuple(values_v), settle_s, width_s)

    def write_and_read_many(self, values_v, settle_s, n_samples):
        self._call("write_and_read_many", tuple(map(tuple, values_v)), settle_s, n_samples)
        return np.zeros((len(values_v), len(self.ai_channels)))

    def read(self, n_samples=1):
        self._call("read", n_samples)
        return np.zeros(len(self.ai_channels))

    def pulse(self, width_s):
        self._call("pulse", width_s)

    def safe_state(self):
        self._call("safe_state")

    def identity(self):
        return "recording DAQ"

    def close(self):
        self._call("close")


class FakeSmu:
    def __init__(self, log):
        self.log = log

    def configure(self, compliance_a, nplc=1.0): ...
    def set_voltage(self, voltage_v): ...
    def measure_current(self, voltage_v): return 0.0
    def sweep(self, voltages_v): return voltages_v, voltages_v * 0
    def in_compliance(self): return False
    def identity(self): return "fake SMU"

    def output(self, on):
        self.log.append(("smu output", on))

    def close(self):
        self.log.append(("smu close",))


class FakePsu:
    def __init__(self, tripped=False):
        self.tripped = tripped
        self.asked = 0
        self.safe = 0

    def safe_state(self):
        self.safe += 1

    def over_current(self, channel):
        self.asked += 1
        return self.tripped

    def identity(self):
        return "fake PSU"

    def close(self):
        pass


def gen2_with_cross(max_diff_v=0.3, max_step_v=0.2):
    w = default_wiring("gen2")
    outs = tuple(replace(o, max_step_v=max_step_v) for o in w.outputs)
    return replace(w, outputs=outs, cross_limits=(CrossLimit(w.outputs[0].channel, w.outputs[1].channel, max_diff_v),))


@pytest.fixture
def limits():
    return Limits.from_wiring(gen2_with_cross())


# -- limits ----------------------------------------------------------------------------------


def test_values_inside_every_limit_pass(limits):
    assert limits.violation(np.full(6, 0.1)) is None


@pytest.mark.parametrize(
    "index, value, words",
    [(2, -0.01, "below its limit 0 V"), (3, 0.46, "above its limit 0.45 V"), (4, np.nan, "not a number")],
)
def test_a_value_outside_its_channel_limits_is_named(limits, index, value, words):
    v = np.full(6, 0.1)
    v[index] = value
    with pytest.raises(LimitError, match=f"PXI1Slot2/ao{index}: .*{words}"):
        limits.check(v)


def test_a_jump_beyond_the_ramp_limit_is_refused(limits):
    with pytest.raises(LimitError, match=r"ao5: a step of 0.25 V \(from 0 V to 0.25 V\) exceeds its ramp limit 0.2 V"):
        limits.check(np.r_[np.zeros(5), 0.25])
    limits.check(np.r_[np.zeros(5), 0.25], previous_v=np.r_[np.zeros(5), 0.1])


def test_cross_channel_difference_is_limited(limits):
    with pytest.raises(LimitError, match=r"ao0 - PXI1Slot2/ao1: difference 0.35 V exceeds the cross-channel limit 0.3 V"):
        limits.check(np.r_[0.4, 0.05, 0, 0, 0, 0], previous_v=np.r_[0.3, 0.1, 0, 0, 0, 0])


def test_wrong_number_of_values_is_refused(limits):
    with pytest.raises(LimitError, match="expected 6 output values"):
        limits.check(np.zeros(5))


@settings(max_examples=300, deadline=None)
@given(
    v=st.lists(st.floats(-0.2, 0.7), min_size=6, max_size=6),
    prev=st.lists(st.floats(0.0, 0.45), min_size=6, max_size=6),
)
def test_violation_agrees_with_a_plain_check(v, prev):
    lim = Limits.from_wiring(gen2_with_cross())
    v, prev = np.array(v), np.array(prev)
    ok = (
        np.all(v >= lim.min_v) and np.all(v <= lim.max_v)
        and np.all(np.abs(v - prev) <= lim.max_step_v)
        and abs(v[0] - v[1]) <= 0.3
    )
    assert (lim.violation(v, prev) is None) == ok


def test_a_plan_is_checked_write_by_write_without_hardware(limits):
    plan = [np.full(6, 0.1), np.full(6, 0.25), np.full(6, 0.45)]  # the last jumps 0.2 V: fine
    assert limits.check_plan(plan) == 3
    plan.append(np.r_[0.45, 0.25, 0.45, 0.45, 0.45, 0.45])
    plan.append(np.r_[0.45, 0.1, 0.45, 0.45, 0.45, 0.45])
    with pytest.raises(LimitError, match=r"write 4 of the plan: .*ao0 - PXI1Slot2/ao1"):
        limits.check_plan(plan)


@settings(max_examples=100, deadline=None)
@given(a=st.lists(st.floats(0, 0.45), min_size=6, max_size=6), b=st.lists(st.floats(0, 0.45), min_size=6, max_size=6))
def test_ramp_reaches_the_target_within_the_ramp_limits(a, b):
    lim = Limits.from_wiring(replace(gen2_with_cross(), cross_limits=()))
    path = lim.ramp(np.array(a), np.array(b))
    np.testing.assert_allclose(path[-1], b)
    assert lim.check_plan(path, start_v=np.array(a)) == len(path)


def _limits_with_ramp(step_v: float, n: int = 1, lo: float = -10.0, hi: float = 10.0) -> Limits:
    z = np.zeros(n, np.int64)[:0]
    return Limits(tuple(f"ao{i}" for i in range(n)), np.full(n, lo), np.full(n, hi), np.full(n, step_v),
                  np.zeros(n), z, z, np.zeros(0))


@pytest.mark.parametrize("target_v, step_v", [(0.45, 0.05), (0.3, 0.1), (0.7, 0.1), (0.9, 0.3), (0.45, 0.15)])
def test_a_ramp_whose_steps_are_a_whole_fraction_of_the_move_passes_its_own_check(target_v, step_v):
    """0 -> 0.45 V by 0.05 V was refused at 0.2 -> 0.25 V: equal steps rounded a hair long."""
    lim = _limits_with_ramp(step_v)
    path = lim.ramp(np.zeros(1), np.full(1, target_v))
    assert lim.check_plan(path, start_v=np.zeros(1)) == len(path)
    assert path[-1, 0] == target_v
    daq = RecordingDaq(lim.channels)
    SafeDaq(daq, lim).ramp_to(np.full(1, target_v))
    assert daq.calls[-1] == ("write", (target_v,))


def test_every_target_and_step_on_a_grid_ramps():
    """The 180 target/step combinations of which 70 failed before."""
    for target_v in np.round(np.arange(0.05, 0.95, 0.05), 2):
        for step_v in np.round(np.arange(0.01, 0.11, 0.01), 2):
            lim = _limits_with_ramp(step_v)
            path = lim.ramp(np.zeros(1), np.full(1, target_v))
            assert lim.check_plan(path, start_v=np.zeros(1)) == len(path), (target_v, step_v)


_volts = st.floats(-10, 10, allow_nan=False)


@settings(max_examples=300)
@given(start=st.lists(_volts, min_size=1, max_size=4), data=st.data(),
       step_v=st.one_of(st.floats(1e-4, 20), st.sampled_from([0.01, 0.05, 0.1, 0.15, 0.3, 1 / 3])))
def test_any_ramp_passes_its_own_check_and_ends_on_the_target(start, data, step_v):
    n = len(start)
    target = data.draw(st.lists(_volts, min_size=n, max_size=n))
    lim = _limits_with_ramp(step_v, n)
    path = lim.ramp(np.array(start), np.array(target))
    assert lim.check_plan(path, start_v=np.array(start)) == len(path)
    np.testing.assert_array_equal(path[-1], target)
    moves = np.abs(np.array(target) - np.array(start)).max()
    assert len(path) <= max(1, int(np.ceil(moves / step_v))) + 1  # never needlessly long


def test_a_ramp_of_more_writes_than_any_run_can_wait_for_is_refused():
    lim = _limits_with_ramp(1e-9)
    with pytest.raises(LimitError, match="writes within the ramp limits"):
        lim.ramp(np.zeros(1), np.full(1, 10.0))


def test_limits_need_a_sound_wiring():
    w = default_wiring("gen2")
    bad = replace(w, outputs=w.outputs[:-1])
    with pytest.raises(ValueError, match="target r3c3: no output clamps it on the clamped twin"):
        Limits.from_wiring(bad)


# -- the checked DAQ -------------------------------------------------------------------------


def test_out_of_limit_write_never_reaches_the_daq(limits):
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    for call in (lambda v: safe.write(v), lambda v: safe.write_and_read(v, 1e-3, 10),
                 lambda v: safe.write_and_pulse(v, 1e-3, 1e-4), lambda v: safe.write_and_read_many([v], 1e-3, 10)):
        with pytest.raises(LimitError):
            call(np.full(6, 0.5))
    assert daq.calls == []


def test_ramp_limit_compares_with_what_the_outputs_hold(limits):
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    safe.write(np.full(6, 0.2))
    safe.write_and_read(np.full(6, 0.4), 1e-3, 10)  # 0.2 V from the held 0.2 V
    with pytest.raises(LimitError, match="from 0.4 V to 0.1 V"):
        safe.write(np.full(6, 0.1))
    safe.safe_state()  # 0.4 V -> 0.2 V -> the safe 0 V, within the 0.2 V ramp limit
    safe.write(np.full(6, 0.1))  # from the safe 0 V now
    assert [c[0] for c in daq.calls] == ["write", "write_and_read", "write", "safe_state", "write"]
    assert daq.calls[2][1] == pytest.approx((0.2,) * 6)


def test_a_batch_within_every_limit_reaches_the_daq_whole_and_leaves_the_last_row_held(limits):
    daq = RecordingDaq(limits.channels, ai_channels=("ai0", "ai1"))
    safe = SafeDaq(daq, limits)
    rows = np.array([np.full(6, 0.1), np.full(6, 0.3), np.full(6, 0.2)])
    means = safe.write_and_read_many(rows, 1e-3, 10)
    assert means.shape == (3, 2)
    assert daq.calls == [("write_and_read_many", tuple(map(tuple, rows)), 1e-3, 10)]
    np.testing.assert_array_equal(safe.held_v, rows[-1])


@pytest.mark.parametrize(
    "bad_row, words",
    [
        (np.r_[0.1, 0.1, 0.1, 0.46, 0.1, 0.1], r"PXI1Slot2/ao3: 0.46 V is above its limit 0.45 V"),
        (np.r_[0.4, 0.05, 0.1, 0.1, 0.1, 0.1], r"ao0 - PXI1Slot2/ao1: difference 0.35 V exceeds the cross-channel"),
    ],
    ids=["channel", "cross-channel"],
)
def test_a_batch_with_a_row_out_of_limits_is_refused_naming_the_row(limits, bad_row, words):
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    safe.write(np.full(6, 0.1))
    rows = np.array([np.full(6, 0.1), np.full(6, 0.2), bad_row, np.full(6, 0.1)])
    with pytest.raises(LimitError, match=rf"^write_and_read_many row 2 of 4: .*{words}"):
        safe.write_and_read_many(rows, 1e-3, 10)
    assert [c[0] for c in daq.calls] == ["write"]
    np.testing.assert_array_equal(safe.held_v, np.full(6, 0.1))


def test_each_batch_row_is_ramp_limited_from_the_row_before(limits):
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    rows = np.array([np.full(6, 0.2), np.full(6, 0.4), np.full(6, 0.1)])
    with pytest.raises(LimitError, match=r"^write_and_read_many row 2 of 3: .*ao0: a step of 0.3 V \(from 0.4 V to 0.1 V\)"):
        safe.write_and_read_many(rows, 1e-3, 10)
    assert daq.calls == []


def test_the_first_batch_row_is_ramp_limited_from_what_the_outputs_hold(limits):
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    with pytest.raises(LimitError, match=r"^write_and_read_many row 0 of 2: .*from 0 V to 0.25 V"):
        safe.write_and_read_many(np.full((2, 6), 0.25), 1e-3, 10)
    safe.write(np.full(6, 0.1))
    safe.write_and_read_many(np.full((2, 6), 0.25), 1e-3, 10)
    assert [c[0] for c in daq.calls] == ["write", "write_and_read_many"]


@pytest.mark.parametrize("shape", [(6,), (0, 6), (2, 5)])
def test_a_batch_of_the_wrong_shape_is_refused(limits, shape):
    daq = RecordingDaq(limits.channels)
    with pytest.raises(LimitError, match="expected"):
        SafeDaq(daq, limits).write_and_read_many(np.zeros(shape), 1e-3, 10)
    assert daq.calls == []


def test_ramp_to_walks_in_allowed_steps(limits):
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    safe.ramp_to(np.full(6, 0.45))
    writes = [np.array(c[1]) for c in daq.calls]
    assert len(writes) == 3 and np.allclose(writes[-1], 0.45)
    np.testing.assert_allclose(safe.held_v, 0.45)


# -- the guard -------------------------------------------------------------------------------


def make_guard(limits, **kw):
    log: list = []
    daq = RecordingDaq(limits.channels, fail_on=kw.pop("fail_on", ()))
    smu = FakeSmu(log)
    return SafetyGuard(SafeDaq(daq, limits), instruments=[smu], **kw), daq, log


def test_an_exception_leaves_outputs_safe_and_instruments_closed(limits):
    guard, daq, log = make_guard(limits)
    with pytest.raises(ZeroDivisionError):
        with guard:
            guard.daq.write(np.full(6, 0.1))
            1 / 0
    assert [c[0] for c in daq.calls] == ["write", "safe_state", "close"]
    assert log == [("smu output", False), ("smu close",)]


def test_sigterm_stops_the_run_in_the_safe_state(limits):
    guard, daq, _ = make_guard(limits)
    with pytest.raises(Interrupted, match="SIGTERM"):
        with guard:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10**6):  # the handler runs between bytecodes
                pass
    assert daq.calls[-2:] == [("safe_state",), ("close",)]
    assert signal.getsignal(signal.SIGTERM) is not guard._on_signal


def test_deferred_sigint_lets_the_step_finish_then_stops(limits):
    guard, daq, _ = make_guard(limits, defer_signals=True)
    with pytest.raises(Interrupted, match="SIGINT"):
        with guard:
            os.kill(os.getpid(), signal.SIGINT)
            guard.daq.write(np.full(6, 0.1))  # the step in progress completes
            assert guard.stop_requested == "SIGINT"
            guard.check()
    assert [c[0] for c in daq.calls] == ["write", "safe_state", "close"]


def test_a_second_sigint_stops_at_once(limits):
    guard, _, _ = make_guard(limits, defer_signals=True)
    with pytest.raises(Interrupted):
        with guard:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**5):
                pass
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**6):
                pass
            pytest.fail("the second SIGINT did not stop the run")


def test_power_supply_over_current_stops_the_run(limits):
    psu = FakePsu(tripped=True)
    events: list[str] = []
    guard, daq, _ = make_guard(limits, psu=psu, psu_channels=[1], on_event=events.append)
    with pytest.raises(OverCurrent, match="channel 1 tripped"):
        with guard:
            guard.check()
    assert daq.calls[-2:] == [("safe_state",), ("close",)]
    assert any("over-current" in e for e in events)


def test_power_supply_is_polled_at_most_every_interval(limits):
    now = [0.0]
    psu = FakePsu()
    guard, _, _ = make_guard(limits, psu=psu, psu_channels=[1, 2], psu_poll_s=0.5, clock=lambda: now[0])
    for t in (0.0, 0.1, 0.4, 0.5, 0.6, 1.2):
        now[0] = t
        guard.check()
    assert psu.asked == 3 * 2  # at 0.0, 0.5 and 1.2 s, two channels each


def test_shutdown_goes_on_past_a_failing_step(limits):
    guard, daq, log = make_guard(limits, fail_on={"safe_state"})
    with guard:
        pass
    assert [c[0] for c in daq.calls] == ["safe_state", "close"]
    assert log[-1] == ("smu close",)
    assert guard.errors == ["safe state failed: RuntimeError: safe_state failed"]


def test_interpreter_exit_without_leaving_the_context_still_goes_safe(tmp_path):
    marker = tmp_path / "log.txt"
    script = textwrap.dedent(f"""
        from instruments.safety import SafetyGuard
        class Daq:
            def safe_state(self): open({str(marker)!r}, "a").write("safe\\n")
            def close(self): open({str(marker)!r}, "a").write("closed\\n")
        guard = SafetyGuard(Daq()).__enter__()
        raise SystemExit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3
    assert marker.read_text() == "safe\nclosed\n"


# -- the way to the safe state ------------------------------------------------------------------


def _ramp_writes(daq):
    return [np.array(c[1]) for c in daq.calls if c[0] == "write"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 0.45), min_size=6, max_size=6), st.floats(0.01, 0.45))
def test_the_safe_state_is_reached_by_a_ramp_inside_every_limit(held, max_step_v):
    limits = Limits.from_wiring(gen2_with_cross(max_diff_v=0.45, max_step_v=max_step_v))
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    safe._held[:] = held
    safe.safe_state()
    path = [np.array(held), *_ramp_writes(daq), limits.safe_v]
    for a, b in zip(path, path[1:]):
        assert limits.violation(b, a) is None
    assert daq.calls[-1] == ("safe_state",)
    assert len(path) - 1 <= limits.safe_ramp_writes()
    assert np.array_equal(safe.held_v, limits.safe_v)


def test_the_safe_ramp_bound_is_reached_from_the_far_end_of_the_limits(limits):
    # 0..0.45 V at 0.2 V a write: 0.45 -> 0.25 -> 0.05 -> 0 takes three writes
    assert limits.safe_ramp_writes() == 3
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    safe._held[:] = 0.45
    safe.safe_state()
    assert len(_ramp_writes(daq)) + 1 == 3


def test_closing_ramps_to_the_safe_state_before_the_daq_closes(limits):
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    safe.write(np.full(6, 0.2))
    safe.write(np.full(6, 0.4))
    safe.close()
    assert [c[0] for c in daq.calls] == ["write", "write", "write", "safe_state", "close"]


def test_a_ramp_that_fails_goes_to_the_safe_state_in_one_write_and_says_so(limits):
    daq = RecordingDaq(limits.channels)
    safe = SafeDaq(daq, limits)
    safe.write(np.full(6, 0.2))
    safe.write(np.full(6, 0.4))
    daq.fail_on = {"write"}
    events: list[str] = []
    guard = SafetyGuard(safe, on_event=events.append)
    with guard:
        pass
    assert [c[0] for c in daq.calls][-3:] == ["write", "safe_state", "close"]
    assert np.array_equal(safe.held_v, limits.safe_v)
    assert any("ramp to the safe state was cut short" in e and "write failed" in e for e in events)


def test_a_fault_switches_the_supply_off_a_requested_stop_does_not(limits):
    for cause, off in ((RuntimeError("DAQ lost"), 1), (OverCurrent("tripped"), 1), (Interrupted("SIGINT"), 0), (None, 0)):
        psu = FakePsu()
        guard = SafetyGuard(RecordingDaq(limits.channels), instruments=[psu], psu=psu, psu_channels=[1])
        guard.shutdown(cause)
        assert psu.safe == off, cause


def test_a_source_meter_with_a_safe_state_is_taken_there_not_just_switched_off(limits):
    log: list = []

    class RampingSmu(FakeSmu):
        def safe_state(self):
            log.append(("smu safe state",))

    guard = SafetyGuard(RecordingDaq(limits.channels), instruments=[RampingSmu(log)])
    guard.shutdown()
    assert log == [("smu safe state",), ("smu close",)]
