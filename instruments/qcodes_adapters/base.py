"""What both QCoDeS adapters share: the checked exchange with the QCoDeS instrument.

:class:`_Adapter` holds the station's instrument and its closed state, and makes every
exchange through the driver one checked step: a failure is one
:class:`~instruments.interfaces.InstrumentError` naming the instrument, the parameter and
its SCPI command, after which the output queue is cleared (a device clear, and on pyvisa-sim
the replies read off); a setting is read back and confirmed; the error queue is emptied
before a configuration and checked empty after it. Also here: the QCoDeS driver classes
(imported only when an adapter is made) and the limits of the exchanges.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pyvisa

from ..interfaces import InstrumentError

# the package's logger, as before the adapters were split into modules
log = logging.getLogger("instruments.qcodes_adapters")



# The 34465A and the 2450 answer +/-9.9E+37 for a reading beyond the range (9.91E+37: not a
# number); QCoDeS's 34465A driver turns it into +/-inf.
_OVERLOAD = 9.9e37
# An error queue that never empties is a broken instrument: stop asking, report what came.
_MAX_QUEUED_ERRORS = 32
# Before a configuration the queue may hold one error per query of a station's snapshot
# that the instrument refused: dozens on a 2450.
_MAX_STALE_ERRORS = 512
# Replies left queued by a failed exchange that a resynchronisation reads off at most.
_MAX_STALE_REPLIES = 32
_DRAIN_TIMEOUT_S = 0.02


def _drivers() -> tuple[type, type]:
    """The QCoDeS driver classes the adapters take: (Keithley2450, Keysight34465A)."""
    try:
        from qcodes.instrument_drivers.Keithley import Keithley2450
        from qcodes.instrument_drivers.Keysight import Keysight34465A
    except ImportError as exc:
        raise ImportError(f"the QCoDeS adapters need qcodes: pip install 'twinrig[qcodes]' ({exc})") from exc
    return Keithley2450, Keysight34465A


def _cause(exc: BaseException) -> str:
    """An exception as one line: QCoDeS appends its context ('getting smu_source_limit') to
    the args of whatever the exchange raised."""
    text = "; ".join(str(a) for a in exc.args) or str(exc)
    return f"{type(exc).__name__}: {' '.join(text.split())}"


def _template(param, kind: str) -> str | None:
    """The SCPI template the driver sends for ``param`` (``kind`` 'set' or 'get'), or None
    where the driver builds the command in code."""
    return getattr(getattr(param, f"{kind}_raw", None), "cmd_str", None)


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, (bool, str)):
        return got == want
    try:
        return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-15)
    except (TypeError, ValueError):
        return False


class _Adapter:
    """What both adapters share: the QCoDeS instrument, the checked exchange, the closed state."""

    model: str
    driver_class: str
    """``module:Class`` of the QCoDeS driver this adapter takes."""

    def __init__(self, instrument, driver: type):
        if not isinstance(instrument, driver):
            raise TypeError(
                f"{type(self).__name__} takes a {driver.__module__}.{driver.__qualname__}, "
                f"got {type(instrument).__module__}.{type(instrument).__qualname__}"
            )
        self.instrument = instrument
        """The station's QCoDeS instrument (never closed by the adapter)."""
        self.closed = False
        self.who = f"{self.model} (QCoDeS instrument {instrument.name!r})"
        stale = self._call("clearing the instrument (device clear)", self._clear)
        if stale:
            log.warning("%s: discarded %d stale repl%s: %s", self.who, len(stale),
                        "y" if len(stale) == 1 else "ies", "; ".join(map(repr, stale)))

    # -- exchanges -----------------------------------------------------------------------------
    def _failed(self, doing: str, exc: BaseException) -> InstrumentError:
        self._resync()
        return InstrumentError(f"{self.who}: {doing} failed: {_cause(exc)}")

    def _call(self, doing: str, call: Callable[[], Any]) -> Any:
        """``call()``, with whatever it raises as one InstrumentError saying what was ``doing``."""
        self._check_open()
        try:
            return call()
        except InstrumentError:
            raise
        except Exception as exc:
            raise self._failed(doing, exc) from exc

    def _get(self, param) -> Any:
        query = _template(param, "get")
        return self._call(f"reading {param.full_name}" + (f" ({query})" if query else ""), param.get)

    def _set(self, param, value: Any, unit: str = "") -> Any:
        """Set ``param`` through the driver, then read it back and return what it reads:
        anything but ``value`` is an InstrumentError naming the parameter and its commands."""
        shown = f"{value!r} {unit}".rstrip()
        command = _template(param, "set")
        self._call(f"setting {param.full_name} to {shown}" + (f" ({command})" if command else ""),
                   lambda: param.set(value))
        query = _template(param, "get")
        got = self._call(f"confirming {param.full_name} = {shown}: reading it back"
                         + (f" ({query})" if query else ""), param.get)
        if not _same(got, value):
            self._resync()
            raise InstrumentError(
                f"{self.who}: set {param.full_name} to {shown}"
                + (f" ({command})" if command else "")
                + f" but it reads back {got!r}: the instrument refused or ignored the command"
            )
        return got

    def _clear(self) -> list[str]:
        """Empty the instrument's output queue, so that a reply left waiting (by a failed
        exchange, or a script interrupted between query and read) is never read as the next
        command's answer: the driver's device clear, then on pyvisa-sim the replies read off.
        Returns what was read off."""
        inst = self.instrument
        inst.device_clear()
        stale: list[str] = []
        if getattr(inst, "visabackend", None) != "sim":
            return stale
        # QCoDeS does not clear a pyvisa-sim device, and pyvisa-sim answers an unknown
        # command with a reply of its own: read those off, as a device clear empties a real
        # instrument's output queue.
        with inst.timeout.set_to(_DRAIN_TIMEOUT_S):
            for _ in range(_MAX_STALE_REPLIES):
                try:
                    stale.append(inst.visa_handle.read())
                except pyvisa.errors.VisaIOError:
                    break  # nothing more waiting
        return stale

    def _resync(self) -> None:
        """After a failed exchange: :meth:`_clear`, quietly."""
        try:
            self._clear()
        except Exception:  # the error being reported already says the instrument is not answering
            pass

    def _read_errors(self, query: str, read_one: Callable[[], tuple[int, str]],
                     most: int = _MAX_QUEUED_ERRORS) -> list[str]:
        """Read the instrument's error queue until it is empty (at most ``most`` entries):
        what it held."""
        errors = []
        for _ in range(most):
            code, message = self._call(f"reading the error queue ({query})", read_one)
            if code == 0:
                return errors
            errors.append(f'{code},"{message}"')
        raise InstrumentError(f"{self.who}: the error queue ({query}) is still not empty after "
                              f"{most} entries: {'; '.join(errors[:_MAX_QUEUED_ERRORS])} ...")

    def _discard_errors(self, query: str, read_one: Callable[[], tuple[int, str]]) -> None:
        """Empty the error queue before configuring, logging what it held: errors of earlier
        work are not this configuration's (a QCoDeS station's snapshot of a 2450 asks
        ``:SENSe:...:DELay:USERNone?``, which the instrument refuses)."""
        stale = self._read_errors(query, read_one, _MAX_STALE_ERRORS)
        if stale:
            counts = dict.fromkeys(stale, 0)
            for error in stale:
                counts[error] += 1
            log.warning("%s: discarded %d error(s) queued before this configuration: %s", self.who, len(stale),
                        "; ".join(e if n == 1 else f"{e} (x{n})" for e, n in counts.items()))

    def _check_errors(self, query: str, read_one: Callable[[], tuple[int, str]]) -> None:
        """The error queue must be empty: an error it holds is an InstrumentError listing them all."""
        errors = self._read_errors(query, read_one)
        if errors:
            raise InstrumentError(f"{self.who}: the error queue ({query}) held {'; '.join(errors)}")

    def _check_open(self) -> None:
        if self.closed:
            raise InstrumentError(f"{self.who}: the adapter is closed")

    # -- Identified ----------------------------------------------------------------------------
    def identity(self) -> str:
        """The instrument's ``*IDN?`` reply, e.g. ``"KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"``."""
        # Not the driver's IDN parameter: it rewrites the reply (the 2450's "MODEL 2450"
        # becomes "2450") and hides a failed query, and a run file and a calibration must
        # name the instrument as twinrig's own drivers do.
        return self._call("reading the identity (*IDN?)", lambda: self.instrument.ask("*IDN?")).strip()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.who}{' (closed)' if self.closed else ''}>"
