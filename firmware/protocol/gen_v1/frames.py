"""``vectors/frames.json``: valid and malformed frames (format: ``gen_vectors.py``)."""

from __future__ import annotations

from instruments.bus import protocol as P
from instruments.bus.protocol import Frame, encode_frame, frame_bytes, wire_from_bytes

from .common import FW_VERSION, GEN2_GAIN, UID_A, _hex, _rep, _req

def _valid(name: str, f: Frame) -> dict:
    return {"name": name, "wire_hex": _hex(encode_frame(f)), "line_hex": _hex(P.line_frame(f)),
            "frame_hex": _hex(frame_bytes(f)),
            "version": f.version, "dst": f.dst, "src": f.src, "seq": f.seq, "cmd": f.cmd,
            "payload_hex": _hex(f.payload)}


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
