"""Keithley 2450 SourceMeter, SCPI command set: sources voltage, measures current.

Implements :class:`~instruments.interfaces.SourceMeter`. Commands follow the 2450
Reference Manual (2450-901-01), section 6. The instrument must be in its SCPI command set
(not TSP).
"""

from __future__ import annotations

import numpy as np

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

# :SOUR:LIST:VOLT takes up to 100 values a command, the list up to 2500 (appended by 100).
_LIST_CHUNK = 100
_SWEEP = Each(VOLTAGE_V, 2500)


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

    source_function = Setting(":SOUR:FUNC {value}", OneOf("VOLT", "CURR"), formatter=str)
    sense_function = Setting(':SENS:FUNC "{value}"', OneOf("CURR", "VOLT", "RES"), formatter=str)
    source_autorange = Setting(":SOUR:VOLT:RANG:AUTO {value}", ON_OFF, formatter=format_bool)
    current_autorange = Setting(":SENS:CURR:RANG:AUTO {value}", ON_OFF, formatter=format_bool)
    voltage_v = Setting(":SOUR:VOLT {value}", VOLTAGE_V, "V", query=":SOUR:VOLT?")
    """Source level (V), -210..210; high voltages need the rear-panel interlock closed."""
    current_limit_a = Setting(
        ":SOUR:VOLT:ILIM {value}", Range(1e-9, 1.05), "A", query=":SOUR:VOLT:ILIM?"
    )
    """Current limit of the voltage source (A), 1e-9..1.05."""
    nplc = Setting(":SENS:CURR:NPLC {value}", Range(0.01, 10), query=":SENS:CURR:NPLC?")
    """Current integration time in power-line cycles, 0.01..10."""
    output_on = Setting(":OUTP {value}", ON_OFF, formatter=format_bool)
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

    def setup(self, compliance_a: float | None = None, nplc: float = 1.0) -> None:
        """Apply a rig file's options: :meth:`configure` when ``compliance_a`` (A) is given."""
        if compliance_a is not None:
            self.configure(compliance_a, nplc)

    def configure(self, compliance_a: float, nplc: float = 1.0) -> None:
        """Voltage source with auto range, current measurement with auto range, current limit
        ``compliance_a`` (A, 1e-9..1.05), integration ``nplc`` power-line cycles (0.01..10).

        Raises:
            ValueError: a value outside its range; nothing is sent.
            InstrumentError: the instrument refused a command or did not answer.
        """
        self.send(
            self.source_function.command("VOLT"),
            self.sense_function.command("CURR"),
            self.source_autorange.command(True),
            self.current_autorange.command(True),
            self.current_limit_a.command(compliance_a),
            self.nplc.command(nplc),
        )

    def output(self, on: bool) -> None:
        """Switch the output on or off (off is the safe state)."""
        self.output_on.set(on)

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
