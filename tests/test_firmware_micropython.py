"""The MicroPython board firmware (firmware/micropython) on the golden vectors and a fuzz.

One test driver, ``firmware/micropython/wasm/driver.py``, exercises the firmware modules and
prints what they produce as JSON lines; this module compares those lines with the golden
vectors (``firmware/protocol/vectors``) and with the host's reference implementation. The
driver runs in two interpreters:

* **MicroPython 1.27**, the official WebAssembly port (npm package
  ``@micropython/micropython-webassembly-pyscript``), through ``node
  firmware/micropython/run_wasm.mjs``, started once for the whole module (every suite and a
  100,000-frame fuzz). Skipped only when node or the npm package is missing; install with
  ``npm ci --prefix firmware/micropython``.
* **CPython**, in a subprocess, always: the host's emulator runs the same board class there.

Suites: frames (valid and malformed, buffer and stream), rules (generator draws; every case
through the pure functions and through a whole board over the wire), commands (every
exchange, per chunk and as a byte stream), main_loop (``main.run`` on the simulated HAL:
replies with DE asserted, slot timing of broadcast replies, learn-trigger edges, watchdog),
calibration_file, machine_hal (the real HAL against a stand-in ``machine`` module) and the
fuzz (the firmware's decoder and splitter against an independent decoder in the driver).
"""

from __future__ import annotations

import ast
import importlib
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from instruments.bus import protocol as REF

ROOT = Path(__file__).resolve().parents[1]
FW = ROOT / "firmware" / "micropython"
VECTORS = ROOT / "firmware" / "protocol" / "vectors"
PROTOCOL = json.loads((ROOT / "firmware" / "protocol" / "protocol.json").read_text())
RUNNER = FW / "run_wasm.mjs"
WASM_PKG = FW / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
NODE = shutil.which("node")
FIRMWARE_FILES = ["tr_protocol.py", "tr_rule.py", "tr_board.py", "hal.py", "main.py", "tr_config.py",
                  "tr_adc.py", "tr_trigger.py", "tr_gate.py", "tr_digipot.py"]

FUZZ_N = 100_000
FUZZ_SEED = 20260
TIMEOUT_S = 600

HAVE_WASM = NODE is not None and WASM_PKG.exists()
WASM_SKIP = ("node is not on PATH" if NODE is None else
             "MicroPython WebAssembly port missing: npm ci --prefix firmware/micropython")


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


FRAMES = _load("frames.json")
RULES = _load("rules.json")
COMMANDS = _load("commands.json")


def _group(stdout: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in stdout.splitlines():
        if line.strip():
            obj = json.loads(line)
            out.setdefault(obj["suite"], []).append(obj)
    assert "done" in out, "driver did not finish:\n" + stdout[-4000:]
    return out


@pytest.fixture(scope="module")
def micropython(tmp_path_factory) -> dict[str, list[dict]]:
    """Every suite once on MicroPython's WebAssembly port (one node process)."""
    if not HAVE_WASM:
        pytest.skip(WASM_SKIP)
    res = subprocess.run(
        [NODE, str(RUNNER), "--vectors", str(VECTORS), "--fuzz-n", str(FUZZ_N),
         "--fuzz-seed", str(FUZZ_SEED)],
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path_factory.mktemp("wasm"))
    assert res.returncode == 0, f"run_wasm.mjs exited {res.returncode}:\n{res.stderr[-4000:]}"
    assert not res.stderr.strip(), res.stderr[-4000:]
    return _group(res.stdout)


@pytest.fixture(scope="module")
def cpython(tmp_path_factory) -> dict[str, list[dict]]:
    """Every suite once on CPython (a subprocess, so the firmware's flat module names
    stay out of this process)."""
    tmp = tmp_path_factory.mktemp("cpython_fw")
    args = json.dumps({"vectors": str(VECTORS), "tmp": str(tmp), "fuzz_n": FUZZ_N,
                       "fuzz_seed": FUZZ_SEED})
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "import driver; driver.main(sys.argv[3])")
    res = subprocess.run([sys.executable, "-c", code, str(FW), str(FW / "wasm"), args],
                         capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp)
    assert res.returncode == 0, f"driver exited {res.returncode}:\n{res.stderr[-4000:]}"
    return _group(res.stdout)


@pytest.fixture(params=["micropython", "cpython"])
def run(request) -> dict[str, list[dict]]:
    return request.getfixturevalue(request.param)


def _by_name(results: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in results}


# ---------------------------------------------------------------- interpreter


def test_runs_on_micropython_1_27(micropython):
    info = micropython["info"][0]
    assert info["implementation"] == "micropython"
    assert info["version"] == [1, 27, 0]


@pytest.mark.skipif(not HAVE_WASM, reason=WASM_SKIP)
def test_fits_a_microcontroller_heap(tmp_path):
    """The board's code, the driver and the command vectors run in a 128 KiB MicroPython
    heap (an RP2040 build has about 190 KiB)."""
    res = subprocess.run(
        [NODE, str(RUNNER), "--vectors", str(VECTORS), "--heap-kb", "128",
         "--suites", "commands,main_loop,machine_hal"],
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr[-4000:]
    got = _group(res.stdout)
    want = {c["name"]: [ex["reply_hex"] for ex in c["exchanges"]] for c in COMMANDS["cases"]}
    assert {r["name"]: r["handle"] for r in got["commands"]} == want


# ---------------------------------------------------------------- frames


def test_valid_frames(run):
    got = _by_name(run["frames_valid"])
    assert set(got) == {c["name"] for c in FRAMES["valid"]}
    for case in FRAMES["valid"]:
        r = got[case["name"]]
        name = case["name"]
        assert r["error"] == "ok", name
        assert r["frame_hex"] == case["frame_hex"], name
        assert r["fields"] == [case["version"], case["dst"], case["src"], case["seq"], case["cmd"]], name
        assert r["payload_hex"] == case["payload_hex"], name
        assert r["encoded_hex"] == case["wire_hex"], name
        assert r["stream"] == [["ok", case["frame_hex"]]], name


def test_malformed_frames(run):
    got = _by_name(run["frames_malformed"])
    assert set(got) == {c["name"] for c in FRAMES["malformed"]}
    for case in FRAMES["malformed"]:
        r = got[case["name"]]
        assert r["error"] == case["error"], case["name"]
        # on a stream (a 0x00 inside the chunk splits it): as the host's splitter says
        wire = bytes.fromhex(case["wire_hex"])
        want = [item.name for item in REF.split_stream(wire)]
        assert r["stream"] == want, case["name"]
        if 0 not in wire[:-1]:
            assert want == [case["error"]]


# ---------------------------------------------------------------- rules


def test_prng_draws(run):
    got = {r["uid_hex"]: r for r in run["prng"]}
    for case in RULES["prng"]:
        r = got[case["uid_hex"]]
        assert r["seed"] == case["seed"], case["uid_hex"]
        assert r["draws"] == case["draws"], case["uid_hex"]


def test_rule_cases(run):
    got = _by_name(run["rules"])
    assert set(got) == {c["name"] for c in RULES["cases"]}
    for case in RULES["cases"]:
        r = got[case["name"]]
        name = case["name"]
        if "draw" in case:
            assert r["draw"] == case["draw"], name
        for key in ("dv_free_uv", "dv_clamped_uv", "contrast_uv2", "updated", "state_after"):
            assert r[key] == case[key], (name, key, r[key], case[key])
        # the same case through a whole board over the wire
        assert r["board_configure_status"] == 0, name
        assert r["board_drops"] == [case["dv_free_uv"], case["dv_clamped_uv"]], name
        assert r["board_state_after"] == case["state_after"], name
        assert r["board_updated"] == case["updated"], name
        assert r["board_actuator"] == case["state_after"], name


# ---------------------------------------------------------------- commands


def test_command_exchanges(run):
    got = _by_name(run["commands"])
    assert set(got) == {c["name"] for c in COMMANDS["cases"]}
    for case in COMMANDS["cases"]:
        r = got[case["name"]]
        want = [ex["reply_hex"] for ex in case["exchanges"]]
        for i, (a, b) in enumerate(zip(r["handle"], want)):
            assert a == b, (case["name"], i, case["exchanges"][i]["request_hex"], a, b)
        assert len(r["handle"]) == len(want)
        assert r["stream"] == [[w] if w is not None else [] for w in want], case["name"]


def test_stream_vectors_after_line_noise(run):
    """Line noise, then frames with a 0x00 before them as well as after (what the host
    sends): the board answers every frame that had its leading 0x00."""
    got = {r["name"]: r["replies"] for r in run["streams"]}
    assert got == {c["name"]: c["replies_hex"] for c in COMMANDS["streams"]}


# ---------------------------------------------------------------- main loop and HAL


def _decode(hexstr: str) -> REF.Frame:
    return REF.decode_frame(bytes.fromhex(hexstr))


def test_main_loop(run):
    r = run["main_loop"][0]
    assert all(de == 1 for _, _, de in r["tx"]), "a reply was written with DE low"
    frames = [_decode(h) for _, h, _ in r["tx"]]
    assert [f.seq for f in frames] == [1, 2, 3, 6, 7]
    assert all(f.src == 6 and f.dst == 0 for f in frames)
    assert REF.unpack_reply("read_state", frames[0].payload) == {"status": 0, "state": 40}
    assert REF.unpack_reply("configure_rule", frames[1].payload) == {"status": 0}
    ident = REF.unpack_reply("identify", frames[2].payload)
    assert ident["uid"] == bytes.fromhex("4a1c00e3b2770f01") and ident["kind"] == 1
    # the slotted broadcast reply goes out exactly slot 6 (6 x 2 ms) after its request
    # ended (the read that brought the request's final 0x00)
    req3 = r["requests"][2]
    end = "".join(d for _, d in r["reads"]).index(req3) + len(req3)
    seen = 0
    for t_end, data in r["reads"]:
        seen += len(data)
        if seen >= end:
            break
    assert r["tx"][2][0] == t_end + 6 * 2000
    # broadcast set_state 45, then two learn-trigger edges (tap rule, contrast > 0)
    assert REF.unpack_reply("read_state", frames[3].payload)["state"] == 47
    tel = REF.unpack_reply("read_telemetry", frames[4].payload)
    assert (tel["frames_ok"], tel["frames_bad"], tel["updates"], tel["last_error"]) == (6, 0, 2, 0)
    assert r["state"] == 47 and r["updates"] == 2
    assert r["actuations"] == [[40, None], [45, 40], [46, 45], [47, 46]]
    assert r["wdt_feeds"] == 8 * 5 + 4 + 8   # once per pass of the loop


def test_calibration_file(run):
    r = run["calibration_file"][0]
    offs = [-5, 7, 2147483647, -2147483648]
    assert r["store"] == "00"
    assert r["after_reset"] == offs
    assert r["after_power_cycle"] == offs
    rec = bytes.fromhex(r["record_hex"])
    assert rec[:4] == b"TRC1" and list(struct.unpack("<4i", rec[4:20])) == offs
    assert int.from_bytes(rec[20:], "big") == REF.crc16(rec[:20])
    assert r["corrupt"] == [0, 0, 0, 0]
    assert r["failing_store"] == "0b"      # storage (11)
    assert r["failing_kept"] == [0, 0, 0, 0]


def test_machine_hal(run):
    r = run["machine_hal"][0]
    assert r["uid_hex"] == "6050403020100000"   # 6-byte unique_id reversed, padded
    # the ADS131M04's 24-bit codes (143 nV each), no divider
    want = [600000, 500000, 550000, 500000]
    assert all(abs(a - b) <= 1 for a, b in zip(r["nodes_uv"], want)), r["nodes_uv"]
    assert r["x9c_power_on_steps"] == 100 + 30   # to tap 0, then up to the state
    assert r["wdt_init"] == [["wdt_init", 2000]]
    assert r["irq"] == [["irq", 22, 3]]          # both edges of the learn line (GP22)
    assert r["de_after"] == 0
    assert all(de == 1 for _, de in r["writes"])
    replies = [_decode(h) for h, _ in r["writes"]]
    assert [f.seq for f in replies] == [1, 2, 3, 4]
    drops = REF.unpack_reply("sample_drops", replies[0].payload)
    assert abs(drops["dv_free_uv"] - 100000) <= 2 and abs(drops["dv_clamped_uv"] - 50000) <= 2
    assert REF.unpack_reply("read_state", replies[2].payload)["state"] == 30
    assert REF.unpack_reply("store_calibration", replies[3].payload) == {"status": 0}
    assert r["calibration_reloaded"] == [1, 2, 3, 4]
    assert r["wdt_feeds"] == 3
    # one pulse on the learn line: tap rule, contrast > 0 (offsets 1, 2, 3, 4 do not change that)
    assert r["state_after_edge"] == 31
    assert r["x9c_steps_after_edge"] == 1 and r["x9c_ud_after_edge"] == 1
    # a 64-tap X9C asked for tap 80 reports the tap it reached
    assert REF.unpack_reply("set_state", _decode(r["x9c_beyond_taps"]).payload)["state"] == 63
    # MOSFET: the reported state is the gate measured, within a few read-back codes
    state, true_uv = r["gate_power_on"]
    assert abs(true_uv - 3_000_000) < 2_000 and abs(state - true_uv) < 2_000
    reply = REF.unpack_reply("set_state", _decode(r["gate_writes"][0][0]).payload)["state"]
    assert reply == r["gate_state"] and abs(r["gate_true_uv"] - 2_500_000) < 2_000
    assert abs(reply - r["gate_true_uv"]) < 2_000
    assert r["no_wdt"] is True


# ---------------------------------------------------------------- fuzz


def test_fuzz(run, record_property):
    f = run["fuzz"][0]
    assert f["n"] == FUZZ_N
    assert f["mismatches"] == [], f["mismatches"][:5]
    assert f["wrong_crc_accepted"] == 0
    assert f["field_errors"] == 0
    assert f["stream_batches_mismatched"] == 0
    assert f["stream_chunks"] >= FUZZ_N
    assert set(f["counts"]) == {"ok", "bad_cobs", "bad_crc", "too_short", "too_long", "bad_version"}
    assert sum(f["counts"].values()) == FUZZ_N
    assert f["accepted"] == f["counts"]["ok"] > FUZZ_N // 10
    rate = FUZZ_N / max(f["seconds"], 1e-9)
    record_property("fuzz_frames_per_s", round(rate))
    print(f"fuzz: {FUZZ_N} frames in {f['seconds']:.2f} s ({rate:,.0f} frames/s, "
          f"{f['stream_chunks']} stream chunks)")


def test_interpreters_agree(micropython, cpython):
    """Every result, the fuzz's counts included, is the same on MicroPython and CPython."""
    skip = {"info", "timing", "done"}

    def strip(d):
        return {k: {tuple(sorted((kk, json.dumps(vv, sort_keys=True)) for kk, vv in r.items()
                              if kk != "seconds")) for r in v}
                for k, v in d.items() if k not in skip}

    assert strip(micropython) == strip(cpython)


# ---------------------------------------------------------------- sources and constants


@pytest.mark.parametrize("name", FIRMWARE_FILES)
def test_source_is_micropython_friendly(name):
    """No f-strings, annotations, dataclasses, typing, enum, __future__ or signed
    int.from_bytes (which MicroPython ignores) in the board's modules."""
    tree = ast.parse((FW / name).read_text(), name)
    banned_modules = {"typing", "dataclasses", "enum", "__future__", "abc", "functools"}
    for node in ast.walk(tree):
        assert not isinstance(node, ast.JoinedStr), f"{name}:{node.lineno}: f-string"
        assert not isinstance(node, ast.AnnAssign), f"{name}:{node.lineno}: annotation"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.returns is None, f"{name}:{node.lineno}: return annotation"
            for a in node.args.args + node.args.kwonlyargs:
                assert a.annotation is None, f"{name}:{node.lineno}: annotation"
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & banned_modules, name
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in banned_modules, name
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "from_bytes":
            assert not any(k.arg == "signed" for k in node.keywords), name


@pytest.fixture(scope="module")
def fw_modules():
    sys.path.insert(0, str(FW))
    try:
        yield importlib.import_module("tr_protocol"), importlib.import_module("tr_rule")
    finally:
        sys.path.remove(str(FW))


def test_constants_match_protocol_json(fw_modules):
    P, R = fw_modules
    assert P.PROTOCOL_VERSION == PROTOCOL["protocol_version"]
    assert P.PROTOCOL_MINOR == PROTOCOL["protocol_minor"]
    assert P.MAX_PAYLOAD == PROTOCOL["frame"]["max_payload"]
    assert P.REPLY_BIT == PROTOCOL["frame"]["reply_bit"]
    assert (P.ADDR_HOST, P.ADDR_BOARD_MIN, P.ADDR_BOARD_MAX, P.ADDR_BROADCAST) == tuple(
        PROTOCOL["addresses"][k] for k in ("host", "board_min", "board_max", "broadcast"))
    assert {n: i for i, n in enumerate(P.ERROR_NAMES)} == PROTOCOL["errors"]
    assert {n: i for i, n in enumerate(R.RULE_NAMES)} == PROTOCOL["rules"]
    assert {v: k for k, v in R.KIND_NAMES.items()} == PROTOCOL["board_kinds"]
    assert R.GAIN_SHIFT == PROTOCOL["gain_shift"]
    assert R.CONTRAST_LIMIT_UV2 == PROTOCOL["contrast_limit_uv2"]
    assert R.GAIN_LIMIT == PROTOCOL["gain_limit"]
    assert R.PROBABILITY_ONE == PROTOCOL["probability_one"]
    codes = {"u8": "B", "u32": "I", "i32": "i", "i64": "q", "8s": "8s"}
    bc = {"slotted": P.BC_SLOTTED, "silent": P.BC_SILENT, "refused": P.BC_REFUSED}
    assert len(P.COMMANDS) == len(PROTOCOL["commands"])
    for name, spec in PROTOCOL["commands"].items():
        fw_name, req, rep, fw_bc = P.COMMANDS[spec["code"]]
        assert fw_name == name
        assert req == "<" + "".join(codes[f.split(":")[1]] for f in spec["request"]), name
        assert rep == "<" + "".join(codes[f.split(":")[1]] for f in spec["reply"]), name
        assert fw_bc == bc[spec["broadcast"]], name
        assert P.REQUEST_SIZES[spec["code"]] == struct.calcsize(req), name


@settings(deadline=None)
@given(st.integers(-(2**38), 2**38), st.integers(0, 2**40 - 1))
def test_the_firmware_gain_split_equals_the_exact_rounded_quotient(fw_modules, c, gain):
    """tr_rule.gain_delta (63-bit steps, for long-long ports) against Python's big integers:
    c * gain / 2^48 to nearest, halves away from zero, symmetric in sign."""
    _, R = fw_modules
    q = (abs(c) * gain + 2**47) >> 48
    assert R.gain_delta(c, gain) == (q if c >= 0 else -q) == REF.gain_delta(c, gain)
    assert R.gain_delta(-c, gain) == -R.gain_delta(c, gain)


def test_the_firmware_is_1_2_0_of_protocol_1_1(fw_modules):
    P, R = fw_modules
    assert R.GAIN_LIMIT == 2**40
    assert importlib.import_module("tr_board").FW_VERSION == REF.FIRMWARE_VERSION == (1, 2, 0)
    assert (P.PROTOCOL_VERSION, P.PROTOCOL_MINOR) == (REF.PROTOCOL_VERSION, REF.PROTOCOL_MINOR) == (1, 1)


def _drift_reference(n: int, seed: int, gain: int, minor: int) -> tuple[int, list]:
    """The driver's drift suite on the host's reference rule: the same generator and inputs
    (driver.drift_nodes, written out again here)."""
    g = REF.Xorshift32(seed)
    total, first = 0, []
    for i in range(n):
        d = 200_000 + g.next() % 200_000
        e = [(g.next() >> 8) % 401 - 200 for _ in range(4)]
        nodes = [1_000_000 + d + e[0], 1_000_000 + e[1], 1_000_000 + d + e[2], 1_000_000 + e[3]]
        c = REF.contrast_uv2(*REF.drops_uv(nodes))
        delta = REF.gain_delta_int64(c, gain, minor)
        total += delta
        if i < 64:
            first.append([c, delta])
    return total, first


def test_the_mean_gate_change_is_zero_with_nothing_to_learn(run):
    """100,000 gate-charging updates (Gen-2 gain at 100 us) of the firmware's own rule
    (tr_rule.learn_step, on MicroPython's WebAssembly port and on CPython), the free and the
    clamped edge carrying the same drop with independent read-out noise: nothing to learn.
    The mean change per update is within 0.01 uV of zero, and equals the host reference's
    on the same inputs; the floor of protocol minor 0 drifts by about -1/2 uV per update
    there. (All 100,000 updates run on MicroPython too: about 5 s.)"""
    r = run["drift"][0]
    assert r["n"] == 100_000 and r["gain"] == REF.gate_gain(100e-6, 1e3, 2.2e-6, 0.1)
    assert abs(r["sum"] / r["n"]) < 0.01
    assert r["sum_abs"] > r["n"] // 10  # the noise does move the gate
    total, first = _drift_reference(r["n"], r["seed"], r["gain"], 1)
    assert (r["sum"], r["first"]) == (total, first)
    floor_total, _ = _drift_reference(r["n"], r["seed"], r["gain"], 0)
    assert floor_total / r["n"] < -0.4


def test_splitter_overflow_matches_reference(fw_modules):
    """Long chunks (past the splitter's 96-byte buffer) classify as the host's splitter
    does, whatever the piece sizes."""
    P, _ = fw_modules
    import random
    rng = random.Random(7)
    for _ in range(3000):
        n = rng.randrange(60, 400)
        c = bytearray()
        while len(c) < n:
            code = rng.choice([255, rng.randrange(1, 255)])
            c.append(code)
            c.extend(rng.randrange(1, 256) for _ in range(code - 1))
        if rng.random() < 0.5:
            del c[n:]
        stream = bytes(c) + b"\x00" + REF.encode_frame(REF.Frame(1, 3, 0, 1, 2, b"\x00\x01"))
        want = [item.name if isinstance(item, REF.FrameError) else "ok"
                for item in REF.split_stream(stream)]
        sp = P.FrameSplitter()
        got = []
        i = 0
        while i < len(stream):
            k = rng.randrange(1, 50)
            got += [P.ERROR_NAMES[e] for e, _ in sp.feed(stream[i:i + k])]
            i += k
        assert got == want, bytes(c).hex()
