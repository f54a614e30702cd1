"""Keysight 34465A Truevolt digital multimeter as a DC voltmeter.

Implements :class:`~instruments.interfaces.Multimeter`. Commands follow the Truevolt Series
Operating and Service Guide, SCPI programming reference.
"""

from __future__ import annotations

from .scpi import OneOf, Reading, ScpiInstrument, Setting, format_bool

# The 0.001, 0.002 and 0.006 PLC integration times need the DIG option; a meter without it
# refuses them with an error, which the driver reports.
NPLC = OneOf(0.001, 0.002, 0.006, 0.02, 0.06, 0.2, 1, 10, 100)


class Keysight34465A(ScpiInstrument):
    """Keysight 34465A measuring DC volts.

    Args:
        resource: the open pyvisa resource, e.g. ``USB0::0x2A8D::0x0101::MY57503317::INSTR``.
        record: keep every exchange in ``transport.exchanges`` (for tests).
    """

    model = "34465A"

    dc_range_v = Setting(
        "VOLT:DC:RANG {value}", OneOf(0.1, 1, 10, 100, 1000), "V", query="VOLT:DC:RANG?"
    )
    """Fixed DC voltage range (V): 0.1, 1, 10, 100 or 1000."""
    dc_autorange = Setting("VOLT:DC:RANG:AUTO {value}", OneOf(True, False), formatter=format_bool)
    dc_nplc = Setting("VOLT:DC:NPLC {value}", NPLC, query="VOLT:DC:NPLC?")
    """DC voltage integration time in power-line cycles: 0.001 .. 100 from :data:`NPLC`."""

    dc_volts_v = Reading("READ?", "V")
    """One reading of the configured measurement (V)."""

    def setup(self, range_v: float | None = None, nplc: float | None = None) -> None:
        """Apply a rig file's options: :meth:`configure_dc_volts` when either is given."""
        if range_v is not None or nplc is not None:
            self.configure_dc_volts(range_v, 1.0 if nplc is None else nplc)

    def configure_dc_volts(self, range_v: float | None = None, nplc: float = 1.0) -> None:
        """DC volts on range ``range_v`` (V: 0.1, 1, 10, 100, 1000) or auto-range when None,
        integrating ``nplc`` power-line cycles (0.001 .. 100 from :data:`NPLC`).

        Raises:
            ValueError: a range or integration time not in its set; nothing is sent.
            InstrumentError: the meter refused a command or did not answer.
        """
        self.send(
            # CONF resets range and integration time, so it goes first
            "CONF:VOLT:DC",
            self.dc_autorange.command(True) if range_v is None else self.dc_range_v.command(range_v),
            self.dc_nplc.command(nplc),
        )

    def measure_dc_volts(self) -> float:
        """One DC voltage reading (V)."""
        return self.dc_volts_v.read()
