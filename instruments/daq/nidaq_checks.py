"""The NI-DAQmx driver's refusals (see :mod:`instruments.daq.nidaq`): the values an
operation is asked to write, a batch's rows, what the outputs hold at open, an operation's
samples and a learn pulse, each checked against the outputs' limits, the counter and the
watchdog, and refused with a :class:`~instruments.interfaces.DaqError` before anything is
sent to the DAQ.
"""

from __future__ import annotations

import numpy as np

from ..interfaces import DaqError
from ..safety import Limits
from ..wiring import Wiring
from .models import DaqModel
from .nidaq_lines import CounterLine, DigitalLine, device_of, positive_s

_REFUSALS_LISTED = 5
"""Out-of-limit values named in a refusal; a batch may hold thousands."""


class Checks:
    """The checks of one wiring's DAQ: its outputs' ``limits``, its devices' ``models``
    (device name -> model), its sample rate and its watchdog."""

    def __init__(self, wiring: Wiring, limits: Limits, models: dict[str, DaqModel]):
        self._wiring = wiring
        self._models = models
        self._ao_channels: tuple[str, ...] = wiring.ao_channels
        self._rate_hz = float(wiring.timing.sample_rate_hz)
        self._watchdog_s = wiring.timing.watchdog_s
        self._min_v, self._max_v, self._safe_v = limits.min_v, limits.max_v, limits.safe_v

    def held(self, held_v) -> np.ndarray:
        """What the outputs hold at open (V, one per output): ``held_v``, or each device's
        power-up value when None; DaqError unless one finite voltage per output."""
        if held_v is None:
            return np.array([self._models[device_of(ch)].ao_power_up_v for ch in self._ao_channels], np.float64)
        held = np.array(held_v, dtype=np.float64).reshape(-1) if np.ndim(held_v) else None
        if held is None or held.shape != self._safe_v.shape or not np.all(np.isfinite(held)):
            raise DaqError(f"held_v must be {self._safe_v.size} finite voltages (one per AO channel), got {held_v!r}")
        return held

    def pulse_s(self, name: str, delay_s: float, width_s: float, learn: CounterLine | DigitalLine) -> float:
        """How long a pulse of ``width_s`` (s) after ``delay_s`` (s) lasts (s); DaqError,
        nothing armed, when the counter cannot time it or it would outlast the watchdog."""
        positive_s("width_s", width_s)
        if isinstance(learn, CounterLine):
            m = self._models[device_of(self._wiring.learn_line)]
            if not m.co_min_pulse_s <= width_s <= m.co_max_pulse_s:
                raise DaqError(f"{name}: width_s {width_s!r} s is outside what the {m.name}'s counter can time "
                               f"({m.co_min_pulse_s:g}..{m.co_max_pulse_s:g} s)")
            if delay_s > m.co_max_pulse_s:
                raise DaqError(f"{name}: settle_s {delay_s!r} s is longer than the {m.name}'s counter can delay "
                               f"a pulse ({m.co_max_pulse_s:g} s)")
        duration_s = learn.duration_s(delay_s, width_s)
        if duration_s >= self._watchdog_s:
            raise DaqError(f"{name}: a pulse of {width_s:g} s after {delay_s:g} s takes {duration_s:g} s, "
                           f"not less than the {self._watchdog_s:g} s watchdog")
        return duration_s

    def values(self, values_v: np.ndarray) -> np.ndarray:
        """``values_v`` as contiguous float64, refused (DaqError, nothing written) unless it
        has one value per output, each inside that output's limits."""
        values_v = np.ascontiguousarray(values_v, dtype=np.float64)
        if values_v.shape != self._min_v.shape:
            raise DaqError(f"expected {self._min_v.size} output values (one per AO channel), got shape {values_v.shape}")
        self._refuse_outside(values_v[None], row_named=False)
        return values_v

    def rows(self, values_v: np.ndarray) -> np.ndarray:
        """``values_v`` as float64 rows ``(B, n_ao)``, B >= 1, refused (DaqError naming each
        bad row, channel and value; nothing written) unless every value is inside its
        output's limits."""
        rows = np.asarray(values_v, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] != self._min_v.size:
            raise DaqError(
                f"expected output values of shape (B, {self._min_v.size}) with B >= 1 "
                f"(one row per step, one column per AO channel), got shape {rows.shape}"
            )
        self._refuse_outside(rows, row_named=True)
        return rows

    def _refuse_outside(self, rows: np.ndarray, *, row_named: bool) -> None:
        bad = np.argwhere(~((rows >= self._min_v) & (rows <= self._max_v)))
        if not bad.size:
            return
        refused = [
            f"{f'row {r}: ' if row_named else ''}{self._ao_channels[k]} = {float(rows[r, k])!r} V "
            f"is outside its limits {self._min_v[k]:g}..{self._max_v[k]:g} V"
            for r, k in bad[:_REFUSALS_LISTED]
        ]
        if len(bad) > _REFUSALS_LISTED:
            refused.append(f"and {len(bad) - _REFUSALS_LISTED} more")
        raise DaqError("refused, nothing written: " + "; ".join(refused))

    def duration_s(self, name: str, n_samples: int) -> float:
        """How long ``n_samples`` sample periods last (s); refused if the watchdog would expire
        while they run."""
        duration_s = n_samples / self._rate_hz
        if duration_s >= self._watchdog_s:
            raise DaqError(
                f"{name}: {n_samples} samples at {self._rate_hz:g} Hz take {duration_s:g} s, "
                f"not less than the {self._watchdog_s:g} s watchdog"
            )
        return duration_s
