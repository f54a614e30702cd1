"""The RP2040 image (firmware/rp2040) running in rp2040js, spoken to by the host's BusClient.

``make -C firmware/rp2040`` builds the image the lab flashes (build/twinrig-rp2040.uf2); the
harness ``firmware/rp2040/emu/harness.mjs`` loads that .uf2 and a board configuration .uf2
into rp2040js, starts the image past boot2 after checking boot2's CRC as the bootrom does,
and emulates the board around the chip: the PL011 and the RS-485 driver enable, the
ADS131M04 with node voltages given here, the learn line, the gate pin. BusClient talks to it
through :class:`EmuSerial`, and its clock is the emulator's: every time here is emulated.

Skipped locally when node, the npm package (``npm ci --prefix firmware/rp2040/emu``) or the
arm-none-eabi toolchain is missing; fails instead when ``CI=true``.
"""

from __future__ import annotations

import struct
import types

import numpy as np
import pytest
from rp2040_emu import BOOT_NS, EmuBoard, EmuSerial, build_image, config_image

from instruments.bus import client as bus_client
from instruments.bus.client import BusClient
from instruments.bus.protocol import ReferenceBoard

ADDRESS = 5
UID = bytes.fromhex("e6614103e72b4a21")
INITIAL_UV = 2_000_000
MOSFET = 2
GATE_CHARGING = 2
ALWAYS = 65536

# The budget (README.md): the snapshot is the first conversion wholly after the rising edge,
# three ADS131M04 data periods at OSR 128 (93.75 us) after the filter restart, which the
# interrupt makes within a few us of the edge.
T_DATA_NS = 128 * 2 / 8.192e6 * 1e9
LEARN_LATENCY_BUDGET_NS = 3 * T_DATA_NS + 10_000
SKEW_BUDGET_NS = 2 / 8.192e6 * 1e9  # one modulator period
UPDATE_LATENCY_BUDGET_NS = 50_000  # falling edge to the gate pulse at the new setpoint
GATE_PULSE_NS = 100_000
DE_HOLD_BUDGET_NS = 100_000  # instruments.bus.timing.DE_HOLD_US
TURNAROUND_MIN_NS = 250_000  # instruments.bus.timing.TURNAROUND_MIN_US


@pytest.fixture(scope="module")
def image():
    return build_image()


@pytest.fixture
def config_uf2(image, tmp_path):
    return config_image(tmp_path / "board5.uf2", ADDRESS, UID, "mosfet", INITIAL_UV)


@pytest.fixture
def board(image, config_uf2, monkeypatch):
    b = EmuBoard(image.with_suffix(".uf2"), config_uf2)
    b.call("run", ns=BOOT_NS)
    monkeypatch.setattr(bus_client, "time", types.SimpleNamespace(monotonic=lambda: b.now_ns / 1e9))
    yield b
    b.close()


@pytest.fixture
def bus(board):
    return BusClient(EmuSerial(board))


def _events(board: EmuBoard) -> dict:
    got = board.call("events")
    assert got["violations"] == []
    assert got["warnings"] == []  # rp2040js: a register it does not model
    return got


def _reference(node_uv) -> ReferenceBoard:
    """The host's reference board, configured as _pulse configures the emulated one."""
    ref = ReferenceBoard(ADDRESS, UID, MOSFET, initial_state=INITIAL_UV, node_uv=node_uv)
    ref.rule, ref.probability, ref.gain, ref.dead_band_uv2 = GATE_CHARGING, ALWAYS, GAIN, 0
    return ref


V0 = [0, 0, 0, 0]
V1 = [300_000, 100_000, 280_000, 110_000]  # a_F, b_F, a_C, b_C (uV)
V2 = [300_000, 100_000, 200_000, 110_000]
GAIN = 2_500_000_000
#: Every node ramping at 1 uV/ns (1 V/ms): a skew of s ns between two nodes moves their drop
#: by s uV, about 3.5 uV of gate state through the rule at GAIN.
RAMP = [1.0] * 4


def _pulse(board, bus, edges_after_rise_ns, inputs_after_rise_ns):
    """Rule on, V0 at the nodes, then a learn pulse: the edges and input changes are given
    relative to the rising edge, 200 us from now."""
    bus.request(ADDRESS, "configure_rule", rule=GATE_CHARGING, probability=ALWAYS, gain=GAIN,
                dead_band_uv2=0)
    board.call("nodes", uv=V0)
    rise = board.now_ns + 200_000
    for dt, uv, *slope in inputs_after_rise_ns:
        board.call("nodes", uv=uv, at_ns=rise + dt, slope_uv_per_ns=slope[0] if slope else [0] * 4)
    board.call("pin", edges=[[rise + dt, level] for dt, level in edges_after_rise_ns])
    board.call("run", ns=max(dt for dt, _ in edges_after_rise_ns) + 1_000_000)
    return rise


def test_the_uf2_holds_the_image_bytes_and_a_boot2_the_bootrom_accepts(image):
    binary = image.with_suffix(".bin").read_bytes()
    uf2 = image.with_suffix(".uf2").read_bytes()
    blocks = [uf2[i:i + 512] for i in range(0, len(uf2), 512)]
    payload = b"".join(b[32:32 + 256] for b in blocks)
    addresses = [struct.unpack_from("<I", b, 12)[0] for b in blocks]
    assert addresses == [0x10000000 + 256 * n for n in range(len(blocks))]
    assert payload[:len(binary)] == binary
    crc = 0xFFFFFFFF
    for byte in binary[:252]:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    assert struct.unpack_from("<I", binary, 252)[0] == crc
    assert len(binary) < 16 * 1024


def test_the_board_identifies_itself_over_the_bus(board, bus):
    info = bus.identify(ADDRESS)
    assert (info.address, info.uid, info.kind) == (ADDRESS, UID.hex(), "mosfet")
    assert (info.firmware, info.protocol, info.protocol_minor) == ("1.2.0", 1, 1)
    assert bus.request(ADDRESS, "read_state")["state"] == INITIAL_UV
    _events(board)


def test_the_driver_is_enabled_from_before_the_first_byte_to_after_the_last_stop_bit(board, bus):
    bus.identify(ADDRESS)
    board.call("run", ns=DE_HOLD_BUDGET_NS)
    events = _events(board)["events"]
    windows = [e for e in events if e["type"] == "de"]
    assert len(windows) == 1
    w = windows[0]
    request_end = max(e["atNs"] for e in events if e["type"] == "host_sent" and e["atNs"] < w["riseNs"])
    print(f"turnaround {(w['riseNs'] - request_end) / 1000:.1f} us, DE before the first start bit "
          f"{(w['firstStartNs'] - w['riseNs']) / 1000:.2f} us, after the last stop bit "
          f"{(w['fallNs'] - w['lastStopNs']) / 1000:.2f} us")
    assert w["bytes"] > 7
    assert w["riseNs"] <= w["firstStartNs"]
    assert 0 <= w["fallNs"] - w["lastStopNs"] <= DE_HOLD_BUDGET_NS
    assert w["riseNs"] - request_end >= TURNAROUND_MIN_NS


def test_a_learn_pulse_updates_from_the_snapshot_at_its_rising_edge(board, bus):
    rise = _pulse(board, bus, [(0, 1), (300_000, 0)], [(0, V1), (200_000, V2)])
    ref = _reference(V1)
    ref.learn()
    assert bus.request(ADDRESS, "read_state")["state"] == ref.state
    assert bus.request(ADDRESS, "read_telemetry")["updates"] == 1
    pulses = [e for e in _events(board)["events"] if e["type"] == "gate" and e["level"] == 1]
    # power-on drives the initial state, the update the new one (the PWM's 1 mV steps)
    assert [p["setpointUv"] for p in pulses] == [INITIAL_UV, round(ref.state, -3)]
    # the input at the falling edge, or before the rising one, would give another state
    assert {_reference(V2).learn()[0], _reference(V0).learn()[0]}.isdisjoint({ref.state})
    assert rise > 0


def test_learn_latency_and_sampling_skew_are_within_the_budget(board, bus):
    rise = _pulse(board, bus, [(0, 1), (300_000, 0)], [(0, V1)])
    events = _events(board)["events"]
    frames = [e for e in events if e["type"] == "adc_frame" and e["csLowNs"] > rise and e["conversion"]]
    snap = frames[0]["conversion"]
    window_start = snap["endNs"] - 3 * T_DATA_NS
    latency = snap["endNs"] - rise
    skew = max(snap["instantNs"]) - min(snap["instantNs"])
    print(f"learn latency {latency / 1000:.2f} us (data in RAM {(frames[0]['csHighNs'] - rise) / 1000:.2f} us), "
          f"skew {skew:.1f} ns")
    assert window_start >= rise
    assert latency <= LEARN_LATENCY_BUDGET_NS
    assert skew <= SKEW_BUDGET_NS
    fall = rise + 300_000
    gate = [e["atNs"] for e in events if e["type"] == "gate" and e["atNs"] > fall]
    print(f"update latency {(gate[0] - fall) / 1000:.2f} us, gate pulse {(gate[1] - gate[0]) / 1000:.2f} us")
    assert gate[0] - fall <= UPDATE_LATENCY_BUDGET_NS
    assert abs(gate[1] - gate[0] - GATE_PULSE_NS) <= 1_000


def test_ringing_on_the_learn_line_gives_one_update(board, bus):
    ringing = [(0, 1), (1_000, 0), (2_000, 1), (3_500, 0), (5_000, 1),
               (300_000, 0), (301_000, 1), (302_500, 0)]
    _pulse(board, bus, ringing, [(0, V1)])
    ref = _reference(V1)
    ref.learn()
    assert bus.request(ADDRESS, "read_telemetry")["updates"] == 1
    assert bus.request(ADDRESS, "read_state")["state"] == ref.state
    _events(board)


def test_a_pulse_shorter_than_the_lockout_still_updates_once(board, bus):
    _pulse(board, bus, [(0, 1), (8_000, 0)], [(0, V1)])
    ref = _reference(V1)
    ref.learn()
    assert bus.request(ADDRESS, "read_telemetry")["updates"] == 1
    assert bus.request(ADDRESS, "read_state")["state"] == ref.state


def test_sample_drops_and_the_learn_command_read_a_fresh_conversion(board, bus):
    board.call("nodes", uv=V1)
    board.call("run", ns=200_000)
    ref = _reference(V1)
    ref.rule = 0
    drops = bus.request(ADDRESS, "sample_drops")
    assert (drops["dv_free_uv"], drops["dv_clamped_uv"]) == ref.sample()
    bus.request(ADDRESS, "configure_rule", rule=GATE_CHARGING, probability=ALWAYS, gain=GAIN,
                dead_band_uv2=0)
    reply = bus.request(ADDRESS, "learn")
    ref.rule = GATE_CHARGING
    ref.learn()
    assert (reply["state"], reply["updated"]) == (ref.state, 1)
    _events(board)


def test_a_scan_hears_the_board_in_its_slot(board, bus):
    found = bus.scan()
    assert [(b.address, b.uid) for b in found] == [(ADDRESS, UID.hex())]
    assert found.agreed and found.garbled == 0
    events = _events(board)["events"]
    for w in (e for e in events if e["type"] == "de"):
        request_end = max(e["atNs"] for e in events if e["type"] == "host_sent" and e["atNs"] < w["riseNs"])
        slot_start = request_end + ADDRESS * 2_000_000  # protocol 1.1: address * 2 ms
        assert slot_start <= w["riseNs"] <= slot_start + 1_000_000


def test_the_drops_of_ramping_nodes_show_no_skew_between_them(board, bus):
    board.call("nodes", uv=V1, slope_uv_per_ns=RAMP)
    drops = bus.request(ADDRESS, "sample_drops")
    skew_free = (drops["dv_free_uv"] - (V1[0] - V1[1])) / RAMP[0]
    skew_clamped = (drops["dv_clamped_uv"] - (V1[2] - V1[3])) / RAMP[0]
    print(f"skew from the drops of ramping nodes: free {skew_free:+.0f} ns, clamped {skew_clamped:+.0f} ns "
          f"(resolution 1 ns)")
    assert abs(skew_free) <= SKEW_BUDGET_NS and abs(skew_clamped) <= SKEW_BUDGET_NS
    assert (drops["dv_free_uv"], drops["dv_clamped_uv"]) == _reference(V1).sample()


def test_a_learn_pulse_on_ramping_nodes_updates_as_on_still_ones(board, bus):
    _pulse(board, bus, [(0, 1), (300_000, 0)], [(0, V1, RAMP)])
    ref = _reference(V1)
    ref.learn()
    assert bus.request(ADDRESS, "read_state")["state"] == ref.state
    _events(board)


def test_a_learn_pulse_on_a_simulated_networks_voltages_updates_as_the_reference(board, bus):
    from instruments.bus.rule import gate_gain
    from instruments.sim.bench import SimBench
    from instruments.sim.twin import TwinNetwork

    bench = SimBench(seed=3)
    twin = TwinNetwork(bench.network, bench.device, bench.device_state(), backend="reference")
    inputs = [0.40, 0.05, 0.30, 0.15]  # V at the lattice's four sources
    free = twin.free_state(inputs)
    o_free = free[twin.targets]
    clamped = twin.clamped_state(inputs, o_free + 0.5 * (np.array([0.20, 0.25]) - o_free))
    bench.close()
    a, b = twin.network.edges.T
    contrast = (free[a] - free[b]) ** 2 - (clamped[a] - clamped[b]) ** 2
    j = int(np.argmax(np.abs(contrast)))  # the board of the edge that learns the most
    node_uv = [int(round(v * 1e6)) for v in (free[a[j]], free[b[j]], clamped[a[j]], clamped[b[j]])]
    gain = gate_gain(bench.wiring.timing.pulse_s, 1e3, 2.2e-6, 0.1)
    bus.request(ADDRESS, "configure_rule", rule=GATE_CHARGING, probability=ALWAYS, gain=gain,
                dead_band_uv2=0)
    rise = board.now_ns + 200_000
    board.call("nodes", uv=node_uv, at_ns=rise)
    board.call("pin", edges=[[rise, 1], [rise + 300_000, 0]])
    board.call("run", ns=1_500_000)
    ref = ReferenceBoard(ADDRESS, UID, MOSFET, initial_state=INITIAL_UV, node_uv=node_uv)
    ref.rule, ref.probability, ref.gain, ref.dead_band_uv2 = GATE_CHARGING, ALWAYS, gain, 0
    ref.learn()
    assert ref.state != INITIAL_UV
    assert bus.request(ADDRESS, "read_state")["state"] == ref.state
    _events(board)
