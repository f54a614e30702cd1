"""The reference board of the edge-bus protocol: a complete edge board in pure Python.

:class:`ReferenceBoard` does everything ``firmware/protocol/PROTOCOL-1.md`` asks of a board:
receiving and its checks ("Receiving"), addressing and broadcast slots ("Broadcast"), every
command ("Commands"), the rule ("Drops and the rule"), the minor version it speaks
("Versioning") and the readings of "Clarifications" (reply addressing, ``frames_ok`` /
``frames_bad`` / ``last_error`` counting). The golden command vectors
(``firmware/protocol/vectors/commands.json``) are its replies; the C core and the MicroPython
firmware are checked against it.

Units: node voltages and calibration offsets integer uV, states taps or gate uV, uptime ms
(mod 2^32).
"""

from __future__ import annotations

from typing import Callable, Sequence

from .constants import (
    ADDR_BOARD_MAX, ADDR_BOARD_MIN, ADDR_BROADCAST, ADDR_HOST, BROADCAST_REFUSED,
    BROADCAST_SLOTTED, DEFAULT_LIMITS, FIRMWARE_VERSION, GAIN_LIMIT, I32_MAX, I32_MIN,
    PROBABILITY_ONE, PROTOCOL_MINOR, PROTOCOL_VERSION, REPLY_BIT, RULE_KINDS, RULES, Error, Kind,
    Rule, minor_for_firmware,
)
from .framing import Frame, FrameError, decode_frame, encode_frame
from .payloads import COMMANDS_BY_CODE, CommandSpec, pack_reply, unpack_request
from .rule import _M32, Xorshift32, drops_uv, learn_step, seed_from_uid

__all__ = ["ReferenceBoard"]


class ReferenceBoard:
    """A complete edge board in pure Python, exactly per the spec.

    Args:
        address: bus address 1..247.
        uid: 8-byte unique id (seeds the generator).
        kind: :class:`Kind` (1 digipot, 2 mosfet).
        state_min, state_max: state limits (taps, or gate uV); default per kind.
        initial_state: power-on state (default ``state_min``).
        node_uv: the four node voltages (a_F, b_F, a_C, b_C) in uV: a sequence, or a
            callable returning one (called on every sample).
        uptime_ms: ms since power-on/reset: an int or a callable returning one (sent mod 2^32).
        fw_version: (major, minor, patch) of the identify reply (default
            :data:`FIRMWARE_VERSION`); it fixes the protocol minor version the board
            speaks (:func:`minor_for_firmware`): a 1.1.0 board floors and its identify
            reply has no ``protocol_minor``.
        protocol_minor: the protocol minor version to speak whatever ``fw_version`` says
            (0 or 1; default from ``fw_version``).
        calibration_uv: the four stored offsets (uV); kept across :meth:`reset`.
        storage_fails: when true, ``store_calibration`` answers ``storage`` and keeps the
            old offsets.

    :meth:`handle` takes one chunk and returns the reply's wire bytes or None.
    """

    def __init__(self, address: int, uid: bytes, kind: int, *, state_min: int | None = None,
                 state_max: int | None = None, initial_state: int | None = None,
                 node_uv: Sequence[int] | Callable[[], Sequence[int]] = (0, 0, 0, 0),
                 uptime_ms: int | Callable[[], int] = 0, fw_version: tuple[int, int, int] = FIRMWARE_VERSION,
                 calibration_uv: Sequence[int] = (0, 0, 0, 0), storage_fails: bool = False,
                 protocol_minor: int | None = None) -> None:
        if not ADDR_BOARD_MIN <= address <= ADDR_BOARD_MAX:
            raise ValueError(f"board address must be 1..247, got {address}")
        uid = bytes(uid)
        if len(uid) != 8:
            raise ValueError("uid must be 8 bytes")
        self.address = int(address)
        self.uid = uid
        self.kind = Kind(kind)
        lo, hi = DEFAULT_LIMITS[self.kind]
        self.state_min = lo if state_min is None else int(state_min)
        self.state_max = hi if state_max is None else int(state_max)
        if not I32_MIN <= self.state_min <= self.state_max <= I32_MAX:
            raise ValueError("need state_min <= state_max within i32")
        self.initial_state = self.state_min if initial_state is None else int(initial_state)
        if not self.state_min <= self.initial_state <= self.state_max:
            raise ValueError("initial_state outside the limits")
        self._node_uv = node_uv
        self._uptime_ms = uptime_ms
        self.fw_version = tuple(int(v) for v in fw_version)
        self.protocol_minor = (minor_for_firmware(self.fw_version) if protocol_minor is None
                               else int(protocol_minor))
        if not 0 <= self.protocol_minor <= PROTOCOL_MINOR:
            raise ValueError(f"protocol_minor must be 0..{PROTOCOL_MINOR}, got {protocol_minor}")
        self.calibration_uv = [int(v) for v in calibration_uv]
        self.storage_fails = bool(storage_fails)
        self._pending = b""
        self.restart()

    # -- application state

    def restart(self) -> None:
        """Power-on / ``reset``: state, rule, counters and generator; calibration kept."""
        self.state = self.initial_state
        self.rule = Rule.NONE
        self.probability = 0
        self.gain = 0
        self.dead_band_uv2 = 0
        self.frames_ok = 0
        self.frames_bad = 0
        self.updates = 0
        self.last_error = Error.OK
        self.prng = Xorshift32(seed_from_uid(self.uid))

    def node_uv(self) -> list[int]:
        """Current node voltages (a_F, b_F, a_C, b_C), uV."""
        v = self._node_uv() if callable(self._node_uv) else self._node_uv
        v = [int(x) for x in v]
        if len(v) != 4:
            raise ValueError("node_uv must give four voltages")
        return v

    def uptime_ms(self) -> int:
        """Uptime in ms, modulo 2^32."""
        u = self._uptime_ms() if callable(self._uptime_ms) else self._uptime_ms
        return int(u) & _M32

    def sample(self) -> tuple[int, int]:
        """Calibrated drops (dv_free_uv, dv_clamped_uv)."""
        return drops_uv(self.node_uv(), self.calibration_uv)

    def learn(self) -> tuple[int, int]:
        """One learn (also what the learn-trigger pin does): returns (state, updated)."""
        r = self.prng.next()
        res = learn_step(rule=self.rule, probability=self.probability, gain=self.gain,
                         dead_band_uv2=self.dead_band_uv2, state=self.state,
                         state_min=self.state_min, state_max=self.state_max, draw=r,
                         node_uv=self.node_uv(), calibration_uv=self.calibration_uv,
                         minor=self.protocol_minor)
        self.state = res["state"]
        self.updates = (self.updates + res["updated"]) & _M32
        return self.state, res["updated"]

    # -- bus

    def feed(self, data: bytes) -> list[bytes]:
        """Feed raw stream bytes; return the wire bytes of every reply, in order.

        Bytes after the last 0x00 wait for the next call; each chunk goes through
        :meth:`handle`.
        """
        parts = (self._pending + bytes(data)).split(b"\x00")
        self._pending = parts.pop()
        return [r for r in map(self.handle, parts) if r is not None]

    def handle(self, chunk: bytes) -> bytes | None:
        """Process one received chunk (with or without its trailing 0x00).

        Returns the reply's wire bytes, or None: empty chunk (not counted), malformed frame
        (counted in ``frames_bad``, ``last_error`` set), another address (ignored),
        broadcast of a non-slotted command (executed unless refused, never answered).
        """
        chunk = bytes(chunk)
        if chunk in (b"", b"\x00"):
            return None
        try:
            f = decode_frame(chunk)
        except FrameError as exc:
            self.frames_bad = (self.frames_bad + 1) & _M32
            self.last_error = exc.code
            return None
        if f.dst != self.address and f.dst != ADDR_BROADCAST:
            return None
        self.frames_ok = (self.frames_ok + 1) & _M32
        bcast = f.dst == ADDR_BROADCAST
        spec = COMMANDS_BY_CODE.get(f.cmd)
        if spec is None:
            return self._answer(f, bcast, None, Error.UNKNOWN_COMMAND)
        if bcast and spec.broadcast == BROADCAST_REFUSED:
            self.last_error = Error.BROADCAST_REFUSED
            return None
        if len(f.payload) != spec.request_size:
            return self._answer(f, bcast, spec, Error.BAD_LENGTH)
        req = unpack_request(spec.name, f.payload)
        status, fields, after = getattr(self, "_cmd_" + spec.name)(**req)
        reply = self._answer(f, bcast, spec, status, fields)
        if after is not None:
            after()
        return reply

    def _answer(self, f: Frame, bcast: bool, spec: CommandSpec | None, status: int,
                fields: dict | None = None) -> bytes | None:
        if status != Error.OK:
            self.last_error = Error(status)
        if bcast and (spec is None or spec.broadcast != BROADCAST_SLOTTED):
            return None
        code = (spec.code if spec is not None else f.cmd) | REPLY_BIT
        if status != Error.OK or spec is None:
            payload = bytes((int(status),))
        else:
            payload = pack_reply(spec.name, Error.OK, minor=self.protocol_minor, **(fields or {}))
        return encode_frame(Frame(PROTOCOL_VERSION, ADDR_HOST, self.address, f.seq, code & 0xFF, payload))

    # -- commands: each returns (status, reply fields, action after replying)

    def _cmd_identify(self):
        return Error.OK, {"uid": self.uid, "fw_major": self.fw_version[0],
                          "fw_minor": self.fw_version[1], "fw_patch": self.fw_version[2],
                          "kind": int(self.kind), "protocol": PROTOCOL_VERSION,
                          "protocol_minor": self.protocol_minor}, None

    def _cmd_read_state(self):
        return Error.OK, {"state": self.state}, None

    def _cmd_set_state(self, state):
        if not self.state_min <= state <= self.state_max:
            return Error.OUT_OF_RANGE, None, None
        self.state = state
        return Error.OK, {"state": self.state}, None

    def _cmd_configure_rule(self, rule, probability, gain, dead_band_uv2):
        if (rule not in RULES.values() or probability > PROBABILITY_ONE or gain < 0
                or gain >= GAIN_LIMIT or dead_band_uv2 < 0):
            return Error.OUT_OF_RANGE, None, None
        if self.kind not in RULE_KINDS[Rule(rule)]:
            return Error.WRONG_KIND, None, None
        self.rule, self.probability, self.gain, self.dead_band_uv2 = Rule(rule), probability, gain, dead_band_uv2
        return Error.OK, {}, None

    def _cmd_sample_drops(self):
        dvf, dvc = self.sample()
        return Error.OK, {"dv_free_uv": dvf, "dv_clamped_uv": dvc}, None

    def _cmd_learn(self):
        state, updated = self.learn()
        return Error.OK, {"state": state, "updated": updated}, None

    def _cmd_read_telemetry(self):
        return Error.OK, {"uptime_ms": self.uptime_ms(), "frames_ok": self.frames_ok,
                          "frames_bad": self.frames_bad, "updates": self.updates,
                          "last_error": int(self.last_error)}, None

    def _cmd_store_calibration(self, offset_free_a_uv, offset_free_b_uv, offset_clamped_a_uv,
                               offset_clamped_b_uv):
        if self.storage_fails:
            return Error.STORAGE, None, None
        self.calibration_uv = [offset_free_a_uv, offset_free_b_uv, offset_clamped_a_uv, offset_clamped_b_uv]
        return Error.OK, {}, None

    def _cmd_read_calibration(self):
        a, b, c, d = self.calibration_uv
        return Error.OK, {"offset_free_a_uv": a, "offset_free_b_uv": b, "offset_clamped_a_uv": c,
                          "offset_clamped_b_uv": d}, None

    def _cmd_reset(self):
        return Error.OK, {}, self.restart
