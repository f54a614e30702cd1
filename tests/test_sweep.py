"""Parameter sweeps: the sweep file, its expansion into experiments, and running the points
on a dask cluster with resumption."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client, LocalCluster
from hypothesis import given, settings, strategies as st

from hostctl import session
from hostctl import sweep as S
from hostctl.cli import main
from hostctl.experiment import loads_experiment

SMALL = """
name = "small"
base = "iris_gen1"
[grid]
"schedule.epochs" = [2]
"rule.eta" = [0.1, 0.2]
seed = [0, 1]
"""


def small_sweep(tmp_path: Path, text: str = SMALL) -> S.Sweep:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return S.load_sweep(path)


@pytest.fixture(scope="module")
def cluster_client():
    with S.local_cluster(2) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture
def inprocess_client():
    """Workers in this process, so a monkeypatched function is what they run."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        yield client


# -- expansion -------------------------------------------------------------------------------


def test_grid_expands_to_the_cartesian_product_in_file_order(tmp_path):
    points = S.expand(small_sweep(tmp_path))
    assert [p.params for p in points] == [
        {"schedule.epochs": 2, "rule.eta": eta, "seed": seed} for eta in (0.1, 0.2) for seed in (0, 1)]
    exp = loads_experiment(points[3].text)
    assert (exp.epochs, exp.seed) == (2, 1)


def test_unquoted_dotted_keys_are_the_same_fields(tmp_path):
    sweep = small_sweep(tmp_path, 'base = "iris_gen1"\n[grid]\nrule.eta = [0.1, 0.3]\nschedule.epochs = [2]\n')
    assert sweep.fields == ("rule.eta", "schedule.epochs")


def test_points_of_different_values_have_different_hashes_and_the_same_on_reload(tmp_path):
    first, again = S.expand(small_sweep(tmp_path)), S.expand(small_sweep(tmp_path))
    assert len({p.hash for p in first}) == 4
    assert [p.hash for p in first] == [p.hash for p in again]


VALID_VALUES = {
    "seed": st.integers(0, 1000),
    "rule.eta": st.floats(0.01, 1.0),
    "rule.probability": st.floats(0.0, 1.0),
    "schedule.epochs": st.integers(1, 5),
    "task.margin_v": st.floats(0.001, 0.2),
}


@settings(max_examples=15, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(VALID_VALUES)), st.just(None), min_size=1, max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.lists(VALID_VALUES[k], min_size=1, max_size=3) for k in keys})))
def test_grid_size_is_the_product_of_the_list_lengths_and_every_point_loads(grid):
    import tomli_w

    sweep = S.loads_sweep(tomli_w.dumps({"base": "iris_gen1", "grid": grid}), "<sweep>")
    points = S.expand(sweep)
    assert len(points) == math.prod(len(v) for v in grid.values())
    for point in points:
        exp = loads_experiment(point.text)
        if "schedule.epochs" in grid:
            assert exp.epochs == point.params["schedule.epochs"]


def test_a_grid_value_outside_the_field_bounds_is_one_error_naming_point_and_value():
    # found by the property test above once margin_v had to be positive
    with pytest.raises(S.SweepFileError, match=r"point 0 \(task.margin_v=0.0\): task.margin_v: .*greater than 0 \(got 0.0\)"):
        S.expand(S.loads_sweep('base = "iris_gen1"\n[grid]\n"task.margin_v" = [0.0]\n', "<sweep>"))


def test_random_draws_n_points_within_their_distributions_repeatably(tmp_path):
    text = """
base = "iris_gen1"
[random]
n = 32
seed = 7
"rule.eta" = { low = 0.05, high = 0.5 }
"rule.probability" = { log_low = 0.01, log_high = 1.0 }
"task.margin_v" = { values = [0.05, 0.1] }
"""
    points = S.expand(small_sweep(tmp_path, text))
    assert len(points) == 32
    assert all(0.05 <= p.params["rule.eta"] <= 0.5 for p in points)
    assert all(0.01 <= p.params["rule.probability"] <= 1.0 for p in points)
    assert {p.params["task.margin_v"] for p in points} == {0.05, 0.1}
    assert [p.params for p in points] == [p.params for p in S.expand(small_sweep(tmp_path, text))]


def test_a_table_under_random_seed_draws_the_experiments_seed(tmp_path):
    sweep = small_sweep(tmp_path, 'base = "iris_gen1"\n[random]\nn = 8\nseed = { values = [4, 5] }\n')
    assert sweep.fields == ("seed",) and sweep.seed == 0
    assert {p.params["seed"] for p in S.expand(sweep)} <= {4, 5}


def test_base_file_is_relative_to_the_sweep_file(tmp_path):
    from hostctl.experiment import builtin_experiment_text

    (tmp_path / "exps").mkdir()
    (tmp_path / "exps" / "exp.toml").write_text(builtin_experiment_text("iris_gen1"))
    sweep = small_sweep(tmp_path, 'base_file = "exps/exp.toml"\n[grid]\nseed = [3]\n')
    assert loads_experiment(S.expand(sweep)[0].text).seed == 3


@pytest.mark.parametrize("text, message", [
    ('base = "iris_gen1"\n', "give exactly one of [grid] or [random]"),
    ('base = "nope"\n[grid]\nseed = [1]\n', "base must be a built-in experiment"),
    ('base = "iris_gen1"\nbase_file = "x.toml"\n[grid]\nseed = [1]\n', "give exactly one of base"),
    ('base_file = "missing.toml"\n[grid]\nseed = [1]\n', "base_file: cannot read"),
    ('base = "iris_gen1"\nbogus = 1\n[grid]\nseed = [1]\n', "bogus: unknown field"),
    ('base = "iris_gen1"\n[grid]\nseed = 1\n', "grid.seed"),
    ('base = "iris_gen1"\n[random]\nseed = 0\n"rule.eta" = { low = 0.1, high = 0.2 }\n', "random.n: missing"),
    ('base = "iris_gen1"\n[random]\nn = 4\n"rule.eta" = { low = 0.3, high = 0.2 }\n', "random.rule.eta: low must be below high"),
    ('base = "iris_gen1"\n[grid\n', "not valid TOML"),
])
def test_bad_sweep_files_are_one_line_errors_naming_the_file_and_field(tmp_path, text, message):
    with pytest.raises(S.SweepFileError) as err:
        small_sweep(tmp_path, text)
    assert str(err.value).startswith(str(tmp_path / "sweep.toml"))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_bad_point_names_the_sweep_file_the_point_and_the_field(tmp_path):
    sweep = small_sweep(tmp_path, 'base = "iris_gen1"\n[grid]\n"rule.eta" = [0.1, 2.0]\n')
    with pytest.raises(S.SweepFileError) as err:
        S.expand(sweep)
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'sweep.toml'}: point 1 (rule.eta=2.0): rule: ")
    assert "eta must be in (0, 1]" in text and "\n" not in text


def test_an_unknown_field_in_a_point_is_named(tmp_path):
    sweep = small_sweep(tmp_path, 'base = "iris_gen1"\n[grid]\n"rule.etaa" = [0.1]\n')
    with pytest.raises(S.SweepFileError, match=r"point 0 \(rule.etaa=0.1\): rule.etaa: unknown field"):
        S.expand(sweep)


def test_the_command_line_reports_a_bad_sweep_file_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text('base = "iris_gen1"\n[grid]\n"rule.eta" = [5]\n')
    assert main(["sweep", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hostctl: error: ") and "point 0" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


# -- running ---------------------------------------------------------------------------------


def test_a_sweep_runs_every_point_then_skips_them_then_reruns_only_a_missing_one(tmp_path, cluster_client):
    sweep = small_sweep(tmp_path)
    points = S.expand(sweep)
    out = tmp_path / "out"

    summary = S.run_sweep(sweep, points, out, cluster_client)
    S.write_summary(summary, sweep.fields, out)
    table = pd.read_parquet(out / "summary.parquet")
    assert list(table["status"]) == ["complete"] * 4
    assert list(table["index"]) == [0, 1, 2, 3]
    assert list(table["rule.eta"]) == [0.1, 0.1, 0.2, 0.2] and list(table["seed"]) == [0, 1, 0, 1]
    assert table["test_accuracy"].between(0, 1).all() and (table["steps"] == 60).all()
    assert table["error"].isna().all()
    files = sorted((out / "points").iterdir())
    assert [f.name for f in files] == sorted(p.file_name for p in points)
    assert (out / "summary.png").stat().st_size > 0

    mtimes = {f: f.stat().st_mtime_ns for f in files}
    again = S.run_sweep(sweep, points, out, cluster_client)
    assert list(again["status"]) == ["skipped-existing"] * 4
    assert list(again["test_accuracy"]) == list(summary["test_accuracy"])
    assert {f: f.stat().st_mtime_ns for f in sorted((out / "points").iterdir())} == mtimes

    files[2].unlink()
    third = S.run_sweep(sweep, points, out, cluster_client)
    assert list(third["status"]) == ["skipped-existing", "skipped-existing", "complete", "skipped-existing"]
    assert files[2].exists()


def test_a_failing_point_is_recorded_and_the_others_complete(tmp_path, inprocess_client, monkeypatch):
    real_train = session.train

    def train(exp, rig, out, *args, **kw):
        if exp.seed == 1:
            raise RuntimeError("the bench caught fire")
        return real_train(exp, rig, out, *args, **kw)

    monkeypatch.setattr(session, "train", train)
    sweep = small_sweep(tmp_path)
    out = tmp_path / "out"
    summary = S.run_sweep(sweep, S.expand(sweep), out, inprocess_client)
    S.write_summary(summary, sweep.fields, out)
    table = pd.read_parquet(out / "summary.parquet")
    assert list(table["status"]) == ["complete", "failed", "complete", "failed"]
    failed = table[table["status"] == "failed"]
    assert (failed["error"] == "RuntimeError: the bench caught fire").all()
    assert failed["traceback"].str.contains("Traceback").all()
    assert table.loc[table["status"] == "complete", "error"].isna().all()


def test_a_failed_point_is_run_again_on_resume(tmp_path, inprocess_client, monkeypatch):
    real_train = session.train
    sweep = small_sweep(tmp_path)
    points = S.expand(sweep)[:1]
    out = tmp_path / "out"

    def broken(exp, rig, path, *args, **kw):
        raise RuntimeError("flaky")

    monkeypatch.setattr(session, "train", broken)
    assert list(S.run_sweep(sweep, points, out, inprocess_client)["status"]) == ["failed"]
    monkeypatch.setattr(session, "train", real_train)
    assert list(S.run_sweep(sweep, points, out, inprocess_client)["status"]) == ["complete"]


def test_best_ranks_by_test_accuracy_and_leaves_out_failed_points():
    summary = pd.DataFrame({"index": [0, 1, 2], "seed": [0, 1, 2], "status": ["complete", "failed", "skipped-existing"],
                            "test_accuracy": [0.5, float("nan"), 0.9], "test_error": [0.1, float("nan"), 0.05]})
    assert list(S.best(summary, ("seed",))["index"]) == [2, 0]


# -- one sweep per folder; a run file being written is left alone ----------------------------

HOLD = """
import sys
from hostctl import sweep as S
from hostctl.runfile import RunWriter
what, path = sys.argv[1], sys.argv[2]
if what == "folder":
    lock = S.sweep_lock(path)
else:
    w = RunWriter(path, n_sources=4, n_targets=3, n_edges=24, metadata={}, provenance={})
print("ready", flush=True)
sys.stdin.readline()
"""


def holder_process(what: str, path: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, what, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n", child.stderr.read()
    return child


def release(child: subprocess.Popen) -> None:
    child.stdin.close()
    child.wait()


def test_a_second_sweep_on_a_folder_is_refused_naming_the_folder_and_the_holder(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text(SMALL)
    out = tmp_path / "out"
    child = holder_process("folder", out)
    try:
        code = main(["sweep", str(path), "--out", str(out), "--quiet"])
    finally:
        release(child)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert str(out) in err and f"process {child.pid}" in err, err
    assert not any((out / "points").iterdir())


def test_the_folder_lock_conflicts_within_one_process_too(tmp_path, inprocess_client):
    sweep = small_sweep(tmp_path)
    out = tmp_path / "out"
    first = S.sweep_lock(out)
    try:
        with pytest.raises(S.SweepBusy, match=f"process {os.getpid()}"):
            S.sweep_lock(out)
        with pytest.raises(S.SweepBusy):
            S.run_sweep(sweep, S.expand(sweep)[:1], out, inprocess_client)
        # the holder's own runs go on
        summary = S.run_sweep(sweep, S.expand(sweep)[:1], out, inprocess_client, lock=first)
        assert list(summary["status"]) == ["complete"]
    finally:
        first.release()
    assert not (out / S.LOCK_NAME).exists()
    S.sweep_lock(out).release()


def test_a_point_file_another_process_is_writing_is_neither_deleted_nor_overwritten(tmp_path, inprocess_client):
    from hostctl.runfile import RunReader

    sweep = small_sweep(tmp_path)
    points = S.expand(sweep)[:2]
    out = tmp_path / "out"
    (out / "points").mkdir(parents=True)
    busy = out / "points" / points[0].file_name
    child = holder_process("run", busy)
    try:
        summary = S.run_sweep(sweep, points, out, inprocess_client)
        with RunReader(busy) as r:
            assert r.stored_status == "running" and r.attrs["writer_pid"] == child.pid
    finally:
        release(child)
    assert list(summary["status"]) == ["failed", "complete"]
    assert f"being written by process {child.pid}" in summary["error"].iloc[0]


# -- addresses -------------------------------------------------------------------------------


def _worker_http_sockets(dask_worker):
    return [s.getsockname()[0] for s in dask_worker.http_server._sockets.values()]


def test_the_local_cluster_listens_on_the_loopback_interface_only():
    from distributed.comm import get_address_host

    with S.local_cluster(1) as cluster, Client(cluster) as client:
        scheduler = cluster.scheduler
        hosts = {get_address_host(scheduler.address)}
        hosts |= {get_address_host(listener.listen_address) for listener in scheduler.listeners}
        hosts |= {s.getsockname()[0] for s in scheduler.http_server._sockets.values()}  # the dashboard
        assert scheduler.http_server._sockets, "the dashboard is not running"
        info = client.scheduler_info()
        assert len(info["workers"]) == 1
        for address, worker in info["workers"].items():
            hosts |= {get_address_host(address), get_address_host(worker["nanny"])}
        for sockets in client.run(_worker_http_sockets).values():
            hosts |= set(sockets)
    assert hosts == {"127.0.0.1"}


@pytest.mark.parametrize("option, value", [
    ("--dashboard-address", "127.0.0.1"), ("--dashboard-address", "127.0.0.1:70000"),
    ("--dashboard-address", ":8787"), ("--host", "http://x/"), ("--host", ""),
])
def test_bad_listening_addresses_are_one_line_errors(tmp_path, capsys, option, value):
    path = tmp_path / "sweep.toml"
    path.write_text(SMALL)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), option, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err and "Traceback" not in err
