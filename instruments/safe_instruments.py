"""The source-meter and the supply inside the safety layer.

:class:`SafeSourceMeter` wraps any :class:`~instruments.interfaces.SourceMeter` that can
program its level without measuring (``set_voltage``), :class:`SafeSupply` any
:class:`~instruments.interfaces.PowerSupply`; each implements the interface it wraps, so the
controller and calibration see no difference, and each keeps these rules:

* the output is never switched on before its level is set (0 V by configuring, or a
  checked level) and its current limit is set;
* every level and every current limit is checked against its limits before anything is
  sent; a refusal is one :class:`~instruments.safety.LimitError` naming the instrument, the
  value and the limit;
* a level change with the output on goes in steps of at most ``max_step_v``, each step a
  write (``step_delay_s`` apart);
* :meth:`safe_state` ramps the level to 0 V and switches the output off (on a failed write:
  straight off, logged);
* a supply's tripped protection is cleared only by :meth:`SafeSupply.clear_protection`,
  and every such clear is reported through ``on_event``.

Both are built from a wiring's :class:`~instruments.wiring.Instrument` options with
``from_options``; the option names and defaults are on each ``from_options``. The safety
options are not the driver's: :func:`driver_options` strips them before the options reach
:func:`~instruments.visa.open_instrument`. Units: V, A, s.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .interfaces import PowerSupply, SourceMeter
from .safety import MAX_RAMP_WRITES, LimitError

log = logging.getLogger(__name__)

DEFAULT_SMU_STEP_V = 0.05
"""The source-meter's ramp step when the options give none (V per write)."""

SMU_SAFETY_OPTIONS = frozenset({"max_v", "min_v", "max_step_v", "step_delay_s"})
"""Options of a wiring's ``smu`` that are :class:`SafeSourceMeter`'s, not the driver's
(``compliance_a``, ``nplc`` and ``voltage_protection_v`` are both)."""
SUPPLY_SAFETY_OPTIONS = frozenset({"max_v", "max_current_a", "max_step_v", "step_delay_s"})
"""Options of a wiring's ``psu`` that are :class:`SafeSupply`'s, not the driver's."""

#: The E36312A's ratings per channel: (V, A).
_SUPPLY_RATINGS = {1: (6.0, 5.0), 2: (25.0, 1.0), 3: (25.0, 1.0)}


def driver_options(role: str, options: Mapping) -> dict:
    """``options`` without the safety layer's (for ``role`` ``"smu"`` or ``"psu"``): what the
    driver's ``setup`` takes."""
    safety = {"smu": SMU_SAFETY_OPTIONS, "psu": SUPPLY_SAFETY_OPTIONS}.get(role, frozenset())
    return {k: v for k, v in options.items() if k not in safety}


def _number(name: str, value, *, low: float = -math.inf, high: float = math.inf, low_open: bool = False) -> float:
    """``value`` as a float within its range, else ValueError naming ``name`` and the value."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not (math.isfinite(x) or (x == high == math.inf)) or x > high or x < low or (low_open and x == low):
        bound = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
        raise ValueError(f"{name}: {value!r} is outside {bound}")
    return x


def ramp_steps(from_v: float, to_v: float, max_step_v: float) -> list[float]:
    """The levels (V) from ``from_v`` to ``to_v``, excluding the start and including the end,
    in equal steps each within ``max_step_v`` of the one before (to a part in 1e9: an equal
    split of 0.45 V into 0.05 V steps comes out an ulp long, and is still nine steps).

    Raises:
        LimitError: more than :data:`~instruments.safety.MAX_RAMP_WRITES` steps.
    """
    d = to_v - from_v
    if d == 0:
        return []
    need = abs(d) / max_step_v
    if need > MAX_RAMP_WRITES:
        raise LimitError(f"a ramp from {from_v:g} V to {to_v:g} V takes {need:.3g} writes of {max_step_v:g} V; "
                         f"more than {MAX_RAMP_WRITES:,} is refused")
    n = max(1, math.ceil(need * (1 - 1e-12)))  # 0.45 / 0.05 is 9.000000000000002
    allowed = max_step_v * (1 + 1e-9)
    while True:
        steps = [from_v + d * k / n for k in range(1, n)] + [to_v]
        if all(abs(b - a) <= allowed for a, b in zip([from_v] + steps, steps)):
            return steps
        n += 1


class SafeSourceMeter:
    """A :class:`~instruments.interfaces.SourceMeter` whose every level is checked and ramped.

    The sequence it keeps: :meth:`configure` switches the output off, configures the
    source-meter, programs 0 V and sets the overvoltage protection covering the limits; only
    then can :meth:`output` switch on (configuring first, at ``compliance_a`` and ``nplc``,
    when nothing has yet); levels then move in steps of at most ``max_step_v``.

    Args:
        smu: the source-meter; it must have ``set_voltage(voltage_v)`` (a level without a
            reading); ``set_voltage_protection(voltage_v)`` is used when it has one.
        max_v, min_v: the levels allowed (V), ``min_v <= 0 <= max_v`` (0 V is the safe level).
        max_step_v: the largest change of level in one write (V), > 0 (inf: no ramp).
        compliance_a: the largest current limit allowed (A), > 0; also the one
            :meth:`output` configures with when nothing has been configured.
        nplc: integration when configuring by itself (power-line cycles).
        voltage_protection_v: the overvoltage protection to set (V); default the larger of
            ``|min_v|`` and ``|max_v|``; must cover both.
        step_delay_s: wait between ramp writes (s), >= 0.
        name: what messages call it, e.g. ``"smu"``.
        on_event: called with a message for every safety event (configured, protection, a
            ramp cut short), e.g. a run's event log.
        sleep: the wait between ramp writes (``time.sleep``; tests give their own).

    Raises:
        ValueError: a limit out of range, naming it.
        TypeError: ``smu`` cannot program a level without measuring.
    """

    def __init__(self, smu: SourceMeter, *, max_v: float, max_step_v: float, compliance_a: float,
                 min_v: float = 0.0, nplc: float = 1.0, voltage_protection_v: float | None = None,
                 step_delay_s: float = 0.0, name: str = "smu", on_event: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        if not callable(getattr(smu, "set_voltage", None)):
            raise TypeError(f"SafeSourceMeter needs a source-meter that programs its level without measuring "
                            f"(set_voltage); {type(smu).__name__} has none")
        self.max_v = _number("max_v", max_v, low=0.0, high=210.0)
        self.min_v = _number("min_v", min_v, low=-210.0, high=0.0)
        self.max_step_v = _number("max_step_v", max_step_v, low=0.0, low_open=True)
        self.compliance_a = _number("compliance_a", compliance_a, low=0.0, high=1.05, low_open=True)
        self.nplc = float(nplc)
        needed = max(abs(self.min_v), self.max_v)
        protection = needed if voltage_protection_v is None else _number(
            "voltage_protection_v", voltage_protection_v, low=0.0, high=210.0)
        if protection < needed:
            raise ValueError(f"voltage_protection_v: {voltage_protection_v!r} V does not cover the limits "
                             f"{self.min_v:g}..{self.max_v:g} V")
        self.voltage_protection_v = protection
        self.step_delay_s = _number("step_delay_s", step_delay_s, low=0.0)
        self.smu = smu
        self.name = name
        self.on_event = on_event or (lambda message: None)
        self._sleep = sleep
        self._level_v: float | None = None  # unknown until configured
        self._limit_a: float | None = None
        self._on = False
        self.ramp_failure: str | None = None

    @classmethod
    def from_options(cls, smu: SourceMeter, options: Mapping, *, max_v: float | None = None,
                     on_event: Callable[[str], None] | None = None) -> "SafeSourceMeter":
        """From a wiring's ``smu`` options (:class:`~instruments.wiring.Instrument.options`):

        * ``max_v`` (V): the highest level; default the ``max_v`` argument (e.g. the edge
          boards' node range, :data:`~instruments.wiring.NODE_MAX_V` of the wiring's kind);
          one of the two is required;
        * ``min_v`` (V, default 0): the lowest level;
        * ``max_step_v`` (V per write, default :data:`DEFAULT_SMU_STEP_V`);
        * ``compliance_a`` (A, required): the largest current limit;
        * ``nplc`` (default 1), ``voltage_protection_v`` (V, default covering the limits),
          ``step_delay_s`` (s, default 0).

        Raises:
            ValueError: a missing or bad option, naming it.
        """
        top = options.get("max_v", max_v)
        if top is None:
            raise ValueError("smu options: max_v is required (the highest level the source-meter may put out)")
        if options.get("compliance_a") is None:
            raise ValueError("smu options: compliance_a is required (the largest current limit)")
        return cls(smu, max_v=top, min_v=options.get("min_v", 0.0),
                   max_step_v=options.get("max_step_v", DEFAULT_SMU_STEP_V), compliance_a=options["compliance_a"],
                   nplc=options.get("nplc", 1.0), voltage_protection_v=options.get("voltage_protection_v"),
                   step_delay_s=options.get("step_delay_s", 0.0), on_event=on_event)

    # -- what it knows -------------------------------------------------------------------------
    @property
    def level_v(self) -> float | None:
        """The level last programmed through this wrapper (V), None before :meth:`configure`."""
        return self._level_v

    @property
    def output_on(self) -> bool:
        return self._on

    def identity(self) -> str:
        return self.smu.identity()

    def settings(self) -> dict:
        """The source-meter's own settings, read back from it."""
        return dict(self.smu.settings())

    def _refuse(self, problem: str) -> LimitError:
        return LimitError(f"{self.name} ({self.identity()}): {problem}")

    def _check_level(self, voltage_v: float) -> float:
        v = float(voltage_v)
        if not math.isfinite(v):
            raise self._refuse(f"level {voltage_v!r} V is not a number")
        if v > self.max_v:
            raise self._refuse(f"{v:.6g} V is above its limit {self.max_v:g} V")
        if v < self.min_v:
            raise self._refuse(f"{v:.6g} V is below its limit {self.min_v:g} V")
        return v

    # -- the sequence --------------------------------------------------------------------------
    def configure(self, compliance_a: float, nplc: float = 1.0) -> None:
        """Output off, the source-meter configured (current limit ``compliance_a`` A, at most
        the wrapper's, integration ``nplc``), 0 V programmed, overvoltage protection set."""
        limit = float(compliance_a)
        if not 0 < limit <= self.compliance_a:
            raise self._refuse(f"current limit {compliance_a!r} A is outside its limit (0, {self.compliance_a:g}] A")
        self.smu.output(False)
        self._on = False
        self.smu.configure(limit, nplc)
        self.smu.set_voltage(0.0)
        self._level_v = 0.0
        protect = getattr(self.smu, "set_voltage_protection", None)
        if protect is not None:
            protect(self.voltage_protection_v)
        else:
            self.on_event(f"{self.name}: {type(self.smu).__name__} has no overvoltage protection to set")
        self._limit_a = limit
        self.on_event(f"{self.name}: output off at 0 V, current limit {limit:g} A, overvoltage protection "
                      f"covering {self.voltage_protection_v:g} V")

    def _ensure_configured(self) -> None:
        if self._level_v is None or self._limit_a is None:
            self.configure(self.compliance_a, self.nplc)

    def output(self, on: bool) -> None:
        """Switch the output on (at the level programmed: 0 V after :meth:`configure`, which
        runs first when nothing is configured) or off."""
        if on:
            self._ensure_configured()
            self.smu.output(True)
            self._on = True
        else:
            self.smu.output(False)
            self._on = False

    def _ramp_to(self, voltage_v: float, *, last: Callable[[float], object] | None = None):
        """Program each step to ``voltage_v`` (checked), the last one with ``last`` when given."""
        steps = ramp_steps(self._level_v, voltage_v, self.max_step_v) or [voltage_v]
        result = None
        for k, v in enumerate(steps):
            if k:
                self._sleep(self.step_delay_s)
            if last is not None and k == len(steps) - 1:
                result = last(v)
            else:
                self.smu.set_voltage(v)
            self._level_v = v
        return result

    def set_voltage(self, voltage_v: float) -> None:
        """Go to ``voltage_v`` (V, within the limits) in steps of at most ``max_step_v``."""
        v = self._check_level(voltage_v)
        self._ensure_configured()
        self._ramp_to(v)

    def measure_current(self, voltage_v: float) -> float:
        """Ramp to ``voltage_v`` (V, within the limits) and return one current reading (A)."""
        v = self._check_level(voltage_v)
        self._ensure_configured()
        return self._ramp_to(v, last=self.smu.measure_current)

    def sweep(self, voltages_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A sweep run by the source-meter: every point within the limits and within
        ``max_step_v`` of the one before (the instrument steps through them at once), the
        first reached by a ramp; afterwards the level is read back from the instrument
        (``source_voltage``) when it can tell, else taken to be the last point."""
        v = np.asarray(voltages_v, dtype=float)
        if v.ndim != 1 or v.size < 1:
            raise self._refuse(f"a sweep needs at least one level, got shape {v.shape}")
        for k, x in enumerate(v):
            try:
                self._check_level(x)
            except LimitError as exc:
                raise LimitError(f"{exc} (sweep point {k})") from None
        jumps = np.abs(np.diff(v))
        if jumps.size and jumps.max() > self.max_step_v:
            k = int(np.argmax(jumps))
            raise self._refuse(f"sweep points {k} and {k + 1} ({v[k]:.6g} V, {v[k + 1]:.6g} V) are "
                               f"{jumps[k]:.6g} V apart, beyond its ramp limit {self.max_step_v:g} V per write")
        self._ensure_configured()
        self._ramp_to(float(v[0]))
        out = self.smu.sweep(v)
        read_back = getattr(self.smu, "source_voltage", None)
        self._level_v = float(read_back()) if read_back is not None else float(v[-1])
        return out

    def in_compliance(self) -> bool:
        return self.smu.in_compliance()

    def safe_state(self) -> None:
        """Ramp the level to 0 V, then switch the output off. A failing write ends the ramp:
        the output goes straight off (kept in :attr:`ramp_failure`, reported through
        ``on_event``); an unknown level (nothing configured) is switched off, then zeroed."""
        self.ramp_failure = None
        try:
            if self._level_v is not None:
                self._ramp_to(0.0)
        except Exception as exc:  # the output must still go off
            self.ramp_failure = f"{type(exc).__name__}: {exc}"
            self.on_event(f"{self.name}: the ramp to 0 V stopped at {self._level_v:g} V ({self.ramp_failure}); "
                          "output switched off there")
        self.smu.output(False)
        self._on = False
        if self._level_v != 0.0:
            self.smu.set_voltage(0.0)
            self._level_v = 0.0

    def close(self) -> None:
        """:meth:`safe_state`, then close the source-meter (even when the safe state failed)."""
        try:
            self.safe_state()
        finally:
            self.smu.close()


@dataclass(frozen=True)
class SupplyChannel:
    """The limits of one supply channel.

    Attributes:
        max_v: the highest voltage it may be set to (V), >= 0.
        max_current_a: the highest current limit (A), > 0.
        max_step_v: the largest change of voltage in one write with the output on (V), > 0
            (inf: no ramp).
    """

    max_v: float
    max_current_a: float
    max_step_v: float = math.inf

    def __post_init__(self):
        _number("max_v", self.max_v, low=0.0)
        _number("max_current_a", self.max_current_a, low=0.0, low_open=True)
        _number("max_step_v", self.max_step_v, low=0.0, low_open=True)


class SafeSupply:
    """A :class:`~instruments.interfaces.PowerSupply` whose channels keep their limits.

    Only the channels of ``channels`` can be set or switched on. At construction the supply's
    settings are read back (when it can report them): a channel already on above its limits
    is refused at once.

    Args:
        psu: the supply.
        channels: channel number -> its :class:`SupplyChannel` limits.
        step_delay_s: wait between ramp writes (s), >= 0.
        name: what messages call it, e.g. ``"psu"``.
        on_event: called with a message for every safety event (a protection cleared, a
            ramp cut short).
        sleep: the wait between ramp writes.

    Raises:
        LimitError: a channel is on beyond its limits.
    """

    def __init__(self, psu: PowerSupply, channels: Mapping[int, SupplyChannel], *, step_delay_s: float = 0.0,
                 name: str = "psu", on_event: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        if not channels:
            raise ValueError("channels: at least one channel must be under the safety layer")
        self.psu = psu
        self.channels = {int(c): lim for c, lim in channels.items()}
        self.step_delay_s = _number("step_delay_s", step_delay_s, low=0.0)
        self.name = name
        self.on_event = on_event or (lambda message: None)
        self._sleep = sleep
        self._voltage_v: dict[int, float | None] = dict.fromkeys(self.channels)
        self._limit_a: dict[int, float | None] = dict.fromkeys(self.channels)
        self._on: dict[int, bool] = dict.fromkeys(self.channels, False)
        self.ramp_failure: str | None = None
        self._read_back()

    @classmethod
    def from_options(cls, psu: PowerSupply, options: Mapping, *,
                     on_event: Callable[[str], None] | None = None) -> "SafeSupply":
        """From a wiring's ``psu`` options: ``channel`` (default 1) is put under the limits
        ``max_v`` (V; default the ``voltage_v`` option, else the channel's rating),
        ``max_current_a`` (A; default the ``current_limit_a`` option, else the rating) and
        ``max_step_v`` (V per write; default none); ``step_delay_s`` (s, default 0)."""
        channel = int(options.get("channel", 1))
        rated_v, rated_a = _SUPPLY_RATINGS.get(channel, (math.inf, math.inf))
        limits = SupplyChannel(
            max_v=options.get("max_v", options.get("voltage_v", rated_v)),
            max_current_a=options.get("max_current_a", options.get("current_limit_a", rated_a)),
            max_step_v=options.get("max_step_v", math.inf),
        )
        return cls(psu, {channel: limits}, step_delay_s=options.get("step_delay_s", 0.0), on_event=on_event)

    def _refuse(self, problem: str) -> LimitError:
        return LimitError(f"{self.name} ({self.identity()}): {problem}")

    def _read_back(self) -> None:
        """What the supply is set to now, for the channels under the limits."""
        read = getattr(self.psu, "settings", None)
        if read is None:
            return
        settings = read()
        for c, lim in self.channels.items():
            v, a = settings.get(f"ch{c}_voltage_v"), settings.get(f"ch{c}_current_limit_a")
            on = bool(settings.get(f"ch{c}_output_on", False))
            self._voltage_v[c] = None if v is None or v > lim.max_v else float(v)
            self._limit_a[c] = None if a is None or a > lim.max_current_a else float(a)
            self._on[c] = on
            if on and v is not None and v > lim.max_v:
                raise self._refuse(f"channel {c} is on at {v:g} V, above its limit {lim.max_v:g} V")
            if on and a is not None and a > lim.max_current_a:
                raise self._refuse(f"channel {c} is on with a current limit of {a:g} A, above its limit "
                                   f"{lim.max_current_a:g} A")

    def _limits(self, channel: int) -> SupplyChannel:
        try:
            return self.channels[channel]
        except KeyError:
            raise self._refuse(f"channel {channel} is not under the safety layer (channels "
                               f"{', '.join(map(str, sorted(self.channels)))})") from None

    def identity(self) -> str:
        return self.psu.identity()

    def settings(self) -> dict:
        """The supply's own settings, read back from it."""
        return dict(self.psu.settings())

    def set_voltage(self, channel: int, voltage_v: float) -> None:
        """``channel``'s voltage (V, 0..its ``max_v``); with the output on, in steps of at most
        its ``max_step_v`` from the voltage it holds."""
        lim = self._limits(channel)
        v = float(voltage_v)
        if not math.isfinite(v) or v < 0:
            raise self._refuse(f"channel {channel}: {voltage_v!r} V is not a voltage of 0 V or more")
        if v > lim.max_v:
            raise self._refuse(f"channel {channel}: {v:.6g} V is above its limit {lim.max_v:g} V")
        held = self._voltage_v[channel]
        steps = ramp_steps(held, v, lim.max_step_v) if self._on[channel] and held is not None else [v]
        for k, step in enumerate(steps):
            if k:
                self._sleep(self.step_delay_s)
            self.psu.set_voltage(channel, step)
            self._voltage_v[channel] = step

    def set_current_limit(self, channel: int, current_a: float) -> None:
        """``channel``'s current limit (A, > 0 and at most its ``max_current_a``)."""
        lim = self._limits(channel)
        a = float(current_a)
        if not (math.isfinite(a) and 0 < a <= lim.max_current_a):
            raise self._refuse(f"channel {channel}: current limit {current_a!r} A is outside its limit "
                               f"(0, {lim.max_current_a:g}] A")
        self.psu.set_current_limit(channel, a)
        self._limit_a[channel] = a

    def output(self, channel: int, on: bool) -> None:
        """Switch ``channel`` on (only once its voltage and current limit are set within
        its limits) or off."""
        self._limits(channel)
        if on:
            missing = [what for what, value in (("voltage", self._voltage_v[channel]),
                                                ("current limit", self._limit_a[channel])) if value is None]
            if missing:
                raise self._refuse(f"channel {channel} cannot be switched on before its "
                                   f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} set")
        self.psu.output(channel, on)
        self._on[channel] = bool(on)

    def clear_protection(self, channel: int) -> bool:
        """Clear ``channel``'s tripped protection, on purpose and reported; the output stays
        off until :meth:`output` switches it on. True when it had tripped."""
        self._limits(channel)
        tripped = bool(self.psu.clear_protection(channel))
        self._on[channel] = False
        self.on_event(f"{self.name}: channel {channel} protection cleared "
                      f"({'it had tripped its over-current protection' if tripped else 'nothing had tripped'}); "
                      "its output stays off until switched on")
        return tripped

    def measure_current(self, channel: int) -> float:
        return self.psu.measure_current(channel)

    def over_current(self, channel: int) -> bool:
        return self.psu.over_current(channel)

    def safe_state(self) -> None:
        """Ramp every channel under the limits that is on down to 0 V (where it has a ramp
        limit), then every output off. A failing write ends the ramp: the outputs go
        straight off (kept in :attr:`ramp_failure`, reported through ``on_event``)."""
        self.ramp_failure = None
        try:
            for c, lim in self.channels.items():
                if self._on[c] and self._voltage_v[c] is not None and math.isfinite(lim.max_step_v):
                    self.set_voltage(c, 0.0)
        except Exception as exc:  # the outputs must still go off
            self.ramp_failure = f"{type(exc).__name__}: {exc}"
            self.on_event(f"{self.name}: the ramp to 0 V stopped ({self.ramp_failure}); outputs switched off")
        off = getattr(self.psu, "safe_state", None)
        if off is not None:
            off()
        else:
            for c in self.channels:
                self.psu.output(c, False)
        self._on = dict.fromkeys(self.channels, False)

    def close(self) -> None:
        """Close the supply, leaving its outputs as they are (the boards keep their state)."""
        self.psu.close()
