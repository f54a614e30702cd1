"""SCPI instruments through pyvisa: the Keithley 2450 source-measure unit, the Keysight
34465A multimeter and the Keysight E36312A supply, on a small declarative base
(:mod:`.scpi`), with pyvisa-sim definitions of all three in ``sim/``.

Opening any of them clears the instrument and reads out replies a killed run left behind,
checks its identity (and the 2450's command set), clears its error queue and applies the rig
file's options; each reports what it is set to with ``settings()``. Limits and ramps are not
the drivers' business: :mod:`instruments.safe_instruments` wraps the source-meter and the
supply for that.

:func:`open_instrument` opens one by kind and VISA address; :func:`sim_resource_manager`
gives a resource manager on the simulated bench (``sim/bench.yaml``) for tests and dry runs.
"""

from __future__ import annotations

from pathlib import Path

import pyvisa

from .keithley2450 import Keithley2450
from .keysight34465a import Keysight34465A
from .keysight_e36312a import KeysightE36312A
from ..interfaces import InstrumentError
from .scpi import ScpiInstrument

__all__ = [
    "KINDS",
    "SIM_BENCH",
    "InstrumentError",
    "Keithley2450",
    "Keysight34465A",
    "KeysightE36312A",
    "ScpiInstrument",
    "open_instrument",
    "sim_resource_manager",
]

KINDS: dict[str, type[ScpiInstrument]] = {
    "keithley2450": Keithley2450,
    "keysight34465a": Keysight34465A,
    "keysight_e36312a": KeysightE36312A,
}
"""Driver of each instrument kind named in a rig file."""

SIM_BENCH = Path(__file__).parent / "sim" / "bench.yaml"
"""pyvisa-sim definition of every simulated instrument and its resource name."""


def sim_resource_manager() -> pyvisa.ResourceManager:
    """A resource manager on the simulated bench: each resource of ``sim/bench.yaml``."""
    return pyvisa.ResourceManager(f"{SIM_BENCH}@sim")


def open_instrument(
    kind: str,
    address: str,
    resource_manager: pyvisa.ResourceManager | None = None,
    *,
    timeout_s: float = 10.0,
    record: bool = False,
    **options,
) -> ScpiInstrument:
    """Open, identify and set up one instrument.

    Args:
        kind: a key of :data:`KINDS`, e.g. ``"keithley2450"``.
        address: VISA resource name, e.g. ``"USB0::0x05E6::0x2450::04096331::INSTR"``.
        resource_manager: where to open it; None for pyvisa's default one.
        timeout_s: I/O timeout (s).
        record: keep every exchange in ``transport.exchanges`` (for tests).
        options: the driver's ``setup`` options (a rig file's further keys, without the
            safety layer's: :func:`instruments.safe_instruments.driver_options`):
            ``compliance_a``, ``nplc`` and ``voltage_protection_v`` for the 2450;
            ``range_v``, ``nplc`` or ``aperture_s``, ``autozero`` and ``input_impedance``
            for the 34465A; ``channel``, ``voltage_v`` and ``current_limit_a`` for the
            E36312A.

    Raises:
        ValueError: unknown kind or an option value out of range.
        TypeError: an option the driver does not have.
        InstrumentError: the instrument did not answer or refused its setup.
    """
    try:
        driver = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown instrument kind {kind!r}; known: {', '.join(KINDS)}") from None
    manager = resource_manager or pyvisa.ResourceManager()
    resource = manager.open_resource(address, timeout=timeout_s * 1000)
    try:
        instrument = driver(resource, record=record)
    except BaseException:
        resource.close()
        raise
    try:
        instrument.setup(**options)
    except BaseException:
        instrument.close()
        raise
    return instrument
