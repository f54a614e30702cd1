"""A stopped or crashed run, resumed, ends exactly where the uninterrupted run does: every
built-in experiment, stopped at chosen steps (epoch boundaries included), in-process and
deterministic; and a real ``hostctl train`` child given SIGINT then SIGTERM, five SIGINTs
back to back, or a SIGTERM during its set-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from hostctl import session
from hostctl.experiment import BUILTIN_EXPERIMENTS, builtin_experiment_text, loads_experiment
from hostctl.runfile import encode_state, load
from hostctl.runner import Runner

EPOCHS, STEPS_PER_EPOCH = 3, 4
TOTAL = EPOCHS * STEPS_PER_EPOCH
#: Every built-in experiment, short, every epoch evaluated; xor's gain decays every epoch (so a
#: checkpoint on an epoch's first step holds the previous epoch's gain on the boards).
EXPERIMENTS = {
    "iris_gen1": {},
    "iris_gen2": {},
    "regression_gen2": {"schedule": {"edges_every": 2}},
    "xor_gen2": {"rule": {"decay_epochs": 1}},
    "alternating_gen2": {"task": {"period_steps": [1, 2], "cycles_per_period": 1}},
}
#: Where to stop: at every step, so before the first, on every epoch's first and last step
#: and before the last.
STOPS = list(range(TOTAL))


def test_every_built_in_experiment_is_stopped_and_resumed():
    assert sorted(EXPERIMENTS) == sorted(BUILTIN_EXPERIMENTS)


def experiment_text(name: str) -> str:
    d = tomllib.loads(builtin_experiment_text(name))
    d["schedule"].update(epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, eval_every=1)
    for section, fields in EXPERIMENTS[name].items():
        d[section].update(fields)
    return tomli_w.dumps(d)


def train(name: str, path: Path, hook=None):
    """Train the short experiment ``name`` into ``path``; ``hook(runner, step)`` is called
    after every learning step."""
    exp = loads_experiment(experiment_text(name), f"<{name}>")
    rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
    learn = Runner.learn

    def hooked(self, a):
        learn(self, a)
        if hook is not None:
            hook(self, a.step)

    Runner.learn = hooked
    try:
        return session.train(exp, rig, path)
    finally:
        Runner.learn = learn
        rig.close()


def assert_same_end(resumed: Path, whole: Path) -> None:
    """Gates, outputs, every recorded dataset and the final checkpoint (the whole bench's
    state) identical; events identical but for the stop and the resume."""
    a, b = load(resumed), load(whole)
    assert a.status == b.status == "complete"
    cols = [c for c in b.steps.columns if c != "t_s"]
    assert a.steps["step"].tolist() == list(range(TOTAL))
    assert a.steps[cols].equals(b.steps[cols])
    assert a.epochs.equals(b.epochs)
    assert a.edges.equals(b.edges)
    np.testing.assert_array_equal(a.evaluation_outputs, b.evaluation_outputs)
    np.testing.assert_array_equal(a.evaluation_steps, b.evaluation_steps)

    def kept(events):
        return [(s, lv, m) for s, lv, m in zip(events["step"], events["level"], events["message"])
                if lv != "pause" and not m.startswith("resumed at step")]

    assert kept(a.events) == kept(b.events)
    assert a.last_checkpoint_step == b.last_checkpoint_step == TOTAL
    assert encode_state(a.last_checkpoint) == encode_state(b.last_checkpoint)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run of every experiment."""
    folder = tmp_path_factory.mktemp("whole")
    paths = {}
    for name in EXPERIMENTS:
        paths[name] = folder / f"{name}.h5"
        assert train(name, paths[name]).status == "complete"
    return paths


@pytest.mark.parametrize("k", STOPS)
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_a_run_stopped_before_step_k_resumes_to_the_uninterrupted_end(tmp_path, whole, name, k):
    cut = tmp_path / "cut.h5"

    def stop_before_k(runner, step):
        if step == k - 1:
            runner.request_stop()

    if k == 0:  # asked before the first step, during set-up
        def stop_before_k(runner, step):
            pass
        original = Runner.configure_boards

        def configure(self, scale=1.0):
            original(self, scale)
            self.request_stop()

        Runner.configure_boards = configure
    try:
        outcome = train(name, cut, stop_before_k)
    finally:
        if k == 0:
            Runner.configure_boards = original
    assert outcome.status == "interrupted" and outcome.steps == k
    run = load(cut)
    assert run.status == "interrupted" and run.last_checkpoint_step == k and len(run.steps) == k
    _, resumed = session.resume(cut, None)
    assert resumed.status == "complete"
    assert_same_end(cut, whole[name])


@pytest.mark.parametrize("k", STOPS)
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_a_run_that_crashed_after_its_checkpoint_at_step_k_resumes_to_the_uninterrupted_end(tmp_path, whole, name, k):
    """The checkpoint is at step k; the run goes on two more steps and then fails, as a kill
    would stop it: the records after the checkpoint are dropped at the resume."""
    cut = tmp_path / "cut.h5"
    crash_at = min(k + 2, TOTAL - 1)

    def checkpoint_at_k_then_crash(runner, step):
        if step == k - 1:
            runner._next_checkpoint = -np.inf  # the next step is a checkpoint's
        if step == crash_at:
            raise RuntimeError("the bench went away")

    with pytest.raises(RuntimeError, match="went away"):
        train(name, cut, checkpoint_at_k_then_crash)
    run = load(cut)
    assert run.status == "failed" and run.last_checkpoint_step == k and len(run.steps) == crash_at + 1
    _, resumed = session.resume(cut, None)
    assert resumed.status == "complete"
    assert_same_end(cut, whole[name])


def test_a_checkpoint_holds_the_board_configuration_and_the_epoch_of_its_gain(tmp_path):
    cut = tmp_path / "cut.h5"

    def stop_at_epoch_start(runner, step):
        if step == STEPS_PER_EPOCH - 1:
            runner.request_stop()

    train("xor_gen2", cut, stop_at_epoch_start)
    boards = load(cut).last_checkpoint["boards"]
    # the boards still hold epoch 0's gain when epoch 1's first step is next
    assert boards["gain_epoch"] == 0
    exp = loads_experiment(experiment_text("xor_gen2"), "<xor>")
    assert boards["config"]["gain"] == round(exp.board_rule.gain_at(0))
    assert boards["config"]["gain"] != round(exp.board_rule.gain_at(1))


# -- a real `hostctl train` child ---------------------------------------------------------------

CHILD_EXPERIMENT = """
name = "regression-signals"
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
decay_epochs = 20
[schedule]
epochs = 200
steps_per_epoch = 50
eval_every = 10
"""


def hostctl(*args):
    return subprocess.Popen([sys.executable, "-m", "hostctl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_training(proc) -> None:
    """Read the child's progress until it reports the state before training: its loop runs."""
    for line in proc.stdout:
        if line.startswith("before training"):
            return
    pytest.fail(f"the run ended before it started: {proc.stderr.read()}")


@pytest.fixture(scope="module")
def child_whole(tmp_path_factory):
    folder = tmp_path_factory.mktemp("child")
    exp_file = folder / "exp.toml"
    exp_file.write_text(CHILD_EXPERIMENT)
    whole = folder / "whole.h5"
    done = subprocess.run([sys.executable, "-m", "hostctl", "train", str(exp_file), "--out", str(whole), "--quiet"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return exp_file, whole


@pytest.mark.parametrize("signals", [
    [signal.SIGINT, signal.SIGTERM],
    [signal.SIGINT] * 5,
], ids=["SIGINT-then-SIGTERM", "five-SIGINTs"])
def test_signals_back_to_back_leave_a_file_that_resumes_exactly(tmp_path, child_whole, signals):
    exp_file, whole = child_whole
    out = tmp_path / "run.h5"
    proc = hostctl("train", str(exp_file), "--out", str(out))
    wait_for_training(proc)
    for sig in signals:
        os.kill(proc.pid, sig)
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    run = load(out)
    assert run.status == "interrupted"
    assert run.last_checkpoint_step is not None
    resumed = subprocess.run([sys.executable, "-m", "hostctl", "resume", str(out), "--quiet"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = load(out), load(whole)
    assert a.status == "complete"
    cols = [c for c in b.steps.columns if c != "t_s"]
    assert a.steps[cols].equals(b.steps[cols])
    assert a.epochs.equals(b.epochs)
    assert a.edges.equals(b.edges)
    np.testing.assert_array_equal(a.evaluation_outputs, b.evaluation_outputs)
    assert encode_state(a.last_checkpoint) == encode_state(b.last_checkpoint)


SET_UP_CHILD = textwrap.dedent("""
    import os, signal, sys
    from hostctl import session
    from hostctl.runner import Runner
    from hostctl.cli import main

    where = sys.argv[1]
    def signal_here():
        os.kill(os.getpid(), signal.SIGTERM)
        print("set-up went on after the signal", flush=True)   # a long set-up, continuing

    if where == "open_bench":
        original = session.open_bench
        def patched(*args, **kw):
            signal_here()
            return original(*args, **kw)
        session.open_bench = patched
    elif where == "configure_boards":
        original = Runner.configure_boards
        def patched(self, *args, **kw):
            original(self, *args, **kw)
            signal_here()
        Runner.configure_boards = patched
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.parametrize("where", ["open_bench", "configure_boards"])
def test_a_sigterm_during_set_up_ends_the_process_without_a_traceback_or_a_run_file(tmp_path, where):
    out = tmp_path / "run.h5"
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(CHILD_EXPERIMENT)
    proc = subprocess.run([sys.executable, "-c", SET_UP_CHILD, where, "train", str(exp_file), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 130, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "set-up went on" not in proc.stdout
    assert "status: complete" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SIGTERM during set-up" in lines[0], lines
    assert not out.exists()


def test_a_sigterm_while_a_resume_sets_up_leaves_the_file_as_it_was(tmp_path):
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(CHILD_EXPERIMENT)
    out = tmp_path / "run.h5"
    exp = loads_experiment(CHILD_EXPERIMENT, str(exp_file))
    rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
    learn = Runner.learn

    def stop_at_7(self, a):
        learn(self, a)
        if a.step == 6:
            self.request_stop()

    Runner.learn = stop_at_7
    try:
        session.train(exp, rig, out)
    finally:
        Runner.learn = learn
        rig.close()
    before = load(out)
    child = SET_UP_CHILD.replace('where == "configure_boards"', 'where == "restore"').replace(
        "Runner.configure_boards", "Runner.restore")
    proc = subprocess.run([sys.executable, "-c", child, "restore", "resume", str(out), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    after = load(out)
    assert after.status == "interrupted" and after.last_checkpoint_step == before.last_checkpoint_step == 7
    _, outcome = session.resume(out, None)
    assert outcome.status == "complete"
