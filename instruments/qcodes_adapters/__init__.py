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

QCoDeS is an optional dependency (``pip install twinrig[qcodes]``); this package imports it
only when an adapter is made.

The package: :mod:`~instruments.qcodes_adapters.base` holds what both adapters share (the
checked exchange, the error queue, the device clear);
:mod:`~instruments.qcodes_adapters.keithley2450` and
:mod:`~instruments.qcodes_adapters.keysight34465a` one adapter each; this module
:func:`adapt`, which picks the adapter by the instrument's driver class.
"""

from __future__ import annotations

from .base import _drivers
# the adapters' ranges are importable from here too, as they were before the split
from .keithley2450 import CURRENT_LIMIT_A, SMU_NPLC, SWEEP_V, VOLTAGE_V, Keithley2450Adapter  # noqa: F401
from .keysight34465a import APERTURE_S, AUTOZERO, DMM_RANGES_V, IMPEDANCE, Keysight34465AAdapter  # noqa: F401

__all__ = ["Keithley2450Adapter", "Keysight34465AAdapter", "adapt"]


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
