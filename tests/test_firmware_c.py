"""The edge board's portable C core (firmware/c): a strict build, every golden vector, a fuzz.

The core is compiled with ``gcc -std=c99 -Wall -Wextra -Werror -pedantic`` (at -O0 and -O2,
so a warning only one optimisation level finds still fails) together with ``board_sim.c``, a
host harness that reads one command per line on stdin and answers one line on stdout. The
test turns the JSON vectors into those lines (tests/firmware_c_lines.py, shared with the
ARM builds under QEMU), runs the harness once per test and compares (see the harness's header
comment for the line format). When the compiler supports it, the
fuzz runs under AddressSanitizer and UBSan. Skipped only when gcc is missing.
"""

from __future__ import annotations

import binascii
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cobs import cobs

import firmware_c_lines as vectors
from firmware_c_lines import (C_DIR, CORE_SOURCES, HARNESS_SOURCE, RULES, STRICT, board_line, chunk_of,
                              frame_bytes, hex_arg, load)

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]

GCC = shutil.which("gcc")
pytestmark = pytest.mark.skipif(GCC is None, reason="gcc is not on PATH")

TIMEOUT_S = 60


def _gcc(args: list[str], cwd: Path) -> None:
    res = subprocess.run([GCC, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and not res.stderr.strip(), (
        f"gcc {' '.join(args)} failed or warned:\n{res.stdout}{res.stderr}")


class Harness:
    """Runs ``board_sim`` on a batch of command lines and returns its answer lines."""

    def __init__(self, exe: Path, env: dict | None = None) -> None:
        self.exe = exe
        self.env = env

    def run(self, lines: list[str]) -> list[str]:
        res = subprocess.run([str(self.exe)], input="".join(l + "\n" for l in lines),
                             capture_output=True, text=True, timeout=TIMEOUT_S, env=self.env)
        assert res.returncode == 0, f"board_sim exited {res.returncode}:\n{res.stderr[-4000:]}"
        assert not res.stderr, res.stderr[-4000:]
        out = res.stdout.splitlines()
        assert len(out) == len(lines), (len(out), len(lines))
        return out


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("firmware_c")


@pytest.fixture(scope="module")
def harness(build_dir) -> Harness:
    """The core compiled warning-free at -O0 and -O2, and the harness linked at -O2."""
    srcs = [str(C_DIR / s) for s in CORE_SOURCES]
    for opt in ("-O0", "-O2"):
        for src in srcs:
            obj = build_dir / f"{Path(src).stem}{opt}.o"
            _gcc([*STRICT, opt, "-c", src, "-o", str(obj)], build_dir)
    exe = build_dir / "board_sim"
    _gcc([*STRICT, "-O2", *srcs, str(C_DIR / HARNESS_SOURCE), "-o", str(exe)], build_dir)
    return Harness(exe)


@pytest.fixture(scope="module")
def fuzz_harness(build_dir, harness) -> Harness:
    """The harness with ASan+UBSan when this gcc can build and run it, else the plain one."""
    exe = build_dir / "board_sim_san"
    srcs = [str(C_DIR / s) for s in [*CORE_SOURCES, HARNESS_SOURCE]]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    res = subprocess.run([GCC, *STRICT, "-O1", *SANITIZE, *srcs, "-o", str(exe)], cwd=build_dir,
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        return harness
    probe = subprocess.run([str(exe)], input="crc 00\n", capture_output=True, text=True,
                           timeout=TIMEOUT_S, env=env)
    if probe.returncode != 0 or probe.stderr:
        return harness
    return Harness(exe, env)


def _check(harness: Harness, batch: vectors.Batch) -> None:
    """Feed a vector set's lines and check every answer against the vectors."""
    batch.verify(harness.run(batch.lines))


# ------------------------------------------------------------------------- build, CRC, COBS


def test_core_builds_warning_free_with_strict_flags(harness, build_dir):
    for stem in ("tr_codec", "tr_rule", "tr_board"):
        for opt in ("-O0", "-O2"):
            assert (build_dir / f"{stem}{opt}.o").stat().st_size > 0
    assert harness.exe.exists()


def test_core_needs_nothing_from_libc(harness, build_dir):
    """No malloc, no stdio, no floating point, no libc at all: the core's objects reference
    only each other, at -O0 and -O2 (the Cortex-M0+ build's check, which also allows libgcc's
    helpers, is tests/test_firmware_arm.py)."""
    for name in [*CORE_SOURCES, "twinrig_core.h"]:
        code = re.sub(r"/\*.*?\*/", "", (C_DIR / name).read_text(), flags=re.S)
        for banned in ("malloc", "calloc", "realloc", "free", "stdio", "stdlib", "float", "double"):
            assert not re.search(rf"\b{banned}\b", code), f"{name} uses {banned}"
    nm = shutil.which("nm")
    if nm is None:
        return
    for stem in ("tr_codec", "tr_rule", "tr_board"):
        for opt in ("-O0", "-O2"):
            res = subprocess.run([nm, "-u", str(build_dir / f"{stem}{opt}.o")], capture_output=True,
                                 text=True, check=True)
            undefined = {line.split()[-1] for line in res.stdout.splitlines() if line.strip()}
            extra = {u for u in undefined if not u.startswith("tr_")}
            assert not extra, f"{stem}{opt}.o needs {sorted(extra)}"


def test_crc16_is_ccitt_false(harness):
    rng = np.random.default_rng(11)
    data = [b"123456789", b""] + [rng.bytes(int(n)) for n in rng.integers(0, 200, 200)]
    out = harness.run([f"crc {hex_arg(d)}" for d in data])
    assert out[0] == "29b1"  # the catalogue check value of CRC-16/CCITT-FALSE
    assert out == [f"{binascii.crc_hqx(d, 0xFFFF):04x}" for d in data]


def test_cobs_encoding_matches_the_cobs_package(harness):
    rng = np.random.default_rng(12)
    data = [b"", b"\x00", b"\x01" * 254, b"\x01" * 254 + b"\x00", b"\x01" * 255, b"\x01" * 508]
    for n in rng.integers(0, 700, 500):
        b = rng.integers(0, 256, int(n), dtype=np.uint8)
        b[rng.random(int(n)) < rng.random()] = 1  # runs of non-zero bytes of every length
        data.append(b.tobytes())
    out = harness.run([f"cobs {hex_arg(d)}" for d in data])
    assert out == [hex_arg(cobs.encode(d)) for d in data]


# ------------------------------------------------------------------------- golden vectors


def test_frames_valid_vectors(harness):
    _check(harness, vectors.frames_valid(load("frames.json")["valid"]))


def test_frames_malformed_vectors_give_the_exact_error(harness):
    _check(harness, vectors.frames_malformed(load("frames.json")["malformed"]))


def test_frames_malformed_vectors_through_a_board_are_dropped_and_counted(harness):
    """Each malformed wire through the board's byte-stream receiver: no reply, frames_bad,
    last_error (a zero inside a chunk makes two chunks for a stream: both bad_cobs)."""
    _check(harness, vectors.frames_malformed_board(load("frames.json")["malformed"]))


def test_prng_vectors(harness):
    _check(harness, vectors.prng(load("rules.json")["prng"]))


def test_rule_vectors(harness):
    _check(harness, vectors.rule_cases(load("rules.json")["cases"]))


def test_rule_with_random_gains_up_to_2_to_the_40_matches_the_reference(fuzz_harness):
    """The 64-bit split of round(c * gain / 2^48) in C (under UBSan when available, so a
    signed overflow fails) on random contrasts (every size, both signs, both clips), gains
    below 2^40 and states anywhere in i32, against the reference's exact big integers:
    20,000 cases."""
    from instruments.bus import protocol as P

    rng = np.random.default_rng(40)
    n = 20_000
    scale = 2.0 ** rng.uniform(0, 21, (n, 2))  # drops from 1 uV to 2 V: contrasts of every size
    drops = np.rint(scale * rng.choice([-1, 1], (n, 2))).astype(np.int64)
    gains = np.where(rng.random(n) < 0.8, rng.integers(0, 1 << 40, n),
                     rng.choice([0, 1, (1 << 24) - 1, 1 << 24, 1 << 39, (1 << 40) - 1], n))
    states = rng.integers(P.I32_MIN, P.I32_MAX, n, endpoint=True)
    lines, want = [], []
    for (dvf, dvc), gain, state in zip(drops.tolist(), gains.tolist(), states.tolist()):
        node = [dvf, 0, dvc, 0]
        lines.append(" ".join(str(x) for x in (
            "rule", RULES["continuous"], 65536, gain, 0, P.I32_MIN, P.I32_MAX, state, "0102030405060708", 0,
            0, 0, 0, 0, *node)))
        res = P.learn_step(rule=P.Rule.CONTINUOUS, probability=65536, gain=gain, dead_band_uv2=0, state=state,
                           state_min=P.I32_MIN, state_max=P.I32_MAX, draw=1, node_uv=node)
        want.append(f"{dvf} {dvc} {res['contrast_uv2']} 1 {res['state']}")
    assert fuzz_harness.run(lines) == want


def test_the_mean_gate_change_is_zero_with_nothing_to_learn(harness):
    """100,000 gate-charging updates of the C rule (the Gen-2 gain at 100 us), the free and
    the clamped edge carrying the same drop (0.2..0.4 V) with independent read-out noise of
    +-200 uV on each terminal: nothing to learn. The mean gate change per update is within
    0.01 uV of zero (the rule rounds to nearest, symmetric in sign) and every change equals
    the reference's; the floor of protocol minor 0 would drift by about -1/2 uV per update."""
    from instruments.bus import protocol as P

    gain = P.gate_gain(100e-6, 1e3, 2.2e-6, 0.1)
    rng = np.random.default_rng(100)
    n = 100_000
    d = rng.integers(200_000, 400_000, n)
    e = rng.integers(-200, 201, (n, 4))
    nodes = np.stack([1_000_000 + d + e[:, 0], 1_000_000 + e[:, 1], 1_000_000 + d + e[:, 2],
                      1_000_000 + e[:, 3]], axis=1).tolist()
    state = 3_000_000
    lines = [" ".join(str(x) for x in ("rule", RULES["gate_charging"], 65536, gain, 0, 1_000_000, 5_500_000,
                                       state, "0102030405060708", 0, 0, 0, 0, 0, *node)) for node in nodes]
    deltas = np.array([int(line.split()[4]) - state for line in harness.run(lines)])
    contrasts = [P.contrast_uv2(*P.drops_uv(node)) for node in nodes]
    assert deltas.tolist() == [P.gain_delta_int64(c, gain) for c in contrasts]
    assert abs(deltas.mean()) < 0.01
    assert np.count_nonzero(deltas) > n // 10
    assert np.mean([P.gain_delta_int64(c, gain, 0) for c in contrasts]) < -0.4


def test_stream_vectors_after_line_noise(harness):
    """Line noise, then frames with a 0x00 before as well as after: the C board answers
    every frame that had its leading 0x00, byte for byte (the whole stream in one send, and
    in pieces)."""
    _check(harness, vectors.streams(load("commands.json")["streams"]))


def test_command_vectors_reply_byte_for_byte(harness):
    _check(harness, vectors.command_cases(load("commands.json")["cases"]))


# ------------------------------------------------------------------------- fuzz


def test_fuzz_inside_c_with_independent_checks(fuzz_harness):
    """A million random and mutated chunks inside C: decoded one-shot and byte by byte (must
    agree), compared with a separate whole-buffer COBS decoder and table CRC, re-encoded when
    accepted, and streamed through a board (replies checked)."""
    out = fuzz_harness.run(["fuzz 20240611 300000", "fuzz 7 300000"])
    for line in out:
        word, ok, n, accepted = line.split()
        assert (word, ok, int(n)) == ("fuzz", "ok", 300000)
        assert 0 < int(accepted) < int(n)


def _fuzz_chunks(n: int, seed: int) -> list[bytes]:
    """Random and mutated chunks: good frames, bit flips, truncations, insertions, deletions,
    spliced frames, random bytes (some with zeros inside), long chunks."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 8, n)
    plens = rng.integers(0, 70, n)
    pool = rng.integers(0, 256, (n, 80), dtype=np.uint8)
    picks = rng.integers(0, 1 << 30, (n, 4))
    out = []
    for i in range(n):
        k, plen, row, (p0, p1, p2, p3) = int(kinds[i]), int(plens[i]), pool[i], picks[i]
        body = bytearray(row[: 5 + plen].tobytes())
        if p0 % 4:
            body[0] = 1
        if p1 % 3 == 0:
            body[5: 5 + plen // 2] = bytes(plen // 2)  # zeros to exercise COBS
        raw = bytes(body) + binascii.crc_hqx(bytes(body), 0xFFFF).to_bytes(2, "big")
        if k == 7 and p2 % 2:
            raw = raw[: -2 - (p3 % 3)] + raw[-2:]  # moved CRC
        chunk = bytearray(cobs.encode(raw))
        m = len(chunk)
        if k == 1:  # bit flips
            for j in range(1 + p2 % 3):
                chunk[(p3 >> (5 * j)) % m] ^= 1 << ((p2 >> (3 * j)) % 8)
        elif k == 2:  # truncate
            del chunk[max(1, p2 % m):]
        elif k == 3:  # insert a byte
            chunk.insert(p2 % (m + 1), p3 % 256)
        elif k == 4:  # delete a byte
            del chunk[p2 % m]
        elif k == 5:  # random bytes, mostly without zeros
            length = p2 % 300
            b = rng.integers(0, 256, length, dtype=np.uint8)
            if p3 % 4:
                b[b == 0] = 1
            chunk = bytearray(b.tobytes())
        elif k == 6:  # two frames spliced, or a code byte rewritten
            if p2 % 2:
                chunk = chunk + chunk[: p3 % m]
            else:
                chunk[p3 % m] = 1 + p2 % 255
        out.append(bytes(chunk))
    return out


def test_fuzz_100k_chunks_match_the_host_decoder(fuzz_harness):
    """100,000 seeded chunks through the C parser: no crash, no hang, no accepted frame with a
    wrong CRC, and the same result (error code, or fields) as the host's decode_frame."""
    from instruments.bus.protocol import FrameError, decode_frame

    chunks = _fuzz_chunks(100_000, seed=20240611)
    # the host strips one trailing delimiter; hand C the same chunk
    out = fuzz_harness.run([f"decode {hex_arg(chunk_of(c))}" for c in chunks])
    accepted = 0
    seen = set()
    for chunk, line in zip(chunks, out):
        try:
            f = decode_frame(chunk)
        except FrameError as exc:
            want = f"err {int(exc.code)}"
        else:
            want = f"ok {f.version} {f.dst} {f.src} {f.seq} {f.cmd} {hex_arg(f.payload)}"
        assert line == want, chunk.hex()
        seen.add(line.split()[1] if line.startswith("err") else "ok")
        if line.startswith("ok"):
            accepted += 1
            raw = cobs.decode(chunk_of(chunk))
            assert binascii.crc_hqx(raw, 0xFFFF) == 0, chunk.hex()  # CRC over data+CRC is 0
    assert seen == {"ok", *(str(c) for c in range(1, 6))}, seen  # every receive error exercised
    assert 5_000 < accepted < 95_000


# ------------------------------------------------------------------------- differential


def test_random_sessions_match_the_reference_board(harness):
    """Seeded random sessions (good and bad requests, broadcasts, malformed chunks) against
    instruments.bus.protocol.ReferenceBoard: every reply byte-identical."""
    from instruments.bus import protocol as P

    rng = np.random.default_rng(99)
    lines, expected = [], []
    for s in range(150):
        kind = int(rng.integers(1, 3))
        lo, hi = P.DEFAULT_LIMITS[P.Kind(kind)]
        if rng.random() < 0.3:
            lo, hi = sorted(int(x) for x in rng.integers(-1000, 1000, 2))
        init = int(rng.integers(lo, hi + 1))
        addr = int(rng.integers(1, 248))
        uid = rng.bytes(8)
        node = [int(x) for x in rng.integers(-2_000_000, 3_000_000, 4)]
        if rng.random() < 0.1:
            node = [int(x) for x in rng.integers(-(1 << 31), 1 << 31, 4)]
        uptime = int(rng.integers(0, 1 << 32))
        fw = [int(x) for x in rng.integers(0, 256, 3)]
        ref = P.ReferenceBoard(addr, uid, kind, state_min=lo, state_max=hi, initial_state=init,
                               node_uv=node, uptime_ms=uptime, fw_version=tuple(fw),
                               protocol_minor=P.PROTOCOL_MINOR)  # the core's, whatever it reports
        lines.append(board_line({"address": addr, "uid_hex": uid.hex(), "kind": kind, "state_min": lo,
                                  "state_max": hi, "initial_state": init, "node_uv": node,
                                  "uptime_ms": uptime, "fw_version": fw}))
        expected.append("ok")
        for seq in range(40):
            wire = _random_request(rng, P, addr, seq, lo, hi)
            replies = ref.feed(wire)
            lines.append(f"send {hex_arg(wire)}")
            expected.append(" ".join(f"reply {r.hex()} *" for r in replies) or "none")
    out = harness.run(lines)
    for line, want in zip(out, expected):
        got = " ".join("*" if i % 3 == 2 else w for i, w in enumerate(line.split()))
        assert got == want


def _random_request(rng, P, addr: int, seq: int, lo: int, hi: int) -> bytes:
    r = rng.random()
    if r < 0.05:  # malformed
        raw = bytearray(frame_bytes(addr, seq, int(rng.integers(1, 11))))
        raw[int(rng.integers(0, len(raw)))] ^= 1 << int(rng.integers(0, 8))
        return cobs.encode(bytes(raw)) + b"\x00"
    if r < 0.07:
        return b"\x00"
    dst = addr if rng.random() < 0.75 else int(rng.choice([255, 0, addr % 247 + 1]))
    cmd = int(rng.integers(0, 13)) if rng.random() < 0.1 else int(rng.integers(1, 11))
    spec = P.COMMANDS_BY_CODE.get(cmd)
    if spec is None or rng.random() < 0.05:
        payload = rng.bytes(int(rng.integers(0, 25)))
    elif cmd == 3:
        payload = int(rng.integers(lo - 3, hi + 4)).to_bytes(4, "little", signed=True)
    elif cmd == 4:
        rule = int(rng.integers(0, 4)) if rng.random() < 0.9 else int(rng.integers(0, 256))
        prob = int(rng.choice([0, 1, 32768, 65535, 65536, 65537, int(rng.integers(0, 1 << 32))]))
        gain = int(rng.choice([0, 1, 2_559_015, (1 << 24) - 1, 1 << 24, (1 << 40) - 1, 1 << 40, -1,
                               int(rng.integers(0, 1 << 24)), int(rng.integers(0, 1 << 40))]))
        db = int(rng.choice([0, 1, 250_000, -1, 1 << 40]))
        payload = P.pack_request("configure_rule", rule=rule, probability=prob, gain=gain, dead_band_uv2=db)
    elif cmd == 8:
        payload = b"".join(int(x).to_bytes(4, "little", signed=True)
                           for x in rng.integers(-(1 << 31), 1 << 31, 4))
    else:
        payload = b""
    return cobs.encode(frame_bytes(dst, seq, cmd, payload)) + b"\x00"
