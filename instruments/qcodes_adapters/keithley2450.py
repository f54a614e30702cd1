"""The Keithley 2450 adapter: a QCoDeS ``Keithley2450`` as twinrig's
:class:`~instruments.interfaces.SourceMeter`, and the ranges it checks values against."""

from __future__ import annotations

import math

import numpy as np

from ..interfaces import InstrumentError
from ..visa.keithley2450 import parse_protection_v, protection_for
from ..visa.scpi import Each, Range, check, parse_bool, parse_error
from .base import _OVERLOAD, _Adapter, _drivers, _same


VOLTAGE_V = Range(-210, 210)
"""The 2450's source range (V), as twinrig's own driver allows it."""
CURRENT_LIMIT_A = Range(1e-9, 1.05)
SMU_NPLC = Range(0.01, 10)
SWEEP_V = Each(VOLTAGE_V, 2500)


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
