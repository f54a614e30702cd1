# twinrig edge board: the board application of protocol version 2.
#
# firmware/protocol/PROTOCOL.md (protocol 2.1), exactly: receiving and its checks,
# addresses (unassigned 248, assign_address by uid, duplicate detection), broadcast
# handling and reply timing (slotted, hashed, selected, silent, refused; each reply's
# start counted from the request's end of frame), the rule on a target that the
# actuator follows with a carried residue, telemetry, the state store with its
# generation, resets by mode and cause, the firmware update with A/B slots and
# rollback, a MOSFET board's actuator calibration (2.1: measured by the HAL, kept by
# it across every reset), and protocol 1's identify probe answered in protocol 1's
# layout. The hardware is a HAL (hal.py); the persistent records are files
# (tr_store2.Flash).
#
#   board = Board2(hal, flash, uid, kind, resolution=1000)
#   reply = board.handle(chunk)       # wire bytes or None; board.reply_start_us
#   for reply, start_us, end in board.receive(data): ...   # end: index past its 0x00
#   board.learn(nodes)                # the learn trigger's snapshot (no allocation)

import struct

import tr_protocol2 as P
import tr_rule as R
import tr_rule2
import tr_store2
import tr_update2 as U

FW_VERSION = (2, 0, 0)   # the first firmware of protocol 2
M32 = 0xFFFFFFFF
_C30 = 0x3FFFFFFF

RC_POWER_ON = 0
RC_RESET_COMMAND = 1
RC_WATCHDOG = 2
RC_BROWNOUT = 3
RC_PIN = 6

FLAG_DUPLICATE = 0x01
FLAG_UNSTORED = 0x02
FLAG_ROLLED_BACK = 0x04

_V1_IDENTIFY_REPLY = "<B8sBBBBBB"


class Board2:
    """One protocol-2 edge board.

    Args:
        hal: hal.SimHAL or hal.MachineHAL (nodes, actuator, clock, calibration,
            supply and temperature; ``self_test()`` if it has one).
        flash: tr_store2.Flash holding the state records, the address and the
            firmware slots.
        uid: 8 bytes. kind: 1 digipot, 2 mosfet.
        state_min, state_max, initial_state: limits and power-on state.
        resolution: the actuator's step (state units).
        fw_version: the version of the image in slot A at manufacture.
        baud: the bus's baud rate (reply slots).
        cause: the reset cause of this start (power_on, watchdog, pin...).
    """

    def __init__(self, hal, flash, uid, kind, state_min=None, state_max=None,
                 initial_state=None, resolution=1, fw_version=FW_VERSION, baud=115200,
                 cause=RC_POWER_ON):
        uid = bytes(uid)
        if len(uid) != 8:
            raise ValueError("uid must be 8 bytes")
        if kind not in R.DEFAULT_LIMITS:
            raise ValueError("kind must be 1 (digipot) or 2 (mosfet)")
        lo, hi = R.DEFAULT_LIMITS[kind]
        self.state_min = lo if state_min is None else state_min
        self.state_max = hi if state_max is None else state_max
        if not R.I32_MIN <= self.state_min <= self.state_max <= R.I32_MAX:
            raise ValueError("need state_min <= state_max within i32")
        if not 1 <= resolution <= self.state_max - self.state_min + 1:
            raise ValueError("resolution outside 1..state_max - state_min + 1")
        self.resolution = resolution
        self.top = self.state_min + (self.state_max - self.state_min) // resolution * resolution
        self.initial_state = self.state_min if initial_state is None else initial_state
        if not self.state_min <= self.initial_state <= self.state_max:
            raise ValueError("initial_state outside the limits")
        self.hal = hal
        self.flash = flash
        self.uid = uid
        self.kind = kind
        self.baud = baud
        self.turnaround = P.turnaround_us(baud)
        self.char_us = P.char_us(baud)
        self.glitches_seen = 0      # the learn trigger's own glitch count, last read
        self._trigger_glitches = getattr(hal, "trigger_glitches", None)
        self.slots = {}
        for c in P.COMMANDS:
            if P.COMMANDS[c][3] in (P.BC_SLOTTED, P.BC_HASHED):
                self.slots[c] = P.slot_us(baud, P.REPLY_SIZES[c])
        self.calibration_uv = list(hal.load_calibration())
        self.nodes = [0, 0, 0, 0]
        self.drops = [0, 0]
        self.rule = tr_rule2.Rule2(uid)
        self.store = tr_store2.StateStore(flash)
        self.addresses = tr_store2.AddressStore(flash)
        a = self.addresses.load()
        self.address = a if a is not None and P.ADDR_BOARD_MIN <= a <= P.ADDR_UNASSIGNED \
            else P.ADDR_UNASSIGNED
        self.firmware = U.FirmwareUpdate(flash, fw_version, getattr(hal, "self_test", None))
        self.splitter = P.Splitter()
        self.reply_start_us = 0
        self.reply_version = P.PROTOCOL_VERSION
        self.state = None
        self.target = self.initial_state
        c = self.firmware.boot()
        self.restart(cause if c is None else c)

    # ------------------------------------------------------------ application state

    def restart(self, cause):
        """A start-up: the stored target restored (else the power-on state), rule none,
        counters, last_error and flags cleared, generator reseeded."""
        t = self.store.latest_target()
        self._move(self.initial_state if t is None else t)
        self.rule.reseed()
        self.rule.configure(R.RULE_NONE, 0, 0, 0)
        self.frames_ok = 0
        self.frames_bad = 0
        self.learns = 0          # learns and updates: below 2^30, the epochs above
        self.learns_hi = 0
        self.updates = 0
        self.updates_hi = 0
        self.glitches = 0
        self.glitches_hi = 0
        if self._trigger_glitches is not None:
            self.glitches_seen = self._trigger_glitches()   # those before: not counted
        self.last_error = 0
        self.duplicate = False
        self.reset_cause = cause
        self.hal.restart_clock()

    @property
    def assigned(self):
        return self.address != P.ADDR_UNASSIGNED

    @property
    def residue(self):
        return self.target - self.state

    def flags(self):
        t = self.store.latest_target()
        restored = self.initial_state if t is None else t
        f = FLAG_DUPLICATE if self.duplicate else 0
        if self.target != restored:
            f |= FLAG_UNSTORED
        if self.firmware.phase == U.PH_ROLLED_BACK:
            f |= FLAG_ROLLED_BACK
        return f

    def _move(self, target, learn=False):
        """The target clipped to the limits, the actuator driven to it: the state is
        what it reached (the HAL's read-back, or the nearest grid point, halves up,
        never above the top one, for an ideal actuator). ``learn``: a learn's move, the
        change from the target before (a gate's one-pulse step, GateDriver.step, as
        protocol 1 takes; set_state and restarts take the closed loop's bounded set)."""
        if target < self.state_min:
            target = self.state_min
        elif target > self.state_max:
            target = self.state_max
        previous = self.state
        if learn and previous is not None:
            previous = self.target
        self.target = target
        reached = self.hal.set_state(target, previous, learn)
        if reached is None:
            r = self.resolution
            reached = self.state_min + (target - self.state_min + (r >> 1)) // r * r
            if reached > self.top:
                reached = self.top
        self.state = reached

    def _read_nodes(self):
        h = self.hal
        if hasattr(h, "read_nodes_into"):
            h.read_nodes_into(self.nodes)
        else:
            v = h.read_nodes_uv()
            b = self.nodes
            b[0] = v[0]
            b[1] = v[1]
            b[2] = v[2]
            b[3] = v[3]
        return self.nodes

    def sample(self):
        """The calibrated drops into ``self.drops`` (dv_free_uv, dv_clamped_uv)."""
        tr_rule2.drops_into(self._read_nodes(), self.calibration_uv, self.drops)
        return self.drops

    def learn(self, nodes=None):
        """One learn (command or learn-trigger pulse) on ``nodes`` (the trigger's
        snapshot) or on a reading now: one draw, the rule on the target, the actuator
        moved. Returns updated (0/1); the state and residue are the board's."""
        if nodes is None:
            nodes = self._read_nodes()
        t = self.rule.learn(nodes, self.calibration_uv, self.target, self.state_min,
                            self.state_max)
        if self.learns == _C30:
            self.learns = 0
            self.learns_hi += 1
        else:
            self.learns += 1
        u = self.rule.updated
        if u:
            if self.updates == _C30:
                self.updates = 0
                self.updates_hi += 1
            else:
                self.updates += 1
            if t != self.target:
                self._move(t, True)
        return u

    def trigger(self, width_us, nodes=None):
        """A pulse on the learn-trigger input of ``width_us``: a learn, or a glitch."""
        if width_us >= P.TRIGGER_MIN_US:
            self.learn(nodes)
        else:
            self.glitch()

    def glitch(self):
        if self.glitches == _C30:
            self.glitches = 0
            self.glitches_hi += 1
        else:
            self.glitches += 1

    def take_glitches(self):
        """Count in the glitches the HAL's learn trigger refused since the last look (its
        counter, modulo 2^30, is read here, when telemetry is asked for, not by the main
        loop on every pass); small ints only."""
        f = self._trigger_glitches
        if f is None:
            return
        g = f()
        d = (g - self.glitches_seen) & _C30
        self.glitches_seen = g
        if d > _C30 - self.glitches:
            self.glitches = d - (_C30 - self.glitches) - 1
            self.glitches_hi += 1
        else:
            self.glitches += d

    def _count(self, lo, hi):
        return ((hi << 30) + lo) & M32

    # ------------------------------------------------------------ bus

    def feed(self, data):
        return [r for r, _, _ in self.receive(data)]

    def receive(self, data):
        """Stream bytes in: (reply wire bytes, start us after its request's end of
        frame, index in ``data`` just past the request's 0x00) for every reply."""
        out = []
        for err, raw, end in self.splitter.feed(data):
            reply = self._receive(err, raw)
            if reply is not None:
                out.append((reply, self.reply_start_us, end))
        return out

    def handle(self, chunk):
        """One chunk (with or without its trailing 0x00): the reply or None."""
        self.reply_start_us = 0
        if len(chunk) == 0 or (len(chunk) == 1 and chunk[0] == 0):
            return None
        err, raw = P.decode_any(chunk)
        return self._receive(err, raw)

    def _bad(self, err):
        self.frames_bad = (self.frames_bad + 1) & M32
        self.last_error = err
        return None

    def _receive(self, err, raw):
        self.reply_start_us = 0
        self.reply_version = P.PROTOCOL_VERSION
        if err:
            return self._bad(err)
        version = raw[0]
        cmd = raw[4]
        if version == P.V1_VERSION and cmd == 1 and len(raw) == 7:
            return self._v1_probe(raw)
        if version != P.PROTOCOL_VERSION:
            return self._bad(P.BAD_VERSION)
        dst = raw[1]
        if dst == P.ADDR_HOST:
            if cmd & P.REPLY_BIT and raw[2] == self.address and self.assigned:
                self.duplicate = True
            return None
        bcast = dst == P.ADDR_BROADCAST
        if not bcast and dst != self.address:
            return None
        self.frames_ok = (self.frames_ok + 1) & M32
        seq = raw[3]
        spec = P.COMMANDS.get(cmd)
        if spec is None:
            return self._answer(seq, cmd, bcast, None, P.UNKNOWN_COMMAND)
        if bcast and spec[3] == P.BC_REFUSED:
            self.last_error = P.BROADCAST_REFUSED
            return None
        payload = P.payload_of(raw)
        if len(payload) != P.REQUEST_SIZES[cmd]:
            return self._answer(seq, cmd, bcast, None, P.BAD_LENGTH)
        req = struct.unpack(spec[1], payload)
        if spec[3] == P.BC_SELECTED and req[0] != self.uid:
            return None
        if cmd == 13 and req[2] == 1 and self.assigned:
            return None
        status, fields, after = getattr(self, "_cmd_" + spec[0])(*req)
        reply = self._answer(seq, cmd, bcast, req, status, fields)
        if after is not None:
            after()
        return reply

    def _answer(self, seq, cmd, bcast, req, status, fields=None):
        if status != P.OK:
            self.last_error = status
        start = self.turnaround
        spec = P.COMMANDS.get(cmd)
        if bcast:
            mode = spec[3] if spec is not None else None
            if mode == P.BC_SLOTTED and self.assigned:
                start += (self.address - 1) * self.slots[cmd]
            elif mode == P.BC_HASHED and req is not None and 1 <= req[1] <= P.DISCOVER_SLOTS_MAX:
                start += (P.discover_slot(self.uid, req[0], req[1]) - 1) * self.slots[cmd]
            elif mode != P.BC_SELECTED or req is None:
                return None  # a selected broadcast of the wrong length names no board
        if status != P.OK or spec is None:
            payload = bytes((status,))
        else:
            payload = struct.pack(spec[2], P.OK, *fields)
        self.reply_start_us = start
        return P.encode_frame(P.ADDR_HOST, self.address, seq, (cmd | P.REPLY_BIT) & 0xFF,
                              payload)

    def _v1_probe(self, raw):
        """Protocol 1's identify, answered in protocol 1's layout with protocol 2 by an
        assigned board it is addressed to (unicast or broadcast)."""
        dst = raw[1]
        if not self.assigned or (dst != self.address and dst != P.ADDR_BROADCAST):
            return None
        self.frames_ok = (self.frames_ok + 1) & M32
        v = self.firmware.running_version
        payload = struct.pack(_V1_IDENTIFY_REPLY, P.OK, self.uid, v[0], v[1], v[2], self.kind,
                              P.PROTOCOL_VERSION, P.PROTOCOL_MINOR)
        self.reply_start_us = (self.address * P.V1_SLOT_US if dst == P.ADDR_BROADCAST
                               else self.turnaround)
        self.reply_version = P.V1_VERSION
        return P.encode_frame(P.ADDR_HOST, self.address, raw[3], 0x81, payload, P.V1_VERSION)

    # ------------------------------------------------------------ commands
    # each returns (status, reply fields after the status, action after replying)

    def _identity(self):
        v = self.firmware.running_version
        return (self.uid, v[0], v[1], v[2], self.kind, P.PROTOCOL_VERSION, P.PROTOCOL_MINOR,
                self.address, self.flags())

    def _cmd_identify(self):
        return P.OK, self._identity(), None

    def _cmd_read_state(self):
        return P.OK, (self.state, self.residue, self.store.generation), None

    def _cmd_set_state(self, state):
        if not self.state_min <= state <= self.state_max:
            return P.OUT_OF_RANGE, None, None
        self._move(state)
        return P.OK, (self.state, self.residue), None

    def _cmd_configure_rule(self, rule, probability, gain, dead_band_uv2):
        if (rule > R.RULE_CONTINUOUS or probability > R.PROBABILITY_ONE or gain < 0
                or gain >= R.GAIN_LIMIT or dead_band_uv2 < 0):
            return P.OUT_OF_RANGE, None, None
        if not R.rule_allowed(rule, self.kind):
            return P.WRONG_KIND, None, None
        self.rule.configure(rule, probability, gain, dead_band_uv2)
        return P.OK, (), None

    def _cmd_sample_drops(self):
        d = self.sample()
        return P.OK, (d[0], d[1]), None

    def _cmd_learn(self):
        u = self.learn()
        return P.OK, (self.state, self.residue, u), None

    def _cmd_read_telemetry(self):
        self.take_glitches()
        h = self.hal
        supply = h.supply_uv() if hasattr(h, "supply_uv") else 0
        temp = h.temperature_mdegc() if hasattr(h, "temperature_mdegc") else 0
        return P.OK, (h.uptime_ms() & M32, self.frames_ok, self.frames_bad,
                      self._count(self.learns, self.learns_hi),
                      self._count(self.updates, self.updates_hi),
                      self._count(self.glitches, self.glitches_hi),
                      self.last_error, self.reset_cause, self.flags(), supply, temp,
                      self.store.generation), None

    def _cmd_store_calibration(self, a, b, c, d):
        offsets = [a, b, c, d]
        if not self.hal.store_calibration(offsets):
            return P.STORAGE, None, None
        self.calibration_uv = offsets
        return P.OK, (), None

    def _cmd_read_calibration(self):
        return P.OK, tuple(self.calibration_uv), None

    def _cmd_reset(self, mode):
        if mode > 1:
            return P.OUT_OF_RANGE, None, None
        if mode == 1:
            try:
                self.store.erase()      # before the reply, which reports it
            except OSError:
                return P.STORAGE, None, None
        return P.OK, (), self._reset_after

    def _reset_after(self):
        self.firmware.boot()
        self.restart(RC_RESET_COMMAND)

    def _cmd_store_state(self):
        try:
            g = self.store.write(self.target)
        except OSError:
            return P.STORAGE, None, None
        return P.OK, (g,), None

    def _cmd_read_actuator(self):
        return P.OK, (self.state_min, self.state_max, self.resolution, self.initial_state), None

    def _cmd_discover(self, salt, slots, only_unassigned):
        if not 1 <= slots <= P.DISCOVER_SLOTS_MAX or only_unassigned > 1:
            return P.OUT_OF_RANGE, None, None
        return P.OK, self._identity(), None

    def _cmd_assign_address(self, uid, address):
        if not P.ADDR_BOARD_MIN <= address <= P.ADDR_UNASSIGNED:
            return P.OUT_OF_RANGE, None, None
        try:
            self.addresses.store(address)
        except OSError:
            return P.STORAGE, None, None
        self.address = address      # stored before the reply, which comes from it
        self.duplicate = False
        return P.OK, (), None

    def _cmd_fw_begin(self, size, image_crc32, major, minor, patch):
        status, blocks = self.firmware.begin(size, image_crc32, (major, minor, patch))
        return status, (blocks,), None

    def _cmd_fw_block(self, image_crc32, block, block_crc32, data):
        return self.firmware.write_block(image_crc32, block, block_crc32, data), (), None

    def _cmd_fw_status(self):
        return P.OK, self.firmware.status(), None

    def _cmd_fw_verify(self):
        status = self.firmware.verify()
        return status, (self.firmware.phase,), None

    def _cmd_fw_swap(self):
        status = self.firmware.swap()
        return status, (), (self._swap_after if status == P.OK else None)

    def _swap_after(self):
        c = self.firmware.boot()
        self.restart(RC_POWER_ON if c is None else c)

    # protocol 2.1, "Actuator calibration". The table lives in the HAL (a gate board's
    # gate_cal.json), so every reset keeps it: actuator_calibration() gives (source,
    # the 21 fields) or None when the actuator has none; calibrate_actuator() measures
    # it, goes back to the target, stores it and uses it (False: not stored, the table
    # before stays in use).

    def _gate_table(self):
        if self.kind != 2:
            return None
        f = getattr(self.hal, "actuator_calibration", None)
        return None if f is None else f()

    def _cmd_calibrate_actuator(self):
        if self._gate_table() is None:
            return P.WRONG_KIND, None, None
        stored = self.hal.calibrate_actuator()
        self._move(self.target)     # the state read back at the target, as before
        if not stored:
            return P.STORAGE, None, None
        return P.OK, self._gate_fields(), None

    def _cmd_read_actuator_calibration(self):
        if self._gate_table() is None:
            return P.WRONG_KIND, None, None
        return P.OK, self._gate_fields(), None

    def _gate_fields(self):
        source, fields = self._gate_table()
        return (source,) + tuple(fields)
