"""Reports of run files (hostctl/report.py): figures and a summary, from synthetic runs
written with the real RunWriter."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from hostctl.report import error_parts, summary, write_report
from hostctl.runfile import RunWriter, load
from instruments.sim.netfile import dumps_network_file
from instruments.sim.network import gen2_lattice

PNG = b"\x89PNG\r\n\x1a\n"
LATTICE = gen2_lattice()
SOURCES = [LATTICE.nodes[i] for i in LATTICE.sources]
# a 5-node network given by its edges only (no positions: the report lays it out itself)
SMALL_NETWORK = """name = "small"
edges = [["a", "h"], ["b", "h"], ["h", "o1"], ["h", "o2"], ["o1", "g"], ["o2", "g"], ["a", "b"]]
[roles]
sources = ["a", "b"]
targets = ["o1", "o2"]
ground = "g"
"""


class StepClock:
    """Advances 1 ms at every reading."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1e-3
        return self.now


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_sensible_pngs(paths: list[Path], names: set[str]) -> None:
    assert {p.name for p in paths} == names
    for p in paths:
        width, height = png_size(p)
        assert 600 <= width <= 2000 and 400 <= height <= 2000, (p.name, width, height)
        assert 10_000 < p.stat().st_size < 2_000_000


def iris_like(path: Path) -> Path:
    """Two-source, two-target classification on the small network: 40 steps, 4 epochs with
    falling errors and rising accuracies, edge snapshots, a fault and a warning."""
    rng = np.random.default_rng(1)
    meta = {"experiment": 'name = "iris-like"\n', "network": SMALL_NETWORK,
            "task": json.dumps({"kind": "iris", "input": "iris.csv", "classes": ["setosa", "versicolor", "virginica"]}),
            "wiring": json.dumps({"edge_kind": "resistor"})}
    with RunWriter(path, n_sources=2, n_targets=2, n_edges=7, n_test=6, metadata=meta, provenance={},
                   task_arrays={"test_labels": np.arange(6) % 3}, clock=StepClock()) as w:
        for step in range(40):
            w.step(step, step // 10, step % 6, rng.random(2), rng.random(2), rng.random(2), rng.random(2),
                   0.1 / (1 + step), True)
            if step % 10 == 9:
                e = step // 10
                w.epoch(e, step, train_error=0.08 / (e + 1), train_accuracy=0.5 + 0.1 * e,
                        test_error=0.1 / (e + 1), test_accuracy=0.45 + 0.1 * e)
                w.evaluation(step, e, rng.random((6, 2)))
                w.edges(step, np.linspace(1e-4, 1e-3, 7) * (1 + 0.1 * e))
        w.event(20, "fault", "supply over-current")
        w.event(21, "warning", "slow settling")
    return path


def regression(path: Path, parts: np.ndarray) -> Path:
    """One analog input on the lattice's first source; the residual of evaluation k is
    ``parts[k] @ (P0, P1, P2)`` of the input scaled to [-1, 1]."""
    x = np.linspace(0.1, 0.5, 21)
    u = 2 * (x - 0.1) / 0.4 - 1
    inputs = np.tile([0.0, 0.2, 0.0, 0.45], (x.size, 1))
    inputs[:, 0] = x
    desired = np.repeat((0.2 + 0.1 * u**2)[:, None], 2, axis=1)
    basis = np.polynomial.legendre.legvander(u, 2)
    meta = {"experiment": 'name = "regression-gen2"\n', "network": dumps_network_file(LATTICE),
            "task": json.dumps({"kind": "regression", "input": SOURCES[0], "sources": SOURCES,
                                "x_min_v": 0.1, "x_max_v": 0.5})}
    with RunWriter(path, n_sources=4, n_targets=2, n_edges=32, n_test=x.size, metadata=meta, provenance={},
                   task_arrays={"test_inputs": inputs, "test_targets": desired}, clock=StepClock()) as w:
        w.edges(0, np.full(32, 2.5))
        for k, c in enumerate(parts):
            w.evaluation(100 * k, k, desired + (basis @ c)[:, None])
            w.epoch(k, 100 * k, test_error=float(np.mean((basis @ c) ** 2)))
        w.edges(100 * (len(parts) - 1), np.linspace(2.0, 3.0, 32))
    return path


def xor_like(path: Path, with_grid: bool = True) -> Path:
    """XOR on two of the lattice's sources, the last evaluation right on every test point;
    a grid of 11 x 11 inputs evaluated after the test points."""
    lo, hi = 0.0, 0.45
    pts = np.array([[lo, lo], [lo, hi], [hi, lo], [hi, hi]])
    labels = np.array([0, 1, 1, 0])

    def sources(xy):
        out = np.tile([0.0, 0.0, 0.0, 0.45], (len(xy), 1))
        out[:, [0, 1]] = xy
        return out

    g = np.linspace(lo, hi, 11)
    grid = np.array([[a, b] for a in g for b in g])

    def outputs(xy):  # D = O0 - O1 > 0 exactly when one input is high
        d = (xy[:, 0] - 0.225) * (0.225 - xy[:, 1])
        return np.c_[0.2 + d, 0.2 - d]

    meta = {"experiment": 'name = "xor-gen2"\n', "network": dumps_network_file(LATTICE),
            "task": json.dumps({"kind": "xor", "sources": SOURCES})}
    arrays = {"test_inputs": sources(pts), "test_labels": labels}
    evaluated = pts
    if with_grid:
        arrays["grid_inputs"] = sources(grid)
        evaluated = np.r_[pts, grid]
    with RunWriter(path, n_sources=4, n_targets=2, n_edges=32, n_test=len(evaluated), metadata=meta,
                   provenance={}, task_arrays=arrays, clock=StepClock()) as w:
        for e in range(3):
            w.evaluation(4 * e + 3, e, outputs(evaluated) * (e + 1) / 3)
            w.epoch(e, 4 * e + 3, train_error=0.01 / (e + 1), train_accuracy=1.0, test_accuracy=1.0)
            w.edges(4 * e + 3, np.linspace(2.0, 3.0, 32) + 0.1 * e)
    return path


# ------------------------------------------------------------------------------ figures


def test_a_classification_run_gets_error_and_network_figures_next_to_the_run_file(tmp_path):
    paths = write_report(iris_like(tmp_path / "iris.h5"))
    assert {p.parent for p in paths} == {tmp_path / "iris_report"}
    assert_sensible_pngs(paths, {"error.png", "network.png"})


def test_a_regression_run_gets_its_residual_parts_figure(tmp_path):
    parts = np.array([[0.05, -0.04, 0.03], [0.02, -0.02, 0.02], [0.0, -0.01, 0.01]])
    paths = write_report(regression(tmp_path / "reg.h5", parts), tmp_path / "out")
    assert_sensible_pngs(paths, {"error.png", "network.png", "regression_parts.png"})


def test_a_two_input_run_gets_its_decision_figure(tmp_path):
    paths = write_report(load(xor_like(tmp_path / "xor.h5")), tmp_path / "out")
    assert_sensible_pngs(paths, {"error.png", "network.png", "decision.png"})


def test_the_decision_figure_needs_no_grid(tmp_path):
    paths = write_report(xor_like(tmp_path / "xor.h5", with_grid=False))
    assert "decision.png" in {p.name for p in paths}


def test_a_run_without_a_stored_network_gets_no_network_figure(tmp_path):
    with RunWriter(tmp_path / "bare.h5", n_sources=1, n_targets=1, n_edges=1, metadata={}, provenance={}):
        pass
    assert [p.name for p in write_report(tmp_path / "bare.h5")] == ["error.png"]


# ------------------------------------------------------------------------------ summary


def test_the_summary_names_the_run_and_its_final_figures(tmp_path):
    text = summary(load(iris_like(tmp_path / "iris.h5")))
    lines = text.splitlines()
    assert lines[0] == "experiment: iris-like (iris.h5)"
    assert lines[1] == "task: iris (input: iris.csv)"
    assert lines[2] == "status: complete"
    assert "steps: 40 recorded, last step 39; epochs: 4" in lines[3]
    assert lines[4] == ("final (epoch 3, step 39): train error 0.02 V^2, accuracy 80.0 %; "
                        "test error 0.025 V^2, accuracy 75.0 %")
    assert "faults: 1; warnings: 1; pauses: 0" in text
    assert "wall time:" in text


def test_the_summary_of_a_killed_run_counts_time_from_its_records(tmp_path):
    run = load(iris_like(tmp_path / "iris.h5"))
    run.status, run.end_time = "killed", None
    text = summary(run)
    assert "status: killed" in text
    assert f"wall time: {run.events.t_s.max():.1f} s" in text


# ------------------------------------------------------------------------------ error parts


def test_error_parts_recover_known_legendre_coefficients_exactly(tmp_path):
    parts = np.array([[0.05, -0.04, 0.03], [0.02, -0.02, 0.02], [0.0, -0.01, 0.01], [0.0, 0.0, 0.0]])
    got = error_parts(load(regression(tmp_path / "reg.h5", parts)))
    assert got.step.tolist() == [0, 100, 200, 300]
    np.testing.assert_allclose(got[["mean", "slope", "curvature"]].to_numpy(), parts, rtol=0, atol=1e-14)


def test_error_parts_need_test_targets(tmp_path):
    with pytest.raises(ValueError, match="no test targets"):
        error_parts(load(xor_like(tmp_path / "xor.h5")))
