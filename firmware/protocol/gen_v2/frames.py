"""``vectors/v2/frames.json``: valid frames of every command, malformed chunks, the probe.

``{"valid": [{name, wire_hex, line_hex, frame_hex, version, dst, src, seq, cmd,
payload_hex}], "malformed": [{name, wire_hex, error}]}``. ``wire_hex`` is one chunk with
its trailing 00, ``line_hex`` what the host sends (00 before it as well). ``error`` is what
a protocol-2 host's decoder reports (a board answers the version-1 identify probe instead:
``v1_identify_probe_*`` are valid frames of version 1).
"""

from __future__ import annotations

from instruments.bus import v2
from instruments.bus.framing import wire_from_bytes
from instruments.bus.v2.framing import Frame, crc16, encode_frame, frame_bytes, line_frame

from .bus import GATE_MEASURED, GATE_NOMINAL, UID_A, hexs


def _valid(name: str, f: Frame) -> dict:
    return {"name": name, "wire_hex": hexs(encode_frame(f)), "line_hex": hexs(line_frame(f)),
            "frame_hex": hexs(frame_bytes(f)), "version": f.version, "dst": f.dst, "src": f.src,
            "seq": f.seq, "cmd": f.cmd, "payload_hex": hexs(f.payload)}


#: A request and an ok reply of every command, with fields that exercise each type.
_SAMPLES = {
    "identify": ({}, dict(uid=UID_A, fw_major=2, fw_minor=0, fw_patch=0, kind=2, protocol=2,
                          protocol_minor=1, address=17, flags=0x02)),
    "read_state": ({}, dict(state=3_300_000, residue=-400, generation=7)),
    "set_state": (dict(state=2_000_250), dict(state=2_000_000, residue=250)),
    "configure_rule": (dict(rule=2, probability=32768, gain=2_559_015, dead_band_uv2=0), {}),
    "sample_drops": ({}, dict(dv_free_uv=-123_456, dv_clamped_uv=98_765)),
    "learn": ({}, dict(state=2_001_000, residue=-125, updated=1)),
    "read_telemetry": ({}, dict(uptime_ms=3_600_000, frames_ok=1234, frames_bad=5, learns=80, updates=77,
                                glitches=3, last_error=2, reset_cause=4, flags=0x05, supply_uv=3_287_500,
                                temperature_mdegc=-12_340, generation=0xFFFFFFFF)),
    "store_calibration": (dict(offset_free_a_uv=-1500, offset_free_b_uv=2200, offset_clamped_a_uv=0,
                               offset_clamped_b_uv=-70), {}),
    "read_calibration": ({}, dict(offset_free_a_uv=-1500, offset_free_b_uv=2200, offset_clamped_a_uv=0,
                                  offset_clamped_b_uv=-70)),
    "reset": (dict(mode=1), {}),
    "store_state": ({}, dict(generation=1)),
    "read_actuator": ({}, dict(state_min=1_000_000, state_max=5_500_000, resolution=1000,
                               initial_state=1_500_000)),
    "discover": (dict(salt=0xDEADBEEF, slots=64, only_unassigned=1),
                 dict(uid=UID_A, fw_major=2, fw_minor=0, fw_patch=0, kind=1, protocol=2, protocol_minor=1,
                      address=248, flags=0)),
    "assign_address": (dict(uid=UID_A, address=17), {}),
    "fw_begin": (dict(size=262_144, image_crc32=0xCBF43926, fw_major=2, fw_minor=1, fw_patch=0), dict(blocks=2048)),
    "fw_block": (dict(image_crc32=0xCBF43926, block=2047, block_crc32=v2.crc32(bytes(range(128))),
                      data=bytes(range(128))), {}),
    "fw_status": ({}, dict(phase=1, fw_major=2, fw_minor=1, fw_patch=0, blocks=2048, missing=10,
                           first_missing=[3, 4, 99, 1000, 2047, 0xFFFF, 0xFFFF, 0xFFFF])),
    "fw_verify": ({}, dict(phase=2)),
    "fw_swap": ({}, {}),
    "calibrate_actuator": ({}, dict(source=1, **GATE_MEASURED.fields())),
    "read_actuator_calibration": ({}, dict(source=0, **GATE_NOMINAL.fields())),
}


def valid_frames() -> list[dict]:
    out = []
    for seq, (name, (req, rep)) in enumerate(_SAMPLES.items()):
        out.append(_valid(f"{name}_request", v2.request_frame(17, seq, name, **req)))
        out.append(_valid(f"{name}_reply", v2.reply_frame(17, seq, name, **rep)))
    out.append(_valid("identify_request_broadcast", v2.request_frame(255, 200, "identify")))
    out.append(_valid("discover_request_broadcast", v2.request_frame(255, 201, "discover", salt=0, slots=247,
                                                                    only_unassigned=0)))
    out.append(_valid("identify_request_unassigned", v2.request_frame(248, 202, "identify")))
    out.append(_valid("set_state_reply_out_of_range", v2.reply_frame(17, 3, "set_state", v2.Error.OUT_OF_RANGE)))
    out.append(_valid("fw_block_reply_bad_block_crc", v2.reply_frame(17, 4, "fw_block", v2.Error.BAD_BLOCK_CRC)))
    out.append(_valid("unknown_command_reply", Frame(2, 0, 3, 14, 0x80 | 0x2A, bytes([v2.Error.UNKNOWN_COMMAND]))))
    out.append(_valid("max_payload_zeros", Frame(2, 2, 0, 0, 0x7F, bytes(247))))
    out.append(_valid("max_payload_ff", Frame(2, 255, 0, 255, 0xFF, b"\xff" * 247)))
    out.append(_valid("max_payload_ramp", Frame(2, 247, 0, 128, 3, bytes(range(247)))))
    out.append(_valid("v1_identify_probe_unicast", Frame(1, 17, 0, 9, 1, b"")))
    out.append(_valid("v1_identify_probe_broadcast", Frame(1, 255, 0, 10, 1, b"")))
    v1_reply = bytes([0]) + UID_A + bytes([2, 0, 0, 2, 2, 0])
    out.append(_valid("v1_identify_reply_of_a_protocol_2_board", Frame(1, 0, 17, 9, 0x81, v1_reply)))
    return out


def _with_crc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "big")


def malformed_frames() -> list[dict]:
    out = []

    def add(name: str, wire: bytes, error: str) -> None:
        out.append({"name": name, "wire_hex": hexs(wire), "error": error})

    good = frame_bytes(v2.request_frame(5, 1, "read_state"))
    add("bad_cobs_code_past_end", bytes([0x09, 0x02, 0x05]) + b"\x00", "bad_cobs")
    add("zero_inside_chunk", encode_frame(v2.request_frame(5, 1, "read_state"))[:3] + b"\x00\x01\x00", "bad_cobs")
    add("cobs_to_zero_bytes", b"\x01\x00", "too_short")
    add("six_bytes", wire_from_bytes(good[:6]), "too_short")
    add("decoded_255_bytes", wire_from_bytes(_with_crc(bytes([2, 5, 0, 1, 2]) + bytes(248))), "too_long")
    add("decoded_300_bytes", wire_from_bytes(_with_crc(bytes([2, 5, 0, 1, 2]) + bytes(293))), "too_long")
    add("crc_wrong", wire_from_bytes(good[:-1] + bytes([good[-1] ^ 1])), "bad_crc")
    for bit in (0, 7):
        flipped = bytearray(good)
        flipped[4] ^= 1 << bit
        add(f"cmd_bit_{bit}_flipped", wire_from_bytes(bytes(flipped)), "bad_crc")
    add("version_3", wire_from_bytes(_with_crc(bytes([3, 5, 0, 1, 2]))), "bad_version")
    add("version_0", wire_from_bytes(_with_crc(bytes([0, 5, 0, 1, 2]))), "bad_version")
    add("version_1_read_state", wire_from_bytes(_with_crc(bytes([1, 5, 0, 1, 2]))), "bad_version")
    add("version_1_identify_with_payload", wire_from_bytes(_with_crc(bytes([1, 5, 0, 1, 1, 0]))), "bad_version")
    return out
