"""``vectors/v2/commands.json``: exchanges between a host and boards, from power-on.

``{"cases": [bus sessions, see :mod:`.bus`], "streams": [{name, board, stream_hex,
replies: [{reply_hex, start_us}]}]}``. A case's ``boards`` are built as described (their
uptime constant), then its exchanges run in order; ``replies`` give, per board, the reply
and its earliest start after the request's end of frame (us, at the case's ``baud``), and
whether its time on the wire overlaps another's. A stream is fed to one board as one byte
stream, in any pieces: line noise, then frames as the host sends them (a 0x00 before each).
"""

from __future__ import annotations

from instruments.bus import rule as R
from instruments.bus import v2
from instruments.bus.v2 import Frame, encode_frame, frame_bytes, line_frame
from instruments.bus.framing import wire_from_bytes

from .bus import MOSFET_NODES, UID_A, UID_B, UID_C, Bus, board_spec, hexs, make_board

U = v2.ADDR_UNASSIGNED
B = v2.ADDR_BROADCAST


def _cfg(rule: str, probability=65536, gain=0, dead_band_uv2=0) -> dict:
    return {"rule": v2.RULES[rule], "probability": probability, "gain": gain, "dead_band_uv2": dead_band_uv2}


def _colliding_salt(uids, slots: int, want_collision: bool) -> int:
    """The first salt under which the uids' discover slots collide (or all differ)."""
    for salt in range(1, 10_000):
        got = [v2.discover_slot(u, salt, slots) for u in uids]
        if (len(set(got)) < len(got)) == want_collision:
            return salt
    raise AssertionError("no such salt")


def addressing_cases() -> list[Bus]:
    out = []
    s = Bus("unassigned_board_gets_an_address", board_spec())
    s("identify", U); s("identify", B); s("read_state", B)
    s("discover", B, salt=7, slots=16, only_unassigned=1)
    s("assign_address", B, uid=UID_B, address=17)                     # another uid: ignored
    s("assign_address", B, uid=UID_A, address=0)                      # out_of_range
    s("assign_address", B, uid=UID_A, address=249)
    s("assign_address", B, uid=UID_A, address=17)
    s("identify", 17); s("identify", B); s("identify", U)
    s("discover", B, salt=7, slots=16, only_unassigned=1)             # assigned: ignored
    s("discover", B, salt=7, slots=16, only_unassigned=0)
    s("discover", B, salt=7, slots=0, only_unassigned=0)              # out_of_range, no slot: no reply
    s("discover", 17, salt=7, slots=248, only_unassigned=0)           # out_of_range, unicast
    s("discover", 17, salt=7, slots=16, only_unassigned=2)
    s.event("power_cycle")
    s("identify", 17)                                                 # the address was stored
    s("assign_address", 17, uid=UID_A, address=U)                     # back to unassigned
    s("identify", 17); s("identify", U)
    out.append(s)

    uids = [UID_A, UID_B, UID_C]
    boards = [board_spec(uid=u) for u in uids]
    s = Bus("discover_and_assign_three_fresh_boards", *boards)
    s("discover", B, salt=_colliding_salt(uids, 4, True), slots=4, only_unassigned=1)   # two share a slot
    s("discover", B, salt=_colliding_salt(uids, 8, False), slots=8, only_unassigned=1)
    for addr, uid in zip((3, 1, 2), uids):
        s("assign_address", B, uid=uid, address=addr)
    s("discover", B, salt=99, slots=8, only_unassigned=1)            # none left
    s("identify", B); s("read_state", B); s("read_telemetry", B)
    # an assign_address broadcast of the wrong length names no board: none answers, all
    # three note bad_length
    s.frame(Frame(2, B, 0, 0x55, v2.COMMANDS["assign_address"].code, bytes(3)))
    s("read_telemetry", B)
    out.append(s)

    s = Bus("duplicate_address_found_and_resolved", board_spec(uid=UID_A, address=5),
            board_spec(uid=UID_B, address=5), board_spec(uid=UID_C, address=6))
    s("identify", B)                                                 # slot 5 collides
    s("read_state", 5)                                               # the two replies collide
    s("discover", B, salt=_colliding_salt(uids, 16, False), slots=16, only_unassigned=0)
    s("identify", 6)
    s("assign_address", B, uid=UID_B, address=7)
    s("identify", B)
    s("assign_address", B, uid=UID_A, address=5)                     # clears its flag
    s("read_telemetry", B)
    out.append(s)

    s = Bus("reply_from_own_address_sets_the_flag", board_spec(address=9))
    s.frame(v2.reply_frame(9, 0, "read_state", state=1, residue=0, generation=0))
    s.frame(v2.reply_frame(8, 0, "read_state", state=1, residue=0, generation=0))
    s.frame(Frame(2, 9, 17, 1, 1, b""))                              # a request from a board: answered
    s("read_telemetry", 9)
    s("reset", 9, mode=0)
    s("identify", 9)
    out.append(s)
    return out


def state_cases() -> list[Bus]:
    out = []
    s = Bus("state_and_residue_mosfet", board_spec(kind="mosfet", address=2, resolution=1000,
                                                   initial_state=1_500_000, node_uv=MOSFET_NODES))
    s("read_actuator", 2); s("read_state", 2)
    s("set_state", 2, state=2_000_499); s("set_state", 2, state=2_000_500); s("read_state", 2)
    s("set_state", 2, state=999_999); s("set_state", 2, state=5_500_001); s("read_state", 2)
    s("configure_rule", 2, **_cfg("gate_charging", gain=round(300 * 2**48 / (300_000**2 - 150_000**2))))
    for _ in range(4):
        s("learn", 2)
    s("read_state", 2)
    s("set_state", B, state=3_000_250); s("learn", B); s("read_state", B)
    out.append(s)

    s = Bus("state_digipot", board_spec(address=17, initial_state=50))
    s("read_actuator", 17); s("read_state", 17)
    s("set_state", 17, state=73); s("set_state", 17, state=100); s("set_state", 17, state=-1)
    s("configure_rule", 17, **_cfg("tap", dead_band_uv2=1000)); s("learn", 17); s("learn", 17)
    s("configure_rule", 17, **_cfg("gate_charging")); s("configure_rule", 17, **_cfg("tap", 65537))
    s("read_state", 17)
    out.append(s)

    s = Bus("stored_state_kept_across_resets", board_spec(kind="mosfet", address=4, resolution=1000,
                                                          initial_state=1_500_000, node_uv=MOSFET_NODES))
    s("read_state", 4); s("identify", 4)
    s("set_state", 4, state=2_000_300); s("identify", 4)             # state_unstored
    s("store_state", 4); s("read_state", 4); s("identify", 4)
    s("set_state", 4, state=3_000_000)
    s("reset", 4, mode=0); s("read_state", 4); s("read_telemetry", 4)  # the stored target, reset_command
    s("set_state", 4, state=3_000_000); s("store_state", B); s("read_state", 4)
    s.event("power_cycle")
    s("read_state", 4); s("read_telemetry", 4)
    s("reset", 4, mode=2)                                             # out_of_range
    s("reset", 4, mode=1); s("read_state", 4); s("identify", 4)       # factory: generation 0
    s("store_state", 4); s("read_state", 4)                          # generation 1 again
    s("reset", B, mode=0); s("read_state", 4)
    out.append(s)

    s = Bus("store_interrupted_by_a_power_cut", board_spec(kind="mosfet", address=4, initial_state=1_500_000,
                                                           node_uv=MOSFET_NODES))
    s("set_state", 4, state=2_000_000); s("store_state", 4)
    s("set_state", 4, state=2_500_000); s("store_state", 4)
    s("set_state", 4, state=3_000_000)
    s.event("cut_power_during_next_store")
    s("store_state", 4)                                               # no reply: the power failed
    s("read_state", 4); s("read_telemetry", 4)                        # generation 2 restored
    s("set_state", 4, state=3_000_000); s("store_state", 4); s("read_state", 4)
    out.append(s)

    s = Bus("flash_fails", board_spec(address=6, storage_fails=True))
    s("store_state", 6); s("store_calibration", 6, offset_free_a_uv=1, offset_free_b_uv=2,
                                               offset_clamped_a_uv=3, offset_clamped_b_uv=4)
    s("assign_address", B, uid=UID_A, address=7); s("reset", 6, mode=1); s("reset", 6, mode=0)
    s("read_telemetry", 6)
    out.append(s)
    return out


def actuator_calibration_cases() -> list[Bus]:
    """Protocol 2.1's actuator calibration: nominal until measured, measured kept across every
    reset, refused by a digipot and by broadcast where the spec says."""
    out = []
    s = Bus("actuator_calibration_mosfet", board_spec(kind="mosfet", address=8, resolution=1000,
                                                      initial_state=1_500_000, node_uv=MOSFET_NODES))
    s("read_actuator_calibration", 8)                                # nominal (source 0)
    s("set_state", 8, state=2_500_400)
    s("calibrate_actuator", 8)                                       # measured (source 1), state kept
    s("read_state", 8); s("read_actuator_calibration", 8)
    s("read_actuator_calibration", B)                                # refused: no reply
    s("reset", 8, mode=0); s("read_actuator_calibration", 8)
    s.event("power_cycle")
    s("read_actuator_calibration", 8)
    s("reset", 8, mode=1); s("read_actuator_calibration", 8)        # kept by a factory reset too
    s.frame(Frame(2, 8, 0, 60, v2.COMMANDS["calibrate_actuator"].code, b"\x01"))   # bad_length
    s("calibrate_actuator", B)                                       # silent: every board measures
    s("read_telemetry", 8)
    out.append(s)

    s = Bus("actuator_calibration_digipot_and_flash_fault", board_spec(address=17, initial_state=50),
            board_spec(uid=UID_B, kind="mosfet", address=18, storage_fails=True, node_uv=MOSFET_NODES))
    s("calibrate_actuator", 17); s("read_actuator_calibration", 17)  # wrong_kind
    s("calibrate_actuator", 18); s("read_actuator_calibration", 18)  # storage: still nominal
    s("read_telemetry", B)
    out.append(s)
    return out


def telemetry_cases() -> list[Bus]:
    out = []
    s = Bus("telemetry_counts", board_spec(address=33, supply_uv=3_287_500, temperature_mdegc=-12_340))
    s("read_telemetry", 33)
    s("configure_rule", 33, **_cfg("tap", probability=32768)); s("learn", 33); s("learn", 33)
    s.event("trigger", width_us=25); s.event("trigger", width_us=20); s.event("trigger", width_us=19)
    s.event("trigger", width_us=1)
    good = frame_bytes(v2.request_frame(33, 1, "read_state"))
    s.raw(wire_from_bytes(good[:-1] + bytes([good[-1] ^ 1])))        # bad_crc
    s("read_telemetry", 33); s("read_telemetry", B)
    out.append(s)

    s = Bus("broadcast_handling", board_spec(address=12, node_uv=MOSFET_NODES, kind="mosfet"))
    s("sample_drops", B); s("read_telemetry", 12)                     # refused
    s("sample_drops", 12); s("read_calibration", B); s("read_actuator", B)
    s("store_calibration", B, offset_free_a_uv=1, offset_free_b_uv=2, offset_clamped_a_uv=3, offset_clamped_b_uv=4)
    s("read_calibration", 12)
    s("configure_rule", B, **_cfg("continuous", gain=1 << 30)); s("learn", B); s("read_state", B)
    s.frame(Frame(2, B, 0, 40, 0x2A, b""))                           # unknown, broadcast: no reply
    s.frame(Frame(2, 12, 0, 41, 0x2A, b""))                          # unknown, unicast
    s.frame(Frame(2, B, 0, 42, 2, b"\x00"))                           # bad_length in slot 12
    s.frame(Frame(2, 12, 0, 43, 3, b"\x00"))                          # bad_length
    s("read_telemetry", 12)
    out.append(s)
    return out


def probe_cases() -> list[Bus]:
    s = Bus("version_1_identify_probe", board_spec(address=17, kind="mosfet", node_uv=MOSFET_NODES),
            board_spec(uid=UID_B))
    s.v1_identify(17); s.v1_identify(B); s.v1_identify(18); s.v1_identify(U)
    s.frame(Frame(1, 17, 0, 50, 2, b""))                              # version 1 read_state: bad_version
    s.frame(Frame(1, 17, 0, 51, 1, b"\x00"))                          # version 1 identify with a payload
    s.frame(Frame(3, 17, 0, 52, 1, b""))                              # version 3
    s("read_telemetry", 17)
    return [s]


def stream_cases() -> list[dict]:
    g = R.Xorshift32(0x4B1D)
    noise = bytes(g.next() >> 24 for _ in range(4096))
    noise = noise[:-1] + (noise[-1:] if noise[-1] else b"\x5a")
    spec = board_spec(address=3, kind="mosfet", node_uv=MOSFET_NODES)
    b = make_board(spec)
    line = lambda dst, seq, cmd, **f: line_frame(v2.request_frame(dst, seq, cmd, **f))  # noqa: E731
    parts = [noise, line(B, 1, "identify"), line(B, 2, "set_state", state=2_000_000), line(3, 3, "read_state"),
             noise[:77], line(3, 4, "fw_block", image_crc32=1, block=0, block_crc32=v2.crc32(bytes(128)),
                                  data=bytes(128)),
             encode_frame(v2.request_frame(3, 5, "identify")),            # glued to nothing: heard
             line(3, 6, "read_telemetry")]
    data = b"".join(parts)
    replies = b.feed(data)
    return [{"name": "noise_then_line_frames", "board": spec, "stream_hex": hexs(data),
             "replies": [{"reply_hex": hexs(r.wire), "start_us": r.start_us} for r in replies]}]


def command_vectors() -> dict:
    cases = (addressing_cases() + state_cases() + actuator_calibration_cases() + telemetry_cases()
             + probe_cases())
    return {"cases": [c.json() for c in cases], "streams": stream_cases()}
