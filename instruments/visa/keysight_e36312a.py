"""Keysight E36312A triple-output bench supply.

Implements :class:`~instruments.interfaces.PowerSupply`. Channel 1 is the 6 V / 5 A output,
channels 2 and 3 the 25 V / 1 A ones; commands address a channel with a channel list
``(@n)`` as in the E36300 Series programming guide (``SOURce:VOLTage``, ``SOURce:CURRent``,
``CURRent:PROTection:STATe`` and ``:TRIPped?``, ``OUTPut[:STATe]``, ``OUTPut:PROTection:CLEar``).

A channel whose over-current protection has tripped is off and stays off, whatever is sent,
until its protection is cleared: :meth:`KeysightE36312A.clear_protection` does that, on
purpose and logged, never by itself (not at opening, not on switching on).
"""

from __future__ import annotations

import logging

from ..interfaces import OverCurrent
from .scpi import OneOf, Range, Reading, ScpiInstrument, Setting, format_bool, parse_bool

CHANNELS = (1, 2, 3)
ON_OFF = OneOf(True, False)

log = logging.getLogger(__name__)


class KeysightE36312A(ScpiInstrument):
    """Keysight E36312A; channels are numbered 1..3.

    Closing leaves the outputs as they are; :meth:`safe_state` switches them all off.

    Args:
        resource: the open pyvisa resource, e.g. ``USB0::0x2A8D::0x1102::MY59001234::INSTR``.
        record: keep every exchange in ``transport.exchanges`` (for tests).
    """

    model = "E36312A"

    voltage_v = Setting(
        "VOLT {value},(@{channel})", {1: Range(0, 6), 2: Range(0, 25), 3: Range(0, 25)}, "V",
        query="VOLT? (@{channel})",
    )
    """Output voltage (V): channel 1 0..6, channels 2 and 3 0..25."""
    current_limit_a = Setting(
        "CURR {value},(@{channel})", {1: Range(0, 5), 2: Range(0, 1), 3: Range(0, 1)}, "A",
        query="CURR? (@{channel})",
    )
    """Current limit (A): channel 1 0..5, channels 2 and 3 0..1."""
    over_current_protection = Setting(
        "CURR:PROT:STAT {value},(@{channel})", ON_OFF, formatter=format_bool, channels=CHANNELS,
        query="CURR:PROT:STAT? (@{channel})", parser=parse_bool,
    )
    output_on = Setting("OUTP {value},(@{channel})", ON_OFF, formatter=format_bool, channels=CHANNELS,
                        query="OUTP? (@{channel})", parser=parse_bool)
    protection_clear = Setting("OUTP:PROT:CLE (@{channel})", OneOf(None), formatter=str, channels=CHANNELS)
    """Clears the channel's latched protection (a command without a value: set it to None)."""
    all_outputs_on = Setting("OUTP {value},(@1:3)", ON_OFF, formatter=format_bool)

    current_a = Reading("MEAS:CURR? (@{channel})", "A", channels=CHANNELS)
    """Measured output current (A)."""
    over_current_tripped = Reading(
        "CURR:PROT:TRIP? (@{channel})", parser=parse_bool, channels=CHANNELS
    )
    """True when the channel's over-current protection has switched it off."""

    reported = {
        "voltage_v": "voltage_v", "current_limit_a": "current_limit_a",
        "over_current_protection": "over_current_protection", "over_current_tripped": "over_current_tripped",
        "output_on": "output_on",
    }

    def setup(
        self, channel: int = 1, voltage_v: float | None = None, current_limit_a: float | None = None
    ) -> None:
        """Apply a rig file's options to ``channel``: its current limit (A), then its voltage
        (V), each when given; the output is left as it is."""
        if current_limit_a is not None:
            self.set_current_limit(channel, current_limit_a)
        if voltage_v is not None:
            self.set_voltage(channel, voltage_v)

    def set_voltage(self, channel: int, voltage_v: float) -> None:
        """Output voltage of ``channel`` (V): channel 1 0..6, channels 2 and 3 0..25."""
        self.voltage_v.set(voltage_v, channel)

    def set_current_limit(self, channel: int, current_a: float) -> None:
        """Current limit of ``channel`` (A: channel 1 0..5, channels 2 and 3 0..1), with
        over-current protection on: reaching the limit switches the channel off (see
        :meth:`over_current`) instead of regulating the current, so a fault stops the run."""
        self.send(
            self.current_limit_a.command(current_a, channel),
            self.over_current_protection.command(True, channel),
        )

    def output(self, channel: int, on: bool) -> None:
        """Switch ``channel``'s output on or off."""
        self.output_on.set(on, channel)

    def measure_current(self, channel: int) -> float:
        """Output current of ``channel`` (A)."""
        return self.current_a.read(channel)

    def over_current(self, channel: int) -> bool:
        """True when ``channel``'s over-current protection has tripped."""
        return self.over_current_tripped.read(channel)

    def check_over_current(self, channel: int) -> None:
        """Raise :class:`~instruments.interfaces.OverCurrent` when ``channel`` has tripped."""
        if self.over_current(channel):
            raise OverCurrent(f"{self.identity()}: channel {channel} tripped its over-current protection")

    def clear_protection(self, channel: int) -> bool:
        """Clear ``channel``'s latched protection (``OUTP:PROT:CLE (@n)``) so that it can be
        switched on again; the output stays off until :meth:`output` switches it on. Logged
        with what was cleared.

        Returns:
            True when the channel had tripped its over-current protection.
        """
        tripped = self.over_current(channel)
        self.protection_clear.set(None, channel)
        log.warning("%s: channel %d protection cleared (%s)", self.identity(), channel,
                    "it had tripped its over-current protection" if tripped else "nothing had tripped")
        return tripped

    def safe_state(self) -> None:
        """Every output off, in one command."""
        self.all_outputs_on.set(False)
