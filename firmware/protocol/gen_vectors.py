"""Write the golden vectors of the edge-bus protocol from the host's reference implementation.

Run from anywhere: ``python firmware/protocol/gen_vectors.py [--out DIR]``. Deterministic: no clock, no
unseeded randomness; the output is byte-identical on every run (a test checks that the
committed files are current). Writes ``vectors/frames.json``, ``vectors/rules.json`` and
``vectors/commands.json`` beside this file.

Formats:

* frames.json: ``{"valid": [{name, wire_hex, line_hex, frame_hex, version, dst, src, seq,
  cmd, payload_hex}], "malformed": [{name, wire_hex, error}]}``. ``wire_hex`` is one chunk
  including its trailing 00; ``line_hex`` is what the host sends, 00 before it as well. Malformed vectors named ``zero_inside_*`` hold a 00 before the
  final delimiter: a chunk decoder that is handed the whole chunk must report ``bad_cobs``;
  a stream splitter sees two chunks there, each of which is also ``bad_cobs``.
* rules.json: ``{"prng": [{uid_hex, seed, draws}], "cases": [{name, protocol_minor, kind,
  state_min, state_max, state_before, uid_hex, draws_before, rule, probability, gain,
  dead_band_uv2, calibration_uv, node_uv, dv_free_uv, dv_clamped_uv, contrast_uv2, updated,
  state_after, draw}], "cases_minor_0": [...]}`` (``draw`` is the generator output this
  learn used, draw number ``draws_before + 1`` since reset). ``cases`` are this protocol
  minor version's (firmware 1.2.0: the rule rounds to nearest, halves away from zero);
  ``cases_minor_0`` are the same inputs on a board of minor 0 (firmware 1.1.0 and before,
  which floors), for emulators of the older boards.
* commands.json: ``{"cases": [{name, board: {address, uid_hex, kind, state_min, state_max,
  initial_state, node_uv, uptime_ms, fw_version}, exchanges: [{request_hex, reply_hex}]}],
  "streams": [{name, board, stream_hex, replies_hex}]}`` against a fresh board (calibration
  all zero, uptime constant); ``reply_hex`` null means no reply. A stream is fed to the
  board as one byte stream (in any pieces): line noise, then frames as the host sends them
  (:func:`~instruments.bus.protocol.line_frame`: a 0x00 before each frame as well as
  after); ``replies_hex`` are the board's replies in order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from instruments.bus import protocol as P  # noqa: E402
from instruments.bus.protocol import Frame, encode_frame, frame_bytes, wire_from_bytes  # noqa: E402

VECTORS = HERE / "vectors"
FW_VERSION = P.FIRMWARE_VERSION
GEN2_GAIN = 2559015  # the gain printed in PROTOCOL.md
GEN2_GAIN_FORMULA = P.gate_gain(200e-6, 1e3, 2.2e-6, 0.1)  # 2558863
# the largest gain of firmware 1.0.x: the cases written with it keep their results
GAIN_MAX_1_0 = (1 << 24) - 1
GAIN_MAX = P.GAIN_LIMIT - 1


def _hex(b: bytes) -> str:
    return bytes(b).hex()


# ------------------------------------------------------------------------------ frames


def _valid(name: str, f: Frame) -> dict:
    return {"name": name, "wire_hex": _hex(encode_frame(f)), "line_hex": _hex(P.line_frame(f)),
            "frame_hex": _hex(frame_bytes(f)),
            "version": f.version, "dst": f.dst, "src": f.src, "seq": f.seq, "cmd": f.cmd,
            "payload_hex": _hex(f.payload)}


def _req(dst, seq, cmd, **kw) -> Frame:
    return P.request_frame(dst, seq, cmd, **kw)


def _rep(src, seq, cmd, status=0, **kw) -> Frame:
    return P.reply_frame(src, seq, cmd, status, **kw)  # minor=... for an older board's layout


UID_A = bytes.fromhex("4a1c00e3b2770f01")
UID_B = bytes.fromhex("0000000000000000")


def valid_frames() -> list[dict]:
    v = []
    add = lambda name, f: v.append(_valid(name, f))  # noqa: E731
    add("identify_request", _req(1, 0, "identify"))
    add("identify_request_broadcast", _req(255, 17, "identify"))
    add("identify_reply", _rep(1, 0, "identify", uid=UID_A, fw_major=FW_VERSION[0], fw_minor=FW_VERSION[1],
                                fw_patch=FW_VERSION[2], kind=1, protocol=1, protocol_minor=P.PROTOCOL_MINOR))
    # a board of protocol minor 0 (firmware 1.1.0): the reply ends before protocol_minor
    add("identify_reply_minor_0", _rep(2, 0, "identify", uid=UID_A, fw_major=1, fw_minor=1, fw_patch=0,
                                        kind=2, protocol=1, minor=0))
    add("read_state_request", _req(5, 1, "read_state"))
    add("read_state_request_broadcast", _req(255, 2, "read_state"))
    add("read_state_reply_mosfet", _rep(5, 1, "read_state", state=3_300_000))
    add("set_state_request", _req(7, 3, "set_state", state=42))
    add("set_state_request_negative", _req(7, 4, "set_state", state=-1))
    add("set_state_reply", _rep(7, 3, "set_state", state=42))
    add("set_state_reply_out_of_range", _rep(7, 4, "set_state", P.Error.OUT_OF_RANGE))
    add("configure_rule_request_gate_charging", _req(9, 5, "configure_rule", rule=2, probability=32768,
                                                     gain=GEN2_GAIN, dead_band_uv2=0))
    add("configure_rule_request_tap", _req(9, 6, "configure_rule", rule=1, probability=65536, gain=0,
                                           dead_band_uv2=250_000))
    add("configure_rule_reply", _rep(9, 5, "configure_rule"))
    add("configure_rule_reply_wrong_kind", _rep(9, 6, "configure_rule", P.Error.WRONG_KIND))
    add("sample_drops_request", _req(12, 7, "sample_drops"))
    add("sample_drops_reply", _rep(12, 7, "sample_drops", dv_free_uv=-123_456, dv_clamped_uv=98_765))
    add("learn_request", _req(12, 8, "learn"))
    add("learn_request_broadcast", _req(255, 9, "learn"))
    add("learn_reply", _rep(12, 8, "learn", state=41, updated=1))
    add("read_telemetry_request", _req(33, 10, "read_telemetry"))
    add("read_telemetry_reply", _rep(33, 10, "read_telemetry", uptime_ms=3_600_000, frames_ok=1234,
                                     frames_bad=5, updates=77, last_error=2))
    add("store_calibration_request", _req(100, 11, "store_calibration", offset_free_a_uv=-1500,
                                          offset_free_b_uv=2200, offset_clamped_a_uv=0,
                                          offset_clamped_b_uv=-70))
    add("store_calibration_reply", _rep(100, 11, "store_calibration"))
    add("store_calibration_reply_storage", _rep(100, 11, "store_calibration", P.Error.STORAGE))
    add("read_calibration_request", _req(100, 12, "read_calibration"))
    add("read_calibration_reply", _rep(100, 12, "read_calibration", offset_free_a_uv=-1500,
                                       offset_free_b_uv=2200, offset_clamped_a_uv=0,
                                       offset_clamped_b_uv=-70))
    add("reset_request", _req(247, 255, "reset"))
    add("reset_request_broadcast", _req(255, 13, "reset"))
    add("reset_reply", _rep(247, 255, "reset"))
    add("unknown_command_reply", Frame(1, 0, 3, 14, 0x80 | 0x2A, bytes([P.Error.UNKNOWN_COMMAND])))
    add("empty_payload_all_zero_header", Frame(1, 0, 0, 0, 0, b""))
    add("max_payload_zeros", Frame(1, 2, 0, 0, 0x7F, bytes(64)))
    add("max_payload_ff", Frame(1, 255, 0, 255, 0xFF, b"\xff" * 64))
    add("max_payload_ramp", Frame(1, 247, 0, 128, 3, bytes(range(64))))
    # a frame whose CRC has a 0x00 byte (exercises COBS at the very end)
    for seq in range(256):
        f = Frame(1, 1, 0, seq, 2, b"")
        crc = frame_bytes(f)[-2:]
        if crc[1] == 0:
            add("crc_low_byte_zero", f)
            break
    for seq in range(256):
        f = Frame(1, 1, 0, seq, 2, b"")
        crc = frame_bytes(f)[-2:]
        if crc[0] == 0:
            add("crc_high_byte_zero", f)
            break
    return v


def _bitflip(raw: bytes, index: int, bit: int) -> bytes:
    b = bytearray(raw)
    b[index] ^= 1 << bit
    return bytes(b)


def _with_crc(body: bytes) -> bytes:
    return body + P.crc16(body).to_bytes(2, "big")


def malformed_frames() -> list[dict]:
    m = []

    def add(name, wire, error):
        try:
            P.decode_frame(wire)
        except P.FrameError as exc:
            assert exc.name == error, (name, exc)
        else:
            raise AssertionError(f"{name} decoded")
        m.append({"name": name, "wire_hex": _hex(wire), "error": error})

    good = frame_bytes(_req(1, 0x21, "set_state", state=12345))          # 11 bytes
    good_wire = encode_frame(_req(1, 0x21, "set_state", state=12345))
    # -- bad_cobs
    add("cobs_code_past_end_first", bytes.fromhex("05010200"), "bad_cobs")
    add("cobs_code_past_end_single_byte", bytes.fromhex("0200"), "bad_cobs")
    add("cobs_ff_code_past_end", bytes.fromhex("ff") + bytes(range(1, 21)) + b"\x00", "bad_cobs")
    w = bytearray(good_wire[:-1])
    # find the last code byte and make it point one past the end
    pos = 0
    last = 0
    while pos < len(w):
        last = pos
        pos += w[pos]
    w[last] += 1
    add("cobs_last_code_one_past_end", bytes(w) + b"\x00", "bad_cobs")
    add("cobs_truncated_valid_frame", good_wire[:-2] + b"\x00", "bad_cobs")
    add("zero_inside_short", bytes.fromhex("051100223300"), "bad_cobs")
    add("zero_inside_frame", bytes.fromhex("0501020300") + bytes.fromhex("fe0102") + b"\x00", "bad_cobs")
    long_bad = bytes([0xFF]) + bytes(range(1, 255)) + bytes([0x50]) + bytes([0x11] * 10) + b"\x00"
    add("cobs_too_long_and_bad_cobs", long_bad, "bad_cobs")
    # -- too_short: decoded lengths 0..6
    add("too_short_0", wire_from_bytes(b""), "too_short")
    add("too_short_1", wire_from_bytes(b"\x01"), "too_short")
    add("too_short_2_zeros", wire_from_bytes(b"\x00\x00"), "too_short")
    add("too_short_3", wire_from_bytes(b"\x01\x01\x00"), "too_short")
    add("too_short_4", wire_from_bytes(b"\x01\x01\x00\x07"), "too_short")
    add("too_short_5_header_only", wire_from_bytes(bytes.fromhex("0101000702")), "too_short")
    add("too_short_6_crc_matches", wire_from_bytes(_with_crc(bytes.fromhex("01010007"))), "too_short")
    add("too_short_6_missing_crc_byte", wire_from_bytes(frame_bytes(_req(1, 7, "read_state"))[:-1]),
        "too_short")
    # -- too_long
    add("too_long_72_crc_ok", wire_from_bytes(_with_crc(bytes.fromhex("0101000003") + bytes(65))),
        "too_long")
    add("too_long_72_bad_crc_bad_version",
        wire_from_bytes(bytes.fromhex("0201000003") + b"\xaa" * 65 + b"\x00\x00"), "too_long")
    add("too_long_300", wire_from_bytes(bytes((i * 7 + 1) % 256 for i in range(300))), "too_long")
    # -- bad_crc
    for name, idx, bit in (("version", 0, 1), ("dst", 1, 0), ("seq", 3, 7), ("cmd", 4, 2),
                           ("payload", 6, 5), ("crc_high", 9, 0), ("crc_low", 10, 7)):
        add(f"bad_crc_flip_{name}", wire_from_bytes(_bitflip(good, idx, bit)), "bad_crc")
    add("bad_crc_byte_order_swapped", wire_from_bytes(good[:-2] + good[-2:][::-1]), "bad_crc")
    xmodem = P._crc.Calculator(P._crc.Crc16.XMODEM).checksum(good[:-2]).to_bytes(2, "big")
    add("bad_crc_xmodem_init", wire_from_bytes(good[:-2] + xmodem), "bad_crc")
    add("bad_crc_and_bad_version", wire_from_bytes(b"\x02" + good[1:-2] + b"\x00\x00"), "bad_crc")
    add("bad_crc_max_payload", wire_from_bytes(_bitflip(frame_bytes(Frame(1, 2, 0, 0, 0x7F, bytes(64))), 40, 3)),
        "bad_crc")
    # -- bad_version
    for ver in (0, 2, 255):
        add(f"bad_version_{ver}", wire_from_bytes(_with_crc(bytes([ver]) + good[1:-2])), "bad_version")
    return m


# ------------------------------------------------------------------------------ rules


def prng_vectors() -> list[dict]:
    out = []
    for uid in (UID_A, UID_B, bytes.fromhex("b979379effffffff"), bytes.fromhex("ffffffff00000000"),
                bytes.fromhex("0123456789abcdef")):
        seed = P.seed_from_uid(uid)
        g = P.Xorshift32(seed)
        out.append({"uid_hex": _hex(uid), "seed": seed, "draws": [g.next() for _ in range(8)]})
    return out


def _draw(uid: bytes, n: int) -> int:
    """Draw number n (1-based) since reset."""
    g = P.Xorshift32(P.seed_from_uid(uid))
    for _ in range(n):
        r = g.next()
    return r


DIGIPOT = ("digipot", 0, 99)
MOSFET = ("mosfet", 1_000_000, 5_500_000)
WIDE = ("mosfet", P.I32_MIN, P.I32_MAX)


def _case_of(name, board, state, rule, *, node, cal=(0, 0, 0, 0), prob=65536, gain=0, db=0,
          uid=UID_A, draws_before=0, minor=P.PROTOCOL_MINOR) -> dict:
    kind, lo, hi = board
    r = _draw(uid, draws_before + 1)
    res = P.learn_step(rule=P.RULES[rule], probability=prob, gain=gain, dead_band_uv2=db, state=state,
                       state_min=lo, state_max=hi, draw=r, node_uv=node, calibration_uv=cal, minor=minor)
    return {"name": name, "protocol_minor": minor, "kind": kind, "state_min": lo, "state_max": hi, "state_before": state,
            "uid_hex": _hex(uid), "draws_before": draws_before, "rule": rule, "probability": prob,
            "gain": gain, "dead_band_uv2": db, "calibration_uv": list(cal), "node_uv": list(node),
            "dv_free_uv": res["dv_free_uv"], "dv_clamped_uv": res["dv_clamped_uv"],
            "contrast_uv2": res["contrast_uv2"], "updated": res["updated"], "state_after": res["state"],
            "draw": r}


def _node(dvf: int, dvc: int, base: int = 1_000_000) -> list[int]:
    return [base + dvf, base, base + 500_000 + dvc, base + 500_000]


# Rounding of c * gain / 2^48 (c = dv_free^2 - dv_clamped^2): gains and drops that put it
# exactly one 2^-48 beside a half: (2^47 + 1) = 283 * 497305612563 with 283 = 142^2 - 141^2,
# (2^47 - 1) = 2351 * 59862819377 with 2351 = 1176^2 - 1175^2.
GAIN_ABOVE_HALF = 497_305_612_563
GAIN_BELOW_HALF = 59_862_819_377


def rule_cases(minor: int = P.PROTOCOL_MINOR) -> list[dict]:
    """Every rule case, as a board of protocol minor version ``minor`` computes it."""
    c = []
    add = c.append

    def _case(*args, **kw):  # noqa: F811 - the module's _case on this minor version
        return _case_of(*args, minor=minor, **kw)
    # tap rule and the dead band: dvf^2 - dvc^2 = 1000^2 - 0 = 1e6
    add(_case("tap_up", DIGIPOT, 50, "tap", node=_node(1000, 0), db=999_999))
    add(_case("tap_dead_band_edge_positive", DIGIPOT, 50, "tap", node=_node(1000, 0), db=1_000_000))
    add(_case("tap_dead_band_edge_negative", DIGIPOT, 50, "tap", node=_node(0, 1000), db=1_000_000))
    add(_case("tap_down", DIGIPOT, 50, "tap", node=_node(0, -1000), db=999_999))
    add(_case("tap_zero_dead_band_zero_contrast", DIGIPOT, 50, "tap", node=_node(300, -300)))
    add(_case("tap_zero_dead_band_plus_one", DIGIPOT, 50, "tap", node=_node(1, 0)))
    add(_case("tap_zero_dead_band_minus_one", DIGIPOT, 50, "tap", node=_node(0, 1)))
    add(_case("tap_clip_at_max", DIGIPOT, 99, "tap", node=_node(5000, 10)))
    add(_case("tap_clip_at_min", DIGIPOT, 0, "tap", node=_node(10, 5000)))
    add(_case("tap_narrow_limits", ("digipot", 10, 20), 20, "tap", node=_node(2000, 0)))
    add(_case("tap_huge_dead_band", DIGIPOT, 50, "tap", node=_node(2_000_000, 0), db=(1 << 62)))
    add(_case("tap_contrast_clipped_at_dead_band", DIGIPOT, 50, "tap", node=_node(2_000_000, 0),
              db=P.CONTRAST_LIMIT_UV2))
    add(_case("tap_contrast_clipped_below_dead_band", DIGIPOT, 50, "tap", node=_node(2_000_000, 0),
              db=P.CONTRAST_LIMIT_UV2 - 1))
    # gate charging, Gen-2 gain
    add(_case("gate_gen2_gain_up", MOSFET, 3_000_000, "gate_charging", node=_node(100_000, 50_000),
              gain=GEN2_GAIN))
    add(_case("gate_gen2_gain_down", MOSFET, 3_000_000, "gate_charging", node=_node(50_000, -100_000),
              gain=GEN2_GAIN))
    add(_case("gate_gen2_gain_max_contrast", MOSFET, 3_000_000, "gate_charging", node=_node(600_000, 0),
              gain=GEN2_GAIN))
    add(_case("gate_gen2_formula_gain_max_contrast", MOSFET, 3_000_000, "gate_charging",
              node=_node(600_000, 0), gain=GEN2_GAIN_FORMULA))
    add(_case("gate_gen2_gain_min_contrast", MOSFET, 3_000_000, "gate_charging", node=_node(0, 600_000),
              gain=GEN2_GAIN))
    add(_case("gate_contrast_clip_positive", MOSFET, 3_000_000, "gate_charging",
              node=_node(1_000_000, 0), gain=GAIN_MAX_1_0))
    add(_case("gate_contrast_clip_negative", MOSFET, 3_000_000, "gate_charging",
              node=_node(0, -1_000_000), gain=GAIN_MAX_1_0))
    add(_case("gate_contrast_exactly_limit", MOSFET, 3_000_000, "gate_charging",
              node=_node(524_288, 0), gain=GEN2_GAIN))
    add(_case("gate_clip_at_max", MOSFET, 5_499_000, "gate_charging", node=_node(1_000_000, 0), gain=GAIN_MAX_1_0))
    add(_case("gate_clip_at_min", MOSFET, 1_000_500, "gate_charging", node=_node(0, 1_000_000), gain=GAIN_MAX_1_0))
    # rounding of c*gain/2^48: to nearest, halves away from zero (minor 1): -0.5 -> -1,
    # +0.5 -> +1, +-(0.5 - 2^-48) -> 0, +-(0.5 + 2^-48) -> +-1, +-1.5 -> +-2, -tiny -> 0;
    # the floor (minor 0): -0.5 -> -1, +0.5 -> 0, -tiny -> -1, +1.5 -> 1, -1.5 -> -2
    add(_case("gate_round_minus_half", MOSFET, 2_000_000, "gate_charging", node=_node(0, 1 << 16),
              gain=1 << 15))
    add(_case("gate_round_plus_half", MOSFET, 2_000_000, "gate_charging", node=_node(1 << 16, 0),
              gain=1 << 15))
    add(_case("gate_round_minus_one_exact", MOSFET, 2_000_000, "gate_charging", node=_node(0, 1 << 16),
              gain=1 << 16))
    add(_case("gate_round_plus_one_exact", MOSFET, 2_000_000, "gate_charging", node=_node(1 << 16, 0),
              gain=1 << 16))
    add(_case("gate_round_tiny_negative", MOSFET, 2_000_000, "gate_charging", node=_node(0, 1), gain=1))
    add(_case("gate_round_tiny_positive", MOSFET, 2_000_000, "gate_charging", node=_node(1, 0), gain=1))
    add(_case("gate_round_just_above_half_positive", MOSFET, 2_000_000, "gate_charging", node=_node(142, 141),
              gain=GAIN_ABOVE_HALF))
    add(_case("gate_round_just_above_half_negative", MOSFET, 2_000_000, "gate_charging", node=_node(141, 142),
              gain=GAIN_ABOVE_HALF))
    add(_case("gate_round_just_below_half_positive", MOSFET, 2_000_000, "gate_charging", node=_node(1176, 1175),
              gain=GAIN_BELOW_HALF))
    add(_case("gate_round_just_below_half_negative", MOSFET, 2_000_000, "gate_charging", node=_node(1175, 1176),
              gain=GAIN_BELOW_HALF))
    add(_case("gate_round_plus_one_and_half", MOSFET, 2_000_000, "gate_charging", node=_node(1 << 16, 0),
              gain=3 << 15))
    add(_case("gate_round_minus_one_and_half", MOSFET, 2_000_000, "gate_charging", node=_node(0, 1 << 16),
              gain=3 << 15))
    add(_case("gate_round_plus_half_at_the_contrast_clip", MOSFET, 2_000_000, "gate_charging",
              node=_node(1_000_000, 0), gain=1 << 9))              # 2^38 * 2^9 = 2^47
    add(_case("gate_round_minus_half_at_the_contrast_clip", MOSFET, 2_000_000, "gate_charging",
              node=_node(0, 1_000_000), gain=1 << 9))
    add(_case("gate_zero_gain", MOSFET, 2_000_000, "gate_charging", node=_node(0, 300_000), gain=0))
    # gains of 2^24 and above (firmware 1.1.0): at the contrast clip +-2^38 the change is
    # +-gain / 2^10; with 2^24 and 2^30 the gate stays inside its limits, larger gains clip
    for label, g in (("2_24", 1 << 24), ("2_30", 1 << 30), ("2_39", 1 << 39), ("max", GAIN_MAX)):
        add(_case(f"gate_gain_{label}_contrast_clip_positive", MOSFET, 3_000_000, "gate_charging",
                  node=_node(1_000_000, 0), gain=g))
        add(_case(f"gate_gain_{label}_contrast_clip_negative", MOSFET, 3_000_000, "gate_charging",
                  node=_node(0, -1_000_000), gain=g))
    # ... and on the widest limits, where nothing clips but the i32 range: the 64-bit split
    for label, g in (("2_39", 1 << 39), ("max", GAIN_MAX)):
        add(_case(f"continuous_wide_gain_{label}_contrast_clip_positive", WIDE, 0, "continuous",
                  node=_node(1_000_000, 0), gain=g))                     # +2^29; 2^30 - 1
        add(_case(f"continuous_wide_gain_{label}_contrast_clip_negative", WIDE, 0, "continuous",
                  node=_node(0, -1_000_000), gain=g))                    # -2^29; -2^30
    add(_case("continuous_wide_gain_max_sum_beyond_i32_max", WIDE, P.I32_MAX - 5, "continuous",
              node=_node(1_000_000, 0), gain=GAIN_MAX))
    add(_case("continuous_wide_gain_max_sum_beyond_i32_min", WIDE, P.I32_MIN + 5, "continuous",
              node=_node(0, 1_000_000), gain=GAIN_MAX))
    add(_case("continuous_wide_gain_max_contrast_minus_one", WIDE, 0, "continuous", node=_node(0, 1),
              gain=GAIN_MAX))                                            # -tiny: 0 (floor: -1)
    add(_case("continuous_wide_gain_max_contrast_plus_one", WIDE, 0, "continuous", node=_node(1, 0),
              gain=GAIN_MAX))
    add(_case("continuous_wide_gain_max_contrast_odd", WIDE, 0, "continuous", node=_node(524_288, 1),
              gain=GAIN_MAX))                                            # c = 2^38 - 1
    add(_case("continuous_wide_gain_max_contrast_odd_negative", WIDE, 0, "continuous",
              node=_node(1, 524_288), gain=GAIN_MAX))
    for label, g in (("2_24_plus_1", (1 << 24) + 1), ("mixed", (1 << 39) + (1 << 24) + 12_345)):
        add(_case(f"continuous_wide_gain_{label}_positive", WIDE, 0, "continuous",
                  node=_node(456_789, 123_457), gain=g))
        add(_case(f"continuous_wide_gain_{label}_negative", WIDE, 0, "continuous",
                  node=_node(123_457, -456_789), gain=g))
    add(_case("gate_gain_2_30_mixed_negative", MOSFET, 3_000_000, "gate_charging",
              node=_node(123_457, -456_789), gain=(1 << 30) + 987_654))
    # continuous on both kinds
    add(_case("continuous_digipot_up", DIGIPOT, 50, "continuous", node=_node(400_000, 0), gain=GAIN_MAX_1_0))
    add(_case("continuous_digipot_down_small", DIGIPOT, 50, "continuous", node=_node(0, 1000), gain=GAIN_MAX_1_0))
    add(_case("continuous_digipot_clip_min", DIGIPOT, 3, "continuous", node=_node(0, 524_288), gain=GAIN_MAX_1_0))
    add(_case("continuous_mosfet", MOSFET, 4_000_000, "continuous", node=_node(-70_000, 123_456),
              gain=GEN2_GAIN))
    # probability
    add(_case("probability_zero", DIGIPOT, 50, "tap", node=_node(1000, 0), prob=0))
    add(_case("probability_one", DIGIPOT, 50, "tap", node=_node(1000, 0), prob=65536))
    for db_, uid in ((3, UID_A), (0, UID_B), (7, bytes.fromhex("0123456789abcdef"))):
        r = _draw(uid, db_ + 1) >> 16
        add(_case(f"probability_equal_to_draw_after_{db_}", DIGIPOT, 50, "tap", node=_node(1000, 0),
                  prob=r, uid=uid, draws_before=db_))
        add(_case(f"probability_draw_plus_one_after_{db_}", DIGIPOT, 50, "tap", node=_node(1000, 0),
                  prob=r + 1, uid=uid, draws_before=db_))
    add(_case("probability_half_gate", MOSFET, 3_000_000, "gate_charging", node=_node(100_000, 0),
              gain=GEN2_GAIN, prob=32768, draws_before=5))
    add(_case("rule_none_never_updates", DIGIPOT, 50, "none", node=_node(1000, 0), prob=65536))
    # calibration offsets
    add(_case("calibration_offsets_cancel", DIGIPOT, 50, "tap", node=[1_003_000, 1_000_000, 2_000_000, 2_000_500],
              cal=[3_000, 0, 0, 500]))
    add(_case("calibration_offsets_flip_sign", DIGIPOT, 50, "tap", node=[1_001_000, 1_000_000, 2_000_000, 2_000_000],
              cal=[0, -1_500, 200_000, 0]))
    add(_case("calibration_gate", MOSFET, 3_000_000, "gate_charging", node=[900_000, 100_000, 700_000, 450_000],
              cal=[-12_345, 6_789, 1_000, -2_000], gain=GEN2_GAIN))
    add(_case("drops_saturate_i32", MOSFET, 3_000_000, "gate_charging",
              node=[P.I32_MAX, P.I32_MIN, P.I32_MIN, P.I32_MAX], cal=[-1000, 1000, 0, 0], gain=GEN2_GAIN))
    add(_case("drops_saturate_free_only", MOSFET, 3_000_000, "gate_charging",
              node=[P.I32_MAX, 0, 0, 0], cal=[P.I32_MIN, 0, 0, 0], gain=GEN2_GAIN))
    add(_case("drops_offset_overflows_i32_unsaturated", DIGIPOT, 50, "tap",
              node=[P.I32_MIN, P.I32_MIN, 0, 0], cal=[P.I32_MAX, P.I32_MAX, 0, 0]))
    return c


# ------------------------------------------------------------------------------ commands


class Session:
    """Records exchanges with a fresh :class:`ReferenceBoard`."""

    def __init__(self, name: str, *, address=1, uid=UID_A, kind="digipot", state_min=None, state_max=None,
                 initial_state=None, node_uv=(1_200_000, 1_000_000, 1_100_000, 1_000_000),
                 uptime_ms=123_456):
        k = P.Kind(P.KINDS[kind])
        lo, hi = P.DEFAULT_LIMITS[k]
        state_min = lo if state_min is None else state_min
        state_max = hi if state_max is None else state_max
        if initial_state is None:
            initial_state = (state_min + state_max) // 2
        self.board_json = {"address": address, "uid_hex": _hex(uid), "kind": kind, "state_min": state_min,
                           "state_max": state_max, "initial_state": initial_state, "node_uv": list(node_uv),
                           "uptime_ms": uptime_ms, "fw_version": list(FW_VERSION)}
        self.board = P.ReferenceBoard(address, uid, k, state_min=state_min, state_max=state_max,
                                      initial_state=initial_state, node_uv=list(node_uv), uptime_ms=uptime_ms,
                                      fw_version=FW_VERSION)
        self.name = name
        self.address = address
        self.seq = 0
        self.exchanges = []

    def raw(self, wire: bytes) -> bytes | None:
        reply = self.board.handle(wire)
        self.exchanges.append({"request_hex": _hex(wire), "reply_hex": None if reply is None else _hex(reply)})
        return reply

    def frame(self, cmd: int, payload: bytes = b"", dst: int | None = None) -> bytes | None:
        dst = self.address if dst is None else dst
        f = Frame(1, dst, 0, self.seq, cmd, payload)
        self.seq = (self.seq + 1) & 0xFF
        return self.raw(encode_frame(f))

    def __call__(self, cmd: str, dst: int | None = None, **fields) -> bytes | None:
        return self.frame(P.COMMANDS[cmd].code, P.pack_request(cmd, **fields), dst)

    def json(self) -> dict:
        return {"name": self.name, "board": self.board_json, "exchanges": self.exchanges}


def _cfg(rule, probability=65536, gain=0, dead_band_uv2=0) -> dict:
    return {"rule": P.RULES[rule] if isinstance(rule, str) else rule, "probability": probability,
            "gain": gain, "dead_band_uv2": dead_band_uv2}


MOSFET_NODES = (1_300_000, 1_000_000, 1_150_000, 1_000_000)


def command_cases() -> list[dict]:
    cases = []

    s = Session("identify_digipot")
    s("identify"); s("identify")
    cases.append(s)

    s = Session("identify_mosfet", address=247, uid=bytes.fromhex("0123456789abcdef"), kind="mosfet",
                node_uv=MOSFET_NODES, uptime_ms=0xFFFFFFFF)
    s("identify"); s("read_state"); s("read_telemetry")
    cases.append(s)

    s = Session("state_digipot", address=17, initial_state=50)
    s("read_state"); s("set_state", state=73); s("read_state")
    s("set_state", state=100); s("set_state", state=-1); s("set_state", state=P.I32_MIN)
    s("read_state"); s("set_state", state=0); s("set_state", state=99); s("read_state")
    s("read_telemetry")
    cases.append(s)

    s = Session("state_mosfet", address=2, kind="mosfet", initial_state=2_500_000, node_uv=MOSFET_NODES)
    s("read_state"); s("set_state", state=999_999); s("set_state", state=5_500_001)
    s("set_state", state=1_000_000); s("set_state", state=5_500_000); s("read_state")
    cases.append(s)

    s = Session("configure_rule_digipot", address=3)
    s("configure_rule", **_cfg("none", 0))
    s("configure_rule", **_cfg("tap", 65536, 0, 1000))
    s("configure_rule", **_cfg("continuous", 1, GAIN_MAX_1_0, 0))
    s("configure_rule", **_cfg("gate_charging", 65536, GEN2_GAIN, 0))          # wrong_kind
    s("configure_rule", **_cfg(4, 65536, 0, 0))                               # out_of_range
    s("configure_rule", **_cfg(255, 65536, 0, 0))
    s("configure_rule", **_cfg("tap", 65537, 0, 0))
    s("configure_rule", **_cfg("tap", 0xFFFFFFFF, 0, 0))
    s("configure_rule", **_cfg("continuous", 65536, -1, 0))
    s("configure_rule", **_cfg("continuous", 65536, P.GAIN_LIMIT, 0))
    s("configure_rule", **_cfg("tap", 65536, 0, -1))
    s("configure_rule", **_cfg("gate_charging", 70000, 0, 0))                 # out_of_range beats wrong_kind
    s("read_telemetry")
    cases.append(s)

    s = Session("configure_rule_mosfet", address=4, kind="mosfet", node_uv=MOSFET_NODES)
    s("configure_rule", **_cfg("gate_charging", 65536, GEN2_GAIN, 0))
    s("configure_rule", **_cfg("tap", 65536, 0, 0))                           # wrong_kind
    s("configure_rule", **_cfg("continuous", 32768, GEN2_GAIN, 5))
    s("configure_rule", **_cfg("none", 0, 0, 0))
    s("configure_rule", **_cfg("gate_charging", 65536, 1 << 40, 0))
    s("read_telemetry")
    cases.append(s)

    s = Session("configure_rule_large_gain", address=18, kind="mosfet", initial_state=2_000_000,
                node_uv=MOSFET_NODES)
    s("identify")
    s("configure_rule", **_cfg("gate_charging", 65536, 1 << 24, 0))         # ok since 1.1.0
    s("learn")
    s("configure_rule", **_cfg("gate_charging", 65536, 1 << 30, 0))
    s("learn"); s("learn")
    s("configure_rule", **_cfg("gate_charging", 65536, GAIN_MAX, 0))
    s("configure_rule", **_cfg("gate_charging", 65536, P.GAIN_LIMIT, 0))    # out_of_range, rule kept
    s("configure_rule", **_cfg("continuous", 65536, (1 << 63) - 1, 0))      # out_of_range
    s("learn")                                                               # clips at the limit
    s("read_state"); s("read_telemetry")
    cases.append(s)

    s = Session("sample_drops", address=5, node_uv=(1_234_567, 1_000_000, 900_000, 1_100_000))
    s("sample_drops"); s("sample_drops")
    cases.append(s)

    s = Session("learn_tap", address=6, initial_state=97, node_uv=(1_000_500, 1_000_000, 1_000_000, 1_000_000))
    s("learn")                                                               # rule none: draw, no update
    s("configure_rule", **_cfg("tap", 65536, 0, 0))
    s("learn"); s("learn"); s("learn"); s("learn")                           # 98, 99, 99 (clip), 99
    s("configure_rule", **_cfg("tap", 65536, 0, 250_000))                    # c = 250000 = dead band
    s("learn")
    s("configure_rule", **_cfg("tap", 32768, 0, 0))
    s("set_state", state=10)
    for _ in range(6):
        s("learn")
    s("read_telemetry")
    cases.append(s)

    s = Session("learn_gate_charging", address=7, kind="mosfet", initial_state=3_000_000,
                node_uv=(1_100_000, 1_000_000, 1_050_000, 1_000_000))
    s("configure_rule", **_cfg("gate_charging", 65536, GEN2_GAIN, 0))
    s("sample_drops")
    for _ in range(3):
        s("learn")
    s("configure_rule", **_cfg("gate_charging", 40000, GAIN_MAX_1_0, 0))
    for _ in range(4):
        s("learn")
    s("read_state"); s("read_telemetry")
    cases.append(s)

    s = Session("learn_continuous_negative", address=8, kind="mosfet", initial_state=1_000_100,
                node_uv=(1_000_000, 1_000_000, 1_000_000, 1_060_000))
    s("configure_rule", **_cfg("continuous", 65536, GEN2_GAIN, 0))
    s("learn"); s("learn")
    s("configure_rule", **_cfg("continuous", 65536, 1, 0))
    s("learn")
    cases.append(s)

    s = Session("telemetry_counts", address=9, uptime_ms=86_400_000)
    s("read_telemetry")
    s.raw(bytes.fromhex("05010200"))                                       # bad_cobs
    s.raw(wire_from_bytes(b"\x01\x09\x00"))                                # too_short
    s.raw(wire_from_bytes(b"\x01" * 80))                                   # too_long
    good = frame_bytes(Frame(1, 9, 0, 200, 2, b""))
    s.raw(wire_from_bytes(_bitflip(good, 5, 0)))                           # bad_crc
    s.raw(wire_from_bytes(_with_crc(b"\x02\x09\x00\xc8\x02")))             # bad_version
    s.raw(b"\x00")                                                         # empty chunk, not counted
    s("read_state", dst=10); s("read_state", dst=0); s("read_state", dst=248)  # other addresses
    s("read_telemetry")
    s("read_state")
    s("read_telemetry")
    cases.append(s)

    s = Session("calibration", address=10, uid=UID_B, node_uv=(1_200_000, 1_000_000, 1_100_000, 1_000_000))
    s("read_calibration"); s("sample_drops")
    s("store_calibration", offset_free_a_uv=150_000, offset_free_b_uv=-25_000, offset_clamped_a_uv=-40_000,
      offset_clamped_b_uv=10_000)
    s("read_calibration"); s("sample_drops")
    s("configure_rule", **_cfg("tap", 65536, 0, 0)); s("learn")
    s("reset")
    s("read_calibration"); s("sample_drops")
    cases.append(s)

    s = Session("reset", address=11, initial_state=20, node_uv=(1_000_300, 1_000_000, 1_000_000, 1_000_000))
    s("configure_rule", **_cfg("tap", 32768, 0, 0))
    for _ in range(4):
        s("learn")
    s("set_state", state=70); s.raw(bytes.fromhex("0200"))
    s("read_telemetry")
    s("reset")
    s("read_state"); s("read_telemetry")
    s("learn")                                                                # rule back to none
    s("configure_rule", **_cfg("tap", 32768, 0, 0))
    for _ in range(4):
        s("learn")                                                            # generator reseeded
    cases.append(s)

    s = Session("unknown_command", address=12)
    s.frame(0); s.frame(11); s.frame(0x7F, b"\x01\x02"); s.frame(0x81); s.frame(0xFF, bytes(64))
    s("read_telemetry")
    cases.append(s)

    s = Session("bad_length", address=13)
    s.frame(1, b"\x00"); s.frame(2, bytes(64)); s.frame(3, b"\x01\x02\x03"); s.frame(3, b"\x01\x02\x03\x04\x05")
    s.frame(4, P.pack_request("configure_rule", **_cfg("tap"))[:-1])
    s.frame(4, P.pack_request("configure_rule", **_cfg("tap")) + b"\x00")
    s.frame(8, bytes(15)); s.frame(10, b"\x00"); s.frame(6, b"\x00")
    s.frame(3, b"\xff\xff\xff\x7f\x00")                                        # bad_length beats out_of_range
    s("read_state"); s("read_telemetry")
    cases.append(s)

    s = Session("broadcast", address=14, initial_state=30, node_uv=(1_000_700, 1_000_000, 1_000_000, 1_000_000))
    s("identify", dst=255)                                                    # slotted: reply
    s("read_state", dst=255)                                                  # slotted: reply
    s("set_state", dst=255, state=40)                                         # silent
    s("read_state")
    s("set_state", dst=255, state=400)                                        # silent, out_of_range
    s("configure_rule", dst=255, **_cfg("tap", 65536, 0, 0))                  # silent
    s("learn", dst=255)                                                       # silent
    s("read_state", dst=255)
    s("sample_drops", dst=255)                                                # refused
    s("read_telemetry")
    s("read_telemetry", dst=255); s("read_calibration", dst=255)              # refused
    s("store_calibration", dst=255, offset_free_a_uv=1, offset_free_b_uv=2, offset_clamped_a_uv=3,
      offset_clamped_b_uv=4)                                                  # refused: not stored
    s("read_calibration")
    s.frame(0x2A, b"", dst=255)                                               # unknown, silent
    s.frame(1, b"\x00", dst=255)                                              # slotted bad_length: reply
    s("read_telemetry")
    s("reset", dst=255)                                                       # silent, resets
    s("read_state"); s("read_telemetry")
    cases.append(s)

    s = Session("malformed_frames", address=15)
    for v in malformed_frames():
        if not v["name"].startswith("zero_inside"):
            s.raw(bytes.fromhex(v["wire_hex"]))
    s("read_telemetry")
    cases.append(s)

    s = Session("replies_and_host_frames_ignored", address=16)
    s.raw(encode_frame(P.reply_frame(16, 0, "read_state", state=5)))         # dst 0: not for us
    s.raw(encode_frame(Frame(1, 16, 17, 1, 2, b"")))                          # from another board: answered
    s("read_telemetry")
    cases.append(s)

    return [c.json() for c in cases]


def _noise(n: int, seed: int) -> bytes:
    """n bytes of line noise from xorshift32 (zeros included), ending in a non-zero byte so
    that it is pending in a receiver when the next frame starts."""
    g = P.Xorshift32(seed)
    out = bytes(g.next() >> 24 for _ in range(n))
    return out[:-1] + (out[-1:] if out[-1] else b"\x5a")


def stream_cases() -> list[dict]:
    out = []

    def stream(name: str, session: Session, parts: list[bytes]) -> None:
        data = b"".join(parts)
        replies = session.board.feed(data)
        out.append({"name": name, "board": session.board_json, "stream_hex": _hex(data),
                    "replies_hex": [_hex(r) for r in replies]})

    def line(cmd: str, dst: int, seq: int, **fields) -> bytes:
        return P.line_frame(P.request_frame(dst, seq, cmd, **fields))

    def plain(cmd: str, dst: int, seq: int, **fields) -> bytes:
        return P.encode_frame(P.request_frame(dst, seq, cmd, **fields))

    noise = _noise(4096, 0x4B1D)
    s = Session("noise_then_line_frames", address=3, kind="mosfet", node_uv=MOSFET_NODES)
    stream(s.name, s, [noise, line("identify", 255, 1), line("set_state", 255, 2, state=2_000_000),
                       line("read_state", 3, 3), noise[:77], line("read_state", 255, 4),
                       line("read_telemetry", 3, 5)])
    # the same noise before a frame without the leading 0x00: the frame is glued to the
    # noise and lost (one bad chunk); the next frame, after its trailing 0x00, is heard
    s = Session("noise_then_frame_without_leading_zero", address=3, kind="mosfet", node_uv=MOSFET_NODES)
    stream(s.name, s, [noise, plain("identify", 255, 1), line("identify", 255, 2), plain("read_telemetry", 3, 3)])
    s = Session("line_frames_back_to_back", address=9)
    stream(s.name, s, [line("read_state", 9, 1), line("identify", 9, 2), b"\x00\x00",
                       line("read_telemetry", 9, 3)])
    return out


# ------------------------------------------------------------------------------ output


def build() -> dict[str, str]:
    """The three vector files' text, by file name."""
    frames = {"valid": valid_frames(), "malformed": malformed_frames()}
    rules = {"prng": prng_vectors(), "cases": rule_cases(), "cases_minor_0": rule_cases(0)}
    commands = {"cases": command_cases(), "streams": stream_cases()}
    return {name: json.dumps(obj, indent=1) + "\n"
            for name, obj in (("frames.json", frames), ("rules.json", rules), ("commands.json", commands))}


def main(argv: list[str] | None = None) -> None:
    """Write the vectors (``--out DIR`` writes them elsewhere, for comparison)."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=VECTORS, help="output directory (default: vectors/)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in build().items():
        (args.out / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
