"""The simulated bench's imperfections of time and temperature from the experiment file's
[bench]: the gates' leak over the bench's own clock (a run, a pause, an evaluation, a resume),
the devices at a temperature, and the node capacitance the network settles through."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from hostctl import session
from hostctl.errors import UserError
from hostctl.experiment import ExperimentFileError, builtin_experiment_text, loads_experiment
from hostctl.runfile import encode_state, load as load_run
from hostctl.runner import Runner
from instruments.sim.bench import SimBench
from instruments.sim.retention import GateLeak


def experiment(name: str = "regression_gen2", epochs: int = 2, steps: int = 5, **bench):
    d = tomllib.loads(builtin_experiment_text(name))
    d["bench"] = {**d.get("bench", {}), **bench}
    d["schedule"].update(epochs=epochs, steps_per_epoch=steps, edges_every=0)
    return loads_experiment(tomli_w.dumps(d), "exp.toml")


def bench_of(exp) -> SimBench:
    return session.open_bench(exp, session.wiring_for(exp, None), True).bench


def train(exp, path: Path, stop_at: int | None = None):
    rig = session.open_bench(exp, session.wiring_for(exp, None), True)
    learn = Runner.learn

    def hooked(self, a):
        learn(self, a)
        if stop_at is not None and a.step == stop_at - 1:
            self.request_stop()

    Runner.learn = hooked
    try:
        return session.train(exp, rig, path), rig.bench
    finally:
        Runner.learn = learn
        rig.close()


# -- gate leak ----------------------------------------------------------------------------------


def test_a_held_bench_leaks_its_gates_by_the_exponential_of_its_lab_time():
    tau, rest = 40.0, 1.3
    bench = SimBench(seed=3, gate_leak=GateLeak(tau, rest), rule="none")
    plain = SimBench(seed=3, rule="none")
    g0, t0 = bench.device_state(), bench.time_s
    np.testing.assert_array_equal(g0, plain.device_state())
    for hold_s in (0.25, 7.0, 1e-3, 13.5):  # several leaks in a row are one over their sum
        bench.hold(hold_s)
        bench.node_voltages()
    t = bench.time_s - t0
    expected = rest + (g0 - rest) * np.exp(-t / tau)
    np.testing.assert_allclose(bench.device_state(), expected, rtol=1e-14, atol=0)
    # what the boards hold (and read back over the bus) is the gate in whole microvolts
    edges = bench.boards.edges
    np.testing.assert_array_equal(bench.boards.state, np.floor(expected[edges] * 1e6 + 0.5))
    states = bench.bus.read_states(list(bench.wiring.boards))
    assert states == {a: round(expected[j] * 1e6) for a, j in bench.wiring.boards.items()}
    # the network the DAQ reads is the leaked one
    assert not np.array_equal(bench.node_voltages(), plain.node_voltages())


def test_the_leak_stops_at_the_lowest_gate_the_boards_drive_and_digipots_have_none():
    bench = SimBench(seed=1, gate_leak=GateLeak(1.0), rule="none")
    bench.hold(100.0)
    np.testing.assert_array_equal(bench.device_state(), bench.device.state_min)
    from instruments.wiring import default_wiring

    with pytest.raises(ValueError, match="digipot boards have no gate"):
        SimBench(default_wiring("gen1"), gate_leak=GateLeak(1.0))


def test_a_run_with_a_short_leak_ends_with_its_gates_nearer_the_rest_voltage(tmp_path):
    rest = 1.2
    leaky, bench = train(experiment(gate_leak_s=0.05, gate_rest_v=rest), tmp_path / "leak.h5")
    plain, _ = train(experiment(), tmp_path / "plain.h5")
    assert leaky.status == plain.status == "complete"
    a, b = load_run(tmp_path / "leak.h5"), load_run(tmp_path / "plain.h5")
    gates = [c for c in a.edges.columns if c not in ("step", "epoch")]
    near_leaky = np.abs(a.edges[gates].iloc[-1].to_numpy() - rest)
    near_plain = np.abs(b.edges[gates].iloc[-1].to_numpy() - rest)
    assert np.all(near_leaky <= near_plain) and near_leaky.mean() < 0.1 * near_plain.mean()
    # the lab clock the leak ran on is the one the run file gives
    assert a.epochs["lab_time_s"].iloc[-1] == pytest.approx(bench.time_s, rel=0.05)


def test_a_slow_leak_acts_during_evaluation_and_a_pause(tmp_path):
    exp = experiment(gate_leak_s=3600.0, gate_rest_v=0.0)
    bench = bench_of(exp)
    before = bench.device_state()
    bench.daq.write_and_read_many(np.zeros((50, bench.layout.n_ao)), 1e-3, 4)  # an evaluation's reads
    t = bench.time_s
    np.testing.assert_allclose(bench.device_state(), before * np.exp(-t / 3600.0), rtol=1e-14)
    bench.hold(1800.0)  # half an hour on the shelf
    expected = np.maximum(before * np.exp(-(t + 1800.0) / 3600.0), bench.device.state_min)
    np.testing.assert_allclose(bench.device_state(), expected, rtol=1e-14)
    assert np.any(expected == bench.device.state_min)  # some reached the lowest gate the boards drive


@pytest.mark.parametrize("k", [1, 6])
def test_a_leaking_run_stopped_at_step_k_resumes_to_the_uninterrupted_end(tmp_path, k):
    exp = experiment(gate_leak_s=0.2, gate_rest_v=1.0)
    whole, _ = train(exp, tmp_path / "whole.h5")
    cut, _ = train(exp, tmp_path / "cut.h5", stop_at=k)
    assert cut.status == "interrupted"
    _, resumed = session.resume(tmp_path / "cut.h5", None)
    assert resumed.status == whole.status == "complete"
    a, b = load_run(tmp_path / "cut.h5"), load_run(tmp_path / "whole.h5")
    assert a.edges.equals(b.edges) and a.epochs.equals(b.epochs)
    assert encode_state(a.last_checkpoint) == encode_state(b.last_checkpoint)


def test_the_gate_leak_is_validated_recorded_and_refused_by_a_real_rig():
    exp = experiment(gate_leak_s=3600.0, gate_rest_v=1.0)
    assert exp.bench.as_dict()["gate_leak_s"] == 3600.0 and exp.bench.as_dict()["gate_rest_v"] == 1.0
    fingerprints = {bench_of(experiment()).imperfections, bench_of(exp).imperfections,
                    bench_of(experiment(gate_leak_s=3600.0, gate_rest_v=2.0)).imperfections}
    assert len(fingerprints) == 3
    with pytest.raises(UserError, match=r"\[bench\] gate_leak_s .*simulated"):
        session.open_bench(exp, session.wiring_for(exp, None), False)


@pytest.mark.parametrize("name, bench, field, says", [
    ("regression_gen2", {"gate_leak_s": 0.0}, "bench.gate_leak_s", "greater than or equal to 0.001"),
    ("regression_gen2", {"gate_leak_s": 1e12}, "bench.gate_leak_s", "less than or equal to 1000000000"),
    ("regression_gen2", {"gate_leak_s": 10.0, "gate_rest_v": -1.0}, "bench.gate_rest_v", "greater than or equal"),
    ("regression_gen2", {"gate_rest_v": 1.0}, "bench.gate_rest_v", "needs gate_leak_s"),
    ("regression_gen2", {"gate_leak": 1e3}, "bench.gate_leak", "gate_leak_s"),
    ("regression_gen2", {"gate_leak_v_per_s": 1e-3}, "bench.gate_leak_v_per_s", "exponential"),
    ("iris_gen1", {"gate_leak_s": 10.0}, "bench.gate_leak_s", "digipot edges have no gate"),
])
def test_a_bad_gate_leak_is_one_error_naming_the_field_and_value(name, bench, field, says):
    with pytest.raises(ExperimentFileError) as exc:
        experiment(name, **bench)
    assert exc.value.field == field and str(exc.value).startswith(f"exp.toml: {field}: ") and says in str(exc.value)


# -- temperature --------------------------------------------------------------------------------


def test_the_devices_at_a_temperature_follow_the_formulas():
    from instruments.sim.edges import Digipot, MixedEdges, Mosfet, Resistor
    from instruments.sim.temperature import at_temperature

    mos = Mosfet(4, s_a_per_v2=8.5e-4, vt_v=np.array([0.62, 0.66, 0.68, 0.7]), update_bias=1e-4)
    hot = at_temperature(mos, 77.0)
    np.testing.assert_allclose(hot.vt_v, mos.vt_v - 0.1, rtol=0, atol=1e-15)  # -2 mV/K over 50 K
    np.testing.assert_allclose(hot.s_a_per_v2, 8.5e-4 * (350.15 / 300.15) ** -1.5, rtol=1e-15)
    assert hot.subthreshold_v == pytest.approx(0.1 * 350.15 / 300.15, rel=1e-15)
    np.testing.assert_array_equal(hot.update_bias, mos.update_bias)
    assert (hot.state_min, hot.state_max) == (mos.state_min, mos.state_max)
    cold = at_temperature(Digipot(3), -13.0)
    np.testing.assert_allclose(cold.gain, 1.0 / (1.0 + 300e-6 * -40.0), rtol=1e-15)  # +300 ppm/K of R
    mixed = MixedEdges(3, parts=((Resistor(1, state_min=1e-3), [0]), (Mosfet(2), [1, 2])))
    warm = at_temperature(mixed, 37.0)
    np.testing.assert_allclose(warm.parts[1][0].vt_v, 0.7 - 0.02, atol=1e-15)
    np.testing.assert_array_equal(warm.parts[0][0].gain, 1.0)  # a fixed resistor keeps its value
    assert at_temperature(mos, 27.0) is mos
    with pytest.raises(ValueError, match="outside -40..125 C"):
        at_temperature(mos, 130.0)


@pytest.mark.parametrize("name", ["regression_gen2", "iris_gen1"])
def test_a_bench_at_27_c_is_the_bench_with_no_temperature_to_the_last_bit(tmp_path, name):
    nominal, plain = experiment(name, temperature_c=27.0), experiment(name)
    assert nominal.bench.as_dict() == plain.bench.as_dict()
    assert bench_of(nominal).imperfections == bench_of(plain).imperfections
    train(nominal, tmp_path / "nominal.h5")
    train(plain, tmp_path / "plain.h5")
    a, b = load_run(tmp_path / "nominal.h5"), load_run(tmp_path / "plain.h5")
    assert a.edges.equals(b.edges) and a.epochs.equals(b.epochs)
    np.testing.assert_array_equal(a.evaluation_outputs, b.evaluation_outputs)


def test_a_hotter_mosfet_conducts_more_below_its_zero_tc_overdrive_and_less_above():
    nominal, hot = bench_of(experiment()), bench_of(experiment(temperature_c=77.0))
    assert hot.imperfections != nominal.imperfections
    np.testing.assert_array_equal(hot.device.vt_v, nominal.device.vt_v - 0.1)
    for gate_v, hotter in ((nominal.device.vt_v[0, 0] + 0.15, "more"), (4.0, "less")):
        for b in (nominal, hot):
            b.stick_edge(0, gate_v)
        i_nom, i_hot = nominal.edge_current(0, 0.05), hot.edge_current(0, 0.05)
        assert (i_hot > i_nom) if hotter == "more" else (i_hot < i_nom)
    # the network's gates are overdriven well above 0.4 V: hotter, it draws less
    nominal.unstick_edge(0), hot.unstick_edge(0)
    assert hot.network_current() < nominal.network_current()
    assert not np.array_equal(hot.node_voltages(), nominal.node_voltages())


def test_a_hotter_digipot_network_draws_less_current_by_its_tempco_its_divider_unchanged():
    nominal, hot = bench_of(experiment("iris_gen1")), bench_of(experiment("iris_gen1", temperature_c=77.0))
    assert hot.network_current() == pytest.approx(nominal.network_current() / (1 + 300e-6 * 50), rel=1e-12)
    np.testing.assert_allclose(hot.node_voltages(), nominal.node_voltages(), rtol=1e-12, atol=1e-15)


def test_the_temperature_is_validated_recorded_and_refused_by_a_real_rig():
    exp = experiment(temperature_c=35.0)
    assert exp.bench.as_dict()["temperature_c"] == 35.0 and experiment().bench.as_dict()["temperature_c"] is None
    with pytest.raises(UserError, match=r"\[bench\] temperature_c .*simulated"):
        session.open_bench(exp, session.wiring_for(exp, None), False)
    for bench, field, says in (({"temperature_c": 200.0}, "bench.temperature_c", "less than or equal to 125"),
                               ({"temperature_c": -60}, "bench.temperature_c", "greater than or equal to -40"),
                               ({"temperature": 35.0}, "bench.temperature", "temperature_c"),
                               ({"temperature_k": 300.0}, "bench.temperature_k", "in C as temperature_c"),
                               ({"temperature_drift_c_per_h": 1.0}, "bench.temperature_drift_c_per_h", "remove it")):
        with pytest.raises(ExperimentFileError) as exc:
            experiment(**bench)
        assert exc.value.field == field and says in str(exc.value)


# -- node capacitance ---------------------------------------------------------------------------


def _settled_bench(c_node_f):
    """The built-in Gen-2 bench, ideal DAQ, settled at its safe outputs (an hour's hold)."""
    from instruments.sim.bench import DaqErrors

    bench = SimBench(seed=4, errors=DaqErrors.ideal(), node_capacitance_f=c_node_f)
    bench.hold(3600.0)
    bench.node_voltages(), bench.node_voltages("clamped")
    return bench


def _sources(bench, volts):
    values = bench.layout.safe_v.copy()
    values[bench.layout.source_ao] = volts
    return values


def test_a_network_too_slow_for_the_settle_time_is_read_on_its_way_by_the_transients_amount():
    from instruments.sim.simdaq import _AI_LSB
    from instruments.sim.transient import simulate

    c, settle_s = 2e-6, 1e-3
    bench = _settled_bench(c)
    tau = bench._settling.slowest_tau_s(0, bench.device_state(), bench.node_voltages())
    assert tau > settle_s / 5  # it cannot settle to a microvolt in the settle time
    v0 = bench.node_voltages()
    values = _sources(bench, [0.3, 0.1, 0.4, 0.2])
    read = bench.daq.write_and_read(values, settle_s, 1)
    net = bench.network
    fixed = np.r_[net.sources, [net.ground]].astype(np.int64)
    fine = simulate(net, bench.device, bench.device_state(), fixed, bench._v_fixed_free, settle_s, settle_s / 20000,
                    c_node_f=c, v0=v0).v[-1]
    dc = bench._v_free  # where the network is going
    nodes = bench.daq._ai_node
    lsb = bench.daq._ai_par[:, _AI_LSB]  # each input's code (V)
    assert np.all(np.abs(dc[nodes] - fine[nodes]) > 100 * lsb)  # far from settled...
    assert np.all(np.abs(read - fine[nodes]) <= lsb / 2 + 0.01 * np.abs(dc[nodes] - fine[nodes]))  # ...read as it is
    # held long enough, the same bench reads its DC solution
    bench.hold(1.0)
    np.testing.assert_array_equal(bench.node_voltages(), dc)


def test_a_small_node_capacitance_reads_the_dc_solution_to_the_last_bit():
    from instruments.sim.bench import DaqErrors

    small = SimBench(seed=4, errors=DaqErrors.ideal(), node_capacitance_f=1e-9)
    plain = SimBench(seed=4, errors=DaqErrors.ideal())
    for volts in ([0.3, 0.1, 0.4, 0.2], [0.05, 0.45, 0.2, 0.0]):
        values = _sources(small, volts)
        np.testing.assert_array_equal(small.daq.write_and_read(values, 1e-3, 2), plain.daq.write_and_read(values, 1e-3, 2))
        values[small.layout.clamp_ao] = 0.2
        small.daq.write_and_pulse(values, 1e-3, 1e-4), plain.daq.write_and_pulse(values, 1e-3, 1e-4)
        np.testing.assert_array_equal(small.boards.state, plain.boards.state)
        np.testing.assert_array_equal(small.node_voltages("clamped"), plain.node_voltages("clamped"))


def test_a_run_with_a_small_node_capacitance_is_the_run_without_and_a_large_one_differs(tmp_path):
    train(experiment(steps=3), tmp_path / "plain.h5")
    train(experiment(steps=3, node_capacitance_f=1e-9), tmp_path / "small.h5")
    train(experiment(steps=3, node_capacitance_f=1e-6), tmp_path / "large.h5")
    plain, small, large = (load_run(tmp_path / f"{n}.h5") for n in ("plain", "small", "large"))
    assert small.edges.equals(plain.edges) and small.epochs.equals(plain.epochs)
    assert not np.allclose(large.evaluation_outputs, plain.evaluation_outputs, rtol=0, atol=1e-4)


@pytest.mark.parametrize("k", [1, 4])
def test_a_settling_run_stopped_at_step_k_resumes_to_the_uninterrupted_end(tmp_path, k):
    exp = experiment(epochs=2, steps=3, node_capacitance_f=1e-6)
    whole, _ = train(exp, tmp_path / "whole.h5")
    cut, _ = train(exp, tmp_path / "cut.h5", stop_at=k)
    assert cut.status == "interrupted"
    _, resumed = session.resume(tmp_path / "cut.h5", None)
    assert resumed.status == whole.status == "complete"
    a, b = load_run(tmp_path / "cut.h5"), load_run(tmp_path / "whole.h5")
    assert a.edges.equals(b.edges) and a.epochs.equals(b.epochs)
    assert encode_state(a.last_checkpoint) == encode_state(b.last_checkpoint)


def test_the_node_capacitance_is_validated_recorded_and_refused_by_a_real_rig():
    exp = experiment(node_capacitance_f=1e-9)
    assert exp.bench.as_dict()["node_capacitance_f"] == 1e-9
    assert bench_of(exp).imperfections not in {bench_of(experiment()).imperfections,
                                               bench_of(experiment(node_capacitance_f=2e-9)).imperfections}
    with pytest.raises(UserError, match=r"\[bench\] node_capacitance_f .*simulated"):
        session.open_bench(exp, session.wiring_for(exp, None), False)
    for bench, field, says in (({"node_capacitance_f": 0.0}, "bench.node_capacitance_f", "(got 0.0)"),
                               ({"node_capacitance_f": "1 nF"}, "bench.node_capacitance_f", "1 nF"),
                               ({"node_capacitance": 1e-9}, "bench.node_capacitance", "node_capacitance_f")):
        with pytest.raises(ExperimentFileError) as exc:
            experiment(**bench)
        assert exc.value.field == field and says in str(exc.value)
