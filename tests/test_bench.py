"""The simulated bench (instruments/sim/bench.py): one twin network behind a simulated DAQ,
edge bus, SMU, DMM and power supply."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from instruments.bus import protocol as P
from instruments.bus.client import BusClient, BusTimeout
from instruments.daq import models
from instruments.interfaces import (
    BoundaryDaq, DaqError, DaqTimeout, EdgeBus, InstrumentError, Multimeter, OverCurrent, PowerSupply,
    SourceMeter,
)
from instruments.sim.bench import BenchFaults, DaqErrors, SimBench, default_device
from instruments.sim.twin import TwinNetwork
from instruments.wiring import default_wiring

AO = models.model("PXIe-6738")
AI = models.model("PXIe-6363")
AO_LSB_V = AO.ao_lsb_v()
AI_LSB_V = AI.ai_lsb_v(1.0)
SAMPLES = {  # sources (V), desired targets (V) of each built-in bench
    "gen2": ([0.3, 0.1, 0.4, 0.2], [0.2, 0.25]),
    "gen1": ([0.8, 0.2, 0.5, 0.9], [0.3, 0.5, 0.4]),
}


def _ideal(**kw) -> SimBench:
    return SimBench(errors=DaqErrors.ideal(), **kw)


def _outputs(bench: SimBench, sources, clamps=None) -> np.ndarray:
    t = bench.network.targets.size
    return bench.layout.outputs(np.asarray(sources, float), np.zeros(t) if clamps is None else clamps)


def _train(bench: SimBench, sources, desired, eta: float = 1.0, n_samples: int = 10) -> np.ndarray:
    """One training step through the DAQ; returns the free outputs read before the update."""
    lay = bench.layout
    o_free = bench.daq.write_and_read(_outputs(bench, sources), 1e-3, n_samples)[lay.free_ai]
    o_clamped = o_free + eta * (np.asarray(desired) - o_free)
    bench.daq.write_and_pulse(_outputs(bench, sources, o_clamped), 1e-3, 100e-6)
    return o_free


def _true_error(bench: SimBench, desired) -> float:
    o = bench.node_voltages("free")[bench.network.targets]
    return float(np.sum((o - np.asarray(desired)) ** 2))


# ------------------------------------------------------------------------------ interfaces


def test_every_instrument_implements_its_protocol():
    bench = SimBench()
    assert isinstance(bench.daq, BoundaryDaq)
    assert isinstance(bench.smu, SourceMeter)
    assert isinstance(bench.dmm, Multimeter)
    assert isinstance(bench.psu, PowerSupply)
    assert isinstance(bench.bus, EdgeBus) and isinstance(bench.bus, BusClient)


def test_the_default_bench_is_the_gen2_lattice_with_gate_charging_boards():
    bench = SimBench()
    assert bench.wiring.name == "gen2-sim" and bench.device.kind == "mosfet"
    assert np.all(bench.device.s_a_per_v2 == 8.5e-4) and np.all(bench.device.vt_v == 0.66)
    assert np.all((bench.device_state() >= 1.5) & (bench.device_state() <= 2.8))
    gain = P.gate_gain(100e-6, 1e3, 2.2e-6, 0.1)
    assert bench.boards.rule.tolist() == [P.Rule.GATE_CHARGING] * 32
    assert bench.boards.gain.tolist() == [gain] * 32 and bench.boards.probability.tolist() == [65536] * 32


def test_the_gen1_bench_has_digipot_boards_with_the_tap_rule():
    bench = SimBench(default_wiring("gen1"))
    assert bench.device.kind == "digipot"
    assert bench.boards.rule.tolist() == [P.Rule.TAP] * 24
    assert np.array_equal(bench.device_state(), np.rint(bench.device_state()))


def test_the_same_seed_gives_the_same_bench_and_readings():
    def run(seed):
        bench = SimBench(seed=seed)
        reads = [_train(bench, *SAMPLES["gen2"]) for _ in range(5)]
        return np.array(reads), bench.device_state(), bench.boards.uid.copy(), bench.daq.errors.ao_offset_v

    a, b, c = run(3), run(3), run(4)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[2], c[2])


# ------------------------------------------------------------------------------ the DAQ: outputs


def test_outputs_are_quantised_to_the_device_codes():
    bench = _ideal()
    values = np.linspace(0.0, 0.45, bench.layout.n_ao) + 1e-5
    bench.daq.write(values)
    codes = (bench.daq.output_voltages() - AO.ao_range_v[0]) / AO_LSB_V
    assert np.allclose(codes, np.rint(codes), atol=1e-6)
    assert np.all(np.abs(bench.daq.output_voltages() - values) <= AO_LSB_V / 2 + 1e-12)


def test_outputs_carry_their_channel_gain_and_offset():
    n = 6
    gain, offset = np.linspace(-1e-3, 1e-3, n), np.linspace(-2e-3, 2e-3, n)
    bench = SimBench(errors=DaqErrors(ao_gain=gain, ao_offset_v=offset))
    values = np.full(n, 0.25)
    bench.daq.write(values)
    q = AO.ao_range_v[0] + np.rint((values - AO.ao_range_v[0]) / AO_LSB_V) * AO_LSB_V
    assert np.allclose(bench.daq.output_voltages(), q * (1 + gain) + offset, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [10.5, -10.01, np.nan])
def test_a_value_outside_the_device_range_is_refused_by_channel(bad):
    bench = _ideal()
    values = np.zeros(bench.layout.n_ao)
    values[3] = bad
    with pytest.raises(DaqError, match=r"PXI1Slot2/ao3: .* outside the PXIe-6738's output range -10.0..10.0 V"):
        bench.daq.write_and_read(values, 1e-3, 1)


def test_a_source_output_drives_both_twins_and_a_clamp_only_the_clamped_one():
    bench = _ideal()
    net = bench.network
    sources, clamps = [0.3, 0.1, 0.4, 0.2], np.array([0.05, 0.35])
    bench.daq.write(_outputs(bench, sources, clamps))
    free, clamped = bench.node_voltages("free"), bench.node_voltages("clamped")
    driven = bench.daq.output_voltages()
    assert np.array_equal(free[net.sources], driven[bench.layout.source_ao])
    assert np.array_equal(clamped[net.sources], driven[bench.layout.source_ao])
    assert np.array_equal(clamped[net.targets], driven[bench.layout.clamp_ao])
    assert not np.allclose(free[net.targets], clamped[net.targets], atol=1e-3)


# ------------------------------------------------------------------------------ the DAQ: inputs


@pytest.mark.parametrize("name", ["gen2", "gen1"])
def test_free_outputs_read_through_an_ideal_daq_match_the_circuit_solver(name):
    bench = SimBench(default_wiring(name), errors=DaqErrors.ideal())
    sources, _ = SAMPLES[name]
    read = bench.daq.write_and_read(_outputs(bench, sources), 1e-3, 1)[bench.layout.free_ai]
    applied = bench.daq.output_voltages()[bench.layout.source_ao][np.argsort(bench.layout.source_of)]
    reference = TwinNetwork(bench.network, bench.device, bench.device_state(), backend="reference")
    assert np.all(np.abs(read - reference.outputs(applied)) <= AI_LSB_V / 2 + 1e-9)


def test_an_ideal_read_is_a_whole_number_of_input_codes():
    bench = _ideal()
    read = bench.daq.write_and_read(_outputs(bench, SAMPLES["gen2"][0]), 1e-3, 1)
    codes = (read + 1.0) / AI_LSB_V
    assert np.allclose(codes, np.rint(codes), atol=1e-6)


def test_inputs_carry_their_channel_gain_and_offset():
    bench = SimBench(errors=DaqErrors(ai_gain=[1e-2, -1e-2], ai_offset_v=[3e-3, -2e-3]))
    read = bench.daq.write_and_read(_outputs(bench, SAMPLES["gen2"][0]), 1e-3, 1)
    true = bench.node_voltages("free")[bench.network.targets][bench.layout.free_ai.argsort()]
    assert np.all(np.abs(read - (true * [1.01, 0.99] + [3e-3, -2e-3])) <= AI_LSB_V / 2 + 1e-9)


def test_input_noise_has_its_sigma_per_sample_and_averages_down():
    bench = SimBench(errors=DaqErrors(ai_noise_v=1e-3))
    out = _outputs(bench, SAMPLES["gen2"][0])
    single = np.array([bench.daq.write_and_read(out, 1e-3, 1) for _ in range(400)])
    mean16 = np.array([bench.daq.write_and_read(out, 1e-3, 16) for _ in range(400)])
    assert np.all(np.abs(single.std(axis=0) - 1e-3) < 1.5e-4)
    assert np.all(np.abs(mean16.std(axis=0) - 0.25e-3) < 0.5e-4)


def test_an_input_beyond_its_range_saturates_at_the_range_end():
    w = default_wiring("gen2")
    w = dataclasses.replace(w, inputs=tuple(dataclasses.replace(i, range_v=0.1) for i in w.inputs))
    bench = SimBench(w, errors=DaqErrors.ideal())
    read = bench.daq.write_and_read(_outputs(bench, [0.45, 0.45, 0.45, 0.45]), 1e-3, 4)
    assert np.all(bench.node_voltages("free")[bench.network.targets] > 0.2)
    assert np.allclose(read, 0.1 - AI.ai_lsb_v(0.1))


def test_a_short_settle_reads_a_stale_value():
    bench = SimBench(errors=DaqErrors(tau_s=20e-6))
    low, high = _outputs(bench, [0.05] * 4), _outputs(bench, [0.4] * 4)
    old = bench.daq.write_and_read(low, 1e-3, 1)
    stale = bench.daq.write_and_read(high, 2e-6, 1)
    settled = bench.daq.write_and_read(high, 1e-3, 1)
    assert np.all(np.abs(stale - old) < np.abs(stale - settled))
    assert np.allclose(stale, settled + (old - settled) * np.exp(-2e-6 / 20e-6), atol=AI_LSB_V)


# ------------------------------------------------------------------------------ training


@pytest.mark.parametrize("name", ["gen2", "gen1"])
def test_one_training_step_moves_the_free_outputs_toward_the_target(name):
    bench = SimBench(default_wiring(name), seed=2)
    sources, desired = SAMPLES[name]
    bench.daq.write(_outputs(bench, sources))
    before = _true_error(bench, desired)
    _train(bench, sources, desired)
    assert _true_error(bench, desired) < before


@pytest.mark.parametrize("name", ["gen2", "gen1"])
def test_a_few_training_steps_show_in_what_the_daq_reads(name):
    bench = SimBench(default_wiring(name), seed=2)
    sources, desired = SAMPLES[name]
    # the Gen-2 gate moves microvolts per step at the lab's gain: take 6.6 times it (firmware
    # 1.0.x's largest gain, 0.06 V/V^2), fast enough to show in 22 steps and still stable
    bench.bus.broadcast("configure_rule", rule=int(bench.boards.rule[0]), probability=P.PROBABILITY_ONE,
                        gain=2**24 - 1 if name == "gen2" else 0, dead_band_uv2=0)
    first = _train(bench, sources, desired, n_samples=200)
    for _ in range(20):
        _train(bench, sources, desired)
    last = _train(bench, sources, desired, n_samples=200)
    closer_v = np.linalg.norm(first - desired) - np.linalg.norm(last - desired)
    assert closer_v > 4 * AI_LSB_V


def test_the_learn_pulse_applies_the_firmware_rule_to_what_the_adcs_read():
    bench = _ideal(adc_offset_uv=[100, -50, 0, 20])
    sources, desired = SAMPLES["gen2"]
    bench.daq.write(_outputs(bench, sources, np.array(desired)))
    nodes = bench.boards.sample(bench.node_voltages("free"), bench.node_voltages("clamped"))
    boards = bench.boards
    expect = [P.learn_step(rule=int(boards.rule[i]), probability=int(boards.probability[i]), gain=int(boards.gain[i]),
                           dead_band_uv2=0, state=int(boards.state[i]), state_min=int(boards.state_min[i]),
                           state_max=int(boards.state_max[i]), draw=P.xorshift32(int(boards.prng[i])),
                           node_uv=nodes[i].tolist())["state"] for i in range(boards.n)]
    bench.daq.pulse(100e-6)
    assert boards.state.tolist() == expect
    assert np.allclose(bench.device_state()[boards.edges], np.array(expect) * 1e-6, rtol=0, atol=1e-12)


def test_a_stuck_edge_does_not_change_while_its_board_does():
    bench = SimBench(seed=1)
    bench.stick_edge(5)
    before = bench.device_state()
    for _ in range(5):
        _train(bench, *SAMPLES["gen2"])
    after = bench.device_state()
    assert after[5] == before[5]
    assert np.count_nonzero(after != before) > 20
    assert bench.bus.request(6, "read_state")["state"] != round(before[5] * 1e6)


def test_update_bias_drifts_the_gates_by_its_amount_per_update():
    bench = SimBench(faults=BenchFaults(update_bias=1e-3), rule="gate_charging", gain=0)
    before = bench.device_state()
    for _ in range(3):
        bench.daq.pulse(100e-6)
    assert np.allclose(bench.device_state() - before, 3e-3, atol=1e-9)


def test_twin_mismatch_shows_in_the_device_model():
    bench = SimBench(faults=BenchFaults(twin_mismatch=0.01))
    s, vt = bench.device.s_a_per_v2, bench.device.vt_v
    assert not bench.device.twins_identical
    assert 0.002 < np.std(s[1] / s[0] - 1) < 0.03 and 0.002 < np.std(vt[1] / vt[0] - 1) < 0.03


def test_device_faults_and_an_explicit_device_do_not_mix():
    device = default_device("mosfet", 32)
    with pytest.raises(ValueError, match="shape the default device"):
        SimBench(device=device, faults=BenchFaults(twin_mismatch=0.01))


# ------------------------------------------------------------------------------ the bus


def test_the_bus_sees_every_board_with_its_state():
    bench = SimBench(seed=5)
    _train(bench, *SAMPLES["gen2"])
    scan = bench.bus.scan()
    addresses = sorted(bench.wiring.boards)
    assert [b.address for b in scan] == addresses and {b.kind for b in scan} == {"mosfet"}
    gates = bench.device_state()
    assert bench.bus.read_states(addresses) == {a: round(gates[bench.wiring.boards[a]] * 1e6) for a in addresses}


def test_a_mute_board_times_out_while_the_others_answer():
    bench = SimBench()
    bench.mute_board(7)
    with pytest.raises(BusTimeout, match="board 7: read_state"):
        bench.bus.request(7, "read_state")
    assert bench.bus.request(8, "read_state")["status"] == 0
    assert 7 not in {b.address for b in bench.bus.scan()}


def test_set_state_over_the_bus_moves_the_device():
    bench = SimBench()
    bench.bus.request(3, "set_state", state=4_000_000)
    assert bench.device_state()[bench.wiring.boards[3]] == pytest.approx(4.0)


# ------------------------------------------------------------------------------ DAQ faults


def test_a_daq_timeout_fault_fails_the_next_hardware_timed_operations():
    bench = SimBench()
    out = _outputs(bench, SAMPLES["gen2"][0])
    bench.fail_daq(2)
    with pytest.raises(DaqTimeout, match="write_and_read"):
        bench.daq.write_and_read(out, 1e-3, 1)
    with pytest.raises(DaqTimeout, match="write_and_pulse"):
        bench.daq.write_and_pulse(out, 1e-3, 1e-4)
    bench.daq.write(out)  # software-timed: not affected
    assert bench.daq.write_and_read(out, 1e-3, 1).shape == (2,)


def test_a_noise_burst_raises_the_spread_of_reads_for_its_reads_only():
    bench = SimBench(errors=DaqErrors(ai_noise_v=1e-4))
    out = _outputs(bench, SAMPLES["gen2"][0])
    bench.noise_burst(20.0, 100)
    burst = np.array([bench.daq.write_and_read(out, 1e-3, 1) for _ in range(100)])
    calm = np.array([bench.daq.write_and_read(out, 1e-3, 1) for _ in range(100)])
    assert np.all(burst.std(axis=0) > 10 * calm.std(axis=0))


# ------------------------------------------------------------------------------ SMU, DMM, PSU


def test_smu_current_matches_the_device_model():
    bench = SimBench(seed=4)
    smu = bench.probe_smu(9, "clamped")
    smu.configure(compliance_a=0.1)
    smu.output(True)
    volts, amps = smu.sweep(np.array([0.05, 0.2, 0.45]))
    state = bench.device_state()
    for v, i in zip(volts, amps):
        va = np.zeros(32)
        va[9] = v
        expect = bench.device.current(state, va, np.zeros(32), twin=1)[0][9]
        assert i == pytest.approx(expect, rel=1e-4)
    assert not smu.in_compliance()


def test_smu_reads_its_compliance_when_the_device_wants_more():
    bench = SimBench()
    smu = bench.probe_smu(0)
    smu.configure(compliance_a=1e-5)
    smu.output(True)
    assert smu.measure_current(0.4) == 1e-5 and smu.in_compliance()
    smu.output(False)
    with pytest.raises(InstrumentError, match="output off"):
        smu.measure_current(0.4)


def test_dmm_reads_what_an_output_really_puts_out():
    bench = SimBench(errors=DaqErrors(ao_gain=2e-3, ao_offset_v=5e-3))
    values = np.full(bench.layout.n_ao, 0.3)
    bench.daq.write(values)
    dmm = bench.probe_dmm("PXI1Slot2/ao2")
    dmm.configure_dc_volts(1.0)
    reading = dmm.measure_dc_volts()
    assert reading == pytest.approx(bench.daq.output_voltages()[2], abs=3e-6)
    assert abs(reading - 0.3) > 4e-3


def test_dmm_reads_a_node_of_either_twin():
    bench = SimBench()
    bench.daq.write(_outputs(bench, SAMPLES["gen2"][0], np.array([0.05, 0.35])))
    for twin in ("free", "clamped"):
        dmm = bench.probe_dmm(node="r3c3", twin=twin)
        assert dmm.measure_dc_volts() == pytest.approx(bench.node_voltages(twin)[bench.network.index("r3c3")], abs=3e-6)


def test_psu_current_rises_with_the_network_current():
    bench = SimBench()
    idle = bench.psu.measure_current(1)
    assert idle == pytest.approx(32 * 4e-3, rel=0.02)
    bench.daq.write(_outputs(bench, [0.45, 0.0, 0.45, 0.0], np.array([0.0, 0.45])))
    assert bench.psu.measure_current(1) > idle + 1e-3


def test_psu_trips_on_over_current_and_the_boards_go_dark():
    bench = SimBench()
    bench.psu.set_current_limit(1, 0.13)
    bench.daq.write(_outputs(bench, [0.45, 0.0, 0.45, 0.0], np.array([0.0, 0.45])))
    with pytest.raises(OverCurrent, match="channel 1 tripped"):
        bench.psu.measure_current(1)
    assert bench.psu.over_current(1)
    assert bench.bus.scan() == []


def test_a_requested_psu_trip_is_seen_as_over_current():
    bench = SimBench(faults=BenchFaults(psu_trip=True))
    assert bench.psu.over_current(1)
    assert not bench.boards.powered
    with pytest.raises(InstrumentError, match="stays off until it is cleared"):
        bench.psu.output(1, True)  # as the E36312A: a tripped channel stays off
    assert bench.psu.clear_protection(1) and not bench.boards.powered
    bench.psu.output(1, True)
    assert not bench.psu.over_current(1) and bench.boards.powered


# ------------------------------------------------------------------------------ checkpoints


def _checkpoint_bench(name: str = "gen2") -> SimBench:
    """A bench with noise everywhere: drawn DAQ errors and noise, noisy board ADCs."""
    return SimBench(default_wiring(name), seed=11, adc_noise_uv=4.0, adc_offset_uv=[30.0, -20.0, 5.0, 0.0])


def _session(bench: SimBench, first: int, n: int) -> tuple[np.ndarray, list]:
    """Steps ``first`` .. ``first + n - 1`` of one fixed session: each a write_and_read and a
    write_and_pulse (clamps halfway to a target drawn for the step), an SMU and a DMM reading;
    every third step the board states over the bus. Returns the readings and the states."""
    name = "gen2" if bench.device.kind == "mosfet" else "gen1"
    sources = np.array(SAMPLES[name][0])
    reads, states = [], []
    for i in range(first, first + n):
        if i == 0:  # set-up, part of the state a checkpoint must carry
            if name == "gen2":  # a gain of 2^30 (3.8 V/V^2): the gates move visibly at each step
                bench.bus.broadcast("configure_rule", rule=P.Rule.GATE_CHARGING, probability=40_000,
                                    gain=2**30, dead_band_uv2=0)
            bench.probe_smu(3, "clamped").output(True)
            bench.probe_dmm(node=bench.network.nodes[int(bench.network.targets[0])], twin="clamped")
        rng = np.random.default_rng((7, i))  # drawn per step: a resumed session draws the same
        desired = rng.uniform(0.1, 0.4, bench.network.targets.size)
        o_free = bench.daq.write_and_read(_outputs(bench, sources), 1e-3, 4)[bench.layout.free_ai]
        bench.daq.write_and_pulse(_outputs(bench, sources, o_free + 0.5 * (desired - o_free)), 1e-3, 100e-6)
        reads.append(np.r_[o_free, bench.smu.measure_current(0.2), bench.dmm.measure_dc_volts()])
        if i % 3 == 2:
            states.append(bench.bus.read_states())
    return np.array(reads), states


def _arrays_as_lists(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-able: {type(x).__name__}")


def _as_json(state: dict) -> str:
    """The saved state as JSON text; fails on anything but plain values and numpy arrays."""
    return json.dumps(state, default=_arrays_as_lists, sort_keys=True)


@pytest.mark.parametrize("name", ["gen2", "gen1"])
def test_a_run_resumed_from_a_saved_state_ends_exactly_as_the_uninterrupted_run(name):
    n, m = 6, 9
    whole = _checkpoint_bench(name)
    _session(whole, 0, n)
    reads_whole, states_whole = _session(whole, n, m)

    interrupted = _checkpoint_bench(name)
    _session(interrupted, 0, n)
    saved = interrupted.save_state()
    resumed = _checkpoint_bench(name)
    resumed.load_state(saved)
    reads_resumed, states_resumed = _session(resumed, n, m)

    assert np.array_equal(reads_resumed, reads_whole)
    assert states_resumed == states_whole
    assert np.array_equal(resumed.boards.state, whole.boards.state)
    assert np.array_equal(resumed.device_state(), whole.device_state())
    assert _as_json(resumed.save_state()) == _as_json(whole.save_state())  # to the last bit
    assert not np.array_equal(resumed.boards.state, interrupted.boards.state)  # the run did move on


def test_the_circuit_solves_to_the_same_last_bit_after_a_load():
    """The MOSFET solver starts each solve from its previous solution: the saved warm starts
    come along, so the first solve after a load gives the very same voltages."""
    bench = _checkpoint_bench()
    _session(bench, 0, 4)
    resumed = _checkpoint_bench()
    resumed.load_state(bench.save_state())
    out = _outputs(bench, [0.41, 0.02, 0.33, 0.17], np.array([0.27, 0.12]))
    for b in (bench, resumed):
        b.daq.write(out)
    for twin in ("free", "clamped"):
        assert np.array_equal(resumed.node_voltages(twin), bench.node_voltages(twin))


def test_the_saved_state_survives_a_json_round_trip():
    bench = _checkpoint_bench()
    _session(bench, 0, 4)
    saved = bench.save_state()
    from_dict, from_json = _checkpoint_bench(), _checkpoint_bench()
    from_dict.load_state(saved)
    from_json.load_state(json.loads(_as_json(saved)))
    a, b = _session(from_dict, 4, 5), _session(from_json, 4, 5)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert _as_json(from_dict.save_state()) == _as_json(from_json.save_state())


def test_faults_carry_over_to_the_resumed_bench():
    bench = _checkpoint_bench()
    _session(bench, 0, 3)
    bench.mute_board(3)
    bench.stick_edge(5)
    bench.noise_burst(30.0, 2)
    bench.fail_daq(1)
    bench.boards.storage_fails.add(4)
    resumed = _checkpoint_bench()
    resumed.load_state(bench.save_state())
    assert resumed.boards.mute == {3} and resumed.boards.storage_fails == {4}
    assert resumed.boards.stuck == bench.boards.stuck and 6 in resumed.boards.stuck  # edge 5: board 6
    out = _outputs(resumed, SAMPLES["gen2"][0])
    for b in (bench, resumed):
        with pytest.raises(DaqTimeout):
            b.daq.write_and_read(out, 1e-3, 4)
    burst = [[b.daq.write_and_read(out, 1e-3, 4) for _ in range(3)] for b in (bench, resumed)]
    assert np.array_equal(burst[0], burst[1])
    assert 3 not in resumed.bus.read_states()


def test_a_tripped_supply_stays_tripped_and_its_boards_dark():
    bench = _checkpoint_bench()
    _session(bench, 0, 2)
    bench.trip_psu()
    resumed = _checkpoint_bench()
    resumed.load_state(bench.save_state())
    assert resumed.psu.over_current(1) and not resumed.boards.powered
    assert resumed.bus.scan() == []
    for b in (bench, resumed):
        b.psu.clear_protection(1)
        b.psu.output(1, True)  # power back: every board restarts
    assert resumed.boards.powered and np.array_equal(resumed.boards.state, bench.boards.state)
    assert np.array_equal(resumed.boards.state, resumed.boards.initial_state)


def test_a_state_of_another_bench_is_refused_and_changes_nothing():
    gen1 = _checkpoint_bench("gen1").save_state()
    bench = _checkpoint_bench()
    _session(bench, 0, 2)
    before = _as_json(bench.save_state())
    with pytest.raises(ValueError, match="wiring 'gen1-sim'"):
        bench.load_state(gen1)
    bad = bench.save_state()
    bad["boards"]["prng"] = bad["boards"]["prng"][:-1]
    with pytest.raises(ValueError, match="prng has shape"):
        _checkpoint_bench().load_state(bad)
    bad = bench.save_state()
    bad["daq"]["ai_last_v"] = [0.0]
    fresh = _checkpoint_bench()
    untouched = _as_json(fresh.save_state())
    with pytest.raises(ValueError, match="daq ai_last_v"):
        fresh.load_state(bad)
    assert _as_json(fresh.save_state()) == untouched
    assert _as_json(bench.save_state()) == before


def test_a_batch_read_is_the_same_as_reading_row_by_row():
    rows = np.linspace(0.0, 0.45, 5)[:, None] * np.ones((5, 6))
    a, b = SimBench(seed=3), SimBench(seed=3)
    batch = a.daq.write_and_read_many(rows, 1e-3, 10)
    single = np.stack([b.daq.write_and_read(r, 1e-3, 10) for r in rows])
    np.testing.assert_array_equal(batch, single)
    assert batch.shape == (5, 2) and np.all(np.diff(batch[:, 0]) > 0)
