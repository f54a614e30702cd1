"""The reference board of the edge-bus protocol, version 2: a complete edge board in Python.

:class:`ReferenceBoard` does everything ``firmware/protocol/PROTOCOL.md`` (protocol 2.1)
asks of a board: receiving and its checks, addresses (the unassigned address 248,
``assign_address`` by uid, duplicate detection), broadcast handling and the reply timing of
every command (slotted, hashed, selected, silent, refused; :mod:`.slots`), the rule
(protocol 1.1's arithmetic, :mod:`instruments.bus.rule`) acting on a target that a
closed-loop :class:`~.actuator.Actuator` follows with a carried residue, telemetry, the state
store with its generation (:mod:`.store`), the gate's actuator calibration, resets by mode and cause, the firmware update
with A/B slots and rollback (:mod:`.update`), and protocol 1's identify probe, answered in
protocol 1's layout. The golden vectors (``firmware/protocol/vectors/v2/``) are its replies.

Units: node voltages and offsets integer uV, states taps or gate uV, supply uV, temperature
milli-degrees Celsius, uptime ms (mod 2^32), times after the end of frame us.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .. import payloads as v1_payloads, timing
from ..rule import _M32, Xorshift32, drops_uv, learn_step, seed_from_uid
from .actuator import Actuator, GateCalibration
from .constants import (
    ADDR_BOARD_MAX, ADDR_BOARD_MIN, ADDR_BROADCAST, ADDR_HOST, ADDR_UNASSIGNED, BAUD_DEFAULT,
    BROADCAST_HASHED, BROADCAST_REFUSED, BROADCAST_SELECTED, BROADCAST_SLOTTED, DEFAULT_LIMITS,
    DISCOVER_SLOTS_MAX, FIRMWARE_VERSION, GAIN_LIMIT, PROBABILITY_ONE, PROTOCOL_MINOR,
    PROTOCOL_VERSION, REPLY_BIT, RULE_KINDS, RULES, TRIGGER_MIN_US, V1_VERSION, Error, Flag,
    Kind, Phase, ResetCause, ResetMode, Rule,
)
from .framing import Frame, FrameError, decode_any, encode_frame
from .payloads import COMMANDS, COMMANDS_BY_CODE, CommandSpec, pack_reply, quiet_ms, unpack_request
from .slots import discover_slot, reply_start_us
from .store import StateStore, StorageError
from .update import FirmwareUpdate, Image

__all__ = ["Reply", "ReferenceBoard"]

_V1_IDENTIFY = 1


@dataclass(frozen=True)
class Reply:
    """A board's reply: its wire bytes, the earliest start after the request's end of frame
    (us), the quiet time of the command (ms; a blocking command answers once done, within
    it), and its status."""

    wire: bytes
    start_us: int
    quiet_ms: int = 0
    version: int = PROTOCOL_VERSION
    #: The reply's status (its payload's first byte; 0 ok).
    status: int = 0


class ReferenceBoard:
    """A complete protocol-2 board, exactly per the spec.

    Args:
        uid: 8-byte unique id (the board's identity; seeds the generator).
        kind: :class:`Kind` (1 digipot, 2 mosfet).
        address: stored bus address (1..247), or 248 for a board no host has assigned one.
        state_min, state_max: state limits (taps, or gate uV); default per kind.
        initial_state: power-on state when nothing is stored (default ``state_min``).
        resolution: the actuator's step (state units; 1 for a digipot).
        actuator_offset: a read-back error of the actuator (state units), for fault tests.
        node_uv: the four node voltages (a_F, b_F, a_C, b_C) in uV, or a callable giving them.
        uptime_ms, supply_uv, temperature_mdegc: sensor readings, ints or callables.
        fw_version: the version of the image in the active slot at manufacture.
        calibration_uv: the four stored offsets (uV).
        gate_nominal: a MOSFET board's actuator calibration from its part values, in use
            until ``calibrate_actuator`` (default: an RC gate of 2.2 ms on a 6 V rail).
        gate_measured: what the board's gate measures when it calibrates (its hardware:
            a :class:`~.actuator.GateCalibration` or a callable giving one).
        storage_fails: every flash write fails (``storage``).
        self_test: whether a new image passes its self-test at its trial boot.
        baud: the bus's baud rate (slot times).
    """

    def __init__(self, uid: bytes, kind: int, *, address: int = ADDR_UNASSIGNED,
                 state_min: int | None = None, state_max: int | None = None,
                 initial_state: int | None = None, resolution: int = 1, actuator_offset: int = 0,
                 node_uv: Sequence[int] | Callable[[], Sequence[int]] = (0, 0, 0, 0),
                 uptime_ms: int | Callable[[], int] = 0, supply_uv: int | Callable[[], int] = 3_300_000,
                 temperature_mdegc: int | Callable[[], int] = 25_000,
                 fw_version: tuple[int, int, int] = FIRMWARE_VERSION,
                 calibration_uv: Sequence[int] = (0, 0, 0, 0),
                 gate_nominal: GateCalibration | None = None,
                 gate_measured: GateCalibration | Callable[[], GateCalibration] | None = None,
                 storage_fails: bool = False,
                 self_test: Callable[[Image], bool] = lambda image: True, baud: int = BAUD_DEFAULT) -> None:
        uid = bytes(uid)
        if len(uid) != 8:
            raise ValueError("uid must be 8 bytes")
        if not ADDR_BOARD_MIN <= address <= ADDR_UNASSIGNED:
            raise ValueError(f"board address must be 1..248, got {address}")
        self.uid, self.kind, self.address, self.baud = uid, Kind(kind), int(address), int(baud)
        lo, hi = DEFAULT_LIMITS[self.kind]
        lo = lo if state_min is None else int(state_min)
        hi = hi if state_max is None else int(state_max)
        self.actuator = Actuator(lo, hi, int(resolution), int(actuator_offset))
        self.initial_state = lo if initial_state is None else int(initial_state)
        if not lo <= self.initial_state <= hi:
            raise ValueError("initial_state outside the limits")
        self._sensors = {"node_uv": node_uv, "uptime_ms": uptime_ms, "supply_uv": supply_uv,
                         "temperature_mdegc": temperature_mdegc}
        self.calibration_uv = [int(v) for v in calibration_uv]
        self.gate_calibration = gate_nominal or GateCalibration.from_rc(2200, 6_000_000)
        self.gate_source = 0  # 0 nominal, 1 measured (kept across every reset, as the offsets)
        self.gate_measured = gate_measured or GateCalibration.from_rc(2310, 6_000_000, -20)
        self.storage_fails = bool(storage_fails)
        self.store = StateStore(fails=storage_fails)
        image = Image(tuple(int(v) for v in fw_version), b"")
        self.firmware = FirmwareUpdate(image, self_test, storage_fails)
        self._pending = b""
        #: The next ``store_state`` loses power after its erase (the board restarts, no reply).
        self.cut_power_during_store = False
        self.restart(ResetCause.POWER_ON)

    # -- application state

    @property
    def state_min(self) -> int:
        return self.actuator.state_min

    @property
    def state_max(self) -> int:
        return self.actuator.state_max

    @property
    def fw_version(self) -> tuple[int, int, int]:
        return self.firmware.running.version

    @property
    def assigned(self) -> bool:
        return self.address != ADDR_UNASSIGNED

    def restart(self, cause: ResetCause) -> None:
        """A start-up: the target restored from the store (else the power-on state), rule
        ``none``, counters and flags cleared, generator reseeded; address, calibration,
        store and images kept."""
        record = self.store.latest()
        self.target = record.target if record else self.initial_state
        self.state = self.actuator.reach(self.target)
        self.rule, self.probability, self.gain, self.dead_band_uv2 = Rule.NONE, 0, 0, 0
        self.frames_ok = self.frames_bad = self.learns = self.updates = self.glitches = 0
        self.last_error = Error.OK
        self.duplicate = False
        self.reset_cause = ResetCause(cause)
        self.prng = Xorshift32(seed_from_uid(self.uid))

    def power_cycle(self) -> None:
        """Power removed and restored."""
        self.firmware.boot()
        self.restart(ResetCause.POWER_ON)

    def _sensor(self, name: str):
        v = self._sensors[name]
        return v() if callable(v) else v

    def node_uv(self) -> list[int]:
        v = [int(x) for x in self._sensor("node_uv")]
        if len(v) != 4:
            raise ValueError("node_uv must give four voltages")
        return v

    @property
    def residue(self) -> int:
        """The carried residue: target minus the state reached (state units)."""
        return self.target - self.state

    @property
    def flags(self) -> int:
        restored = self.store.latest()
        restored = restored.target if restored else self.initial_state
        return int((Flag.DUPLICATE_ADDRESS if self.duplicate else 0)
                   | (Flag.STATE_UNSTORED if self.target != restored else 0)
                   | (Flag.ROLLED_BACK if self.firmware.phase == Phase.ROLLED_BACK else 0))

    def _move(self, target: int) -> None:
        self.target = self.actuator.clip(target)
        self.state = self.actuator.reach(self.target)

    def learn(self) -> tuple[int, int, int]:
        """One learn (also what the learn-trigger pin does): returns (state, residue, updated)."""
        r = self.prng.next()
        res = learn_step(rule=self.rule, probability=self.probability, gain=self.gain,
                         dead_band_uv2=self.dead_band_uv2, state=self.target,
                         state_min=self.state_min, state_max=self.state_max, draw=r,
                         node_uv=self.node_uv(), calibration_uv=self.calibration_uv)
        self._move(res["state"])
        self.learns = (self.learns + 1) & _M32
        self.updates = (self.updates + res["updated"]) & _M32
        return self.state, self.residue, res["updated"]

    def trigger(self, width_us: int) -> None:
        """A pulse on the learn-trigger input: a learn, or a glitch if shorter than 20 us."""
        if width_us >= TRIGGER_MIN_US:
            self.learn()
        else:
            self.glitches = (self.glitches + 1) & _M32

    # -- bus

    def feed(self, data: bytes) -> list[Reply]:
        """Feed raw stream bytes; return every reply, in order."""
        parts = (self._pending + bytes(data)).split(b"\x00")
        self._pending = parts.pop()
        return [r for r in map(self.handle, parts) if r is not None]

    def handle(self, chunk: bytes) -> Reply | None:
        """Process one received chunk (with or without its trailing 0x00)."""
        chunk = bytes(chunk)
        if chunk in (b"", b"\x00"):
            return None
        try:
            f = decode_any(chunk)
        except FrameError as exc:
            return self._bad(exc.code)
        if f.version == V1_VERSION and f.cmd == _V1_IDENTIFY and not f.payload:
            return self._v1_probe(f)
        if f.version != PROTOCOL_VERSION:
            return self._bad(Error.BAD_VERSION)
        if f.dst == ADDR_HOST:
            if f.is_reply and f.src == self.address and self.assigned:
                self.duplicate = True  # another board answers at this address
            return None
        bcast = f.dst == ADDR_BROADCAST
        if not bcast and f.dst != self.address:
            return None
        self.frames_ok = (self.frames_ok + 1) & _M32
        spec = COMMANDS_BY_CODE.get(f.cmd)
        if spec is None:
            return self._answer(f, bcast, None, Error.UNKNOWN_COMMAND)
        if bcast and spec.broadcast == BROADCAST_REFUSED:
            self.last_error = Error.BROADCAST_REFUSED
            return None
        if len(f.payload) != spec.request_size:
            return self._answer(f, bcast, spec, Error.BAD_LENGTH)
        req = unpack_request(spec.name, f.payload)
        if spec.broadcast == BROADCAST_SELECTED and req["uid"] != self.uid:
            return None
        if spec.name == "discover" and req["only_unassigned"] == 1 and self.assigned:
            return None
        status, fields, after = getattr(self, "_cmd_" + spec.name)(**req)
        if status is None:  # the power failed before the board could answer
            after()
            return None
        reply = self._answer(f, bcast, spec, status, fields, quiet_ms(spec.name, **req), req)
        if after is not None:
            after()
        return reply

    def _bad(self, code: int) -> None:
        self.frames_bad = (self.frames_bad + 1) & _M32
        self.last_error = Error(code)
        return None

    def _answer(self, f: Frame, bcast: bool, spec: CommandSpec | None, status: int,
                fields: dict | None = None, quiet: int = 0, req: dict | None = None) -> Reply | None:
        if status != Error.OK:
            self.last_error = Error(status)
        start = timing.turnaround_us(self.baud)
        if bcast:
            mode = spec.broadcast if spec is not None else None
            if mode == BROADCAST_SLOTTED and self.assigned:
                start = reply_start_us(spec.name, self.address, self.baud)
            elif mode == BROADCAST_HASHED and req is not None and 1 <= req["slots"] <= DISCOVER_SLOTS_MAX:
                start = reply_start_us(spec.name, discover_slot(self.uid, req["salt"], req["slots"]), self.baud)
            elif mode != BROADCAST_SELECTED or req is None:
                return None  # a selected broadcast of the wrong length names no board
        code = (spec.code if spec is not None else f.cmd) | REPLY_BIT
        if status != Error.OK or spec is None:
            payload = bytes((int(status),))
        else:
            payload = pack_reply(spec.name, Error.OK, **(fields or {}))
        frame = Frame(PROTOCOL_VERSION, ADDR_HOST, self.address, f.seq, code & 0xFF, payload)
        return Reply(encode_frame(frame), start, quiet, status=payload[0])

    def _v1_probe(self, f: Frame) -> Reply | None:
        """Protocol 1's identify, answered in protocol 1's layout with ``protocol`` 2 by an
        assigned board it is addressed to (unicast or broadcast); ignored otherwise."""
        if not self.assigned or f.dst not in (self.address, ADDR_BROADCAST):
            return None
        self.frames_ok = (self.frames_ok + 1) & _M32
        major, minor, patch = self.fw_version
        payload = v1_payloads.pack_reply("identify", uid=self.uid, fw_major=major, fw_minor=minor,
                                         fw_patch=patch, kind=int(self.kind), protocol=PROTOCOL_VERSION,
                                         protocol_minor=PROTOCOL_MINOR)
        start = (self.address * timing.V1_SLOT_US if f.dst == ADDR_BROADCAST
                 else timing.turnaround_us(self.baud))
        frame = Frame(V1_VERSION, ADDR_HOST, self.address, f.seq, _V1_IDENTIFY | REPLY_BIT, payload)
        return Reply(encode_frame(frame), start, 0, V1_VERSION)

    # -- commands: each returns (status, reply fields, action after replying)

    def _identity(self) -> dict:
        major, minor, patch = self.fw_version
        return {"uid": self.uid, "fw_major": major, "fw_minor": minor, "fw_patch": patch,
                "kind": int(self.kind), "protocol": PROTOCOL_VERSION, "protocol_minor": PROTOCOL_MINOR,
                "address": self.address, "flags": self.flags}

    def _cmd_identify(self):
        return Error.OK, self._identity(), None

    def _cmd_read_state(self):
        return Error.OK, {"state": self.state, "residue": self.residue,
                          "generation": self.store.generation}, None

    def _cmd_set_state(self, state):
        if not self.state_min <= state <= self.state_max:
            return Error.OUT_OF_RANGE, None, None
        self._move(state)
        return Error.OK, {"state": self.state, "residue": self.residue}, None

    def _cmd_configure_rule(self, rule, probability, gain, dead_band_uv2):
        if (rule not in RULES.values() or probability > PROBABILITY_ONE or gain < 0
                or gain >= GAIN_LIMIT or dead_band_uv2 < 0):
            return Error.OUT_OF_RANGE, None, None
        if self.kind not in RULE_KINDS[Rule(rule)]:
            return Error.WRONG_KIND, None, None
        self.rule, self.probability, self.gain, self.dead_band_uv2 = Rule(rule), probability, gain, dead_band_uv2
        return Error.OK, {}, None

    def _cmd_sample_drops(self):
        dvf, dvc = drops_uv(self.node_uv(), self.calibration_uv)
        return Error.OK, {"dv_free_uv": dvf, "dv_clamped_uv": dvc}, None

    def _cmd_learn(self):
        state, residue, updated = self.learn()
        return Error.OK, {"state": state, "residue": residue, "updated": updated}, None

    def _cmd_read_telemetry(self):
        return Error.OK, {
            "uptime_ms": int(self._sensor("uptime_ms")) & _M32, "frames_ok": self.frames_ok,
            "frames_bad": self.frames_bad, "learns": self.learns, "updates": self.updates,
            "glitches": self.glitches, "last_error": int(self.last_error),
            "reset_cause": int(self.reset_cause), "flags": self.flags,
            "supply_uv": int(self._sensor("supply_uv")),
            "temperature_mdegc": int(self._sensor("temperature_mdegc")),
            "generation": self.store.generation}, None

    def _cmd_store_calibration(self, **offsets):
        if self.storage_fails:
            return Error.STORAGE, None, None
        self.calibration_uv = [offsets[f.name] for f in COMMANDS["store_calibration"].request]
        return Error.OK, {}, None

    def _cmd_read_calibration(self):
        names = [f.name for f in COMMANDS["read_calibration"].reply[1:]]
        return Error.OK, dict(zip(names, self.calibration_uv)), None

    def _gate_reply(self) -> dict:
        return {"source": self.gate_source, **self.gate_calibration.fields()}

    def _cmd_calibrate_actuator(self):
        if self.kind != Kind.MOSFET:
            return Error.WRONG_KIND, None, None
        if self.storage_fails:
            return Error.STORAGE, None, None
        m = self.gate_measured
        self.gate_calibration, self.gate_source = (m() if callable(m) else m), 1
        self.state = self.actuator.reach(self.target)  # the board goes back to its target
        return Error.OK, self._gate_reply(), None

    def _cmd_read_actuator_calibration(self):
        if self.kind != Kind.MOSFET:
            return Error.WRONG_KIND, None, None
        return Error.OK, self._gate_reply(), None

    def _cmd_reset(self, mode):
        if mode not in iter(ResetMode):
            return Error.OUT_OF_RANGE, None, None
        if mode == ResetMode.FACTORY:
            try:
                self.store.erase()  # before the reply, which reports it
            except StorageError:
                return Error.STORAGE, None, None

        def after():
            self.firmware.boot()
            self.restart(ResetCause.RESET_COMMAND)
        return Error.OK, {}, after

    def _cmd_store_state(self):
        if self.cut_power_during_store:
            self.cut_power_during_store = False
            self.store.write(self.target, power_cut=True)
            return None, None, self.power_cycle
        try:
            generation = self.store.write(self.target)
        except StorageError:
            return Error.STORAGE, None, None
        return Error.OK, {"generation": generation}, None

    def _cmd_read_actuator(self):
        a = self.actuator
        return Error.OK, {"state_min": a.state_min, "state_max": a.state_max,
                          "resolution": a.resolution, "initial_state": self.initial_state}, None

    def _cmd_discover(self, salt, slots, only_unassigned):
        if not 1 <= slots <= DISCOVER_SLOTS_MAX or only_unassigned > 1:
            return Error.OUT_OF_RANGE, None, None
        return Error.OK, self._identity(), None

    def _cmd_assign_address(self, uid, address):
        if not ADDR_BOARD_MIN <= address <= ADDR_UNASSIGNED:
            return Error.OUT_OF_RANGE, None, None
        if self.storage_fails:
            return Error.STORAGE, None, None
        self.address = address  # stored before the reply, which comes from the new address
        self.duplicate = False
        return Error.OK, {}, None

    def _cmd_fw_begin(self, size, image_crc32, fw_major, fw_minor, fw_patch):
        status, blocks = self.firmware.begin(size, image_crc32, (fw_major, fw_minor, fw_patch))
        return status, ({"blocks": blocks} if status == Error.OK else None), None

    def _cmd_fw_block(self, image_crc32, block, block_crc32, data):
        return self.firmware.write_block(image_crc32, block, block_crc32, data), {}, None

    def _cmd_fw_status(self):
        return Error.OK, self.firmware.status(), None

    def _cmd_fw_verify(self):
        status = self.firmware.verify()
        return status, {"phase": int(self.firmware.phase)}, None

    def _cmd_fw_swap(self):
        status = self.firmware.swap()

        def after():
            self.restart(self.firmware.boot())
        return status, {}, (after if status == Error.OK else None)
