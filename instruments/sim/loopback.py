"""A serial port whose far end is a bus of emulated boards, in the same process.

:class:`LoopbackPort` has the part of pyserial's ``Serial`` that
:class:`~instruments.bus.client.BusClient` uses (``write``, ``read``, ``in_waiting``,
``timeout``, ``reset_input_buffer``, ``flush``, ``close``, ``port``). Every byte the host
writes goes through :class:`~instruments.bus.protocol.FrameSplitter` and reaches every
board of a :class:`~instruments.sim.boards.SimBoards` at once; the boards act on it with
exactly the semantics of :class:`~instruments.bus.protocol.ReferenceBoard` (addressing,
receive errors, statuses, broadcast rules, reset after the reply) and their replies are
queued as wire bytes, slotted replies in address order, as they follow each other on the
RS-485 bus. A reply is readable as soon as its request is written: no threads, no
pseudo-terminal, no waiting.

Boards in ``SimBoards.mute`` act but their replies are lost; boards without power hear
nothing.
"""

from __future__ import annotations

import numpy as np

from ..bus import protocol as p
from .boards import SimBoards

_M32 = 0xFFFFFFFF
_OK = int(p.Error.OK)


# -- commands: each takes the boards and the positions addressed, and returns the status of
# -- each, a function giving the reply fields of position k, and an action for after replying


def _no_fields(i: int) -> dict:
    return {}


def _identify(b: SimBoards, idx):
    return np.zeros(idx.size, np.int64), lambda i: {
        "uid": b.uid[i].tobytes(), "fw_major": b.fw_version[0], "fw_minor": b.fw_version[1],
        "fw_patch": b.fw_version[2], "kind": int(b.kind[i]), "protocol": p.PROTOCOL_VERSION,
        "protocol_minor": b.protocol_minor}, None  # left out of a minor-0 board's reply


def _read_state(b: SimBoards, idx):
    return np.zeros(idx.size, np.int64), lambda i: {"state": int(b.state[i])}, None


def _set_state(b: SimBoards, idx, state):
    ok = (b.state_min[idx] <= state) & (state <= b.state_max[idx])
    if ok.any():
        b.state[idx[ok]] = state
        b.state_version += 1
    return np.where(ok, _OK, p.Error.OUT_OF_RANGE), lambda i: {"state": int(b.state[i])}, None


def _configure_rule(b: SimBoards, idx, rule, probability, gain, dead_band_uv2):
    if (rule not in p.RULES.values() or probability > p.PROBABILITY_ONE or gain < 0
            or gain >= p.GAIN_LIMIT or dead_band_uv2 < 0):
        return np.full(idx.size, p.Error.OUT_OF_RANGE), _no_fields, None
    ok = np.isin(b.kind[idx], [int(k) for k in p.RULE_KINDS[p.Rule(rule)]])
    b.set_config(idx[ok], rule, probability, gain, dead_band_uv2)
    return np.where(ok, _OK, p.Error.WRONG_KIND), _no_fields, None


def _sample_drops(b: SimBoards, idx):
    drops = b.drops_uv(b.read_nodes_uv(), idx)
    row = dict(zip(idx.tolist(), drops.tolist()))
    return np.zeros(idx.size, np.int64), lambda i: {"dv_free_uv": row[i][0], "dv_clamped_uv": row[i][1]}, None


def _learn(b: SimBoards, idx):
    b.learn(b.read_nodes_uv(), idx)
    return np.zeros(idx.size, np.int64), lambda i: {"state": int(b.state[i]), "updated": int(b.updated[i])}, None


def _read_telemetry(b: SimBoards, idx):
    return np.zeros(idx.size, np.int64), lambda i: {
        "uptime_ms": b.uptime_ms(i), "frames_ok": int(b.frames_ok[i]), "frames_bad": int(b.frames_bad[i]),
        "updates": int(b.updates[i]), "last_error": int(b.last_error[i])}, None


def _store_calibration(b: SimBoards, idx, offset_free_a_uv, offset_free_b_uv, offset_clamped_a_uv,
                       offset_clamped_b_uv):
    fails = np.isin(b.address[idx], list(b.storage_fails))
    b.calibration_uv[idx[~fails]] = offset_free_a_uv, offset_free_b_uv, offset_clamped_a_uv, offset_clamped_b_uv
    return np.where(fails, p.Error.STORAGE, _OK), _no_fields, None


def _read_calibration(b: SimBoards, idx):
    names = ("offset_free_a_uv", "offset_free_b_uv", "offset_clamped_a_uv", "offset_clamped_b_uv")
    return np.zeros(idx.size, np.int64), lambda i: dict(zip(names, b.calibration_uv[i].tolist())), None


def _reset(b: SimBoards, idx):
    return np.zeros(idx.size, np.int64), _no_fields, lambda: b.restart(idx)


_HANDLERS = {
    "identify": _identify, "read_state": _read_state, "set_state": _set_state,
    "configure_rule": _configure_rule, "sample_drops": _sample_drops, "learn": _learn,
    "read_telemetry": _read_telemetry, "store_calibration": _store_calibration,
    "read_calibration": _read_calibration, "reset": _reset,
}
assert set(_HANDLERS) == set(p.COMMANDS)


def _reply(b: SimBoards, i: int, frame: p.Frame, code: int, status: int, payload: bytes) -> bytes:
    if status != _OK:
        payload = bytes((int(status),))
    return p.encode_frame(p.Frame(p.PROTOCOL_VERSION, p.ADDR_HOST, int(b.address[i]), frame.seq,
                                  (code | p.REPLY_BIT) & 0xFF, payload))


def receive_error(boards: SimBoards, error: p.FrameError) -> None:
    """A chunk that failed the receive checks: every board counts it and drops it."""
    boards.frames_bad[:] = (boards.frames_bad + 1) & _M32
    boards.last_error[:] = int(error.code)


def dispatch(boards: SimBoards, frame: p.Frame) -> list[bytes]:
    """Every board acts on one received frame; returns the wire bytes of the replies that
    reach the host, in address order."""
    if frame.dst == p.ADDR_BROADCAST:
        idx, bcast = np.arange(boards.n), True
    else:
        i = boards.index(frame.dst)
        if i < 0:
            return []
        idx, bcast = np.array([i]), False
    b = boards
    b.frames_ok[idx] = (b.frames_ok[idx] + 1) & _M32
    spec = p.COMMANDS_BY_CODE.get(frame.cmd)
    if spec is None:
        b.last_error[idx] = p.Error.UNKNOWN_COMMAND
        return [] if bcast else [_reply(b, i, frame, frame.cmd, p.Error.UNKNOWN_COMMAND, b"")
                                 for i in idx if b.address[i] not in b.mute]
    if bcast and spec.broadcast == p.BROADCAST_REFUSED:
        b.last_error[idx] = p.Error.BROADCAST_REFUSED
        return []
    if len(frame.payload) != spec.request_size:
        status, fields, after = np.full(idx.size, p.Error.BAD_LENGTH), None, None
    else:
        status, fields, after = _HANDLERS[spec.name](b, idx, **p.unpack_request(spec.name, frame.payload))
    status = np.asarray(status, np.int64)
    failed = status != _OK
    b.last_error[idx[failed]] = status[failed]
    replies = []
    if not bcast or spec.broadcast == p.BROADCAST_SLOTTED:
        for k, i in enumerate(idx):
            if b.address[i] in b.mute:
                continue
            payload = (p.pack_reply(spec.name, _OK, minor=b.protocol_minor, **fields(i))
                       if status[k] == _OK else b"")
            replies.append(_reply(b, i, frame, spec.code, status[k], payload))
    if after is not None:
        after()
    return replies


class LoopbackPort:
    """A pyserial-like port wired to emulated boards.

    Args:
        boards: the boards on the bus.
        port: the name this port reports (``BusClient`` puts it in its error messages).
        baudrate: line rate (baud); only counts the time the bytes would take.

    Attributes:
        timeout: read timeout (s), kept for pyserial compatibility; a read never waits.
        line_time_s: time the bytes so far would have taken on the line (s), 10 bits a byte.
        chunks_seen: frames and bad chunks received.
    """

    def __init__(self, boards: SimBoards, port: str = "loop://sim-boards", baudrate: int = 115200):
        self.boards = boards
        self.port = port
        self.baudrate = int(baudrate)
        self.timeout: float | None = None
        self.is_open = True
        self.line_time_s = 0.0
        self.chunks_seen = 0
        self._splitter = p.FrameSplitter()
        self._rx = bytearray()

    def _check_open(self) -> None:
        if not self.is_open:
            raise OSError(f"{self.port} is closed")

    def write(self, data: bytes) -> int:
        """Send bytes to the boards; their replies are queued for :meth:`read`."""
        self._check_open()
        data = bytes(data)
        self.line_time_s += 10 * len(data) / self.baudrate
        if not self.boards.powered:
            return len(data)
        for item in self._splitter.feed(data):
            self.chunks_seen += 1
            if isinstance(item, p.FrameError):
                receive_error(self.boards, item)
                continue
            for reply in dispatch(self.boards, item):
                self.line_time_s += 10 * len(reply) / self.baudrate
                self._rx += reply
        return len(data)

    @property
    def in_waiting(self) -> int:
        """Reply bytes ready to read."""
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` queued bytes (fewer, or none, when fewer are queued)."""
        self._check_open()
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    def reset_input_buffer(self) -> None:
        """Drop every queued reply byte."""
        self._rx.clear()

    def flush(self) -> None:
        """Written bytes are delivered at once; nothing to wait for."""

    def close(self) -> None:
        self.is_open = False


class BoardsOnBus:
    """All emulated boards as one participant of a
    :class:`~instruments.bus.emulator.BusEmulator`, so the bench's boards can also be served on
    a real pseudo-terminal (e.g. to a real :class:`~instruments.bus.client.BusClient` in a
    hardware-in-the-loop test of the real bench's code path)."""

    address = 0  # sorts first; the boards' own addresses are in the frames

    def __init__(self, boards: SimBoards):
        self._port = LoopbackPort(boards, port="pty://sim-boards")

    def handle(self, chunk: bytes) -> bytes | None:
        """The replies (wire bytes) of every board to one received chunk, or None."""
        self._port.write(chunk)
        out = self._port.read(1 << 20)
        return out or None
