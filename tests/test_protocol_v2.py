"""The edge-bus protocol, version 2: the codec, the tables and the golden vectors.

Checks that the constants equal ``firmware/protocol/protocol-2.json``, that the spec names
every command and status, hypothesis round-trips of every payload and of the frame codec
(the decoder never raises anything but :class:`FrameError`), the slot arithmetic against
:mod:`instruments.bus.timing`, discover's hash, the actuator's carried residue, and (below
"vectors") that the committed vectors are what ``gen_vectors_v2.py`` writes today and that
the reference board replays them. The board's behaviour, command by command, is
``tests/test_protocol_v2_board.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import example, given, strategies as st

from instruments.bus import timing
from instruments.bus import v2
from instruments.bus.v2 import Error, FrameError

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "firmware" / "protocol"
SPEC = json.loads((PROTO / "protocol-2.json").read_text())
DOC = (PROTO / "PROTOCOL.md").read_text()


# ------------------------------------------------------------------------------ tables


def test_constants_equal_protocol_2_json():
    assert v2.protocol_dict() == SPEC


def test_protocol_1_json_is_still_protocol_1():
    old = json.loads((PROTO / "protocol.json").read_text())
    assert old["protocol_version"] == 1 and old["frame"]["max_payload"] == 64


def test_every_command_and_status_is_in_the_spec_text():
    for name, c in SPEC["commands"].items():
        assert re.search(rf"\|\s*{c['code']}\s*\|\s*{name}\s*\|", DOC), name
    for name in SPEC["errors"]:
        assert f"`{name}`" in DOC, name


def test_protocol_1s_text_is_kept_beside_protocol_2s():
    old = (PROTO / "PROTOCOL-1.md").read_text()
    assert old.startswith("# The edge bus protocol, version 1.1")
    assert DOC.startswith("# The edge bus protocol, version 2.1")


def test_command_codes_are_unique_and_below_the_reply_bit():
    codes = [c.code for c in v2.COMMANDS.values()]
    assert len(set(codes)) == len(codes) and max(codes) < v2.REPLY_BIT


def test_every_payload_fits_the_frame():
    for c in v2.COMMANDS.values():
        assert c.request_size <= v2.MAX_PAYLOAD and c.reply_size <= v2.MAX_PAYLOAD, c.name
    assert timing.wire_bytes(v2.MAX_PAYLOAD) == v2.MAX_FRAME_SIZE + 2


def test_commands_that_write_flash_have_quiet_times_from_the_datasheet():
    assert v2.quiet_ms("store_state") == v2.quiet_ms("store_calibration") == 400 + 3
    assert v2.quiet_ms("assign_address") == 403
    assert v2.quiet_ms("fw_block") == v2.BLOCK_CHECK_MAX_MS + 3 == 4  # the checks, then tPP max
    assert v2.quiet_ms("fw_begin", size=1) == 400
    assert v2.quiet_ms("fw_begin", size=4097) == 800
    assert v2.quiet_ms("reset", mode=v2.ResetMode.RESTART) == v2.BOOT_MAX_MS
    assert v2.quiet_ms("reset", mode=v2.ResetMode.FACTORY) == 800 + v2.BOOT_MAX_MS
    assert v2.quiet_ms("learn") == v2.quiet_ms("identify") == 0
    assert v2.quiet_ms("calibrate_actuator") == v2.ACTUATOR_CAL_MAX_MS + 403


# ------------------------------------------------------------------------------ payloads


def _value(f: v2.FieldSpec):
    scalar = {"u8": st.integers(0, 255), "u16": st.integers(0, 2**16 - 1),
              "u32": st.integers(0, 2**32 - 1), "i32": st.integers(-(2**31), 2**31 - 1),
              "i64": st.integers(-(2**63), 2**63 - 1)}
    if f.count:
        return st.lists(scalar[f.type.split("[")[0]], min_size=f.count, max_size=f.count)
    if f.type.endswith("s"):
        return st.binary(min_size=f.size, max_size=f.size)
    return scalar[f.type]


def _fields(fields):
    return st.fixed_dictionaries({f.name: _value(f) for f in fields})


_COMMAND = st.sampled_from(sorted(v2.COMMANDS))


@given(st.data(), _COMMAND)
def test_requests_round_trip(data, name):
    spec = v2.COMMANDS[name]
    fields = data.draw(_fields(spec.request))
    payload = v2.pack_request(name, **fields)
    assert len(payload) == spec.request_size
    assert v2.unpack_request(spec.code, payload) == fields


@given(st.data(), _COMMAND)
def test_ok_replies_round_trip(data, name):
    spec = v2.COMMANDS[name]
    fields = data.draw(_fields(spec.reply[1:]))
    payload = v2.pack_reply(name, **fields)
    assert len(payload) == spec.reply_size and payload[0] == 0
    assert v2.unpack_reply(name, payload) == {"status": 0, **fields}


@given(_COMMAND, st.sampled_from([e for e in Error if e >= Error.UNKNOWN_COMMAND]))
def test_error_replies_are_the_status_alone(name, status):
    assert v2.pack_reply(name, status) == bytes([status])
    assert v2.unpack_reply(name, bytes([status])) == {"status": status}


@given(_COMMAND, st.binary(max_size=300))
def test_unpacking_any_bytes_gives_fields_or_a_payload_error(name, payload):
    for unpack in (v2.unpack_request, v2.unpack_reply):
        try:
            out = unpack(name, payload)
        except v2.PayloadError:
            continue
        assert isinstance(out, dict)


def test_packing_refuses_missing_extra_and_out_of_range_fields():
    with pytest.raises(v2.PayloadError):
        v2.pack_request("set_state")
    with pytest.raises(v2.PayloadError):
        v2.pack_request("set_state", state=1, residue=0)
    with pytest.raises(v2.PayloadError):
        v2.pack_request("set_state", state=2**31)
    with pytest.raises(v2.PayloadError):
        v2.pack_request("fw_block", image_crc32=0, block=0, block_crc32=0, data=bytes(127))
    with pytest.raises(v2.PayloadError):
        v2.pack_reply("fw_status", phase=0, fw_major=0, fw_minor=0, fw_patch=0, blocks=0, missing=0,
                      first_missing=[0] * 7)


# ------------------------------------------------------------------------------ frames


_FRAME = st.builds(v2.Frame, st.just(v2.PROTOCOL_VERSION), st.integers(0, 255), st.integers(0, 255),
                   st.integers(0, 255), st.integers(0, 255), st.binary(max_size=v2.MAX_PAYLOAD))


@given(_FRAME)
@example(v2.Frame(2, 255, 0, 255, 255, b"\xff" * 247))
@example(v2.Frame(2, 0, 0, 0, 0, bytes(247)))
def test_frames_round_trip_with_one_byte_of_cobs_overhead(f):
    wire = v2.encode_frame(f)
    assert wire.count(0) == 1 and wire.endswith(b"\x00")
    assert len(wire) == timing.wire_bytes(len(f.payload))
    assert v2.decode_frame(wire) == f
    assert v2.split_stream(v2.line_frame(f) * 2) == [f, f]


@given(st.binary(max_size=600))
def test_decoding_any_chunk_gives_a_frame_or_a_frame_error(chunk):
    try:
        f = v2.decode_frame(chunk)
    except FrameError as exc:
        assert exc.code in (Error.BAD_COBS, Error.BAD_CRC, Error.TOO_SHORT, Error.TOO_LONG, Error.BAD_VERSION)
    else:
        assert f.version == v2.PROTOCOL_VERSION


@given(st.binary(max_size=2000), st.integers(1, 64))
def test_the_splitter_gives_the_same_in_any_pieces(data, piece):
    whole = v2.FrameSplitter(max_chunk=300).feed(data)
    s = v2.FrameSplitter(max_chunk=300)
    parts = [x for i in range(0, len(data), piece) for x in s.feed(data[i:i + piece])]
    assert parts == whole


def test_a_frame_of_255_bytes_is_too_long_and_a_version_1_frame_is_bad_version():
    body = bytes([2, 1, 0, 0, 3]) + bytes(248)
    raw = body + v2.framing.crc16(body).to_bytes(2, "big")
    with pytest.raises(FrameError) as exc:
        v2.decode_frame(v2.framing.wire_from_bytes(raw))
    assert exc.value.code == Error.TOO_LONG
    with pytest.raises(FrameError) as exc:
        v2.decode_frame(v2.encode_frame(v2.Frame(1, 1, 0, 0, 1)))
    assert exc.value.code == Error.BAD_VERSION
    assert v2.decode_any(v2.encode_frame(v2.Frame(1, 1, 0, 0, 1))).version == 1


# ------------------------------------------------------------------------------ timing


@pytest.mark.parametrize("baud", [9600, 19200, 115200, 230400, 460800, 921600])
def test_slots_are_timing_py_sized_from_each_commands_reply(baud):
    for c in v2.COMMANDS.values():
        if c.broadcast in (v2.BROADCAST_SLOTTED, v2.BROADCAST_HASHED):
            assert v2.slot_us(c.name, baud) == timing.slot_us(baud, c.reply_size)
            assert v2.reply_start_us(c.name, 1, baud) == timing.turnaround_us(baud)
            wire = timing.wire_bytes(c.reply_size) * timing.char_us(baud)
            for a in (1, 246):
                this, after = (timing.v2_reply_window_us(n, baud, c.reply_size) for n in (a, a + 1))
                assert this.latest_us + wire <= after.earliest_us
        else:
            with pytest.raises(ValueError):
                v2.slot_us(c.name, baud)


def test_the_v1_probe_timeout_covers_protocol_1s_latest_reply():
    latest = timing.v1_reply_window_us(0).latest_us  # a unicast: no slot, the loop's latency
    reply = timing.wire_bytes(15) * timing.char_us(115200)
    assert v2.v1_probe_timeout_us(115200) >= latest + reply + timing.DE_HOLD_US


# ------------------------------------------------------------------------------ discover


def test_fmix32_is_murmur3s_finaliser():
    assert v2.fmix32(0) == 0
    assert v2.fmix32(1) == 0x514E28B7
    assert v2.fmix32(0xFFFFFFFF) == 0x81F16F39


@given(st.binary(min_size=8, max_size=8), st.integers(0, 2**32 - 1), st.integers(1, 247))
def test_discover_slots_are_within_the_slots_asked_for(uid, salt, slots):
    assert 1 <= v2.discover_slot(uid, salt, slots) <= slots


def test_two_uids_sharing_a_slot_part_under_another_salt():
    uids = [bytes([i, 0, 0, 0, 0, 0, 0, 0]) for i in range(64)]
    for slots in (8, 16, 64):
        first = {u: v2.discover_slot(u, 1, slots) for u in uids}
        pairs = [(a, b) for i, a in enumerate(uids) for b in uids[i + 1:] if first[a] == first[b]]
        assert pairs
        for a, b in pairs:
            assert any(v2.discover_slot(a, s, slots) != v2.discover_slot(b, s, slots) for s in range(2, 10))


# ------------------------------------------------------------------------------ actuator


@given(st.integers(-10**6, 10**6), st.integers(0, 10**6), st.integers(1, 5000), st.data())
def test_the_actuator_reaches_the_nearest_grid_point_and_the_residue_is_below_half_a_step(lo, span, res, data):
    res = min(res, span + 1)
    a = v2.Actuator(lo, lo + span, res)
    target = data.draw(st.integers(lo, lo + span))
    s = a.reach(target)
    assert lo <= s <= a.top and (s - lo) % res == 0
    if target <= a.top:
        assert -res / 2 <= target - s < res / 2
    else:
        assert 0 <= target - s < res


def test_steps_below_the_resolution_are_carried_until_they_add_up():
    a = v2.Actuator(1_000_000, 5_500_000, 1000)
    target, reached = 2_000_000, []
    for _ in range(5):
        target += 300
        reached.append(a.reach(target))
    assert reached == [2_000_000, 2_001_000, 2_001_000, 2_001_000, 2_002_000]


# ------------------------------------------------------------------------------ vectors


VECTORS = PROTO / "vectors" / "v2"
_FILES = ("frames.json", "rules.json", "timing.json", "commands.json", "update.json")


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


def test_vectors_are_current_and_deterministic(tmp_path):
    env = dict(os.environ, PYTHONHASHSEED="4321")
    subprocess.run([sys.executable, str(PROTO / "gen_vectors_v2.py"), "--out", str(tmp_path)], check=True,
                   env=env, capture_output=True)
    for name in _FILES:
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), f"{name} is stale"


def test_valid_frame_vectors_decode_to_their_fields():
    for v in _load("frames.json")["valid"]:
        f = v2.decode_any(bytes.fromhex(v["wire_hex"]))
        assert (f.version, f.dst, f.src, f.seq, f.cmd, f.payload.hex()) == (
            v["version"], v["dst"], v["src"], v["seq"], v["cmd"], v["payload_hex"]), v["name"]
        assert v2.frame_bytes(f).hex() == v["frame_hex"]
        split = v2.split_stream(bytes.fromhex(v["line_hex"]), v2.decode_any)
        assert split == [f], v["name"]


def test_malformed_frame_vectors_give_their_errors():
    for v in _load("frames.json")["malformed"]:
        with pytest.raises(FrameError) as exc:
            v2.decode_frame(bytes.fromhex(v["wire_hex"]))
        assert exc.value.name == v["error"], v["name"]


def test_rule_vectors_replay_on_a_fresh_board():
    rules = _load("rules.json")
    for p in rules["prng"]:
        g = v2.ReferenceBoard(bytes.fromhex(p["uid_hex"]), 1).prng
        assert g.state == p["seed"] and [g.next() for _ in p["draws"]] == p["draws"]
    for c in rules["cases"]:
        b = v2.ReferenceBoard(bytes.fromhex(c["uid_hex"]), v2.KINDS[c["kind"]], address=1,
                              state_min=c["state_min"], state_max=c["state_max"], resolution=c["resolution"],
                              actuator_offset=c["actuator_offset"], node_uv=c["node_uv"],
                              calibration_uv=c["calibration_uv"])
        run = lambda cmd, **f: v2.unpack_reply(cmd, v2.decode_frame(b.handle(v2.encode_frame(  # noqa: E731
            v2.request_frame(1, 0, cmd, **f))).wire).payload)
        assert run("set_state", state=c["target_before"])["status"] == 0
        assert run("configure_rule", rule=v2.RULES[c["rule"]], probability=c["probability"], gain=c["gain"],
                   dead_band_uv2=c["dead_band_uv2"])["status"] == 0
        for want in c["learns"]:
            got = run("learn")
            assert (got["state"], got["residue"], got["updated"]) == (want["state"], want["residue"],
                                                                       want["updated"]), c["name"]
            assert b.prng.state == want["draw"] and b.target == want["target"] == got["state"] + got["residue"]


def test_timing_vectors_are_timing_pys_numbers():
    t = _load("timing.json")
    for row in t["bauds"]:
        baud = row["baud"]
        assert row["turnaround_us"] == timing.turnaround_us(baud) and row["char_us"] == timing.char_us(baud)
        for name, s in row["slotted"].items():
            assert s["slot_us"] == timing.slot_us(baud, s["reply_payload"])
            for a, us in s["reply_start_us"].items():
                assert us == timing.reply_start_us(int(a), baud, s["reply_payload"])
    for q in t["quiet_ms"]:
        assert v2.quiet_ms(q["command"], **q["request"]) == q["quiet_ms"]
    for d in t["discover"]:
        for n, slot in d["slots"].items():
            assert slot == 1 + d["hash"] % int(n)


def _board_of(spec: dict, baud: int) -> v2.ReferenceBoard:
    passes = spec["self_test_passes"]
    return v2.ReferenceBoard(
        bytes.fromhex(spec["uid_hex"]), v2.KINDS[spec["kind"]], address=spec["address"],
        state_min=spec["state_min"], state_max=spec["state_max"], initial_state=spec["initial_state"],
        resolution=spec["resolution"], actuator_offset=spec["actuator_offset"], node_uv=spec["node_uv"],
        uptime_ms=spec["uptime_ms"], supply_uv=spec["supply_uv"], temperature_mdegc=spec["temperature_mdegc"],
        fw_version=tuple(spec["fw_version"]), calibration_uv=spec["calibration_uv"],
        gate_nominal=v2.GateCalibration.from_fields(spec["gate_nominal"]),
        gate_measured=v2.GateCalibration.from_fields(spec["gate_measured"]),
        storage_fails=spec["storage_fails"], self_test=lambda image: passes, baud=baud)


def _replay(case: dict) -> None:
    boards = [_board_of(s, case["baud"]) for s in case["boards"]]
    for i, ex in enumerate(case["exchanges"]):
        where = f"{case['name']} exchange {i}"
        if "event" in ex:
            b = boards[ex["board"]]
            {"power_cycle": b.power_cycle, "trigger": lambda: b.trigger(ex["width_us"]),
             "cut_power_during_next_store": lambda: setattr(b, "cut_power_during_store", True)}[ex["event"]]()
            continue
        wire = bytes.fromhex(ex["request_hex"])
        hear = ex.get("heard_by", range(len(boards)))
        got = {j: boards[j].handle(wire) for j in hear}
        want = {r["board"]: r for r in ex["replies"]}
        assert {j for j, r in got.items() if r is not None} == set(want), where
        for j, r in want.items():
            assert got[j].wire.hex() == r["reply_hex"] and got[j].start_us == r["start_us"], where
        try:
            frame = v2.decode_frame(wire)
        except FrameError:
            frame = None
        spec = v2.COMMANDS_BY_CODE.get(frame.cmd) if frame is not None else None
        if spec is not None and len(frame.payload) == spec.request_size:
            assert ex["quiet_ms"] == v2.quiet_ms(spec.name, **v2.unpack_request(spec.name, frame.payload)), where
        for r in sorted(want.values(), key=lambda r: (r["start_us"], r["board"])):
            if not r["collides"]:
                for j, other in enumerate(boards):
                    if j != r["board"]:
                        assert other.handle(bytes.fromhex(r["reply_hex"])) is None, where


@pytest.mark.parametrize("file", ["commands.json", "update.json"])
def test_command_and_update_vectors_replay_on_reference_boards(file):
    for case in _load(file)["cases"]:
        _replay(case)


def test_update_vector_images_are_their_crcs():
    for img in _load("update.json")["images"].values():
        data = bytes.fromhex(img["data_hex"])
        assert len(data) == img["size"] and v2.crc32(data) == img["image_crc32"] == zlib.crc32(data)


@pytest.mark.parametrize("piece", [1, 7, 64, 4096])
def test_stream_vectors_give_the_same_replies_in_any_pieces(piece):
    for s in _load("commands.json")["streams"]:
        b = _board_of(s["board"], v2.BAUD_DEFAULT)
        data = bytes.fromhex(s["stream_hex"])
        got = [r for i in range(0, len(data), piece) for r in b.feed(data[i:i + piece])]
        assert [(r.wire.hex(), r.start_us) for r in got] == [(r["reply_hex"], r["start_us"]) for r in s["replies"]]
