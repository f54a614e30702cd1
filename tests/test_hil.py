"""Hardware-in-the-loop: the same cases on two benches, through the same interfaces.

- ``simulated``: :func:`open_rig` on the simulated bench (simulated DAQ, the bus client over
  emulated boards, simulated SCPI instruments).
- ``drivers``: the real bench's code path: the NI-DAQmx driver on fakes autospecced from
  nidaqmx (coupled to a simulated circuit: what the driver writes reaches the circuit, what
  it reads comes from it, its learn pulse makes the boards learn), the bus client on a real
  pseudo-terminal served by the emulated boards, and the SCPI drivers on pyvisa-sim.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from fake_nidaqmx import FakeNidaqmx, installed
from instruments.bus import protocol as P
from instruments.bus.emulator import BusEmulator
from instruments.interfaces import OverCurrent
from instruments.rig import Rig, open_rig
from instruments.safety import LimitError
from instruments.sim.bench import SimBench
from instruments.sim.loopback import BoardsOnBus
from instruments.visa import sim_resource_manager
from instruments.wiring import Instrument, default_wiring

SMU = "USB0::0x05E6::0x2450::04096331::INSTR"
DMM = "USB0::0x2A8D::0x0101::MY57503317::INSTR"
PSU = "USB0::0x2A8D::0x1102::MY59001234::INSTR"
PSU_CH2_TRIPPED = "USB0::0x2A8D::0x1102::MY59005678::INSTR"


@dataclass
class Bench:
    """A rig under test and the simulated circuit behind it."""

    rig: Rig
    circuit: SimBench
    fake: FakeNidaqmx | None = None

    def trip_psu(self) -> None:
        if self.fake is None:
            self.circuit.trip_psu()
        # on pyvisa-sim the supply at PSU_CH2_TRIPPED reports channel 2 tripped (see open_bench)


def couple(fake: FakeNidaqmx, circuit: SimBench, pulse_s: float) -> None:
    """Let the faked NI driver drive the simulated circuit: buffered writes appear when the
    output task starts, on-demand writes at once; reads sample the circuit; a finished
    counter pulse is the learn pulse."""
    pending: list[np.ndarray] = []

    def on_event(event: str, data) -> None:
        if event == "ao.write_one_sample":
            circuit.daq.write(np.array(data))
        elif event == "ao.write_many_sample":
            pending[:] = [np.array(data[:, 0])]
        elif event == "ao.start" and pending:
            circuit.daq.write(pending.pop())
        elif event == "co.wait_until_done":
            circuit.daq.pulse(pulse_s)

    fake.listeners.append(on_event)
    fake.ai_samples = lambda n_channels, n: np.repeat(circuit.daq.read(n)[:, None], n, axis=1)


@pytest.fixture(params=["simulated", "drivers"])
def open_bench(request):
    """``open_bench(psu_tripped=False)``: a fresh bench of the fixture's kind (closed at the end)."""
    opened: list = []

    def make(psu_tripped: bool = False) -> Bench:
        wiring = default_wiring("gen2")
        if request.param == "simulated":
            rig = open_rig(wiring, simulate=True, seed=1)
            opened.append(rig)
            if psu_tripped:
                rig.bench.trip_psu()
            return Bench(rig, rig.bench)
        circuit = SimBench(wiring, seed=1)
        ctx = installed(wiring)
        fake = ctx.__enter__()
        opened.append(ctx)
        couple(fake, circuit, wiring.timing.pulse_s)
        emulator = BusEmulator([BoardsOnBus(circuit.boards)]).__enter__()
        opened.append(emulator)
        psu = Instrument("keysight_e36312a", PSU_CH2_TRIPPED if psu_tripped else PSU,
                         {"channel": 2 if psu_tripped else 1, "voltage_v": 5.0, "current_limit_a": 0.5})
        real = replace(wiring, bus_port=emulator.port, smu=Instrument("keithley2450", SMU, {"compliance_a": 1e-3}),
                       dmm=Instrument("keysight34465a", DMM), psu=psu)
        rig = open_rig(real, resource_manager=sim_resource_manager())
        opened.append(rig)
        return Bench(rig, circuit, fake)

    yield make
    for thing in reversed(opened):
        if isinstance(thing, Rig):
            thing.close()
        else:
            thing.__exit__(None, None, None)


def outputs_now(bench: Bench) -> np.ndarray:
    """What the outputs really put out (V), from the circuit."""
    return bench.circuit.daq.output_voltages()


def test_the_rig_names_every_instrument(open_bench):
    ids = open_bench().rig.identities()
    assert set(ids) == {"daq", "smu", "dmm", "psu", "bus"}
    assert all(ids.values())


def test_the_bus_sees_every_board_with_its_state(open_bench):
    bench = open_bench()
    boards = bench.rig.bus.scan()
    assert [b.address for b in boards] == list(range(1, 33))
    assert {b.kind for b in boards} == {"mosfet"}
    states = bench.rig.bus.read_states(range(1, 33))
    assert [states[a] for a in range(1, 33)] == bench.circuit.boards.state.tolist()


def test_one_training_step_through_the_interfaces_moves_the_network_toward_its_target(open_bench):
    bench = open_bench()
    rig, lay = bench.rig, bench.rig.layout
    t = rig.wiring.timing
    # the lab's gate gain moves the outputs by microvolts per step; take the boards' largest
    rig.bus.broadcast("configure_rule", rule=P.Rule.GATE_CHARGING, probability=P.PROBABILITY_ONE,
                      gain=P.GAIN_LIMIT - 1, dead_band_uv2=0)
    rig.bus.read_states(range(1, 33))  # every board has applied the broadcast once it answers
    inputs = np.array([0.40, 0.05, 0.45, 0.0])
    n_average = 2000  # input noise 60 uV per sample: about 1.3 uV after averaging
    clamps = np.zeros(lay.clamp_ao.size)
    rig.daq.ramp_to(lay.outputs(inputs, clamps))
    o_free = rig.daq.write_and_read(lay.outputs(inputs, clamps), t.settle_s, n_average)[lay.free_ai]
    desired = o_free + np.array([0.05, -0.05])
    clamps = o_free + 0.5 * (desired - o_free)  # eta = 0.5
    rig.daq.write_and_pulse(lay.outputs(inputs, clamps), t.settle_s, t.pulse_s)
    o_after = rig.daq.write_and_read(lay.outputs(inputs, clamps), t.settle_s, n_average)[lay.free_ai]
    moved_toward = (o_after - o_free) * np.sign(desired - o_free)
    assert np.all(moved_toward > 10e-6), moved_toward  # tens of microvolts, well above the noise


def test_an_out_of_limit_request_is_refused_before_any_write(open_bench):
    bench = open_bench()
    rig = bench.rig
    rig.daq.write(np.full(6, 0.1))
    before = outputs_now(bench)
    writes = None if bench.fake is None else len(bench.fake.writes)
    with pytest.raises(LimitError, match="PXI1Slot2/ao3: 0.5 V is above its limit 0.45 V"):
        rig.daq.write_and_read(np.r_[0.1, 0.1, 0.1, 0.5, 0.1, 0.1], 1e-3, 10)
    np.testing.assert_array_equal(outputs_now(bench), before)
    if bench.fake is not None:
        assert len(bench.fake.writes) == writes


def test_an_exception_in_a_run_leaves_the_outputs_safe(open_bench):
    bench = open_bench()
    with pytest.raises(RuntimeError, match="analysis failed"):
        with bench.rig.guard():
            bench.rig.daq.write(np.full(6, 0.3))
            assert np.allclose(outputs_now(bench), 0.3, atol=2e-3)
            raise RuntimeError("analysis failed")
    np.testing.assert_allclose(outputs_now(bench), bench.rig.limits.safe_v, atol=2e-3)
    if bench.fake is not None:
        assert all(s.closed for s in bench.fake.states.values())


def test_a_power_supply_over_current_stops_the_run_safely(open_bench):
    bench = open_bench(psu_tripped=True)
    with pytest.raises(OverCurrent, match="tripped"):
        with bench.rig.guard() as guard:
            bench.rig.daq.write(np.full(6, 0.2))
            guard.check()
    np.testing.assert_allclose(outputs_now(bench), bench.rig.limits.safe_v, atol=2e-3)


def test_an_unsound_wiring_is_not_opened():
    w = default_wiring("gen2")
    with pytest.raises(ValueError, match="edge 0 \\(r0c0-r0c1\\): no board"):
        open_rig(replace(w, boards={a: e for a, e in w.boards.items() if e != 0}), simulate=True)


@pytest.mark.filterwarnings("ignore:read string doesn't end with termination characters")
def test_an_instrument_that_fails_to_open_leaves_the_daq_safe_and_closed():
    wiring = replace(default_wiring("gen2"), smu=Instrument("keithley2450", "USB0::0x05E6::0x2450::NOPE::INSTR"),
                     dmm=None, psu=None)
    with installed(wiring) as fake:
        with pytest.raises(Exception, match="NOPE"):
            open_rig(wiring, resource_manager=sim_resource_manager())
        assert fake.states and all(s.closed for s in fake.states.values())
        assert np.allclose(fake.writes[-1][1], 0.0)


def test_bench_options_are_refused_on_the_real_bench():
    with pytest.raises(ValueError, match="apply only to the simulated bench"):
        open_rig(default_wiring("gen2"), seed=3)


def test_only_the_simulated_bench_has_a_snapshot(open_bench):
    bench = open_bench()
    rig = bench.rig
    snap = rig.snapshot()
    assert (snap is None) == (bench.fake is not None)  # the real bench's hardware keeps its own state
    rig.restore(snap)
    other = bench.circuit.save_state() if snap is None else None
    with pytest.raises(ValueError, match="snapshot of the simulated bench"):
        rig.restore(other)


def _steps(rig: Rig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training steps through the rig's safe DAQ; the free outputs read, and the board
    states over the bus after them."""
    lay, t = rig.layout, rig.wiring.timing
    inputs = np.array([0.40, 0.05, 0.45, 0.0])
    reads = []
    for k in range(n):
        o_free = rig.daq.write_and_read(lay.outputs(inputs, np.zeros(2)), t.settle_s, 50)[lay.free_ai]
        clamps = np.clip(o_free + 0.5 * (np.array([0.2, 0.3]) - o_free), 0.0, 0.45)
        rig.daq.write_and_pulse(lay.outputs(inputs, clamps), t.settle_s, t.pulse_s)
        reads.append(o_free)
    states = rig.bus.read_states(range(1, 33))
    return np.array(reads), np.array([states[a] for a in range(1, 33)])


def test_a_snapshot_resumes_a_simulated_run_exactly_on_a_fresh_rig():
    def fresh() -> Rig:
        rig = open_rig(default_wiring("gen2"), simulate=True, seed=1, adc_noise_uv=5.0)
        rig.bus.broadcast("configure_rule", rule=P.Rule.GATE_CHARGING, probability=P.PROBABILITY_ONE,
                          gain=2**32, dead_band_uv2=0)
        return rig

    whole, interrupted, resumed = fresh(), fresh(), fresh()
    try:
        _steps(whole, 3)
        _steps(interrupted, 3)
        resumed.restore(interrupted.snapshot())
        assert np.array_equal(resumed.daq.held_v, interrupted.daq.held_v)
        reads, states = _steps(resumed, 4)
        want_reads, want_states = _steps(whole, 4)
        assert np.array_equal(reads, want_reads) and np.array_equal(states, want_states)
    finally:
        for rig in (whole, interrupted, resumed):
            rig.close()
