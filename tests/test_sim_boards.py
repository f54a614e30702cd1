"""Emulated edge boards (instruments/sim/boards.py) and their loopback bus (loopback.py).

The vectorised rule is checked against the golden vectors and, on random inputs, against
the protocol's reference ``learn_step``; the loopback port against every command vector,
byte for byte; and the real ``BusClient`` over the loopback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from instruments.bus import protocol as P
from instruments.bus.client import BusClient, BusTimeout
from instruments.sim.boards import SimBoards, gain_delta, uid_for
from instruments.sim.loopback import LoopbackPort

VECTORS = Path(__file__).resolve().parents[1] / "firmware" / "protocol" / "vectors"
RULES = json.loads((VECTORS / "rules.json").read_text())
COMMANDS = json.loads((VECTORS / "commands.json").read_text())
I32 = st.integers(P.I32_MIN, P.I32_MAX)


def _vector_boards(b: dict) -> SimBoards:
    return SimBoards([b["address"]], b["kind"], uids=[bytes.fromhex(b["uid_hex"])], state_min=b["state_min"],
                     state_max=b["state_max"], initial_state=b["initial_state"], fw_version=tuple(b["fw_version"]),
                     uptime_ms=b["uptime_ms"], nodes_uv=[b["node_uv"]])


def _request(port: LoopbackPort, dst: int, seq: int, cmd: str, **fields) -> list[P.Frame]:
    port.write(P.encode_frame(P.request_frame(dst, seq, cmd, **fields)))
    return P.split_stream(port.read(port.in_waiting))


# ------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize("c", RULES["cases"] + RULES["cases_minor_0"],
                         ids=lambda c: f"{c['name']}-minor{c['protocol_minor']}")
def test_learn_agrees_with_every_rule_vector(c):
    """Both minor versions: 1.2.0 boards round (cases), 1.1.0 boards floor (cases_minor_0)."""
    fw = P.FIRMWARE_VERSION if c["protocol_minor"] == 1 else (1, 1, 0)
    boards = SimBoards([1], c["kind"], uids=[bytes.fromhex(c["uid_hex"])], state_min=c["state_min"],
                       state_max=c["state_max"], initial_state=c["state_before"], fw_version=fw)
    assert boards.protocol_minor == c["protocol_minor"]
    nodes = np.array([c["node_uv"]])
    for _ in range(c["draws_before"]):
        boards.learn(nodes)  # rule none: a draw, never an update
    boards.configure(c["rule"], c["probability"], c["gain"], c["dead_band_uv2"])
    boards.calibration_uv[0] = c["calibration_uv"]
    assert boards.drops_uv(nodes, [0]).tolist() == [[c["dv_free_uv"], c["dv_clamped_uv"]]]
    state, updated = boards.learn(nodes)
    assert (int(state[0]), int(updated[0])) == (c["state_after"], c["updated"])
    assert int(boards.prng[0]) == c["draw"]


@pytest.mark.parametrize("v", RULES["prng"], ids=lambda v: v["uid_hex"])
def test_generators_are_seeded_from_the_uid(v):
    boards = SimBoards([5], "digipot", uids=[bytes.fromhex(v["uid_hex"])])
    assert int(boards.seed[0]) == v["seed"]
    draws = []
    for _ in range(len(v["draws"])):
        boards.learn(np.zeros((1, 4), np.int64))
        draws.append(int(boards.prng[0]))
    assert draws == v["draws"]


@st.composite
def _boards_and_inputs(draw):
    n = draw(st.integers(1, 6))
    kinds = draw(st.lists(st.sampled_from(["digipot", "mosfet"]), min_size=n, max_size=n))
    lo = draw(st.lists(st.integers(-10**6, 10**6), min_size=n, max_size=n))
    width = draw(st.lists(st.integers(0, 10**7), min_size=n, max_size=n))
    hi = [a + w for a, w in zip(lo, width)]
    start = [draw(st.integers(a, b)) for a, b in zip(lo, hi)]
    rules = [draw(st.sampled_from(sorted(r for r, ks in P.RULE_KINDS.items() if P.KINDS[k] in ks))) for k in kinds]
    probability = draw(st.lists(st.sampled_from([0, 1, 32768, 65535, 65536]) | st.integers(0, 65536),
                                min_size=n, max_size=n))
    gain = draw(st.lists(st.integers(0, P.GAIN_LIMIT - 1), min_size=n, max_size=n))
    dead_band = draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n))
    uids = draw(st.lists(st.binary(min_size=8, max_size=8), min_size=n, max_size=n))
    rounds = draw(st.integers(1, 4))
    nodes = draw(st.lists(st.lists(I32, min_size=4, max_size=4), min_size=n * rounds, max_size=n * rounds))
    cal = draw(st.lists(st.lists(I32, min_size=4, max_size=4), min_size=n, max_size=n))
    return kinds, lo, hi, start, rules, probability, gain, dead_band, uids, rounds, nodes, cal


@settings(deadline=None, max_examples=300)
@given(_boards_and_inputs())
def test_learn_agrees_with_learn_step_on_random_boards(case):
    kinds, lo, hi, start, rules, probability, gain, dead_band, uids, rounds, nodes, cal = case
    n = len(kinds)
    boards = SimBoards(range(1, n + 1), kinds, uids=uids, state_min=lo, state_max=hi, initial_state=start)
    for i in range(n):
        boards.configure(int(rules[i]), probability[i], gain[i], dead_band[i], addresses=[i + 1])
    boards.calibration_uv[:] = cal
    gens = [P.Xorshift32(P.seed_from_uid(u)) for u in uids]
    expect = list(start)
    for r in range(rounds):
        node_uv = np.array(nodes[r * n:(r + 1) * n], np.int64)
        state, updated = boards.learn(node_uv)
        for i in range(n):
            res = P.learn_step(rule=int(rules[i]), probability=probability[i], gain=gain[i],
                               dead_band_uv2=dead_band[i], state=expect[i], state_min=lo[i], state_max=hi[i],
                               draw=gens[i].next(), node_uv=nodes[r * n + i], calibration_uv=cal[i])
            expect[i] = res["state"]
            assert (int(state[i]), int(updated[i])) == (res["state"], res["updated"])


@settings(deadline=None)
@given(st.integers(-(2**38), 2**38), st.integers(0, P.GAIN_LIMIT - 1))
def test_the_compiled_gain_split_equals_the_exact_quotient(c, gain):
    """The int64 split of the vectorised rule against Python's big integers: rounded to
    nearest, halves away from zero (minor 1), and the floor (minor 0)."""
    q = (abs(c) * gain + 2**47) >> 48
    assert gain_delta(c, gain) == gain_delta(c, gain, 1) == (q if c >= 0 else -q)
    assert gain_delta(c, gain, 0) == (c * gain) >> 48


def test_the_mean_gate_change_is_zero_with_nothing_to_learn():
    """The vectorised bench's learn line on 32 Gen-2 boards (gate charging at 100 us, ideal
    DAQ: the clamped twin equals the free one, so nothing to learn; the boards' ADCs read
    with 100 uV of noise): over 100,000 updates the mean gate change per update is within
    0.01 uV of zero. Boards that emulate firmware 1.1.0 (protocol minor 0, the floor) drift
    by about -1/2 uV per update on the same inputs."""
    gain = P.gate_gain(100e-6, 1e3, 2.2e-6, 0.1)
    n, pulses = 32, 3125
    rng = np.random.default_rng(8)
    v = np.concatenate([rng.uniform(0.2, 0.5, n), np.zeros(n)])  # node i across edge i: 0.2..0.5 V
    terminals = np.stack([np.arange(n), np.arange(n) + n], axis=1)
    mean = {}
    for fw in (P.FIRMWARE_VERSION, (1, 1, 0)):
        boards = SimBoards(range(1, n + 1), "mosfet", seed=3, terminals=terminals, initial_state=3_000_000,
                           adc_noise_uv=100.0, fw_version=fw)
        boards.configure("gate_charging", gain=gain)
        moved = 0
        for _ in range(pulses):
            before = boards.state.copy()
            boards.pulse(v, v)
            moved += np.count_nonzero(boards.state != before)
        assert int(boards.updates.sum()) == n * pulses == 100_000
        mean[boards.protocol_minor] = (boards.state - 3_000_000).sum() / 100_000
        assert moved > 20_000  # the noise does move the gates
    assert abs(mean[1]) < 0.01
    assert mean[0] < -0.4


def test_boards_of_firmware_1_1_0_identify_without_the_minor_version():
    boards = SimBoards([1, 2], "mosfet", fw_version=(1, 1, 0))
    port = LoopbackPort(boards)
    reply = _request(port, 1, 1, "identify")[0]
    assert len(reply.payload) == P.COMMANDS["identify"].reply_size - 1
    assert P.unpack_reply("identify", reply.payload)["protocol_minor"] == 0
    new = _request(LoopbackPort(SimBoards([1], "mosfet")), 1, 1, "identify")[0]
    assert P.unpack_reply("identify", new.payload)["protocol_minor"] == 1
    client = BusClient(port, timeout_s=0.01)
    assert [(b.firmware, b.protocol, b.protocol_minor) for b in client.scan()] == [("1.1.0", 1, 0)] * 2


def test_the_largest_gain_at_the_contrast_clips_moves_a_wide_board_by_2_to_the_30():
    boards = SimBoards([1, 2], "mosfet", state_min=P.I32_MIN, state_max=P.I32_MAX, initial_state=0)
    boards.configure("continuous", gain=P.GAIN_LIMIT - 1)
    nodes = np.array([[2_000_000, 0, 0, 0], [0, 0, 2_000_000, 0]])  # contrasts +2^38, -2^38
    assert boards.learn(nodes)[0].tolist() == [2**30, -(2**30)]  # 2^30 - 2^-10 rounds to 2^30
    assert boards.learn(nodes)[0].tolist() == [P.I32_MAX, P.I32_MIN]  # 2^31 clipped
    assert boards.learn(nodes)[0].tolist() == [P.I32_MAX, P.I32_MIN]  # the 64-bit sum, clipped


def test_learn_on_some_boards_leaves_the_others_and_their_generators():
    boards = SimBoards([1, 2, 3], "digipot", initial_state=50)
    boards.configure("tap")
    before = boards.prng.copy()
    nodes = np.tile([1000, 0, 0, 0], (3, 1))
    state, updated = boards.learn(nodes, index=[1])
    assert state.tolist() == [50, 51, 50] and updated.tolist() == [0, 1, 0]
    assert boards.prng[0] == before[0] and boards.prng[2] == before[2] and boards.prng[1] != before[1]


def test_update_bias_accumulates_fractions_exactly():
    boards = SimBoards([1], "mosfet", initial_state=2_000_000, update_bias=0.25)
    boards.configure("continuous", gain=0)
    states = [int(boards.learn(np.zeros((1, 4), np.int64))[0][0]) for _ in range(8)]
    assert states == [2_000_000, 2_000_000, 2_000_000, 2_000_001, 2_000_001, 2_000_001, 2_000_001, 2_000_002]


def test_configure_refuses_what_the_firmware_refuses():
    boards = SimBoards([1, 2], ["digipot", "mosfet"])
    with pytest.raises(ValueError, match="board 2: rule tap does not apply to a mosfet board"):
        boards.configure("tap")
    with pytest.raises(ValueError, match="gain must be"):
        boards.configure("continuous", gain=P.GAIN_LIMIT)
    with pytest.raises(ValueError, match="probability must be"):
        boards.configure("continuous", probability=P.PROBABILITY_ONE + 1)
    with pytest.raises(ValueError, match="board 1: state 100 is outside 0..99"):
        boards.set_states(100, addresses=[1])


def test_uids_are_fixed_by_seed_and_address():
    a = SimBoards([3, 1, 2], seed=7)
    b = SimBoards([1, 2, 3, 4], seed=7)
    assert a.address.tolist() == [1, 2, 3]
    assert np.array_equal(a.uid, b.uid[:3])
    assert a.uid[0].tobytes() == uid_for(7, 1)
    assert len({u.tobytes() for u in b.uid}) == 4
    assert not np.array_equal(SimBoards([1], seed=8).uid, a.uid[:1])


# ------------------------------------------------------------------------------ ADC and devices


def test_an_ideal_adc_reads_whole_microvolts():
    boards = SimBoards([1, 2], terminals=[[0, 1], [1, 2]])
    v_free = np.array([0.3000004, 0.1, -0.0000006])
    v_clamped = np.array([0.25, 0.12, 0.0])
    assert boards.sample(v_free, v_clamped).tolist() == [[300000, 100000, 250000, 120000],
                                                         [100000, -1, 120000, 0]]


def test_adc_offsets_and_noise_are_per_board_and_terminal():
    boards = SimBoards([1, 2], terminals=[[0, 1], [0, 1]], adc_offset_uv=[[10, -20, 30, -40], [0, 0, 0, 0]],
                       adc_noise_uv=[0.0, 50.0], seed=1)
    v = np.array([0.2, 0.1])
    reads = np.array([boards.sample(v, v) for _ in range(400)])
    assert np.all(reads[:, 0] == [200010, 99980, 200030, 99960])
    assert 40 < reads[:, 1].std(axis=0).mean() < 60
    assert np.all(np.abs(reads[:, 1].mean(axis=0) - [200000, 100000, 200000, 100000]) < 10)


def test_a_pulse_samples_both_twins_and_learns():
    boards = SimBoards([1, 2], "mosfet", terminals=[[0, 1], [1, 2]], initial_state=2_000_000)
    boards.configure("gate_charging", gain=2**23)
    v_free = np.array([0.3, 0.2, 0.0])
    v_clamped = np.array([0.3, 0.25, 0.0])
    nodes = boards.sample(v_free, v_clamped)
    expected = [P.learn_step(rule=2, probability=65536, gain=2**23, dead_band_uv2=0, state=2_000_000,
                             state_min=1_000_000, state_max=5_500_000, draw=P.xorshift32(int(s)),
                             node_uv=nodes[i].tolist())["state"] for i, s in enumerate(boards.seed)]
    assert boards.pulse(v_free, v_clamped) == 2
    assert boards.state.tolist() == expected


def test_device_state_is_in_device_units_and_edge_order():
    boards = SimBoards([1, 2, 3], "mosfet", edges=[2, 0, 1], initial_state=[1_500_000, 2_000_000, 2_500_000])
    assert boards.device_state().tolist() == pytest.approx([2.0, 2.5, 1.5])


def test_a_stuck_device_keeps_its_state_while_its_board_moves_on():
    boards = SimBoards([1, 2], "digipot", initial_state=50)
    boards.stick(2)
    boards.set_states([60, 70])
    assert boards.state.tolist() == [60, 70]
    assert boards.device_state().tolist() == [60, 50]
    assert boards.stuck == {2: 50}
    boards.unstick(2)
    assert boards.device_state().tolist() == [60, 70]


def test_uptime_counts_from_each_restart_on_a_clock():
    now = [1000]
    boards = SimBoards([1, 2], clock_ms=lambda: now[0])
    assert boards.uptime_ms(0) == 1000
    boards.restart([1])
    now[0] = 1500
    assert (boards.uptime_ms(0), boards.uptime_ms(1)) == (1500, 500)


# ------------------------------------------------------------------------------ the loopback bus


@pytest.mark.parametrize("case", COMMANDS["cases"], ids=lambda c: c["name"])
def test_every_command_vector_gives_identical_bytes_through_the_loopback(case):
    port = LoopbackPort(_vector_boards(case["board"]))
    for i, ex in enumerate(case["exchanges"]):
        port.write(bytes.fromhex(ex["request_hex"]))
        assert port.read(port.in_waiting).hex() == (ex["reply_hex"] or ""), f"exchange {i}"
    # the whole sequence as one byte stream, written in odd pieces
    port = LoopbackPort(_vector_boards(case["board"]))
    stream = b"".join(bytes.fromhex(ex["request_hex"]) for ex in case["exchanges"])
    for i in range(0, len(stream), 5):
        port.write(stream[i:i + 5])
    assert port.read(10**6).hex() == "".join(ex["reply_hex"] or "" for ex in case["exchanges"])


@pytest.mark.parametrize("case", COMMANDS["streams"], ids=lambda c: c["name"])
def test_stream_vectors_after_line_noise_through_the_loopback(case):
    port = LoopbackPort(_vector_boards(case["board"]))
    stream = bytes.fromhex(case["stream_hex"])
    for i in range(0, len(stream), 333):
        port.write(stream[i:i + 333])
    assert port.read(10**6).hex() == "".join(case["replies_hex"])


def test_slotted_broadcast_replies_come_in_address_order():
    port = LoopbackPort(SimBoards([9, 2, 5], "digipot", initial_state=[90, 20, 50]))
    replies = _request(port, P.ADDR_BROADCAST, 4, "read_state")
    assert [(f.src, f.seq, P.unpack_reply("read_state", f.payload)["state"]) for f in replies] == \
        [(2, 4, 20), (5, 4, 50), (9, 4, 90)]


def test_a_broadcast_set_state_acts_per_board_and_answers_nobody():
    boards = SimBoards([1, 2], "digipot", state_max=[99, 40], initial_state=10)
    port = LoopbackPort(boards)
    assert _request(port, P.ADDR_BROADCAST, 1, "set_state", state=60) == []
    assert boards.state.tolist() == [60, 10]
    assert boards.last_error.tolist() == [0, P.Error.OUT_OF_RANGE]


def test_a_mute_board_acts_but_its_reply_is_lost():
    boards = SimBoards([1, 2], "digipot", initial_state=10)
    boards.mute.add(2)
    port = LoopbackPort(boards)
    assert _request(port, 2, 1, "set_state", state=33) == []
    assert boards.state.tolist() == [10, 33]
    assert [f.src for f in _request(port, P.ADDR_BROADCAST, 2, "identify")] == [1]


def test_a_failed_store_keeps_the_old_offsets():
    boards = SimBoards([1], "digipot")
    boards.calibration_uv[0] = [1, 2, 3, 4]
    boards.storage_fails.add(1)
    port = LoopbackPort(boards)
    [reply] = _request(port, 1, 1, "store_calibration", offset_free_a_uv=9, offset_free_b_uv=9,
                       offset_clamped_a_uv=9, offset_clamped_b_uv=9)
    assert reply.payload == bytes([P.Error.STORAGE])
    assert boards.calibration_uv[0].tolist() == [1, 2, 3, 4]


def test_a_corrupted_frame_is_counted_by_every_board():
    boards = SimBoards([1, 2])
    port = LoopbackPort(boards)
    raw = bytearray(P.frame_bytes(P.request_frame(1, 1, "read_state")))
    raw[3] ^= 0x40  # the sequence number, after the CRC was computed
    port.write(P.wire_from_bytes(bytes(raw)))
    assert port.in_waiting == 0
    assert boards.frames_bad.tolist() == [1, 1]
    assert boards.last_error.tolist() == [P.Error.BAD_CRC] * 2


def test_boards_without_power_hear_nothing_and_restart_when_it_returns():
    boards = SimBoards([1], "digipot", initial_state=10, nodes_uv=[[1000, 0, 0, 0]])
    boards.configure("tap")
    boards.set_states(30)
    port = LoopbackPort(boards)
    boards.powered = False
    assert _request(port, 1, 1, "read_state") == []
    assert boards.pulse(np.zeros(2), np.zeros(2)) == 0
    boards.powered = True
    [reply] = _request(port, 1, 2, "read_state")
    assert P.unpack_reply("read_state", reply.payload)["state"] == 10
    assert boards.rule.tolist() == [P.Rule.NONE]


def test_bus_client_scans_and_reads_states_over_the_loopback():
    boards = SimBoards([1, 2, 3], "mosfet", initial_state=[1_000_000, 2_000_000, 3_000_000], seed=4)
    client = BusClient(LoopbackPort(boards), timeout_s=0.002, slot_s=0.0)
    scan = client.scan()
    assert [b.address for b in scan] == [1, 2, 3]
    assert [b.uid for b in scan] == [u.tobytes().hex() for u in boards.uid]
    assert client.read_states([1, 2, 3]) == {1: 1_000_000, 2: 2_000_000, 3: 3_000_000}


class _CountingPort(LoopbackPort):
    reads = 0

    def read(self, size=1):
        self.reads += 1
        return super().read(size)


def test_a_slotted_broadcast_stops_listening_once_every_expected_board_answered():
    port = _CountingPort(SimBoards([1, 2, 3], "digipot"))
    client = BusClient(port, timeout_s=0.002, slot_s=0.01)  # 2.5 s of slots without the early stop
    assert client.read_states([1, 2, 3]) == {1: 0, 2: 0, 3: 0}
    assert port.reads == 1
    assert set(client.broadcast("identify", expect=[3, 1])) == {1, 2, 3}


def test_a_mute_board_times_out_while_the_others_answer():
    boards = SimBoards([1, 2, 3], "digipot")
    boards.mute.add(2)
    client = BusClient(LoopbackPort(boards), timeout_s=0.002, slot_s=0.0, retries=1)
    assert [b.address for b in client.scan()] == [1, 3]
    with pytest.raises(BusTimeout, match="board 2: read_state: no reply after 2 attempt"):
        client.read_states([1, 2, 3])
    assert client.request(3, "read_state")["state"] == 0
