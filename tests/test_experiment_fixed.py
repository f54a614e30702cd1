"""Fixed (non-learning) edges in network and experiment files, and the built-in alternating-task
experiment of arXiv:2505.22887 with its fixed 500 Ohm edge: the cycle span grows as tau."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import tomli_w

from hostctl import session
from hostctl import tasks as T
from hostctl.errors import UserError
from hostctl.experiment import BUILTIN_EXPERIMENTS, ExperimentFileError, builtin_experiment_text, loads_experiment
from hostctl.report import cycle_spans, span_slope, write_report
from hostctl.runfile import load as load_run
from instruments.sim.edges import MixedEdges
from instruments.sim.netfile import NetworkFileError, dumps_network_file, loads_network_file

NET = """
name = "three"
nodes = ["a", "b", "c", "d"]
edges = [["a", "d"], ["b", "d"], ["c", "d"]]
edge_names = ["r", "m1", "m2"]
{fixed}
[roles]
sources = ["a", "b", "c"]
targets = ["d"]
"""


def load(d: dict, base=None):
    return loads_experiment(tomli_w.dumps(d), "exp.toml", base)


def alternating(**task) -> dict:
    d = tomllib.loads(builtin_experiment_text("alternating_gen2"))
    d["task"].update(task)
    return d


def run(exp, path):
    rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
    try:
        session.train(exp, rig, path)
        return rig.bench
    finally:
        rig.close()


def test_a_network_files_fixed_edges_are_read_and_written():
    nf = loads_network_file(NET.format(fixed='fixed_edges = ["m2", "r"]'), "net.toml")
    assert nf.fixed.tolist() == [0, 2] and nf.learning.tolist() == [False, True, False]
    again = loads_network_file(dumps_network_file(nf.network, fixed=nf.fixed), "again.toml")
    assert again.fixed.tolist() == [0, 2]
    assert loads_network_file(NET.format(fixed=""), "net.toml").fixed.size == 0


@pytest.mark.parametrize("fixed, field, says", [
    ('fixed_edges = ["x"]', "fixed_edges[0]", "no edge 'x'"),
    ('fixed_edges = ["r", "r"]', "fixed_edges[1]", "named twice"),
    ('fixed_edges = ["r", "m1", "m2"]', "fixed_edges", "nothing would learn"),
])
def test_a_bad_fixed_edge_is_named(fixed, field, says):
    with pytest.raises(NetworkFileError) as exc:
        loads_network_file(NET.format(fixed=fixed), "net.toml")
    assert exc.value.field == field and says in str(exc.value)


def test_alternating_gen2_is_built_in_with_its_fixed_500_ohm_edge():
    assert "alternating_gen2" in BUILTIN_EXPERIMENTS
    exp = load(alternating())
    assert exp.network.nodes == ("High", "Low", "Input", "Output") and exp.network.n_edges == 3
    assert exp.fixed_edges.tolist() == [0] and exp.edge_kind == "mosfet"
    assert isinstance(exp.device, MixedEdges) and exp.device_state[0] == pytest.approx(1 / 500)
    assert exp.device.conductance(exp.device_state)[0] == pytest.approx(1 / 500)


def test_the_period_sweep_switches_patterns_every_tau():
    task = load(alternating(period_steps=[1, 3], cycles_per_period=2)).task
    assert task.blocks() == [(0, 4, 1), (4, 16, 3)]
    assert [task.sample_at(0, s) for s in range(17)] == [0, 1, 0, 1] + [0] * 3 + [1] * 3 + [0] * 3 + [1] * 3 + [0]
    assert isinstance(task, T.AlternatingTask)
    with pytest.raises(ExperimentFileError, match="task.period_steps"):
        load(alternating(period_steps=[]))


def test_the_fixed_edge_keeps_its_state_and_the_span_grows_as_tau(tmp_path):
    d = alternating(period_steps=[1, 2, 4, 8], cycles_per_period=1)
    d["schedule"].update(epochs=8, steps_per_epoch=4)  # 32 steps: the sweep is 30
    exp = load(d)
    bench = run(exp, tmp_path / "alt.h5")
    assert bench.device_state()[0] == 1 / 500  # the 500 Ohm resistor, exactly
    r = load_run(tmp_path / "alt.h5")
    assert r.edges["edge_0"].nunique() == 1  # its board never updates
    assert r.edges["edge_1"].nunique() > 5  # the MOSFETs learn
    spans = cycle_spans(r)
    assert spans.tau_steps.tolist() == [1, 2, 4, 8] and (spans.span_v > 0).all()
    assert 0.9 < span_slope(spans) < 1.1  # span proportional to tau, as published
    assert (spans.tau_s > 0).all()
    assert (tmp_path / "rep" / "cycle_span.png") in write_report(r, tmp_path / "rep")


def test_fixed_edges_of_a_builtin_lattice_keep_their_gates(tmp_path):
    d = tomllib.loads(builtin_experiment_text("regression_gen2"))
    d["network"]["fixed_edges"] = ["e3", "e7"]
    d["schedule"].update(epochs=4, steps_per_epoch=5, edges_every=1)
    exp = load(d)
    assert exp.fixed_edges.tolist() == [3, 7]
    bench = run(exp, tmp_path / "r.h5")
    edges = load_run(tmp_path / "r.h5").edges
    assert edges["edge_3"].nunique() == 1 and edges["edge_7"].nunique() == 1
    assert edges["edge_0"].nunique() > 1
    start = session.open_bench(exp, session.wiring_for(exp, None), True).bench.device_state()
    np.testing.assert_array_equal(bench.device_state()[[3, 7]], start[[3, 7]])
    with pytest.raises(ExperimentFileError, match="network.fixed_edges\\[0\\]: no edge 'x'"):
        d["network"]["fixed_edges"] = ["x"]
        load(d)


def test_fixed_edges_are_refused_on_a_real_bench():
    exp = load(alternating())
    with pytest.raises(UserError, match="fixed edges \\(r500\\) run on the simulated bench only"):
        session.open_bench(exp, session.wiring_for(exp, None), False)


def test_a_network_file_and_an_experiment_both_fixing_edges_is_refused(tmp_path):
    net = NET.format(fixed='fixed_edges = ["r"]') + '\n[device]\nkind = "mosfet"\n'
    (tmp_path / "net.toml").write_text(net)
    d = alternating()
    d["network"] = {"file": "net.toml", "fixed_edges": ["r"]}
    with pytest.raises(ExperimentFileError) as exc:
        load(d, tmp_path)
    assert exc.value.field == "network.fixed_edges" and "net.toml" in str(exc.value)


def test_learning_edges_of_two_kinds_are_refused(tmp_path):
    text = builtin_experiment_text("alternating_gen2")
    net = (tmp_path / "net.toml")
    from hostctl.experiment_network import ALTERNATING_NETWORK
    net.write_text(ALTERNATING_NETWORK.read_text().replace('fixed_edges = ["r500"]\n', ""))
    d = tomllib.loads(text)
    d["network"] = {"file": "net.toml"}
    with pytest.raises(ExperimentFileError, match="network.file: its learning edges are of several kinds"):
        load(d, tmp_path)


# -- calibrating a network with a fixed edge ---------------------------------------------------


def test_edge_calibration_measures_a_fixed_edge_as_a_resistor_not_a_mosfet(tmp_path, capsys):
    """Found: the calibration fitted a MOSFET law to the fixed 500 Ohm edge (S 1.8e-9 A/V^2,
    V_T -1e6 V) and put it in the twins' mismatch."""
    from calibration import store
    from calibration.edges import EdgeCalibration
    from hostctl.cli import main

    where = tmp_path / "store"
    assert main(["calibrate", "edges", "--experiment", "alternating_gen2", "--store", str(where), "--quiet"]) == 0
    out = capsys.readouterr().out
    cal = EdgeCalibration.from_dict(store.load(where).edges)
    assert cal.fixed_r_ohm is not None
    assert cal.fixed_r_ohm[:, 0] == pytest.approx([500.0, 500.0], rel=1e-4)
    assert np.isnan(cal.fixed_r_ohm[:, 1:]).all()
    assert np.isnan(cal.s_a_per_v2[:, 0]).all() and np.isnan(cal.vt_v[:, 0]).all()
    assert cal.s_a_per_v2[:, 1:] == pytest.approx(8.5e-4, rel=1e-3)
    assert cal.vt_v[:, 1:] == pytest.approx(0.66, abs=1e-3)
    assert cal.mismatch["vt_max_abs_v"] < 1e-3  # the fixed edge is not in the twins' mismatch
    assert "fixed edge 0: R 500" in out and "V_T -" not in out
    assert "3 edges (2 mosfet, 1 fixed)" in out
    back = EdgeCalibration.from_dict(cal.to_dict())
    assert np.array_equal(back.fixed_r_ohm, cal.fixed_r_ohm, equal_nan=True)
    old = cal.to_dict()
    del old["fixed_r_ohm"]  # a calibration stored before fixed edges were measured
    assert EdgeCalibration.from_dict(old).fixed_r_ohm is None


def test_the_run_file_keeps_the_network_files_device_state_and_fixed_edges(tmp_path):
    """Found: the run file's network had the bare topology: no mixed device, no 500 Ohm, no
    fixed edge, so a run could not be reproduced from its file."""
    from hostctl.cli import main

    where = tmp_path / "store"
    out = tmp_path / "run.h5"
    text = builtin_experiment_text("alternating_gen2").replace("period_steps = [", "period_steps = [1, 2] # [")
    exp_path = tmp_path / "alt.toml"
    exp_path.write_text(text.replace('builtin = "alternating"', f'file = "{_packaged_network()}"'))
    assert main(["train", str(exp_path), "--out", str(out), "--quiet", "--no-calibration"]) == 0
    nf = loads_network_file(load_run(out).metadata["network"], "run")
    assert isinstance(nf.device, MixedEdges) and nf.fixed.tolist() == [0]
    assert nf.state[0] == pytest.approx(1 / 500.0) and nf.device.update_bias[1:].tolist() == [2e-5, -1e-5]
    # with a calibration, the fixed resistor is the one measured
    assert main(["calibrate", "edges", "--experiment", str(exp_path), "--store", str(where), "--quiet"]) == 0
    out2 = tmp_path / "run2.h5"
    assert main(["train", str(exp_path), "--out", str(out2), "--quiet", "--calibration-store", str(where)]) == 0
    from calibration import store
    from calibration.edges import EdgeCalibration

    measured = EdgeCalibration.from_dict(store.load(where).edges).fixed_r_ohm[:, 0]
    dev = loads_network_file(load_run(out2).metadata["network"], "run").device
    resistor, idx = next((d, i) for d, i in dev.parts if d.kind == "resistor")
    assert idx.tolist() == [0]
    assert (resistor.gain[:, 0] * nf.state[0]) == pytest.approx(1 / measured, rel=1e-12)


def _packaged_network():
    from hostctl.experiment_network import ALTERNATING_NETWORK

    return ALTERNATING_NETWORK
