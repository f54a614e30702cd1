"""A small declarative base for SCPI drivers over pyvisa.

A driver is a table: each setting one :class:`Setting` (command template, allowed values,
unit, formatter, parser), each measurement one :class:`Reading`; its methods only say which
settings to send in which order. :class:`ScpiInstrument` does the rest:

* a value outside its allowed range is refused with a ``ValueError`` naming the setting,
  the value and the range, before anything is sent;
* every setting written is followed by the instrument's error query, and an error it
  reports becomes an :class:`~instruments.interfaces.InstrumentError` naming the instrument
  (its ``*IDN?``), the command and the error text;
* a pyvisa timeout, or a reply that does not parse, becomes an ``InstrumentError`` naming
  the instrument, the command and the timeout (s) or the reply; after a timeout the
  instrument is cleared (a late reply would otherwise answer the next query) and its error
  queue asked, so that a query the instrument does not know is named as such;
* opening clears the instrument (VISA device clear) and reads out whatever a killed run
  left in its output queue, so a stale reply is never taken for the next answer.

:class:`Transport` wraps the pyvisa resource and can record every exchange as
``(command sent, reply or None)``, which is what the driver tests compare.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import pyvisa
from pyvisa.constants import StatusCode

from ..interfaces import InstrumentError

Exchange = tuple[str, str | None]
"""One exchange: (command sent, reply), the reply None for a write or a query left unanswered."""

# SCPI decimal numeric data (NR1, NR2, NR3); stricter than float(), which also takes
# "nan", "inf" and "1_000".
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ERROR_CODE = re.compile(r"[+-]?\d+")

# An error queue that never empties is a broken instrument: stop asking, report what came.
_MAX_QUEUED_ERRORS = 32
# Likewise an output queue that never empties: a stream, not stale replies.
_MAX_STALE_REPLIES = 64

log = logging.getLogger(__name__)


# -- values <-> SCPI text ----------------------------------------------------------------------
def format_number(value: float) -> str:
    """SCPI text of a number, exact: the shortest decimal that reads back as the same float,
    e.g. ``1e-09``, ``0.5``, ``-210.0``."""
    return repr(float(value))


def parse_number(reply: str) -> float:
    """A SCPI numeric reply (``+1.00000000E-03``, ``-5``, ``.5``) as a float.

    Raises:
        ValueError: the reply is not a SCPI number.
    """
    text = reply.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"not a SCPI number: {reply!r}")
    return float(text)


def format_numbers(values: Sequence[float]) -> str:
    """SCPI text of a list of numbers, e.g. ``0.0, 0.5, 1.0``."""
    return ", ".join(format_number(v) for v in values)


def parse_numbers(reply: str) -> np.ndarray:
    """A comma-separated SCPI numeric reply as a float64 array."""
    return np.array([parse_number(part) for part in reply.split(",")])


def format_bool(on: bool) -> str:
    """``ON`` or ``OFF``."""
    return "ON" if on else "OFF"


def parse_bool(reply: str) -> bool:
    """A SCPI boolean reply (``1``, ``0``, ``ON``, ``OFF``) as a bool."""
    text = reply.strip().upper()
    if text in ("1", "ON"):
        return True
    if text in ("0", "OFF"):
        return False
    raise ValueError(f"not a SCPI boolean: {reply!r}")


def parse_error(reply: str) -> tuple[int, str]:
    """An error-queue entry such as ``-222,"Data out of range"`` as ``(code, message)``; code
    0 means no error."""
    code, comma, message = reply.partition(",")
    if not comma or not _ERROR_CODE.fullmatch(code.strip()):
        raise ValueError(f"not a SCPI error entry: {reply!r}")
    message = message.strip()
    if len(message) >= 2 and message[0] == message[-1] == '"':
        message = message[1:-1]
    return int(code), message


# -- allowed values ----------------------------------------------------------------------------
class Allowed(Protocol):
    def problem(self, value: Any, unit: str) -> str | None:
        """Why ``value`` is not allowed (naming the value and what is allowed), or None."""
        ...


def _quantity(value: Any, unit: str) -> str:
    return f"{value} {unit}".rstrip()


class Range:
    """The closed interval ``lo..hi`` (in the setting's unit)."""

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = lo, hi

    def problem(self, value: Any, unit: str) -> str | None:
        if self.lo <= value <= self.hi:
            return None
        return f"{_quantity(value, unit)} is outside {_quantity(f'{self.lo:g}..{self.hi:g}', unit)}"


class OneOf:
    """A finite set of values, e.g. ``OneOf(0.1, 1, 10)``."""

    def __init__(self, *values: Any):
        self.values = values

    def problem(self, value: Any, unit: str) -> str | None:
        if value in self.values:
            return None
        return f"{_quantity(value, unit)} is not one of {', '.join(str(v) for v in self.values)}"


class Each:
    """A list of 1..``max_len`` values, each one allowed by ``item``."""

    def __init__(self, item: Allowed, max_len: int):
        self.item, self.max_len = item, max_len

    def problem(self, values: Any, unit: str) -> str | None:
        if not 1 <= len(values) <= self.max_len:
            return f"{len(values)} values, allowed 1..{self.max_len}"
        for i, value in enumerate(values):
            problem = self.item.problem(value, unit)
            if problem is not None:
                return f"value {i}: {problem}"
        return None


def check(name: str, allowed: Allowed, value: Any, unit: str = "") -> None:
    """Raise ``ValueError`` naming ``name`` when ``value`` is not allowed."""
    problem = allowed.problem(value, unit)
    if problem is not None:
        raise ValueError(f"{name}: {problem}")


# -- declarations ------------------------------------------------------------------------------
class _Declaration:
    """What settings and readings share: a name, a unit, a parser and, for a per-channel
    one, the channels (the command templates then hold ``{channel}``)."""

    name: str

    def __init__(self, unit: str, parser: Callable[[str], Any], channels: Sequence[int] | None):
        self.unit = unit
        self.parser = parser
        self.channels = None if channels is None else tuple(channels)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = f"{owner.__name__}.{name}"

    def _check_channel(self, channel: int | None) -> None:
        if self.channels is None and channel is not None:
            raise ValueError(f"{self.name} has no channels, got channel {channel!r}")
        if self.channels is not None and channel not in self.channels:
            raise ValueError(
                f"{self.name}: channel {channel!r} is not one of {', '.join(map(str, self.channels))}"
            )


class Setting(_Declaration):
    """One setting of an instrument, declared on the driver class.

    Args:
        command: SCPI template holding ``{value}`` (and ``{channel}`` for a per-channel
            setting), e.g. ``":SOUR:VOLT:ILIM {value}"``.
        allowed: the allowed values, or a mapping channel -> allowed values when they differ
            between channels (its keys are then the channels).
        unit: SI unit of the value, for messages (``"V"``, ``"A"``, ``""``).
        query: SCPI template reading the setting back, or None when it is write-only.
        formatter: value -> SCPI text.
        parser: reply to ``query`` -> value.
        channels: the channels of a per-channel setting whose allowed values are the same
            on every channel.

    On an instance of the driver, ``driver.setting`` is bound to it (see :class:`BoundSetting`).
    """

    def __init__(
        self,
        command: str,
        allowed: Allowed | Mapping[int, Allowed],
        unit: str = "",
        *,
        query: str | None = None,
        formatter: Callable[[Any], str] = format_number,
        parser: Callable[[str], Any] = parse_number,
        channels: Sequence[int] | None = None,
    ):
        if isinstance(allowed, Mapping):
            channels = tuple(allowed)
        super().__init__(unit, parser, channels)
        self.command = command
        self.allowed = allowed
        self.query = query
        self.formatter = formatter

    def command_for(self, value: Any, channel: int | None = None) -> str:
        """The SCPI command setting ``value`` (on ``channel``).

        Raises:
            ValueError: the channel or the value is not allowed; nothing is sent.
        """
        self._check_channel(channel)
        allowed = self.allowed[channel] if isinstance(self.allowed, Mapping) else self.allowed
        check(self.name if channel is None else f"{self.name} (channel {channel})", allowed, value, self.unit)
        return self.command.format(value=self.formatter(value), channel=channel)

    def query_for(self, channel: int | None = None) -> str:
        """The SCPI query reading the setting back (on ``channel``)."""
        if self.query is None:
            raise TypeError(f"{self.name} is write-only")
        self._check_channel(channel)
        return self.query.format(channel=channel)

    def __get__(self, instrument: ScpiInstrument | None, owner: type | None = None) -> Setting | BoundSetting:
        return self if instrument is None else BoundSetting(self, instrument)


class Reading(_Declaration):
    """One measurement or status query of an instrument, declared on the driver class.

    Args:
        query: SCPI query template (holding ``{channel}`` for a per-channel reading).
        unit: SI unit of the result.
        parser: reply -> value.
        channels: the channels of a per-channel reading.
    """

    def __init__(
        self,
        query: str,
        unit: str = "",
        *,
        parser: Callable[[str], Any] = parse_number,
        channels: Sequence[int] | None = None,
    ):
        super().__init__(unit, parser, channels)
        self.query = query

    def query_for(self, channel: int | None = None) -> str:
        self._check_channel(channel)
        return self.query.format(channel=channel)

    def __get__(self, instrument: ScpiInstrument | None, owner: type | None = None) -> Reading | BoundReading:
        return self if instrument is None else BoundReading(self, instrument)


class BoundSetting:
    """A :class:`Setting` of one open instrument."""

    def __init__(self, setting: Setting, instrument: ScpiInstrument):
        self.setting, self.instrument = setting, instrument

    def command(self, value: Any, channel: int | None = None) -> str:
        """The checked command, for :meth:`ScpiInstrument.send` with others."""
        return self.setting.command_for(value, channel)

    def set(self, value: Any, channel: int | None = None) -> None:
        """Check, write, then ask the instrument for errors."""
        self.instrument.send(self.setting.command_for(value, channel))

    def get(self, channel: int | None = None) -> Any:
        """Read the setting back from the instrument."""
        return self.instrument.ask(self.setting.query_for(channel), self.setting.parser)


class BoundReading:
    """A :class:`Reading` of one open instrument."""

    def __init__(self, reading: Reading, instrument: ScpiInstrument):
        self.reading, self.instrument = reading, instrument

    def read(self, channel: int | None = None) -> Any:
        return self.instrument.ask(self.reading.query_for(channel), self.reading.parser)


# -- the wire ----------------------------------------------------------------------------------
class Transport:
    """A pyvisa message-based resource that records every exchange when ``record`` is True.

    Attributes:
        exchanges: ``(command, reply or None)`` in the order they happened.
    """

    def __init__(self, resource: pyvisa.resources.MessageBasedResource, *, record: bool = False):
        self.resource = resource
        self.record = record
        self.exchanges: list[Exchange] = []
        self.closed = False

    @property
    def name(self) -> str:
        """The VISA resource name."""
        name = self.resource.resource_name
        # pyvisa-sim gives a session number for a resource it does not define
        return name if isinstance(name, str) else self.resource.resource_info.resource_name

    @property
    def timeout_s(self) -> float:
        """The I/O timeout (s)."""
        return self.resource.timeout / 1000

    def write(self, command: str) -> None:
        try:
            self.resource.write(command)
        finally:
            self._log(command, None)

    def query(self, command: str, timeout_s: float | None = None) -> str:
        """Write ``command`` and read the reply, waiting up to ``timeout_s`` (s; None for
        the resource's own timeout)."""
        saved_ms = self.resource.timeout
        if timeout_s is not None:
            self.resource.timeout = timeout_s * 1000
        reply = None
        try:
            reply = self.resource.query(command)
            return reply
        finally:
            self.resource.timeout = saved_ms
            self._log(command, reply)

    def clear(self, drain_timeout_s: float) -> list[str]:
        """Device clear, then read out what is still waiting; returns the stale messages.

        The device clear (VISA ``viClear``, IEEE 488.2 DCL/SDC, USBTMC INITIATE_CLEAR) makes the
        instrument abort a pending reply and empty its input and output queues; an interface
        without it (pyvisa-sim, some serial links) leaves this to the reads that follow, each
        waiting up to ``drain_timeout_s`` (s) until one times out. Recorded as
        ``("<device clear>", None)`` and one ``("<stale>", message)`` per message read.
        """
        try:
            self.resource.clear()
        except (NotImplementedError, pyvisa.errors.VisaIOError):
            pass  # no device clear on this interface: the reads below empty the output queue
        else:
            self._log("<device clear>", None)
        stale: list[str] = []
        saved_ms = self.resource.timeout
        self.resource.timeout = drain_timeout_s * 1000
        try:
            for _ in range(_MAX_STALE_REPLIES):
                try:
                    message = self.resource.read()
                except pyvisa.errors.VisaIOError as exc:
                    if exc.error_code == StatusCode.error_timeout:
                        break
                    raise
                stale.append(message)
                self._log("<stale>", message)
        finally:
            self.resource.timeout = saved_ms
        return stale

    def close(self) -> None:
        """Close the resource (idempotent)."""
        if not self.closed:
            self.closed = True
            self.resource.close()

    def _log(self, command: str, reply: str | None) -> None:
        if self.record:
            self.exchanges.append((command, reply))


# -- the instrument ----------------------------------------------------------------------------
class ScpiInstrument:
    """Base of the SCPI drivers. Opening, in order:

    1. device clear and read-out of anything stale (:meth:`Transport.clear`): a reply left
       by a killed run would otherwise be read as the answer to ``*IDN?``; what was read is
       logged and kept in :attr:`stale_replies`;
    2. ``*IDN?``, which must name :attr:`model`;
    3. :meth:`check_command_set` (the 2450 asks ``*LANG?``);
    4. ``*CLS``, so that stale errors are not blamed on the first command.

    A driver declares its settings and readings on the class, sets :attr:`error_query` to
    its instrument's, lists in :attr:`reported` what :meth:`settings` reads back, and defines
    ``setup(**options)``: what :func:`~instruments.visa.open_instrument` applies from a rig
    file's options.

    Args:
        resource: an open pyvisa message-based resource; its terminations are set to
            :attr:`termination`.
        record: keep every exchange in ``transport.exchanges`` (for tests).

    Attributes:
        stale_replies: what the output queue held at opening (normally empty).
    """

    error_query: ClassVar[str] = "SYST:ERR?"
    """The query reading the next entry of the instrument's error queue."""

    model: ClassVar[str] = ""
    """Text the ``*IDN?`` reply must contain (e.g. ``"2450"``), so a wrong instrument at the
    address, or a resource that answers nothing, is refused at opening."""

    termination: ClassVar[str] = "\n"
    """End of every message, both ways (LF on USBTMC and LAN for these instruments)."""

    drain_timeout_s: ClassVar[float] = 0.02
    """How long a read of the output queue waits before the queue counts as empty (s)."""

    reported: ClassVar[Mapping[str, str]] = {}
    """What :meth:`settings` reads back: key -> name of a :class:`Setting` (with a query) or
    :class:`Reading` of the class; a per-channel one is reported per channel as
    ``ch<n>_<key>``."""

    def __init__(self, resource: pyvisa.resources.MessageBasedResource, *, record: bool = False):
        resource.read_termination = resource.write_termination = self.termination
        self.transport = Transport(resource, record=record)
        # messages name the resource until *IDN? has answered
        self._identity: str | None = None
        self.stale_replies = self.transport.clear(self.drain_timeout_s)
        if self.stale_replies:
            log.warning("%s: discarded %d stale replies at opening: %s", self.transport.name,
                        len(self.stale_replies), "; ".join(map(repr, self.stale_replies)))
        identity = self.ask("*IDN?", str.strip)
        if self.model not in identity:
            raise InstrumentError(
                f"{self.transport.name}: *IDN? answered {identity!r}, which is not a {self.model} "
                f"(is the right instrument at this address?)"
            )
        self._identity = identity
        self.check_command_set()
        self.write("*CLS")

    def identity(self) -> str:
        """The ``*IDN?`` reply, e.g. ``"KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.7.12b"``."""
        return self._identity or self.transport.name

    def check_command_set(self) -> None:
        """Raise :class:`InstrumentError` when the instrument does not speak the commands
        this driver sends (nothing to check by default)."""

    def settings(self) -> dict:
        """Every setting of :attr:`reported`, read back from the instrument, then its error
        queue checked (see :class:`~instruments.interfaces.Configured`).

        Raises:
            InstrumentError: a query went unanswered, its reply did not parse, or the
                instrument reported an error.
        """
        out: dict = {}
        for key, name in self.reported.items():
            declaration = getattr(type(self), name)
            bound = getattr(self, name)
            read = bound.get if isinstance(declaration, Setting) else bound.read
            if declaration.channels is None:
                out[key] = read()
            else:
                for channel in declaration.channels:
                    out[f"ch{channel}_{key}"] = read(channel)
        self.check_errors()
        return out

    def close(self) -> None:
        """Close the resource (idempotent)."""
        self.transport.close()

    def write(self, command: str) -> None:
        """Write ``command`` without asking for errors (common commands such as ``*WAI``)."""
        self._exchange(command, reply=False)

    def send(self, *commands: str) -> None:
        """Write each command in turn, each followed by the error queue read out to its end.

        Raises:
            InstrumentError: the instrument refused a command (the later ones are not sent),
                answered it as if it were a query (an instrument that does not know it), did
                not answer its error query with an error-queue entry, or did not answer in
                time.
        """
        for command in commands:
            self.write(command)
            errors = self._queued_errors(command)
            if errors:
                raise InstrumentError(f"{self.identity()}: {command!r} refused: {'; '.join(errors)}")

    def check_errors(self) -> None:
        """Read the error queue to its end; raise :class:`InstrumentError` naming every error
        it held (e.g. after queries, which :meth:`send` does not follow up)."""
        errors = self._queued_errors(None)
        if errors:
            raise InstrumentError(f"{self.identity()}: the error queue held: {'; '.join(errors)}")

    def _queued_errors(self, after: str | None) -> list[str]:
        """The error queue's entries up to its first "no error" (``code,message`` each)."""
        errors = []
        for _ in range(_MAX_QUEUED_ERRORS):
            reply = self._exchange(self.error_query, reply=True)
            try:
                code, message = parse_error(reply)
            except ValueError:
                raise self._not_an_error_entry(after, reply) from None
            if code == 0:
                break
            errors.append(f"{code},{message}")
        return errors

    def _not_an_error_entry(self, after: str | None, reply: str) -> InstrumentError:
        """The error for an error query answered with something else. When more replies wait
        behind it, the command before produced one: the instrument answered a command it does
        not know (as QCoDeS-style simulations and some instruments do with ``ERROR``);
        otherwise it does not know its own error query."""
        waiting = self.transport.clear(self.drain_timeout_s)
        if after is not None and waiting:
            return InstrumentError(f"{self.identity()}: {after!r} was answered {reply!r} instead of being "
                                   f"executed: the instrument does not know this command")
        return InstrumentError(f"{self.identity()}: the error query {self.error_query!r} was answered {reply!r}, "
                               f"not an error-queue entry (does the instrument speak this command set?)")

    def ask(
        self, query: str, parser: Callable[[str], Any] = parse_number, timeout_s: float | None = None
    ) -> Any:
        """Send ``query`` and parse the reply, waiting up to ``timeout_s`` (s; None for the
        transport's timeout).

        Raises:
            InstrumentError: no reply in time (naming the error the instrument then reports,
                when it reports one), or a reply ``parser`` refuses.
        """
        reply = self._exchange(query, reply=True, timeout_s=timeout_s)
        try:
            return parser(reply)
        except ValueError as exc:
            raise InstrumentError(f"{self.identity()}: reply {reply!r} to {query!r} does not parse") from exc

    def _exchange(self, command: str, *, reply: bool, timeout_s: float | None = None) -> str | None:
        try:
            if reply:
                return self.transport.query(command, timeout_s)
            return self.transport.write(command)
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == StatusCode.error_timeout:
                waited_s = self.transport.timeout_s if timeout_s is None else timeout_s
                message = f"{self.identity()}: {command!r} timed out after {waited_s:g} s"
                if reply and command != self.error_query:
                    message += self._why_unanswered()
                raise InstrumentError(message) from exc
            raise InstrumentError(f"{self.identity()}: {command!r} failed: {exc.description}") from exc

    def _why_unanswered(self) -> str:
        """After a query timed out: clear the instrument (a late reply must not answer the next
        query), then ask its error queue once; what it says, as the end of a message."""
        try:
            self.transport.clear(self.drain_timeout_s)
            code, message = parse_error(self.transport.query(self.error_query))
        except (pyvisa.errors.VisaIOError, ValueError):
            return f"; its error query {self.error_query!r} got no usable answer either"
        if code == 0:
            return ""
        return f"; the instrument reports {code},{message} (does it know this query?)"
