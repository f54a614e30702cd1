"""Keysight 34465A Truevolt digital multimeter as a DC voltmeter.

Implements :class:`~instruments.interfaces.Multimeter`. Commands follow the Truevolt Series
Operating and Service Guide, SCPI programming reference: ``CONFigure``, ``[SENSe:]VOLTage:DC``
``:RANGe``, ``:NPLC``, ``:APERture``, ``:ZERO:AUTO``, ``:IMPedance:AUTO``; an overload reads as
+/-9.9E+37.

The meter is configured with input impedance auto by default: more than 10 GOhm on the
0.1, 1 and 10 V ranges (10 MOhm on 100 and 1000 V), so that it does not load the node it
calibrates against the way the fixed 10 MOhm would (``CONF`` selects 10 MOhm, so the driver
sets the impedance after it).
"""

from __future__ import annotations

from ..interfaces import InstrumentError
from .scpi import OneOf, Range, Reading, ScpiInstrument, Setting, format_bool, parse_bool

# The 0.001, 0.002 and 0.006 PLC integration times need the DIG option; a meter without it
# refuses them with an error, which the driver reports.
NPLC = OneOf(0.001, 0.002, 0.006, 0.02, 0.06, 0.2, 1, 10, 100)
RANGES_V = (0.1, 1, 10, 100, 1000)
# 20 us with the DIG option, 200 us without (the meter refuses what it cannot), up to 1 s
APERTURE_S = Range(20e-6, 1.0)
AUTOZERO = OneOf("ON", "OFF", "ONCE")
IMPEDANCE = OneOf("auto", "10M")
OVERLOAD_V = 9.9e37
"""What the meter reads when the input is beyond 120 % of its range (either sign)."""
HIGH_IMPEDANCE_RANGES_V = (0.1, 1, 10)
"""The ranges on which input impedance auto gives more than 10 GOhm."""


def _unquoted(reply: str) -> str:
    return reply.strip().strip('"')


class Keysight34465A(ScpiInstrument):
    """Keysight 34465A measuring DC volts.

    Args:
        resource: the open pyvisa resource, e.g. ``USB0::0x2A8D::0x0101::MY57503317::INSTR``.
        record: keep every exchange in ``transport.exchanges`` (for tests).
    """

    model = "34465A"

    function = Reading("FUNC?", parser=_unquoted)
    dc_range_v = Setting("VOLT:DC:RANG {value}", OneOf(*RANGES_V), "V", query="VOLT:DC:RANG?")
    """Fixed DC voltage range (V): 0.1, 1, 10, 100 or 1000 (with auto-range, the one in use)."""
    dc_autorange = Setting("VOLT:DC:RANG:AUTO {value}", OneOf(True, False), formatter=format_bool,
                           query="VOLT:DC:RANG:AUTO?", parser=parse_bool)
    dc_nplc = Setting("VOLT:DC:NPLC {value}", NPLC, query="VOLT:DC:NPLC?")
    """DC voltage integration time in power-line cycles: 0.001 .. 100 from :data:`NPLC`."""
    dc_aperture_s = Setting("VOLT:DC:APER {value}", APERTURE_S, "s", query="VOLT:DC:APER?")
    """DC voltage integration time in seconds (aperture), 20e-6..1 (200e-6 without DIG)."""
    dc_aperture_enabled = Setting("VOLT:DC:APER:ENAB {value}", OneOf(True, False), formatter=format_bool,
                                  query="VOLT:DC:APER:ENAB?", parser=parse_bool)
    """True: the integration time is the aperture (s); False: NPLC."""
    dc_autozero = Setting("VOLT:DC:ZERO:AUTO {value}", AUTOZERO, formatter=str,
                          query="VOLT:DC:ZERO:AUTO?", parser=parse_bool)
    """Autozero ``ON`` (a zero after every reading), ``OFF`` or ``ONCE`` (one zero, then
    OFF); reads back True for ON."""
    dc_impedance_auto = Setting("VOLT:DC:IMP:AUTO {value}", OneOf(True, False), formatter=format_bool,
                                query="VOLT:DC:IMP:AUTO?", parser=parse_bool)
    """True: more than 10 GOhm on the 0.1..10 V ranges; False: 10 MOhm on every range."""

    dc_volts_v = Reading("READ?", "V")
    """One reading of the configured measurement (V)."""

    reported = {
        "function": "function", "range_v": "dc_range_v", "autorange": "dc_autorange", "nplc": "dc_nplc",
        "aperture_enabled": "dc_aperture_enabled", "aperture_s": "dc_aperture_s", "autozero": "dc_autozero",
        "input_impedance_auto": "dc_impedance_auto",
    }

    def setup(self, range_v: float | None = None, nplc: float | None = None, aperture_s: float | None = None,
              autozero: str = "ON", input_impedance: str = "auto") -> None:
        """Apply a rig file's options: always :meth:`configure_dc_volts`, so the meter is
        left in a known state (auto-range, 1 PLC, autozero on, input impedance auto unless
        the options say otherwise).

        Raises:
            ValueError: both ``nplc`` and ``aperture_s``, or a value not allowed; nothing is sent.
        """
        if nplc is not None and aperture_s is not None:
            raise ValueError(f"{type(self).__name__}: give nplc ({nplc}) or aperture_s ({aperture_s} s), not both")
        self.configure_dc_volts(range_v, 1.0 if nplc is None else nplc, aperture_s=aperture_s, autozero=autozero,
                                input_impedance=input_impedance)

    def configure_dc_volts(self, range_v: float | None = None, nplc: float = 1.0, *, aperture_s: float | None = None,
                           autozero: str = "ON", input_impedance: str = "auto") -> None:
        """DC volts.

        Args:
            range_v: the range (V: 0.1, 1, 10, 100, 1000), or None for auto-range.
            nplc: integration in power-line cycles (0.001 .. 100 from :data:`NPLC`), unless
                ``aperture_s`` is given.
            aperture_s: integration in seconds (20e-6..1), instead of ``nplc``.
            autozero: ``"ON"``, ``"OFF"`` or ``"ONCE"``.
            input_impedance: ``"auto"`` (more than 10 GOhm on 0.1..10 V) or ``"10M"``.

        Raises:
            ValueError: a value not allowed; nothing is sent.
            InstrumentError: the meter refused a command or did not answer.
        """
        if input_impedance not in IMPEDANCE.values:
            raise ValueError(f"{type(self).__name__}.input_impedance: {input_impedance!r} is not one of auto, 10M")
        if range_v is None:
            ranging: tuple[str, ...] = (self.dc_autorange.command(True),)
        else:  # a fixed range switches auto-range off; said explicitly, so it reads back so anywhere
            ranging = (self.dc_range_v.command(range_v), self.dc_autorange.command(False))
        if aperture_s is None:
            integration = (self.dc_nplc.command(nplc), self.dc_aperture_enabled.command(False))
        else:
            integration = (self.dc_aperture_s.command(aperture_s), self.dc_aperture_enabled.command(True))
        self.send(
            # CONF resets range, integration, autozero and impedance, so it goes first
            "CONF:VOLT:DC",
            *ranging,
            *integration,
            self.dc_autozero.command(autozero),
            self.dc_impedance_auto.command(input_impedance == "auto"),
        )

    def measure_dc_volts(self) -> float:
        """One DC voltage reading (V).

        Raises:
            InstrumentError: an overload (the input beyond 120 % of the range), naming the
                range and the reading; the meter did not answer.
        """
        reading = self.dc_volts_v.read()
        if abs(reading) >= OVERLOAD_V:
            range_v = self.dc_range_v.get()
            raise InstrumentError(f"{self.identity()}: overload on the {range_v:g} V range: READ? gave "
                                  f"{reading:+.8E} (the input is beyond 120 % of the range)")
        return reading

    def settings(self) -> dict:
        """The meter's settings read back (see :attr:`reported`), plus ``input_impedance``:
        ``"10G"`` when impedance auto is on and the range in use is 10 V or less, else ``"10M"``."""
        out = super().settings()
        high = out["input_impedance_auto"] and out["range_v"] in HIGH_IMPEDANCE_RANGES_V
        return {**out, "input_impedance": "10G" if high else "10M"}

