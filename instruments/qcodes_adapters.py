"""A lab's already-open QCoDeS instruments behind twinrig's interfaces.

A lab whose QCoDeS station already holds the Keithley 2450 and the Keysight 34465A can hand
them to twinrig without opening them a second time:

    >>> from instruments.qcodes_adapters import adapt
    >>> smu = adapt(station.components["smu"])    # a SourceMeter
    >>> dmm = adapt(station.components["dmm"])    # a Multimeter

Each adapter works through the QCoDeS driver's own parameters (``smu.source.voltage``,
``smu.sense.current``, ``dmm.volt``, ``dmm.NPLC``...), so the station's snapshot and cache
stay true; it sends SCPI of its own only where the driver has no parameter, and says so
where it does. It behaves as twinrig's drivers (:mod:`instruments.visa`) do where it
matters:

* making an adapter clears the instrument's output queue (a device clear), so a reply an
  interrupted script left waiting is not read as the first answer;
* every setting it makes is read back through the driver and confirmed; a refusal, a
  timeout or an answer that does not parse is one
  :class:`~instruments.interfaces.InstrumentError` naming the instrument, the parameter and
  its SCPI command, after which the output queue is cleared again so that the next command
  is answered in step;
* a configuration starts by emptying the error queue (errors of earlier work are logged,
  not blamed on it) and ends with the error queue checked empty;
* a value outside its range is a ``ValueError`` naming it, before anything is sent;
* the source-meter's output is never switched on before
  :meth:`Keithley2450Adapter.configure` (output off, 0 V, overvoltage protection, current
  limit), nor while its level or limit read back other than the adapter set them;
* the meter's overload reading (+/-9.9E+37, which QCoDeS turns into +/-inf) is an
  ``InstrumentError``, never a voltage.

``close()`` releases the adapter only: the station owns the instrument and closes it. The
source-meter adapter switches the output off first.

QCoDeS is an optional dependency (``pip install twinrig[qcodes]``); this module imports it
only when an adapter is made.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyvisa

from .interfaces import InstrumentError
from .visa.keithley2450 import parse_protection_v, protection_for
from .visa.scpi import Each, OneOf, Range, check, parse_bool, parse_error

__all__ = ["Keithley2450Adapter", "Keysight34465AAdapter", "adapt"]

log = logging.getLogger(__name__)

VOLTAGE_V = Range(-210, 210)
"""The 2450's source range (V), as twinrig's own driver allows it."""
CURRENT_LIMIT_A = Range(1e-9, 1.05)
SMU_NPLC = Range(0.01, 10)
SWEEP_V = Each(VOLTAGE_V, 2500)
DMM_RANGES_V = OneOf(0.1, 1, 10, 100, 1000)
APERTURE_S = Range(20e-6, 1.0)
AUTOZERO = OneOf("ON", "OFF")
IMPEDANCE = OneOf("auto", "10M")

# The 34465A and the 2450 answer +/-9.9E+37 for a reading beyond the range (9.91E+37: not a
# number); QCoDeS's 34465A driver turns it into +/-inf.
_OVERLOAD = 9.9e37
# An error queue that never empties is a broken instrument: stop asking, report what came.
_MAX_QUEUED_ERRORS = 32
# Before a configuration the queue may hold one error per query of a station's snapshot
# that the instrument refused: dozens on a 2450.
_MAX_STALE_ERRORS = 512
# Replies left queued by a failed exchange that a resynchronisation reads off at most.
_MAX_STALE_REPLIES = 32
_DRAIN_TIMEOUT_S = 0.02


def _drivers() -> tuple[type, type]:
    """The QCoDeS driver classes the adapters take: (Keithley2450, Keysight34465A)."""
    try:
        from qcodes.instrument_drivers.Keithley import Keithley2450
        from qcodes.instrument_drivers.Keysight import Keysight34465A
    except ImportError as exc:
        raise ImportError(f"the QCoDeS adapters need qcodes: pip install 'twinrig[qcodes]' ({exc})") from exc
    return Keithley2450, Keysight34465A


def _cause(exc: BaseException) -> str:
    """An exception as one line: QCoDeS appends its context ('getting smu_source_limit') to
    the args of whatever the exchange raised."""
    text = "; ".join(str(a) for a in exc.args) or str(exc)
    return f"{type(exc).__name__}: {' '.join(text.split())}"


def _template(param, kind: str) -> str | None:
    """The SCPI template the driver sends for ``param`` (``kind`` 'set' or 'get'), or None
    where the driver builds the command in code."""
    return getattr(getattr(param, f"{kind}_raw", None), "cmd_str", None)


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, (bool, str)):
        return got == want
    try:
        return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-15)
    except (TypeError, ValueError):
        return False


class _Adapter:
    """What both adapters share: the QCoDeS instrument, the checked exchange, the closed state."""

    model: str
    driver_class: str
    """``module:Class`` of the QCoDeS driver this adapter takes."""

    def __init__(self, instrument, driver: type):
        if not isinstance(instrument, driver):
            raise TypeError(
                f"{type(self).__name__} takes a {driver.__module__}.{driver.__qualname__}, "
                f"got {type(instrument).__module__}.{type(instrument).__qualname__}"
            )
        self.instrument = instrument
        """The station's QCoDeS instrument (never closed by the adapter)."""
        self.closed = False
        self.who = f"{self.model} (QCoDeS instrument {instrument.name!r})"
        stale = self._call("clearing the instrument (device clear)", self._clear)
        if stale:
            log.warning("%s: discarded %d stale repl%s: %s", self.who, len(stale),
                        "y" if len(stale) == 1 else "ies", "; ".join(map(repr, stale)))

    # -- exchanges -----------------------------------------------------------------------------
    def _failed(self, doing: str, exc: BaseException) -> InstrumentError:
        self._resync()
        return InstrumentError(f"{self.who}: {doing} failed: {_cause(exc)}")

    def _call(self, doing: str, call: Callable[[], Any]) -> Any:
        """``call()``, with whatever it raises as one InstrumentError saying what was ``doing``."""
        self._check_open()
        try:
            return call()
        except InstrumentError:
            raise
        except Exception as exc:
            raise self._failed(doing, exc) from exc

    def _get(self, param) -> Any:
        query = _template(param, "get")
        return self._call(f"reading {param.full_name}" + (f" ({query})" if query else ""), param.get)

    def _set(self, param, value: Any, unit: str = "") -> Any:
        """Set ``param`` through the driver, then read it back and return what it reads:
        anything but ``value`` is an InstrumentError naming the parameter and its commands."""
        shown = f"{value!r} {unit}".rstrip()
        command = _template(param, "set")
        self._call(f"setting {param.full_name} to {shown}" + (f" ({command})" if command else ""),
                   lambda: param.set(value))
        query = _template(param, "get")
        got = self._call(f"confirming {param.full_name} = {shown}: reading it back"
                         + (f" ({query})" if query else ""), param.get)
        if not _same(got, value):
            self._resync()
            raise InstrumentError(
                f"{self.who}: set {param.full_name} to {shown}"
                + (f" ({command})" if command else "")
                + f" but it reads back {got!r}: the instrument refused or ignored the command"
            )
        return got

    def _clear(self) -> list[str]:
        """Empty the instrument's output queue, so that a reply left waiting (by a failed
        exchange, or a script interrupted between query and read) is never read as the next
        command's answer: the driver's device clear, then on pyvisa-sim the replies read off.
        Returns what was read off."""
        inst = self.instrument
        inst.device_clear()
        stale: list[str] = []
        if getattr(inst, "visabackend", None) != "sim":
            return stale
        # QCoDeS does not clear a pyvisa-sim device, and pyvisa-sim answers an unknown
        # command with a reply of its own: read those off, as a device clear empties a real
        # instrument's output queue.
        with inst.timeout.set_to(_DRAIN_TIMEOUT_S):
            for _ in range(_MAX_STALE_REPLIES):
                try:
                    stale.append(inst.visa_handle.read())
                except pyvisa.errors.VisaIOError:
                    break  # nothing more waiting
        return stale

    def _resync(self) -> None:
        """After a failed exchange: :meth:`_clear`, quietly."""
        try:
            self._clear()
        except Exception:  # the error being reported already says the instrument is not answering
            pass

    def _read_errors(self, query: str, read_one: Callable[[], tuple[int, str]],
                     most: int = _MAX_QUEUED_ERRORS) -> list[str]:
        """Read the instrument's error queue until it is empty (at most ``most`` entries):
        what it held."""
        errors = []
        for _ in range(most):
            code, message = self._call(f"reading the error queue ({query})", read_one)
            if code == 0:
                return errors
            errors.append(f'{code},"{message}"')
        raise InstrumentError(f"{self.who}: the error queue ({query}) is still not empty after "
                              f"{most} entries: {'; '.join(errors[:_MAX_QUEUED_ERRORS])} ...")

    def _discard_errors(self, query: str, read_one: Callable[[], tuple[int, str]]) -> None:
        """Empty the error queue before configuring, logging what it held: errors of earlier
        work are not this configuration's (a QCoDeS station's snapshot of a 2450 asks
        ``:SENSe:...:DELay:USERNone?``, which the instrument refuses)."""
        stale = self._read_errors(query, read_one, _MAX_STALE_ERRORS)
        if stale:
            counts = dict.fromkeys(stale, 0)
            for error in stale:
                counts[error] += 1
            log.warning("%s: discarded %d error(s) queued before this configuration: %s", self.who, len(stale),
                        "; ".join(e if n == 1 else f"{e} (x{n})" for e, n in counts.items()))

    def _check_errors(self, query: str, read_one: Callable[[], tuple[int, str]]) -> None:
        """The error queue must be empty: an error it holds is an InstrumentError listing them all."""
        errors = self._read_errors(query, read_one)
        if errors:
            raise InstrumentError(f"{self.who}: the error queue ({query}) held {'; '.join(errors)}")

    def _check_open(self) -> None:
        if self.closed:
            raise InstrumentError(f"{self.who}: the adapter is closed")

    # -- Identified ----------------------------------------------------------------------------
    def identity(self) -> str:
        """The instrument's ``*IDN?`` reply, e.g. ``"KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"``."""
        # Not the driver's IDN parameter: it rewrites the reply (the 2450's "MODEL 2450"
        # becomes "2450") and hides a failed query, and a run file and a calibration must
        # name the instrument as twinrig's own drivers do.
        return self._call("reading the identity (*IDN?)", lambda: self.instrument.ask("*IDN?")).strip()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.who}{' (closed)' if self.closed else ''}>"


class Keithley2450Adapter(_Adapter):
    """A QCoDeS ``Keithley2450`` as a :class:`~instruments.interfaces.SourceMeter`: a voltage
    source measuring current, with the methods of twinrig's own driver
    (:class:`instruments.visa.Keithley2450`) that the safety layer uses (``set_voltage``,
    ``source_voltage``, ``set_voltage_protection``).

    Args:
        instrument: the open ``qcodes.instrument_drivers.Keithley.Keithley2450``, in its SCPI
            command set.
        voltage_protection_v: the largest level (V, 0..210) the source may ever put out;
            every :meth:`configure` sets the protection level covering it
            (:func:`~instruments.visa.keithley2450.protection_for`); None: ``NONE``, the
            instrument's own 210 V.

    Raises:
        TypeError: not that driver.
        ValueError: ``voltage_protection_v`` outside 0..210 V.
        InstrumentError: the instrument is in its TSP command set (the driver then has no
            parameters).
    """

    model = "Keithley 2450"
    driver_class = "qcodes.instrument_drivers.Keithley:Keithley2450"
    # The QCoDeS driver has no parameters for these, so the adapter sends them itself.
    PROTECTION = ":SOUR:VOLT:PROT"
    PROTECTION_TRIPPED = ":SOUR:VOLT:PROT:TRIP?"
    ERROR_QUERY = ":SYST:ERR?"

    def __init__(self, instrument, *, voltage_protection_v: float | None = None):
        protection_for(voltage_protection_v)
        super().__init__(instrument, _drivers()[0])
        if "output_enabled" not in instrument.parameters:
            raise InstrumentError(
                f"{self.who}: not in its SCPI command set (*LANG? is not SCPI), so the QCoDeS "
                f"driver made no parameters; run its set_correct_language(), power-cycle the "
                f"instrument and open it again"
            )
        self.voltage_protection_v = voltage_protection_v
        self.compliance_a: float | None = None
        """The current limit (A) :meth:`configure` set; None until it has."""
        self._level_v: float | None = None  # the level last programmed through the adapter

    def configure(self, compliance_a: float, nplc: float = 1.0,
                  voltage_protection_v: float | None = None) -> None:
        """A known state, as twinrig's own driver leaves it: output off, voltage source at
        0 V, overvoltage protection covering ``voltage_protection_v`` (V, 0..210; None: the
        constructor's), source auto range, current measurement with auto range, current
        limit ``compliance_a`` (A, 1e-9..1.05), integration ``nplc`` power-line cycles
        (0.01..10). The error queue is emptied first (what it held is logged), each
        setting is read back, then the error queue must be empty.

        Raises:
            ValueError: a value outside its range; nothing is sent.
            InstrumentError: the instrument refused, ignored or did not answer a command.
        """
        check(f"{type(self).__name__}.compliance_a", CURRENT_LIMIT_A, compliance_a, "A")
        check(f"{type(self).__name__}.nplc", SMU_NPLC, nplc)
        protection = protection_for(self.voltage_protection_v if voltage_protection_v is None
                                    else voltage_protection_v)
        self._check_open()
        smu = self.instrument
        self.compliance_a = self._level_v = None
        self._discard_errors(self.ERROR_QUERY, self._next_error)
        self._set(smu.output_enabled, False)
        # the driver refuses a change of source function while measuring resistance
        self._set(smu.sense_function, "current")
        self._set(smu.source_function, "voltage")
        source, sense = smu.source, smu.sense
        self._set(source.voltage, 0.0, "V")
        self._level_v = 0.0
        self._set_protection(protection)
        self._set(source.auto_range, True)
        self._set(sense.auto_range, True)
        self._set(source.limit, float(compliance_a), "A")
        self._set(sense.nplc, float(nplc))
        self._check_errors(self.ERROR_QUERY, self._next_error)
        self.compliance_a = float(compliance_a)

    def _next_error(self) -> tuple[int, str]:
        return parse_error(self.instrument.ask(self.ERROR_QUERY))

    def _set_protection(self, protection: str) -> None:
        command = f"{self.PROTECTION} {protection}"
        self._call(f"setting the overvoltage protection ({command})", lambda: self.instrument.write(command))
        want = parse_protection_v(protection)
        if self._protection_v(f"confirming {command}: reading it back") != want:
            self._resync()
            raise InstrumentError(f"{self.who}: sent {command} but {self.PROTECTION}? does not read back "
                                  f"{protection}: the instrument refused or ignored the command")

    def _protection_v(self, doing: str = "reading the overvoltage protection") -> float | None:
        query = f"{self.PROTECTION}?"
        return self._call(f"{doing} ({query})", lambda: parse_protection_v(self.instrument.ask(query)))

    def set_voltage_protection(self, voltage_v: float | None) -> None:
        """Overvoltage protection covering ``voltage_v`` (V, 0..210; None for ``NONE``)."""
        protection = protection_for(voltage_v)
        self._check_open()
        self._set_protection(protection)

    def _configured(self, doing: str) -> None:
        """Refuse ``doing`` unless :meth:`configure` has run and the station has not since
        switched the source or measurement to another function."""
        self._check_open()
        if self.compliance_a is None:
            raise InstrumentError(f"{self.who}: cannot {doing} before configure(compliance_a)")
        smu = self.instrument
        functions = (smu.source_function.get_latest(), smu.sense_function.get_latest())
        if functions != ("voltage", "current"):
            raise InstrumentError(
                f"{self.who}: cannot {doing}: the instrument was set to source {functions[0]} and "
                f"measure {functions[1]} since configure(); configure() again"
            )

    def output(self, on: bool) -> None:
        """Switch the output off, or on at the level then programmed (0 V after
        :meth:`configure`, unless set since through this adapter): on only after
        :meth:`configure`, and only while the level and the current limit read back as this
        adapter set them (the station may have changed them since).

        Raises:
            InstrumentError: not configured, the level or limit changed since, or the
                instrument refused a command; the output is left as it was.
        """
        smu = self.instrument
        if not on:
            self._check_open()
            self._set(smu.output_enabled, False)
            return
        self._configured("switch the output on")
        source = smu.source
        level_v, limit_a = self._get(source.voltage), self._get(source.limit)
        if not (_same(level_v, self._level_v) and _same(limit_a, self.compliance_a)):
            raise InstrumentError(
                f"{self.who}: the source reads {level_v!r} V with a {limit_a!r} A limit, not the "
                f"{self._level_v!r} V and {self.compliance_a!r} A this adapter set; the output stays "
                f"off until configure() runs again"
            )
        self._set(smu.output_enabled, True)

    def set_voltage(self, voltage_v: float) -> None:
        """Program the source level (V, -210..210; confirmed by reading it back) without
        measuring; with the output on it appears at the terminals at once.

        Raises:
            ValueError: the voltage is outside -210..210 V; nothing is sent.
            InstrumentError: not configured, or the instrument refused or did not answer.
        """
        check(f"{type(self).__name__}.set_voltage voltage_v", VOLTAGE_V, voltage_v, "V")
        self._configured("program the level")
        self._program(float(voltage_v))

    def _program(self, voltage_v: float) -> float:
        self._level_v = None  # unknown until confirmed
        level_v = float(self._set(self.instrument.source.voltage, voltage_v, "V"))
        self._level_v = level_v
        return level_v

    def source_voltage(self) -> float:
        """The programmed source level (V), read back."""
        self._configured("read the level")
        return float(self._get(self.instrument.source.voltage))

    def measure_current(self, voltage_v: float) -> float:
        """Source ``voltage_v`` (V, -210..210; confirmed by reading it back) and return one
        current reading (A); the output must be on.

        Raises:
            ValueError: the voltage is outside -210..210 V; nothing is sent.
            InstrumentError: not configured, the output is off, the instrument refused or
                did not answer, or the reading overflowed its range.
        """
        check(f"{type(self).__name__}.measure_current voltage_v", VOLTAGE_V, voltage_v, "V")
        self._configured("measure")
        return self._measure(float(voltage_v))[1]

    def _measure(self, voltage_v: float) -> tuple[float, float]:
        """(source level V as read back, current A) at ``voltage_v``."""
        level_v = self._program(voltage_v)
        sense = self.instrument.sense
        current_a = float(self._call(f"measuring {sense.current.full_name} (driver code: :OUTP?, :MEASure?)",
                                     sense.current.get))
        if not math.isfinite(current_a) or abs(current_a) >= _OVERLOAD:
            raise InstrumentError(f"{self.who}: the current reading at {voltage_v!r} V overflowed its "
                                  f"range ({current_a!r} A)")
        return level_v, current_a

    def sweep(self, voltages_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source each of ``voltages_v`` (V, -210..210, 1..2500 points) in turn, point by
        point (the QCoDeS driver sweeps only linear ramps), measuring the current at each
        without stopping at the current limit; return (source level V as read back, current
        A), one entry per point.

        Raises:
            ValueError: too many points or a voltage out of range; nothing is sent.
            InstrumentError: as :meth:`measure_current`.
        """
        voltages_v = np.asarray(voltages_v, dtype=float).ravel()
        check(f"{type(self).__name__}.sweep", SWEEP_V, voltages_v, "V")
        self._configured("sweep")
        levels_v, currents_a = np.array([self._measure(float(v)) for v in voltages_v]).T
        return levels_v, currents_a

    def in_compliance(self) -> bool:
        """True when the source is in its current limit."""
        self._configured("ask for the current limit")
        return bool(self._get(self.instrument.source.limit_tripped))

    def settings(self) -> dict:
        """Read back from the instrument, under the names twinrig's own driver uses, e.g.
        ``{"output_on": True, "source_function": "VOLT", "sense_function": "CURR:DC",
        "source_voltage_v": 0.1, "source_range_v": 2.0, "source_autorange": True,
        "voltage_protection_v": 2.0, "voltage_protection_tripped": False, "current_limit_a":
        1e-3, "current_range_a": 1e-4, "current_autorange": True, "nplc": 1.0}`` (the source
        and measurement fields only while it sources voltage and measures current)."""
        smu = self.instrument
        source_function, sense_function = self._get(smu.source_function), self._get(smu.sense_function)
        out: dict = {
            "output_on": bool(self._get(smu.output_enabled)),
            # in the instrument's own words, as twinrig's driver reports them
            "source_function": str(smu.source_function.val_mapping[source_function]).strip('"'),
            "sense_function": str(smu.sense_function.val_mapping[sense_function]).strip('"'),
        }
        if source_function == "voltage":
            source = smu.source
            out["source_voltage_v"] = float(self._get(source.voltage))
            out["source_range_v"] = float(self._get(source.range))
            out["source_autorange"] = bool(self._get(source.auto_range))
            out["voltage_protection_v"] = self._protection_v()
            out["voltage_protection_tripped"] = self._call(
                f"reading the overvoltage protection's trip ({self.PROTECTION_TRIPPED})",
                lambda: parse_bool(self.instrument.ask(self.PROTECTION_TRIPPED)))
            out["current_limit_a"] = float(self._get(source.limit))
        if sense_function == "current":
            sense = smu.sense
            out["current_range_a"] = float(self._get(sense.range))
            out["current_autorange"] = bool(self._get(sense.auto_range))
            out["nplc"] = float(self._get(sense.nplc))
        return out

    def close(self) -> None:
        """Switch the output off and release the adapter (idempotent); the QCoDeS instrument
        stays open: the station owns it. The adapter is closed even when switching off fails
        (which raises InstrumentError)."""
        if self.closed:
            return
        try:
            self._set(self.instrument.output_enabled, False)
        finally:
            self.closed = True
            self.compliance_a = self._level_v = None


class Keysight34465AAdapter(_Adapter):
    """A QCoDeS ``Keysight34465A`` as a :class:`~instruments.interfaces.Multimeter`: a DC
    voltmeter, configured as twinrig's own driver (:class:`instruments.visa.Keysight34465A`)
    configures it.

    Args:
        instrument: the open ``qcodes.instrument_drivers.Keysight.Keysight34465A``.

    Raises:
        TypeError: not that driver.
    """

    model = "Keysight 34465A"
    driver_class = "qcodes.instrument_drivers.Keysight:Keysight34465A"
    # The QCoDeS driver has no input-impedance parameter, so the adapter sends it itself.
    IMPEDANCE_AUTO = "SENSe:VOLTage:DC:IMPedance:AUTO"
    ERROR_QUERY = "SYSTem:ERRor?"  # what the driver's error() asks

    def __init__(self, instrument):
        super().__init__(instrument, _drivers()[1])

    def configure_dc_volts(self, range_v: float | None = None, nplc: float = 1.0, *,
                           aperture_s: float | None = None, autozero: str = "ON",
                           input_impedance: str = "auto") -> None:
        """DC volts. The error queue is emptied first (what it held is logged), each setting
        is read back, then the error queue must be empty.

        Args:
            range_v: the range (V: 0.1, 1, 10, 100, 1000), or None for auto-range.
            nplc: integration in power-line cycles, one of the driver's ``NPLC_list``
                (0.02 .. 100; from 0.001 with the DIG option), unless ``aperture_s`` is given.
            aperture_s: integration in seconds (20e-6..1, as the driver allows on this
                meter), instead of ``nplc``.
            autozero: ``"ON"`` (a zero after every reading) or ``"OFF"``.
            input_impedance: ``"auto"`` (more than 10 GOhm on 0.1..10 V, so the meter does
                not load the node it calibrates against) or ``"10M"``.

        Raises:
            ValueError: a value not allowed; nothing is sent.
            InstrumentError: the meter refused, ignored or did not answer a command.
        """
        dmm, name = self.instrument, type(self).__name__
        if range_v is not None:
            check(f"{name}.range_v", DMM_RANGES_V, range_v, "V")
        if aperture_s is None:
            check(f"{name}.nplc", OneOf(*dmm.NPLC_list), nplc)
        else:
            check(f"{name}.aperture_s", APERTURE_S, aperture_s, "s")
            try:
                dmm.aperture_time.validate(float(aperture_s))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}.aperture_s: {aperture_s} s is not allowed on this meter "
                                 f"({_cause(exc)})") from None
        check(f"{name}.autozero", AUTOZERO, autozero)
        check(f"{name}.input_impedance", IMPEDANCE, input_impedance)
        self._check_open()
        self._discard_errors(self.ERROR_QUERY, dmm.error)
        self._set(dmm.sense_function, "DC Voltage")
        if range_v is None:
            self._set(dmm.autorange, "ON")
        else:  # a fixed range switches auto-range off; said explicitly, as twinrig's driver does
            self._set(dmm.range, float(range_v), "V")
            self._set(dmm.autorange, "OFF")
        if aperture_s is None:
            self._set(dmm.NPLC, float(nplc))
            self._set(dmm.aperture_mode, "OFF")
        else:
            self._set(dmm.aperture_time, float(aperture_s), "s")
            self._set(dmm.aperture_mode, "ON")
        self._set(dmm.autozero, autozero)
        self._set_impedance_auto(input_impedance == "auto")
        self._check_errors(self.ERROR_QUERY, dmm.error)

    def _set_impedance_auto(self, on: bool) -> None:
        dmm, command = self.instrument, f"{self.IMPEDANCE_AUTO} {int(on)}"
        self._call(f"setting the input impedance ({command})", lambda: dmm.write(command))
        if self._impedance_auto(f"confirming {command}: reading it back") != on:
            self._resync()
            raise InstrumentError(f"{self.who}: sent {command} but {self.IMPEDANCE_AUTO}? reads back "
                                  f"{not on}: the meter refused or ignored the command")

    def _impedance_auto(self, doing: str = "reading the input impedance") -> bool:
        query = f"{self.IMPEDANCE_AUTO}?"
        return self._call(f"{doing} ({query})", lambda: parse_bool(self.instrument.ask(query)))

    def measure_dc_volts(self) -> float:
        """One DC voltage reading (V).

        Raises:
            InstrumentError: the meter did not answer, or read an overload (+/-9.9E+37: the
                input is beyond 120 % of the range), naming the range.
        """
        dmm = self.instrument
        volts = float(self._call(f"reading {dmm.volt.full_name} (driver code: READ?)", dmm.volt.get))
        if not math.isfinite(volts) or abs(volts) >= _OVERLOAD:
            range_v = float(self._get(dmm.range))
            sign = "-" if volts < 0 else "+"
            raise InstrumentError(f"{self.who}: overload on the {range_v:g} V range: READ? gave "
                                  f"{sign}9.9E+37 (QCoDeS: {volts!r} V), the input is beyond 120 % "
                                  f"of the range")
        return volts

    def settings(self) -> dict:
        """Read back from the meter, under the names twinrig's own driver uses, e.g.
        ``{"function": "VOLT", "range_v": 10.0, "autorange": False, "nplc": 1.0,
        "aperture_enabled": False, "aperture_s": 0.02, "autozero": True,
        "input_impedance_auto": True, "input_impedance": "10G"}`` (``input_impedance``: what
        the input is on the range in use, "10G" or "10M")."""
        dmm = self.instrument
        function = self._get(dmm.sense_function)
        range_v = float(self._get(dmm.range))
        impedance_auto = self._impedance_auto()
        return {
            "function": str(dmm.sense_function.val_mapping[function]).strip('"'),
            "range_v": range_v,
            "autorange": self._get(dmm.autorange) == "ON",
            "nplc": float(self._get(dmm.NPLC)),
            "aperture_enabled": self._get(dmm.aperture_mode) == "ON",
            "aperture_s": float(self._get(dmm.aperture_time)),
            "autozero": self._get(dmm.autozero) == "ON",
            "input_impedance_auto": impedance_auto,
            "input_impedance": "10G" if impedance_auto and range_v <= 10 else "10M",
        }

    def close(self) -> None:
        """Release the adapter (idempotent); the QCoDeS instrument stays open: the station
        owns it."""
        self.closed = True


def adapt(instrument, **options) -> Keithley2450Adapter | Keysight34465AAdapter:
    """The twinrig interface of a QCoDeS instrument, chosen by its driver class: a
    ``Keithley2450`` becomes a SourceMeter, a ``Keysight34465A`` a Multimeter; ``options``
    go to the adapter (``voltage_protection_v`` for the 2450).

    Raises:
        TypeError: no adapter for this instrument's driver (the message names it and the
            supported ones), or an option the adapter does not take.
        InstrumentError: as the adapter's constructor.
    """
    for driver, adapter in zip(_drivers(), (Keithley2450Adapter, Keysight34465AAdapter)):
        if isinstance(instrument, driver):
            return adapter(instrument, **options)
    name = getattr(instrument, "name", None)
    supported = ", ".join(a.driver_class for a in (Keithley2450Adapter, Keysight34465AAdapter))
    raise TypeError(
        f"no twinrig adapter for {type(instrument).__module__}.{type(instrument).__qualname__}"
        + (f" ({name!r})" if name else "") + f"; adapters exist for {supported}"
    )
