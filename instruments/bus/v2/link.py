"""The host's side of one protocol-2 bus: a serial port, and how long the host waits on it.

A protocol-2 host waits in *bus time*, from each request's end of frame: a unicast reply's
window (:func:`~instruments.bus.v2.slots.unicast_reply_window_us`), a slotted broadcast's
listening time (:func:`~instruments.bus.v2.slots.listen_us`), a command's quiet time
(:func:`~instruments.bus.v2.payloads.quiet_ms`), the version-1 probe's timeout. A port turns
those into waiting:

- :class:`SerialPort`, a real port (pyserial): the end of frame is when the bytes written
  have left at the line rate, and the host listens that long after it, plus ``latency_s``
  for the USB adapter and the operating system (an FTDI adapter's latency timer is 16 ms by
  default), in real time.
- :class:`EmulatedPort`, the pseudo-terminal of a :class:`~instruments.bus.v2.onwire.V2Emulator`
  running in this process: the emulator works in emulated time and gives back, at once,
  everything the line carries until the host's next byte, so the host waits until the
  emulator is done with its request and has read every byte it wrote, then tells the
  emulated wire how long it waited (:meth:`~instruments.bus.v2.onwire.V2Wire.host_waited`):
  no real time passes for a quiet time or a listening window, and the emulated bus time is
  what the host's waits make it. It tells the wire its window before each request
  (:meth:`~instruments.bus.v2.onwire.V2Wire.host_will_listen`), so a reply later than the
  window is not heard and collides with what the host sends next, as on a real bus.

:func:`open_port` picks one by the port's path. Units: times us unless ``_s``.
"""

from __future__ import annotations

import termios
import time

import serial

from .. import timing
from .constants import Error
from .framing import Frame, FrameError, FrameSplitter, decode_any, line_frame

__all__ = ["PortError", "SerialPort", "EmulatedPort", "open_port"]

#: Longest single read while waiting (s).
_POLL_S = 0.002
#: Longest real wait for an emulator to be done with one request (s): a slotted broadcast
#: to 247 boards takes about 2 s of the emulator's work on a slow machine.
EMULATOR_TIMEOUT_S = 120.0


class PortError(RuntimeError):
    """The port could not be opened, or an emulator stopped answering."""


class _Recovered:
    """A good frame found at the end of a chunk that garbage ran into."""

    def __init__(self, garbage: FrameError, frame: Frame) -> None:
        self.garbage, self.frame = garbage, frame


#: Shortest frame on the wire before its delimiter: 7 bytes and COBS's one.
_MIN_ENCODED = 8


def _decode_resync(chunk: bytes):
    """A chunk's frame; when the chunk does not decode, the frame its tail holds, if any.

    Boards' replies carry only a trailing delimiter, so the garbage of a collision (two
    boards in one slot) runs into the next slot's reply: that reply is the chunk's tail. The
    earliest tail that passes every receive check is taken, and the garbage before it is
    counted as one garbled reply. A tail passes the CRC-16 by chance once in 65,536 tries;
    the client then takes it only if it is the reply it waits for (version, addresses,
    sequence number, command and payload length)."""
    try:
        return decode_any(chunk)
    except FrameError as exc:
        for i in range(1, len(chunk) - _MIN_ENCODED + 1):
            try:
                frame = decode_any(chunk[i:])
            except FrameError:
                continue
            return _Recovered(exc, frame)
        raise


class _Port:
    """What both ports share: the serial object, the splitter (every version: the host reads
    the version-1 probe's replies too) and the bytes written."""

    def __init__(self, ser, baud: int, name: str) -> None:
        self.serial, self.baud, self.name = ser, int(baud), name
        self.serial.timeout = _POLL_S
        self.char_us = timing.char_us(self.baud)
        self._splitter = FrameSplitter(decoder=_decode_resync)
        #: Bytes written, and frames and errors received, since the port was opened.
        self.bytes_sent = 0
        self.frames_received = 0
        self.errors_received = 0

    def close(self) -> None:
        self.serial.close()

    def _write(self, frame: Frame) -> int:
        data = line_frame(frame)
        self.serial.write(data)
        self.serial.flush()
        self.bytes_sent += len(data)
        return len(data)

    def exchange_train(self, frames, spacing_us: int, tail_us: int) -> list:
        """Send ``frames`` one after another, each ``spacing_us`` after the end of frame of
        the one before (a window in bus time, no latency: the replies are on the wire within
        it), and receive until ``tail_us`` after the last one's end of frame (plus, on a
        real port, its latency once); everything received, in order. The host attributes
        each reply by its source and sequence number, so a reply that an adapter hands over
        late is still counted for the right request."""
        items: list = []
        for f in frames:
            items += self.exchange(f, spacing_us, None, False)
        self.wait(tail_us)
        return items

    def _end_window(self, items: list) -> list:
        """At the end of a window, bytes after the last delimiter are a garbled reply (a
        collision's garbage, or a reply cut short): counted as one, and forgotten."""
        if self._splitter.pending:
            items.append(FrameError(Error.BAD_COBS, f"{self._splitter.pending} byte(s) with no delimiter"))
            self.errors_received += 1
            self._splitter.reset()
        return items

    def _items(self, data: bytes) -> list:
        items = []
        for it in self._splitter.feed(data):
            if isinstance(it, _Recovered):
                items += [it.garbage, it.frame]
            else:
                items.append(it)
        for it in items:
            if isinstance(it, FrameError):
                self.errors_received += 1
            else:
                self.frames_received += 1
        return items


class SerialPort(_Port):
    """A real serial port: waits in real time, ``latency_s`` beyond every bus-time window."""

    def __init__(self, ser, baud: int, name: str, latency_s: float = 0.05) -> None:
        super().__init__(ser, baud, name)
        self.latency_s = float(latency_s)
        self._eof = time.monotonic()
        self._t0 = time.monotonic()

    def exchange(self, frame: Frame, window_us: int, done=None, replies: bool = True) -> list:
        """Send ``frame``, then receive until ``window_us`` after its end of frame (or until
        ``done(items)`` is true); the frames and errors received, in order. ``latency_s`` is
        added when ``replies`` are expected (a silent broadcast's quiet time is the boards').
        Raises :class:`PortError` when the port goes away (an adapter unplugged)."""
        try:
            return self._exchange(frame, window_us, done, replies)
        except (serial.SerialException, OSError, termios.error) as exc:
            raise PortError(f"{self.name}: the port failed ({exc})") from None

    def _exchange(self, frame: Frame, window_us: int, done, replies: bool) -> list:
        self.serial.reset_input_buffer()
        self._splitter.reset()
        n = self._write(frame)
        self._eof = time.monotonic() + n * self.char_us * 1e-6
        deadline = self._eof + window_us * 1e-6 + (self.latency_s if replies else 0.0)
        items: list = []
        while time.monotonic() < deadline:
            data = self.serial.read(max(1, self.serial.in_waiting))
            if data:
                items += self._items(data)
                if done is not None and done(items):
                    return items
        return self._end_window(items)

    def exchange_train(self, frames, spacing_us: int, tail_us: int) -> list:
        """As :meth:`_Port.exchange_train`, in real time: the input buffer is kept across
        the train (a late reply is not thrown away with the next request), and the latency
        is waited once, after the last frame, not after every one."""
        try:
            self.serial.reset_input_buffer()
            self._splitter.reset()
            items: list = []
            frames = list(frames)
            for i, f in enumerate(frames):
                n = self._write(f)
                self._eof = time.monotonic() + n * self.char_us * 1e-6
                last = i == len(frames) - 1
                deadline = self._eof + (tail_us if last else spacing_us) * 1e-6 + (self.latency_s if last else 0.0)
                while time.monotonic() < deadline:
                    data = self.serial.read(max(1, self.serial.in_waiting))
                    if data:
                        items += self._items(data)
            return self._end_window(items)
        except (serial.SerialException, OSError, termios.error) as exc:
            raise PortError(f"{self.name}: the port failed ({exc})") from None

    def wait(self, window_us: int) -> None:
        """Send nothing until ``window_us`` after the last request's end of frame."""
        remaining = self._eof + window_us * 1e-6 - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def bus_time_us(self) -> int:
        """Real time since the port was opened (us)."""
        return int((time.monotonic() - self._t0) * 1e6)


class EmulatedPort(_Port):
    """The pseudo-terminal of a :class:`~instruments.bus.v2.onwire.V2Emulator` in this
    process: waits until the emulator is done, in emulated time."""

    def __init__(self, ser, baud: int, name: str, emulator) -> None:
        super().__init__(ser, baud, name)
        self.emulator = emulator
        with emulator.done:  # what it took and gave back before this port was opened
            self._base_in, self._read = emulator.bytes_in, emulator.bytes_out
        emulator.wire.host_declares = True  # this host says how long it waits

    def _drain(self) -> list:
        """Read until the emulator is done with every byte sent and all it gave back is read."""
        items: list = []
        em = self.emulator
        deadline = time.monotonic() + EMULATOR_TIMEOUT_S
        while True:
            if not self.serial.in_waiting:
                with em.done:
                    if em.error is not None:
                        raise PortError(f"{self.name}: the emulator stopped: {em.error!r}")
                    if em.bytes_in >= self._base_in + self.bytes_sent and self._read >= em.bytes_out:
                        return items
                    if self._read >= em.bytes_out:  # nothing to read until it is done
                        em.done.wait(_POLL_S)
            data = self.serial.read(self.serial.in_waiting) if self.serial.in_waiting else b""
            if data:
                self._read += len(data)
                items += self._items(data)
            elif time.monotonic() > deadline:
                raise PortError(f"{self.name}: the emulator gave no answer within {EMULATOR_TIMEOUT_S:g} s")

    def exchange(self, frame: Frame, window_us: int, done=None, replies: bool = True) -> list:
        """As :meth:`SerialPort.exchange`; the window is waited in emulated time unless
        ``done(items)`` ends it (the wire then resumes after the last reply)."""
        self.emulator.wire.host_will_listen(window_us)
        self._write(frame)
        items = self._end_window(self._drain())
        if done is None or not done(items):
            self.emulator.wire.host_waited(window_us)
        return items

    def wait(self, window_us: int) -> None:
        self.emulator.wire.host_waited(window_us)

    def bus_time_us(self) -> int:
        """The emulated wire's time (us)."""
        return self.emulator.bus_time_us()


def open_port(port, baud: int = 115200, latency_s: float = 0.05):
    """A port for ``port`` (a device path or pyserial URL, or an open :class:`serial.Serial`):
    an :class:`EmulatedPort` when a :class:`~instruments.bus.v2.onwire.V2Emulator` of this
    process serves that path, else a :class:`SerialPort`. Raises :class:`PortError`."""
    from .onwire import serving

    if not isinstance(port, str):
        return SerialPort(port, baud, getattr(port, "port", str(port)), latency_s)
    try:
        ser = serial.serial_for_url(port, baudrate=baud)
    except (serial.SerialException, ValueError, OSError, OverflowError) as exc:
        raise PortError(f"cannot open the bus port {port}: {exc}") from None
    emulator = serving(port)
    if emulator is not None:
        return EmulatedPort(ser, baud, port, emulator)
    return SerialPort(ser, baud, port, latency_s)
