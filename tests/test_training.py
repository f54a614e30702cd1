"""Training runs on the simulated bench, end to end: what the lab's experiments must show,
and that runs are reproducible, interruptible, resumable and survive a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import tomli_w

from hostctl import session
from hostctl.cli import main
from hostctl.experiment import builtin_experiment_text, loads_experiment
from hostctl.report import error_parts
from hostctl.runfile import load


def experiment(name: str, **changes):
    """A built-in experiment with some fields changed: ``section__field=value`` or ``field=value``."""
    d = tomllib.loads(builtin_experiment_text(name))
    for key, value in changes.items():
        if "__" in key:
            section, field = key.split("__")
            d[section][field] = value
        else:
            d[key] = value
    return loads_experiment(tomli_w.dumps(d), f"<{name}>")


def train(exp, path):
    rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
    try:
        return session.train(exp, rig, path)
    finally:
        rig.close()


@pytest.mark.parametrize("name", ["iris_gen1", "iris_gen2"])
def test_iris_lab_protocol_reaches_90_percent_over_five_splits(tmp_path, name):
    accuracies = []
    for seed in range(5):
        outcome = train(experiment(name, seed=seed), tmp_path / f"{name}-{seed}.h5")
        assert outcome.status == "complete"
        accuracies.append(outcome.test_accuracy)
        run = load(tmp_path / f"{name}-{seed}.h5")
        assert run.epochs["test_accuracy"].iloc[-1] == pytest.approx(outcome.test_accuracy)
        assert len(run.steps) == outcome.steps
    assert np.mean(accuracies) >= 0.90, accuracies


def test_regression_learns_the_mean_then_the_slope_then_the_curvature(tmp_path):
    path = tmp_path / "regression.h5"
    train(experiment("regression_gen2"), path)
    parts = error_parts(load(path))
    first_below = {}
    for part in ("mean", "slope", "curvature"):
        size = parts[part].abs().to_numpy()
        below = np.flatnonzero(size < 0.2 * size[0])
        assert below.size, f"the {part} part never fell below 20% of its start"
        first_below[part] = int(parts["step"].iloc[below[0]])
    assert first_below["mean"] < first_below["slope"] < first_below["curvature"], first_below


def test_xor_is_learned_on_the_mosfet_lattice(tmp_path):
    path = tmp_path / "xor.h5"
    outcome = train(experiment("xor_gen2"), path)
    run = load(path)
    labels = run.task["test_labels"]
    o = run.evaluation_outputs[-1][: labels.size]  # the test points, then the report's grid
    difference = o[:, 0] - o[:, 1]
    assert outcome.test_accuracy == 1.0
    assert np.all(np.where(labels == 1, difference, -difference) > 1e-3), difference


def short_iris(seed=0):
    return experiment("iris_gen2", seed=seed, schedule__epochs=6)


def test_a_fixed_seed_gives_the_same_run(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    train(short_iris(), a)
    train(short_iris(), b)
    ra, rb = load(a), load(b)
    cols = [c for c in ra.steps.columns if c != "t_s"]
    assert ra.steps[cols].equals(rb.steps[cols])
    assert ra.edges.equals(rb.edges)


def test_an_interrupted_then_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    whole, cut = tmp_path / "whole.h5", tmp_path / "cut.h5"
    train(short_iris(), whole)
    exp = short_iris()
    rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)

    def interrupt(epoch, step, metrics):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the runner finishes its step

    try:
        outcome = session.train(exp, rig, cut, interrupt)
    finally:
        rig.close()
    assert outcome.status == "interrupted"
    assert load(cut).status == "interrupted"
    _, resumed = session.resume(cut, None)
    assert resumed.status == "complete"
    rw, rc = load(whole), load(cut)
    assert rc.status == "complete"
    np.testing.assert_array_equal(rc.edges.iloc[-1].to_numpy(), rw.edges.iloc[-1].to_numpy())
    assert rc.steps["step"].tolist() == list(range(len(rw.steps)))
    cols = [c for c in rw.steps.columns if c != "t_s"]
    assert rc.steps[cols].equals(rw.steps[cols])
    assert (rc.events["level"] == "pause").any()


KILL_EXPERIMENT = """
name = "regression-kill"
seed = 3
[network]
builtin = "gen2"
sources = ["r0c0", "r0c2"]
targets = ["r1c1"]
ground = "r1c3"
[task]
kind = "regression"
input = "r0c0"
fixed = { r0c2 = 0.45 }
coefficients = [0.15, 0.05, -0.012]
[rule]
kind = "continuous"
alpha = 10.0
eta = 0.1
[schedule]
epochs = 800
steps_per_epoch = 50
eval_every = 10
"""


def hostctl(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "hostctl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def run_until(proc, step: int) -> None:
    """Read the progress lines until one reports ``step`` or beyond."""
    for line in proc.stdout:
        if line.startswith("epoch ") and int(line.split()[3]) >= step:
            assert not line.startswith("epoch 800/"), "the run ended before it could be stopped"
            return
    pytest.fail(f"the run ended before step {step}: {proc.stderr.read()}")


@pytest.mark.parametrize("sig, status, code", [(signal.SIGKILL, "killed", -9), (signal.SIGINT, "interrupted", 130)])
def test_a_stopped_run_leaves_a_valid_file_and_resumes_to_the_end(tmp_path, sig, status, code):
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(KILL_EXPERIMENT)
    out = tmp_path / "run.h5"
    proc = hostctl("train", str(exp_file), "--out", str(out))
    run_until(proc, int(np.random.default_rng(sig).integers(2000, 6000)))
    proc.send_signal(sig)
    proc.communicate()
    assert proc.returncode == code
    run = load(out)
    assert run.status == status
    steps = run.steps["step"].to_numpy()
    assert steps.size > 0 and np.array_equal(steps, np.arange(steps.size))
    resumed = subprocess.run([sys.executable, "-m", "hostctl", "resume", str(out)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    run = load(out)
    assert run.status == "complete"
    assert np.array_equal(run.steps["step"].to_numpy(), np.arange(800 * 50))


# -- the command line ----------------------------------------------------------------------------


def test_demo_writes_a_run_file_and_report_and_prints_the_accuracy(tmp_path, capsys):
    out = tmp_path / "demo.h5"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy: " in printed
    assert (tmp_path / "demo_report" / "error.png").stat().st_size > 10_000
    assert load(out).status == "complete"


def test_eval_and_report_read_a_finished_run(tmp_path, capsys):
    out = tmp_path / "r.h5"
    train(short_iris(), out)
    assert main(["eval", str(out)]) == 0
    assert "test: accuracy" in capsys.readouterr().out
    assert main(["report", str(out), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "network.png").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "nope.toml"], "nope.toml: cannot read the experiment file"),
        (["train", "iris_gen1", "--simulate"], "--simulate needs --rig"),
        (["resume", "missing.h5"], "missing.h5"),
        (["eval", "missing.h5"], "missing.h5"),
    ],
)
def test_command_line_errors_are_one_line(tmp_path, capsys, args, words):
    os.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hostctl: error: ") and words in err and "\n" not in err


def test_a_run_file_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "r.h5"
    out.write_bytes(b"precious")
    assert main(["train", "iris_gen1", "--out", str(out), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == b"precious"


def test_a_complete_run_is_not_resumed(tmp_path, capsys):
    out = tmp_path / "r.h5"
    train(short_iris(), out)
    assert main(["resume", str(out)]) == 2
    assert "complete" in capsys.readouterr().err


def test_a_rig_whose_network_differs_is_refused(tmp_path, capsys):
    rig = tmp_path / "rig.toml"
    assert main(["rig", "show", "--builtin", "gen2"]) == 0
    rig.write_text(capsys.readouterr().out)
    assert main(["train", "iris_gen1", "--rig", str(rig), "--simulate", "--quiet"]) == 2
    assert "is not the experiment's" in capsys.readouterr().err


def test_a_rig_file_runs_on_the_simulated_bench_as_a_dry_run(tmp_path, capsys):
    rig = tmp_path / "rig.toml"
    assert main(["rig", "show", "--builtin", "gen1"]) == 0
    rig.write_text(capsys.readouterr().out)
    out = tmp_path / "dry.h5"
    assert main(["train", "iris_gen1", "--rig", str(rig), "--simulate", "--out", str(out), "--quiet"]) == 0
    assert load(out).status == "complete"


def test_allostery_training_moves_the_output_to_its_target(tmp_path):
    allo = experiment("regression_gen2", task={"kind": "allostery", "inputs_v": {"r0c0": 0.2, "r0c2": 0.45},
                                              "desired_v": {"r1c1": 0.3}}, schedule={"epochs": 40, "steps_per_epoch": 25})
    train(allo, tmp_path / "allo.h5")
    errors = load(tmp_path / "allo.h5").epochs["test_error"].to_numpy()
    assert errors[-1] < 0.05 * errors[0]


def test_alternating_tasks_switch_every_period(tmp_path):
    alt = experiment("regression_gen2", task={"kind": "alternating", "period_steps": 5, "patterns": [
        {"inputs_v": {"r0c0": 0.4351, "r0c2": 0.0181}, "desired_v": {"r1c1": 0.31}},
        {"inputs_v": {"r0c0": 0.0181, "r0c2": 0.4351}, "desired_v": {"r1c1": 0.14}}]},
        schedule={"epochs": 2, "steps_per_epoch": 20, "order": "cyclic"})
    train(alt, tmp_path / "alt.h5")
    steps = load(tmp_path / "alt.h5").steps
    assert steps["sample"].tolist()[:12] == [0] * 5 + [1] * 5 + [0, 0]
    assert steps["target_0"].tolist()[:6] == [0.31] * 5 + [0.14]
