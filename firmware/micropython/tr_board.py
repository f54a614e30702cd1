# twinrig edge board: the board application (protocol version 1).
#
# State, limits, rule configuration, telemetry, calibration, reset and command
# dispatch, exactly per firmware/protocol/PROTOCOL.md (with its Clarifications).
# The hardware is reached only through a HAL object (see hal.py): the real one on a
# board, SimHAL in tests and in the host's emulator. Runs unchanged on MicroPython
# and CPython.
#
#   board = Board(hal, address, uid, kind)          # kind 1 digipot, 2 mosfet
#   reply = board.handle(chunk)                     # one chunk -> reply wire bytes or None
#   replies = board.feed(stream_bytes)              # a byte stream -> list of replies
#   state, updated = board.learn()                  # what the learn-trigger pin does

import struct

import tr_protocol as P
import tr_rule as R

FW_VERSION = (1, 2, 0)  # 1.2.0: protocol 1.1, the rule rounds to nearest (1.1.0: gains
                        # up to 2^40 - 1, floored; 1.0.x: below 2^24)
M32 = 0xFFFFFFFF


class Board:
    """One edge board.

    Args:
        hal: hardware abstraction (hal.SimHAL or a real HAL); provides
            read_nodes_uv(), uptime_ms(), restart_clock(), load_calibration(),
            store_calibration(offsets) -> bool, set_state(state, previous, learn)
            -> the state reached or None.
        address: bus address 1..247.
        uid: unique id, 8 bytes (seeds the generator).
        kind: 1 digipot, 2 mosfet.
        state_min, state_max: limits of the state (default per kind).
        initial_state: power-on state (default state_min).
        fw_version: (major, minor, patch) for identify.

    After handle() or feed(), ``reply_slot`` is the number of 2 ms slots the last
    reply must wait after the end of its request (the board's address for a slotted
    broadcast, else 0).
    """

    def __init__(self, hal, address, uid, kind, state_min=None, state_max=None,
                 initial_state=None, fw_version=FW_VERSION):
        if not P.ADDR_BOARD_MIN <= address <= P.ADDR_BOARD_MAX:
            raise ValueError("board address must be 1..247")
        uid = bytes(uid)
        if len(uid) != 8:
            raise ValueError("uid must be 8 bytes")
        if kind not in R.DEFAULT_LIMITS:
            raise ValueError("kind must be 1 (digipot) or 2 (mosfet)")
        lo, hi = R.DEFAULT_LIMITS[kind]
        self.hal = hal
        self.address = address
        self.uid = uid
        self.kind = kind
        self.state_min = lo if state_min is None else state_min
        self.state_max = hi if state_max is None else state_max
        if not R.I32_MIN <= self.state_min <= self.state_max <= R.I32_MAX:
            raise ValueError("need state_min <= state_max within i32")
        self.initial_state = self.state_min if initial_state is None else initial_state
        if not self.state_min <= self.initial_state <= self.state_max:
            raise ValueError("initial_state outside the limits")
        self.fw_version = tuple(fw_version)
        self.calibration_uv = list(hal.load_calibration())
        self.splitter = P.FrameSplitter()
        self.reply_slot = 0
        self.state = None
        self.restart()

    # ------------------------------------------------------------ application state

    def restart(self):
        """Power-on and reset: state, rule, counters, generator; calibration kept."""
        previous = self.state
        self.state = self.initial_state
        self.rule = R.RULE_NONE
        self.probability = 0
        self.gain = 0
        self.dead_band_uv2 = 0
        self.frames_ok = 0
        self.frames_bad = 0
        self.updates = 0
        self.last_error = 0
        self.prng = R.Xorshift32(R.seed_from_uid(self.uid))
        self.hal.restart_clock()
        self._reached(self.hal.set_state(self.state, previous))

    def uptime_ms(self):
        return self.hal.uptime_ms() & M32

    def sample(self):
        """Calibrated drops (dv_free_uv, dv_clamped_uv)."""
        return R.drops_uv(self.hal.read_nodes_uv(), self.calibration_uv)

    def _reached(self, reached):
        """Take the state the actuator reports it reached (a gate's measured voltage, a
        digipot's tap; None from an ideal actuator: the state asked), within the limits."""
        if reached is not None:
            self.state = (self.state_min if reached < self.state_min else
                          self.state_max if reached > self.state_max else reached)

    def set_state(self, state):
        """Move to ``state`` (already within the limits) and drive the actuator; the
        state is then what the actuator reached."""
        previous = self.state
        self.state = state
        if state != previous:
            self._reached(self.hal.set_state(state, previous))

    def learn(self, nodes_uv=None):
        """One learn (the learn command and the learn-trigger pin): one draw always,
        the rule when the draw selects it, on ``nodes_uv`` (the trigger's snapshot) or
        on a reading taken now. The rule's change goes to the actuator as a learn (a
        gate carries what it cannot apply yet); the state is then what it reached.
        Returns (state, updated)."""
        r = self.prng.next()
        if nodes_uv is None:
            nodes_uv = self.hal.read_nodes_uv()
        state, updated, _, _, _ = R.learn_step(
            self.rule, self.probability, self.gain, self.dead_band_uv2, self.state,
            self.state_min, self.state_max, r, nodes_uv, self.calibration_uv)
        if updated:
            self.updates = (self.updates + 1) & M32
            previous = self.state
            self.state = state
            self._reached(self.hal.set_state(state, previous, True))
        return self.state, updated

    # ------------------------------------------------------------ bus

    def feed(self, data):
        """Feed received stream bytes; returns the wire bytes of every reply, in order."""
        return [reply for reply, _ in self.receive(data)]

    def receive(self, data):
        """Feed received stream bytes; returns (reply wire bytes, slot) for every reply,
        slot being the number of 2 ms slots to wait after the request's end (the
        address for a slotted broadcast, else 0)."""
        out = []
        for err, raw in self.splitter.feed(data):
            reply = self._receive(err, raw)
            if reply is not None:
                out.append((reply, self.reply_slot))
        return out

    def handle(self, chunk):
        """Process one chunk (with or without its trailing 0x00; a 0x00 inside it is
        bad_cobs). Returns the reply's wire bytes or None."""
        if len(chunk) == 0 or (len(chunk) == 1 and chunk[0] == 0):
            self.reply_slot = 0
            return None
        err, raw = P.decode_frame(chunk)
        return self._receive(err, raw)

    def _receive(self, err, raw):
        self.reply_slot = 0
        if err:
            self.frames_bad = (self.frames_bad + 1) & M32
            self.last_error = err
            return None
        dst = raw[P.F_DST]
        if dst != self.address and dst != P.ADDR_BROADCAST:
            return None
        self.frames_ok = (self.frames_ok + 1) & M32
        bcast = dst == P.ADDR_BROADCAST
        cmd = raw[P.F_CMD]
        seq = raw[P.F_SEQ]
        spec = P.COMMANDS.get(cmd)
        if spec is None:
            return self._answer(seq, cmd, bcast, P.BC_SILENT, P.UNKNOWN_COMMAND, None)
        name, req_fmt, rep_fmt, bc = spec
        if bcast and bc == P.BC_REFUSED:
            self.last_error = P.BROADCAST_REFUSED
            return None
        payload = P.payload_of(raw)
        if len(payload) != P.REQUEST_SIZES[cmd]:
            return self._answer(seq, cmd, bcast, bc, P.BAD_LENGTH, None)
        after = None
        if cmd == P.CMD_IDENTIFY:
            status = P.OK
            fields = (self.uid, self.fw_version[0], self.fw_version[1], self.fw_version[2],
                      self.kind, P.PROTOCOL_VERSION, P.PROTOCOL_MINOR)
        elif cmd == P.CMD_READ_STATE:
            status, fields = P.OK, (self.state,)
        elif cmd == P.CMD_SET_STATE:
            status, fields = self._set_state(struct.unpack(req_fmt, payload)[0])
        elif cmd == P.CMD_CONFIGURE_RULE:
            status, fields = self._configure_rule(*struct.unpack(req_fmt, payload))
        elif cmd == P.CMD_SAMPLE_DROPS:
            status, fields = P.OK, self.sample()
        elif cmd == P.CMD_LEARN:
            status, fields = P.OK, self.learn()
        elif cmd == P.CMD_READ_TELEMETRY:
            status = P.OK
            fields = (self.uptime_ms(), self.frames_ok, self.frames_bad, self.updates,
                      self.last_error)
        elif cmd == P.CMD_STORE_CALIBRATION:
            status, fields = self._store_calibration(struct.unpack(req_fmt, payload))
        elif cmd == P.CMD_READ_CALIBRATION:
            status, fields = P.OK, tuple(self.calibration_uv)
        else:  # CMD_RESET: answer first, then restart
            status, fields = P.OK, ()
            after = self.restart
        reply = self._answer(seq, cmd, bcast, bc, status, (rep_fmt, fields))
        if after is not None:
            after()
        return reply

    def _answer(self, seq, cmd, bcast, bc, status, packed):
        if status != P.OK:
            self.last_error = status
        if bcast and bc != P.BC_SLOTTED:
            return None
        if status != P.OK:
            payload = bytes((status,))
        else:
            fmt, fields = packed
            payload = struct.pack(fmt, P.OK, *fields)
        if bcast:
            self.reply_slot = self.address
        return P.encode_frame(P.ADDR_HOST, self.address, seq, (cmd | P.REPLY_BIT) & 0xFF,
                              payload)

    # ------------------------------------------------------------ commands

    def _set_state(self, state):
        if not self.state_min <= state <= self.state_max:
            return P.OUT_OF_RANGE, None
        self.set_state(state)
        return P.OK, (self.state,)

    def _configure_rule(self, rule, probability, gain, dead_band_uv2):
        if (rule > R.RULE_CONTINUOUS or probability > R.PROBABILITY_ONE or gain < 0
                or gain >= R.GAIN_LIMIT or dead_band_uv2 < 0):
            return P.OUT_OF_RANGE, None
        if not R.rule_allowed(rule, self.kind):
            return P.WRONG_KIND, None
        self.rule = rule
        self.probability = probability
        self.gain = gain
        self.dead_band_uv2 = dead_band_uv2
        return P.OK, ()

    def _store_calibration(self, offsets):
        offsets = list(offsets)
        if not self.hal.store_calibration(offsets):
            return P.STORAGE, None
        self.calibration_uv = offsets
        return P.OK, ()
