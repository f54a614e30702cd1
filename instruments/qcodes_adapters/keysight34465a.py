"""The Keysight 34465A adapter: a QCoDeS ``Keysight34465A`` as twinrig's
:class:`~instruments.interfaces.Multimeter` (a DC voltmeter), and the sets it checks values
against."""

from __future__ import annotations

import math

from ..interfaces import InstrumentError
from ..visa.scpi import OneOf, Range, check, parse_bool
from .base import _OVERLOAD, _Adapter, _cause, _drivers


DMM_RANGES_V = OneOf(0.1, 1, 10, 100, 1000)
APERTURE_S = Range(20e-6, 1.0)
AUTOZERO = OneOf("ON", "OFF")
IMPEDANCE = OneOf("auto", "10M")


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
