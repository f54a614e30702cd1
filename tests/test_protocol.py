"""The edge-bus protocol: host reference implementation against the spec and golden vectors.

Checks that the constants equal ``firmware/protocol/protocol.json``, that the host codec and
:class:`ReferenceBoard` reproduce every golden vector, that the committed vectors are what
``gen_vectors.py`` writes today, hypothesis round-trips, and a seeded fuzz of well over
100,000 random and mutated frames through :func:`decode_frame` and :class:`FrameSplitter`.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import crc
import numpy as np
import pytest
from cobs import cobs
from hypothesis import given, settings, strategies as st

from instruments.bus import protocol as P
from instruments.bus.protocol import (
    Error, Frame, FrameError, FrameSplitter, ReferenceBoard, decode_frame, encode_frame,
    frame_bytes, wire_from_bytes,
)

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "firmware" / "protocol"
VECTORS = PROTO / "vectors"


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


FRAMES = _load("frames.json")
RULES = _load("rules.json")
COMMANDS = _load("commands.json")

# No wall-clock limits: hypothesis' per-example deadline is off.
_SETTINGS = settings(deadline=None)

# An independent CRC for the oracle: the crc package's bit-by-bit register, not the table.
_SLOW_CRC = crc.Calculator(crc.Crc16.IBM_3740, optimized=False)


# ------------------------------------------------------------------------------ constants


def test_constants_equal_protocol_json():
    spec = json.loads((PROTO / "protocol.json").read_text())
    assert P.protocol_dict() == spec


def test_enums_and_tables_agree():
    spec = json.loads((PROTO / "protocol.json").read_text())
    assert {e.name.lower(): int(e) for e in P.Error} == spec["errors"]
    assert {r.name.lower(): int(r) for r in P.Rule} == spec["rules"]
    assert {k.name.lower(): int(k) for k in P.Kind} == spec["board_kinds"]
    assert {c.name.lower(): int(c) for c in P.Cmd} == {n: c["code"] for n, c in spec["commands"].items()}
    assert P.MIN_FRAME_SIZE == 7 and P.MAX_FRAME_SIZE == 71
    assert P.CONTRAST_LIMIT_UV2 == 2**38 and P.GAIN_LIMIT == 2**40 and P.GAIN_SHIFT == 48
    assert P.CRC_CONFIG == crc.Crc16.IBM_3740.value
    for c in P.COMMANDS.values():
        assert c.reply[0].text == "status:u8"
        assert c.request_size <= P.MAX_PAYLOAD and c.reply_size <= P.MAX_PAYLOAD


def test_crc_check_value():
    assert P.crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE catalogue check value
    assert P.crc16(b"") == 0xFFFF


# ------------------------------------------------------------------------------ frame vectors


def test_vector_counts():
    assert len(FRAMES["valid"]) >= 20 and len(FRAMES["malformed"]) >= 25
    assert len(RULES["cases"]) >= 40 and len(COMMANDS["cases"]) >= 15
    errors = {m["error"] for m in FRAMES["malformed"]}
    assert errors == {"bad_cobs", "too_short", "too_long", "bad_crc", "bad_version"}
    cmds = {v["cmd"] & 0x7F for v in FRAMES["valid"]}
    assert set(P.COMMANDS_BY_CODE) <= cmds


@pytest.mark.parametrize("v", FRAMES["valid"], ids=lambda v: v["name"])
def test_valid_frame_vector(v):
    wire = bytes.fromhex(v["wire_hex"])
    f = Frame(v["version"], v["dst"], v["src"], v["seq"], v["cmd"], bytes.fromhex(v["payload_hex"]))
    assert encode_frame(f) == wire
    assert frame_bytes(f).hex() == v["frame_hex"]
    assert decode_frame(wire) == f
    assert decode_frame(wire[:-1]) == f  # without the delimiter too
    assert wire.count(0) == 1 and wire[-1] == 0
    assert cobs.decode(wire[:-1]).hex() == v["frame_hex"]
    assert FrameSplitter().feed(wire) == [f]


@pytest.mark.parametrize("v", FRAMES["malformed"], ids=lambda v: v["name"])
def test_malformed_frame_vector(v):
    wire = bytes.fromhex(v["wire_hex"])
    with pytest.raises(FrameError) as exc:
        decode_frame(wire)
    assert exc.value.name == v["error"]
    assert exc.value.code == P.ERRORS[v["error"]]
    out = FrameSplitter().feed(wire)
    if v["name"].startswith("zero_inside"):
        assert len(out) == 2
    else:
        assert len(out) == 1
    assert all(isinstance(e, FrameError) and e.name == v["error"] for e in out)


def test_all_frame_vectors_as_one_stream():
    stream = b"".join(bytes.fromhex(v["wire_hex"]) for v in FRAMES["valid"] + FRAMES["malformed"])
    expected = []
    for v in FRAMES["valid"]:
        expected.append(decode_frame(bytes.fromhex(v["wire_hex"])))
    for v in FRAMES["malformed"]:
        n = 2 if v["name"].startswith("zero_inside") else 1
        expected += [v["error"]] * n
    for step in (1, 3, 7, 64, len(stream)):
        sp = FrameSplitter()
        got = []
        for i in range(0, len(stream), step):
            got += sp.feed(stream[i:i + step])
        assert [g.name if isinstance(g, FrameError) else g for g in got] == expected
        assert sp.pending == 0


# ------------------------------------------------------------------------------ rule vectors


@pytest.mark.parametrize("p", RULES["prng"], ids=lambda p: p["uid_hex"])
def test_prng_vector(p):
    uid = bytes.fromhex(p["uid_hex"])
    assert P.seed_from_uid(uid) == p["seed"]
    g = P.Xorshift32(p["seed"])
    assert [g.next() for _ in range(8)] == p["draws"]
    x, draws = p["seed"], []
    for _ in range(8):
        x = P.xorshift32(x)
        draws.append(x)
    assert draws == p["draws"]


def test_prng_zero_seed_becomes_one():
    assert any(p["seed"] == 1 for p in RULES["prng"])
    assert P.seed_from_uid((0x9E3779B9).to_bytes(4, "little") + bytes(4)) == 1


def _exact_rule(c: dict) -> int:
    """The rule from the spec text, written independently with Fractions."""
    oa, ob, oc, od = c["calibration_uv"]
    af, bf, ac, bc = c["node_uv"]
    sat = lambda v: max(-(2**31), min(2**31 - 1, v))  # noqa: E731
    dvf, dvc = sat((af - oa) - (bf - ob)), sat((ac - oc) - (bc - od))
    contrast = max(-(2**38), min(2**38, dvf * dvf - dvc * dvc))
    assert (dvf, dvc, contrast) == (c["dv_free_uv"], c["dv_clamped_uv"], c["contrast_uv2"])
    if c["rule"] == "none" or not (c["draw"] >> 16) < c["probability"]:
        return c["state_before"]
    s = c["state_before"]
    if c["rule"] == "tap":
        s += 1 if contrast > c["dead_band_uv2"] else -1 if contrast < -c["dead_band_uv2"] else 0
    else:
        s += _exact_change(contrast, c["gain"], c["protocol_minor"])
    return max(c["state_min"], min(c["state_max"], s))


def _exact_change(contrast: int, gain: int, minor: int) -> int:
    """contrast * gain / 2^48 from the spec text with Fractions: minor 1 rounds to nearest,
    halves away from zero; minor 0 takes the floor."""
    q = Fraction(contrast * gain, 2**48)
    if minor == 0:
        return math.floor(q)
    f = math.floor(abs(q) + Fraction(1, 2))
    return f if q >= 0 else -f


ALL_RULE_CASES = RULES["cases"] + RULES["cases_minor_0"]


def test_both_minor_versions_have_the_same_rule_cases():
    assert [c["name"] for c in RULES["cases"]] == [c["name"] for c in RULES["cases_minor_0"]]
    assert {c["protocol_minor"] for c in RULES["cases"]} == {P.PROTOCOL_MINOR} == {1}
    assert {c["protocol_minor"] for c in RULES["cases_minor_0"]} == {0}


@pytest.mark.parametrize("c", ALL_RULE_CASES, ids=lambda c: f"{c['name']}-minor{c['protocol_minor']}")
def test_rule_vector(c):
    uid = bytes.fromhex(c["uid_hex"])
    g = P.Xorshift32(P.seed_from_uid(uid))
    for _ in range(c["draws_before"]):
        g.next()
    r = g.next()
    assert r == c["draw"]
    res = P.learn_step(rule=P.RULES[c["rule"]], probability=c["probability"], gain=c["gain"],
                       dead_band_uv2=c["dead_band_uv2"], state=c["state_before"], state_min=c["state_min"],
                       state_max=c["state_max"], draw=r, node_uv=c["node_uv"], calibration_uv=c["calibration_uv"],
                       minor=c["protocol_minor"])
    assert res == {"dv_free_uv": c["dv_free_uv"], "dv_clamped_uv": c["dv_clamped_uv"],
                   "contrast_uv2": c["contrast_uv2"], "updated": c["updated"], "state": c["state_after"]}
    assert _exact_rule(c) == c["state_after"]
    assert c["updated"] == int(c["rule"] != "none" and (r >> 16) < c["probability"])

    # the same learn on a ReferenceBoard of that minor version, driven over the bus
    fw = P.FIRMWARE_VERSION if c["protocol_minor"] == 1 else (1, 1, 0)
    board = ReferenceBoard(1, uid, P.KINDS[c["kind"]], state_min=c["state_min"], state_max=c["state_max"],
                           initial_state=c["state_before"], node_uv=c["node_uv"],
                           calibration_uv=c["calibration_uv"], fw_version=fw)
    assert board.protocol_minor == c["protocol_minor"]
    for _ in range(c["draws_before"]):
        board.prng.next()
    req = P.request_frame(1, 0, "configure_rule", rule=P.RULES[c["rule"]], probability=c["probability"],
                          gain=c["gain"], dead_band_uv2=c["dead_band_uv2"])
    assert P.unpack_reply("configure_rule", decode_frame(board.handle(encode_frame(req))).payload)["status"] == 0
    reply = decode_frame(board.handle(encode_frame(P.request_frame(1, 1, "learn"))))
    assert P.unpack_reply("learn", reply.payload) == {"status": 0, "state": c["state_after"], "updated": c["updated"]}


def test_rule_vectors_cover_the_brief():
    names = {c["name"] for c in RULES["cases"]}
    cs = RULES["cases"]
    assert any(c["contrast_uv2"] == c["dead_band_uv2"] and c["rule"] == "tap" for c in cs)
    assert any(c["contrast_uv2"] == -c["dead_band_uv2"] and c["rule"] == "tap" and c["dead_band_uv2"] for c in cs)
    assert any(c["state_after"] == c["state_max"] == c["state_before"] and c["updated"] for c in cs)
    assert any(c["state_after"] == c["state_min"] and c["updated"] for c in cs)
    assert any(abs(c["contrast_uv2"]) == 2**38 for c in cs)
    assert any(c["gain"] == 2559015 for c in cs)
    # firmware 1.1.0's gains, at both contrast clips, and the old largest gain kept
    for gain in (2**24, 2**30, 2**39, 2**40 - 1):
        assert {c["contrast_uv2"] for c in cs if c["gain"] == gain} >= {2**38, -(2**38)}, gain
    assert any(c["gain"] == 2**24 - 1 for c in cs)
    assert any(c["state_after"] == P.I32_MAX and c["gain"] == 2**40 - 1 for c in cs)
    assert any(c["state_after"] == P.I32_MIN and c["gain"] == 2**40 - 1 for c in cs)
    assert {0, 65536} <= {c["probability"] for c in cs}
    assert any(0 < c["probability"] < 65536 and not c["updated"] for c in cs)
    assert any(0 < c["probability"] < 65536 and c["updated"] for c in cs)
    assert any(any(c["calibration_uv"]) for c in cs)
    # rounding: exact halves of both signs, one 2^-48 on either side of a half, +-1.5
    rounding = {c["name"]: c["state_after"] - c["state_before"] for c in cs if c["name"].startswith("gate_round_")}
    assert {k: rounding[k] for k in ("gate_round_plus_half", "gate_round_minus_half",
                                     "gate_round_just_above_half_positive", "gate_round_just_above_half_negative",
                                     "gate_round_just_below_half_positive", "gate_round_just_below_half_negative",
                                     "gate_round_plus_one_and_half", "gate_round_minus_one_and_half",
                                     "gate_round_tiny_negative", "gate_round_tiny_positive")} == {
        "gate_round_plus_half": 1, "gate_round_minus_half": -1,
        "gate_round_just_above_half_positive": 1, "gate_round_just_above_half_negative": -1,
        "gate_round_just_below_half_positive": 0, "gate_round_just_below_half_negative": 0,
        "gate_round_plus_one_and_half": 2, "gate_round_minus_one_and_half": -2,
        "gate_round_tiny_negative": 0, "gate_round_tiny_positive": 0}
    for c in cs:
        if c["name"].startswith("gate_round_just_"):
            assert abs(abs(c["contrast_uv2"] * c["gain"]) - 2**47) == 1, c["name"]
    assert "gate_round_plus_half_at_the_contrast_clip" in names


def test_the_rounding_is_symmetric_in_sign_and_minor_0_floors():
    kw = dict(state_min=-100, state_max=100)
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, -(2**32), gain=2**15, **kw) == -1   # -0.5 -> -1
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, 2**32, gain=2**15, **kw) == 1       # +0.5 -> +1
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, -1, gain=1, **kw) == 0
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, -(2**32), gain=2**15, minor=0, **kw) == -1
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, 2**32, gain=2**15, minor=0, **kw) == 0
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, -1, gain=1, minor=0, **kw) == -1
    assert P.apply_rule(P.Rule.TAP, 100, 5, **kw) == 100
    assert P.apply_rule(P.Rule.NONE, 7, 2**38, gain=2**40 - 1, **kw) == 7
    wide = dict(state_min=P.I32_MIN, state_max=P.I32_MAX)
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, -1, gain=2**40 - 1, **wide) == 0
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, -(2**38), gain=2**40 - 1, **wide) == -(2**30)
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, 2**38, gain=2**40 - 1, **wide) == 2**30
    assert P.apply_rule(P.Rule.CONTINUOUS, 0, 2**38, gain=2**40 - 1, minor=0, **wide) == 2**30 - 1


def test_the_mean_change_is_zero_with_nothing_to_learn_on_the_reference():
    """100,000 updates of the reference rule (the Gen-2 gate-charging gain at 100 us, drops
    of ~0.3 V read with 100 uV of noise on each terminal, the free and the clamped twin
    equal: nothing to learn): the mean gate change per update is within 0.01 uV of zero
    (minor 1); the floor of minor 0 drifts by about -1/2 uV per update."""
    gain = P.gate_gain(100e-6, 1e3, 2.2e-6, 0.1)
    nodes = _nothing_to_learn_nodes(100_000, seed=5)
    deltas = {m: [P.gain_delta_int64(P.contrast_uv2(*P.drops_uv(n)), gain, m) for n in nodes] for m in (0, 1)}
    assert abs(np.mean(deltas[1])) < 0.01
    assert np.mean(deltas[0]) < -0.4
    assert np.std(deltas[1]) > 0.05  # the updates themselves are not all zero


def _nothing_to_learn_nodes(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    base = rng.integers(200_000, 400_000, size=(n, 1))
    clean = np.hstack([base + 1_000_000, np.full((n, 1), 1_000_000), base + 1_000_000, np.full((n, 1), 1_000_000)])
    return np.rint(clean + rng.normal(0.0, 100.0, size=(n, 4))).astype(np.int64).tolist()


def test_the_largest_gain_changes_the_state_by_2_to_the_30_and_is_clipped_after_adding():
    """2^38 * (2^40 - 1) / 2^48 just below 2^30: beyond the i32 range from near its ends."""
    kw = dict(gain=2**40 - 1, state_min=P.I32_MIN, state_max=P.I32_MAX)
    assert P.apply_rule(P.Rule.CONTINUOUS, P.I32_MAX - 5, 2**38, **kw) == P.I32_MAX
    assert P.apply_rule(P.Rule.CONTINUOUS, P.I32_MIN + 5, -(2**38), **kw) == P.I32_MIN


def test_gate_gain_below_the_limit_covers_the_simulated_learning_rates():
    """2000 V of gate per V^2 of contrast (the simulated runs' largest) is a gain of about
    2^39; the old limit 2^24 was 0.06 V/V^2."""
    rate_v_per_v2 = 2000.0
    gain = round(rate_v_per_v2 * 1e-6 * 2**48)
    assert 2**38 < gain < P.GAIN_LIMIT
    assert P.gate_gain(200e-6, 1e3, 2.2e-6, rate_v_per_v2 / (200e-6 / 2.2e-3)) == pytest.approx(gain, rel=1e-9)
    assert (2**24 - 1) / 2**48 * 1e6 == pytest.approx(0.0596, rel=1e-3)


def test_gate_gain_formula():
    assert P.gate_gain(200e-6, 1e3, 2.2e-6, 0.1) == 2558863


# ------------------------------------------------------------------------------ command vectors


@pytest.mark.parametrize("case", COMMANDS["streams"], ids=lambda c: c["name"])
@pytest.mark.parametrize("piece", [1, 7, 4096, 10**6])
def test_stream_vector_after_line_noise(case, piece):
    """Line noise, then frames with a 0x00 before them as well as after: the reference board
    answers every one, in pieces of any size."""
    board = _board(case["board"])
    stream = bytes.fromhex(case["stream_hex"])
    got = []
    for i in range(0, len(stream), piece):
        got += board.feed(stream[i:i + piece])
    assert [r.hex() for r in got] == case["replies_hex"]


def test_stream_vectors_cover_noise_and_the_leading_zero():
    by_name = {c["name"]: c for c in COMMANDS["streams"]}
    noisy = by_name["noise_then_line_frames"]
    replies = [decode_frame(bytes.fromhex(h)) for h in noisy["replies_hex"]]
    assert [f.cmd & 0x7F for f in replies] == [P.Cmd.IDENTIFY, P.Cmd.READ_STATE, P.Cmd.READ_STATE,
                                               P.Cmd.READ_TELEMETRY]
    assert P.unpack_reply("read_state", replies[1].payload)["state"] == 2_000_000  # the broadcast set_state
    tel = P.unpack_reply("read_telemetry", replies[-1].payload)
    assert tel["frames_ok"] == 5 and tel["frames_bad"] > 10    # the noise: bad chunks, never an answer
    old = by_name["noise_then_frame_without_leading_zero"]
    assert [decode_frame(bytes.fromhex(h)).seq for h in old["replies_hex"]] == [2, 3]  # seq 1 was lost
    for v in FRAMES["valid"]:
        assert v["line_hex"] == "00" + v["wire_hex"]


def _board(b: dict) -> ReferenceBoard:
    return ReferenceBoard(b["address"], bytes.fromhex(b["uid_hex"]), P.KINDS[b["kind"]],
                          state_min=b["state_min"], state_max=b["state_max"], initial_state=b["initial_state"],
                          node_uv=b["node_uv"], uptime_ms=b["uptime_ms"], fw_version=tuple(b["fw_version"]))


@pytest.mark.parametrize("case", COMMANDS["cases"], ids=lambda c: c["name"])
def test_command_vector(case):
    board = _board(case["board"])
    for i, ex in enumerate(case["exchanges"]):
        reply = board.handle(bytes.fromhex(ex["request_hex"]))
        assert (None if reply is None else reply.hex()) == ex["reply_hex"], f"exchange {i}"
        if reply is not None:
            f = decode_frame(reply)
            assert f.dst == 0 and f.src == case["board"]["address"] and f.is_reply
            P.unpack_reply(f.cmd, f.payload) if (f.cmd & 0x7F) in P.COMMANDS_BY_CODE else None
    # the whole sequence as one byte stream, fed in odd pieces
    board = _board(case["board"])
    stream = b"".join(bytes.fromhex(ex["request_hex"]) for ex in case["exchanges"])
    got = []
    for i in range(0, len(stream), 5):
        got += board.feed(stream[i:i + 5])
    assert [r.hex() for r in got] == [ex["reply_hex"] for ex in case["exchanges"] if ex["reply_hex"]]


def test_command_vectors_cover_the_brief():
    names = {c["name"] for c in COMMANDS["cases"]}
    assert {"identify_digipot", "identify_mosfet", "state_digipot", "configure_rule_digipot",
            "configure_rule_mosfet", "sample_drops", "learn_tap", "learn_gate_charging", "telemetry_counts",
            "calibration", "reset", "unknown_command", "bad_length", "broadcast", "malformed_frames"} <= names
    statuses = set()
    for case in COMMANDS["cases"]:
        for ex in case["exchanges"]:
            if ex["reply_hex"]:
                statuses.add(decode_frame(bytes.fromhex(ex["reply_hex"])).payload[0])
    assert {0, 6, 7, 8, 9} <= statuses


def _configure_statuses(case: dict) -> dict[int, int]:
    """gain -> the status each configure_rule request of a command case got."""
    out = {}
    for ex in case["exchanges"]:
        req = decode_frame(bytes.fromhex(ex["request_hex"]))
        if req.cmd == P.Cmd.CONFIGURE_RULE and ex["reply_hex"]:
            out[P.unpack_request("configure_rule", req.payload)["gain"]] = decode_frame(
                bytes.fromhex(ex["reply_hex"])).payload[0]
    return out


def test_command_vectors_take_gains_up_to_2_to_the_40_and_refuse_2_to_the_40():
    case = next(c for c in COMMANDS["cases"] if c["name"] == "configure_rule_large_gain")
    statuses = _configure_statuses(case)
    assert statuses[2**24] == statuses[2**30] == statuses[2**40 - 1] == Error.OK
    assert statuses[2**40] == statuses[2**63 - 1] == Error.OUT_OF_RANGE
    assert case["board"]["fw_version"] == [1, 2, 0]


def test_storage_failure_keeps_offsets():
    board = ReferenceBoard(3, bytes(8), P.Kind.DIGIPOT, calibration_uv=(1, 2, 3, 4), storage_fails=True)
    req = P.request_frame(3, 9, "store_calibration", offset_free_a_uv=9, offset_free_b_uv=9,
                          offset_clamped_a_uv=9, offset_clamped_b_uv=9)
    assert decode_frame(board.handle(encode_frame(req))).payload == bytes([Error.STORAGE])
    rep = decode_frame(board.handle(encode_frame(P.request_frame(3, 10, "read_calibration"))))
    assert list(P.unpack_reply("read_calibration", rep.payload).values())[1:] == [1, 2, 3, 4]
    assert board.last_error == Error.STORAGE


def test_callables_for_nodes_and_uptime():
    t = [0]
    board = ReferenceBoard(2, bytes(8), P.Kind.MOSFET, node_uv=lambda: [t[0], 0, 0, 0],
                           uptime_ms=lambda: t[0] + 2**32 + 5)
    t[0] = 1234
    rep = decode_frame(board.handle(encode_frame(P.request_frame(2, 0, "sample_drops"))))
    assert P.unpack_reply("sample_drops", rep.payload)["dv_free_uv"] == 1234
    rep = decode_frame(board.handle(encode_frame(P.request_frame(2, 1, "read_telemetry"))))
    assert P.unpack_reply("read_telemetry", rep.payload)["uptime_ms"] == 1239


# ------------------------------------------------------------------------------ determinism


def test_vectors_are_current_and_deterministic(tmp_path):
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, str(PROTO / "gen_vectors.py"), "--out", str(tmp_path)], check=True,
                   env=env, capture_output=True)
    for name in ("frames.json", "rules.json", "commands.json"):
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), f"{name} is stale"


# ------------------------------------------------------------------------------ payloads


_FIELD_ST = {
    "u8": st.integers(0, 255), "u32": st.integers(0, 2**32 - 1), "i32": st.integers(-(2**31), 2**31 - 1),
    "i64": st.integers(-(2**63), 2**63 - 1), "8s": st.binary(min_size=8, max_size=8),
}


def _fields_st(fields):
    return st.fixed_dictionaries({f.name: _FIELD_ST[f.type] for f in fields})


@_SETTINGS
@given(st.data())
def test_payload_round_trip(data):
    spec = data.draw(st.sampled_from(list(P.COMMANDS.values())))
    req = data.draw(_fields_st(spec.request))
    payload = P.pack_request(spec.name, **req)
    assert len(payload) == spec.request_size
    assert P.unpack_request(spec.code, payload) == req
    rep = data.draw(_fields_st(spec.reply[1:]))
    payload = P.pack_reply(spec.name, **rep)
    assert len(payload) == spec.reply_size
    assert P.unpack_reply(spec.code | P.REPLY_BIT, payload) == {"status": 0, **rep}
    status = data.draw(st.integers(1, 255))
    assert P.unpack_reply(spec.name, P.pack_reply(spec.name, status)) == {"status": status}


def test_payload_errors():
    with pytest.raises(P.PayloadError):
        P.pack_request("set_state", state=2**31)
    with pytest.raises(P.PayloadError):
        P.pack_request("set_state")
    with pytest.raises(P.PayloadError):
        P.pack_request("identify", extra=1)
    with pytest.raises(P.PayloadError):
        P.unpack_request("set_state", b"\x00")
    with pytest.raises(P.PayloadError):
        P.unpack_reply("read_state", b"")
    with pytest.raises(P.PayloadError):
        P.unpack_reply("read_state", b"\x08\x00")
    with pytest.raises(ValueError):
        Frame(1, 1, 0, 0, 1, bytes(65))
    with pytest.raises(ValueError):
        Frame(256, 1, 0, 0, 1)


# ------------------------------------------------------------------------------ hypothesis round-trips

_byte = st.integers(0, 255)
_frames = st.builds(Frame, st.just(1), _byte, _byte, _byte, _byte, st.binary(max_size=64))


@_SETTINGS
@given(_frames)
def test_frame_round_trip(f):
    wire = encode_frame(f)
    assert wire.count(0) == 1 and wire.endswith(b"\x00")
    assert len(wire) <= P.MAX_FRAME_SIZE + 2
    assert decode_frame(wire) == f


@_SETTINGS
@given(st.lists(_frames, max_size=8), st.lists(st.integers(1, 40), min_size=1, max_size=20),
       st.integers(0, 3))
def test_splitter_any_chunking(frames, cuts, extra_delims):
    stream = b"\x00" * extra_delims + b"".join(encode_frame(f) + b"\x00" * extra_delims for f in frames)
    sp, got, i, k = FrameSplitter(), [], 0, 0
    while i < len(stream):
        n = cuts[k % len(cuts)]
        got += sp.feed(stream[i:i + n])
        i, k = i + n, k + 1
    assert got == frames


@_SETTINGS
@given(_frames, st.integers(0, 10**6), st.integers(0, 7))
def test_single_bit_flip_is_bad_crc(f, pos, bit):
    raw = bytearray(frame_bytes(f))
    raw[pos % len(raw)] ^= 1 << bit
    with pytest.raises(FrameError) as exc:
        decode_frame(wire_from_bytes(bytes(raw)))
    assert exc.value.code == Error.BAD_CRC


@_SETTINGS
@given(_frames, st.integers(0, 10**6), st.integers(1, 0xFFFF))
def test_burst_up_to_16_bits_is_bad_crc(f, pos, pattern):
    raw = bytearray(frame_bytes(f))
    pos %= len(raw) - 1
    raw[pos] ^= pattern >> 8
    raw[pos + 1] ^= pattern & 0xFF
    with pytest.raises(FrameError) as exc:
        decode_frame(wire_from_bytes(bytes(raw)))
    assert exc.value.code == Error.BAD_CRC


@_SETTINGS
@given(st.binary(max_size=6))
def test_short_is_too_short(raw):
    with pytest.raises(FrameError) as exc:
        decode_frame(wire_from_bytes(raw))
    assert exc.value.code == Error.TOO_SHORT


@_SETTINGS
@given(st.binary(min_size=72, max_size=600))
def test_long_is_too_long(raw):
    with pytest.raises(FrameError) as exc:
        decode_frame(wire_from_bytes(raw))
    assert exc.value.code == Error.TOO_LONG


@_SETTINGS
@given(_frames, st.integers(0, 255).filter(lambda v: v != 1))
def test_other_version_is_bad_version(f, version):
    raw = bytes([version]) + frame_bytes(f)[1:-2]
    with pytest.raises(FrameError) as exc:
        decode_frame(wire_from_bytes(raw + P.crc16(raw).to_bytes(2, "big")))
    assert exc.value.code == Error.BAD_VERSION


@_SETTINGS
@given(st.binary(max_size=120))
def test_arbitrary_chunk(chunk):
    _check_chunk(chunk)


_nonzero = st.binary(max_size=400).map(lambda b: b.replace(b"\x00", b"\x01"))


@_SETTINGS
@given(st.lists(st.one_of(_nonzero, st.binary(max_size=400).map(cobs.encode)), max_size=6),
       st.integers(1, 50), st.integers(0, 200))
def test_splitter_bounded_buffer_matches_decode(chunks, step, max_chunk):
    """A splitter that stops storing long chunks still reports what decode_frame reports."""
    stream = b"".join(c + b"\x00" for c in chunks)
    sp, got = FrameSplitter(max_chunk=max_chunk), []
    for i in range(0, len(stream), step):
        got += sp.feed(stream[i:i + step])
    want = []
    for c in chunks:
        if c:
            try:
                want.append(decode_frame(c))
            except FrameError as exc:
                want.append(exc.code)
    assert [g.code if isinstance(g, FrameError) else g for g in got] == want


@_SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_xorshift_never_zero(x):
    y = P.xorshift32(x)
    assert (y == 0) == (x == 0) and 0 <= y < 2**32


@_SETTINGS
@given(st.integers(-(2**38), 2**38), st.integers(0, 2**40 - 1), st.integers(0, 2**40),
       st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1))
def test_apply_rule_properties(c, gain, db, a, b, s):
    lo, hi = sorted((a, b))
    s = max(lo, min(hi, s))
    t = P.apply_rule(P.Rule.TAP, s, c, dead_band_uv2=db, state_min=lo, state_max=hi)
    assert lo <= t <= hi and abs(t - s) <= 1
    assert (t > s) <= (c > db) and (t < s) <= (c < -db)
    for minor in (0, 1):
        g = P.apply_rule(P.Rule.GATE_CHARGING, s, c, gain=gain, state_min=lo, state_max=hi, minor=minor)
        assert g == max(lo, min(hi, s + _exact_change(c, gain, minor)))
        assert abs(s + P.gain_delta(c, gain, minor)) < 2**63  # the firmware's 64-bit sum before clipping
    assert P.gain_delta(-c, gain) == -P.gain_delta(c, gain)  # symmetric in sign


_CONTRASTS = st.one_of(st.integers(-(2**38), 2**38), st.sampled_from([-(2**38), -(2**38) + 1, -1, 0, 1, 2**38]))
_GAINS = st.one_of(st.integers(0, 2**40 - 1),
                   st.sampled_from([0, 1, 2**24 - 1, 2**24, 2**24 + 1, 2**39, 2**40 - 2**24, 2**40 - 1]))


def _split_steps(c: int, g: int) -> tuple[int, ...]:
    """The intermediates of the 64-bit split, as PROTOCOL-1.md writes them."""
    gh, gl = divmod(g, 2**24)
    a = c * gh
    a1, a0 = divmod(a, 2**24)  # Python's divmod floors: 0 <= a0 < 2^24
    b = c * gl
    return gh, gl, a, a1, a0, b, a0 * 2**24 + b


@_SETTINGS
@given(_CONTRASTS, _GAINS)
def test_the_64_bit_split_equals_the_exact_quotient_and_stays_within_int64(c, g):
    rounded = _exact_change(c, g, 1)
    assert P.gain_delta(c, g) == P.gain_delta_int64(c, g) == rounded
    # minor 1 works on |c|: every intermediate non-negative, the sum below 2^63
    gh, gl, a, a1, a0, b, x = _split_steps(abs(c), g)
    assert a >= 0 and b >= 0 and x + 2**47 < 2**63
    assert a1 + ((x + 2**47) >> 48) == abs(rounded)
    assert abs(rounded) <= 2**30
    exact = (c * g) >> 48  # minor 0, Python's big integers: the floor of the 79-bit product
    assert P.gain_delta(c, g, 0) == exact == math.floor(Fraction(c * g, 2**48))
    assert P.gain_delta_int64(c, g, 0) == exact
    gh, gl, a, a1, a0, b, x = _split_steps(c, g)
    assert gh < 2**16 and 0 <= gl < 2**24 and 0 <= a0 < 2**24
    assert abs(a) < 2**54 and abs(b) < 2**62 and abs(x) < 2**63
    assert a1 + (x >> 48) == exact
    assert abs(exact) <= 2**30
    if g < 2**24:  # firmware 1.0.x's gains: the direct product, which fits in 63 bits
        assert abs(c * g) < 2**63 and gh == 0


def test_the_split_refuses_values_outside_its_bounds():
    with pytest.raises(ValueError, match="gain"):
        P.gain_delta_int64(1, 2**40)
    with pytest.raises(ValueError, match="gain"):
        P.gain_delta_int64(1, -1)
    with pytest.raises(ValueError, match="contrast"):
        P.gain_delta_int64(2**38 + 1, 1)


# ------------------------------------------------------------------------------ fuzz


def _cobs_walk_ok(chunk: bytes) -> bool:
    """Test-side COBS structure check: no zero and no code byte pointing past the end."""
    if 0 in chunk:
        return False
    i = 0
    while i < len(chunk):
        i += chunk[i]
    return i == len(chunk)


def _oracle(chunk: bytes) -> int:
    """Expected receive result of one chunk (0 ok), independent of decode_frame."""
    if not _cobs_walk_ok(chunk):
        return Error.BAD_COBS
    raw = cobs.decode(chunk)
    if len(raw) < 7:
        return Error.TOO_SHORT
    if len(raw) > 71:
        return Error.TOO_LONG
    if _SLOW_CRC.checksum(raw[:-2]) != int.from_bytes(raw[-2:], "big"):
        return Error.BAD_CRC
    if raw[0] != 1:
        return Error.BAD_VERSION
    return Error.OK


def _check_chunk(chunk: bytes, expected: int | None = None) -> Frame | FrameError:
    """decode_frame may only raise FrameError; an accepted frame must carry a matching CRC."""
    try:
        f = decode_frame(chunk)
    except FrameError as exc:
        if expected is not None:
            assert exc.code == expected, (chunk.hex(), exc)
        return exc
    raw = cobs.decode(chunk)
    assert frame_bytes(f) == raw and P.crc16(raw[:-2]) == int.from_bytes(raw[-2:], "big")
    assert expected in (None, Error.OK), chunk.hex()
    return f


def _random_frame(rng: random.Random) -> Frame:
    n = rng.choice((0, 0, 1, 4, 8, 20, 64, rng.randrange(65)))
    payload = rng.choice((bytes(n), b"\xff" * n, rng.randbytes(n)))
    return Frame(1, rng.randrange(256), rng.randrange(256), rng.randrange(256), rng.randrange(256), payload)


def test_fuzz_decode_and_split():
    """>= 100,000 random and mutated chunks with known expected codes, then as streams."""
    rng = random.Random(20240611)
    pool = [frame_bytes(_random_frame(rng)) for _ in range(600)]
    counts = dict.fromkeys(("random", "oracle", "bitflip", "byte", "short", "long", "version",
                            "cobs_pointer", "zero_inside", "wire_byte", "valid"), 0)
    stream_parts: list[bytes] = []
    expected_stream: list[int] = []
    total = 0
    while total < 110_000:
        raw = rng.choice(pool)
        kind = rng.randrange(11)
        exp: int | None
        if kind == 0:                                           # valid
            chunk, exp, key = cobs.encode(raw), Error.OK, "valid"
        elif kind == 1:                                         # single bit flip -> bad_crc
            b = bytearray(raw)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            chunk, exp, key = cobs.encode(bytes(b)), Error.BAD_CRC, "bitflip"
        elif kind == 2:                                         # one byte replaced -> bad_crc
            b = bytearray(raw)
            i = rng.randrange(len(b))
            b[i] = (b[i] + rng.randrange(1, 256)) & 0xFF
            chunk, exp, key = cobs.encode(bytes(b)), Error.BAD_CRC, "byte"
        elif kind == 3:                                         # truncated -> too_short
            chunk, exp, key = cobs.encode(raw[:rng.randrange(7)]), Error.TOO_SHORT, "short"
        elif kind == 4:                                         # extended -> too_long
            chunk = cobs.encode(raw + rng.randbytes(rng.randrange(72 - len(raw), 300)))
            exp, key = Error.TOO_LONG, "long"
        elif kind == 5:                                         # other version, CRC good -> bad_version
            body = bytes([rng.choice([v for v in (0, 2, 3, 0x7F, 0x81, 0xFF)])]) + raw[1:-2]
            chunk, exp, key = cobs.encode(body + P.crc16(body).to_bytes(2, "big")), Error.BAD_VERSION, "version"
        elif kind == 6:                                         # last code byte points past the end
            b = bytearray(cobs.encode(raw))
            i = last = 0
            while i < len(b):
                last, i = i, i + b[i]
            b[last] = min(255, b[last] + rng.randrange(1, 200))  # chunks <= 73 bytes: past the end
            chunk, exp, key = bytes(b), Error.BAD_COBS, "cobs_pointer"
        elif kind == 7:                                         # a zero inside -> bad_cobs (chunk decoder)
            b = bytearray(cobs.encode(raw))
            b[rng.randrange(len(b) - 1)] = 0  # not last: decode_frame drops one trailing delimiter
            chunk, exp, key = bytes(b), Error.BAD_COBS, "zero_inside"
        elif kind == 8:                                         # wire byte replaced: anything but a bad accept
            b = bytearray(cobs.encode(raw))
            b[rng.randrange(len(b))] = rng.randrange(1, 256)
            chunk, exp, key = bytes(b), None, "wire_byte"
        elif kind == 9:                                         # random nonzero bytes, checked by the oracle
            chunk = bytes(v or 1 for v in rng.randbytes(rng.randrange(0, 90)))
            exp, key = _oracle(chunk), "oracle"
        else:                                                   # fully random bytes, only "no crash"
            chunk, exp, key = rng.randbytes(rng.randrange(0, 100)), None, "random"
        res = _check_chunk(chunk, exp)
        counts[key] += 1
        total += 1
        if b"\x00" not in chunk and chunk:
            stream_parts.append(chunk)
            expected_stream.append(0 if isinstance(res, Frame) else int(res.code))

    assert min(counts.values()) > 5000, counts
    # the same chunks as one stream, cut at random points, with extra delimiters
    stream = b"\x00".join(stream_parts) + b"\x00"
    sp, got, i = FrameSplitter(), [], 0
    while i < len(stream):
        n = rng.randrange(1, 200)
        got.extend(sp.feed(stream[i:i + n]))
        i += n
    assert [0 if isinstance(g, Frame) else int(g.code) for g in got] == expected_stream
    assert total + len(got) >= 200_000


def test_fuzz_reference_board():
    """Random traffic never raises in ReferenceBoard.handle; counters add up."""
    rng = random.Random(7)
    board = ReferenceBoard(5, bytes(range(8)), P.Kind.DIGIPOT, node_uv=(1_000_100, 1_000_000, 0, 0))
    ok = bad = 0
    for _ in range(5000):
        if rng.random() < 0.5:
            cmd = rng.choice([c for c in range(13) if c != P.Cmd.RESET])  # reset would zero the counters
            f = Frame(1, rng.choice((5, 5, 255, 4, 0)), 0, rng.randrange(256), cmd,
                      rng.randbytes(rng.choice((0, 1, 4, 21, 16, rng.randrange(65)))))
            wire = encode_frame(f)
            ok += f.dst in (5, 255)
        else:
            wire = rng.randbytes(rng.randrange(1, 40)).replace(b"\x00", b"\x01") + b"\x00"
            try:
                f = decode_frame(wire)
                ok += f.dst in (5, 255)
            except FrameError:
                bad += 1
        reply = board.handle(wire)
        if reply is not None:
            r = decode_frame(reply)
            assert r.src == 5 and r.dst == 0 and r.is_reply
    assert (board.frames_ok, board.frames_bad) == (ok, bad)
