"""Protocol 2's golden vectors as board_sim2 command lines, and the checks of its answers.

board_sim2 (firmware/c/board_sim2.c) reads one command per line and answers one line per
command (its header comment gives the format). Each vector set of
firmware/protocol/vectors/v2/ becomes a :class:`Batch`: the lines to feed and a check that
raises AssertionError naming the case on any answer that differs from the vectors. The
native builds (tests/test_firmware_c_v2.py) and the Arm builds under QEMU
(tests/test_firmware_qemu_v2.py) feed the same batches.

A bus session (commands.json, update.json; firmware/protocol/gen_v2/bus.py) is replayed as
the reference bus recorded it: every board that heard the request gets it, and every reply
that did not collide is then fed to the other boards, as on a real bus (that is how a board
notices another at its own address, PROTOCOL.md "Finding boards"). Each board's answer must
be exactly its recorded reply, bytes and earliest start after the end of frame (us), or
none. The quiet times and the host's listen times in the vectors are the host's to keep,
not a board's, and are checked by the host's tests.

A board's actuator calibration (protocol 2.1, PROTOCOL.md "Actuator calibration") is the
port's, not the core's: after its `board` line, two `gate` lines give the simulated port the
description's `gate_nominal` (in use until calibrate_actuator) and `gate_measured` (what the
gate measures when it calibrates); a description without them gets the reference board's
defaults, as ReferenceBoard does.
"""

from __future__ import annotations

import copy
import functools
import json
from binascii import crc_hqx
from typing import Callable

from cobs import cobs

from firmware_c_lines import PROTOCOL_DIR, Batch, chunk_of, hex_arg

VECTORS_V2 = PROTOCOL_DIR / "vectors" / "v2"
PROTOCOL_V2 = json.loads((PROTOCOL_DIR / "protocol-2.json").read_text())
ERRORS = PROTOCOL_V2["errors"]
RULES = PROTOCOL_V2["rules"]
KINDS = PROTOCOL_V2["board_kinds"]
VECTOR_FILES = ("frames.json", "rules.json", "timing.json", "commands.json", "update.json")

CORE_SOURCES_V2 = ["tr_codec.c", "tr_rule.c", "tr2_codec.c", "tr2_state.c", "tr2_board.c", "tr2_update.c"]
HEADERS_V2 = ["twinrig_core.h", "twinrig_core2.h"]
HARNESS_V2 = "board_sim2.c"
STREAM_PIECES = (97, 251)  # a stream is fed in pieces of these sizes (bytes), any split is valid
BAUD_DEFAULT = PROTOCOL_V2["baud_default"]


def load(name: str) -> dict:
    """One vector file of firmware/protocol/vectors/v2, parsed."""
    return json.loads((VECTORS_V2 / name).read_text())


def load_all() -> dict[str, dict]:
    """Every v2 vector file by name (a fresh copy: a caller may change it)."""
    return {name: load(name) for name in VECTOR_FILES}


def _same(got, want, label: str) -> None:
    assert got == want, f"{label}: got {got!r}, want {want!r}"


def parse_replies(line: str) -> list[tuple[str, int]]:
    """A `send` answer as (wire hex, start us after the end of frame) per reply."""
    if line == "none":
        return []
    words = line.split()
    assert len(words) % 3 == 0 and words[0::3] == ["reply"] * (len(words) // 3), line
    return [(w, int(t)) for w, t in zip(words[1::3], words[2::3])]


#: The fields of a gate table in board_sim2's order (GateCalibration.fields()).
GATE_FIELDS = ("charge_gate_uv", "charge_nv_per_us", "discharge_gate_uv", "discharge_nv_per_us", "leak_uv_per_s")


@functools.lru_cache(maxsize=None)
def default_gates() -> tuple[dict, dict]:
    """The reference board's gate tables when its description gives none: (nominal,
    measured) as ReferenceBoard's constructor takes them."""
    from instruments.bus import v2

    board = v2.ReferenceBoard(bytes(8), v2.KINDS["mosfet"])
    nominal = board.gate_calibration.fields()
    board.handle(v2.encode_frame(v2.request_frame(v2.ADDR_UNASSIGNED, 0, "calibrate_actuator"))[:-1])
    return nominal, board.gate_calibration.fields()


def table_words(table: dict) -> str:
    """A gate table (GateCalibration.fields()) as board_sim2's 21 numbers."""
    return " ".join(str(x) for name in GATE_FIELDS for x in (table[name] if name != "leak_uv_per_s"
                                                             else [table[name]]))


def gate_lines(index: int, spec: dict) -> list[str]:
    """The `gate` lines that give board `index`'s port its nominal and measured tables."""
    nominal, measured = (spec["gate_nominal"], spec["gate_measured"]) if "gate_nominal" in spec else default_gates()
    return [f"gate {index} 0 {table_words(nominal)}", f"gate {index} 1 {table_words(measured)}"]


def board_lines(index: int, spec: dict, baud: int = BAUD_DEFAULT) -> list[str]:
    """The board line and its gate lines: a board as the vectors describe it, powered on."""
    return [board_line(index, spec, baud), *gate_lines(index, spec)]


def board_line(index: int, spec: dict, baud: int = BAUD_DEFAULT) -> str:
    """The `board` line that builds a board with fresh flash, as the vectors describe it,
    and powers it on."""
    kind = KINDS[spec["kind"]] if isinstance(spec["kind"], str) else int(spec["kind"])
    return " ".join(str(x) for x in (
        "board", index, spec["address"], spec["uid_hex"], kind, spec["state_min"], spec["state_max"],
        spec.get("initial_state", spec["state_min"]), spec["resolution"], spec["actuator_offset"],
        *spec.get("fw_version", (2, 0, 0)), *spec["node_uv"], spec.get("uptime_ms", 0),
        spec.get("supply_uv", 3_300_000), spec.get("temperature_mdegc", 25_000), *spec["calibration_uv"],
        int(spec.get("storage_fails", False)), int(spec.get("self_test_passes", True)), baud))


class _Lines:
    """Lines with the expectation for each one's answer."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.expect: list[Callable[[str], None]] = []

    def add(self, line: str, expect: Callable[[str], None]) -> None:
        self.lines.append(line)
        self.expect.append(expect)

    def batch(self, name: str) -> Batch:
        expect = list(self.expect)

        def check(out: list[str]) -> None:
            for fn, got in zip(expect, out):
                fn(got)

        return Batch(name, list(self.lines), check)


def _answer_is(want: str, label: str) -> Callable[[str], None]:
    return lambda got: _same(got, want, label)


def _replies_are(want: list[tuple[str, int]], label: str) -> Callable[[str], None]:
    return lambda got: _same(parse_replies(got), want, label)


# ------------------------------------------------------------------------- frames


def _decoded_as_board(v: dict) -> str:
    """What a board's receive checks make of a valid frame (PROTOCOL.md "Receiving", check
    5): protocol 2's frames and the version-1 identify probe pass, any other version is
    bad_version."""
    probe = v["version"] == 1 and v["cmd"] == 1 and not v["payload_hex"]
    if v["version"] != 2 and not probe:
        return f"err {ERRORS['bad_version']}"
    return f"ok {v['version']} {v['dst']} {v['src']} {v['seq']} {v['cmd']} {v['payload_hex'] or '-'}"


def frames_valid(valid: list[dict]) -> Batch:
    """Each valid frame decoded by the board's checks and encoded back to its wire bytes."""
    ls = _Lines()
    for v in valid:
        ls.add(f"decode {hex_arg(chunk_of(bytes.fromhex(v['wire_hex'])))}",
               _answer_is(_decoded_as_board(v), f"{v['name']} decode"))
        ls.add(f"encode {v['version']} {v['dst']} {v['src']} {v['seq']} {v['cmd']} {v['payload_hex'] or '-'}",
               _answer_is(v["wire_hex"], f"{v['name']} encode"))
    return ls.batch("frames valid")


def _telemetry_request(dst: int, seq: int) -> str:
    """A read_telemetry request's wire bytes, hex."""
    body = bytes([2, dst, 0, seq, 7])
    return (cobs.encode(body + crc_hqx(body, 0xFFFF).to_bytes(2, "big")) + b"\x00").hex()


def _telemetry_counts(line: str) -> tuple[int, int, int, int]:
    """(status, frames_ok, frames_bad, last_error) of a read_telemetry reply."""
    (wire, _), = parse_replies(line)
    p = cobs.decode(chunk_of(bytes.fromhex(wire)))[5:-2]
    assert len(p) == 40, line
    return p[0], int.from_bytes(p[5:9], "little"), int.from_bytes(p[9:13], "little"), p[25]


def _chunk_error(chunk: bytes) -> int:
    """The receive error of one chunk by the host's reference decoder (decode_any, with
    the board's version check)."""
    from instruments.bus.v2.framing import FrameError, decode_any

    try:
        f = decode_any(chunk)
    except FrameError as exc:
        return int(exc.code)
    assert f.version not in (1, 2), f
    return ERRORS["bad_version"]


def frames_malformed(malformed: list[dict]) -> Batch:
    """Each malformed chunk: the exact error code from the decoder, and through a board's
    byte receiver no reply, every chunk counted in frames_bad and the last one's error as
    last_error (a zero inside a chunk makes two chunks of a stream: the first is bad_cobs,
    the second whatever it decodes to on its own)."""
    ls = _Lines()
    spec = {"address": 5, "uid_hex": "0102030405060708", "kind": "digipot", "state_min": 0, "state_max": 99,
            "resolution": 1, "actuator_offset": 0, "node_uv": [0, 0, 0, 0], "calibration_uv": [0, 0, 0, 0]}
    for v in malformed:
        name, wire = v["name"], bytes.fromhex(v["wire_hex"])
        ls.add(f"decode {hex_arg(chunk_of(wire))}", _answer_is(f"err {ERRORS[v['error']]}", f"{name} decode"))
        ls.add(board_line(0, spec), _answer_is("ok", f"{name} board"))
        ls.add(f"send 0 {wire.hex()}", _answer_is("none", f"{name} through a board"))
        chunks = [c for c in chunk_of(wire).split(b"\x00") if c]
        code = ERRORS[v["error"]] if len(chunks) == 1 else _chunk_error(chunks[-1])

        def counted(got: str, name=name, chunks=len(chunks), code=code) -> None:
            _same(_telemetry_counts(got), (0, 1, chunks, code), f"{name}: status, frames_ok, frames_bad, last_error")

        ls.add(f"send 0 {_telemetry_request(5, 1)}", counted)
    return ls.batch("frames malformed")


# ------------------------------------------------------------------------- rules, timing


def prng(vectors: list[dict]) -> Batch:
    ls = _Lines()
    for v in vectors:
        ls.add(f"prng {v['uid_hex']} {len(v['draws'])}",
               _answer_is(" ".join(map(str, [v["seed"], *v["draws"]])), f"prng {v['uid_hex']}"))
    return ls.batch("prng")


def rule_cases(cases: list[dict]) -> Batch:
    """Each rule case from a fresh board: per learn the draw, drops, contrast, updated, and
    the target, state reached and residue carried."""
    ls = _Lines()
    for c in cases:
        spec = dict(c, address=1)
        ls.add(board_line(0, spec), _answer_is("ok", f"{c['name']} board"))
        ls.add(" ".join(str(x) for x in ("rule", 0, RULES[c["rule"]], c["probability"], c["gain"],
                                          c["dead_band_uv2"], c["target_before"], len(c["learns"]))),
               _answer_is(" ; ".join(" ".join(str(r[k]) for k in (
                   "draw", "dv_free_uv", "dv_clamped_uv", "contrast_uv2", "updated", "target", "state", "residue"))
                   for r in c["learns"]), f"{c['name']} learns"))
    return ls.batch("rule cases")


def timing(t: dict) -> Batch:
    """Per baud rate: the character time, the turnaround, each slotted command's slot and
    reply starts by address; discover's hash and slot per uid and salt; fmix32."""
    ls = _Lines()
    for b in t["bauds"]:
        for name, s in b["slotted"].items():
            for addr, start in s["reply_start_us"].items():
                want = f"{b['char_us']} {b['turnaround_us']} {s['slot_us']} {start}"
                ls.add(f"timing {b['baud']} {s['reply_payload']} {addr}",
                       _answer_is(want, f"{b['baud']} baud {name} slot {addr}"))
    for d in t["discover"]:
        ls.add(f"hash {d['uid_hex']} {d['salt']}", _answer_is(str(d["hash"]), f"hash {d['uid_hex']} {d['salt']}"))
        for n, slot in d["slots"].items():
            ls.add(f"slot {d['uid_hex']} {d['salt']} {n}",
                   _answer_is(str(slot), f"slot {d['uid_hex']} salt {d['salt']} of {n}"))
    for x, y in t["fmix32"]:
        ls.add(f"fmix {x}", _answer_is(str(y), f"fmix32({x})"))
    return ls.batch("timing")


# ------------------------------------------------------------------------- bus sessions


def bus_sessions(name: str, cases: list[dict]) -> Batch:
    """Each session replayed on fresh boards: every board's answer to every request, and
    silence from every board to every reply the others heard."""
    ls = _Lines()
    for c in cases:
        n = len(c["boards"])
        ls.add("bus", _answer_is("ok", f"{c['name']} bus"))
        for i, spec in enumerate(c["boards"]):
            for line in board_lines(i, spec, c["baud"]):
                ls.add(line, _answer_is("ok", f"{c['name']} board {i}"))
        for k, ex in enumerate(c["exchanges"]):
            label = f"{c['name']} exchange {k}"
            if "event" in ex:
                i, ev = ex["board"], ex["event"]
                line = {"power_cycle": f"power {i}", "cut_power_during_next_store": f"cut {i}",
                        "trigger": f"trigger {i} {ex.get('width_us')}"}[ev]
                ls.add(line, _answer_is("ok", f"{label} {ev}"))
                continue
            for i in ex.get("heard_by", range(n)):
                want = [(r["reply_hex"], r["start_us"]) for r in ex["replies"] if r["board"] == i]
                ls.add(f"send {i} {ex['request_hex']}", _replies_are(want, f"{label} board {i} ({ex['request_hex']})"))
            for r in ex["replies"]:
                if r["collides"]:
                    continue
                for j in range(n):
                    if j != r["board"]:
                        ls.add(f"send {j} {r['reply_hex']}",
                               _answer_is("none", f"{label} board {j} hearing board {r['board']}'s reply"))
    return ls.batch(name)


def streams(cases: list[dict]) -> Batch:
    """Line noise, then frames as the host sends them: the same replies (bytes and start
    times), in order, whatever pieces the stream arrives in."""
    ls = _Lines()
    for case in cases:
        stream = bytes.fromhex(case["stream_hex"])
        want = [(r["reply_hex"], r["start_us"]) for r in case["replies"]]
        for size in STREAM_PIECES:
            for line in board_lines(0, case["board"]):
                ls.add(line, _answer_is("ok", f"{case['name']} board"))
            start = len(ls.lines)
            pieces = [stream[i:i + size] for i in range(0, len(stream), size)]
            got: list[tuple[str, int]] = []

            def collect(line: str, got=got) -> None:
                got.extend(parse_replies(line))

            def last(line: str, got=got, label=f"{case['name']} in pieces of {size} bytes") -> None:
                got.extend(parse_replies(line))
                _same(got, want, label)
                got.clear()

            for p in pieces[:-1]:
                ls.add(f"send 0 {p.hex()}", collect)
            ls.add(f"send 0 {pieces[-1].hex()}", last)
            assert len(ls.lines) - start == len(pieces)
    return ls.batch("streams")


def golden_batches(vectors: dict[str, dict] | None = None) -> list[Batch]:
    """Every v2 vector set as a batch. `vectors` (as from `load_all`) defaults to the
    files; a test may pass changed copies."""
    v = copy.deepcopy(vectors) if vectors is not None else load_all()
    frames, rules, commands, update = v["frames.json"], v["rules.json"], v["commands.json"], v["update.json"]
    return [frames_valid(frames["valid"]), frames_malformed(frames["malformed"]), prng(rules["prng"]),
            rule_cases(rules["cases"]), timing(v["timing.json"]), bus_sessions("command cases", commands["cases"]),
            streams(commands["streams"]), bus_sessions("update cases", update["cases"])]


__all__ = ["Batch", "CORE_SOURCES_V2", "HARNESS_V2", "HEADERS_V2", "board_line", "board_lines", "gate_lines",
           "golden_batches", "load_all", "parse_replies", "table_words"]
