"""The boxes on the bench, each a small typed interface.

The controller depends on these protocols only, never on a concrete driver, so the real
bench (:mod:`instruments.daq`, :mod:`instruments.visa`, :mod:`instruments.bus`) and the
simulated one (:mod:`instruments.sim.bench`) are interchangeable. Every method states its
units; arrays are numpy float64 in volts unless said otherwise.

A training step, as the DAQ sees it, is two hardware-timed operations rather than a string
of software-timed calls:

1. :meth:`BoundaryDaq.write_and_read`: write every analog output, wait ``settle_s``, then
   sample every analog input ``n_samples`` times on the shared sample clock and return the
   means (sources on both twins, free outputs read back);
2. :meth:`BoundaryDaq.write_and_pulse`: write every analog output (now with the clamps),
   wait ``settle_s``, then fire the learn line for ``width_s`` (every board samples its
   drops and updates).

Evaluating many inputs with learning off (a test set) is one hardware-timed operation too:
:meth:`BoundaryDaq.write_and_read_many` steps the outputs through one row per input and
returns one row of means per input.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class DaqError(RuntimeError):
    """The DAQ refused or failed an operation (a value outside its range, a timeout, a
    device error); the message names the channel or the operation."""


class DaqTimeout(DaqError):
    """A hardware-timed operation did not complete in time."""


class InstrumentError(RuntimeError):
    """A SCPI instrument reported an error, timed out or answered nonsense; the message names
    the instrument, the command and what came back."""


class OverCurrent(InstrumentError):
    """A power supply channel tripped its over-current protection: the run must stop."""


@runtime_checkable
class Identified(Protocol):
    def identity(self) -> str:
        """Who this is, for the run file: e.g. ``"KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"``."""
        ...

    def close(self) -> None:
        """Release the instrument (idempotent)."""
        ...


@runtime_checkable
class Configured(Protocol):
    def settings(self) -> dict:
        """What this instrument is set to measure or source with, read back from the
        instrument itself (not what the driver last sent), for the run file and the
        calibration store: a flat dict of setting name -> JSON value (str, int, float, bool
        or None), names in snake case with their unit as suffix, e.g. ``{"nplc": 1.0,
        "range_v": 10.0, "autozero": True, "input_impedance": "10G"}``. A DAQ gives its
        tasks' settings (channels, ranges, terminal configuration, timing, watchdog)."""
        ...


@runtime_checkable
class AnalogOutputs(Protocol):
    ao_channels: tuple[str, ...]
    """Physical output channel names, in the order of every values array, e.g. ``("Dev1/ao0", ...)``."""

    def write(self, values_v: np.ndarray) -> None:
        """Set every output (V), shape ``(len(ao_channels),)``, e.g. ``[0.2, 0.0, 0.45]``."""
        ...

    def safe_state(self) -> None:
        """Drive every output to its safe value (never raises for a healthy device)."""
        ...


@runtime_checkable
class AnalogInputs(Protocol):
    ai_channels: tuple[str, ...]
    """Physical input channel names, in the order of every returned array."""

    def read(self, n_samples: int = 1) -> np.ndarray:
        """Mean of ``n_samples`` hardware-timed samples per input (V), shape ``(len(ai_channels),)``."""
        ...


@runtime_checkable
class TriggerLine(Protocol):
    def pulse(self, width_s: float) -> None:
        """One high pulse of ``width_s`` seconds (e.g. 100e-6) on the learn line."""
        ...


@runtime_checkable
class BoundaryDaq(AnalogOutputs, AnalogInputs, TriggerLine, Identified, Protocol):
    """The DAQ that sets and reads a twin network's boundary and fires the learn line."""

    def write_and_read(self, values_v: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """Write all outputs (V), settle ``settle_s`` (s), then return the mean of
        ``n_samples`` samples of every input (V); one hardware-timed operation."""
        ...

    def write_and_pulse(self, values_v: np.ndarray, settle_s: float, width_s: float) -> None:
        """Write all outputs (V), settle ``settle_s`` (s), then pulse the learn line for
        ``width_s`` (s); one hardware-timed operation."""
        ...

    def write_and_read_many(self, values_v: np.ndarray, settle_s: float, n_samples: int) -> np.ndarray:
        """Step the outputs through the rows of ``values_v`` (V), shape ``(B, len(ao_channels))``
        with B >= 1, each row held for ``settle_s`` (s) plus ``n_samples`` sample periods while
        every input is sampled on the shared clock; return, per row, the mean of the
        ``n_samples`` samples taken after that row settled (V), shape ``(B, len(ai_channels))``.

        One hardware-timed operation, the batch form of :meth:`write_and_read` (the same means,
        without a host round trip per row), e.g. evaluating a test set. A row outside the
        limits refuses the whole batch before anything is written; an operation the watchdog
        would outlast (B x (settle + samples) periods) is refused too. E.g. ``values_v =
        [[0.1, 0.0, 0.45, ...], [0.2, 0.0, 0.45, ...]]`` with ``settle_s=1e-3, n_samples=10``
        gives ``[[0.071, 0.102], [0.118, 0.160]]`` for two inputs."""
        ...


@runtime_checkable
class SourceMeter(Identified, Protocol):
    """A source-measure unit sourcing voltage and measuring current (Keithley 2450)."""

    def configure(self, compliance_a: float, nplc: float = 1.0) -> None:
        """Voltage source, current measurement, current limit ``compliance_a`` (A), integration
        ``nplc`` power-line cycles (0.01..10)."""
        ...

    def output(self, on: bool) -> None:
        """Switch the output on or off (off is the safe state)."""
        ...

    def set_voltage(self, voltage_v: float) -> None:
        """Program the source level (V) without measuring; the safety layer ramps with it.
        (A source-meter may also have ``safe_state()``: level to 0 V, then output off.)"""
        ...

    def measure_current(self, voltage_v: float) -> float:
        """Source ``voltage_v`` (V), return the measured current (A)."""
        ...

    def sweep(self, voltages_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source each voltage in turn; return (sourced voltages V, measured currents A)."""
        ...

    def in_compliance(self) -> bool:
        """True when the last measurement hit the current limit."""
        ...


@runtime_checkable
class Multimeter(Identified, Protocol):
    """A DC voltmeter (Keysight 34465A)."""

    def configure_dc_volts(self, range_v: float | None = None, nplc: float = 1.0) -> None:
        """DC volts; ``range_v`` (V) or None for auto-range; ``nplc`` power-line cycles."""
        ...

    def measure_dc_volts(self) -> float:
        """One DC voltage reading (V)."""
        ...


@runtime_checkable
class PowerSupply(Identified, Protocol):
    """A bench power supply (Keysight E36312A); channels are numbered from 1."""

    def set_voltage(self, channel: int, voltage_v: float) -> None: ...

    def set_current_limit(self, channel: int, current_a: float) -> None: ...

    def output(self, channel: int, on: bool) -> None: ...

    def measure_current(self, channel: int) -> float:
        """Output current of ``channel`` (A)."""
        ...

    def over_current(self, channel: int) -> bool:
        """True when ``channel``'s over-current protection has tripped."""
        ...

    def clear_protection(self, channel: int) -> bool:
        """Clear ``channel``'s tripped protection, on purpose (a tripped channel stays off
        until then); True when it had tripped."""
        ...

    def safe_state(self) -> None:
        """Every output off."""
        ...


@runtime_checkable
class EdgeBus(Protocol):
    """The host side of the edge-board bus (see :class:`instruments.bus.client.BusClient`)."""

    def scan(self) -> list: ...

    def identify(self, address: int): ...

    def read_states(self, addresses=None) -> dict[int, int]: ...

    def request(self, address: int, command: str, **fields) -> dict: ...

    def broadcast(self, command: str, **fields) -> dict[int, dict]: ...

    def close(self) -> None: ...
