"""Reading run files: :class:`RunReader` (SWMR, follows a live writer), :class:`Run` (a
file's whole content as pandas DataFrames and numpy arrays) and :func:`load`.

Voltages are in V, errors in V^2, times in s, edge states in the device's unit (see
``docs/run-file.md``). A reader refuses, in one :class:`~hostctl.runschema.RunFileError`
line naming the file, what is not a run file, is from a newer twinrig, or is damaged
(checked first by :mod:`hostctl.runcheck`).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from .runcheck import _READ_ERRORS, _alive, _being_written, _check_intact, _damaged, _first_line, _one_line_damage
from .runschema import (
    FORMAT, FORMAT_VERSION, TABLES, RunFileError, _open_file, _read_checkpoint, _read_text, _task_array,
)


#: The epochs table's columns, in order (format 2; format 1 has the first six).
EPOCH_COLUMNS = ("epoch", "step", "train_error", "train_accuracy", "test_error", "test_accuracy", "lab_time_s",
                 "power_free_w", "power_clamped_w", "energy_inference_j", "energy_update_j", "energy_per_parameter_j")


@dataclass
class Run:
    """A run file's content.

    Attributes:
        steps: step, epoch, sample, error (V^2), learned (bool), t_s (s), input_0..input_{S-1},
            free_0..free_{T-1}, clamp_0.., target_0.. (V).
        epochs: epoch, step, train_error, train_accuracy, test_error, test_accuracy, lab_time_s,
            power_free_w, power_clamped_w, energy_inference_j, energy_update_j,
            energy_per_parameter_j (:data:`EPOCH_COLUMNS`; NaN in a format-1 file).
        evaluations: long form, one row per (evaluation, test sample, target): step, epoch,
            sample, target, output (V).
        edges: step, then edge_0..edge_{E-1} (the device's state unit).
        events: step, t_s, level, message.
        metadata: name -> text. provenance: dict. task: name -> array.
        status: "running", "complete", "interrupted", "failed", or "killed" (stored
            "running", written on this host by a process that no longer exists).
        last_checkpoint: the latest checkpoint's state, or None.
        last_checkpoint_step: its step, or None.
        evaluation_outputs: (K, M, T) the same outputs as ``evaluations``, as an array.
        evaluation_steps, evaluation_epochs: (K,) step and epoch of each evaluation.
        start_time, end_time: ISO 8601 UTC (end_time None unless closed).
        n_sources, n_targets, n_edges, n_test: sizes S, T, E, M.
        path: the file.
    """

    path: Path
    steps: pd.DataFrame
    epochs: pd.DataFrame
    evaluations: pd.DataFrame
    edges: pd.DataFrame
    events: pd.DataFrame
    metadata: dict[str, str]
    provenance: dict
    status: str
    task: dict[str, np.ndarray]
    last_checkpoint: dict | None
    last_checkpoint_step: int | None = None
    evaluation_outputs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    evaluation_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    evaluation_epochs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    start_time: str | None = None
    end_time: str | None = None
    n_sources: int = 0
    n_targets: int = 0
    n_edges: int = 0
    n_test: int = 0


class RunReader:
    """A run file open for reading in SWMR mode; follows a live writer with :meth:`refresh`.

        with RunReader("run.h5") as r:
            while ...:
                r.refresh()
                new = r.table("steps", start=seen)

    Raises:
        RunFileError: not an HDF5 file, not a run file, from a newer twinrig, or open for
            writing without SWMR (a writer killed before SWMR started).
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such run file")
        if self.path.is_dir():
            raise RunFileError(f"{self.path}: is a folder, not a run file")
        if not h5py.is_hdf5(self.path):
            raise RunFileError(f"{self.path}: not a twinrig run file (not an HDF5 file)")
        # HDF5 retries a SWMR read of damaged metadata for a long time, for a writer that
        # might be midway: a file nobody writes is checked first, refused at once if cut,
        # and read without SWMR unless a killed writer left it marked open for writing
        swmr = _being_written(self.path) or _check_intact(self.path)
        try:
            self._file = _open_file(self.path, "r", swmr=swmr)
        except OSError as exc:
            raise RunFileError(f"{self.path}: cannot be opened for reading ({_first_line(exc)})") from None
        try:
            a = self._file.attrs
            fmt = a.get("format")
            if fmt != FORMAT:
                raise RunFileError(f"{self.path}: not a twinrig run file (format attribute {fmt!r}, expected {FORMAT!r})")
            version = int(a.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise RunFileError(
                    f"{self.path}: written in run-file format {version}, this twinrig reads up to {FORMAT_VERSION}"
                )
            self.attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in a.items()}
            for key in ("status", "n_sources", "n_targets", "n_edges", "n_test"):
                if key not in self.attrs:
                    raise RunFileError(f"{self.path}: the run file is damaged (no root attribute {key!r})")
        except BaseException as exc:
            self._file.close()
            if isinstance(exc, _READ_ERRORS) and not isinstance(exc, RunFileError):
                raise _damaged(self.path, exc) from None
            raise

    @property
    def stored_status(self) -> str:
        """The ``status`` attribute as stored (as read when the reader opened)."""
        return str(self.attrs["status"])

    @property
    def status(self) -> str:
        """The stored status, or "killed" for a "running" file written on this host by a
        process that no longer exists."""
        s = self.stored_status
        if s == "running" and self.attrs.get("writer_host") == socket.gethostname():
            pid = self.attrs.get("writer_pid")
            if pid is not None and not _alive(int(pid)):
                return "killed"
        return s

    @_one_line_damage
    def refresh(self) -> dict[str, int]:
        """See what the writer has flushed since; returns the row count of every table."""
        for name in TABLES:
            for ds in self._file[name].values():
                ds.refresh()
        for ds in self._file["checkpoint"].values():
            ds.refresh()
        return {name: self.rows(name) for name in TABLES}

    @_one_line_damage
    def rows(self, name: str) -> int:
        """Rows of table ``name`` that every one of its datasets holds."""
        return min(ds.shape[0] for ds in self._file[name].values())

    def table(self, name: str, start: int = 0) -> pd.DataFrame:
        """Rows ``start``.. of table ``name`` (steps | epochs | evaluations | edges | events)
        as a DataFrame (columns as in :class:`Run`)."""
        if name not in TABLES:
            raise KeyError(f"no table {name!r} in a run file")
        return self._table(name, start)

    @_one_line_damage
    def _table(self, name: str, start: int) -> pd.DataFrame:
        g = self._file[name]
        stop = self.rows(name)
        start = min(max(start, 0), stop)
        cols = {k: ds[start:stop] for k, ds in g.items()}
        if name == "steps":
            out = {k: cols[k] for k in ("step", "epoch", "sample", "error")}
            out["learned"] = cols["learned"].astype(bool)
            out["t_s"] = cols["t_s"]
            prefixes = (("inputs", "input"), ("free_outputs", "free"), ("clamps", "clamp"), ("targets", "target"))
            for key, prefix in prefixes:
                out.update({f"{prefix}_{j}": cols[key][:, j] for j in range(cols[key].shape[1])})
            return pd.DataFrame(out)
        if name == "epochs":
            n = stop - start
            # a format-1 file has no time, power or energy: NaN
            return pd.DataFrame({k: cols[k] if k in cols else np.full(n, np.nan) for k in EPOCH_COLUMNS})
        if name == "edges":
            out = {"step": cols["step"]}
            out.update({f"edge_{j}": cols["state"][:, j] for j in range(cols["state"].shape[1])})
            return pd.DataFrame(out)
        if name == "events":
            return pd.DataFrame({
                "step": cols["step"], "t_s": cols["t_s"],
                "level": [bytes(v).decode("ascii") for v in cols["level"]],
                "message": [bytes(v).decode("utf-8", errors="replace") for v in cols["message"]],
            }, columns=["step", "t_s", "level", "message"])
        if name == "evaluations":
            o = cols["outputs"]
            k, m, t = o.shape
            return pd.DataFrame({
                "step": np.repeat(cols["step"], m * t), "epoch": np.repeat(cols["epoch"], m * t),
                "sample": np.tile(np.repeat(np.arange(m), t), k), "target": np.tile(np.arange(t), k * m),
                "output": o.reshape(-1),
            })
        raise KeyError(f"no table {name!r} in a run file")

    @_one_line_damage
    def checkpoint_pointer(self) -> np.ndarray:
        """(step, slot, length, CRC-32, rows of every table in :data:`TABLES` order) of the
        latest checkpoint; step -1 when there is none."""
        return self._file["checkpoint/pointer"][:]

    @_one_line_damage
    def run(self) -> Run:
        """Everything in the file, as it stands."""
        f, a = self._file, self.attrs
        pointer = self.checkpoint_pointer()
        ev = f["evaluations"]
        k = self.rows("evaluations")
        return Run(
            path=self.path,
            steps=self.table("steps"), epochs=self.table("epochs"),
            evaluations=self.table("evaluations"), edges=self.table("edges"), events=self.table("events"),
            metadata={name: _read_text(ds) for name, ds in f["metadata"].items()},
            provenance=json.loads(_read_text(f["provenance"])),
            status=self.status,
            task={name: _task_array(ds) for name, ds in f["task"].items()},
            last_checkpoint=None if pointer[0] < 0 else _read_checkpoint(f, pointer, self.path),
            last_checkpoint_step=None if pointer[0] < 0 else int(pointer[0]),
            evaluation_outputs=ev["outputs"][:k], evaluation_steps=ev["step"][:k], evaluation_epochs=ev["epoch"][:k],
            start_time=a.get("start_time"), end_time=a.get("end_time"),
            n_sources=int(a["n_sources"]), n_targets=int(a["n_targets"]),
            n_edges=int(a["n_edges"]), n_test=int(a["n_test"]),
        )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "RunReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()



def load(path) -> Run:
    """Read a run file (SWMR read mode: works while a writer is running and on the file of
    a killed writer).

    Raises:
        FileNotFoundError: no such file.
        RunFileError: not a twinrig run file, or unreadable (the message names the file).
    """
    with RunReader(path) as r:
        return r.run()
