"""The RP2040 image trains a simulated network: emulated boards on the edges of the Gen-2 lattice.

The simulated Gen-2 lattice (instruments.sim, 16 nodes, 32 MOSFET edges, TwinNetwork) is
trained on one example by coupled learning, every edge run by the RP2040 image in its own
rp2040js (tests/rp2040_emu.py): every step the test solves both twins with the gates the
boards report, puts each edge's four node voltages on its emulated ADS131M04, pulses the
learn lines (rising edge: the snapshot; falling edge: the update) and reads each new gate
back over the bus with the host's BusClient. The same training with every edge the host's
ReferenceBoard is the referee: the images' gates agree with it to the microvolt at every
step, and the error falls at every step.

The protocol-2 image (``make v2``) trains the lattice the same way, spoken to by the host's
protocol-2 client (instruments.bus.v2.client.Bus) on a port whose waits are emulated time.
It drives its emulated gate in closed loop and reports the gate read back (on a 1 mV grid),
carrying the rest (the residue); since the read-back has noise and the shortest pulse moves
the gate by more than the grid, its states cannot equal an ideal actuator's exactly. Its
referee is protocol 2's ReferenceBoard run in lock step, given the node voltages the
images' own gates give: the learned targets (state + residue) are the reference's to the
microvolt at every step (the rule acts on the target), the states within the read-back's
error of the reference's grid points, and the error falls at every step.

The rule's gain is 1000 times the lab's (instruments.bus.rule.gate_gain of the wiring's
100 us pulse through 1 kOhm onto 2.2 uF), so that 12 steps show the error fall; at the lab's
rate the same fall takes about 12,000 steps.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from rp2040_emu import BOOT_NS, BOOT_V2_NS, EmuBoard, EmuSerial, build_image, config_image

from instruments.bus import client as bus_client
from instruments.bus.client import BusClient
from instruments.bus.protocol import ReferenceBoard
from instruments.bus.rule import gate_gain
from instruments.bus.v2 import ReferenceBoard as V2ReferenceBoard
from instruments.bus.v2 import Rule
from instruments.bus.v2.client import Bus
from instruments.bus.v2.link import _Port

MOSFET = 2
GATE_CHARGING = 2
ALWAYS = 65536
STEPS = 12
FAST = 1000  # times the lab's gate-charging rate
INPUTS = [0.40, 0.05, 0.30, 0.15]  # V at the lattice's four sources
DESIRED = np.array([0.20, 0.25])  # V at its two targets
NUDGE = 0.5
HIGH_NS = 150_000  # learn line high: the snapshot (~96 us) and the lines' skew fit in it


def _uid(j: int) -> bytes:
    return bytes([0xA0, j, 0x5E, 0x11, 0x0C, 0x4B, 0x7D, 0x21])


def _nodes_uv(free, clamped, a, b) -> list[int]:
    return [int(round(v * 1e6)) for v in (free[a], free[b], clamped[a], clamped[b])]


class _Lattice:
    """The twin lattice and the boards of its edges; the state is the boards' gates."""

    def __init__(self):
        from instruments.sim.bench import SimBench
        from instruments.sim.twin import TwinNetwork

        bench = SimBench(seed=3)
        self.twin = TwinNetwork(bench.network, bench.device, bench.device_state(), backend="reference")
        self.gain = FAST * gate_gain(bench.wiring.timing.pulse_s, 1e3, 2.2e-6, 0.1)
        bench.close()
        self.a, self.b = self.twin.network.edges.T

    def solve(self, gates_uv):
        self.twin.state = np.asarray(gates_uv, float) / 1e6
        free = self.twin.free_state(INPUTS)
        o = free[self.twin.targets]
        clamped = self.twin.clamped_state(INPUTS, o + NUDGE * (DESIRED - o))
        return free, clamped, 0.5 * float((o - DESIRED) @ (o - DESIRED))


def _reference_board(j: int, state_uv: int, gain: int) -> ReferenceBoard:
    ref = ReferenceBoard(j + 1, _uid(j), MOSFET, initial_state=state_uv)
    ref.rule, ref.probability, ref.gain, ref.dead_band_uv2 = GATE_CHARGING, ALWAYS, gain, 0
    return ref


def _learn_reference(ref: ReferenceBoard, node_uv) -> int:
    ref.node_uv = lambda v=tuple(node_uv): v
    return ref.learn()[0]


@pytest.fixture(scope="module")
def image():
    return build_image()


@pytest.fixture(scope="module")
def image_v2(image):
    return build_image("v2")


def test_the_image_on_every_edge_of_the_lattice_trains_it_as_the_reference_does(image, tmp_path, monkeypatch):
    lattice = _Lattice()
    start_uv = [int(round(s * 1e6)) for s in lattice.twin.state]
    a, b = lattice.a, lattice.b

    # the referee: every edge a ReferenceBoard
    refs = [_reference_board(j, s, lattice.gain) for j, s in enumerate(start_uv)]
    ref_gates, ref_errors = [start_uv], []
    for _ in range(STEPS):
        free, clamped, err = lattice.solve(ref_gates[-1])
        ref_errors.append(err)
        ref_gates.append([_learn_reference(r, _nodes_uv(free, clamped, a[j], b[j])) for j, r in enumerate(refs)])

    # the rig: every edge an image
    current = [None]
    monkeypatch.setattr(bus_client, "time", types.SimpleNamespace(monotonic=lambda: current[0].now_ns / 1e9))
    emus: dict[int, tuple[EmuBoard, BusClient]] = {}
    try:
        for j in range(len(start_uv)):
            cfg = config_image(tmp_path / f"edge{j}.uf2", j + 1, _uid(j), "mosfet", start_uv[j])
            emu = EmuBoard(image.with_suffix(".uf2"), cfg)
            emu.call("run", ns=BOOT_NS)
            current[0] = emu
            client = BusClient(EmuSerial(emu))
            client.request(j + 1, "configure_rule", rule=GATE_CHARGING, probability=ALWAYS,
                           gain=lattice.gain, dead_band_uv2=0)
            emus[j] = (emu, client)
        gates, errors = list(start_uv), []
        for step in range(STEPS):
            free, clamped, err = lattice.solve(gates)
            errors.append(err)
            new = []
            for j in range(len(gates)):
                node_uv = _nodes_uv(free, clamped, a[j], b[j])
                emu, client = emus[j]
                current[0] = emu
                rise = emu.now_ns + 100_000
                emu.call("nodes", uv=node_uv, at_ns=rise - 50_000)
                emu.call("pin", edges=[[rise, 1], [rise + HIGH_NS, 0]])
                emu.call("run", ns=100_000 + HIGH_NS + 200_000)
                new.append(client.request(j + 1, "read_state")["state"])
            gates = new
            assert gates == ref_gates[step + 1], f"step {step}: the images' gates differ from the reference"
        for j, (emu, client) in emus.items():
            current[0] = emu
            assert client.request(j + 1, "read_telemetry")["updates"] == STEPS
            assert emu.call("events")["violations"] == []
    finally:
        for emu, _ in emus.values():
            emu.close()

    # the same gates at every step (above, exactly); the errors the lattice solves for them agree
    # to rounding (each solve starts its Newton iteration from the lattice's last solution,
    # which is another one in the reference's loop)
    assert np.allclose(errors, ref_errors, rtol=1e-12, atol=0)
    moved = [abs(g - g0) for g, g0 in zip(gates, start_uv)]
    print(f"{len(gates)} edges on the image, gates moved {min(moved)} to {max(moved)} uV; "
          f"error {errors[0]:.3e} -> {errors[-1]:.3e} V^2 in {STEPS} steps")
    assert all(m > 0 for m in moved)
    assert errors[-1] < 0.8 * errors[0]
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:]))


# ------------------------------------------------------------------------- protocol 2


RESOLUTION_UV = 1000  # the v2 image's state grid: the gate read back, rounded to 1 mV
GATE_TOL_UV = 4_500  # a state from the reference's grid point (test_rp2040_emu_v2.GATE_TOL_UV)


class EmuPort(_Port):
    """The protocol-2 client's port on the harness's host adapter: the frame is sent, then
    the emulator runs until the window after its end of frame has passed (or the client has
    what it waits for); every wait is emulated time."""

    def __init__(self, board: EmuBoard, baud: int = 115_200):
        super().__init__(EmuSerial(board), baud, "rp2040js")
        self.board = board
        self._eof_ns = 0

    def exchange(self, frame, window_us: int, done=None, replies: bool = True) -> list:
        self._splitter.reset()
        self._write(frame)  # the harness's flush runs until the last stop bit has gone out
        self._eof_ns = self.board.now_ns
        deadline = self._eof_ns + window_us * 1000
        items: list = []
        while self.board.now_ns < deadline:
            # at least 1 ns: the emulator's clock is fractional, and a read of 0 ns never ends the wait
            data = bytes.fromhex(self.board.call("read", max_ns=max(1, int(deadline - self.board.now_ns)))["data"])
            if data:
                items += self._items(data)
                if done is not None and done(items):
                    return items
        return self._end_window(items)

    def wait(self, window_us: int) -> None:
        left = self._eof_ns + window_us * 1000 - self.board.now_ns
        if left > 0:
            self.board.call("run", ns=int(left))

    def bus_time_us(self) -> int:
        return self.board.now_ns // 1000


def test_the_v2_image_on_every_edge_trains_the_lattice_as_protocol_2s_reference(image_v2, tmp_path):
    lattice = _Lattice()
    start_uv = [int(round(s * 1e6)) for s in lattice.twin.state]
    a, b = lattice.a, lattice.b
    nodes: list[list[int]] = [[0, 0, 0, 0] for _ in start_uv]

    # the referee, in lock step: each edge's ReferenceBoard learns on the node voltages the
    # images' gates give
    refs = []
    for j, s in enumerate(start_uv):
        ref = V2ReferenceBoard(_uid(j), MOSFET, address=j + 1, initial_state=s, resolution=RESOLUTION_UV,
                               node_uv=lambda j=j: nodes[j])
        ref.rule, ref.probability, ref.gain, ref.dead_band_uv2 = Rule(GATE_CHARGING), ALWAYS, lattice.gain, 0
        refs.append(ref)

    emus: dict[int, tuple[EmuBoard, Bus]] = {}
    carried = 0
    try:
        for j, s in enumerate(start_uv):
            cfg = config_image(tmp_path / f"edge{j}.uf2", j + 1, _uid(j), "mosfet", s)
            emu = EmuBoard("--flash-uid", _uid(j).hex(), image_v2.with_suffix(".uf2"), cfg)
            emu.call("run", ns=BOOT_V2_NS)
            bus = Bus(EmuPort(emu))
            info = bus.identify(j + 1)
            assert (info.uid, info.protocol) == (_uid(j).hex(), 2)
            bus.configure_rule(j + 1, GATE_CHARGING, ALWAYS, lattice.gain, 0)
            emus[j] = (emu, bus)
        reads = [bus.read_state(j + 1) for j, (_, bus) in emus.items()]
        gates = [r["state"] for r in reads]
        # the power-on state: the gate moved there, read back
        assert [r["state"] + r["residue"] for r in reads] == start_uv
        assert all(abs(g - r.state) <= GATE_TOL_UV for g, r in zip(gates, refs))
        errors = []
        for step in range(STEPS):
            free, clamped, err = lattice.solve(gates)
            errors.append(err)
            new = []
            for j, (emu, bus) in emus.items():
                nodes[j] = _nodes_uv(free, clamped, a[j], b[j])
                refs[j].learn()
                rise = emu.now_ns + 100_000
                emu.call("nodes", uv=nodes[j], at_ns=rise - 50_000)
                emu.call("pin", edges=[[rise, 1], [rise + HIGH_NS, 0]])
                emu.call("run", ns=100_000 + HIGH_NS + 200_000)
                r = bus.read_state(j + 1)
                assert r["state"] % RESOLUTION_UV == 0
                assert r["state"] + r["residue"] == refs[j].target, f"step {step} edge {j}: the learned target"
                assert abs(r["state"] - refs[j].state) <= GATE_TOL_UV, f"step {step} edge {j}: the gate reached"
                true_uv = emu.call("gate_state")["v_uv"]
                assert abs(true_uv - r["state"]) <= GATE_TOL_UV  # what the board reports is its gate
                carried += r["residue"] != 0
                new.append(r["state"])
            gates = new
        for j, (emu, bus) in emus.items():
            t = bus.read_telemetry(j + 1)
            assert t["learns"] == STEPS and t["glitches"] == 0
            assert emu.call("events")["violations"] == []
    finally:
        for emu, _ in emus.values():
            emu.close()

    assert all(g % RESOLUTION_UV == 0 for g in gates)  # the gate read back, on its grid
    assert carried  # and steps below the shortest pulse were carried, not lost
    moved = [abs(g - g0) for g, g0 in zip(gates, start_uv)]
    print(f"protocol 2: {len(gates)} edges on the image; gates moved {min(moved)} to {max(moved)} uV; "
          f"error {errors[0]:.3e} -> {errors[-1]:.3e} V^2 in {STEPS} steps")
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:]))
