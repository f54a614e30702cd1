"""``hostctl watch`` (hostctl/watch.py): follows a live run file without disturbing its
writer, and stops when the run ends. No sleeps: every injected "sleep" advances the writer."""

from __future__ import annotations

import functools
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from hostctl.cli import main
from hostctl.runfile import RunWriter, load
from hostctl.watch import Watcher, follow, render, sparkline

ROOT = Path(__file__).resolve().parents[1]
S, T, E = 4, 2, 8


def writer(path, **kw) -> RunWriter:
    args = dict(n_sources=S, n_targets=T, n_edges=E, n_test=0, metadata={"experiment": "name = 'test'\n"},
                provenance={"host": "bench"}, flush_s=float("inf"))
    args.update(kw)
    return RunWriter(path, **args)


def record(w: RunWriter, step: int, epoch: int = 0) -> None:
    w.step(step, epoch, 0, np.zeros(S), np.zeros(T), np.zeros(T), np.zeros(T), 1.0 / (step + 1), True)


def plain(renderable) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


# ------------------------------------------------------------------------------ snapshots


def test_a_snapshot_follows_what_the_writer_has_flushed(tmp_path):
    w = writer(tmp_path / "r.h5")
    watcher = Watcher(tmp_path / "r.h5")
    empty = watcher.snapshot()
    assert (empty["status"], empty["steps"], empty["step"], empty["faults"]) == ("running", 0, None, 0)

    for i in range(10):
        record(w, i)
    w.epoch(0, 9, train_error=0.5, test_error=0.25, test_accuracy=0.75)
    w.edges(9, np.ones(E))
    w.flush()
    first = watcher.snapshot()
    assert (first["steps"], first["step"], first["epoch"], first["epochs"]) == (10, 9, 0, 1)
    assert (first["train_error"], first["test_error"], first["test_accuracy"]) == (0.5, 0.25, 0.75)
    assert np.isnan(first["train_accuracy"])
    assert first["step_errors"][-1] == pytest.approx(0.1)

    for i in range(10, 20):
        record(w, i, epoch=1)
    w.epoch(1, 19, train_error=0.25, test_error=0.125, test_accuracy=0.875)
    w.edges(19, np.linspace(0.5, 2.0, E))
    w.event(19, "warning", "edge 3 near its limit")
    w.flush()
    second = watcher.snapshot()
    assert (second["steps"], second["step"], second["epoch"], second["epochs"]) == (20, 19, 1, 2)
    assert second["test_errors"] == [0.25, 0.125]
    assert (second["edge_min"], second["edge_max"]) == (0.5, 2.0)
    assert (second["edge_change_min"], second["edge_change_max"]) == (-0.5, 1.0)
    assert second["warnings"] == 1 and second["events"] == [(19, "warning", "edge 3 near its limit")]
    w.close()
    assert watcher.snapshot()["status"] == "complete"


def test_records_still_in_the_writers_buffers_are_not_shown(tmp_path):
    w = writer(tmp_path / "r.h5")
    record(w, 0)
    assert Watcher(tmp_path / "r.h5").snapshot()["steps"] == 0
    w.close()


def test_events_are_counted_once_and_only_the_last_few_are_kept(tmp_path):
    w = writer(tmp_path / "r.h5")
    watcher = Watcher(tmp_path / "r.h5")
    for i in range(4):
        w.event(i, "warning", f"warning {i}")
    w.event(4, "fault", "over-current")  # a fault flushes at once
    assert (watcher.snapshot()["faults"], watcher.snapshot()["warnings"]) == (1, 4)
    for i in range(5, 12):
        w.event(i, "info", f"note {i}")
    w.close()
    snap = watcher.snapshot()
    assert (snap["faults"], snap["warnings"]) == (1, 4)
    assert [e[0] for e in snap["events"]] == [7, 8, 9, 10, 11]


def test_the_view_shows_the_figures_curves_and_events(tmp_path):
    with writer(tmp_path / "r.h5") as w:
        for i in range(5):
            record(w, i)
        w.epoch(0, 4, train_error=0.5, test_error=0.25, test_accuracy=0.75)
        w.edges(4, np.linspace(1.0, 3.0, E))
        w.event(4, "fault", "over-current on the supply")
    text = plain(render(Watcher(tmp_path / "r.h5").snapshot()))
    assert "complete" in text and "4 (epoch 0, 5 recorded)" in text
    assert "0.25 V^2, accuracy 75.0 %" in text and "0.5 V^2" in text
    assert sparkline([1 / (i + 1) for i in range(5)]) in text
    assert "1 .. 3" in text and "1 faults" in text and "over-current on the supply" in text


def test_a_sparkline_has_one_bar_per_value_from_lowest_to_highest():
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([2.0, 2.0]) == "▁▁"
    assert sparkline([1.0, float("nan"), 0.0]) == "█ ▁"
    assert sparkline([]) == ""
    assert sparkline([1.0, 10.0, 100.0]) == "▁▅█"  # log scale over decades


# ------------------------------------------------------------------------------ following


def test_following_ends_with_a_final_refresh_when_the_writer_closes_complete(tmp_path):
    w = writer(tmp_path / "r.h5")
    seen = []
    out = Console(file=io.StringIO(), width=120, color_system=None)

    def sleep(seconds):
        # each "sleep" lets the writer go on: five more steps, then it closes
        seen.append(seconds)
        n = 5 * len(seen)
        for i in range(n - 5, n):
            record(w, i)
        w.flush()
        if len(seen) == 3:
            w.close()

    final = follow(tmp_path / "r.h5", interval_s=0.5, console=out, live=False, sleep=sleep, clock=lambda: 0.0)
    assert seen == [0.5, 0.5, 0.5]
    assert (final["status"], final["steps"], final["step"]) == ("complete", 15, 14)
    blocks = out.file.getvalue().split("\n\n")
    assert [b.count("recorded)") for b in blocks] == [0, 1, 1, 1]
    assert "5 recorded" in blocks[1] and "10 recorded" in blocks[2] and "15 recorded" in blocks[3]
    assert "complete" in blocks[3] and "running" in blocks[2]


def test_the_interval_counts_the_time_spent_reading(tmp_path):
    w = writer(tmp_path / "r.h5")
    now = [0.0]
    asked = []

    def clock():
        now[0] += 0.25  # every look at the clock: a quarter second has passed
        return now[0]

    def sleep(seconds):
        asked.append(seconds)
        w.close()

    follow(tmp_path / "r.h5", interval_s=1.0, console=Console(file=io.StringIO()), live=False, sleep=sleep,
           clock=clock)
    assert asked == [0.75]


def test_once_refreshes_once_while_the_run_goes_on(tmp_path):
    w = writer(tmp_path / "r.h5")
    record(w, 0)
    w.flush()

    def sleep(_):
        raise AssertionError("--once must not wait")

    snap = follow(tmp_path / "r.h5", once=True, console=Console(file=io.StringIO()), live=False, sleep=sleep)
    assert (snap["status"], snap["steps"]) == ("running", 1)
    w.close()


def test_a_terminal_gets_a_live_view_that_ends_with_the_run(tmp_path):
    w = writer(tmp_path / "r.h5")
    out = Console(file=io.StringIO(), width=120, force_terminal=True)

    def sleep(_):
        record(w, 0)
        w.close()

    final = follow(tmp_path / "r.h5", console=out, sleep=sleep, clock=lambda: 0.0)
    assert final["status"] == "complete"
    assert "complete" in out.file.getvalue()


# ------------------------------------------------------------------------------ the command


def test_watch_once_in_another_process_leaves_the_writer_working(tmp_path):
    path = tmp_path / "r.h5"
    w = writer(path)
    for i in range(100):
        record(w, i)
    w.flush()
    done = subprocess.run([sys.executable, "-m", "hostctl", "watch", str(path), "--once"], capture_output=True,
                          text=True, env=env(), cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "99 (epoch 0, 100 recorded)" in done.stdout and "running" in done.stdout
    for i in range(100, 150):
        record(w, i)
    w.close()
    run = load(path)
    assert run.status == "complete" and run.steps.step.tolist() == list(range(150))


WRITER = """
import sys
import numpy as np
from hostctl.runfile import RunWriter
w = RunWriter(sys.argv[1], n_sources=4, n_targets=2, n_edges=8, metadata={}, provenance={}, flush_s=float("inf"))
n = 0
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "close":
        w.close()
        print("closed", flush=True)
        break
    for _ in range(int(line)):
        w.step(n, 0, 0, np.zeros(4), np.zeros(2), np.zeros(2), np.zeros(2), 1.0, True)
        n += 1
    w.flush()
    print("flushed", n, flush=True)
"""


def test_watch_follows_a_writer_in_another_process_until_it_closes(tmp_path, monkeypatch, capsys):
    path = tmp_path / "r.h5"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    try:
        assert child.stdout.readline() == "ready\n", child.stderr.read()
        commands = iter(["7", "3", "close"])

        def sleep(_):
            child.stdin.write(next(commands) + "\n")
            child.stdin.flush()
            assert child.stdout.readline().split()[0] in ("flushed", "closed")

        monkeypatch.setattr("hostctl.watch.follow", functools.partial(follow, sleep=sleep))
        assert main(["watch", str(path), "--interval", "0.01"]) == 0
        assert child.wait(timeout=60) == 0, child.stderr.read()
    finally:
        child.kill()
        child.wait()
    blocks = capsys.readouterr().out.split("\n\n")
    assert len(blocks) == 4
    assert "none yet" in blocks[0] and "7 recorded" in blocks[1] and "10 recorded" in blocks[2]
    assert "complete" in blocks[3] and "10 recorded" in blocks[3]
    assert load(path).steps.step.tolist() == list(range(10))


def test_ctrl_c_stops_watching_quietly(tmp_path, monkeypatch, capsys):
    w = writer(tmp_path / "r.h5")

    def sleep(_):
        raise KeyboardInterrupt

    monkeypatch.setattr("hostctl.watch.follow", functools.partial(follow, sleep=sleep))
    assert main(["watch", str(tmp_path / "r.h5")]) == 0
    assert capsys.readouterr().err == ""
    w.close()
    assert load(tmp_path / "r.h5").status == "complete"


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such run file"),
    (lambda p: p.write_text("not hdf5"), "not a twinrig run file"),
])
def test_a_missing_or_foreign_file_is_one_line_error(tmp_path, capsys, make, message):
    path = tmp_path / "r.h5"
    make(path)
    assert main(["watch", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("hostctl: error:")


def test_a_negative_interval_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["watch", str(tmp_path / "r.h5"), "--interval", "-1"])
    assert stop.value.code == 2
    assert "argument --interval: must be at least 0.01" in capsys.readouterr().err
