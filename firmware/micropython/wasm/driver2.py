# Test driver for the MicroPython firmware's protocol 2 (tr_board2 and friends): runs
# inside MicroPython (the WebAssembly port, via run_wasm.mjs --driver driver2) and
# under CPython. It runs every case of every file of firmware/protocol/vectors/v2 on
# the firmware and prints what the firmware produced, one JSON object per line; the
# pytest side (tests/test_firmware_micropython_v2.py) compares them with the vectors.
#
#   import driver2; driver2.main('{"vectors": "/vectors/v2", "tmp": "/tmp",
#                                  "suites": ["frames", "rules", ...]}')
#
# Suites: frames, rules, timing, commands, streams, update, noalloc, main_loop,
# machine_hal, flash_feed.
# The boards' flash is a directory of files per board (tr_store2.Flash); a board
# whose flash fails has a directory that does not exist. A power cut during a store
# is a Flash that stops after the erase (PowerCut), after which the board is built
# again from its files, as at any power cycle. Not part of the firmware.

import json
import sys

try:
    import os
except ImportError:  # pragma: no cover
    import uos as os

import hal
import main as fw_main
import tr_board2
import tr_protocol2 as P
import tr_rule as R
import tr_rule2
import tr_gate
import tr_store2
from drivers_common import KINDS, RULES, emit, hx, load, unhx

ERRORS = {}
for _i, _n in enumerate(P.ERROR_NAMES):
    ERRORS[_n] = _i


# ---------------------------------------------------------------- the plant


class PowerCut(Exception):
    """The power failed while the board was writing its flash."""


class TestFlash(tr_store2.Flash):
    """The board's files; ``fails``: every erase and program fails (OSError, as a
    flash reporting a failed erase or program); ``cut_next_store`` stops the next
    state record's write after its sector was erased, as a power cut would."""

    def __init__(self, root):
        tr_store2.Flash.__init__(self, root)
        self.fails = False
        self.cut_next_store = False

    def _check(self):
        if self.fails:
            raise OSError(5)

    def erase(self, name):
        self._check()
        tr_store2.Flash.erase(self, name)

    def fill(self, name, size, chunk):
        self._check()
        tr_store2.Flash.fill(self, name, size, chunk)

    def program(self, name, offset, data, check):
        self._check()
        tr_store2.Flash.program(self, name, offset, data, check)

    def write(self, name, data):
        self._check()
        if self.cut_next_store and name in tr_store2.STATE_FILES:
            self.cut_next_store = False
            raise PowerCut()
        tr_store2.Flash.write(self, name, data)


def _gate(d, rc_us, leak):
    """A description's gate table as the reply's 21 fields (the reference board's
    default, an RC gate on a 6 V rail, when it gives none)."""
    if d is None:
        return tr_gate.GateCalibration.from_rc(rc_us, 6000000, leak_uv_per_s=leak).fields()
    return tuple(d["charge_gate_uv"] + d["charge_nv_per_us"] + d["discharge_gate_uv"]
                 + d["discharge_nv_per_us"] + [d["leak_uv_per_s"]])


class VectorHAL(hal.SimHAL):
    """SimHAL with a quantising actuator (resolution, read-back offset) that reports
    the state it reached without allocating, and a self-test outcome for trial boots.
    A MOSFET board's gate table (protocol 2.1) is the description's gate_nominal until
    calibrate_actuator, which "measures" its gate_measured and keeps it in the board's
    flash (gate_cal.json, read at every power-on; a failing flash: storage)."""

    def __init__(self, spec, flash=None):
        hal.SimHAL.__init__(self, node_uv=spec["node_uv"], uptime_ms=spec["uptime_ms"],
                            calibration_uv=spec["calibration_uv"],
                            storage_fails=spec["storage_fails"], supply_uv=spec["supply_uv"],
                            temperature_mdegc=spec["temperature_mdegc"])
        self.lo = spec["state_min"]
        self.res = spec["resolution"]
        self.top = self.lo + (spec["state_max"] - self.lo) // self.res * self.res
        self.offset = spec["actuator_offset"]
        self.passes = spec["self_test_passes"]
        self.nominal = None
        self.moves = 0
        self.flash = flash
        self.gate = None
        if spec["kind"] == "mosfet":
            self.nominal = _gate(spec.get("gate_nominal"), 2200, 0)
            self.measured = _gate(spec.get("gate_measured"), 2310, -20)

    def power_on(self):     # the table in use after a start: the stored one, else nominal
        if self.nominal is not None:
            rec = self.flash.read("gate_cal.json")
            cal = None if not rec else tr_gate.GateCalibration.loads(rec.decode())
            self.gate = (0, self.nominal) if cal is None else (1, cal.fields())

    def actuator_calibration(self):
        return self.gate

    def calibrate_actuator(self):
        cal = tr_gate.GateCalibration.from_fields(self.measured)
        try:
            self.flash.write("gate_cal.json", cal.dumps().encode())
        except OSError:
            return False
        self.gate = (1, cal.fields())
        return True

    def set_state(self, state, previous, learn=False):
        r = self.res
        v = self.lo + (state - self.lo + (r >> 1)) // r * r
        if v > self.top:
            v = self.top
        self.moves += 1
        self.actuator_state = v + self.offset
        return self.actuator_state

    def self_test(self):
        return self.passes


_DIRS = [0]


def _new_root(tmp):
    _DIRS[0] += 1
    root = tmp + "/flash_%d" % _DIRS[0]
    try:
        os.mkdir(root)
    except OSError:
        pass
    return root + "/"


class VBoard:
    """One board of a vector bus: its HAL and flash (the address written at
    manufacture), and the firmware built on them, again at every power cycle."""

    def __init__(self, spec, tmp, baud):
        self.spec = spec
        self.baud = baud
        self.flash = TestFlash(_new_root(tmp))
        self.hal = VectorHAL(spec, self.flash)
        if spec["address"] != P.ADDR_UNASSIGNED:
            tr_store2.AddressStore(self.flash).store(spec["address"])
        self.flash.fails = spec["storage_fails"]
        self.boot()

    def boot(self):
        s = self.spec
        self.hal.power_on()
        self.board = tr_board2.Board2(self.hal, self.flash, unhx(s["uid_hex"]), KINDS[s["kind"]],
                                      s["state_min"], s["state_max"], s["initial_state"],
                                      s["resolution"], tuple(s["fw_version"]), self.baud)

    def power_cycle(self):
        self.boot()

    def handle(self, wire):
        try:
            return self.board.handle(wire)
        except PowerCut:
            self.power_cycle()
            return None


# ---------------------------------------------------------------- frames


def suite_frames(vectors):
    v = load(vectors, "frames.json")
    for case in v["valid"]:
        wire = unhx(case["wire_hex"])
        err, raw = P.decode_any(wire)
        out = {"suite": "frames_valid", "name": case["name"], "error": P.ERROR_NAMES[err]}
        if not err:
            out["frame_hex"] = hx(raw)
            out["fields"] = [raw[0], raw[1], raw[2], raw[3], raw[4]]
            out["payload_hex"] = hx(P.payload_of(raw))
        out["encoded_hex"] = hx(P.encode_frame(case["dst"], case["src"], case["seq"], case["cmd"],
                                               unhx(case["payload_hex"]), case["version"]))
        sp = P.Splitter()
        out["line"] = [[P.ERROR_NAMES[e], hx(r)] for e, r, _ in sp.feed(unhx(case["line_hex"]))]
        emit(out)
    for case in v["malformed"]:
        wire = unhx(case["wire_hex"])
        err, _ = P.decode_frame(wire)
        out = {"suite": "frames_malformed", "name": case["name"], "error": P.ERROR_NAMES[err]}
        # a board: dropped and counted, never answered
        spec = _spec(address=5)
        b = VBoard(spec, TMP[0], 115200)
        reply = b.handle(wire)
        out["board_reply"] = hx(reply)
        out["board_frames_bad"] = b.board.frames_bad
        out["board_last_error"] = b.board.last_error
        emit(out)


def _spec(**kw):
    s = {"uid_hex": "4a1c00e3b2770f01", "kind": "digipot", "address": 248, "state_min": 0,
         "state_max": 99, "initial_state": 49, "resolution": 1, "actuator_offset": 0,
         "node_uv": [1200000, 1000000, 1100000, 1000000], "uptime_ms": 123456,
         "supply_uv": 3300000, "temperature_mdegc": 25000, "fw_version": [2, 0, 0],
         "calibration_uv": [0, 0, 0, 0], "storage_fails": False, "self_test_passes": True}
    for k in kw:
        s[k] = kw[k]
    return s


# ---------------------------------------------------------------- rules


def suite_rules(vectors):
    v = load(vectors, "rules.json")
    for case in v["prng"]:
        r = tr_rule2.Rule2(unhx(case["uid_hex"]))
        seed = r.draw()
        draws = []
        for _ in range(len(case["draws"])):
            r._next()
            draws.append(r.draw())
        emit({"suite": "prng", "uid_hex": case["uid_hex"], "seed": seed, "draws": draws})
    for case in v["cases"]:
        spec = _spec(uid_hex=case["uid_hex"], kind=case["kind"], address=1,
                     state_min=case["state_min"], state_max=case["state_max"],
                     initial_state=case["state_min"], resolution=case["resolution"],
                     actuator_offset=case["actuator_offset"], node_uv=case["node_uv"],
                     calibration_uv=case["calibration_uv"])
        vb = VBoard(spec, TMP[0], 115200)
        b = vb.board
        st = b._cmd_set_state(case["target_before"])[0]
        cf = b._cmd_configure_rule(RULES[case["rule"]], case["probability"], case["gain"],
                                   case["dead_band_uv2"])[0]
        rows = []
        for _ in case["learns"]:
            updated = b.learn()
            d = b.sample()
            rows.append({"draw": b.rule.draw(), "dv_free_uv": d[0], "dv_clamped_uv": d[1],
                         "contrast_uv2": R.contrast_uv2(d[0], d[1]), "updated": updated,
                         "target": b.target, "state": b.state, "residue": b.residue})
        emit({"suite": "rules", "name": case["name"], "set_state_status": st,
              "configure_status": cf, "learns": rows})


# ---------------------------------------------------------------- timing


def suite_timing(vectors):
    v = load(vectors, "timing.json")
    for entry in v["bauds"]:
        baud = entry["baud"]
        slotted = {}
        for name in entry["slotted"]:
            c = P.CMD_CODES[name]
            starts = {}
            for a in entry["slotted"][name]["reply_start_us"]:
                starts[a] = P.reply_start_us(c, int(a), baud)
            slotted[name] = {"reply_payload": P.REPLY_SIZES[c],
                             "slot_us": P.slot_us(baud, P.REPLY_SIZES[c]),
                             "reply_start_us": starts, "listen_us": P.listen_us(c, baud)}
        disc = {}
        for n in entry["discover_listen_us"]:
            disc[n] = P.listen_us(13, baud, int(n))
        # a board at that baud rate: its own slot times
        b = VBoard(_spec(address=17), TMP[0], baud).board
        emit({"suite": "timing_baud", "baud": baud, "char_us": P.char_us(baud),
              "turnaround_us": P.turnaround_us(baud),
              "v1_probe_timeout_us": P.v1_probe_timeout_us(baud), "slotted": slotted,
              "discover_listen_us": disc, "board_turnaround_us": b.turnaround,
              "board_slots": dict((P.COMMANDS[c][0], b.slots[c]) for c in b.slots)})
    for q in v["quiet_ms"]:
        r = q["request"]
        emit({"suite": "timing_quiet", "command": q["command"], "request": r,
              "quiet_ms": P.quiet_ms(P.CMD_CODES[q["command"]], r.get("mode", 0), r.get("size", 0))})
    for d in v["discover"]:
        uid = unhx(d["uid_hex"])
        slots = {}
        for n in d["slots"]:
            slots[n] = P.discover_slot(uid, d["salt"], int(n))
        emit({"suite": "timing_discover", "uid_hex": d["uid_hex"], "salt": d["salt"],
              "hash": P.discover_hash(uid, d["salt"]), "slots": slots})
    emit({"suite": "timing_fmix32", "pairs": [[x, P.fmix32(x)] for x, _ in v["fmix32"]]})


# ---------------------------------------------------------------- bus sessions


def run_case(case, tmp):
    """One bus session of commands.json or update.json: per exchange, every reply as
    [board, reply_hex, start_us, collides] in the order of their starts."""
    baud = case["baud"]
    boards = [VBoard(s, tmp, baud) for s in case["boards"]]
    char = P.char_us(baud)
    out = []
    for ex in case["exchanges"]:
        if "event" in ex:
            b = boards[ex["board"]]
            e = ex["event"]
            if e == "power_cycle":
                b.power_cycle()
            elif e == "trigger":
                b.board.trigger(ex["width_us"])
            elif e == "cut_power_during_next_store":
                b.flash.cut_next_store = True
            else:
                raise ValueError("unknown event " + e)
            out.append({"event": e})
            continue
        wire = unhx(ex["request_hex"])
        hear = ex.get("heard_by")
        if hear is None:
            hear = range(len(boards))
        replies = []
        for i in hear:
            r = boards[i].handle(wire)
            if r is not None:
                replies.append((boards[i].board.reply_start_us, i, r))
        replies.sort(key=lambda x: (x[0], x[1]))
        spans = [(s, s + len(r) * char + P.DE_HOLD_US) for s, _, r in replies]
        rows = []
        for n in range(len(replies)):
            s, i, r = replies[n]
            col = False
            for m in range(len(spans)):
                if m != n and spans[m][0] < spans[n][1] and spans[n][0] < spans[m][1]:
                    col = True
            rows.append([i, hx(r), s, col])
        for s, i, r in replies:
            if not rows[[x[0] for x in rows].index(i)][3]:
                for j in range(len(boards)):
                    if j != i:
                        boards[j].handle(r)
        out.append(rows)
    return out


def suite_commands(vectors, tmp, name="commands.json", suite="commands"):
    v = load(vectors, name)
    for case in v["cases"]:
        emit({"suite": suite, "name": case["name"], "exchanges": run_case(case, tmp)})


def suite_streams(vectors, tmp):
    """Every stream (line noise, then frames as the host sends them) fed to one board
    in pieces of 61 bytes, and byte by byte: each reply and its start."""
    for case in load(vectors, "commands.json")["streams"]:
        data = unhx(case["stream_hex"])
        res = {}
        for piece in (61, 1):
            b = VBoard(case["board"], tmp, 115200).board
            replies = []
            for i in range(0, len(data), piece):
                for r, start, end in b.receive(data[i:i + piece]):
                    replies.append([hx(r), start])
            res[str(piece)] = replies
        emit({"suite": "streams", "name": case["name"], "replies": res})


# ---------------------------------------------------------------- allocation


def suite_noalloc(tmp):
    """The sample and learn paths under micropython.heap_lock (MicroPython only): a
    gate board with resolution 1000 and the Gen-2 gain, a digipot with the tap rule."""
    try:
        import micropython
    except ImportError:
        emit({"suite": "noalloc", "interpreter": "cpython"})
        return
    import gc
    res = {"suite": "noalloc", "interpreter": "micropython"}
    for name, spec, rule, gain, db in (
            ("gate", _spec(kind="mosfet", address=3, state_min=1000000, state_max=5500000,
                           initial_state=2500000, resolution=1000,
                           node_uv=[1300000, 1000000, 1150000, 1000000],
                           calibration_uv=[-1500, 2200, 0, -70]), 2, 2559015, 0),
            ("gate_down", _spec(kind="mosfet", address=3, state_min=1000000, state_max=5500000,
                                initial_state=2500000, resolution=7,
                                node_uv=[1150000, 1000000, 1300000, 1000000]), 3, 1 << 39, 0),
            ("tap", _spec(address=4), 1, 0, 1000)):
        vb = VBoard(spec, tmp, 115200)
        b = vb.board
        b._cmd_configure_rule(rule, 65536, gain, db)
        nodes = b.nodes
        gc.collect()
        err = None
        m0 = gc.mem_alloc()
        micropython.heap_lock()
        try:
            for _ in range(200):
                b.learn()
                b.sample()
                b.learn(nodes)
        except MemoryError as exc:
            err = "MemoryError"
        micropython.heap_unlock()
        res[name] = {"error": err, "alloc": gc.mem_alloc() - m0, "state": b.state,
                     "target": b.target, "learns": b.learns}
    emit(res)


# ---------------------------------------------------------------- main loop


def suite_main_loop(tmp):
    """main.run on a SimHAL with protocol 2: replies written with DE high, each at its
    start after the request's end of frame, counted back from the read that brought it
    (several frames in one read: each its own end)."""
    root = _new_root(tmp)
    cfg = fw_main.tr_config.resolve({"protocol": 2, "kind": "digipot", "initial_state": 40})
    sim = hal.SimHAL(node_uv=(1200000, 1000000, 1100000, 1000000), uptime_ms=5,
                     rx_piece=4096)
    b = fw_main.make_board(sim, cfg, unhx("4a1c00e3b2770f01"), tr_store2.Flash(root))
    uid = unhx("4a1c00e3b2770f01")
    reqs = [P.encode_frame(255, 0, 1, 14, uid + bytes((6,))),        # assign address 6
            P.encode_frame(6, 0, 2, 2, b""),                          # read_state
            P.encode_frame(255, 0, 3, 1, b"")]                        # identify, slot 6
    sim.now_us = 1000
    sim.inject(b"\x00" + reqs[0])
    fw_main.run(b, sim, max_loops=2)
    sim.now_us = 50000
    sim.inject(b"\x00" + reqs[1] + b"\x00" + reqs[2][:1])   # two bytes after read_state's end
    fw_main.run(b, sim, max_loops=1)
    sim.now_us = 90000
    sim.inject(reqs[2][1:])
    fw_main.run(b, sim, max_loops=1)
    sim.trigger()
    fw_main.run(b, sim, max_loops=1)
    emit({"suite": "main_loop", "protocol": fw_main.protocol_of(cfg),
          "tx": [[t, hx(d), de] for t, d, de in sim.tx],
          "reads": [[t, hx(d)] for t, d in sim.reads], "requests": [hx(r) for r in reqs],
          "address": b.address, "learns": b.learns, "stored_address":
          tr_store2.AddressStore(tr_store2.Flash(root)).load(),
          "p1": type(fw_main.make_board(hal.SimHAL(), fw_main.tr_config.resolve({"protocol": 1}),
                                        uid)).__name__,
          "default": fw_main.protocol_of(fw_main.tr_config.resolve({}))})


def suite_machine_hal(tmp):
    """Protocol 2 on MachineHAL with the stand-in machine (rp2, X9C, ADS131M04): a
    receiver that hears the board's own replies (they are dropped, not taken for
    another board at its address), the supply from ADC3 and the temperature from ADC4,
    each reply with DE high."""
    import driver_hw
    import tr_config
    fm = driver_hw._fake()
    try:
        fm.ECHO[0] = True
        fm.set_adc_uv(29, 1650000)      # VSYS 4.95 V through the Pico's 1:3 divider
        fm.set_adc_uv(4, 706000 - 8605)  # 32 degC: 0.706 V - 5 * 1.721 mV
        cfg = tr_config.resolve({"protocol": 2, "kind": "digipot", "initial_state": 30,
                                 "port": "rp2", "calibration_file": tmp + "/mh2_calib.bin"})
        out = {"suite": "machine_hal"}
        for name, drops in (("board", True), ("control", False)):
            fm.EVENTS.clear()
            h = hal.MachineHAL(cfg, clock=fm.CLOCK)
            if not drops:
                h.drop_echo = None      # the control: its own echo kept
            uid = fw_main.board_uid(cfg)
            b = fw_main.make_board(h, cfg, uid, tr_store2.Flash(_new_root(tmp)),
                                   fw_main.reset_cause(fm))
            fm.EVENTS.clear()
            for req in (P.encode_frame(255, 0, 1, 14, uid + bytes((9,))),
                        P.encode_frame(9, 0, 2, 2, b""), P.encode_frame(9, 0, 3, 7, b"")):
                fm.RX.extend(b"\x00" + req)
                fw_main.run(b, h, max_loops=2)
            writes, de_after = driver_hw._uart_writes(fm.EVENTS, cfg["uart"]["de"])
            out[name] = {"writes": writes, "de_after": de_after, "address": b.address,
                         "duplicate": b.duplicate}
            fm.RX[:] = b""
        # reply times from the receive-timeout stamp: read before the line went idle
        # (the loop waits for the stamp), and read long after it
        fm.ECHO[0] = False
        stamped = []
        for end, late in ((1000000, 40), (2000000, 5000), (3000000, 600)):
            fm.EVENTS.clear()
            req = (P.encode_frame(255, 0, 9, 1, b"") if late == 600 else
                   P.encode_frame(9, 0, 8, 2, b""))
            fm.advance_to(end - 200)
            fm.receive(h.uart, b"\x00" + req, end)
            fm.advance_to(end + late)
            fw_main.run(b, h, max_loops=1)
            w = [e for e in fm.EVENTS if e[0] == "uart_write"]
            stamped.append([end, late, hx(req), [[hx(e[1]), e[2]] for e in w]])
        out["stamped"] = stamped
        out["char_us"] = h._char_us
        emit(out)
    finally:
        driver_hw._done()


def suite_flash_feed(tmp):
    """A long erase and CRC feed the watchdog as they go: fw_begin of 64 KiB, every
    block, fw_verify, with the feeds counted."""
    feeds = [0]

    def feed():
        feeds[0] += 1

    flash = tr_store2.Flash(_new_root(tmp), feed)
    spec = _spec(address=3)
    b = tr_board2.Board2(VectorHAL(spec), flash, unhx(spec["uid_hex"]), 1, 0, 99, 49)
    image = bytes((i * 7 + 3) & 0xFF for i in range(65536))
    crc = P.crc32(image)
    out = {"suite": "flash_feed"}
    out["begin"] = list(b._cmd_fw_begin(len(image), crc, 2, 1, 0)[:2])
    out["after_begin"] = feeds[0]
    for n in range(512):
        blk = image[n * 128:(n + 1) * 128]
        b._cmd_fw_block(crc, n, P.crc32(blk), blk)
    f0 = feeds[0]
    out["verify"] = b._cmd_fw_verify()[:2]
    out["during_verify"] = feeds[0] - f0
    emit(out)


TMP = ["/tmp"]


def main(args_json):
    args = json.loads(args_json)
    vectors = args.get("vectors", "/vectors/v2")
    tmp = args.get("tmp", "/tmp")
    TMP[0] = tmp
    suites = args.get("suites", ["frames", "rules", "timing", "commands", "streams", "update",
                                 "noalloc", "main_loop", "machine_hal", "flash_feed"])
    impl = sys.implementation
    emit({"suite": "info", "implementation": impl.name, "version": list(impl.version[:3])})
    for s in suites:
        if s == "frames":
            suite_frames(vectors)
        elif s == "rules":
            suite_rules(vectors)
        elif s == "timing":
            suite_timing(vectors)
        elif s == "commands":
            suite_commands(vectors, tmp)
        elif s == "streams":
            suite_streams(vectors, tmp)
        elif s == "update":
            suite_commands(vectors, tmp, "update.json", "update")
        elif s == "noalloc":
            suite_noalloc(tmp)
        elif s == "main_loop":
            suite_main_loop(tmp)
        elif s == "machine_hal":
            suite_machine_hal(tmp)
        elif s == "flash_feed":
            suite_flash_feed(tmp)
        else:
            raise ValueError("unknown suite " + s)
    emit({"suite": "done"})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "{}")
