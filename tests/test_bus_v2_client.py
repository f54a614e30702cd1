"""The host's protocol-2 client (instruments/bus/v2/client.py, host_update.py, rig.py)
against emulated protocol-2 boards on a pseudo-terminal (instruments/bus/v2/onwire.py).

Behaviour: a protocol-1 board on the bus is refused by name, with the version it speaks;
fresh boards (all at address 248) are discovered in hashed slots and given unique
addresses by uid; two boards at one address are found and named, and moved apart; state,
learn, telemetry, store and reset do what PROTOCOL.md says; a bus's boards are updated
with only the missing blocks resent and a rollback reported; two buses run as one rig
with boards keyed by (bus, address), and a uid on both buses is a wiring fault. The
missing-block bookkeeping is checked by hypothesis. The emulator runs in emulated time: no
test sleeps, and no assertion reads a wall clock.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import serial
from hypothesis import example, given, settings, strategies as st

from instruments.bus import reference as v1_reference
from instruments.bus.v2 import Kind, Phase, ReferenceBoard, crc32, image_blocks, onwire, quiet_ms
from instruments.bus.v2.client import Bus, BusError, BusTimeout, ProtocolMismatch
from instruments.bus.v2.constants import ADDR_BROADCAST, ADDR_UNASSIGNED, MISSING_LISTED, NO_BLOCK
from instruments.bus.v2.host_update import listed_missing, parse_version, plan_resend, update_bus
from instruments.bus.v2.link import EmulatedPort, SerialPort
from instruments.bus.v2.rig import Rig, WiringFault
from instruments.bus.v2.slots import listen_us


@pytest.fixture
def emulate():
    """``emulate(boards, others=(), **kw)`` -> (emulator, Bus); both closed after the test."""
    opened = []

    def start(boards, others=(), *, seed=0, **kw):
        em = onwire.emulate(boards, others, **kw)
        em.start()
        bus = Bus(em.port, seed=seed)
        opened.append((em, bus))
        return em, bus

    yield start
    for em, bus in opened:
        bus.close()
        em.close()


def _image(n: int = 4096, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


# ------------------------------------------------------------------------ protocol 1 boards
def test_a_protocol_1_board_is_refused_by_name_with_the_version_it_speaks(emulate):
    old = v1_reference.ReferenceBoard(5, bytes.fromhex("4a1c00e3b2770f01"), Kind.MOSFET)
    em, bus = emulate(onwire.make_boards(4), [old])
    with pytest.raises(ProtocolMismatch) as exc:
        bus.probe_v1()
    msg = str(exc.value)
    assert "board 5 (uid 4a1c00e3b2770f01, firmware 1.2.0) speaks protocol 1.1" in msg
    assert "this host speaks protocol 2" in msg and "MIGRATION.md" in msg
    assert list(exc.value.boards) == [5]


def test_protocol_2_boards_answer_the_probe_with_protocol_2(emulate):
    em, bus = emulate(onwire.make_boards(3))
    replies = bus.probe_v1()
    assert sorted(replies) == [1, 2, 3]
    assert {r["protocol"] for r in replies.values()} == {2}


def test_a_protocol_1_board_stops_an_update_before_anything_is_written(emulate):
    old = v1_reference.ReferenceBoard(2, bytes(range(8)), Kind.MOSFET)
    boards = onwire.make_boards(3)
    boards[1].address = 9
    em, bus = emulate(boards, [old])
    with pytest.raises(ProtocolMismatch, match="board 2 .*speaks protocol 1.1"):
        update_bus(bus, _image(), (2, 1, 0))
    assert all(b.firmware.phase == Phase.IDLE and b.store.generation == 0 for b in boards)


# ------------------------------------------------------------------------ scan
def test_a_scan_hears_every_board_in_two_clean_passes(emulate):
    boards = onwire.make_boards(12)
    em, bus = emulate(boards)
    t0 = bus.bus_time_us()
    scan = bus.scan()
    assert scan.agreed and scan.passes == 2 and scan.garbled == 0 and not scan.missed
    assert [b.uid for b in scan] == [b.uid.hex() for b in boards]
    assert {(b.protocol, b.firmware, b.kind) for b in scan} == {(2, "2.0.0", "mosfet")}
    # two passes, each heard until the last slot of address 247 (emulated time)
    assert bus.bus_time_us() - t0 >= 2 * listen_us("identify", 115200)


def test_a_scan_reports_garbled_replies_and_the_boards_a_pass_missed(emulate):
    from instruments.bus.emulator import Faults

    boards = onwire.make_boards(30)
    em, bus = emulate(boards, faults=Faults(flip_bit=0.05, seed=3))
    scan = bus.scan(max_passes=16)
    assert scan.garbled > 0 and scan.missed
    assert scan.agreed and len(scan) == 30
    assert "garbled" in scan.summary() and "missing from some passes" in scan.summary()


# ------------------------------------------------------------------------ finding boards
def test_discover_and_assign_give_fresh_boards_unique_addresses(emulate):
    boards = onwire.make_boards(60, unassigned=True, seed=7)
    em, bus = emulate(boards, seed=11)
    assert bus.scan() == []  # unassigned boards answer no slotted broadcast
    assigned = bus.assign_unassigned()
    assert sorted(assigned) == sorted(b.uid.hex() for b in boards)
    assert sorted(assigned.values()) == list(range(1, 61))
    assert {b.uid.hex(): b.address for b in boards} == assigned
    scan = bus.scan()
    assert {b.uid: b.address for b in scan} == assigned
    # nothing unassigned is left: a discover hears nothing at all
    h = bus.discover(32)
    assert h.replies == [] and h.garbled == 0


@settings(max_examples=8)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), salt_seed=st.integers(0, 2**32 - 1))
def test_any_fresh_boards_get_unique_addresses(n, seed, salt_seed):
    boards = onwire.make_boards(n, unassigned=True, seed=seed)
    with onwire.emulate(boards) as em, Bus(em.port, seed=salt_seed) as bus:
        assigned = bus.assign_unassigned(expected=n // 2 + 1)
    assert sorted(assigned.values()) == list(range(1, n + 1))
    assert {b.uid.hex(): b.address for b in boards} == assigned


def test_assign_unassigned_keeps_the_addresses_in_use(emulate):
    boards = onwire.make_boards(6, seed=2)
    fresh = onwire.make_boards(5, unassigned=True, seed=3)
    em, bus = emulate(boards + fresh, seed=5)
    taken = [b.address for b in bus.scan()]
    assigned = bus.assign_unassigned(taken, expected=5)
    assert sorted(assigned.values()) == [7, 8, 9, 10, 11]
    assert len(bus.scan()) == 11


def test_two_boards_on_one_address_are_found_named_and_moved_apart(emulate):
    boards = onwire.make_boards(20, seed=4)
    boards[5].address = 3   # 6 is now empty, 3 shared
    boards[12].address = 9  # 13 is now empty, 9 shared
    em, bus = emulate(boards, seed=8)
    scan = bus.scan()
    assert 3 not in {b.address for b in scan} and 9 not in {b.address for b in scan}
    dups = bus.find_duplicates(scan)
    assert dups.by_address == {3: sorted([boards[2].uid.hex(), boards[5].uid.hex()]),
                               9: sorted([boards[8].uid.hex(), boards[12].uid.hex()])}
    assert not dups.unresolved
    text = dups.summary(bus.name)
    assert f"address 3 is shared by boards {dups.by_address[3][0]}, {dups.by_address[3][1]}" in text
    moved = bus.resolve_duplicates(dups)
    assert sorted(moved.values()) == [6, 13]
    assert len(moved) == 2
    after = bus.scan()
    assert len(after) == 20 and len({b.address for b in after}) == 20
    assert not bus.find_duplicates(after)


def test_a_board_that_heard_its_own_address_says_so(emulate):
    from instruments.bus.v2 import encode_frame, request_frame

    boards = onwire.make_boards(3, seed=9)
    em, bus = emulate(boards)
    assert not bus.identify(2).duplicate_flag
    other = ReferenceBoard(bytes(8), Kind.MOSFET, address=2)  # another board at address 2
    boards[1].handle(other.handle(encode_frame(request_frame(2, 1, "identify"))).wire)
    assert bus.identify(2).duplicate_flag
    bus.assign_address(boards[1].uid, 2)  # clears it
    assert not bus.identify(2).duplicate_flag


# ------------------------------------------------------------------------ state and telemetry
def test_state_learn_telemetry_store_and_reset(emulate):
    boards = onwire.make_boards(2, seed=12, node_uv=(300_000, 280_000, 300_000, 285_000))
    em, bus = emulate(boards)
    r = bus.set_state(1, 2_500_000)
    assert r["state"] + r["residue"] == 2_500_000
    assert bus.read_state(1)["generation"] == 0
    bus.learn(1)
    bus.learn()  # broadcast: silent, every board learns
    tel = bus.read_telemetry(1)
    assert tel["learns"] == 2 and tel["reset_cause_name"] == "power_on"
    assert tel["supply_uv"] == 3_300_000 and tel["temperature_mdegc"] == 25_000
    assert "state_unstored" in tel["flag_names"]
    assert bus.store_state(1) == 1
    assert bus.telemetry()[2]["learns"] == 1
    bus.set_state(1, 4_000_000)
    bus.reset(1, "restart")
    assert bus.read_state(1)["state"] == 2_500_000  # the stored state is restored
    tel = bus.read_telemetry(1)
    assert tel["reset_cause_name"] == "reset_command" and tel["learns"] == 0
    bus.reset(1, "factory")
    st = bus.read_state(1)
    assert st["generation"] == 0 and st["state"] == boards[0].initial_state
    bus.store_state()  # broadcast, after its quiet time
    assert {a: s["generation"] for a, s in bus.read_states().items()} == {1: 1, 2: 1}


def test_a_board_that_does_not_answer_is_a_timeout_naming_it(emulate):
    em, bus = emulate(onwire.make_boards(2))
    with pytest.raises(BusTimeout, match=r"board 7: read_state: no reply after 3 attempt\(s\)"):
        bus.read_state(7)
    with pytest.raises(BusTimeout, match="not retried"):
        bus.learn(7)


# ------------------------------------------------------------------------ firmware update
def test_an_update_resends_only_the_lost_blocks_and_reports_the_rollback(emulate):
    boards = onwire.make_boards(8, seed=13)
    lossy = onwire.LossyBoard.like(boards[2], lose={1, 5, 30})
    plain = onwire.LossyBoard.like(boards[0], lose=set())
    boards[0], boards[2] = plain, lossy
    boards[6].firmware.self_test = lambda image: False
    em, bus = emulate(boards)
    image = _image(4000)
    rep = update_bus(bus, image, (2, 1, 0))
    n = len(image_blocks(image))
    assert rep.blocks == n == 32 and rep.blocks_broadcast == n
    assert rep.boards[3].resent == [1, 5, 30] and rep.blocks_resent == 3
    assert all(not rep.boards[a].resent for a in rep.boards if a != 3)
    assert lossy.blocks_heard == [(ADDR_BROADCAST, b) for b in range(n) if b not in {1, 5, 30}] + \
        [(3, 1), (3, 5), (3, 30)]
    assert plain.blocks_heard == [(ADDR_BROADCAST, b) for b in range(n)]
    assert [a for a, b in rep.boards.items() if b.outcome == "confirmed"] == [1, 2, 3, 4, 5, 6, 8]
    back = rep.boards[7]
    assert back.outcome == "rolled_back" and back.version == "2.0.0" and back.reset_cause == "rollback"
    assert "rolled back" in back.line(bus.name) and "board 7" in back.line(bus.name)
    for b in boards:
        want = (2, 0, 0) if b is boards[6] else (2, 1, 0)
        assert b.fw_version == want
    assert all(b.firmware.running.data == image for b in boards if b is not boards[6])
    assert rep.bus_time_us > 0


def test_a_board_that_missed_fw_begin_is_begun_again_and_sent_every_block(emulate):
    boards = onwire.make_boards(4, seed=14)
    deaf = onwire.LossyBoard.like(boards[1], lose=set(), lose_begin=1)
    boards[1] = deaf
    em, bus = emulate(boards)
    image = _image(1000)
    rep = update_bus(bus, image, (3, 0, 0))
    assert rep.boards[2].resent == list(range(8))
    assert {b.outcome for b in rep.boards.values()} == {"confirmed"}
    assert deaf.fw_version == (3, 0, 0)


def test_a_board_that_stays_silent_is_reported_failed_and_the_others_update(emulate):
    boards = onwire.make_boards(4, seed=15)
    em, bus = emulate(boards)
    scan = bus.scan()
    em.faults.mute = {4}
    rep = update_bus(bus, _image(512), (2, 2, 0), scan=scan, probe=False)
    assert rep.boards[4].outcome == "failed" and "fw_status" in rep.boards[4].reason
    assert [a for a, b in rep.boards.items() if b.outcome == "confirmed"] == [1, 2, 3]


def test_a_board_reporting_a_phase_the_spec_does_not_name_fails_alone(emulate):
    boards = onwire.make_boards(3, seed=16)
    status = boards[1].firmware.status
    boards[1].firmware.status = lambda: {**status(), "phase": 9}  # a faulty (or newer) board
    em, bus = emulate(boards)
    rep = update_bus(bus, _image(512), (2, 3, 0))
    assert rep.boards[2].outcome == "failed" and rep.boards[2].reason == "not verified (phase 9 (unknown))"
    assert [a for a, b in rep.boards.items() if b.outcome == "confirmed"] == [1, 3]


def test_a_gate_calibration_keeps_the_board_deaf_until_it_is_done(emulate):
    """calibrate_actuator (protocol 2.1) measures for about a second and writes flash before
    its board listens again: a host that does not keep its quiet time hears nothing from it,
    one that does is answered; a digipot refuses at once and stays listening."""
    from instruments.bus.v2 import request_frame

    mosfet = onwire.make_boards(1, seed=17)
    digipot = [ReferenceBoard(bytes(range(8)), Kind.DIGIPOT, address=2)]
    em, bus = emulate(mosfet + digipot)
    bus.port.exchange(request_frame(ADDR_BROADCAST, 1, "calibrate_actuator"), 0, replies=False)  # no quiet
    with pytest.raises(BusTimeout):  # its reply would come after the measurement: too late
        bus.request(1, "read_state", retries=0)
    assert bus.request(2, "read_state")["state"] == digipot[0].state  # the digipot listens
    bus.port.wait(quiet_ms("calibrate_actuator") * 1000)
    assert bus.read_actuator_calibration(1) == (1, mosfet[0].gate_measured)


def test_a_reply_later_than_the_hosts_window_is_not_heard_and_collides_with_the_next_request(emulate):
    """The wire is as strict as a real one: a host that waited its window has moved on, so a
    board that answers later (here one stalled with interrupts off) is not heard, and its
    reply garbles whatever the host sends meanwhile."""
    from instruments.bus import timing
    from instruments.bus.v2 import windows

    boards = onwire.make_boards(2, seed=18)
    em, bus = emulate(boards)
    assert bus.read_state(1)["state"] == boards[0].state  # in time: heard
    window = windows.unicast_window_us("read_state", 115200)
    # the host's next request (10 bytes, 0.9 ms) starts a window after this one's end of
    # frame; board 1's late reply (22 bytes, 1.9 ms) starts half a millisecond before it
    eof = em.wire.now_us + 10 * em.wire.char_us
    em.wire.stall(1, eof + window - 500 - timing.turnaround_us(115200) - em.wire.now_us)
    with pytest.raises(BusTimeout):
        bus.request(1, "read_state", retries=0)
    with pytest.raises(BusTimeout):  # its request garbled by board 1's late reply
        bus.request(2, "read_state", retries=0)
    assert bus.read_state(2)["state"] == boards[1].state  # the line is clear again
    assert boards[1].frames_bad >= 1


def test_a_host_that_does_not_keep_the_erase_quiet_time_loses_blocks(emulate):
    """Boards erase their inactive slot for fw_begin with interrupts off (45 ms a sector,
    typical): blocks sent at once are lost but for the UART's FIFO; after the quiet time
    (400 ms a sector) none is."""
    from instruments.bus.v2 import request_frame

    image = _image(16384)
    blocks = image_blocks(image)
    begin = dict(size=len(image), image_crc32=crc32(image), fw_major=2, fw_minor=1, fw_patch=0)

    def send_blocks(bus):
        for n, data in enumerate(blocks[:20]):
            bus.broadcast("fw_block", image_crc32=crc32(image), block=n, block_crc32=crc32(data), data=data)

    em, bus = emulate(onwire.make_boards(2, seed=16))
    bus.port.exchange(request_frame(ADDR_BROADCAST, 1, "fw_begin", **begin), 0, replies=False)  # no quiet
    send_blocks(bus)
    st = bus.request(1, "fw_status")
    assert st["missing"] > len(blocks) - 20 and listed_missing(st)[0] == 0  # the first blocks lost

    em2, bus2 = emulate(onwire.make_boards(2, seed=16))
    bus2.broadcast("fw_begin", **begin)  # keeps the quiet time
    send_blocks(bus2)
    assert bus2.request(1, "fw_status")["missing"] == len(blocks) - 20


def test_a_board_whose_erase_outlasts_the_quiet_time_is_sent_the_blocks_it_missed(emulate):
    """Board 3 erases slower than the datasheet's worst case (a stall of 900 ms from
    fw_begin, the quiet time being 400 ms): it misses the first blocks, more than fw_status
    lists at once, and is sent them, and only them, over several rounds."""
    boards = onwire.make_boards(5, seed=17)
    em, bus = emulate(boards)

    def progress(name, stage, done, total):
        if stage == "fw_begin":  # fw_begin goes out next: board 3 stalls from its first byte
            em.wire.stall(3, 900_000)

    image = _image(4096)
    rep = update_bus(bus, image, (2, 5, 0), progress=progress)
    resent = rep.boards[3].resent
    assert len(resent) > MISSING_LISTED and resent == list(range(len(resent)))
    assert rep.status_rounds >= 3  # eight listed per round, then the verify's
    assert all(not rep.boards[a].resent for a in (1, 2, 4, 5))
    assert {b.outcome for b in rep.boards.values()} == {"confirmed"}
    assert boards[2].firmware.running.data == image


@given(st.dictionaries(st.integers(1, 247), st.lists(st.integers(0, 63), max_size=12), max_size=20))
def test_plan_resend_sends_each_listed_block_once_to_those_missing_it(missing):
    plan = plan_resend(missing)
    blocks = [b for _, b in plan]
    assert blocks == sorted(set(blocks))  # each block once, in order
    for dst, b in plan:
        who = [a for a, m in missing.items() if b in m]
        assert (dst == ADDR_BROADCAST) == (len(who) > 1)
        if dst != ADDR_BROADCAST:
            assert who == [dst]
    assert set(blocks) == {b for m in missing.values() for b in m}


@given(st.lists(st.sets(st.integers(0, 39)), min_size=1, max_size=12))
@example(missing_sets=[{0, 1, 35}, set(range(16)) | {35}, {0, 35}])
def test_resending_what_fw_status_lists_ends_with_nothing_missing(missing_sets):
    """Boards missing any blocks of 40: each round lists the first eight each misses, the
    plan is sent (losslessly), and every board is whole after at most ceil(most missing / 8)
    rounds (fewer when a broadcast for others brings it a block it had not listed yet),
    having received exactly the blocks it missed."""
    missing = {a: set(m) for a, m in enumerate(missing_sets, start=1)}
    received = {a: [] for a in missing}
    rounds = 0
    while True:
        listed = {}
        for a, m in missing.items():
            order = sorted(m)
            status = {"missing": len(order), "first_missing":
                      (order[:MISSING_LISTED] + [NO_BLOCK] * MISSING_LISTED)[:MISSING_LISTED]}
            if status["missing"]:
                listed[a] = listed_missing(status)
        if not listed:
            break
        rounds += 1
        for dst, b in plan_resend(listed):
            for a in missing:
                if dst == a or (dst == ADDR_BROADCAST and b in missing[a]):
                    received[a].append(b)
                    missing[a].discard(b)
    most = max(len(m) for m in missing_sets)
    assert rounds <= -(-most // MISSING_LISTED)
    assert (rounds == 0) == (most == 0)
    for a, m in enumerate(missing_sets, start=1):
        assert sorted(received[a]) == sorted(m)


@pytest.mark.parametrize("text, ok", [("2.1.0", (2, 1, 0)), ("0.0.255", (0, 0, 255)), ("2.1", None),
                                      ("2.1.256", None), ("a.b.c", None), ("2.1.0.1", None)])
def test_a_firmware_version_is_three_parts_of_0_to_255(text, ok):
    if ok is None:
        with pytest.raises(ValueError):
            parse_version(text)
    else:
        assert parse_version(text) == ok


# ------------------------------------------------------------------------ more than one bus
def test_two_buses_are_one_rig_with_boards_keyed_by_bus_and_address(emulate):
    a = onwire.make_boards(10, seed=20)
    b = onwire.make_boards(7, seed=21)
    em_a, _ = emulate(a)
    em_b, _ = emulate(b)
    with Rig([em_a.port, em_b.port]) as rig:
        scans = rig.scan()
        boards = rig.boards(scans)
        assert len(boards) == 17
        assert boards[(em_a.port, 3)].uid == a[2].uid.hex() and boards[(em_b.port, 3)].uid == b[2].uid.hex()
        image = _image(2048, seed=4)
        result = rig.update(image, (2, 3, 1), scans=scans)
    assert not result.errors and result.count("confirmed") == 17
    assert set(result.boards) == set(boards)
    assert all(x.fw_version == (2, 3, 1) for x in a + b)
    assert "17 board(s) on 2 bus(es) updated to 2.3.1: 17 confirmed" in result.summary()


def test_a_rig_updates_bus_time_counts_from_the_scan_it_used(emulate):
    em, _ = emulate(onwire.make_boards(3, seed=22))
    image = _image(512, seed=5)
    with Rig([em.port]) as rig:
        bus = rig.buses[0]
        t0 = bus.bus_time_us()
        scans = rig.scan()
        scanned = bus.bus_time_us() - t0
        with_scan = rig.update(image, (2, 3, 2), scans=scans).buses[0].bus_time_us
        t1 = bus.bus_time_us()
        own = {em.port: bus.scan()}  # a scan not of the rig's: the update counts from now
        t2 = bus.bus_time_us()
        alone = rig.update(image, (2, 3, 3), scans=own).buses[0].bus_time_us
        t3 = bus.bus_time_us()
    assert scanned > 0 and with_scan == t1 - t0 and alone == t3 - t2


def test_a_uid_on_two_buses_is_a_wiring_fault(emulate):
    a = onwire.make_boards(3, seed=30)
    b = [ReferenceBoard(a[1].uid, Kind.MOSFET, address=5)]
    em_a, _ = emulate(a)
    em_b, _ = emulate(b)
    with Rig([em_a.port, em_b.port]) as rig, pytest.raises(WiringFault) as exc:
        rig.scan(probe=False)
    assert f"board {a[1].uid.hex()} answers on {em_a.port} at address 2 and on {em_b.port} at address 5" \
        in str(exc.value)


# ------------------------------------------------------------------------ ports
def test_an_emulator_of_this_process_is_timed_in_emulated_time(emulate):
    em, bus = emulate(onwire.make_boards(2))
    assert isinstance(bus.port, EmulatedPort)
    t0 = bus.bus_time_us()
    bus.store_state()
    assert bus.bus_time_us() - t0 >= 403_000  # the quiet time, in emulated time


def test_a_real_port_waits_in_real_time_against_a_separate_emulator():
    """``hostctl firmware emulate --protocol 2`` in its own process: the host cannot see
    it, so it waits the protocol's windows (and its latency) in real time."""
    proc = subprocess.Popen([sys.executable, "-m", "hostctl", "firmware", "emulate", "--protocol", "2",
                             "--boards", "3", "--seed", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        port = proc.stdout.readline().strip()
        # a latency well above the emulator process's lag on a loaded machine: it is waited
        # only where not every reply comes (the scan's slotted broadcasts)
        with Bus(serial.Serial(port, 115200), latency_s=0.5) as bus:
            assert isinstance(bus.port, SerialPort)
            scan = bus.scan()
            assert [b.address for b in scan] == [1, 2, 3] and scan.agreed
            assert bus.set_state(2, 2_000_000)["state"] == 2_000_000
            assert bus.read_state(2)["state"] == 2_000_000
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_missing_port_is_one_clear_error(tmp_path):
    with pytest.raises(BusError, match="cannot open the bus port"):
        Bus(str(tmp_path / "no-such-port"))


def test_an_unassigned_board_is_reached_at_248_and_a_broadcast_refused_command_is_refused(emulate):
    boards = onwire.make_boards(1, unassigned=True, seed=40)
    em, bus = emulate(boards)
    assert bus.identify(ADDR_UNASSIGNED).uid == boards[0].uid.hex()
    with pytest.raises(BusError, match="sample_drops may not be broadcast"):
        bus.broadcast("sample_drops")
    assert crc32(b"123456789") == 0xCBF43926


def test_a_rig_reads_every_boards_learn_count_keyed_by_bus_and_address(emulate):
    a, b = onwire.make_boards(3, seed=50), onwire.make_boards(2, seed=51)
    em_a, _ = emulate(a)
    em_b, _ = emulate(b)
    with Rig([em_a.port, em_b.port]) as rig:
        rig.learn()
        b[1].trigger(100)  # a pulse on the learn-trigger line of one board
        counts = {k: t["learns"] for k, t in rig.telemetry().items()}
    assert counts == {(em_a.port, 1): 1, (em_a.port, 2): 1, (em_a.port, 3): 1, (em_b.port, 1): 1,
                      (em_b.port, 2): 2}


def test_the_crc_is_right_when_several_buses_compute_it_at_once():
    """Several buses' clients and their emulators run in threads; the CRC-16 each computes
    is its own data's (the ``crc`` package's calculator keeps a register between init and
    digest: shared by threads, it mixes their data)."""
    import threading

    from instruments.bus.v2.framing import crc16

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, inside the CRC's loop
    try:
        datas = [random.Random(k).randbytes(1024) for k in range(4)]
        want = [crc16(d) for d in datas]
        wrong = []

        def work(k):
            for _ in range(60):
                if crc16(datas[k]) != want[k]:
                    wrong.append(k)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert wrong == [] and want[0] == crc16(datas[0])


def test_a_board_that_keeps_losing_blocks_is_reported_and_the_others_update(emulate):
    boards = onwire.make_boards(3, seed=60)
    stubborn = onwire.LossyBoard.like(boards[1], lose=set())
    boards[1] = stubborn

    class Forever(set):  # loses block 2 every time it is sent
        def discard(self, item):
            pass

    stubborn.lose = Forever({2})
    em, bus = emulate(boards)
    rep = update_bus(bus, _image(1024), (2, 9, 0))
    assert rep.boards[2].outcome == "failed"
    assert rep.boards[2].reason == f"fw_block 2: {bus.name}: board 2: fw_block: no reply after 3 attempt(s)"
    assert [a for a, b in rep.boards.items() if b.outcome == "confirmed"] == [1, 3]
    assert stubborn.fw_version == (2, 0, 0)


def test_a_protocol_1_board_behind_a_protocol_2_board_at_its_address_is_not_overlooked(emulate):
    """A protocol-1 board at address 4 answers no protocol-2 frame, so the scan hears only
    the protocol-2 board there; both answer the probe, their replies collide, and the host
    says so instead of driving the bus."""
    old = v1_reference.ReferenceBoard(4, bytes(range(8)), Kind.MOSFET)
    em, bus = emulate(onwire.make_boards(5, seed=61), [old])
    assert [b.address for b in bus.scan()] == [1, 2, 3, 4, 5]
    bus.probe_v1()
    assert bus.probe_garbled == [4]
    with pytest.raises(BusError, match="probe of address 4 was answered garbled every time, and no two "
                                       "protocol-2 boards share it: a protocol-1 board may answer there"):
        bus.survey()


def test_a_port_that_goes_away_is_a_bus_error_naming_it():
    # an adapter unplugged mid-run: the pty's far end closed, so reads fail with EIO
    master, slave = os.openpty()
    with Bus(serial.Serial(os.ttyname(slave), 115200), latency_s=0.0) as bus:
        os.close(master)
        with pytest.raises(BusError, match="the port failed"):
            bus.read_state(1)
    os.close(slave)


def test_protocol_2s_errors_are_protocol_1s_too(emulate):
    """Code written for protocol 1's errors (``except instruments.bus.client.BusError``)
    catches protocol 2's, each class as its namesake."""
    from instruments.bus import client as v1
    from instruments.bus.v2 import client as v2c

    for name in ("BusError", "BusTimeout", "BoardError", "ProtocolMismatch"):
        assert issubclass(getattr(v2c, name), getattr(v1, name)), name
    em, bus = emulate(onwire.make_boards(1, seed=19))
    with pytest.raises(v1.BoardError) as e:
        bus.set_state(1, 10**9)  # out_of_range
    assert e.value.status == 8 and str(e.value) == f"{em.port}: board 1: set_state refused: out_of_range (8)"
    with pytest.raises(v1.BusTimeout):
        bus.request(9, "identify", retries=0)
