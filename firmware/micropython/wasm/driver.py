# Test driver for the MicroPython firmware: runs inside MicroPython (the WebAssembly
# port, via run_wasm.mjs) and under CPython (tests/test_firmware_micropython.py runs
# both). It exercises the firmware modules on the golden vectors and a fuzz and prints
# what the firmware produced, one JSON object per line; the pytest side compares with
# the vectors. The fuzz checks itself against an independent decoder written here.
#
#   import driver; driver.main('{"vectors": "/vectors", "suites": ["frames", ...],
#                                "fuzz_n": 100000, "fuzz_seed": 1, "tmp": "/tmp",
#                                "drift_n": 100000}')
#
# Suites: frames, rules, commands, main_loop, calibration_file, machine_hal, fuzz,
# drift, streams; gate and trigger (driver_hw.py, not in the default run).
# Not part of the firmware (main.py and friends never import it; it lives outside
# the top-level folder that `hostctl firmware deploy` copies).

import json
import struct
import sys
import time

import driver_hw
import hal
from drivers_common import KINDS, RULES, emit, hx, load, unhx
import main as fw_main
import tr_board
import tr_protocol as P
import tr_rule as R

def now_s():
    try:
        return time.ticks_ms() / 1000.0
    except AttributeError:
        return time.monotonic()


# ---------------------------------------------------------------- frames


def suite_frames(vectors):
    v = load(vectors, "frames.json")
    for case in v["valid"]:
        wire = unhx(case["wire_hex"])
        err, raw = P.decode_frame(wire)
        out = {"suite": "frames_valid", "name": case["name"], "error": P.ERROR_NAMES[err]}
        if not err:
            out["frame_hex"] = hx(raw)
            out["fields"] = [raw[0], raw[1], raw[2], raw[3], raw[4]]
            out["payload_hex"] = hx(P.payload_of(raw))
        out["encoded_hex"] = hx(P.encode_frame(case["dst"], case["src"], case["seq"],
                                               case["cmd"], unhx(case["payload_hex"]),
                                               case["version"]))
        sp = P.FrameSplitter()
        res = sp.feed(wire)
        out["stream"] = [[P.ERROR_NAMES[e], hx(r)] for e, r in res]
        emit(out)
    for case in v["malformed"]:
        wire = unhx(case["wire_hex"])
        err, raw = P.decode_frame(wire)
        out = {"suite": "frames_malformed", "name": case["name"], "error": P.ERROR_NAMES[err]}
        # on a stream, the same bytes byte by byte (a 0x00 inside splits the chunk)
        sp = P.FrameSplitter()
        res = []
        for i in range(len(wire)):
            res.extend(sp.feed(wire[i:i + 1]))
        out["stream"] = [P.ERROR_NAMES[e] for e, _ in res]
        emit(out)


# ---------------------------------------------------------------- rules


def suite_rules(vectors):
    v = load(vectors, "rules.json")
    for case in v["prng"]:
        uid = unhx(case["uid_hex"])
        seed = R.seed_from_uid(uid)
        g = R.Xorshift32(seed)
        draws = [g.next() for _ in range(len(case["draws"]))]
        emit({"suite": "prng", "uid_hex": case["uid_hex"], "seed": seed, "draws": draws})
    for case in v["cases"]:
        kind = KINDS[case["kind"]]
        rule = RULES[case["rule"]]
        uid = unhx(case["uid_hex"])
        # 1. the pure functions
        g = R.Xorshift32(R.seed_from_uid(uid))
        for _ in range(case["draws_before"]):
            g.next()
        draw = g.next()
        st, upd, dvf, dvc, c = R.learn_step(
            rule, case["probability"], case["gain"], case["dead_band_uv2"],
            case["state_before"], case["state_min"], case["state_max"], draw,
            case["node_uv"], case["calibration_uv"])
        out = {"suite": "rules", "name": case["name"], "draw": draw, "dv_free_uv": dvf,
               "dv_clamped_uv": dvc, "contrast_uv2": c, "updated": upd, "state_after": st}
        # 2. a whole board over the wire: configure_rule, sample_drops, learn, read_state
        sim = hal.SimHAL(node_uv=case["node_uv"], calibration_uv=case["calibration_uv"])
        b = tr_board.Board(sim, 1, uid, kind, case["state_min"], case["state_max"],
                           case["state_before"])
        for _ in range(case["draws_before"]):
            b.prng.next()
        req = struct.pack("<BIqq", rule, case["probability"], case["gain"],
                          case["dead_band_uv2"])
        rep = _ask(b, 0, P.CMD_CONFIGURE_RULE, req)
        out["board_configure_status"] = rep[0]
        rep = _ask(b, 1, P.CMD_SAMPLE_DROPS, b"")
        out["board_drops"] = list(struct.unpack("<ii", rep[1:]))
        rep = _ask(b, 2, P.CMD_LEARN, b"")
        s2, u2 = struct.unpack("<iB", rep[1:])
        out["board_state_after"] = s2
        out["board_updated"] = u2
        out["board_actuator"] = sim.actuator_state
        emit(out)


def _ask(board, seq, cmd, payload):
    reply = board.handle(P.encode_frame(board.address, 0, seq, cmd, payload))
    err, raw = P.decode_frame(reply)
    assert err == 0 and raw[3] == seq and raw[4] == cmd | 0x80
    return P.payload_of(raw)


# ---------------------------------------------------------------- commands


def _board_from(spec):
    sim = hal.SimHAL(node_uv=spec["node_uv"], uptime_ms=spec["uptime_ms"])
    b = tr_board.Board(sim, spec["address"], unhx(spec["uid_hex"]), KINDS[spec["kind"]],
                       spec["state_min"], spec["state_max"], spec["initial_state"],
                       tuple(spec.get("fw_version", tr_board.FW_VERSION)))
    return b, sim


def suite_streams(vectors):
    """Every stream vector (line noise, then frames with a 0x00 before them as well as
    after) fed to a fresh board in pieces of 61 bytes: the replies in order."""
    for case in load(vectors, "commands.json")["streams"]:
        b, _ = _board_from(case["board"])
        data = unhx(case["stream_hex"])
        replies = []
        for i in range(0, len(data), 61):
            replies += [hx(r) for r in b.feed(data[i:i + 61])]
        emit({"suite": "streams", "name": case["name"], "replies": replies})


# Gen-2 gate charging at 100 us (round(1e-4 / (1e3 * 2.2e-6) * 0.1 * 1e-6 * 2^48)).
DRIFT_GAIN = 1279432
DRIFT_STATE = 3000000


def drift_nodes(g):
    """One learn's four node readings (uV) with nothing to learn: the free and the
    clamped edge carry the same drop D (200,000..399,999 uV), each terminal read with its
    own noise, uniform in -200..200 uV; g is an R.Xorshift32 (4 + 1 draws)."""
    d = 200000 + g.next() % 200000
    e = [(g.next() >> 8) % 401 - 200 for _ in range(4)]
    return [1000000 + d + e[0], 1000000 + e[1], 1000000 + d + e[2], 1000000 + e[3]]


def suite_drift(n, seed):
    """n gate_charging updates of tr_rule with nothing to learn (drift_nodes): the sum of
    the state changes (its mean must be ~0: the rule rounds to nearest, symmetric in
    sign), their absolute sum, and the first 64 changes, for comparison with the host."""
    g = R.Xorshift32(seed)
    total = 0
    total_abs = 0
    first = []
    for i in range(n):
        st, upd, dvf, dvc, c = R.learn_step(
            R.RULE_GATE_CHARGING, R.PROBABILITY_ONE, DRIFT_GAIN, 0, DRIFT_STATE, 1000000,
            5500000, 0, drift_nodes(g), (0, 0, 0, 0))
        delta = st - DRIFT_STATE
        total += delta
        total_abs += delta if delta >= 0 else -delta
        if i < 64:
            first.append([c, delta])
    emit({"suite": "drift", "n": n, "seed": seed, "gain": DRIFT_GAIN, "sum": total,
          "sum_abs": total_abs, "first": first})


def suite_commands(vectors):
    v = load(vectors, "commands.json")
    for case in v["cases"]:
        # path 1: handle(chunk) per request (what the host's emulator calls)
        b1, _ = _board_from(case["board"])
        # path 2: the stream (what main.py does), fed in pieces of 1..7 bytes
        b2, _ = _board_from(case["board"])
        handle, stream = [], []
        k = 0
        for ex in case["exchanges"]:
            wire = unhx(ex["request_hex"])
            handle.append(hx(b1.handle(wire)))
            got = []
            i = 0
            while i < len(wire):
                k = k % 7 + 1
                got.extend(b2.feed(wire[i:i + k]))
                i += k
            stream.append([hx(r) for r in got])
        emit({"suite": "commands", "name": case["name"], "handle": handle, "stream": stream})


# ---------------------------------------------------------------- fuzz
#
# Independent reference: a CRC whose table is built from the bitwise definition, a
# slicing COBS decoder and the spec's check order, all written here without the
# firmware's code.


def _crc_bitwise(data, crc=0xFFFF):
    for b in data:
        for k in range(7, -1, -1):
            top = (crc >> 15) ^ ((b >> k) & 1)
            crc = (crc << 1) & 0xFFFF
            if top:
                crc ^= 0x1021
    return crc


# T[i]: the bitwise CRC register after shifting in byte i from a zero register.
_REF_T = [_crc_bitwise(bytes((i,)), 0) for i in range(256)]


def ref_crc(data):
    crc = 0xFFFF
    t = _REF_T
    for b in data:
        crc = t[(crc >> 8) ^ b] ^ ((crc & 0xFF) << 8)
    return crc


assert _crc_bitwise(b"123456789") == 0x29B1 and ref_crc(b"123456789") == 0x29B1


def ref_cobs_encode(raw):
    out = []
    for block in bytes(raw).split(b"\x00"):
        while len(block) >= 254:
            out.append(b"\xff" + block[:254])
            block = block[254:]
        out.append(bytes((len(block) + 1,)) + block)
    return b"".join(out)


def ref_cobs_decode(chunk):
    if b"\x00" in chunk:
        return None
    parts = []
    n = len(chunk)
    i = 0
    while i < n:
        code = chunk[i]
        if i + code > n:
            return None
        parts.append(chunk[i + 1:i + code])
        i += code
        if code != 255 and i < n:
            parts.append(b"\x00")
    return b"".join(parts)


def ref_classify(chunk):
    """(error name, raw or None) per the spec's order; one trailing 0x00 (the
    delimiter) is dropped first, as decode_frame does."""
    if chunk and chunk[-1] == 0:
        chunk = chunk[:-1]
    raw = ref_cobs_decode(chunk)
    if raw is None:
        return "bad_cobs", None
    if len(raw) < 7:
        return "too_short", None
    if len(raw) > 71:
        return "too_long", None
    if ref_crc(raw[:-2]) != raw[-2] * 256 + raw[-1]:
        return "bad_crc", None
    if raw[0] != 1:
        return "bad_version", None
    return "ok", raw


class Gen:
    """The fuzz's own generator, the same in both interpreters and cheap in
    MicroPython (small ints only): Knuth's additive lagged-Fibonacci generator
    (lags 24, 55, 24-bit values) seeded by xorshift64, plus pools of random bytes
    that byte strings are sliced from."""

    POOL = 32768

    def __init__(self, seed):
        s = (seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF or 1
        r = []
        for _ in range(55):
            s ^= (s << 13) & 0xFFFFFFFFFFFFFFFF
            s ^= s >> 7
            s ^= (s << 17) & 0xFFFFFFFFFFFFFFFF
            r.append(s >> 40)
        r[0] |= 1
        self.r = r
        self.j = 23
        self.k = 54
        self.pool_nz = bytes(1 + self.u24() % 255 for _ in range(self.POOL))
        self.pool_z = bytes(self._zb(1) for _ in range(self.POOL))
        self.pool_z3 = bytes(self._zb(3) for _ in range(self.POOL))

    def _zb(self, zeros16):
        v = self.u24()
        return 0 if (v & 15) < zeros16 else (v >> 8) & 0xFF

    def u24(self):
        r = self.r
        j = self.j
        k = self.k
        v = (r[j] + r[k]) & 0xFFFFFF
        r[k] = v
        self.j = j - 1 if j else 54
        self.k = k - 1 if k else 54
        return v

    def below(self, n):
        return self.u24() % n

    def byte(self):
        return self.u24() & 0xFF

    def bytes_(self, n, pool=None):
        """n random bytes: 1/16 zeros (default), pool_nz (none) or pool_z3 (3/16)."""
        if pool is None:
            pool = self.pool_z
        off = self.u24() % (self.POOL - n)
        return pool[off:off + n]


def _raw_frame(g, version=1, length=None):
    """Decoded frame bytes with a correct CRC (payload length chosen at random)."""
    if length is None:
        plen = g.below(65)
    else:
        plen = length - 7
    v = g.u24()
    body = bytearray((version, v & 0xFF, (v >> 8) & 0xFF, v >> 16, g.byte()))
    body.extend(g.bytes_(plen))
    c = ref_crc(body)
    body.append(c >> 8)
    body.append(c & 0xFF)
    return bytes(body)


def _make_chunk(g):
    """One fuzz chunk (bytes that may hold 0x00) and a label."""
    kind = g.below(12)
    if kind <= 2:  # valid frames
        return ref_cobs_encode(_raw_frame(g)), "valid"
    if kind == 3:  # bit flips in the encoded chunk
        c = bytearray(ref_cobs_encode(_raw_frame(g)))
        for _ in range(1 + g.below(3)):
            i = g.below(len(c))
            c[i] ^= 1 << g.below(8)
        return bytes(c), "flip_wire"
    if kind == 4:  # byte errors in the decoded frame, re-encoded (bad CRC)
        raw = bytearray(_raw_frame(g))
        for _ in range(1 + g.below(2)):
            i = g.below(len(raw))
            raw[i] ^= 1 + g.below(255)
        return ref_cobs_encode(raw), "flip_raw"
    if kind == 5:  # wrong length with a correct CRC
        n = g.below(7) if g.below(2) else 72 + g.below(230)
        body = bytearray((1,)) + g.bytes_(max(0, n - 3))
        if n >= 3:
            c = ref_crc(body)
            body.append(c >> 8)
            body.append(c & 0xFF)
        return ref_cobs_encode(bytes(body[:n])), "length"
    if kind == 6:  # wrong version, correct CRC
        return ref_cobs_encode(_raw_frame(g, version=g.byte())), "version"
    if kind == 7:  # truncated or extended chunk
        c = bytearray(ref_cobs_encode(_raw_frame(g)))
        if g.below(2):
            c = c[:len(c) - 1 - g.below(min(len(c), 8))]
        else:
            c.extend(g.bytes_(1 + g.below(4), g.pool_nz))
        return bytes(c), "trunc_ext"
    if kind == 8:  # inserted or deleted byte
        c = bytearray(ref_cobs_encode(_raw_frame(g)))
        i = g.below(len(c))
        if g.below(2):
            c = c[:i] + c[i + 1:]
        else:
            c = c[:i] + bytes((g.byte(),)) + c[i:]
        return bytes(c), "ins_del"
    if kind == 9:  # random bytes, no 0x00 (so the stream keeps it whole)
        n = 1 + g.below(90)
        return g.bytes_(n, g.pool_nz), "random_nz"
    if kind == 10:  # random bytes, zeros allowed
        return g.bytes_(1 + g.below(90), g.pool_z3), "random"
    # long chunks for the splitter's overflow path: valid COBS walks or broken ones
    n = 60 + g.below(260)
    c = bytearray()
    while len(c) < n:
        code = 255 if g.below(3) == 0 else 1 + g.below(254)
        c.append(code)
        c.extend(g.bytes_(code - 1, g.pool_nz))
    if g.below(2):
        c = c[:n]
    return bytes(c), "long"


def suite_fuzz(n, seed):
    g = Gen(seed)
    t0 = now_s()
    counts = {}
    by_label = {}
    mismatches = []
    accepted = 0
    wrong_crc_accepted = 0
    field_errors = 0
    stream_chunks = 0
    stream_mismatch = 0
    stream_bytes = bytearray()
    stream_expect = []
    splitter = P.FrameSplitter()
    for k in range(n):
        chunk, label = _make_chunk(g)
        want, want_raw = ref_classify(chunk)
        err, raw = P.decode_frame(chunk)
        got = P.ERROR_NAMES[err]
        counts[got] = counts.get(got, 0) + 1
        lab = by_label.setdefault(label, {})
        lab[got] = lab.get(got, 0) + 1
        if got != want:
            if len(mismatches) < 20:
                mismatches.append({"chunk": hx(chunk), "want": want, "got": got})
        if not err:
            accepted += 1
            rb = bytes(raw)
            if ref_crc(rb[:-2]) != rb[-2] * 256 + rb[-1] or not 7 <= len(rb) <= 71 or rb[0] != 1:
                wrong_crc_accepted += 1
            if want_raw is not None and rb != want_raw:
                field_errors += 1
        # the stream path: chunks (split at any 0x00 inside) appended to a stream
        stream_bytes.extend(chunk)
        stream_bytes.append(0)
        if b"\x00" in chunk:
            for piece in chunk.split(b"\x00"):
                if piece:
                    stream_expect.append(ref_classify(piece)[0])
        elif chunk:  # an empty chunk is two delimiters in a row: skipped
            stream_expect.append(want)
        if len(stream_bytes) > 4096 or k == n - 1:
            got_s = []
            i = 0
            m = len(stream_bytes)
            while i < m:
                step = 1 + g.below(200)
                got_s.extend(splitter.feed(stream_bytes[i:i + step]))
                i += step
            got_names = [P.ERROR_NAMES[e] for e, _ in got_s]
            stream_chunks += len(stream_expect)
            if got_names != stream_expect:
                stream_mismatch += 1
                if len(mismatches) < 20:
                    for a, b in zip(got_names, stream_expect):
                        if a != b:
                            mismatches.append({"stream": True, "want": b, "got": a})
                            break
                    else:
                        mismatches.append({"stream": True, "want_n": len(stream_expect),
                                           "got_n": len(got_names)})
            stream_bytes = bytearray()
            stream_expect = []
    dt = now_s() - t0
    emit({"suite": "fuzz", "n": n, "seed": seed, "counts": counts, "by_label": by_label,
          "accepted": accepted, "wrong_crc_accepted": wrong_crc_accepted,
          "field_errors": field_errors, "mismatches": mismatches,
          "stream_chunks": stream_chunks, "stream_batches_mismatched": stream_mismatch,
          "seconds": dt})


# ---------------------------------------------------------------- main loop


def suite_main_loop():
    """main.run on a SimHAL: replies written with DE high, a slotted broadcast reply
    in its slot, a learn per trigger edge, the watchdog fed every pass."""
    sim = hal.SimHAL(node_uv=(1000500, 1000000, 1000000, 1000000), uptime_ms=None, rx_piece=5)
    cfg = fw_main.tr_config.resolve({"protocol": 1, "address": 6, "kind": "digipot", "initial_state": 40})
    b = fw_main.make_board(sim, cfg, unhx("4a1c00e3b2770f01"))
    requests = [
        P.encode_frame(6, 0, 1, P.CMD_READ_STATE),
        P.encode_frame(6, 0, 2, P.CMD_CONFIGURE_RULE, struct.pack("<BIqq", 1, 65536, 0, 0)),
        P.encode_frame(255, 0, 3, P.CMD_IDENTIFY),
        P.encode_frame(255, 0, 4, P.CMD_SET_STATE, struct.pack("<i", 45)),
        P.encode_frame(7, 0, 5, P.CMD_READ_STATE),
    ]
    tx_log = []
    for r in requests:
        sim.inject(r)
        fw_main.run(b, sim, max_loops=8)
    sim.trigger()
    sim.trigger()
    fw_main.run(b, sim, max_loops=4)
    sim.inject(P.encode_frame(6, 0, 6, P.CMD_READ_STATE))
    sim.inject(P.encode_frame(6, 0, 7, P.CMD_READ_TELEMETRY))
    fw_main.run(b, sim, max_loops=8)
    for t, data, de in sim.tx:
        tx_log.append([t, hx(data), de])
    emit({"suite": "main_loop", "tx": tx_log, "reads": [[t, hx(d)] for t, d in sim.reads], "state": b.state, "updates": b.updates,
          "wdt_feeds": sim.wdt_feeds, "actuations": [list(a) for a in sim.actuations],
          "requests": [hx(r) for r in requests]})


# ---------------------------------------------------------------- calibration file


def suite_calibration_file(tmp):
    """The calibration record in a real file: kept across a power cycle and a reset,
    a corrupt file reads as zeros, a failing store answers `storage`."""
    path = tmp + "/calib_test.bin"
    for p in (path, path + ".tmp"):
        try:
            import os
            os.remove(p)
        except OSError:
            pass
    out = {"suite": "calibration_file"}
    sim = hal.SimHAL(calibration_path=path)
    b = tr_board.Board(sim, 3, b"\x01" * 8, 1)
    offs = (-5, 7, 2147483647, -2147483648)
    out["store"] = hx(_ask(b, 1, P.CMD_STORE_CALIBRATION, struct.pack("<iiii", *offs)))
    _ask(b, 2, P.CMD_RESET, b"")
    out["after_reset"] = list(struct.unpack("<iiii", _ask(b, 3, P.CMD_READ_CALIBRATION, b"")[1:]))
    b2 = tr_board.Board(hal.SimHAL(calibration_path=path), 3, b"\x01" * 8, 1)   # power cycle
    out["after_power_cycle"] = list(b2.calibration_uv)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    out["record_hex"] = hx(data)
    data[7] ^= 1
    with open(path, "wb") as f:
        f.write(data)
    out["corrupt"] = hal.CalibrationFile(path).load()
    bad = tr_board.Board(hal.SimHAL(calibration_path=path, storage_fails=True), 3, b"\x01" * 8, 1)
    out["failing_store"] = hx(_ask(bad, 4, P.CMD_STORE_CALIBRATION, struct.pack("<iiii", 1, 2, 3, 4)))
    out["failing_kept"] = list(bad.calibration_uv)
    emit(out)


# ---------------------------------------------------------------- entry


def main(args_json):
    args = json.loads(args_json)
    t0 = now_s()
    suites = args.get("suites", ["frames", "rules", "commands", "main_loop",
                                 "calibration_file", "machine_hal", "fuzz", "drift", "streams"])
    emit({"suite": "info", "implementation": sys.implementation.name,
          "version": list(sys.implementation.version)[:3]})
    for s in suites:
        t = now_s()
        if s == "frames":
            suite_frames(args["vectors"])
        elif s == "rules":
            suite_rules(args["vectors"])
        elif s == "commands":
            suite_commands(args["vectors"])
        elif s == "fuzz":
            suite_fuzz(args.get("fuzz_n", 100000), args.get("fuzz_seed", 1))
        elif s == "streams":
            suite_streams(args["vectors"])
        elif s == "drift":
            suite_drift(args.get("drift_n", 100000), args.get("drift_seed", 7))
        elif s == "main_loop":
            suite_main_loop()
        elif s in driver_hw.SUITES:
            driver_hw.SUITES[s](args.get("tmp", "/tmp"))
        elif s == "calibration_file":
            suite_calibration_file(args.get("tmp", "/tmp"))
        else:
            raise ValueError("unknown suite " + s)
        emit({"suite": "timing", "name": s, "seconds": now_s() - t})
    emit({"suite": "done", "seconds": now_s() - t0})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "{}")
