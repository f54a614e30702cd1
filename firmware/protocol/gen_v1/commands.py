"""``vectors/commands.json``: exchanges with a fresh board and byte streams (format: ``gen_vectors.py``)."""

from __future__ import annotations

from instruments.bus import protocol as P
from instruments.bus.protocol import Frame, encode_frame, frame_bytes, wire_from_bytes

from .common import FW_VERSION, GEN2_GAIN, GAIN_MAX_1_0, GAIN_MAX, UID_A, UID_B, _hex
from .frames import _bitflip, _with_crc, malformed_frames

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
