"""Protocol 1's identify probe on a real port (:class:`~instruments.bus.v2.link.SerialPort`)
in one train: every address waited its window in bus time, the adapter's latency once, so
247 addresses take about a second, not 247 latencies (PROTOCOL.md, "Protocol 1 boards").

The port is driven against a fake serial device on a fake clock (``time`` in the link
module replaced): boards answer on the wire at the times protocol 2 gives them, and the
adapter hands every reply to the host a latency later (an FTDI adapter's 16 ms latency
timer), so a reply arrives while the host is already probing later addresses. Replies that
overlap on the wire are garbled. No real time passes."""

from __future__ import annotations

import random

import pytest

from instruments.bus import timing
from instruments.bus.v2 import Kind, ReferenceBoard, onwire
from instruments.bus.v2 import link as link_module
from instruments.bus.v2.client import Bus
from instruments.bus.v2.link import SerialPort
from instruments.bus.v2.slots import v1_probe_timeout_us

BAUD = 115200


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += max(0.0, s)


class FakeSerial:
    """A serial device: what the host writes reaches every board when its last byte has
    left at the line rate; replies are on the wire from their start after the end of frame,
    reach the host ``adapter_latency_s`` after their last byte, garbled if two overlap."""

    def __init__(self, clock: FakeClock, boards, adapter_latency_s: float = 0.016) -> None:
        self.clock, self.boards, self.latency = clock, list(boards), adapter_latency_s
        self.timeout = 0.002
        self.char_s = timing.char_us(BAUD) * 1e-6
        self.queue: list[tuple[float, bytes]] = []  # (when the host may read them, bytes)
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        eof = self.clock.t + len(data) * self.char_s
        on_wire = []
        for b in self.boards:
            for r in b.feed(data):
                start = eof + r.start_us * 1e-6
                on_wire.append((start, start + len(r.wire) * self.char_s, r.wire))
        for i, (a, z, wire) in enumerate(on_wire):
            clash = any(a < z2 and a2 < z for j, (a2, z2, _) in enumerate(on_wire) if j != i)
            if clash:
                wire = bytes(random.Random(i).randrange(1, 256) for _ in wire[:-1]) + b"\x00"
            self.queue.append((z + self.latency, wire))
        return len(data)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self.queue = [(t, d) for t, d in self.queue if t > self.clock.t]

    @property
    def in_waiting(self) -> int:
        return sum(len(d) for t, d in self.queue if t <= self.clock.t)

    def read(self, n: int = 1) -> bytes:
        ready = [(t, d) for t, d in self.queue if t <= self.clock.t]
        if not ready:
            self.clock.t += self.timeout  # a read blocks for its timeout
            return b""
        self.queue = [(t, d) for t, d in self.queue if t > self.clock.t]
        return b"".join(d for _, d in sorted(ready, key=lambda td: td[0]))

    def close(self) -> None:
        pass


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(link_module, "time", c)
    return c


def _bus(clock, boards, latency_s=0.05):
    ser = FakeSerial(clock, boards)
    return Bus(SerialPort(ser, BAUD, "fake", latency_s=latency_s)), ser


def test_247_addresses_are_probed_in_one_train_and_late_replies_count_for_their_address(clock):
    boards = onwire.make_boards(247, seed=4)
    present = [boards[0], boards[99], boards[246]]  # addresses 1, 100, 247
    bus, ser = _bus(clock, present)
    t0 = clock.t
    replies = bus.probe_v1()
    took = clock.t - t0
    assert sorted(replies) == [1, 100, 247]
    assert {a: bytes(r["uid"]) for a, r in replies.items()} == {b.address: b.uid for b in present}
    assert ser.writes == 247 and bus.probe_garbled == []
    # each address: its frame on the wire (10 characters), its window and at most one read
    # timeout beyond it; the latency once. Before, each address also waited the latency:
    # 247 x 53 ms, 13 s.
    per_address = (10 * timing.char_us(BAUD) + v1_probe_timeout_us(BAUD)) * 1e-6 + link_module._POLL_S
    assert took <= 247 * per_address + 0.05 + link_module._POLL_S


def test_a_garbled_reply_in_the_train_falls_back_to_asking_each_silent_address(clock):
    a, b = onwire.make_boards(2, seed=8)
    twin = ReferenceBoard(bytes(range(8)), Kind.MOSFET, address=a.address)  # two boards at address 1
    third = onwire.make_boards(3, seed=9)[2]  # address 3
    bus, ser = _bus(clock, [a, twin, b, third])
    replies = bus.probe_v1(range(1, 11))
    assert sorted(replies) == [2, 3]
    assert bus.probe_garbled == [1]
    # the train (10) and then one by one the 8 silent or garbled addresses, 1 three times
    assert ser.writes == 10 + 8 + 2
