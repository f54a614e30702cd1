"""The safety layer: every output value passes the limits before it reaches a DAQ.

Three kinds of limit, all from the wiring and all checked before anything is written:

- per channel: ``min_v <= V <= max_v`` (the wiring check keeps these inside the device's
  range);
- across channels: ``|V(a) - V(b)| <= max_diff_v`` for named pairs of outputs;
- ramp: ``|V - V_previous| <= max_step_v`` per write, from the value the channel holds.

:class:`Limits` checks one output vector or a whole plan (a sequence of vectors) without
hardware. :class:`SafeDaq` wraps any :class:`~instruments.interfaces.BoundaryDaq` and refuses
an out-of-limit write with :class:`LimitError` before the DAQ sees it. :class:`SafetyGuard`
is the context a run lives in: on any exception, SIGINT, SIGTERM or interpreter exit it
drives the outputs to the safe state and closes every instrument; it polls the power supply
and stops the run on an over-current.
"""

from __future__ import annotations

import atexit
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numba
import numpy as np

from .interfaces import BoundaryDaq, OverCurrent, SourceMeter
from .wiring import Wiring

log = logging.getLogger(__name__)

MAX_RAMP_WRITES = 1_000_000
"""The most writes one ramp may take (at 1 ms a write, about 17 minutes)."""

# violation codes of _first_violation
_LOW, _HIGH, _STEP, _CROSS, _NAN = 1, 2, 3, 4, 5


@numba.njit(cache=True, nogil=True)
def _first_violation(v, prev, lo, hi, step, ca, cb, cmax):  # pragma: no cover - compiled
    """(code, index) of the first limit ``v`` breaks, or (0, -1)."""
    for i in range(v.size):
        x = v[i]
        if not np.isfinite(x):
            return _NAN, i
        if x < lo[i]:
            return _LOW, i
        if x > hi[i]:
            return _HIGH, i
        if abs(x - prev[i]) > step[i]:
            return _STEP, i
    for k in range(ca.size):
        if abs(v[ca[k]] - v[cb[k]]) > cmax[k]:
            return _CROSS, k
    return 0, -1


class LimitError(ValueError):
    """An output value breaks a limit; nothing was written. The message names the channel,
    the value and the limit (and the plan step, when checking a plan)."""


class Interrupted(Exception):
    """The run was stopped by a signal (SIGINT or SIGTERM); outputs are safe.

    Attributes:
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
    """

    def __init__(self, signal_name: str):
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name


@dataclass(frozen=True)
class Limits:
    """The limits of every output, in the DAQ's channel order.

    Attributes:
        channels: output channel names (N,).
        min_v, max_v: per-channel bounds (V), (N,).
        max_step_v: per-channel ramp limit per write (V), (N,); inf for none.
        safe_v: the safe value of each channel (V), (N,).
        cross_a, cross_b: (K,) channel indices of each cross-channel pair.
        cross_max_v: (K,) the largest allowed ``|V(a) - V(b)|`` (V).
    """

    channels: tuple[str, ...]
    min_v: np.ndarray
    max_v: np.ndarray
    max_step_v: np.ndarray
    safe_v: np.ndarray
    cross_a: np.ndarray
    cross_b: np.ndarray
    cross_max_v: np.ndarray

    @classmethod
    def from_wiring(cls, wiring: Wiring) -> "Limits":
        """The limits of a sound wiring (ValueError listing its problems otherwise)."""
        lay = wiring.layout()
        index = {ch: i for i, ch in enumerate(wiring.ao_channels)}
        cross = wiring.cross_limits
        return cls(
            wiring.ao_channels, lay.min_v, lay.max_v, lay.max_step_v, lay.safe_v,
            np.array([index[c.a] for c in cross], np.int64),
            np.array([index[c.b] for c in cross], np.int64),
            np.array([c.max_diff_v for c in cross], float),
        )

    def violation(self, values_v: np.ndarray, previous_v: np.ndarray | None = None) -> str | None:
        """What ``values_v`` breaks (one message), or None when it is inside every limit.

        ``previous_v`` is what the outputs hold now (the safe values when None).
        """
        v = np.ascontiguousarray(values_v, dtype=float)
        if v.shape != self.min_v.shape:
            return f"expected {self.min_v.size} output values, got shape {v.shape}"
        prev = self.safe_v if previous_v is None else previous_v
        code, i = _first_violation(v, prev, self.min_v, self.max_v, self.max_step_v,
                                   self.cross_a, self.cross_b, self.cross_max_v)
        if code == 0:
            return None
        if code == _CROSS:
            a, b = self.channels[self.cross_a[i]], self.channels[self.cross_b[i]]
            d = abs(v[self.cross_a[i]] - v[self.cross_b[i]])
            return f"{a} - {b}: difference {d:.6g} V exceeds the cross-channel limit {self.cross_max_v[i]:g} V"
        ch = self.channels[i]
        if code == _NAN:
            return f"{ch}: value {v[i]} is not a number"
        if code == _LOW:
            return f"{ch}: {v[i]:.6g} V is below its limit {self.min_v[i]:g} V"
        if code == _HIGH:
            return f"{ch}: {v[i]:.6g} V is above its limit {self.max_v[i]:g} V"
        return (f"{ch}: a step of {abs(v[i] - prev[i]):.6g} V (from {prev[i]:.6g} V to {v[i]:.6g} V) "
                f"exceeds its ramp limit {self.max_step_v[i]:g} V per write")

    def check(self, values_v: np.ndarray, previous_v: np.ndarray | None = None) -> None:
        """Raise :class:`LimitError` if ``values_v`` breaks any limit (see :meth:`violation`)."""
        problem = self.violation(values_v, previous_v)
        if problem is not None:
            raise LimitError(problem)

    def check_plan(self, writes: Iterable[np.ndarray], start_v: np.ndarray | None = None) -> int:
        """Check a sequence of output vectors, each against the one before (the first against
        ``start_v``, the safe values by default), without hardware.

        Returns:
            the number of writes checked.

        Raises:
            LimitError: naming the first write (from 0) that breaks a limit.
        """
        n = 0
        for n, problem in enumerate(self._plan_violations(writes, start_v), 1):
            if problem is not None:
                raise LimitError(f"write {n - 1} of the plan: {problem}")
        return n

    def _plan_violations(self, writes: Iterable[np.ndarray], start_v: np.ndarray | None) -> Iterator[str | None]:
        """What each write breaks (None when nothing), against the write before it (the
        first against ``start_v``, the safe values when None); stops after the first."""
        prev = self.safe_v if start_v is None else np.asarray(start_v, float)
        for values in writes:
            problem = self.violation(values, prev)
            yield problem
            if problem is not None:
                return
            prev = np.asarray(values, float)

    def safe_ramp_writes(self) -> int:
        """The most writes a ramp to the safe values takes from anywhere inside the limits
        (the safe state's own write included): the ramp from each output's farther limit,
        as :meth:`ramp` plans it, at least 1."""
        far = np.where(self.max_v - self.safe_v >= self.safe_v - self.min_v, self.max_v, self.min_v)
        return max(1, len(self.ramp(far, self.safe_v)))

    def ramp(self, from_v: np.ndarray, to_v: np.ndarray) -> np.ndarray:
        """Intermediate vectors (M, N) from ``from_v`` to ``to_v`` (inclusive of the end),
        each step within every ramp limit; straight lines in voltage.

        Every step passes the ramp check exactly as :meth:`violation` computes it: equal
        steps of ``|d| / M`` can come out a rounding error longer than the limit when
        ``|d| / max_step_v`` is (nearly) whole, so the path is checked as it will be and
        takes one step more wherever a step would be a hair too long.
        """
        from_v = np.asarray(from_v, float)
        to_v = np.asarray(to_v, float)
        d = to_v - from_v
        with np.errstate(invalid="ignore", divide="ignore"):
            need = np.max(np.abs(d) / self.max_step_v, initial=0.0)
        if not np.isfinite(need):
            # a NaN or infinite target: one write, which the check then refuses by name
            return to_v[None, :].copy()
        if need > MAX_RAMP_WRITES:
            raise LimitError(f"a ramp from {from_v} V to {to_v} V takes {need:.3g} writes within the ramp limits "
                             f"{self.max_step_v} V; more than {MAX_RAMP_WRITES:,} is refused")
        m = max(1, int(np.ceil(need)))
        for _ in range(8):
            frac = np.arange(1, m + 1)[:, None] / m
            path = from_v + frac * d
            path[-1] = to_v  # exactly: a rounded end could sit a hair outside a limit
            steps = np.abs(np.diff(path, axis=0, prepend=from_v[None, :]))
            if not (steps > self.max_step_v).any():
                return path
            m += 1
        # each step more shortens every step by max_step_v / m, far beyond any rounding error
        raise LimitError(f"no ramp of {m} writes from {from_v} V to {to_v} V keeps within {self.max_step_v} V")


class SafeDaq:
    """A :class:`~instruments.interfaces.BoundaryDaq` whose every write is checked first.

    Remembers what the outputs hold (the safe values after opening and after
    :meth:`safe_state`) so the ramp limit compares against the real previous value. A
    refused write raises :class:`LimitError` and leaves the DAQ untouched.
    """

    def __init__(self, daq: BoundaryDaq, limits: Limits):
        if tuple(daq.ao_channels) != tuple(limits.channels):
            raise ValueError(f"limits are for {limits.channels}, the DAQ has {daq.ao_channels}")
        self.daq = daq
        self.limits = limits
        self.ao_channels = daq.ao_channels
        self.ai_channels = daq.ai_channels
        self._held = limits.safe_v.copy()
        self.ramp_failure: str | None = None

    @property
    def held_v(self) -> np.ndarray:
        """What the outputs were last set to (V), a copy."""
        return self._held.copy()

    def _accept(self, values_v) -> np.ndarray:
        values = np.asarray(values_v, dtype=float)
        self.limits.check(values, self._held)
        return values

    def write(self, values_v) -> None:
        values = self._accept(values_v)
        self.daq.write(values)
        self._held[:] = values

    def write_and_read(self, values_v, settle_s: float, n_samples: int) -> np.ndarray:
        values = self._accept(values_v)
        self._held[:] = values  # set before the call: a failed read may have written already
        return self.daq.write_and_read(values, settle_s, n_samples)

    def write_and_pulse(self, values_v, settle_s: float, width_s: float) -> None:
        values = self._accept(values_v)
        self._held[:] = values
        self.daq.write_and_pulse(values, settle_s, width_s)

    def write_and_read_many(self, values_v, settle_s: float, n_samples: int) -> np.ndarray:
        """Every row of ``values_v`` (B, N) checked as a write, each against the row before
        (the first against what the outputs hold now), before the DAQ sees any; a refusal
        names the row. Afterwards the outputs hold the last row."""
        rows = np.asarray(values_v, dtype=float)
        if rows.ndim != 2 or rows.shape[0] < 1:
            raise LimitError(f"write_and_read_many: expected rows of output values (B, N), B >= 1, got shape {rows.shape}")
        for k, problem in enumerate(self.limits._plan_violations(rows, self._held)):
            if problem is not None:
                raise LimitError(f"write_and_read_many row {k} of {rows.shape[0]}: {problem}")
        self._held[:] = rows[-1]  # set before the call: a failed batch may have written already
        return self.daq.write_and_read_many(rows, settle_s, n_samples)

    def ramp_to(self, values_v) -> None:
        """Go to ``values_v`` in steps within the ramp limits (each step checked)."""
        for v in self.limits.ramp(self._held, values_v):
            self.write(v)

    def read(self, n_samples: int = 1) -> np.ndarray:
        return self.daq.read(n_samples)

    def pulse(self, width_s: float) -> None:
        self.daq.pulse(width_s)

    def safe_state(self) -> None:
        """Ramp from what the outputs hold to their safe values, every write inside every
        limit (the path is a straight line between two states that both keep the
        cross-channel limits, so every point on it keeps them too), then the DAQ's own safe
        state (stop, the safe values, learn line low).

        When a ramp write fails (the DAQ in error, a signal during the ramp), the rest of the
        ramp is skipped and the DAQ's safe state goes to the safe values in one write; that
        is logged and kept in :attr:`ramp_failure`. The longest ramp is
        :meth:`Limits.safe_ramp_writes` writes.
        """
        self.ramp_failure = None
        try:
            path = self.limits.ramp(self._held, self.limits.safe_v)
            for v in path[:-1]:
                self.write(v)
        except BaseException as exc:
            self.ramp_failure = f"{type(exc).__name__}: {exc}"
            log.warning("ramp to the safe state stopped at %s V (%s); going there in one write",
                        np.array2string(self._held, precision=4), self.ramp_failure)
            self.daq.safe_state()
            self._held[:] = self.limits.safe_v
            if not isinstance(exc, Exception):
                raise
            return
        self.daq.safe_state()
        self._held[:] = self.limits.safe_v

    def identity(self) -> str:
        return self.daq.identity()

    def settings(self) -> dict:
        """The DAQ's settings (see :class:`~instruments.interfaces.Configured`), ``{}`` when
        the DAQ cannot tell."""
        settings = getattr(self.daq, "settings", None)
        return {} if settings is None else dict(settings())

    def close(self) -> None:
        """Ramp to the safe state (see :meth:`safe_state`) unless the outputs are there
        already, then close the DAQ (whose close goes to its safe state too), even when the
        ramp fails."""
        try:
            if not np.array_equal(self._held, self.limits.safe_v):
                self.safe_state()
        finally:
            self.daq.close()


class SafetyGuard:
    """The context a run lives in: whatever ends it, the bench is left safe.

    On leaving the context (normally, by any exception, by SIGINT or SIGTERM turned into
    :class:`Interrupted`) and at interpreter exit, :meth:`shutdown` drives the DAQ's outputs
    to the safe state, switches the source-measure unit's output off, and closes every
    instrument, each step attempted even if an earlier one fails. A power-supply over-current
    found by :meth:`check` raises :class:`~instruments.interfaces.OverCurrent` (and so ends
    the run safely).

    Args:
        daq: the DAQ whose outputs go safe (a :class:`SafeDaq` or any BoundaryDaq).
        instruments: other instruments to close (source-measure unit, multimeter, supply,
            bus), each with ``close()``; a source-measure unit is switched off first.
        psu: the power supply to watch, or None.
        psu_channels: its channels to watch for over-current.
        psu_poll_s: how often :meth:`check` asks the supply (s), default 0.5.
        defer_signals: False: a signal raises :class:`Interrupted` at once. True: the first
            signal only sets :attr:`stop_requested` (the runner finishes its step and asks
            :meth:`check`, which raises); a second signal raises at once.
        clock: monotonic clock (s), for the supply's poll interval.
        on_event: called with a message for every safety event (for the run's event log).
    """

    def __init__(self, daq, instruments: Iterable = (), psu=None, psu_channels: Iterable[int] = (),
                 psu_poll_s: float = 0.5, defer_signals: bool = False,
                 clock: Callable[[], float] = time.monotonic, on_event: Callable[[str], None] | None = None):
        self.daq = daq
        self.instruments = [i for i in instruments if i is not None]
        self.psu = psu
        self.psu_channels = tuple(psu_channels)
        self.psu_poll_s = float(psu_poll_s)
        self.defer_signals = defer_signals
        self.clock = clock
        self.on_event = on_event or (lambda message: None)
        self.stop_requested: str | None = None
        self.errors: list[str] = []
        self._next_poll = -np.inf
        self._done = False
        self._old_handlers: dict[int, object] = {}

    # -- context -------------------------------------------------------------------------------
    def __enter__(self) -> "SafetyGuard":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        atexit.register(self.shutdown)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is not None:
                self.on_event(f"safe state after {type(exc).__name__}: {exc}")
            self.shutdown(exc)
        finally:
            for sig, old in self._old_handlers.items():
                signal.signal(sig, old)
            self._old_handlers.clear()
            atexit.unregister(self.shutdown)

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        first = self.stop_requested is None
        self.stop_requested = name
        self.on_event(f"{name} received")
        if not (self.defer_signals and first):
            raise Interrupted(name)

    # -- during the run ------------------------------------------------------------------------
    def check(self) -> None:
        """Between steps: raise :class:`Interrupted` if a stop was requested, and
        :class:`OverCurrent` if the supply tripped (asked at most every ``psu_poll_s``)."""
        if self.stop_requested is not None:
            raise Interrupted(self.stop_requested)
        if self.psu is not None and self.psu_channels:
            now = self.clock()
            if now >= self._next_poll:
                self._next_poll = now + self.psu_poll_s
                for ch in self.psu_channels:
                    if self.psu.over_current(ch):
                        message = f"power supply channel {ch} tripped its over-current protection ({self.psu.identity()})"
                        self.on_event(message)
                        raise OverCurrent(message)

    # -- the end -------------------------------------------------------------------------------
    def shutdown(self, cause: BaseException | None = None) -> None:
        """Outputs safe, SMU off, everything closed; idempotent, never raises. Failures are
        kept in :attr:`errors` (and reported through ``on_event``).

        In order: the DAQ ramps to its safe state (:meth:`SafeDaq.safe_state`); each
        source-measure unit goes to its safe state (its own ``safe_state()``, which on
        :class:`~instruments.safe_instruments.SafeSourceMeter` ramps the level to 0 V before
        switching off; else ``output(False)``); when ``cause`` is a fault (any exception but
        :class:`Interrupted`, e.g. :class:`~instruments.interfaces.OverCurrent`) the power
        supply goes to its safe state too (outputs off). A normal end or a requested stop
        leaves the supply on: the edge boards keep their learned state only while powered,
        and a stopped run resumes on them. Then the DAQ and every instrument are closed.
        """
        if self._done:
            return
        self._done = True
        steps = [("safe state", self.daq.safe_state)]
        for inst in self.instruments:
            if isinstance(inst, SourceMeter):
                off = getattr(inst, "safe_state", None) or (lambda i=inst: i.output(False))
                steps.append((f"output off ({type(inst).__name__})", off))
        fault = cause is not None and not isinstance(cause, Interrupted)
        if fault and self.psu is not None and hasattr(self.psu, "safe_state"):
            steps.append((f"supply outputs off ({type(self.psu).__name__})", self.psu.safe_state))
        steps.append(("close DAQ", self.daq.close))
        for inst in self.instruments:
            steps.append((f"close {type(inst).__name__}", inst.close))
        for what, call in steps:
            try:
                call()
            except Exception as exc:  # keep going: every remaining step still matters
                message = f"{what} failed: {type(exc).__name__}: {exc}"
                self.errors.append(message)
                self.on_event(message)
        failure = getattr(self.daq, "ramp_failure", None)
        if failure is not None:
            message = f"the ramp to the safe state was cut short ({failure}); the outputs went there in one write"
            self.errors.append(message)
            self.on_event(message)
