"""The golden vectors as board_sim command lines, and the checks of its answer lines.

board_sim (firmware/c/board_sim.c) reads one command per line and answers one line per
command (its header comment gives the format). Each vector set becomes a `Batch`: the lines
to feed and a check that raises AssertionError, naming the vector, on any answer that differs
from the vector. The native build (tests/test_firmware_c.py) and the ARM builds under QEMU
(tests/test_firmware_qemu.py) feed the same batches, so both are held to the same vectors.
It also holds what those tests share about the Arm toolchain: the Cortex-M flags and the
rule for a missing tool (skipped on a workstation, a failure in CI).
"""

from __future__ import annotations

import binascii
import copy
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from cobs import cobs

ROOT = Path(__file__).resolve().parents[1]
C_DIR = ROOT / "firmware" / "c"
PROTOCOL_DIR = ROOT / "firmware" / "protocol"
VECTORS = PROTOCOL_DIR / "vectors"
PROTOCOL = json.loads((PROTOCOL_DIR / "protocol.json").read_text())
ERRORS = PROTOCOL["errors"]
RULES = PROTOCOL["rules"]
KINDS = PROTOCOL["board_kinds"]

CORE_SOURCES = ["tr_codec.c", "tr_rule.c", "tr_board.c"]
HARNESS_SOURCE = "board_sim.c"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
VECTOR_FILES = ("frames.json", "rules.json", "commands.json")

# The RP2040's core (RP2040 datasheet, section 2.1: two Cortex-M0+, ARMv6-M, no divider in
# the core); the flags of a firmware build.
M0PLUS = ["-mcpu=cortex-m0plus", "-mthumb"]
EXTRA_WARNINGS = ["-Wconversion", "-Wsign-conversion", "-Wshadow"]


def load(name: str) -> dict:
    """One vector file of firmware/protocol/vectors, parsed."""
    return json.loads((VECTORS / name).read_text())


def load_all() -> dict[str, dict]:
    """Every vector file by name (a fresh copy: a caller may change it)."""
    return {name: load(name) for name in VECTOR_FILES}


def hex_arg(b: bytes) -> str:
    """Bytes as board_sim's hex argument ("-" for none)."""
    return b.hex() or "-"


def chunk_of(wire: bytes) -> bytes:
    """The chunk of a wire string: one trailing 0x00 delimiter removed (as the host does)."""
    return wire[:-1] if wire.endswith(b"\x00") else wire


def frame_bytes(dst: int, seq: int, cmd: int, payload: bytes = b"", src: int = 0) -> bytes:
    """A raw protocol-1 frame (header, payload, CRC-16/CCITT-FALSE big-endian)."""
    body = bytes([1, dst, src, seq, cmd]) + payload
    return body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big")


def parse_replies(line: str) -> list[tuple[bytes, int]]:
    """A `send` answer as (wire bytes, delay in ms) per reply."""
    if line == "none":
        return []
    words = line.split()
    assert len(words) % 3 == 0 and words[0::3] == ["reply"] * (len(words) // 3), line
    return [(bytes.fromhex(w), int(d)) for w, d in zip(words[1::3], words[2::3])]


def parse_telemetry(line: str) -> tuple[int, ...]:
    """A read_telemetry answer as (status, uptime_ms, frames_ok, frames_bad, updates,
    last_error)."""
    (wire, _), = parse_replies(line)
    raw = cobs.decode(chunk_of(wire))
    p = raw[5:-2]
    assert len(p) == 18, line
    return (p[0], int.from_bytes(p[1:5], "little"), int.from_bytes(p[5:9], "little"),
            int.from_bytes(p[9:13], "little"), int.from_bytes(p[13:17], "little"), p[17])


def code_of(table: dict, value) -> int:
    """A protocol.json name (rule, kind, error) or a number, as its number."""
    return table[value] if isinstance(value, str) else int(value)


def board_line(board: dict) -> str:
    """The `board` line that powers on a simulated board described as in commands.json."""
    fw = board.get("fw_version", [0, 1, 0])
    return " ".join(str(x) for x in (
        "board", board["address"], board["uid_hex"], code_of(KINDS, board["kind"]), board["state_min"],
        board["state_max"], board["initial_state"], *fw, *board["node_uv"], board["uptime_ms"]))


@dataclass(frozen=True)
class Batch:
    """One vector set as board_sim lines, and the check of the answers to them."""

    name: str
    lines: list[str]
    check: Callable[[list[str]], None]  # raises AssertionError on any mismatch

    def verify(self, out: list[str]) -> None:
        assert len(out) == len(self.lines), f"{self.name}: {len(out)} answers to {len(self.lines)} lines"
        self.check(out)


def _same(got, want, label: str) -> None:
    assert got == want, f"{label}: got {got!r}, want {want!r}"


def frames_valid(valid: list[dict]) -> Batch:
    """Each valid frame decoded (fields), encoded (wire bytes) and its CRC."""
    lines = []
    for v in valid:
        lines.append(f"decode {hex_arg(chunk_of(bytes.fromhex(v['wire_hex'])))}")
        lines.append(f"encode {v['version']} {v['dst']} {v['src']} {v['seq']} {v['cmd']} "
                     f"{v['payload_hex'] or '-'}")
        frame = bytes.fromhex(v["frame_hex"])
        lines.append(f"crc {hex_arg(frame[:-2])}")

    def check(out: list[str]) -> None:
        for i, v in enumerate(valid):
            decoded, encoded, crc = out[3 * i: 3 * i + 3]
            want = f"ok {v['version']} {v['dst']} {v['src']} {v['seq']} {v['cmd']} {v['payload_hex'] or '-'}"
            _same(decoded, want, f"{v['name']} decode")
            _same(encoded, v["wire_hex"], f"{v['name']} encode")
            frame = bytes.fromhex(v["frame_hex"])
            _same(crc, frame[-2:].hex(), f"{v['name']} crc")
            _same(frame[:5], bytes([v["version"], v["dst"], v["src"], v["seq"], v["cmd"]]),
                  f"{v['name']} header")
            _same(frame[5:-2].hex(), v["payload_hex"], f"{v['name']} payload")

    return Batch("frames valid", lines, check)


def frames_malformed(malformed: list[dict]) -> Batch:
    """Each malformed chunk decoded: the exact error code."""
    lines = [f"decode {hex_arg(chunk_of(bytes.fromhex(v['wire_hex'])))}" for v in malformed]

    def check(out: list[str]) -> None:
        for v, got in zip(malformed, out):
            _same(got, f"err {ERRORS[v['error']]}", v["name"])

    return Batch("frames malformed", lines, check)


def frames_malformed_board(malformed: list[dict]) -> Batch:
    """Each malformed wire through a board's byte-stream receiver: no reply, then
    read_telemetry shows it counted in frames_bad with its error as last_error (a zero inside
    a chunk makes two chunks for a stream: both bad_cobs)."""
    lines = []
    for v in malformed:
        lines.append("board 5 0102030405060708 1 0 99 50 0 1 0 0 0 0 0 1000")
        lines.append(f"send {v['wire_hex']}")
        lines.append(f"send {cobs.encode(frame_bytes(5, 7, 7)).hex()}00")  # read_telemetry

    def check(out: list[str]) -> None:
        for i, v in enumerate(malformed):
            _, reply, tele = out[3 * i: 3 * i + 3]
            _same(reply, "none", v["name"])
            chunks = [c for c in chunk_of(bytes.fromhex(v["wire_hex"])).split(b"\x00") if c]
            status, uptime, ok, bad, updates, last = parse_telemetry(tele)
            _same((status, ok, bad, updates), (0, 1, len(chunks), 0), f"{v['name']} counters")
            _same(last, ERRORS[v["error"]], f"{v['name']} last_error")

    return Batch("frames malformed through a board", lines, check)


def prng(vectors: list[dict]) -> Batch:
    """The generator's seed and draws for each uid."""
    lines = [f"prng {v['uid_hex']} {len(v['draws'])}" for v in vectors]

    def check(out: list[str]) -> None:
        for v, line in zip(vectors, out):
            seed, *draws = map(int, line.split())
            _same(seed, v["seed"], f"{v['uid_hex']} seed")
            _same(draws, v["draws"], f"{v['uid_hex']} draws")

    return Batch("prng", lines, check)


def rule_cases(cases: list[dict]) -> Batch:
    """Each rule case: drops, contrast, whether it updated and the state after."""
    lines = [" ".join(str(x) for x in (
        "rule", code_of(RULES, c["rule"]), c["probability"], c["gain"], c["dead_band_uv2"],
        c["state_min"], c["state_max"], c["state_before"], c["uid_hex"], c["draws_before"],
        *c["calibration_uv"], *c["node_uv"])) for c in cases]

    def check(out: list[str]) -> None:
        for c, line in zip(cases, out):
            dvf, dvc, contrast, updated, after = map(int, line.split())
            _same((dvf, dvc), (c["dv_free_uv"], c["dv_clamped_uv"]), f"{c['name']} drops")
            _same(contrast, c["contrast_uv2"], f"{c['name']} contrast")
            _same(updated, c["updated"], f"{c['name']} updated")
            _same(after, c["state_after"], f"{c['name']} state_after")

    return Batch("rule cases", lines, check)


def command_cases(cases: list[dict]) -> Batch:
    """Each command sequence on a freshly powered board: every reply byte for byte, none
    where none is due, and a slotted broadcast answer's delay (slot `address`, 2 ms each)."""
    lines: list[str] = []
    where: list[tuple[dict, int] | None] = []
    for c in cases:
        lines.append(board_line(c["board"]))
        where.append(None)
        for i, ex in enumerate(c["exchanges"]):
            lines.append(f"send {ex['request_hex']}")
            where.append((c, i))

    def check(out: list[str]) -> None:
        checked = 0
        for w, line in zip(where, out):
            if w is None:
                _same(line, "ok", "board")
                continue
            c, i = w
            ex = c["exchanges"][i]
            replies = parse_replies(line)
            label = f"{c['name']} exchange {i} ({ex['request_hex']})"
            if ex["reply_hex"] is None:
                _same(replies, [], label)
            else:
                _same(len(replies), 1, label)
                wire, delay = replies[0]
                _same(wire.hex(), ex["reply_hex"], label)
                dst = cobs.decode(chunk_of(bytes.fromhex(ex["request_hex"])))[1]
                _same(delay, 2 * c["board"]["address"] if dst == 255 else 0, f"{label} delay")
            checked += 1
        assert checked == sum(len(c["exchanges"]) for c in cases) > 0, checked

    return Batch("command cases", lines, check)


def streams(cases: list[dict]) -> Batch:
    """Line noise, then frames with a 0x00 before as well as after: every frame that had its
    leading 0x00 answered, byte for byte (the whole stream in one send, and in pieces of 97
    bytes after a fresh power-on)."""
    lines: list[str] = []
    spans: list[tuple[dict, int, int]] = []
    for case in cases:
        stream = bytes.fromhex(case["stream_hex"])
        pieces = [stream[i:i + 97] for i in range(0, len(stream), 97)]
        start = len(lines)
        lines += [board_line(case["board"]), f"send {hex_arg(stream)}", board_line(case["board"]),
                  *(f"send {hex_arg(p)}" for p in pieces)]
        spans.append((case, start, len(lines)))

    def check(out: list[str]) -> None:
        for case, start, end in spans:
            part = out[start:end]
            whole = [r.hex() for r, _ in parse_replies(part[1])]
            split = [r.hex() for line in part[3:] for r, _ in parse_replies(line)]
            _same(whole, case["replies_hex"], f"{case['name']} whole stream")
            _same(split, case["replies_hex"], f"{case['name']} in pieces")

    return Batch("streams", lines, check)


def golden_batches(vectors: dict[str, dict] | None = None) -> list[Batch]:
    """Every vector set as a batch: frames (valid, malformed, malformed through a board), the
    generator, the rule cases, the command sequences and the streams. `vectors` (as from
    `load_all`) defaults to the files; a test may pass changed copies."""
    v = copy.deepcopy(vectors) if vectors is not None else load_all()
    frames, rules, commands = v["frames.json"], v["rules.json"], v["commands.json"]
    return [frames_valid(frames["valid"]), frames_malformed(frames["malformed"]),
            frames_malformed_board(frames["malformed"]), prng(rules["prng"]),
            rule_cases(rules["cases"]), command_cases(commands["cases"]),
            streams(commands["streams"])]


# ------------------------------------------------------------------------- Arm toolchain


def require_tool(name: str) -> str:
    """The path of an Arm tool; a missing one skips the test, except under CI=true (CI
    installs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm: .ci/install-deps),
    where it fails."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not on PATH")
    return path


def require_newlib(gcc: str) -> None:
    """Skip (or, under CI=true, fail) when newlib's semihosting specs are not installed."""
    res = subprocess.run([gcc, *M0PLUS, "-print-file-name=rdimon.specs"], capture_output=True, text=True,
                         timeout=60)
    if not Path(res.stdout.strip()).is_file():
        missing("newlib for arm-none-eabi (rdimon.specs) is not installed")


def missing(why: str) -> None:
    """Skip the test for a missing tool, or fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI installs it (.ci/install-deps)")
    pytest.skip(why)
