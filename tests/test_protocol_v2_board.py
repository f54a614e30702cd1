"""Protocol 2's reference board follows the spec, one behaviour per test.

``firmware/protocol/PROTOCOL.md`` (protocol 2.0) section by section: receiving, addresses
and finding boards, timing of replies, the actuator's residue, the stored state and resets,
telemetry, firmware update and rollback, protocol 1's identify probe. Property tests feed
the board arbitrary frames (it never raises, and answers only as the spec allows) and
arbitrary learn sequences (the target is always the state reached plus the residue).
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from instruments.bus import payloads as v1_payloads, timing
from instruments.bus import v2
from instruments.bus.v2 import Error, Flag, Frame, Phase, ResetCause

UID = bytes.fromhex("4a1c00e3b2770f01")
OTHER = bytes.fromhex("0123456789abcdef")
NODES = (1_300_000, 1_000_000, 1_150_000, 1_000_000)


def board(**kw) -> v2.ReferenceBoard:
    kw.setdefault("address", 7)
    return v2.ReferenceBoard(kw.pop("uid", UID), kw.pop("kind", v2.Kind.MOSFET), node_uv=NODES, **kw)


def ask(b: v2.ReferenceBoard, cmd: str, dst: int | None = None, seq: int = 1, **fields):
    """Send a request; the reply's fields (None when there is no reply) and the Reply."""
    r = b.handle(v2.encode_frame(v2.request_frame(b.address if dst is None else dst, seq, cmd, **fields)))
    if r is None:
        return None, None
    f = v2.decode_frame(r.wire)
    assert (f.dst, f.seq, f.cmd) == (0, seq, v2.COMMANDS[cmd].code | v2.REPLY_BIT)
    return v2.unpack_reply(cmd, f.payload), r


def fields(b, cmd, dst=None, **kw) -> dict:
    return ask(b, cmd, dst, **kw)[0]


# ------------------------------------------------------------------------------ receiving


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=200), st.sampled_from([0, 7, 248, 255]))
def test_any_frame_gets_a_reply_the_spec_allows_or_none(cmd, seq, payload, dst):
    b = board()
    r = b.handle(v2.encode_frame(Frame(2, dst, 0, seq, cmd, payload)))
    if r is None:
        return
    f = v2.decode_frame(r.wire)
    assert f.src == 7 and f.dst == 0 and f.seq == seq and f.cmd == cmd | 0x80
    assert dst in (7, 255)
    spec = v2.COMMANDS_BY_CODE.get(cmd)
    if spec is None or len(payload) != spec.request_size:
        assert f.payload in (bytes([Error.UNKNOWN_COMMAND]), bytes([Error.BAD_LENGTH]))
    else:
        v2.unpack_reply(cmd, f.payload)


@given(st.binary(max_size=300))
def test_any_bytes_fed_to_a_board_never_raise(data):
    board().feed(data)


def test_a_bad_frame_is_counted_and_dropped():
    b = board()
    raw = v2.frame_bytes(v2.request_frame(7, 1, "identify"))
    assert b.handle(v2.framing.wire_from_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))) is None
    t = fields(b, "read_telemetry")
    assert (t["frames_bad"], t["last_error"], t["frames_ok"]) == (1, Error.BAD_CRC, 1)


def test_frames_for_another_address_or_the_unassigned_address_are_ignored():
    b = board()
    assert ask(b, "identify", 8)[0] is None and ask(b, "identify", 248)[0] is None
    assert fields(b, "read_telemetry")["frames_ok"] == 1


def test_a_refused_broadcast_sets_last_error_and_gets_no_reply():
    b = board()
    assert ask(b, "sample_drops", 255)[0] is None
    assert fields(b, "read_telemetry")["last_error"] == Error.BROADCAST_REFUSED


# ------------------------------------------------------------------------------ timing


def test_a_unicast_reply_starts_after_the_turnaround():
    for baud in (9600, 115200, 921600):
        b = board(baud=baud)
        assert ask(b, "identify")[1].start_us == timing.turnaround_us(baud)


def test_a_slotted_reply_starts_in_the_boards_slot_sized_from_the_commands_reply():
    b = board(address=100)
    for cmd in ("identify", "read_state", "read_telemetry", "fw_status"):
        r = ask(b, cmd, 255)[1]
        assert r.start_us == timing.reply_start_us(100, 115200, v2.COMMANDS[cmd].reply_size)


def test_commands_that_write_flash_report_their_quiet_time():
    b = board()
    assert ask(b, "store_state")[1].quiet_ms == 403
    assert ask(b, "fw_begin", size=8192, image_crc32=0, fw_major=2, fw_minor=1, fw_patch=0)[1].quiet_ms == 800
    assert ask(b, "learn")[1].quiet_ms == 0


# ------------------------------------------------------------------------------ addresses


def test_an_unassigned_board_answers_discover_but_no_slotted_broadcast():
    b = board(address=248)
    assert ask(b, "identify", 255)[0] is None and ask(b, "read_telemetry", 255)[0] is None
    got, r = ask(b, "discover", 255, salt=5, slots=32, only_unassigned=1)
    assert got["uid"] == UID and got["address"] == 248
    assert r.start_us == timing.reply_start_us(v2.discover_slot(UID, 5, 32), 115200, 17)


def test_assign_address_acts_only_for_its_uid_and_answers_from_the_new_address():
    b = board(address=248)
    assert ask(b, "assign_address", 255, uid=OTHER, address=9)[0] is None and b.address == 248
    got, r = ask(b, "assign_address", 255, uid=UID, address=9)
    assert got == {"status": 0} and v2.decode_frame(r.wire).src == 9 and r.quiet_ms == 403
    b.power_cycle()
    assert fields(b, "identify", 9)["address"] == 9


def test_assign_address_refuses_addresses_outside_1_to_248():
    b = board()
    for address in (0, 249, 255):
        assert fields(b, "assign_address", 255, uid=UID, address=address)["status"] == Error.OUT_OF_RANGE
    assert b.address == 7


def test_an_assigned_board_ignores_discover_for_unassigned_boards():
    b = board()
    assert ask(b, "discover", 255, salt=1, slots=8, only_unassigned=1)[0] is None
    assert fields(b, "discover", 255, salt=1, slots=8, only_unassigned=0)["address"] == 7


def test_a_reply_from_its_own_address_marks_a_duplicate_until_reassigned():
    b = board()
    b.handle(v2.encode_frame(v2.reply_frame(7, 0, "learn", state=1, residue=0, updated=0)))
    assert fields(b, "identify")["flags"] & Flag.DUPLICATE_ADDRESS
    fields(b, "assign_address", 255, uid=UID, address=7)
    assert not fields(b, "identify")["flags"] & Flag.DUPLICATE_ADDRESS


def test_discover_with_no_slot_is_not_answered_when_broadcast():
    b = board()
    assert ask(b, "discover", 255, salt=1, slots=0, only_unassigned=0)[0] is None
    assert b.last_error == Error.OUT_OF_RANGE
    bad_length = Frame(2, 255, 0, 1, v2.Cmd.DISCOVER, b"\x00")
    assert b.handle(v2.encode_frame(bad_length)) is None


# ------------------------------------------------------------------------------ actuator


@given(st.lists(st.integers(-3000, 3000), min_size=1, max_size=30), st.integers(1, 2000))
def test_the_target_is_the_state_reached_plus_the_residue_after_every_learn(changes, res):
    b = board(resolution=res, initial_state=2_000_000)
    for change in changes:
        b.rule, b.probability = v2.Rule.CONTINUOUS, v2.PROBABILITY_ONE
        b.gain = round(change * 2**48 / (300_000**2 - 150_000**2)) if change > 0 else 0
        got = fields(b, "learn")
        assert got["state"] + got["residue"] == b.target
        assert b.state_min <= got["state"] <= b.state_max and (got["state"] - b.state_min) % res == 0
        assert -res / 2 <= got["residue"] < res / 2


def test_set_state_reports_the_state_reached_and_the_residue():
    b = board(resolution=1000)
    assert fields(b, "set_state", state=2_000_499) == {"status": 0, "state": 2_000_000, "residue": 499}
    assert fields(b, "set_state", state=2_000_500) == {"status": 0, "state": 2_001_000, "residue": -500}


def test_a_faulty_actuator_is_reported_as_reached_not_as_commanded():
    b = board(resolution=1000, actuator_offset=-40)
    assert fields(b, "set_state", state=2_000_000) == {"status": 0, "state": 1_999_960, "residue": 40}


# ------------------------------------------------------------------------------ stored state


def test_the_stored_state_survives_restart_and_power_cycle_with_its_generation():
    b = board(initial_state=1_500_000)
    fields(b, "set_state", state=2_000_000)
    assert fields(b, "store_state")["generation"] == 1
    fields(b, "set_state", state=3_000_000)
    fields(b, "reset", mode=0)
    assert fields(b, "read_state") == {"status": 0, "state": 2_000_000, "residue": 0, "generation": 1}
    fields(b, "set_state", state=3_000_000)
    assert fields(b, "store_state")["generation"] == 2
    b.power_cycle()
    assert fields(b, "read_state")["state"] == 3_000_000
    assert fields(b, "read_telemetry")["reset_cause"] == ResetCause.POWER_ON


def test_a_factory_reset_forgets_the_stored_state():
    b = board(initial_state=1_500_000)
    fields(b, "set_state", state=2_000_000)
    fields(b, "store_state")
    fields(b, "reset", mode=1)
    assert fields(b, "read_state") == {"status": 0, "state": 1_500_000, "residue": 0, "generation": 0}
    assert fields(b, "read_telemetry")["reset_cause"] == ResetCause.RESET_COMMAND


def test_a_store_cut_by_a_power_loss_keeps_the_previous_record():
    b = board()
    fields(b, "set_state", state=2_000_000)
    fields(b, "store_state")
    fields(b, "set_state", state=4_000_000)
    b.cut_power_during_store = True
    assert ask(b, "store_state")[0] is None
    assert fields(b, "read_state")["state"] == 2_000_000 and fields(b, "read_state")["generation"] == 1


def test_state_unstored_flags_learning_a_restart_would_lose():
    b = board()
    assert not fields(b, "identify")["flags"] & Flag.STATE_UNSTORED
    fields(b, "set_state", state=2_000_000)
    assert fields(b, "identify")["flags"] & Flag.STATE_UNSTORED
    fields(b, "store_state")
    assert not fields(b, "identify")["flags"] & Flag.STATE_UNSTORED


def test_failing_flash_answers_storage_and_changes_nothing():
    b = board(storage_fails=True)
    for cmd, kw in (("store_state", {}), ("reset", {"mode": 1}), ("assign_address", {"uid": UID, "address": 9})):
        assert fields(b, cmd, 255 if cmd == "assign_address" else None, **kw)["status"] == Error.STORAGE
    assert b.address == 7 and b.reset_cause == ResetCause.POWER_ON


# ------------------------------------------------------------------------------ telemetry


def test_telemetry_counts_learns_updates_and_trigger_glitches():
    b = board(supply_uv=3_250_000, temperature_mdegc=31_500)
    fields(b, "configure_rule", rule=v2.Rule.CONTINUOUS, probability=0, gain=0, dead_band_uv2=0)
    fields(b, "learn")
    b.trigger(v2.TRIGGER_MIN_US)
    b.trigger(v2.TRIGGER_MIN_US - 1)
    t = fields(b, "read_telemetry")
    assert (t["learns"], t["updates"], t["glitches"]) == (2, 0, 1)
    assert (t["supply_uv"], t["temperature_mdegc"]) == (3_250_000, 31_500)


# ------------------------------------------------------------------------------ firmware update


def _update(b, image: bytes, *, skip=(), dst=None, version=(2, 1, 0)) -> None:
    crc = v2.crc32(image)
    assert fields(b, "fw_begin", dst, size=len(image), image_crc32=crc, fw_major=version[0],
                  fw_minor=version[1], fw_patch=version[2])["blocks"] == len(v2.image_blocks(image))
    for n, block in enumerate(v2.image_blocks(image)):
        if n not in skip:
            assert fields(b, "fw_block", dst, image_crc32=crc, block=n, block_crc32=v2.crc32(block),
                          data=block)["status"] == 0


IMAGE = bytes((i * 37 + 11) & 0xFF for i in range(3000))


@given(st.sets(st.integers(0, 23), max_size=24))
def test_fw_status_lists_exactly_the_missing_blocks(skip):
    b = board()
    _update(b, IMAGE, skip=skip)
    s = fields(b, "fw_status")
    assert s["missing"] == len(skip) and s["blocks"] == 24
    assert s["first_missing"] == (sorted(skip) + [v2.NO_BLOCK] * 8)[:8]


def test_an_update_confirms_itself_after_the_swap():
    b = board()
    fields(b, "set_state", state=2_000_000)
    fields(b, "store_state")
    _update(b, IMAGE)
    assert fields(b, "fw_verify") == {"status": 0, "phase": Phase.VERIFIED}
    assert ask(b, "fw_swap")[1].quiet_ms == v2.quiet_ms("fw_swap")
    i = fields(b, "identify")
    assert (i["fw_major"], i["fw_minor"], i["fw_patch"]) == (2, 1, 0)
    assert fields(b, "read_telemetry")["reset_cause"] == ResetCause.FIRMWARE_SWAP
    assert fields(b, "fw_status")["phase"] == Phase.CONFIRMED and fields(b, "read_state")["state"] == 2_000_000


def test_an_image_failing_its_self_test_rolls_back():
    b = board(self_test=lambda image: image.version != (2, 1, 0))
    _update(b, IMAGE)
    fields(b, "fw_verify")
    fields(b, "fw_swap")
    i = fields(b, "identify")
    assert (i["fw_major"], i["fw_minor"]) == (2, 0) and i["flags"] & Flag.ROLLED_BACK
    assert fields(b, "read_telemetry")["reset_cause"] == ResetCause.ROLLBACK
    _update(b, IMAGE, version=(2, 1, 1))
    fields(b, "fw_verify")
    fields(b, "fw_swap")
    assert fields(b, "identify")["fw_patch"] == 1 and fields(b, "fw_status")["phase"] == Phase.CONFIRMED


def test_update_commands_out_of_order_are_refused():
    b = board()
    assert fields(b, "fw_verify")["status"] == Error.FW_SEQUENCE
    assert fields(b, "fw_swap")["status"] == Error.FW_SEQUENCE
    _update(b, IMAGE, skip={5})
    assert fields(b, "fw_verify")["status"] == Error.FW_INCOMPLETE
    assert fields(b, "fw_swap")["status"] == Error.FW_SEQUENCE
    block = v2.image_blocks(IMAGE)[5]
    assert fields(b, "fw_block", image_crc32=1, block=5, block_crc32=v2.crc32(block),
                  data=block)["status"] == Error.FW_SEQUENCE
    assert fields(b, "fw_block", image_crc32=v2.crc32(IMAGE), block=5, block_crc32=v2.crc32(block) ^ 1,
                  data=block)["status"] == Error.BAD_BLOCK_CRC
    assert fields(b, "fw_block", image_crc32=v2.crc32(IMAGE), block=24, block_crc32=v2.crc32(block),
                  data=block)["status"] == Error.OUT_OF_RANGE


def test_a_wrong_image_crc_drops_the_update():
    b = board()
    fields(b, "fw_begin", size=len(IMAGE), image_crc32=v2.crc32(IMAGE) ^ 1, fw_major=2, fw_minor=1, fw_patch=0)
    for n, block in enumerate(v2.image_blocks(IMAGE)):
        fields(b, "fw_block", image_crc32=v2.crc32(IMAGE) ^ 1, block=n, block_crc32=v2.crc32(block), data=block)
    assert fields(b, "fw_verify")["status"] == Error.FW_IMAGE_CRC
    assert fields(b, "fw_status")["phase"] == Phase.IDLE


def test_a_restart_during_an_update_forgets_it():
    b = board()
    _update(b, IMAGE)
    fields(b, "reset", mode=0)
    assert fields(b, "fw_status")["phase"] == Phase.IDLE and fields(b, "identify")["fw_minor"] == 0


def test_a_broadcast_update_reaches_every_board():
    boards = [board(address=a, uid=bytes([a]) * 8) for a in (1, 2, 3)]
    image = IMAGE[:1000]
    crc = v2.crc32(image)
    frames = [v2.request_frame(255, 0, "fw_begin", size=len(image), image_crc32=crc, fw_major=2, fw_minor=1,
                               fw_patch=0)]
    frames += [v2.request_frame(255, 0, "fw_block", image_crc32=crc, block=n, block_crc32=v2.crc32(blk), data=blk)
               for n, blk in enumerate(v2.image_blocks(image))]
    frames += [v2.request_frame(255, 0, "fw_verify"), v2.request_frame(255, 0, "fw_swap")]
    for f in frames:
        for b in boards:
            assert b.handle(v2.encode_frame(f)) is None
    assert all(b.fw_version == (2, 1, 0) for b in boards)


# ------------------------------------------------------------------------------ protocol 1


def test_the_version_1_probe_is_answered_in_protocol_1s_layout_with_protocol_2():
    b = board(address=17)
    r = b.handle(v2.encode_frame(Frame(1, 17, 0, 3, 1, b"")))
    f = v2.decode_any(r.wire)
    assert (f.version, f.src, f.seq, f.cmd) == (1, 17, 3, 0x81)
    got = v1_payloads.unpack_reply("identify", f.payload)
    assert (got["uid"], got["protocol"], got["protocol_minor"]) == (UID, 2, v2.PROTOCOL_MINOR) == (UID, 2, 1)
    assert r.start_us == timing.turnaround_us(115200)
    assert b.handle(v2.encode_frame(Frame(1, 255, 0, 4, 1, b""))).start_us == 17 * timing.V1_SLOT_US


def test_other_version_1_frames_are_bad_version_and_unassigned_boards_ignore_the_probe():
    b = board()
    assert b.handle(v2.encode_frame(Frame(1, 7, 0, 1, 2, b""))) is None
    assert fields(b, "read_telemetry")["last_error"] == Error.BAD_VERSION
    fresh = board(address=248)
    assert fresh.handle(v2.encode_frame(Frame(1, 255, 0, 1, 1, b""))) is None


@pytest.mark.parametrize("minor", [0, 1])
def test_a_protocol_1_board_drops_protocol_2_frames(minor):
    from instruments.bus.protocol import ReferenceBoard as V1Board
    old = V1Board(7, UID, 1, protocol_minor=minor)
    assert old.handle(v2.encode_frame(v2.request_frame(7, 1, "identify"))) is None
    assert old.last_error == Error.BAD_VERSION
