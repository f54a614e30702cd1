"""The experiment file's [bench] imperfections and a network file's [device]: each reaches the
simulated bench `hostctl train` opens, or is refused by name; none is silently dropped."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import tomli_w

from hostctl.errors import UserError
from hostctl.experiment import ExperimentFileError, builtin_experiment_text, loads_experiment
from hostctl.session import open_bench, wiring_for
from instruments.sim.edges import Mosfet
from instruments.sim.netfile import dumps_network_file
from instruments.sim.network import gen2_lattice


def regression(**bench) -> dict:
    d = tomllib.loads(builtin_experiment_text("regression_gen2"))
    d["bench"] = {**d.get("bench", {}), **bench}
    return d


def load(d: dict, base=None):
    return loads_experiment(tomli_w.dumps(d), "exp.toml", base)


def bench_of(exp):
    rig = open_bench(exp, wiring_for(exp, None), True)
    return rig.bench


def test_every_imperfection_is_off_by_default_and_each_reaches_the_bench():
    plain = bench_of(load(regression()))
    assert np.all(plain.device.update_bias == 0) and np.all(plain.boards._adc == 0)
    seen = {plain.imperfections}
    cases = {"twin_mismatch": 0.01, "edge_spread": 0.05, "update_bias": 1e-4, "adc_offset_uv": 100.0,
             "adc_noise_uv": 50.0}
    for name, value in cases.items():
        b = bench_of(load(regression(**{name: value})))
        seen.add(b.imperfections)
        if name == "twin_mismatch":
            assert not np.array_equal(b.device.vt_v[0], b.device.vt_v[1])
        elif name == "edge_spread":
            assert np.std(b.device.vt_v[0]) > 0 and np.std(b.device.s_a_per_v2[0]) > 0
        elif name == "update_bias":
            np.testing.assert_array_equal(b.device.update_bias, 1e-4)
        elif name == "adc_offset_uv":
            offsets = b.boards._adc[:, :4]
            assert 50 < offsets.std() < 200 and np.unique(offsets).size == offsets.size
        else:
            np.testing.assert_array_equal(b.boards._adc[:, 4], 50.0)
    assert len(seen) == 1 + len(cases)  # every imperfection changes the bench's fingerprint


def test_update_bias_per_edge_and_the_same_bench_from_the_same_seed():
    bias = [1e-4 * (j % 3) for j in range(32)]
    exp = load(regression(update_bias=bias, adc_offset_uv=100.0, seed=5))
    a, b = bench_of(exp), bench_of(exp)
    np.testing.assert_array_equal(a.device.update_bias, bias)
    assert a.imperfections == b.imperfections


@pytest.mark.parametrize("bench, field, says", [
    ({"twin_mismatch": 2.0}, "bench.twin_mismatch", "less than or equal to 1"),
    ({"edge_spread": -0.1}, "bench.edge_spread", "greater than or equal to 0"),
    ({"adc_noise_uv": 1e9}, "bench.adc_noise_uv", "1000000000.0"),
    ({"update_bias": [0.0] * 3}, "bench.update_bias", "32 values"),
    ({"update_bias": 9.0}, "bench.update_bias", "more than the state's span"),
    ({"gate_leak": 1e3}, "bench.gate_leak", "gate_leak_s"),
    ({"node_capacitance_f": 1.0}, "bench.node_capacitance_f", "less than or equal to 0.001"),
    ({"temperature": 300}, "bench.temperature", "temperature_c"),
    ({"daq_errors": "some"}, "bench.daq_errors", "some"),
])
def test_a_bad_bench_field_is_one_error_naming_file_field_and_value(bench, field, says):
    with pytest.raises(ExperimentFileError) as exc:
        load(regression(**bench))
    assert exc.value.field == field and str(exc.value).startswith(f"exp.toml: {field}: ") and says in str(exc.value)


def test_a_real_bench_refuses_a_simulated_imperfection():
    exp = load(regression(twin_mismatch=0.01))
    with pytest.raises(UserError, match=r"\[bench\] twin_mismatch .*simulated"):
        open_bench(exp, wiring_for(exp, None), False)


def _file_experiment(tmp_path, state=2.0, bias=1e-4, **network):
    net = gen2_lattice().with_roles(sources=["r0c0", "r0c2"], targets=["r1c1"], ground="r1c3")
    dev = Mosfet(net.n_edges, update_bias=bias, s_a_per_v2=1.1e-3, vt_v=0.55)
    (tmp_path / "net.toml").write_text(dumps_network_file(net, dev, None if state is None else np.full(32, state)))
    d = regression()
    d["network"] = {"file": "net.toml", **network}
    return d


def test_a_network_files_device_is_the_benches(tmp_path):
    exp = load(_file_experiment(tmp_path), tmp_path)
    np.testing.assert_array_equal(exp.initial_state, 2.0)
    b = bench_of(exp)
    np.testing.assert_array_equal(b.device.vt_v, 0.55)
    np.testing.assert_array_equal(b.device.s_a_per_v2, 1.1e-3)
    np.testing.assert_array_equal(b.device.update_bias, 1e-4)
    assert b.imperfections != bench_of(load(regression())).imperfections


@pytest.mark.parametrize("where, value, field", [
    ("network", {"initial_state": 2.5}, "network.initial_state"),
    ("bench", {"update_bias": 1e-4}, "bench.update_bias"),
    ("bench", {"twin_mismatch": 0.01}, "bench.twin_mismatch"),
    ("bench", {"edge_spread": 0.01}, "bench.edge_spread"),
])
def test_what_a_network_file_and_the_experiment_both_set_is_refused_by_name(tmp_path, where, value, field):
    d = _file_experiment(tmp_path)
    d[where].update(value)
    with pytest.raises(ExperimentFileError) as exc:
        load(d, tmp_path)
    assert exc.value.field == field and "net.toml" in str(exc.value)


def test_an_experiments_initial_state_with_a_file_device_without_one(tmp_path):
    exp = load(_file_experiment(tmp_path, state=None, initial_state=2.5), tmp_path)
    np.testing.assert_array_equal(exp.initial_state, 2.5)
    np.testing.assert_array_equal(bench_of(exp).device.vt_v, 0.55)


def test_the_run_file_keeps_the_imperfections_and_the_bias_acts_on_the_run(tmp_path):
    from hostctl import session
    from hostctl.runfile import load as load_run

    def run(name, **bench):
        d = regression(**bench)
        d["schedule"].update(epochs=2, steps_per_epoch=5, edges_every=0)
        exp = load(d)
        rig = open_bench(exp, wiring_for(exp, None), True)
        try:
            session.train(exp, rig, tmp_path / name)
        finally:
            rig.close()
        return exp, rig.bench.imperfections, load_run(tmp_path / name)

    exp, fp, biased = run("biased.h5", update_bias=2e-3, twin_mismatch=0.01, adc_noise_uv=20.0)
    again = loads_experiment(biased.metadata["experiment"], "run:/experiment")
    assert again.bench.as_dict() == exp.bench.as_dict()
    assert bench_of(again).imperfections == fp
    _, _, plain = run("plain.h5", twin_mismatch=0.01, adc_noise_uv=20.0)
    gates = [c for c in biased.edges.columns if c not in ("step", "epoch")]
    assert len(gates) == 32
    drift = (biased.edges[gates].iloc[-1] - plain.edges[gates].iloc[-1]).to_numpy()
    # ten updates of 2 mV of bias each (a gate held at its limit excepted)
    assert np.median(drift) == pytest.approx(10 * 2e-3, abs=5e-4)
    assert np.mean(np.abs(drift - 10 * 2e-3) < 2e-3) > 0.9
