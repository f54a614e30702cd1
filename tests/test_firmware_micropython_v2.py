"""The MicroPython firmware's protocol 2 (firmware/micropython/tr_board2.py and friends) on
every case of protocol 2's golden vectors (firmware/protocol/vectors/v2).

``firmware/micropython/wasm/driver2.py`` runs every case of frames.json, rules.json,
timing.json, commands.json and update.json on the firmware and prints what it produced; it
runs on **MicroPython 1.27**'s official WebAssembly port (``node run_wasm.mjs --driver
driver2``, one launch for every case) and on CPython. This module compares each result with
the vectors, reply bytes and reply start times (us after the request's end of frame), and
names the case, exchange and board of any difference; a negative control shows that one
changed expected byte or time is caught. Also: the sample and learn paths allocate nothing
(under ``micropython.heap_lock``), main.py chooses the protocol from the configuration and
dates replies from the end of frame, and the allocation-free rule equals the host's.
"""

from __future__ import annotations

import ast
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import event, given, settings, strategies as st

from instruments.bus import rule as REF_RULE, timing
from instruments.bus import v2 as REF

ROOT = Path(__file__).resolve().parents[1]
FW = ROOT / "firmware" / "micropython"
VECTORS = ROOT / "firmware" / "protocol" / "vectors" / "v2"
RUNNER = FW / "run_wasm.mjs"
WASM_PKG = FW / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
NODE = shutil.which("node")
HAVE_WASM = NODE is not None and WASM_PKG.exists()
FILES = ("frames.json", "rules.json", "timing.json", "commands.json", "update.json")


def _vectors() -> dict[str, dict]:
    return {name: json.loads((VECTORS / name).read_text()) for name in FILES}


V = _vectors()


def _group(stdout: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in stdout.splitlines():
        if line.strip():
            obj = json.loads(line)
            out.setdefault(obj["suite"], []).append(obj)
    assert "done" in out, "driver2 did not finish:\n" + stdout[-4000:]
    return out


@pytest.fixture(scope="module")
def micropython(tmp_path_factory) -> dict[str, list[dict]]:
    if not HAVE_WASM:
        pytest.fail("MicroPython WebAssembly port missing: npm ci --prefix firmware/micropython")
    res = subprocess.run([NODE, str(RUNNER), "--driver", "driver2", "--vectors", str(VECTORS)],
                         capture_output=True, text=True,
                         cwd=tmp_path_factory.mktemp("wasm2"))
    assert res.returncode == 0, f"run_wasm.mjs exited {res.returncode}:\n{res.stderr[-4000:]}"
    assert not res.stderr.strip(), res.stderr[-4000:]
    return _group(res.stdout)


@pytest.fixture(scope="module")
def cpython(tmp_path_factory) -> dict[str, list[dict]]:
    tmp = tmp_path_factory.mktemp("cpython_fw2")
    args = json.dumps({"vectors": str(VECTORS), "tmp": str(tmp)})
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "import driver2; driver2.main(sys.argv[3])")
    res = subprocess.run([sys.executable, "-c", code, str(FW), str(FW / "wasm"), args],
                         capture_output=True, text=True, cwd=tmp)
    assert res.returncode == 0, f"driver2 exited {res.returncode}:\n{res.stderr[-4000:]}"
    return _group(res.stdout)


@pytest.fixture(params=["micropython", "cpython"])
def run(request) -> dict[str, list[dict]]:
    return request.getfixturevalue(request.param)


# ---------------------------------------------------------------- comparisons


def _by(results: list[dict], key: str = "name") -> dict:
    return {r[key]: r for r in results}


def check_frames(v: dict, got: dict) -> list[str]:
    bad = []
    valid = _by(got.get("frames_valid", []))
    for case in v["valid"]:
        r = valid.get(case["name"])
        want = {"error": "ok", "frame_hex": case["frame_hex"], "payload_hex": case["payload_hex"],
                "fields": [case["version"], case["dst"], case["src"], case["seq"], case["cmd"]],
                "encoded_hex": case["wire_hex"], "line": [["ok", case["frame_hex"]]]}
        for k, w in want.items():
            if r is None or r.get(k) != w:
                bad.append(f"frames.json valid {case['name']}: {k} {None if r is None else r.get(k)!r} != {w!r}")
    errors = {n: i for i, n in enumerate(REF.ERRORS)}
    malformed = _by(got.get("frames_malformed", []))
    for case in v["malformed"]:
        r = malformed.get(case["name"])
        want = {"error": case["error"], "board_reply": None, "board_frames_bad": 1,
                "board_last_error": errors[case["error"]]}
        for k, w in want.items():
            if r is None or r.get(k) != w:
                bad.append(f"frames.json malformed {case['name']}: {k} {None if r is None else r.get(k)!r} != {w!r}")
    return bad


def check_rules(v: dict, got: dict) -> list[str]:
    bad = []
    prng = _by(got.get("prng", []), "uid_hex")
    for case in v["prng"]:
        r = prng.get(case["uid_hex"])
        if r is None or (r["seed"], r["draws"]) != (case["seed"], case["draws"]):
            bad.append(f"rules.json prng {case['uid_hex']}: {r} != {case}")
    rules = _by(got.get("rules", []))
    for case in v["cases"]:
        r = rules.get(case["name"])
        if r is None:
            bad.append(f"rules.json {case['name']}: no result")
            continue
        if (r["set_state_status"], r["configure_status"]) != (0, 0):
            bad.append(f"rules.json {case['name']}: statuses {r['set_state_status']}, {r['configure_status']}")
        if len(r["learns"]) != len(case["learns"]):
            bad.append(f"rules.json {case['name']}: {len(r['learns'])} learns, want {len(case['learns'])}")
        for i, (a, b) in enumerate(zip(r["learns"], case["learns"])):
            for k in b:
                if a.get(k) != b[k]:
                    bad.append(f"rules.json {case['name']} learn {i}: {k} {a.get(k)} != {b[k]}")
    return bad


def check_timing(v: dict, got: dict) -> list[str]:
    bad = []
    bauds = _by(got.get("timing_baud", []), "baud")
    for e in v["bauds"]:
        r = bauds.get(e["baud"])
        if r is None:
            bad.append(f"timing.json baud {e['baud']}: no result")
            continue
        for k in e:
            if r.get(k) != e[k]:
                bad.append(f"timing.json baud {e['baud']}: {k} {r.get(k)} != {e[k]}")
        if r["board_turnaround_us"] != e["turnaround_us"]:
            bad.append(f"timing.json baud {e['baud']}: the board's turnaround {r['board_turnaround_us']}")
        for name, s in e["slotted"].items():
            if r["board_slots"].get(name) != s["slot_us"]:
                bad.append(f"timing.json baud {e['baud']}: the board's {name} slot {r['board_slots'].get(name)}")
    quiet = {(q["command"], json.dumps(q["request"], sort_keys=True)): q["quiet_ms"]
             for q in got.get("timing_quiet", [])}
    for q in v["quiet_ms"]:
        k = (q["command"], json.dumps(q["request"], sort_keys=True))
        if quiet.get(k) != q["quiet_ms"]:
            bad.append(f"timing.json quiet {k}: {quiet.get(k)} != {q['quiet_ms']}")
    disc = {(d["uid_hex"], d["salt"]): d for d in got.get("timing_discover", [])}
    for d in v["discover"]:
        r = disc.get((d["uid_hex"], d["salt"]))
        if r is None or (r["hash"], r["slots"]) != (d["hash"], d["slots"]):
            bad.append(f"timing.json discover {d['uid_hex']} salt {d['salt']}: {r} != {d}")
    fm = got.get("timing_fmix32", [{}])[0].get("pairs")
    if fm != v["fmix32"]:
        bad.append(f"timing.json fmix32: {fm} != {v['fmix32']}")
    return bad


def check_sessions(v: dict, results: list[dict], file: str) -> list[str]:
    """Every exchange of every case: the replies (board, bytes, start, collision), in
    the order of their starts; events in their places."""
    bad = []
    got = _by(results)
    for case in v["cases"]:
        r = got.get(case["name"])
        if r is None:
            bad.append(f"{file} {case['name']}: no result")
            continue
        if len(r["exchanges"]) != len(case["exchanges"]):
            bad.append(f"{file} {case['name']}: {len(r['exchanges'])} exchanges, want {len(case['exchanges'])}")
        for i, (a, ex) in enumerate(zip(r["exchanges"], case["exchanges"])):
            if "event" in ex:
                if a != {"event": ex["event"]}:
                    bad.append(f"{file} {case['name']} exchange {i}: event {a} != {ex['event']}")
                continue
            want = [[x["board"], x["reply_hex"], x["start_us"], x["collides"]] for x in ex["replies"]]
            if a != want:
                bad.append(f"{file} {case['name']} exchange {i} (request {ex['request_hex']}): "
                           f"replies {a} != {want}")
    return bad


def check_streams(v: dict, got: dict) -> list[str]:
    bad = []
    res = _by(got.get("streams", []))
    for case in v["streams"]:
        r = res.get(case["name"])
        want = [[x["reply_hex"], x["start_us"]] for x in case["replies"]]
        for piece in ("61", "1"):
            if r is None or r["replies"][piece] != want:
                bad.append(f"commands.json stream {case['name']} in pieces of {piece}: "
                           f"{None if r is None else r['replies'][piece]} != {want}")
    return bad


def mismatches(vectors: dict[str, dict], got: dict) -> list[str]:
    return (check_frames(vectors["frames.json"], got) + check_rules(vectors["rules.json"], got)
            + check_timing(vectors["timing.json"], got)
            + check_sessions(vectors["commands.json"], got.get("commands", []), "commands.json")
            + check_streams(vectors["commands.json"], got)
            + check_sessions(vectors["update.json"], got.get("update", []), "update.json"))


# ---------------------------------------------------------------- the vectors


def test_runs_on_micropython_1_27(micropython):
    info = micropython["info"][0]
    assert (info["implementation"], info["version"]) == ("micropython", [1, 27, 0])


@pytest.mark.parametrize("file", FILES)
def test_every_case_of_the_vector_file(run, file):
    checks = {"frames.json": lambda g: check_frames(V[file], g),
              "rules.json": lambda g: check_rules(V[file], g),
              "timing.json": lambda g: check_timing(V[file], g),
              "commands.json": lambda g: (check_sessions(V[file], g.get("commands", []), file)
                                          + check_streams(V[file], g)),
              "update.json": lambda g: check_sessions(V[file], g.get("update", []), file)}
    bad = checks[file](run)
    assert not bad, f"{len(bad)} differences, the first:\n" + "\n".join(bad[:10])


def test_every_case_ran(micropython):
    """Nothing is compared against an empty result: one result per case of every file."""
    n = {k: len(v) for k, v in micropython.items()}
    assert n["frames_valid"] == len(V["frames.json"]["valid"]) and n["frames_malformed"] == len(V["frames.json"]["malformed"])
    assert n["rules"] == len(V["rules.json"]["cases"]) and n["prng"] == len(V["rules.json"]["prng"])
    assert n["timing_baud"] == len(V["timing.json"]["bauds"]) and n["timing_quiet"] == len(V["timing.json"]["quiet_ms"])
    assert n["timing_discover"] == len(V["timing.json"]["discover"])
    assert n["commands"] == len(V["commands.json"]["cases"]) and n["streams"] == len(V["commands.json"]["streams"])
    assert n["update"] == len(V["update.json"]["cases"])


def _first_reply(vec: dict) -> tuple[dict, int, dict]:
    for case in vec["cases"]:
        for i, ex in enumerate(case["exchanges"]):
            if ex.get("replies"):
                return case, i, ex["replies"][0]
    raise AssertionError("no reply in the vectors")


@pytest.mark.parametrize("what", ["reply_byte", "start_us", "rule_state", "frame_byte", "update_byte"])
def test_negative_control_a_changed_expectation_fails_naming_the_case(micropython, what):
    """The comparison is live: the results pass the vectors, and fail, naming the case, once
    one expected byte or time is changed."""
    assert mismatches(V, micropython) == []
    vec = copy.deepcopy(V)
    if what in ("reply_byte", "start_us", "update_byte"):
        file = "update.json" if what == "update_byte" else "commands.json"
        case, i, rep = _first_reply(vec[file])
        if what == "start_us":
            rep["start_us"] += 1
        else:
            b = bytearray.fromhex(rep["reply_hex"])
            b[len(b) // 2] ^= 0x01
            rep["reply_hex"] = b.hex()
        name = f"{file} {case['name']} exchange {i}"
    elif what == "rule_state":
        case = vec["rules.json"]["cases"][3]
        case["learns"][-1]["state"] += 1
        name = f"rules.json {case['name']} learn {len(case['learns']) - 1}"
    else:
        case = vec["frames.json"]["valid"][5]
        b = bytearray.fromhex(case["wire_hex"])
        b[2] ^= 0x10
        case["wire_hex"] = b.hex()
        name = f"frames.json valid {case['name']}"
    bad = mismatches(vec, micropython)
    assert len(bad) == 1 and bad[0].startswith(name), bad


def test_fits_a_microcontroller_heap(tmp_path):
    """Every command and update session, the streams and the heap-locked learns in a
    128 KiB MicroPython heap (an RP2040 build has about 190 KiB), with the same results."""
    if not HAVE_WASM:
        pytest.fail("MicroPython WebAssembly port missing: npm ci --prefix firmware/micropython")
    res = subprocess.run([NODE, str(RUNNER), "--driver", "driver2", "--vectors", str(VECTORS), "--heap-kb", "128",
                          "--suites", "commands,update,streams,noalloc"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr[-4000:]
    got = _group(res.stdout)
    bad = (check_sessions(V["commands.json"], got["commands"], "commands.json") + check_streams(V["commands.json"], got)
           + check_sessions(V["update.json"], got["update"], "update.json"))
    assert not bad, bad[:5]
    assert all(got["noalloc"][0][k]["error"] is None for k in ("gate", "gate_down", "tap"))


# ---------------------------------------------------------------- allocation, main loop


def test_the_sample_and_learn_paths_allocate_nothing(micropython):
    """200 rounds of learn on a reading, sample and learn on a trigger snapshot, under
    micropython.heap_lock (any allocation raises MemoryError): a gate board with resolution
    1000 and the Gen-2 gain and calibration offsets, one driven to its lower limit by a
    gain of 2^39, a digipot with the tap rule and a dead band."""
    r = micropython["noalloc"][0]
    assert r["interpreter"] == "micropython"
    for name in ("gate", "gate_down", "tap"):
        assert r[name]["error"] is None, (name, r[name])
        assert r[name]["learns"] == 400, name
    assert r["gate_down"]["state"] == 1_000_000 and r["tap"]["state"] == 99


def test_main_loop_speaks_the_configured_protocol_and_times_replies_from_the_end_of_frame(run):
    r = run["main_loop"][0]
    assert r["default"] == 2 and r["protocol"] == 2 and r["p1"] == "Board"
    assert r["address"] == 6 and r["stored_address"] == 6     # assign_address kept in address.bin
    assert all(de == 1 for _, _, de in r["tx"])
    frames = [REF.decode_frame(bytes.fromhex(h)) for _, h, _ in r["tx"]]
    assert [(f.seq, f.cmd, f.src) for f in frames] == [(1, 0x8E, 6), (2, 0x82, 6), (3, 0x81, 6)]
    char, turn = timing.char_us(115200), timing.turnaround_us(115200)  # 87 us, 348 us
    # 1: the read ended with the request's 0x00: the turnaround after the read
    assert r["tx"][0][0] == 1000 + turn
    # 2: two bytes of the next frame followed read_state's 0x00 in the same read
    assert r["tx"][1][0] == 50000 - 2 * char + turn
    # 3: the broadcast identify, slot 6, from the end of its frame (the read at 90,000 us)
    assert r["tx"][2][0] == 90000 + REF.reply_start_us("identify", 6, 115200)
    assert r["learns"] == 1    # one learn-trigger pulse


def test_protocol_2_on_the_machine_hal_drops_its_own_echo_and_reports_supply_and_temperature(run):
    """MachineHAL on the stand-in machine (rp2), its receiver hearing the board's own
    replies: the board is not taken for a duplicate (the control, keeping its echo, is);
    telemetry's supply is ADC3 times 3, its temperature the RP2040 sensor's formula."""
    r = run["machine_hal"][0]
    b, control = r["board"], r["control"]
    assert b["address"] == 9 and b["de_after"] == 0 and all(de == 1 for _, de in b["writes"])
    frames = [REF.decode_frame(bytes.fromhex(h)) for h, _ in b["writes"]]
    assert [(f.seq, f.src) for f in frames] == [(1, 9), (2, 9), (3, 9)]
    tel = REF.unpack_reply("read_telemetry", frames[2].payload)
    assert tel["flags"] == 0 and not b["duplicate"]
    code = 3300000 // 4096                  # one code of the 12-bit ADC (the fake's noise: a few)
    assert abs(tel["supply_uv"] - 4_950_000) <= 3 * 3 * code, tel["supply_uv"]
    assert abs(tel["temperature_mdegc"] - 32_000) <= 3 * code * 1000 // 1721, tel["temperature_mdegc"]
    assert tel["frames_ok"] == 3 and tel["frames_bad"] == 0 and tel["reset_cause"] == 0
    assert control["duplicate"] is True


def test_protocol_2_replies_start_from_the_receive_interrupts_end_of_frame(run):
    """On MachineHAL (rp2) the end of frame is the UART receive timeout's stamp (32 bit
    periods after the last byte), not the loop's read: a unicast read before the line went
    idle is answered the turnaround after the frame's end, a broadcast identify in slot 9
    from its end; a read later than the reply's start can only answer at once. (The write
    comes the driver-enable settle, char_us // 10 + 1, after the start.)"""
    r = run["machine_hal"][0]
    settle = r["char_us"] // 10 + 1
    starts = {40: REF.reply_start_us("identify", 1, 115200), 5000: 5000,
              600: REF.reply_start_us("identify", 9, 115200)}
    for end, late, req, writes in r["stamped"]:
        assert len(writes) == 1, (late, writes)
        f = REF.decode_frame(bytes.fromhex(writes[0][0]))
        assert f.seq == REF.decode_frame(bytes.fromhex(req)).seq and f.src == 9
        assert writes[0][1] == end + starts[late] + settle, (late, writes[0][1] - end)


def test_long_flash_work_feeds_the_watchdog(run):
    """fw_begin's erase of a 64 KiB slot and fw_verify's CRC-32 over it feed the watchdog
    (the quiet times run to seconds; the watchdog's default is 2 s) and still verify."""
    r = run["flash_feed"][0]
    assert r["begin"] == [0, [512]]
    assert r["after_begin"] >= 65536 // 4096
    assert r["verify"] == [0, [2]] and r["during_verify"] >= 65536 // 512


# ---------------------------------------------------------------- the rule, exactly


@pytest.fixture(scope="module")
def rule2():
    sys.path.insert(0, str(FW))
    try:
        import tr_rule2
        yield tr_rule2
    finally:
        sys.path.remove(str(FW))


_NODE = st.integers(-(2**27) + 1, 2**27 - 1)


@settings(deadline=None, max_examples=400)
@given(nodes=st.lists(_NODE, min_size=4, max_size=4), offs=st.lists(_NODE, min_size=4, max_size=4),
       rule=st.sampled_from([1, 2, 3]), gain=st.integers(0, 2**40 - 1),
       db=st.one_of(st.integers(0, 2**40), st.integers(0, 2**63 - 1)),
       lo=st.integers(-(2**28), 2**28), span=st.integers(0, 2**28), frac=st.floats(0, 1))
def test_the_allocation_free_rule_equals_the_hosts(rule2, nodes, offs, rule, gain, db, lo, span, frac):
    """tr_rule2's limbs (every value below 2^30) against the host's big integers, on the
    whole fast range; outside it the firmware takes tr_rule's exact path."""
    hi = min(lo + span, 2**28)
    target = lo + int((hi - lo) * frac)
    r = rule2.Rule2(bytes(8))
    r.configure(rule, 65536, gain, db)
    got = r.learn(nodes, offs, target, lo, hi)
    dvf, dvc = REF_RULE.drops_uv(nodes, offs)
    want = REF_RULE.apply_rule(rule, target, REF_RULE.contrast_uv2(dvf, dvc), gain=gain,
                               dead_band_uv2=db, state_min=lo, state_max=hi)
    assert got == want and r.updated == 1


_I32 = st.integers(-(2**31), 2**31 - 1)


@settings(deadline=None, max_examples=300)
@given(nodes=st.lists(_I32, min_size=4, max_size=4), offs=st.lists(_I32, min_size=4, max_size=4),
       rule=st.sampled_from([1, 2, 3]), gain=st.integers(0, 2**40 - 1), db=st.integers(0, 2**63 - 1),
       lims=st.lists(_I32, min_size=3, max_size=3), uid=st.binary(min_size=8, max_size=8),
       prob=st.integers(0, 65536))
def test_the_rule_and_generator_equal_the_hosts_on_every_input(rule2, nodes, offs, rule, gain, db, lims,
                                                              uid, prob):
    """Any i32 inputs (the big-integer path where the limbs would not do) and any uid and
    probability: the draw, whether the rule ran and the target are the host's learn_step."""
    lo, target, hi = sorted(lims)
    r = rule2.Rule2(uid)
    r.configure(rule, prob, gain, db)
    g = REF_RULE.Xorshift32(REF_RULE.seed_from_uid(uid))
    for _ in range(3):
        got = r.learn(nodes, offs, target, lo, hi)
        want = REF_RULE.learn_step(rule=rule, probability=prob, gain=gain, dead_band_uv2=db, state=target,
                                   state_min=lo, state_max=hi, draw=g.next(), node_uv=nodes,
                                   calibration_uv=offs)
        assert r.draw() == g.state and (got, r.updated) == (want["state"], want["updated"])
        target = got


def test_the_firmware_files_stay_small_and_micropython_friendly():
    for name in ("tr_protocol2.py", "tr_rule2.py", "tr_store2.py", "tr_update2.py", "tr_board2.py",
                 "wasm/driver2.py"):
        text = (FW / name).read_text()
        assert len(text.splitlines()) <= 600, name
        for node in ast.walk(ast.parse(text, name)):
            assert not isinstance(node, (ast.JoinedStr, ast.AnnAssign)), f"{name}:{node.lineno}"


# ---------------------------------------------------------------- against the reference board


UIDS = (bytes.fromhex("4a1c00e3b2770f01"), bytes.fromhex("0123456789abcdef"))
_TYPES = {"u8": st.integers(0, 255), "u16": st.integers(0, 2**16 - 1), "u32": st.integers(0, 2**32 - 1),
          "i32": st.integers(-(2**31), 2**31 - 1), "i64": st.integers(-(2**63), 2**63 - 1)}
# fields drawn near what boards accept, so that commands succeed as often as they fail
_NEAR = {"rule": st.integers(0, 4), "probability": st.sampled_from([0, 1, 32768, 65536, 65537]),
         "gain": st.sampled_from([0, 1, 2_559_015, 1 << 30, 2**40 - 1, 2**40]),
         "dead_band_uv2": st.sampled_from([-1, 0, 1000, 2**38]),
         "state": st.sampled_from([-1, 0, 49, 99, 100, 1_000_000, 2_000_499, 5_500_000, 5_500_001]),
         "mode": st.integers(0, 2), "slots": st.sampled_from([0, 1, 7, 247, 248]),
         "only_unassigned": st.integers(0, 2), "address": st.sampled_from([0, 1, 7, 248, 249]),
         "size": st.sampled_from([0, 1, 300, 640, 983_041]), "block": st.integers(0, 6),
         "salt": st.integers(0, 2**32 - 1)}


@st.composite
def _op(draw):
    kind = draw(st.sampled_from(["cmd"] * 8 + ["raw", "power", "trigger", "v1"]))
    dst = draw(st.sampled_from([7, 7, 255, 248, 9]))
    if kind == "power":
        return ("power",)
    if kind == "trigger":
        return ("trigger", draw(st.sampled_from([1, 19, 20, 500])))
    if kind == "v1":
        return ("raw", REF.encode_frame(REF.Frame(1, dst, 0, draw(st.integers(0, 255)), 1, b"")))
    if kind == "raw":
        return ("raw", REF.encode_frame(REF.Frame(draw(st.sampled_from([2, 2, 1, 3])), dst, draw(st.integers(0, 9)),
                                                  draw(st.integers(0, 255)), draw(st.integers(0, 31)) | 0,
                                                  draw(st.binary(max_size=20)))))
    name = draw(st.sampled_from(sorted(REF.COMMANDS)))
    spec = REF.COMMANDS[name]
    fields = {}
    for f in spec.request:
        if f.name == "uid":
            fields[f.name] = draw(st.sampled_from(UIDS))
        elif f.name == "data":
            fields[f.name] = draw(st.binary(min_size=128, max_size=128))
        elif f.name in _NEAR and draw(st.booleans()):
            fields[f.name] = draw(_NEAR[f.name])
        else:
            fields[f.name] = draw(_TYPES[f.type])
    if name == "fw_block" and draw(st.booleans()):
        fields["block_crc32"] = REF.crc32(fields["data"])
    try:
        frame = REF.request_frame(dst, draw(st.integers(0, 255)), name, **fields)
    except REF.PayloadError:          # a near value outside its type: the plain one
        return ("raw", REF.encode_frame(REF.Frame(2, dst, 0, 1, spec.code, b"")))
    return ("raw", REF.encode_frame(frame))


#: The reference board's gate tables (its defaults, given explicitly to both boards).
GATE_NOMINAL = REF.GateCalibration.from_rc(2200, 6_000_000)
GATE_MEASURED = REF.GateCalibration.from_rc(2310, 6_000_000, -20)


def _gate_fields(cal) -> tuple:
    f = cal.fields()
    return tuple(f["charge_gate_uv"] + f["charge_nv_per_us"] + f["discharge_gate_uv"]
                 + f["discharge_nv_per_us"] + [f["leak_uv_per_s"]])


class _RefHAL:
    """The HAL the reference board implies: its actuator's grid, its sensors, its gate
    table (nominal until calibrate_actuator measures GATE_MEASURED; kept by the HAL, so
    across every reset and power cycle)."""

    def __init__(self, act, nodes):
        self.act, self.node_uv, self.cal = act, nodes, [0, 0, 0, 0]
        self.gate = (0, _gate_fields(GATE_NOMINAL))

    def actuator_calibration(self):
        return self.gate

    def calibrate_actuator(self):
        self.gate = (1, _gate_fields(GATE_MEASURED))
        return True

    def set_state(self, state, previous, learn=False):
        return self.act.reach(state)

    def read_nodes_into(self, buf):
        buf[:] = self.node_uv

    def load_calibration(self):
        return list(self.cal)

    def store_calibration(self, offsets):
        self.cal = list(offsets)
        return True

    uptime_ms = staticmethod(lambda: 123_456)
    restart_clock = staticmethod(lambda: None)
    supply_uv = staticmethod(lambda: 3_300_000)
    temperature_mdegc = staticmethod(lambda: 25_000)
    self_test = staticmethod(lambda: True)


@pytest.fixture(scope="module")
def fw2():
    sys.path.insert(0, str(FW))
    try:
        import tr_board2
        import tr_store2
        yield tr_board2, tr_store2
    finally:
        sys.path.remove(str(FW))


@settings(deadline=None, max_examples=300)
@given(ops=st.lists(_op(), min_size=1, max_size=40), kind=st.sampled_from([1, 2]),
       address=st.sampled_from([7, 248]))
def test_the_firmware_answers_as_the_reference_board_does(fw2, tmp_path_factory, ops, kind, address):
    """Random sessions (every command with fields in and out of range, broadcast and
    unicast, to 248 and to another board, bad frames, the version-1 probe, learn-trigger
    pulses, power cycles) on tr_board2 and on the reference board: the same reply bytes,
    at the same start, or none."""
    tr_board2, tr_store2 = fw2
    nodes = (1_300_000, 1_000_000, 1_150_000, 1_000_000)
    res = 1000 if kind == 2 else 1
    ref = REF.ReferenceBoard(UIDS[0], kind, address=address, node_uv=nodes, uptime_ms=123_456, resolution=res,
                             initial_state=None, gate_nominal=GATE_NOMINAL, gate_measured=GATE_MEASURED)
    flash = tr_store2.Flash(str(tmp_path_factory.mktemp("diff")) + "/")
    if address != 248:
        tr_store2.AddressStore(flash).store(address)
    hal = _RefHAL(ref.actuator, list(nodes))
    make = lambda: tr_board2.Board2(hal, flash, UIDS[0], kind, resolution=res)  # noqa: E731
    fw = make()
    for i, op in enumerate(ops):
        if op[0] == "power":
            ref.power_cycle()
            fw = make()
            continue
        if op[0] == "trigger":
            ref.trigger(op[1])
            fw.trigger(op[1])
            continue
        want = ref.handle(op[1])
        got = fw.handle(op[1])
        if want is not None:
            f = REF.decode_any(want.wire)
            event(f"reply to {f.cmd & 0x7F}, status {f.payload[0]}")
        assert (got, fw.reply_start_us if got is not None else None) == (
            (want.wire, want.start_us) if want is not None else (None, None)), (i, op[1].hex())
