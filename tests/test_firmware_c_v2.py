"""The protocol-2 C core (firmware/c/tr2_*.c): a strict build, every golden vector of
protocol 2, and properties against the host's reference board.

The core (twinrig_core2.h; tr2_codec.c, tr2_board.c, tr2_update.c over protocol 1's
tr_codec.c and tr_rule.c, whose CRC-16, COBS, generator and rule PROTOCOL.md keeps) is
compiled with ``gcc -std=c99 -Wall -Wextra -Werror -pedantic`` at -O0 and -O2, and linked
with board_sim2.c, a host harness that simulates boards on one bus. Every case of every
file of firmware/protocol/vectors/v2/ is fed to it through tests/firmware_c2_lines.py
(shared with the QEMU runs): frames valid and malformed, the generator and the rule on the
closed-loop actuator, every reply time, discover's hash, the command sessions (reply bytes
and start times, board by board) and the firmware updates, on an -O2 build and on an
AddressSanitizer + UBSan build. Hypothesis then feeds random chunks and random sessions to
the sanitised build and compares with instruments/bus/v2's decoder and ReferenceBoard, and
random gate tables to tr2_gate_slope_nv_per_us, compared with GateCalibration's rule.
Skipped only when gcc is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import firmware_c2_lines as v2lines
from firmware_c_lines import C_DIR, STRICT, chunk_of, hex_arg
from instruments.bus import v2
from instruments.bus.v2.framing import FrameError, decode_any

SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
GCC = shutil.which("gcc")
pytestmark = pytest.mark.skipif(GCC is None, reason="gcc is not on PATH")
HANG_GUARD_S = 120
BATCH_NAMES = [b.name for b in v2lines.golden_batches()]


def _gcc(args: list[str], cwd: Path) -> None:
    res = subprocess.run([GCC, *args], cwd=cwd, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert res.returncode == 0 and not res.stderr.strip(), f"gcc {' '.join(args)}:\n{res.stdout}{res.stderr}"


class Harness:
    """board_sim2 run on a batch of lines; returns its answer lines."""

    def __init__(self, exe: Path, env: dict | None = None) -> None:
        self.exe, self.env = exe, env

    def run(self, lines: list[str]) -> list[str]:
        res = subprocess.run([str(self.exe)], input="".join(line + "\n" for line in lines), capture_output=True,
                             text=True, timeout=HANG_GUARD_S, env=self.env)
        assert res.returncode == 0 and not res.stderr, f"board_sim2 exited {res.returncode}:\n{res.stderr[-4000:]}"
        out = res.stdout.splitlines()
        assert len(out) == len(lines), (len(out), len(lines))
        return out


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("firmware_c_v2")


@pytest.fixture(scope="module")
def harness(build_dir) -> Harness:
    """The core compiled warning-free at -O0 and -O2, the harness linked at -O2."""
    srcs = [str(C_DIR / s) for s in v2lines.CORE_SOURCES_V2]
    for opt in ("-O0", "-O2"):
        for src in srcs:
            _gcc([*STRICT, opt, "-c", src, "-o", str(build_dir / f"{Path(src).stem}{opt}.o")], build_dir)
    exe = build_dir / "board_sim2"
    _gcc([*STRICT, "-O2", *srcs, str(C_DIR / v2lines.HARNESS_V2), "-o", str(exe)], build_dir)
    return Harness(exe)


@pytest.fixture(scope="module")
def san_harness(build_dir) -> Harness:
    """The core and harness under AddressSanitizer and UBSan (any report ends the run)."""
    exe = build_dir / "board_sim2_san"
    srcs = [str(C_DIR / s) for s in [*v2lines.CORE_SOURCES_V2, v2lines.HARNESS_V2]]
    _gcc([*STRICT, *SANITIZE, *srcs, "-o", str(exe)], build_dir)
    return Harness(exe, dict(os.environ, **SAN_ENV))


@pytest.fixture(params=["O2", "asan+ubsan"])
def any_harness(request, harness, san_harness) -> Harness:
    return harness if request.param == "O2" else san_harness


# ------------------------------------------------------------------------- build


def test_core_builds_warning_free_with_strict_flags(harness, build_dir):
    for src in v2lines.CORE_SOURCES_V2:
        for opt in ("-O0", "-O2"):
            assert (build_dir / f"{Path(src).stem}{opt}.o").stat().st_size > 0
    assert harness.exe.exists()


def test_core_needs_nothing_from_libc(harness, build_dir):
    """No heap, no stdio, no floating point, no libc: the core's objects reference only
    each other at -O0 and -O2 (the Cortex-M0+ check, which allows libgcc's helpers, is
    tests/test_firmware_arm_v2.py)."""
    for name in [*v2lines.CORE_SOURCES_V2, *v2lines.HEADERS_V2]:
        code = re.sub(r"/\*.*?\*/", "", (C_DIR / name).read_text(), flags=re.S)
        for banned in ("malloc", "calloc", "realloc", "free", "stdio", "stdlib", "string", "float", "double"):
            assert not re.search(rf"\b{banned}\b", code), f"{name} uses {banned}"
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm is not on PATH")
    for opt in ("-O0", "-O2"):
        objs = [str(build_dir / f"{Path(s).stem}{opt}.o") for s in v2lines.CORE_SOURCES_V2]
        out = subprocess.run([nm, *objs], capture_output=True, text=True, check=True).stdout
        undefined = {l.split()[-1] for l in out.splitlines() if l.split()[-2:-1] == ["U"]}
        defined = {l.split()[-1] for l in out.splitlines() if len(l.split()) == 3}
        assert undefined <= defined, f"{opt} needs {sorted(undefined - defined)}"


def test_the_command_table_is_protocol_2_json_s():
    """tr2_board.c's table (request length, broadcast handling, the reply a slot is sized
    for) row by row against protocol-2.json, the machine-readable form of PROTOCOL.md's
    "Commands"."""
    rows = re.findall(r"\{(\d+)u, (?:BC_(\w+)|0u), (\d+)u\},?\s*/\* (\d+) (\w+) \*/",
                      (C_DIR / "tr2_board.c").read_text())
    table = {int(code): (name, int(n), mode.lower(), int(slot)) for n, mode, slot, code, name in rows}
    want = {spec["code"]: (name, _request_size(spec), spec["broadcast"], spec.get("slot_reply_payload") or 0)
            for name, spec in v2lines.PROTOCOL_V2["commands"].items()}
    assert table == want


def test_every_core_file_stays_under_600_lines():
    for name in [*v2lines.CORE_SOURCES_V2, *v2lines.HEADERS_V2, v2lines.HARNESS_V2]:
        n = len((C_DIR / name).read_text().splitlines())
        assert n <= 600, f"{name}: {n} lines"


# ------------------------------------------------------------------------- golden vectors


@pytest.mark.parametrize("name", BATCH_NAMES)
def test_golden_vectors_v2(any_harness, name):
    """Every case of the vector set, answer by answer, on the -O2 and the sanitised build."""
    batch, = [b for b in v2lines.golden_batches() if b.name == name]
    batch.verify(any_harness.run(batch.lines))


def test_every_case_of_every_vector_file_is_fed():
    """The batches hold every case: a board line per board of every session and rule case,
    a send per board that heard each request, a line per timing value."""
    v = v2lines.load_all()
    lines = {b.name: b.lines for b in v2lines.golden_batches(v)}
    frames = v["frames.json"]
    assert len(lines["frames valid"]) == 2 * len(frames["valid"])
    assert len(lines["frames malformed"]) == 4 * len(frames["malformed"])
    assert len(lines["rule cases"]) == 2 * len(v["rules.json"]["cases"])
    assert len(lines["prng"]) == len(v["rules.json"]["prng"])
    t = v["timing.json"]
    assert len(lines["timing"]) == (sum(len(s["reply_start_us"]) for b in t["bauds"] for s in b["slotted"].values())
                                    + sum(1 + len(d["slots"]) for d in t["discover"]) + len(t["fmix32"]))
    for name, cases in (("command cases", v["commands.json"]["cases"]), ("update cases", v["update.json"]["cases"])):
        boards = sum(len(c["boards"]) for c in cases)
        heard = sum(len(ex.get("heard_by", c["boards"])) for c in cases for ex in c["exchanges"] if "event" not in ex)
        events = sum(1 for c in cases for ex in c["exchanges"] if "event" in ex)
        sends = sum(1 for line in lines[name] if line.startswith("send"))
        assert sum(1 for line in lines[name] if line.startswith("board")) == boards
        assert sum(1 for line in lines[name] if line == "bus") == len(cases)
        assert sends >= heard and len(lines[name]) >= boards + heard + events


def _one_byte_changed(hex_str: str, at: int) -> str:
    b = bytearray.fromhex(hex_str)
    b[at] ^= 0x01
    return b.hex()


def _changed(which: str) -> tuple[dict, str, str]:
    """The vectors with one expected value changed, the batch it is in and the case's name."""
    v = v2lines.load_all()
    if which == "command reply byte":
        c = v["commands.json"]["cases"][2]
        r = next(r for ex in c["exchanges"] if "replies" in ex for r in ex["replies"])
        r["reply_hex"] = _one_byte_changed(r["reply_hex"], -2)
        return v, "command cases", c["name"]
    if which == "reply start time":
        c = v["commands.json"]["cases"][1]
        r = next(r for ex in c["exchanges"] if "replies" in ex for r in ex["replies"] if r["start_us"] > 348)
        r["start_us"] += 1
        return v, "command cases", c["name"]
    if which == "update reply byte":
        c = v["update.json"]["cases"][1]
        r = [r for ex in c["exchanges"] if "replies" in ex for r in ex["replies"]][-1]
        r["reply_hex"] = _one_byte_changed(r["reply_hex"], 8)
        return v, "update cases", c["name"]
    if which == "calibration reply byte":  # a measured slope in read_actuator_calibration's reply
        c = next(c for c in v["commands.json"]["cases"] if c["name"] == "actuator_calibration_mosfet")
        r = [r for ex in c["exchanges"] if "replies" in ex for r in ex["replies"] if len(r["reply_hex"]) > 150][2]
        r["reply_hex"] = _one_byte_changed(r["reply_hex"], 40)
        return v, "command cases", c["name"]
    if which == "malformed error":
        f = v["frames.json"]["malformed"][0]
        f["error"] = "bad_crc"
        return v, "frames malformed", f["name"]
    c = v["rules.json"]["cases"][3]
    c["learns"][-1]["residue"] += 1
    return v, "rule cases", c["name"]


@pytest.mark.parametrize("which", ["command reply byte", "reply start time", "update reply byte",
                                   "calibration reply byte", "malformed error", "rule residue"])
def test_one_changed_expected_value_fails_and_names_the_case(harness, which):
    """Negative control: the same run checked against vectors with one value changed fails,
    and the message names the case."""
    v, batch_name, case = _changed(which)
    batch, = [b for b in v2lines.golden_batches(v) if b.name == batch_name]
    with pytest.raises(AssertionError, match=re.escape(case)):
        batch.verify(harness.run(batch.lines))


def test_crc32_is_iso_hdlc(harness):
    """CRC-32/ISO-HDLC: the catalogue's check value and zlib's on the update images' first
    kilobyte."""
    img = bytes.fromhex(v2lines.load("update.json")["images"]["image"]["data_hex"])
    data = [b"123456789", b"", img[:1000], img[1000:2000]]
    out = harness.run([f"crc32 {hex_arg(d)}" for d in data])
    assert out[0] == str(0xCBF43926)
    assert out == [str(zlib.crc32(d)) for d in data]


def test_a_bad_line_ends_the_harness_with_status_2(harness):
    res = subprocess.run([str(harness.exe)], input="fmix 1\nbogus 1\n", capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert (res.returncode, res.stdout) == (2, f"{v2.fmix32(1)}\n")
    assert "unknown command" in res.stderr


# ------------------------------------------------------------------------- properties


def _decoded_by_host(chunk: bytes) -> str:
    """What the board's receive checks must make of a chunk, by the host's decoder."""
    try:
        f = decode_any(chunk)
    except FrameError as exc:
        return f"err {int(exc.code)}"
    if f.version != 2 and not (f.version == 1 and f.cmd == 1 and not f.payload):
        return f"err {int(v2.Error.BAD_VERSION)}"
    return f"ok {f.version} {f.dst} {f.src} {f.seq} {f.cmd} {hex_arg(bytes(f.payload))}"


def _frame_chunks() -> st.SearchStrategy[bytes]:
    """Chunks without 0x00: valid frames of any version, payload and length, those with a
    byte changed, cut short or lengthened, and noise."""
    frames = st.builds(lambda ver, dst, seq, cmd, payload: chunk_of(v2.encode_frame(v2.Frame(ver, dst, 0, seq, cmd,
                                                                                             payload))),
                       st.sampled_from([2, 2, 2, 1, 0, 3]), st.integers(0, 255), st.integers(0, 255),
                       st.integers(0, 255), st.binary(max_size=247))
    mutated = st.tuples(frames, st.integers(0, 300), st.integers(1, 255)).map(
        lambda t: t[0][:t[1] % len(t[0])] + bytes([t[2]]) + t[0][t[1] % len(t[0]) + 1:])
    cut = st.tuples(frames, st.integers(1, 300)).map(lambda t: t[0][:t[1] % len(t[0]) + 1])
    noise = st.binary(min_size=1, max_size=400).map(lambda b: bytes(x or 1 for x in b))
    return st.one_of(frames, mutated, cut, noise, frames.map(lambda c: c + c[1:]))


@settings(max_examples=60)
@given(st.lists(_frame_chunks(), min_size=1, max_size=40))
def test_random_chunks_decode_as_the_host_decodes_them(san_harness, chunks):
    """Property: every chunk gets the host decoder's error code, or its fields, from the
    sanitised build, which never reports a memory or undefined-behaviour error."""
    out = san_harness.run([f"decode {hex_arg(c)}" for c in chunks])
    assert out == [_decoded_by_host(c) for c in chunks]


_I32 = st.integers(-(2**31), 2**31 - 1)


@st.composite
def _actuators(draw) -> tuple[int, int, int, int]:
    """(state_min, state_max, resolution, target) anywhere in i32: resolution 1 to the
    whole range plus one, the target inside or outside the limits."""
    lo, hi = sorted((draw(_I32), draw(_I32)))
    res = draw(st.integers(1, hi - lo + 1) | st.sampled_from([1, 2, 3, 1000]).filter(lambda r: r <= hi - lo + 1))
    return lo, hi, res, draw(_I32 | st.integers(lo, hi))


@settings(max_examples=50)
@given(st.lists(_actuators(), min_size=1, max_size=50))
def test_the_ideal_actuator_reaches_the_reference_s_grid_point(san_harness, cases):
    """Property: tr2_grid_point (unsigned arithmetic over the whole i32 range, under UBSan)
    is actuator.py's nearest grid point, halves up, never above the top one."""
    out = san_harness.run([f"grid {lo} {hi} {res} {t}" for lo, hi, res, t in cases])
    assert out == [str(v2.Actuator(lo, hi, res).reach(t)) for lo, hi, res, t in cases]


_SPEC = {"address": 7, "uid_hex": "4a1c00e3b2770f01", "kind": "mosfet", "state_min": 1_000_000,
         "state_max": 5_500_000, "initial_state": 1_500_000, "resolution": 1000, "actuator_offset": 0,
         "node_uv": [1_300_000, 1_000_000, 1_150_000, 1_000_000], "uptime_ms": 99, "supply_uv": 3_300_000,
         "temperature_mdegc": 25_000, "fw_version": [2, 0, 0], "calibration_uv": [0, 0, 0, 0],
         "storage_fails": False, "self_test_passes": True}


def _rc_gates() -> st.SearchStrategy[dict]:
    """An RC gate's table (GateCalibration.from_rc) of any time constant, rail and leak."""
    return st.builds(lambda rc, rail, leak: v2.GateCalibration.from_rc(rc, rail, leak).fields(),
                     st.integers(100, 10_000), st.integers(3_000_000, 12_000_000), st.integers(-500, 500))


@st.composite
def _boards(draw) -> dict:
    """A board as the vectors describe one: either kind, assigned or not, an actuator of
    resolution 1 to a few steps over its range, a read-back error, offsets, failing flash,
    a gate's nominal table and the one it measures."""
    kind = draw(st.sampled_from(["digipot", "mosfet"]))
    lo, hi = (0, 99) if kind == "digipot" else (1_000_000, 5_500_000)
    return dict(_SPEC, kind=kind, state_min=lo, state_max=hi, address=draw(st.sampled_from([7, 1, 247, 248])),
                gate_nominal=draw(_rc_gates()), gate_measured=draw(_rc_gates()),
                initial_state=draw(st.integers(lo, hi)),
                resolution=draw(st.sampled_from([1, 7, 1000, 999_999]) if kind == "mosfet" else st.just(1)),
                actuator_offset=draw(st.sampled_from([0, 0, 37, -3])),
                calibration_uv=draw(st.lists(st.integers(-5000, 5000), min_size=4, max_size=4)),
                storage_fails=draw(st.booleans()), uid_hex=draw(st.binary(min_size=8, max_size=8)).hex())


def _reference(s: dict) -> v2.ReferenceBoard:
    gates = {k: v2.GateCalibration.from_fields(s[k]) for k in ("gate_nominal", "gate_measured") if k in s}
    return v2.ReferenceBoard(bytes.fromhex(s["uid_hex"]), v2.KINDS[s["kind"]], address=s["address"],
                             state_min=s["state_min"], state_max=s["state_max"], initial_state=s["initial_state"],
                             resolution=s["resolution"], actuator_offset=s["actuator_offset"], node_uv=s["node_uv"],
                             uptime_ms=s["uptime_ms"], calibration_uv=s["calibration_uv"],
                             storage_fails=s["storage_fails"], self_test=lambda image: s["self_test_passes"], **gates)


_CODES = {spec["code"]: (name, spec) for name, spec in v2lines.PROTOCOL_V2["commands"].items()}
_SIZES = {"u8": 1, "u16": 2, "u32": 4, "i32": 4, "i64": 8, "8s": 8, "128s": 128, "u16[8]": 16}
SIM_SLOT_BYTES = 8192  # board_sim2's simulated image slot (SIM_SLOT_BLOCKS * 128)


def _request_size(spec: dict) -> int:
    return sum(_SIZES[f.split(":")[1]] for f in spec["request"])


@st.composite
def _requests(draw) -> bytes:
    """A request as the host puts it on the line: a command of the table (now and then an
    unknown one) to one of the addresses _boards gives, the broadcast or another, with a
    payload of the right length (now and then not) whose fields are random bytes or, for
    set_state and configure_rule, values in range; fw_begin's size fits the simulated slot
    or is out of range."""
    cmd = draw(st.sampled_from(sorted(_CODES) + [0, 0x2A, 0x81]))
    dst = draw(st.sampled_from([7, 1, 247, 248, 255, 255, 9]))
    name, spec = _CODES.get(cmd, ("unknown", {"request": []}))
    n = _request_size(spec)
    payload = draw(st.binary(min_size=n, max_size=n)) if draw(st.integers(0, 9)) else draw(st.binary(max_size=20))
    if name == "set_state" and len(payload) == 4:
        payload = draw(st.integers(900_000, 5_600_000)).to_bytes(4, "little", signed=True)
    if name == "configure_rule" and len(payload) == 21:
        payload = (bytes([draw(st.integers(0, 3))]) + draw(st.integers(0, 65536)).to_bytes(4, "little")
                   + draw(st.integers(0, 1 << 40)).to_bytes(8, "little") + draw(st.integers(0, 1 << 40)).to_bytes(8, "little"))
    if name == "fw_begin" and len(payload) == 11:
        size = draw(st.sampled_from([0, v2.IMAGE_MAX_BYTES + 1]) | st.integers(1, SIM_SLOT_BYTES))
        payload = size.to_bytes(4, "little") + payload[4:]
    if name == "reset" and len(payload) == 1:
        payload = bytes([draw(st.integers(0, 2))])
    return v2.line_frame(v2.Frame(2, dst, 0, draw(st.integers(0, 255)), cmd, payload))


_EVENTS = st.one_of(st.tuples(st.just("trigger"), st.integers(0, 40)), st.tuples(st.just("power"), st.just(0)))


@settings(max_examples=80)
@given(_boards(), st.lists(st.one_of(_requests(), _requests(), st.binary(min_size=1, max_size=30), _EVENTS),
                           min_size=1, max_size=40))
def test_random_sessions_answer_as_the_reference_board(san_harness, spec, parts):
    """Property: on a random board, a stream of requests, line noise, learn-trigger pulses
    and power cycles gets the same replies (bytes and start times) from the sanitised C
    board as from instruments/bus/v2's ReferenceBoard."""
    ref = _reference(spec)
    lines, want = v2lines.board_lines(0, spec), []
    for p in parts:
        if isinstance(p, bytes):
            lines.append(f"send 0 {p.hex()}")
            want += [(r.wire.hex(), r.start_us) for r in ref.feed(p)]
        elif p[0] == "trigger":
            lines.append(f"trigger 0 {p[1]}")
            ref.trigger(p[1])
        else:  # after a delimiter: what a receiver held is lost at power-off
            lines += ["send 0 00", "power 0"]
            want += [(r.wire.hex(), r.start_us) for r in ref.feed(b"\x00")]
            ref.power_cycle()
    out = san_harness.run(lines)
    assert all(got == "ok" for line, got in zip(lines, out) if not line.startswith("send")), out
    assert [r for line, got in zip(lines, out) if line.startswith("send") for r in v2lines.parse_replies(got)] == want


@st.composite
def _update_sessions(draw) -> tuple[dict, list[bytes]]:
    """A firmware update of a random image (1 byte to 4 KiB) to a board that passes or
    fails its self-test: fw_begin (now and then with the wrong image CRC), blocks in any
    order, repeated, missing, past the last, with a wrong block CRC or for another image,
    unicast or broadcast, then status, verify, swap, identify and telemetry, with
    store_state and a reset thrown in."""
    spec = dict(_SPEC, address=draw(st.sampled_from([7, 200])), self_test_passes=draw(st.booleans()))
    image = draw(st.binary(min_size=1, max_size=4096))
    blocks, crc = v2.image_blocks(image), v2.crc32(image)
    dst = st.sampled_from([spec["address"], 255])
    seq = iter(range(256))

    def req(cmd: str, **fields) -> bytes:
        return v2.line_frame(v2.request_frame(draw(dst), next(seq) & 0xFF, cmd, **fields))

    host_crc = crc ^ (draw(st.sampled_from([0, 0, 0, 1])))
    out = [req("fw_begin", size=len(image), image_crc32=host_crc, fw_major=2, fw_minor=1,
               fw_patch=draw(st.integers(0, 255)))]
    for n in draw(st.lists(st.integers(0, len(blocks) + 1), max_size=2 * len(blocks) + 4)):
        data = blocks[n] if n < len(blocks) else b"\xff" * v2.BLOCK_SIZE
        fault = draw(st.sampled_from(["none"] * 8 + ["block_crc", "image", "status", "store"]))
        out.append(req("fw_block", image_crc32=host_crc ^ (fault == "image"), block=n,
                       block_crc32=v2.crc32(data) ^ (fault == "block_crc"), data=data))
        if fault == "status":
            out.append(req("fw_status"))
        elif fault == "store":
            out.append(req("store_state"))
    out += [req("fw_status"), req("fw_verify"), req("fw_status"), req("fw_verify"), req("fw_swap"),
            req("identify"), req("fw_status"), req("read_telemetry")]
    if draw(st.booleans()):
        out += [req("reset", mode=0), req("fw_status"), req("identify")]
    return spec, out


@settings(max_examples=60)
@given(_update_sessions())
def test_random_firmware_updates_answer_as_the_reference_board(san_harness, session):
    """Property: every reply of a random firmware update (bytes and start times) is the
    reference board's, through confirmation, rollback, a dropped update and a restart."""
    spec, parts = session
    ref = _reference(spec)
    board = v2lines.board_lines(0, spec)
    out = san_harness.run([*board, *(f"send 0 {p.hex()}" for p in parts)])
    want = [(r.wire.hex(), r.start_us) for p in parts for r in ref.feed(p)]
    assert [r for got in out[len(board):] for r in v2lines.parse_replies(got)] == want


# ------------------------------------------------------------------------- actuator calibration (2.1)


def test_a_port_without_the_calibration_callbacks_answers_wrong_kind(any_harness):
    """A MOSFET board whose port gives no actuator calibration (both callbacks NULL,
    twinrig_core2.h) answers the two commands exactly as a digipot does: wrong_kind unicast
    (last_error 9 in telemetry), nothing to calibrate_actuator broadcast, read broadcast
    refused; the checks before it (bad_length) unchanged."""
    mosfet = dict(_SPEC, address=7)
    digipot = dict(mosfet, kind="digipot", state_min=0, state_max=99, initial_state=50, resolution=1)
    ref = _reference(digipot)
    lines = [*v2lines.board_lines(0, mosfet), "nogate 0"]
    frames = [v2.line_frame(v2.request_frame(7, 1, "read_actuator_calibration")),
              v2.line_frame(v2.request_frame(7, 2, "calibrate_actuator")),
              v2.line_frame(v2.Frame(2, 7, 0, 3, v2.COMMANDS["calibrate_actuator"].code, b"\x00")),
              v2.line_frame(v2.request_frame(7, 4, "read_telemetry")),
              v2.line_frame(v2.request_frame(255, 5, "calibrate_actuator")),
              v2.line_frame(v2.request_frame(255, 6, "read_actuator_calibration")),
              v2.line_frame(v2.request_frame(7, 7, "read_telemetry"))]
    out = any_harness.run([*lines, *(f"send 0 {f.hex()}" for f in frames)])
    assert out[:len(lines)] == ["ok"] * len(lines)
    got = [v2lines.parse_replies(line) for line in out[len(lines):]]
    want = [[(r.wire.hex(), r.start_us) for r in ref.feed(f)] for f in frames]
    assert got == want
    assert [len(g) for g in got] == [1, 1, 1, 1, 0, 0, 1]
    wrong_kind = bytes([int(v2.Error.WRONG_KIND)])
    assert [decode_any(chunk_of(bytes.fromhex(g[0][0]))).payload for g in got[:2]] == [wrong_kind] * 2


def _slope_line(cal: v2.GateCalibration, gate_uv: int, charging: bool) -> str:
    return f"slope {v2lines.table_words(cal.fields())} {gate_uv} {int(charging)}"


def _want_slope(cal: v2.GateCalibration, gate_uv: int, charging: bool) -> str:
    """GateCalibration's rule, saturated at INT32_MAX as twinrig_core2.h says."""
    return str(min(cal.slope_nv_per_us(gate_uv, charging), 2**31 - 1))


_INCREASING = st.lists(_I32, min_size=5, max_size=5, unique=True).map(sorted)


@st.composite
def _gate_tables(draw) -> v2.GateCalibration:
    """Any table GateCalibration accepts (increasing gate voltages, slopes anywhere in i32,
    negative ones included), or an RC gate's."""
    if draw(st.booleans()):
        return v2.GateCalibration.from_fields(draw(_rc_gates()))
    return v2.GateCalibration(draw(_INCREASING), draw(st.lists(_I32, min_size=5, max_size=5)), draw(_INCREASING),
                              draw(st.lists(_I32, min_size=5, max_size=5)), draw(_I32))


@st.composite
def _slope_queries(draw) -> tuple[v2.GateCalibration, int, bool]:
    cal, charging = draw(_gate_tables()), draw(st.booleans())
    points = cal.charge_gate_uv if charging else cal.discharge_gate_uv
    near = st.sampled_from(points).flatmap(lambda x: st.integers(max(x - 3, -(2**31)), min(x + 3, 2**31 - 1)))
    return cal, draw(_I32 | st.integers(-1_000_000, 7_000_000) | near), charging


@settings(max_examples=300)
@given(st.lists(_slope_queries(), min_size=1, max_size=40))
def test_the_gate_slope_is_gate_calibration_s_rule(san_harness, queries):
    """Property: tr2_gate_slope_nv_per_us, under UBSan, is GateCalibration.slope_nv_per_us
    (linear between the points and beyond the ends, floored like Python's // on negative
    numbers too, at least 1) for any table of i32 values and any gate voltage: between the
    points, on them, next to them and far beyond the ends, where only the saturation at
    INT32_MAX differs from Python's unbounded integers."""
    out = san_harness.run([_slope_line(*q) for q in queries])
    assert out == [_want_slope(*q) for q in queries]


def test_the_gate_slope_at_the_edges_of_its_arithmetic(any_harness):
    """Hand-picked cases: a negative product floored (not truncated towards zero), exact
    and inexact quotients, the largest |dy * dx| (both near 2^32), saturation both ways, and
    a table whose gate voltages do not increase (an erased record: all zeros; the spec
    allows no such table, the core answers its first point's slope, at least 1)."""
    lo, hi = -(2**31), 2**31 - 1
    points = (0, 10, 20, 30, 40)
    cases = [
        (v2.GateCalibration(points, (100, 97, 94, 91, 88), points, (0, 3, 6, 9, 12)), g, c)
        for g in (-7, 0, 1, 5, 9, 10, 11, 39, 40, 41, 1000) for c in (True, False)
    ] + [
        (v2.GateCalibration((lo, lo + 1, 0, hi - 1, hi), (lo, hi, lo, hi, lo), (lo, -1, 0, 1, hi),
                            (hi, lo, hi, lo, hi)), g, c)
        for g in (lo, lo + 1, -1, 0, 1, hi - 1, hi) for c in (True, False)
    ]
    zero = " ".join(["0"] * 21)
    erased = [f"slope {zero} {g} {c}" for g in (lo, 0, hi) for c in (0, 1)]
    out = any_harness.run([_slope_line(*q) for q in cases] + erased)
    assert out[:len(cases)] == [_want_slope(*q) for q in cases]
    assert out[len(cases):] == ["1"] * 6
    # e.g. 100 + (-3 * 1) // 10 = 99 in Python, where C's truncating division would give 100
    assert out[cases.index(next(q for q in cases if q[1] == 1 and q[2]))] == "99"
