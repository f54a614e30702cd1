"""Damaged run files and bad arguments are refused in one line (naming the file and what is
wrong), with a non-zero exit and no traceback, and at once: a cut run file is never handed
to HDF5's SWMR read retries, which wait for a writer that is not there."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from hostctl.cli import main
from hostctl.runfile import RunWriter, load

SHORT = """
name = "regression-short"
seed = 1
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
epochs = %d
steps_per_epoch = 20
eval_every = 1
"""


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """A complete run file and a killed one (SIGKILL while running), each whole, cut by
    4 KiB and cut in half."""
    folder = tmp_path_factory.mktemp("runs")
    exp = folder / "exp.toml"
    exp.write_text(SHORT % 3)
    complete = folder / "complete.h5"
    assert main(["train", str(exp), "--out", str(complete), "--quiet"]) == 0
    long_exp = folder / "long.toml"
    long_exp.write_text(SHORT % 100000)
    killed = folder / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-m", "hostctl", "train", str(long_exp), "--out", str(killed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the first line after the evaluation before training is flushed
        if line.startswith("epoch "):
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert load(killed).status == "killed"
    files = {}
    for name, path in (("complete", complete), ("killed", killed)):
        data = path.read_bytes()
        for cut, size in (("4KiB", len(data) - 4096), ("half", len(data) // 2)):
            damaged = folder / f"{name}-{cut}.h5"
            damaged.write_bytes(data[:size])
            files[f"{name}-{cut}"] = damaged
    return files


def one_line_error(capsys, code: int) -> str:
    out, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", [["eval"], ["resume", "--quiet"], ["report"], ["watch", "--once"]])
@pytest.mark.parametrize("which", ["complete-4KiB", "complete-half", "killed-4KiB", "killed-half"])
def test_a_cut_run_file_is_refused_in_one_line(run_files, capsys, command, which):
    path = run_files[which]
    before = path.read_bytes()
    line = one_line_error(capsys, main([command[0], str(path), *command[1:]]))
    assert str(path) in line and "damaged" in line and "cut short" in line, line
    assert path.read_bytes() == before  # resume changed nothing (not even the open-for-write flags)


def test_a_run_file_with_a_broken_heap_is_refused_in_one_line(run_files, tmp_path, capsys):
    data = bytearray(run_files["complete-half"].parent.joinpath("complete.h5").read_bytes())
    data[len(data) // 3: len(data) // 3 + 4096] = bytes(4096)  # zeros in the middle, size kept
    path = tmp_path / "zeros.h5"
    path.write_bytes(bytes(data))
    for command in (["eval"], ["report"], ["watch", "--once"]):
        code = main([command[0], str(path), *command[1:]])
        out, err = capsys.readouterr()
        if code == 0:  # the zeros fell on data the command does not read
            continue
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and str(path) in err, err


def test_train_out_under_a_regular_file_is_one_error(tmp_path, capsys):
    (tmp_path / "somefile").write_text("")
    out = tmp_path / "somefile" / "x.h5"
    line = one_line_error(capsys, main(["train", "iris_gen2", "--out", str(out), "--quiet"]))
    assert str(tmp_path / "somefile") in line and "is a file" in line


@pytest.mark.parametrize("sub", ["", "sub"])
def test_report_out_a_regular_file_is_one_error(run_files, tmp_path, capsys, sub):
    target = tmp_path / "somefile"
    target.write_text("")
    out = target / sub if sub else target
    complete = run_files["complete-4KiB"].parent / "complete.h5"
    line = one_line_error(capsys, main(["report", str(complete), "--out", str(out)]))
    assert str(target) in line and "is a file" in line


def test_resume_of_a_run_file_without_its_experiment_is_one_error(tmp_path, capsys):
    path = tmp_path / "r.h5"
    with RunWriter(path, n_sources=2, n_targets=1, n_edges=24, metadata={"network": ""}, provenance={}) as w:
        w.checkpoint(0, {})
        w.close("interrupted")
    line = one_line_error(capsys, main(["resume", str(path)]))
    assert str(path) in line and "/metadata/experiment" in line


@pytest.mark.parametrize("table, field, value", [
    ("[random]\nn = 1000000000\n\"rule.eta\" = { low = 0.05, high = 0.5 }\n", "random.n", "1000000000"),
    ("[grid]\n" + "".join(f'"task.x{i}" = [1, 2, 3, 4]\n' for i in range(10)), "grid", "1048576"),
])
def test_a_sweep_file_of_too_many_points_is_one_error(tmp_path, capsys, table, field, value):
    path = tmp_path / "big.toml"
    path.write_text('base = "iris_gen2"\n' + table)
    line = one_line_error(capsys, main(["sweep", str(path), "--out", str(tmp_path / "out")]))
    assert str(path) in line and field in line and value in line and "100000" in line, line
    assert not (tmp_path / "out").exists()
