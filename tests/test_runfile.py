"""Run files (hostctl/runfile.py): append-only HDF5, readable while written, valid after the
writer is killed, resumable from the last checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostctl.runfile import (
    FORMAT, FORMAT_VERSION, MESSAGE_BYTES, RunFileError, RunReader, RunWriter, _git_state, load, provenance,
)

ROOT = Path(__file__).resolve().parents[1]
S, T, E, M = 4, 2, 32, 3  # the Gen-2 lattice: 4 sources, 2 targets, 32 edges; 3 test samples


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def writer(path, **kw) -> RunWriter:
    args = dict(n_sources=S, n_targets=T, n_edges=E, n_test=M, metadata={"experiment": "name = 'test'\n"},
                provenance={"host": "bench"}, flush_s=float("inf"))
    args.update(kw)
    return RunWriter(path, **args)


def record(w: RunWriter, step: int, epoch: int = 0) -> None:
    """One step whose every value is derived from ``step``."""
    w.step(step, epoch, step % 5, step + np.arange(S) / 10, [0.1 * step, 0.2], [0.3, 0.4 + step],
           [0.5, 0.6], 0.01 * step, step % 2 == 0)


def run_child(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


# ------------------------------------------------------------------------------ round trip


def test_every_record_kind_reads_back_as_dataframes(tmp_path):
    clock = FakeClock(100.0)
    with writer(tmp_path / "r.h5", clock=clock) as w:
        for i in range(3):
            clock.now += 0.5
            record(w, i)
        w.epoch(0, 2, train_error=0.25, train_accuracy=0.5, test_error=0.125, lab_time_s=3.5,
                power_free_w=1e-4, energy_inference_j=2e-7, energy_per_parameter_j=1e-8)
        w.evaluation(2, 0, np.arange(M * T, dtype=float).reshape(M, T))
        w.edges(2, np.linspace(1.0, 5.5, E))
        clock.now += 1.0
        w.event(2, "pause", "paused by the operator")
    run = load(tmp_path / "r.h5")

    expected_steps = pd.DataFrame({
        "step": [0, 1, 2], "epoch": [0, 0, 0], "sample": [0, 1, 2], "error": [0.0, 0.01, 0.02],
        "learned": [True, False, True], "t_s": [0.5, 1.0, 1.5],
        **{f"input_{j}": [i + j / 10 for i in range(3)] for j in range(S)},
        "free_0": [0.0, 0.1, 0.2], "free_1": [0.2] * 3, "clamp_0": [0.3] * 3, "clamp_1": [0.4, 1.4, 2.4],
        "target_0": [0.5] * 3, "target_1": [0.6] * 3,
    })
    pd.testing.assert_frame_equal(run.steps, expected_steps)
    pd.testing.assert_frame_equal(run.epochs, pd.DataFrame({
        "epoch": [0], "step": [2], "train_error": [0.25], "train_accuracy": [0.5], "test_error": [0.125],
        "test_accuracy": [np.nan], "lab_time_s": [3.5], "power_free_w": [1e-4], "power_clamped_w": [np.nan],
        "energy_inference_j": [2e-7], "energy_update_j": [np.nan], "energy_per_parameter_j": [1e-8],
    }))
    pd.testing.assert_frame_equal(run.evaluations, pd.DataFrame({
        "step": [2] * 6, "epoch": [0] * 6, "sample": [0, 0, 1, 1, 2, 2], "target": [0, 1] * 3,
        "output": np.arange(6.0),
    }))
    assert run.evaluation_outputs.shape == (1, M, T) and run.evaluation_steps.tolist() == [2]
    assert list(run.edges.columns) == ["step"] + [f"edge_{j}" for j in range(E)]
    np.testing.assert_array_equal(run.edges.iloc[0, 1:].to_numpy(float), np.linspace(1.0, 5.5, E))
    assert run.events.to_dict("records") == [
        {"step": 2, "t_s": 2.5, "level": "pause", "message": "paused by the operator"}
    ]
    assert run.status == "complete" and run.end_time is not None


def test_metadata_provenance_and_task_arrays_read_back(tmp_path):
    meta = {"experiment": "name = 'xor'\n", "network": "name = 'n'\nedges = [['a', 'b']]\n", "calibration": "",
            "task": json.dumps({"kind": "xor", "input": "two inputs"}), "wiring": "ünïcode = true\n"}
    arrays = {"train_inputs": np.random.default_rng(0).random((200, S)), "train_labels": np.arange(200) % 2,
              "class_names": np.array(["low", "high"])}
    prov = provenance({"smu": "KEITHLEY,2450,1234,1.7"})
    with writer(tmp_path / "r.h5", metadata=meta, provenance=prov, task_arrays=arrays):
        pass
    run = load(tmp_path / "r.h5")
    assert run.metadata == meta
    assert run.provenance == prov
    assert run.provenance["instruments"] == {"smu": "KEITHLEY,2450,1234,1.7"}
    assert set(run.task) == set(arrays)
    for name, a in arrays.items():
        np.testing.assert_array_equal(run.task[name], a)
    assert (run.n_sources, run.n_targets, run.n_edges, run.n_test) == (S, T, E, M)


def test_the_file_is_self_describing(tmp_path):
    with writer(tmp_path / "r.h5"):
        pass
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f.attrs["format"] == FORMAT and f.attrs["format_version"] == FORMAT_VERSION
        assert f["steps/inputs"].attrs["unit"] == "V" and f["steps/error"].attrs["unit"] == "V^2"
        for name in ("steps", "epochs", "evaluations", "edges", "events"):
            for ds in f[name].values():
                assert ds.chunks is not None and ds.maxshape[0] is None
                assert ds.compression == "gzip" and ds.compression_opts == 1
                assert ds.attrs["description"]


def test_a_reader_refuses_a_file_from_a_newer_format(tmp_path):
    with writer(tmp_path / "r.h5"):
        pass
    with h5py.File(tmp_path / "r.h5", "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(RunFileError, match=f"format {FORMAT_VERSION + 1}"):
        RunReader(tmp_path / "r.h5")


# ------------------------------------------------------------------------------ flushing


def test_a_full_buffer_is_flushed(tmp_path):
    w = writer(tmp_path / "r.h5", buffer_rows=4)
    for i in range(3):
        record(w, i)
    assert len(load(tmp_path / "r.h5").steps) == 0
    record(w, 3)
    assert len(load(tmp_path / "r.h5").steps) == 4
    w.close()


def test_records_are_flushed_once_flush_s_has_passed(tmp_path):
    clock = FakeClock()
    w = writer(tmp_path / "r.h5", flush_s=1.0, clock=clock)
    record(w, 0)
    clock.now = 0.999
    record(w, 1)
    assert len(load(tmp_path / "r.h5").steps) == 0
    clock.now = 1.0
    record(w, 2)
    assert load(tmp_path / "r.h5").steps.step.tolist() == [0, 1, 2]
    w.close()


def test_tick_flushes_between_steps_once_flush_s_has_passed(tmp_path):
    clock = FakeClock()
    w = writer(tmp_path / "r.h5", flush_s=1.0, clock=clock)
    w.edges(0, np.zeros(E))
    w.tick()
    assert len(load(tmp_path / "r.h5").edges) == 0
    clock.now = 1.5
    w.tick()
    assert len(load(tmp_path / "r.h5").edges) == 1
    w.close()


def test_a_fault_is_flushed_at_once(tmp_path):
    w = writer(tmp_path / "r.h5")
    w.event(0, "info", "started")
    assert len(load(tmp_path / "r.h5").events) == 0
    w.event(0, "fault", "over-current on the supply")
    assert load(tmp_path / "r.h5").events.level.tolist() == ["info", "fault"]
    w.close()


def test_recording_a_step_allocates_nothing_that_stays(tmp_path):
    w = writer(tmp_path / "r.h5", buffer_rows=100_000)
    inputs, outputs = np.ones(S), np.ones(T)
    record(w, 0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(5000):
        w.step(i, 0, 0, inputs, outputs, outputs, outputs, 0.5, True)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    w.close()
    assert grown < 1024


# ------------------------------------------------------------------------------ readers


FOLLOWER = """
import sys
from hostctl.runfile import RunReader
with RunReader(sys.argv[1]) as r:
    print(r.refresh()["steps"], r.status, flush=True)
    for line in sys.stdin:
        print(r.refresh()["steps"], r.table("steps", start=int(line)).step.tolist(), flush=True)
"""


def test_a_reader_in_another_process_follows_a_live_writer(tmp_path):
    w = writer(tmp_path / "r.h5")
    for i in range(100):
        record(w, i)
    w.flush()
    reader = run_child(FOLLOWER, str(tmp_path / "r.h5"))
    try:
        assert reader.stdout.readline().split() == ["100", "running"]
        for i in range(100, 103):
            record(w, i)
        w.flush()
        reader.stdin.write("100\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "103 [100, 101, 102]"
        w.close()
        reader.stdin.close()
        assert reader.wait(timeout=60) == 0, reader.stderr.read()
    finally:
        reader.kill()
        reader.wait()
    assert load(tmp_path / "r.h5").status == "complete"


KILLED = """
import sys
import numpy as np
from hostctl.runfile import RunWriter
w = RunWriter(sys.argv[1], n_sources=4, n_targets=2, n_edges=32, metadata={}, provenance={}, flush_s=float("inf"))
n = int(sys.argv[2])
for i in range(n + 5):
    if i == n:
        w.flush()
    w.step(i, 0, 0, np.full(4, i), np.zeros(2), np.zeros(2), np.zeros(2), 0.0, True)
    if i == n - 10:
        w.checkpoint(i, {"step": i})
print("ready", flush=True)
sys.stdin.readline()
"""


def kill_writer(path: Path, n: int) -> None:
    """A writer in another process flushes ``n`` steps (checkpoint at step n - 10), buffers
    five more, and is killed with SIGKILL."""
    child = run_child(KILLED, str(path), str(n))
    try:
        assert child.stdout.readline() == "ready\n", child.stderr.read()
    finally:
        child.kill()
        child.wait()


def test_a_killed_writer_leaves_a_valid_file_with_every_flushed_record(tmp_path):
    kill_writer(tmp_path / "r.h5", 1000)
    run = load(tmp_path / "r.h5")
    assert run.steps.step.tolist() == list(range(1000))
    np.testing.assert_array_equal(run.steps.input_3, np.arange(1000.0))
    with h5py.File(tmp_path / "r.h5", "r", swmr=True) as f:
        assert f.attrs["status"] == "running" and "end_time" not in f.attrs
    assert run.status == "killed" and run.end_time is None


# ------------------------------------------------------------------------------ resume


def test_resume_drops_the_records_after_the_last_checkpoint_and_appends(tmp_path):
    path = tmp_path / "r.h5"
    w = writer(path)
    for i in range(10):
        record(w, i)
        if i == 4:
            w.epoch(0, 4, train_error=0.5)
            w.edges(4, np.full(E, 2.0))
            w.checkpoint(4, {"epoch": 1, "edge_state": np.full(E, 2.0)})
    w.edges(9, np.full(E, 3.0))
    w.event(9, "warning", "after the checkpoint")
    w.epoch(1, 9)
    w.close("interrupted")

    w = RunWriter.resume(path, flush_s=float("inf"))
    assert w.last_checkpoint_step == 4
    np.testing.assert_array_equal(w.last_checkpoint["edge_state"], np.full(E, 2.0))
    for i in range(5, 7):
        record(w, i, epoch=1)
    w.close()
    run = load(path)
    assert run.steps.step.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert run.steps.epoch.tolist() == [0] * 5 + [1, 1]
    assert run.epochs.step.tolist() == [4] and run.edges.step.tolist() == [4]
    assert run.events[["step", "level", "message"]].values.tolist() == [[4, "info", "resumed at step 4"]]
    assert run.status == "complete"


def test_resume_continues_the_file_of_a_killed_writer(tmp_path):
    path = tmp_path / "r.h5"
    kill_writer(path, 100)
    w = RunWriter.resume(path)
    assert w.last_checkpoint == {"step": 90}
    record(w, 91)
    w.close()
    run = load(path)
    assert run.steps.step.tolist() == list(range(92))
    assert run.status == "complete"


def test_resume_refuses_a_complete_run(tmp_path):
    with writer(tmp_path / "r.h5") as w:
        w.checkpoint(0, {})
    with pytest.raises(RunFileError, match="complete") as err:
        RunWriter.resume(tmp_path / "r.h5")
    assert str(tmp_path / "r.h5") in str(err.value) and "\n" not in str(err.value)


def test_resume_refuses_a_run_without_a_checkpoint(tmp_path):
    writer(tmp_path / "r.h5").close("failed")
    with pytest.raises(RunFileError, match="no checkpoint"):
        RunWriter.resume(tmp_path / "r.h5")


@pytest.mark.parametrize("content", ["hdf5", "text"])
def test_resume_refuses_a_file_that_is_not_a_run_file(tmp_path, content):
    path = tmp_path / "other.h5"
    if content == "hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(3)
    else:
        path.write_text("not hdf5\n")
    with pytest.raises(RunFileError, match="not a twinrig run file") as err:
        RunWriter.resume(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_resume_refuses_a_run_whose_writer_is_alive(tmp_path):
    child = run_child(KILLED, str(tmp_path / "r.h5"), "20")
    try:
        assert child.stdout.readline() == "ready\n"
        with pytest.raises(RunFileError, match="still being written"):
            RunWriter.resume(tmp_path / "r.h5")
    finally:
        child.kill()
        child.wait()


def test_resume_refuses_a_run_this_process_is_still_writing(tmp_path):
    w = writer(tmp_path / "r.h5")
    w.checkpoint(0, {})
    with pytest.raises(RunFileError, match="still being written"):
        RunWriter.resume(tmp_path / "r.h5")
    w.close()


def test_a_damaged_checkpoint_is_reported(tmp_path):
    with writer(tmp_path / "r.h5") as w:
        w.checkpoint(3, {"x": 1})
    with h5py.File(tmp_path / "r.h5", "r+") as f:
        slot = int(f["checkpoint/pointer"][1])
        f["checkpoint/slots"][slot, 2] ^= 0xFF
    with pytest.raises(RunFileError, match="damaged"):
        load(tmp_path / "r.h5")


# ------------------------------------------------------------------------------ checkpoints


def test_checkpoint_state_with_numpy_arrays_round_trips(tmp_path):
    state = {
        "edge_state": np.array([1.5, np.nan, -np.inf, 5e-300]),
        "matrix": np.arange(6, dtype=np.float32).reshape(2, 3),
        "taps": np.array([0, 127, 128], dtype=np.uint8),
        "scalar": np.int64(7), "flag": np.bool_(True), "rng": {"state": 2**100 + 1, "inc": 3},
        "nested": [{"a": np.zeros(0)}, "text", None],
    }
    w = writer(tmp_path / "r.h5")
    w.checkpoint(10, {"big": np.zeros(5000)})
    w.checkpoint(11, state)
    w.close()
    for got in (w.last_checkpoint, load(tmp_path / "r.h5").last_checkpoint):
        assert set(got) == set(state)
        for key in ("edge_state", "matrix", "taps"):
            np.testing.assert_array_equal(got[key], state[key])
            assert got[key].dtype == state[key].dtype and got[key].shape == state[key].shape
        assert got["scalar"] == 7 and got["flag"] is True and got["rng"] == {"state": 2**100 + 1, "inc": 3}
        assert got["nested"][0]["a"].shape == (0,) and got["nested"][1:] == ["text", None]
    assert load(tmp_path / "r.h5").last_checkpoint_step == 11


def test_a_new_checkpoint_never_overwrites_the_last_one(tmp_path):
    w = writer(tmp_path / "r.h5")
    slots = []
    for step in range(3):
        w.checkpoint(step, {"step": step})
        slots.append(int(w._pointer[1]))
    w.close()
    assert slots == [0, 1, 0]


# ------------------------------------------------------------------------------ events


def test_an_event_message_is_cut_to_240_bytes_at_a_character_boundary(tmp_path):
    with writer(tmp_path / "r.h5") as w:
        w.event(0, "info", "é" * 200)  # 400 bytes of two-byte characters
        w.event(1, "info", "a" + "€" * 100)  # 1 + 300 bytes: the cut falls inside a character
        w.event(2, "warning", "short\x00")
    messages = load(tmp_path / "r.h5").events.message.tolist()
    assert messages == ["é" * 120, "a" + "€" * 79, "short"]
    assert max(len(m.encode()) for m in messages) <= MESSAGE_BYTES


def test_an_unknown_event_level_is_refused(tmp_path):
    with writer(tmp_path / "r.h5") as w, pytest.raises(ValueError, match="info, warning, fault, pause"):
        w.event(0, "error", "x")


# ------------------------------------------------------------------------------ lifecycle


def test_an_existing_file_is_never_overwritten(tmp_path):
    (tmp_path / "r.h5").write_bytes(b"precious")
    with pytest.raises(RunFileError, match="already exists"):
        writer(tmp_path / "r.h5")
    assert (tmp_path / "r.h5").read_bytes() == b"precious"


def test_leaving_the_context_on_an_exception_marks_the_run_failed(tmp_path):
    with pytest.raises(RuntimeError, match="DAQ lost"):
        with writer(tmp_path / "r.h5") as w:
            record(w, 0)
            raise RuntimeError("DAQ lost")
    run = load(tmp_path / "r.h5")
    assert run.status == "failed" and len(run.steps) == 1


def test_leaving_the_context_on_keyboard_interrupt_marks_the_run_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with writer(tmp_path / "r.h5"):
            raise KeyboardInterrupt
    assert load(tmp_path / "r.h5").status == "interrupted"


def test_close_is_idempotent_and_records_after_it_are_refused(tmp_path):
    w = writer(tmp_path / "r.h5")
    w.close("interrupted")
    w.close("complete")
    assert load(tmp_path / "r.h5").status == "interrupted"
    with pytest.raises(RunFileError, match="closed"):
        record(w, 0)


def test_evaluations_must_have_the_test_set_shape(tmp_path):
    with writer(tmp_path / "r.h5") as w, pytest.raises(ValueError, match=r"\(3, 2\)"):
        w.evaluation(0, 0, np.zeros((2, 2)))
    with writer(tmp_path / "s.h5", n_test=0) as w, pytest.raises(ValueError, match="no test set"):
        w.evaluation(0, 0, np.zeros((0, 2)))
    assert load(tmp_path / "s.h5").evaluation_outputs.shape == (0, 0, 2)


def test_provenance_names_software_machine_and_instruments():
    p = provenance({"dmm": "Keysight 34465A"})
    assert {"twinrig_version", "git_revision", "git_dirty", "host", "user", "python", "platform",
            "start_time", "instruments"} <= set(p)
    assert p["instruments"] == {"dmm": "Keysight 34465A"} and p["start_time"].endswith("+00:00")
    json.dumps(p)


def test_provenance_has_no_git_revision_outside_a_checkout_or_without_git(tmp_path, monkeypatch):
    assert _git_state(tmp_path) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert provenance()["git_revision"] is None


# ------------------------------------------------------------------------------ property


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
OPS = st.one_of(
    st.tuples(st.just("step"), st.integers(0, 3), st.integers(-1, 9), FLOATS, st.booleans(),
              st.lists(FLOATS, min_size=S + 3 * T, max_size=S + 3 * T)),
    st.tuples(st.just("epoch"), st.integers(0, 3), st.lists(FLOATS, min_size=4, max_size=4)),
    st.tuples(st.just("edges"), st.lists(FLOATS, min_size=E, max_size=E)),
    st.tuples(st.just("evaluation"), st.lists(FLOATS, min_size=M * T, max_size=M * T)),
    st.tuples(st.just("event"), st.sampled_from(["info", "warning", "fault", "pause"]), st.text(max_size=80)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("advance"), st.floats(0.0, 2.0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, max_size=40), buffer_rows=st.integers(1, 6), flush_s=st.sampled_from([0.0, 1.0, np.inf]))
def test_any_sequence_of_records_reads_back_identically(ops, buffer_rows, flush_s):
    clock = FakeClock()
    want = {"steps": [], "epochs": [], "edges": [], "evaluations": [], "events": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.h5"
        w = writer(path, buffer_rows=buffer_rows, flush_s=flush_s, clock=clock)
        for n, op in enumerate(ops):
            kind = op[0]
            if kind == "step":
                _, epoch, sample, error, learned, v = op
                w.step(n, epoch, sample, v[:S], v[S:S + T], v[S + T:S + 2 * T], v[S + 2 * T:], error, learned)
                want["steps"].append([n, epoch, sample, error, learned, clock.now, *v])
            elif kind == "epoch":
                w.epoch(op[1], n, train_error=op[2][0], train_accuracy=op[2][1], test_error=op[2][2],
                        test_accuracy=op[2][3])
                want["epochs"].append([op[1], n, *op[2], *[np.nan] * 6])  # no time or energy given
            elif kind == "edges":
                w.edges(n, np.array(op[1]))
                want["edges"].append([n, *op[1]])
            elif kind == "evaluation":
                w.evaluation(n, 0, np.reshape(op[1], (M, T)))
                want["evaluations"] += [[n, 0, i // T, i % T, x] for i, x in enumerate(op[1])]
            elif kind == "event":
                w.event(n, op[1], op[2])
                stored = op[2].replace("\x00", "").encode()[:MESSAGE_BYTES].decode(errors="ignore")
                want["events"].append([n, clock.now, op[1], stored])
            elif kind == "flush":
                w.flush()
            else:
                clock.now += op[1]
        w.close()
        run = load(path)
    columns = {
        "steps": ["step", "epoch", "sample", "error", "learned", "t_s"] + [f"input_{j}" for j in range(S)]
        + [f"{p}_{j}" for p in ("free", "clamp", "target") for j in range(T)],
        "epochs": ["epoch", "step", "train_error", "train_accuracy", "test_error", "test_accuracy", "lab_time_s",
                   "power_free_w", "power_clamped_w", "energy_inference_j", "energy_update_j", "energy_per_parameter_j"],
        "edges": ["step"] + [f"edge_{j}" for j in range(E)],
        "evaluations": ["step", "epoch", "sample", "target", "output"],
        "events": ["step", "t_s", "level", "message"],
    }
    for name, cols in columns.items():
        got = getattr(run, name)
        expected = pd.DataFrame(want[name], columns=cols).astype(got.dtypes.to_dict())
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_exact=True)
    assert run.status == "complete"


# ------------------------------------------------------------------------------ write locks


def test_a_run_file_whose_lock_another_open_file_holds_is_neither_created_nor_resumed(tmp_path):
    from hostctl.locks import FileLock, lock_path_for

    path = tmp_path / "r.h5"
    other = FileLock(lock_path_for(path)).acquire()  # another open file description, same process
    try:
        with pytest.raises(RunFileError, match=f"still being written by process {os.getpid()}"):
            writer(path)
        assert not path.exists()
    finally:
        other.release()
    with writer(path) as w:
        w.checkpoint(0, {})
        w.close("interrupted")
    other = FileLock(lock_path_for(path)).acquire()
    try:
        before = path.read_bytes()
        with pytest.raises(RunFileError, match="still being written"):
            RunWriter.resume(path)
        assert path.read_bytes() == before
    finally:
        other.release()
    RunWriter.resume(path).close("interrupted")


def test_the_write_lock_is_held_while_writing_and_released_at_close(tmp_path):
    from hostctl.locks import holder, lock_path_for

    path = tmp_path / "r.h5"
    w = writer(path)
    assert holder(lock_path_for(path)) == os.getpid()
    w.checkpoint(0, {})
    w.close("interrupted")
    assert holder(lock_path_for(path)) is None and not lock_path_for(path).exists()
    w = RunWriter.resume(path)
    assert holder(lock_path_for(path)) == os.getpid()
    w.close()
    assert not lock_path_for(path).exists()


def test_train_and_resume_refuse_a_run_file_another_process_is_writing(tmp_path, capsys):
    from hostctl.cli import main

    path = tmp_path / "r.h5"
    child = run_child(KILLED, str(path), "20")
    try:
        assert child.stdout.readline() == "ready\n"
        before = path.read_bytes()
        code = main(["resume", str(path), "--quiet"])
        err = capsys.readouterr().err
        assert code != 0 and "Traceback" not in err
        assert err.count("\n") == 1 and str(path) in err and f"process {child.pid}" in err, err
        code = main(["train", "iris_gen2", "--out", str(path), "--quiet"])
        err = capsys.readouterr().err
        assert code != 0 and err.count("\n") == 1 and str(path) in err, err
        assert path.read_bytes() == before
    finally:
        child.stdin.close()
        child.wait()


def test_a_format_1_file_reads_with_its_epochs_time_and_energy_as_nan(tmp_path):
    import h5py

    with writer(tmp_path / "old.h5") as w:
        w.epoch(0, 2, train_error=0.25)
    with h5py.File(tmp_path / "old.h5", "r+") as f:  # as format 1 wrote it: six columns
        for name in ("lab_time_s", "power_free_w", "power_clamped_w", "energy_inference_j", "energy_update_j",
                     "energy_per_parameter_j"):
            del f["epochs"][name]
        f.attrs["format_version"] = 1
    run = load(tmp_path / "old.h5")
    assert run.epochs["train_error"].tolist() == [0.25]
    assert run.epochs[["lab_time_s", "energy_inference_j"]].isna().all().all()
