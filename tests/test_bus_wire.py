"""The RS-485 line in emulated time (instruments/bus/wire.py) and the emulator on it: protocol
1's slotted replies collide, protocol 2's do not, a driver still enabled garbles the next
sender, a board erasing flash keeps only its FIFO, a reset board is deaf while it boots."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from instruments.bus import protocol as p
from instruments.bus import timing
from instruments.bus.client import BusClient, BusTimeout
from instruments.bus.emulator import BusEmulator, make_boards
from instruments.bus.wire import (
    BOOT_US, FIFO_BYTES, Transmission, V1Timing, V2Timing, Wire, collide,
)


class _Recorder:
    """A board that keeps every chunk it is handed and answers ``reply`` to the first."""

    def __init__(self, address, reply=None):
        self.address, self.reply, self.chunks = address, reply, []

    def handle(self, chunk):
        self.chunks.append(chunk)
        return self.reply if len(self.chunks) == 1 else None


@pytest.fixture
def bus():
    opened = []

    def open_bus(boards, **kw):
        client_kw = kw.pop("client", {})
        em = BusEmulator(boards, **kw)
        em.start()
        client = BusClient(em.port, **client_kw)
        opened.append((em, client))
        return em, client

    yield open_bus
    for em, client in opened:
        client.close()
        em.close()


def _identify(seq=1):
    return p.encode_frame(p.request_frame(p.ADDR_BROADCAST, seq, "identify"))


# ------------------------------------------------------------------ collisions on the line


def test_bytes_overlapping_another_drivers_de_hold_are_garbled_and_its_own_are_not():
    c = timing.char_us(115200)
    a = Transmission(1, 0, b"\x11" * 5, c, timing.DE_HOLD_US)
    b = Transmission(2, a.end_us + timing.DE_HOLD_US // 2, b"\x22" * 5, c, timing.DE_HOLD_US)
    line = collide([a, b], rng=np.random.default_rng(0), char_us=c)
    assert line.data[:5] == b"\x11" * 5 and line.garbled[:5] == bytes(5)
    assert line.garbled[5] == 1 and line.data[6:] == b"\x22" * 4  # only b's first byte overlaps


def test_a_sender_after_the_de_hold_is_clean():
    c = timing.char_us(115200)
    a = Transmission(1, 0, b"\x11" * 5, c, timing.DE_HOLD_US)
    b = Transmission(2, a.release_us, b"\x22" * 5, c, timing.DE_HOLD_US)
    line = collide([a, b], rng=np.random.default_rng(0), char_us=c)
    assert line.data == b"\x11" * 5 + b"\x22" * 5 and not any(line.garbled)


def _identify_reply(address):
    return p.encode_frame(p.reply_frame(address, 1, "identify", uid=bytes([address] * 8), fw_major=1, fw_minor=2,
                                        fw_patch=0, kind=2, protocol=1, protocol_minor=1))


@given(seed=st.integers(0, 2**32 - 1), shift=st.integers(0, 2500))
def test_colliding_replies_never_reach_the_host_as_frames(seed, shift):
    """Board 2 answers ``shift`` us after board 1: whatever the garbage, a reply overlapping
    the other driver (its bytes or its DE hold) reaches the host as no frame at all."""
    wire = Wire([_Recorder(1, _identify_reply(1)), _Recorder(2, _identify_reply(2))], seed=seed)
    wire.nodes[0].policy, wire.nodes[1].policy = _Fixed(100), _Fixed(100 + shift)
    wire.nodes[0].skew_ppm = wire.nodes[1].skew_ppm = 0.0
    got = p.split_stream(wire.send(_identify()))
    sources = {f.src for f in got if isinstance(f, p.Frame)}
    bytes_us = timing.wire_bytes(15) * wire.char_us
    if shift >= bytes_us + timing.DE_HOLD_US:
        assert sources == {1, 2}
    elif shift >= bytes_us:
        assert sources == {1}  # board 2 started inside board 1's DE hold
    else:
        assert sources == set()  # garbled chunks, or garbage still awaiting a delimiter


class _Fixed:
    """Reply ``offset`` us after the request's end of frame, whatever is asked."""

    def __init__(self, offset):
        self.offset = offset

    def notice_us(self, rng):
        return 0

    def offset_us(self, address, baud, slotted):
        return self.offset


@given(seed=st.integers(0, 2**32 - 1), address=st.integers(1, 247))
def test_reply_starts_fall_in_their_protocols_windows(seed, address):
    for policy, window in ((V1Timing(), timing.v1_reply_window_us(address)),
                           (V2Timing(), timing.v2_reply_window_us(address, 115200, 15))):
        wire = Wire([_Recorder(address, b"\x01\x00")], policy=policy, seed=seed)
        start = wire.now_us
        wire.send(_identify())
        eof = start + len(_identify()) * wire.char_us
        begin = wire.nodes[0].rx.deaf[-1][0] - eof
        # protocol 1's window leaves out the crystal's drift over the slot, which is there too
        drift = -(-window.earliest_us * timing.CLOCK_TOLERANCE_PPM // 1_000_000) if isinstance(policy, V1Timing) else 0
        assert window.earliest_us - drift <= begin <= window.latest_us + drift


def test_the_wire_is_deterministic_given_its_seed():
    def run(seed):
        wire = Wire(make_boards(30), policy=V1Timing(), seed=seed)
        return wire.send(b"\x00") + wire.send(_identify())

    assert run(5) == run(5) != run(6)


# ------------------------------------------------------------------ 247 boards, both protocols


@pytest.mark.parametrize("baud", [57_600, 115_200])
def test_protocol_1_identify_replies_collide_on_a_full_bus(bus, baud):
    em, client = bus(make_boards(247), baud=baud, timing=V1Timing())
    heard = client.broadcast("identify")
    assert client.last_broadcast_garbled > 0 and len(heard) < 200
    result = client.scan(max_passes=3)
    assert result.garbled > 0 and len(result) < 247 and not result.agreed
    uids = {b.address: b.uid.hex() for b in em.boards}
    assert all(info.uid == uids[info.address] for info in result)  # nothing heard is forged
    assert "garbled" in result.summary()


@pytest.mark.parametrize("baud", [57_600, 115_200])
def test_protocol_2_timing_gives_every_board_cleanly(bus, baud):
    em, client = bus(make_boards(247), baud=baud, timing=V2Timing())
    result = client.scan()
    assert [b.address for b in result] == list(range(1, 248))
    assert (result.passes, result.garbled, result.agreed, result.missed) == (2, 0, True, [])


def test_a_scan_names_the_boards_some_pass_missed(bus):
    em, client = bus(make_boards(40), timing=V1Timing(), seed=1, client={"slot_s": 0.0005})
    result = client.scan(max_passes=4)
    assert result.missed and set(result.missed) <= {b.address for b in result}
    assert f"{len(result.missed)} missing from some passes" in result.summary()


# ------------------------------------------------------------------ DE hold, flash, reset


def test_a_host_sending_inside_the_boards_de_hold_garbles_its_own_request(bus):
    board = p.ReferenceBoard(1, bytes(8), p.Kind.MOSFET)
    _, client = bus([board], host_gap_us=0, client={"retries": 0})
    assert client.request(1, "read_state")["state"] == 1_000_000
    with pytest.raises(BusTimeout):
        client.request(1, "read_state")  # starts at the reply's last stop bit, DE still up
    assert board.frames_bad == 1
    assert client.request(1, "read_state")["status"] == 0  # after the host's timeout: quiet


def test_a_host_waiting_out_the_de_hold_is_heard(bus):
    board = p.ReferenceBoard(1, bytes(8), p.Kind.MOSFET)
    _, client = bus([board], host_gap_us=timing.DE_HOLD_US, client={"retries": 0})
    for _ in range(5):
        assert client.request(1, "read_state")["status"] == 0
    assert board.frames_bad == 0


def test_a_board_erasing_flash_keeps_only_its_fifo():
    board = _Recorder(1)
    wire = Wire([board])
    start, end = wire.stall(1, 10_000)
    data = bytes(range(1, 41)) + b"\x00"  # 41 bytes, all within the stall
    wire.send(data)
    wire.idle_us(end - wire.now_us)
    wire.send(b"\x55\x00")
    assert board.chunks == [data[:FIFO_BYTES] + b"\x55\x00"]


def test_a_stalled_board_answers_only_after_the_stall(bus):
    em, client = bus(make_boards(2), client={"retries": 0})
    assert client.request(2, "read_state")["status"] == 0
    em.wire.stall(2, 45_000)
    client.request(1, "set_state", state=2_000_000)  # request and reply: past board 2's FIFO
    with pytest.raises(BusTimeout):
        client.request(2, "read_state")
    assert client.request(2, "read_telemetry")["frames_bad"] >= 1  # after the host's timeout


def test_a_reset_board_is_deaf_for_its_boot_time():
    board = p.ReferenceBoard(3, bytes(8), p.Kind.MOSFET)
    wire = Wire([board], boot_us=5_000)

    def ask(seq, cmd):
        return p.split_stream(wire.send(p.encode_frame(p.request_frame(3, seq, cmd))))

    assert ask(1, "reset")[0].payload == b"\x00"
    boot_end = wire.booting_until_us(3)
    assert wire.now_us < boot_end and ask(2, "read_state") == []  # lost: the board is booting
    wire2 = Wire([p.ReferenceBoard(3, bytes(8), p.Kind.MOSFET)], boot_us=5_000, host_timeout_us=0)
    wire2.send(p.encode_frame(p.request_frame(3, 1, "reset")))
    wire2.idle_us(wire2.booting_until_us(3) - wire2.now_us - 1)
    assert p.split_stream(wire2.send(p.encode_frame(p.request_frame(3, 2, "read_state")))) == []
    wire2.idle_us(wire2.booting_until_us(3) - wire2.now_us)
    assert p.split_stream(wire2.send(p.encode_frame(p.request_frame(3, 3, "read_state"))))[0].src == 3


def test_a_reset_board_answers_again_once_booted(bus):
    _, client = bus(make_boards(3), boot_us=BOOT_US, client={"retries": 0})
    client.request(3, "reset")
    with pytest.raises(BusTimeout):
        client.request(3, "read_state")
    # the host's timeout (50 ms of emulated time) outlasts the 20 ms boot
    assert client.request(3, "read_state")["state"] == 1_000_000


def test_each_board_keeps_its_own_timing_policy():
    """Protocol 1's board 2 answers a unicast as soon as its loop notices it (no guard);
    protocol 2's board 1 waits the turnaround."""
    wire = Wire(make_boards(2), policy={2: V1Timing()}, seed=3)
    starts = {}
    for address in (1, 2):
        begin = wire.now_us
        request = p.encode_frame(p.request_frame(address, 1, "read_state"))
        wire.send(request)
        starts[address] = wire.nodes[address - 1].rx.deaf[-1][0] - (begin + len(request) * wire.char_us)
    assert starts[1] >= timing.turnaround_us(115200)
    assert 0 <= starts[2] <= timing.V1_LOOP_LATENCY_US


@pytest.mark.parametrize("version", [1, 2])
def test_a_garbled_chunk_that_passes_the_crc_by_chance_is_not_taken_for_a_frame(version):
    """A chunk with garbled or lost bytes is 'forged' if it still decodes (once in 65,536
    by CRC-16); the wire changes its last byte so that no receiver takes it, in either
    protocol's frames."""
    from instruments.bus.v2 import framing as v2_framing
    from instruments.bus.wire import Heard, Receiver, Wire as W

    if version == 2:
        chunk = v2_framing.encode_frame(v2_framing.Frame(2, 0, 5, 9, 0x82, bytes(12)))
    else:
        chunk = p.encode_frame(p.Frame(1, 0, 5, 9, 0x81, bytes(15)))
    rx = Receiver()
    rx.stream, rx.base = bytearray(chunk), 0
    heard = W._unforge(rx, Heard(chunk, 0, True, len(chunk) - 1))
    assert heard.chunk != chunk and heard.suspect
    with pytest.raises(v2_framing.FrameError):
        v2_framing.decode_any(heard.chunk)
    clean = W._unforge(rx, Heard(bytes(rx.stream), 0, False, len(chunk) - 1))  # not suspect: kept
    assert clean.chunk == bytes(rx.stream)
