"""Keithley 2450 SourceMeter, SCPI command set: sources voltage, measures current.

Implements :class:`~instruments.interfaces.SourceMeter`. Commands follow the 2450
Reference Manual (2450-901-01): section 6 (SCPI command reference: ``:SOURce``,
``:SENSe``, ``:OUTPut``, ``:TRACe``), appendix B (common commands, ``*LANG``). The instrument
must be in its SCPI command set (not TSP, not SCPI2400): opening asks ``*LANG?`` and refuses
any other in one line.

Every :meth:`~Keithley2450.configure` leaves a known state before anything else: output off,
voltage source at 0 V, overvoltage protection (``:SOUR:VOLT:PROT``), then ranges, current
limit and integration; the output is switched on only by :meth:`~Keithley2450.output`, at the
level that is then programmed (0 V unless set since). The safety layer
(:class:`~instruments.safe_instruments.SafeSourceMeter`) adds limits and ramps on top.
"""

from __future__ import annotations

import numpy as np

from ..interfaces import InstrumentError
from .scpi import (
    Each,
    OneOf,
    Range,
    Reading,
    ScpiInstrument,
    Setting,
    check,
    format_bool,
    format_numbers,
    parse_bool,
    parse_numbers,
)

VOLTAGE_V = Range(-210, 210)
ON_OFF = OneOf(True, False)

PROTECTION_LEVELS_V = (2, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180)
"""The 2450's overvoltage-protection levels (V), ``:SOUR:VOLT:PROT PROT2`` .. ``PROT180``;
beyond them only ``NONE`` (the 210 V of the instrument itself)."""
PROTECTION = OneOf(*(f"PROT{v}" for v in PROTECTION_LEVELS_V), "NONE")

# :SOUR:LIST:VOLT takes up to 100 values a command, the list up to 2500 (appended by 100).
_LIST_CHUNK = 100
_SWEEP = Each(VOLTAGE_V, 2500)
_PROTECTION_V = Range(0, 210)


def protection_for(voltage_v: float | None) -> str:
    """The overvoltage-protection setting that covers ``voltage_v`` (V, 0..210): the lowest
    of ``PROT2`` .. ``PROT180`` at or above it, ``NONE`` above 180 V or for None.

    E.g. 0.45 -> ``"PROT2"``, 2.0 -> ``"PROT2"``, 2.5 -> ``"PROT5"``, 200 -> ``"NONE"``.

    Raises:
        ValueError: naming ``voltage_protection_v`` and the value, outside 0..210 V or NaN.
    """
    if voltage_v is None:
        return "NONE"
    check("voltage_protection_v", _PROTECTION_V, voltage_v, "V")
    level = next((v for v in PROTECTION_LEVELS_V if voltage_v <= v), None)
    return "NONE" if level is None else f"PROT{level}"


def parse_protection_v(reply: str) -> float | None:
    """A ``:SOUR:VOLT:PROT?`` reply as its level (V), None for ``NONE``."""
    text = reply.strip().upper()
    if text == "NONE":
        return None
    if text.startswith("PROT") and text[4:].isdigit() and int(text[4:]) in PROTECTION_LEVELS_V:
        return float(text[4:])
    raise ValueError(f"not a 2450 protection level: {reply!r}")


def _unquoted(reply: str) -> str:
    return reply.strip().strip('"')


def _sweep_point_s(nplc: float) -> float:
    """A generous estimate of one sweep point's duration (s), for the read timeout: up to
    three conversions of ``nplc`` power-line cycles per reading (the auto-zero references),
    at 50 Hz (the slower mains), plus 50 ms for source delay and overhead."""
    return 3 * nplc / 50 + 0.05


class Keithley2450(ScpiInstrument):
    """Keithley 2450 as a voltage source measuring current.

    Args:
        resource: the open pyvisa resource, e.g. ``USB0::0x05E6::0x2450::04096331::INSTR``.
        record: keep every exchange in ``transport.exchanges`` (for tests).
    """

    model = "2450"
    error_query = ":SYST:ERR?"

    source_function = Setting(":SOUR:FUNC {value}", OneOf("VOLT", "CURR"), formatter=str,
                              query=":SOUR:FUNC?", parser=str.strip)
    sense_function = Setting(':SENS:FUNC "{value}"', OneOf("CURR", "VOLT", "RES"), formatter=str,
                             query=":SENS:FUNC?", parser=_unquoted)
    source_autorange = Setting(":SOUR:VOLT:RANG:AUTO {value}", ON_OFF, formatter=format_bool,
                               query=":SOUR:VOLT:RANG:AUTO?", parser=parse_bool)
    current_autorange = Setting(":SENS:CURR:RANG:AUTO {value}", ON_OFF, formatter=format_bool,
                                query=":SENS:CURR:RANG:AUTO?", parser=parse_bool)
    voltage_v = Setting(":SOUR:VOLT {value}", VOLTAGE_V, "V", query=":SOUR:VOLT?")
    """Source level (V), -210..210; high voltages need the rear-panel interlock closed."""
    voltage_protection = Setting(":SOUR:VOLT:PROT {value}", PROTECTION, formatter=str,
                                 query=":SOUR:VOLT:PROT?", parser=parse_protection_v)
    """Overvoltage protection: the most the source puts out, whatever it is programmed to
    (``PROT2`` .. ``PROT180``, ``NONE``); reads back as its level (V), None for NONE."""
    current_limit_a = Setting(
        ":SOUR:VOLT:ILIM {value}", Range(1e-9, 1.05), "A", query=":SOUR:VOLT:ILIM?"
    )
    """Current limit of the voltage source (A), 1e-9..1.05."""
    nplc = Setting(":SENS:CURR:NPLC {value}", Range(0.01, 10), query=":SENS:CURR:NPLC?")
    """Current integration time in power-line cycles, 0.01..10."""
    output_on = Setting(":OUTP {value}", ON_OFF, formatter=format_bool, query=":OUTP?", parser=parse_bool)
    voltage_list_v = Setting(
        ":SOUR:LIST:VOLT {value}", Each(VOLTAGE_V, _LIST_CHUNK), "V", formatter=format_numbers
    )
    voltage_list_append_v = Setting(
        ":SOUR:LIST:VOLT:APP {value}", Each(VOLTAGE_V, _LIST_CHUNK), "V", formatter=format_numbers
    )

    current_a = Reading(":READ?", "A")
    """One current reading (A) at the present source level."""
    limit_tripped = Reading(":SOUR:VOLT:ILIM:TRIP?", parser=parse_bool)
    """True when the source is in its current limit."""
    protection_tripped = Reading(":SOUR:VOLT:PROT:TRIP?", parser=parse_bool)
    """True when the source is held at its overvoltage protection."""
    source_range_v = Reading(":SOUR:VOLT:RANG?", "V")
    current_range_a = Reading(":SENS:CURR:RANG?", "A")
    command_set = Reading("*LANG?", parser=lambda reply: reply.strip().upper())

    reported = {
        "source_function": "source_function", "source_voltage_v": "voltage_v",
        "source_range_v": "source_range_v", "source_autorange": "source_autorange",
        "current_limit_a": "current_limit_a", "voltage_protection_v": "voltage_protection",
        "voltage_protection_tripped": "protection_tripped", "sense_function": "sense_function",
        "current_range_a": "current_range_a", "current_autorange": "current_autorange",
        "nplc": "nplc", "output_on": "output_on",
    }

    def __init__(self, resource, *, record: bool = False):
        self.voltage_protection_v: float | None = None
        super().__init__(resource, record=record)

    def check_command_set(self) -> None:
        """``*LANG?`` must answer SCPI: in TSP (or SCPI2400) the instrument ignores every
        SCPI command of this driver and never answers its error query."""
        language = self.command_set.read()
        if language not in ("SCPI", "TSP", "SCPI2400"):
            raise InstrumentError(f"{self.identity()}: *LANG? answered {language!r}, not a command set of the 2450 "
                                  "(SCPI, TSP, SCPI2400)")
        if language != "SCPI":
            raise InstrumentError(
                f"the 2450 at {self.transport.name} is in its {language} command set; switch it to SCPI "
                "(MENU > System > Settings > Command Set) and power-cycle"
            )

    def setup(self, compliance_a: float | None = None, nplc: float = 1.0,
              voltage_protection_v: float | None = None) -> None:
        """Apply a rig file's options; whatever they are, the output is left off with the
        voltage source at 0 V.

        Args:
            compliance_a: current limit (A, 1e-9..1.05): :meth:`configure` with it when given.
            nplc: integration (power-line cycles, 0.01..10).
            voltage_protection_v: the largest level (V, 0..210) the source may ever put out;
                every :meth:`configure` sets the protection level covering it (see
                :func:`protection_for`); None: ``NONE``, the instrument's own 210 V.

        Raises:
            ValueError: an option out of range; nothing is sent.
        """
        protection = protection_for(voltage_protection_v)
        self.voltage_protection_v = voltage_protection_v
        if compliance_a is not None:
            self.configure(compliance_a, nplc)
        else:
            self.send(*self._zeroed(), self.voltage_protection.command(protection))

    def _zeroed(self) -> tuple[str, ...]:
        """Output off, then the voltage source at 0 V: the start of every known state."""
        return (self.output_on.command(False), self.source_function.command("VOLT"), self.voltage_v.command(0.0))

    def configure(self, compliance_a: float, nplc: float = 1.0, voltage_protection_v: float | None = None) -> None:
        """A known state: output off, voltage source at 0 V, overvoltage protection covering
        ``voltage_protection_v`` (V, 0..210; None: the :meth:`setup` option), source auto
        range, current measurement with auto range, current limit ``compliance_a`` (A,
        1e-9..1.05), integration ``nplc`` power-line cycles (0.01..10).

        Raises:
            ValueError: a value outside its range; nothing is sent.
            InstrumentError: the instrument refused a command or did not answer.
        """
        protection = protection_for(self.voltage_protection_v if voltage_protection_v is None
                                    else voltage_protection_v)
        self.send(
            *self._zeroed(),
            self.voltage_protection.command(protection),
            self.source_autorange.command(True),
            self.sense_function.command("CURR"),
            self.current_autorange.command(True),
            self.current_limit_a.command(compliance_a),
            self.nplc.command(nplc),
        )

    def output(self, on: bool) -> None:
        """Switch the output on or off (off is the safe state)."""
        self.output_on.set(on)

    def set_voltage(self, voltage_v: float) -> None:
        """Program the source level (V, -210..210) without measuring; with the output on it
        appears at the terminals at once."""
        self.voltage_v.set(voltage_v)

    def source_voltage(self) -> float:
        """The programmed source level (V), read back."""
        return self.voltage_v.get()

    def set_voltage_protection(self, voltage_v: float | None) -> None:
        """Overvoltage protection covering ``voltage_v`` (V, 0..210; None for ``NONE``)."""
        self.voltage_protection.set(protection_for(voltage_v))

    def measure_current(self, voltage_v: float) -> float:
        """Source ``voltage_v`` (V, -210..210) and return one current reading (A); the output
        must be on."""
        self.voltage_v.set(voltage_v)
        return self.current_a.read()

    def sweep(self, voltages_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """List sweep run by the instrument: source each of ``voltages_v`` (V, -210..210,
        1..2500 points) in turn, measuring the current at each without stopping at the
        current limit; return (source readback V, current A), one entry per point.

        Raises:
            ValueError: too many points or a voltage out of range; nothing is sent.
            InstrumentError: the instrument refused a command, did not answer within the
                sweep's estimated duration, or returned the wrong number of values.
        """
        voltages_v = np.asarray(voltages_v, dtype=float)
        n = voltages_v.size
        check(f"{type(self).__name__}.sweep", _SWEEP, voltages_v, "V")
        chunks = [voltages_v[i : i + _LIST_CHUNK] for i in range(0, n, _LIST_CHUNK)]
        lists = [self.voltage_list_v.command(chunks[0])]
        lists += [self.voltage_list_append_v.command(chunk) for chunk in chunks[1:]]
        nplc = self.nplc.get()
        self.send(
            *lists,
            # start at index 1, no extra delay, run once, and finish even at the current limit
            ":SOUR:SWE:VOLT:LIST 1, 0, 1, OFF",
            # earlier :READ? readings share defbuffer1; the sweep's must start at index 1
            ':TRAC:CLE "defbuffer1"',
            ":INIT",
        )
        self.write("*WAI")

        def pairs(reply: str) -> np.ndarray:
            values = parse_numbers(reply)
            if values.size != 2 * n:
                raise ValueError(f"{values.size} values, expected {2 * n}")
            return values.reshape(n, 2)

        data = self.ask(
            f':TRAC:DATA? 1, {n}, "defbuffer1", SOUR, READ',
            pairs,
            timeout_s=self.transport.timeout_s + n * _sweep_point_s(nplc),
        )
        return data[:, 0], data[:, 1]

    def in_compliance(self) -> bool:
        """True when the source is in its current limit."""
        return self.limit_tripped.read()

    def close(self) -> None:
        """Output off, then release the instrument (idempotent); the resource is closed even
        when switching off fails."""
        if self.transport.closed:
            return
        try:
            self.output(False)
        finally:
            super().close()

