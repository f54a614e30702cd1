"""Run files: one HDF5 file per training run, append-only, readable while it is written,
valid after the writer is killed at any moment.

A :class:`RunWriter` creates the file with every group, dataset and attribute it will ever
need, then switches on SWMR (single writer, multiple readers) mode; from then on it only
appends rows, in buffered batches, and flushes at least every ``flush_s`` seconds. A killed
writer leaves a file holding every record up to its last flush, which :func:`load` reads and
:meth:`RunWriter.resume` continues from the last checkpoint. The schema, the crash
behaviour and how to read a run file from other languages are in ``docs/run-file.md``.

    with RunWriter("run.h5", n_sources=4, n_targets=2, n_edges=32, n_test=30,
                   metadata={"experiment": text}, provenance=provenance()) as w:
        for ...:
            w.step(step, epoch, sample, inputs, o_free, o_clamped, desired, error, learned)
    run = load("run.h5")          # run.steps, run.epochs, ... as pandas DataFrames
"""

from __future__ import annotations

import base64
import getpass
import importlib.metadata
import json
import os
import platform
import re
import socket
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pandas as pd

FORMAT = "twinrig-run"
FORMAT_VERSION = 1

#: Values of the root attribute ``status``; :func:`load` may also report ``"killed"``.
STATUSES = ("running", "complete", "interrupted", "failed")
#: Levels of :meth:`RunWriter.event`.
LEVELS = ("info", "warning", "fault", "pause")
#: Event messages are stored as fixed-length UTF-8 of at most this many bytes.
MESSAGE_BYTES = 240
#: Target size of one chunk before compression. Small on purpose: in SWMR mode HDF5 never
#: reuses the space of a compressed chunk that a flush rewrites, so the partly filled last
#: chunk of every dataset leaks its old copy at each flush; small chunks keep that waste low
#: for slow runs (see docs/run-file.md, "Size on disk").
CHUNK_BYTES = 2048
#: HDF5 chunk cache per open dataset.
CHUNK_CACHE_BYTES = 65536
#: Bytes per chunk of the checkpoint slots (uncompressed, so rewritten in place).
CHECKPOINT_CHUNK_BYTES = 16384

#: The appendable tables (groups), in the order of the row counts in the checkpoint pointer.
TABLES = ("steps", "epochs", "evaluations", "edges", "events")

_COMPRESSION = {"compression": "gzip", "compression_opts": 1}
_I8, _F8, _U1 = np.dtype("<i8"), np.dtype("<f8"), np.dtype("u1")
_LEVEL_DTYPE = np.dtype("S8")
_MESSAGE_DTYPE = h5py.string_dtype("utf-8", MESSAGE_BYTES)
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_OPEN_WRITERS: set[Path] = set()  # files this process is writing (resume must not take them over)


class RunFileError(ValueError):
    """A file is not a usable run file (not one at all, from a newer twinrig, complete when
    it should not be, without a checkpoint, damaged); the message names the file."""


# -- provenance ------------------------------------------------------------------------------


def provenance(identities: dict[str, str] | None = None) -> dict:
    """Where a run comes from: software, source tree, machine, start time, instruments.

    Returns:
        ``{"twinrig_version", "git_revision", "git_dirty", "host", "user", "python",
        "platform", "packages", "start_time", "instruments"}``: ``git_revision`` and
        ``git_dirty`` are None unless the package is imported from a git checkout (dirty:
        any change to tracked files or any untracked file that is not ignored);
        ``start_time`` is ISO 8601 UTC; ``instruments`` is ``identities`` (instrument name
        -> identity string, e.g. the ``*IDN?`` reply), or ``{}``.
    """
    try:
        version = importlib.metadata.version("twinrig")
    except importlib.metadata.PackageNotFoundError:
        version = None
    revision, dirty = _git_state(Path(__file__).resolve().parents[1])
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {
        "twinrig_version": version,
        "git_revision": revision,
        "git_dirty": dirty,
        "host": socket.gethostname(),
        "user": user,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {"numpy": np.__version__, "h5py": h5py.version.version, "hdf5": h5py.version.hdf5_version},
        "start_time": _now_iso(),
        "instruments": dict(identities or {}),
    }


def _git(tree: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _git_state(tree: Path) -> tuple[str | None, bool | None]:
    """(revision, dirty) of the checkout whose top level is ``tree``, else (None, None)."""
    top = _git(tree, "rev-parse", "--show-toplevel")
    if top is None or Path(top.strip()).resolve() != tree:
        return None, None  # not a checkout, or an installed copy inside some other repository
    revision = _git(tree, "rev-parse", "HEAD")
    status = _git(tree, "status", "--porcelain")
    if revision is None:
        return None, None
    return revision.strip(), None if status is None else bool(status.strip())


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# -- checkpoint state as JSON ---------------------------------------------------------------


def _json_default(x):
    if isinstance(x, np.ndarray):
        if x.dtype.hasobject:
            raise TypeError("cannot store an object array in a checkpoint")
        a = np.ascontiguousarray(x)
        return {"__ndarray__": base64.b64encode(a.tobytes()).decode("ascii"), "dtype": a.dtype.str,
                "shape": list(a.shape)}
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"cannot store a {type(x).__name__} in a checkpoint")


def _json_hook(d: dict):
    if "__ndarray__" in d:
        raw = base64.b64decode(d["__ndarray__"])
        return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()
    return d


def encode_state(state: dict) -> bytes:
    """The checkpoint bytes of ``state``: UTF-8 JSON; numpy arrays become
    ``{"__ndarray__": base64 of the raw bytes, "dtype": "<f8", "shape": [...]}`` (exact,
    NaN included), numpy scalars become numbers, tuples become lists."""
    return json.dumps(state, default=_json_default, separators=(",", ":")).encode("utf-8")


def decode_state(blob: bytes) -> dict:
    """The state :func:`encode_state` encoded (arrays come back as numpy arrays)."""
    return json.loads(blob.decode("utf-8"), object_hook=_json_hook)


# -- the schema ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    unit: str
    description: str


def _schema(S: int, T: int, E: int, M: int) -> dict[str, tuple[_Column, ...]]:
    """The appendable tables: group -> its columns (datasets), all with the same row count."""
    C = _Column
    return {
        "steps": (
            C("step", _I8, (), "", "training step number"),
            C("epoch", _I8, (), "", "epoch of the step"),
            C("sample", _I8, (), "", "index of the training sample used"),
            C("error", _F8, (), "V^2", "output error 1/2 sum_t (O_F - L)^2 of the step"),
            C("learned", _U1, (), "", "1 if the learning pulse was applied at this step, else 0"),
            C("t_s", _F8, (), "s", "time since the run's start_time"),
            C("inputs", _F8, (S,), "V", "source voltages, in the network's source order"),
            C("free_outputs", _F8, (T,), "V", "target voltages O_F of the free twin"),
            C("clamps", _F8, (T,), "V", "target voltages O_C imposed on the clamped twin"),
            C("targets", _F8, (T,), "V", "desired target voltages L"),
        ),
        "epochs": (
            C("epoch", _I8, (), "", "epoch number"),
            C("step", _I8, (), "", "step at which the epoch's figures were taken"),
            C("train_error", _F8, (), "V^2", "mean error over the training set (NaN: not measured)"),
            C("train_accuracy", _F8, (), "1", "fraction classified right, training set (NaN: no classes)"),
            C("test_error", _F8, (), "V^2", "mean error over the test set (NaN: not measured)"),
            C("test_accuracy", _F8, (), "1", "fraction classified right, test set (NaN: no classes)"),
        ),
        "evaluations": (
            C("step", _I8, (), "", "step at which the test set was evaluated"),
            C("epoch", _I8, (), "", "epoch of that step"),
            C("outputs", _F8, (M, T), "V", "free target voltages of every test sample"),
        ),
        "edges": (
            C("step", _I8, (), "", "step at which the edge states were read"),
            C("state", _F8, (E,), "device", "learned state of every edge (unit of the device: see /metadata/network)"),
        ),
        "events": (
            C("step", _I8, (), "", "step at which the event happened"),
            C("t_s", _F8, (), "s", "time since the run's start_time"),
            C("level", _LEVEL_DTYPE, (), "", "info | warning | fault | pause"),
            C("message", _MESSAGE_DTYPE, (), "", f"UTF-8 text, at most {MESSAGE_BYTES} bytes"),
        ),
    }


def _create_table(group: h5py.Group, columns: tuple[_Column, ...]) -> None:
    for c in columns:
        row_bytes = c.dtype.itemsize * int(np.prod(c.shape, dtype=np.int64))
        rows = max(1, CHUNK_BYTES // max(row_bytes, 1))
        if 0 in c.shape:  # a run without a test set: no chunk can have a zero extent
            maxshape, chunks = (None,) * (1 + len(c.shape)), (1,) + tuple(max(n, 1) for n in c.shape)
        else:
            maxshape, chunks = (None,) + c.shape, (rows,) + c.shape
        ds = group.create_dataset(
            c.name, shape=(0,) + c.shape, maxshape=maxshape, chunks=chunks, dtype=c.dtype,
            shuffle=bool(_COMPRESSION) and c.dtype.kind in "iuf" and c.dtype.itemsize > 1, **_COMPRESSION,
        )
        ds.attrs["unit"] = c.unit
        ds.attrs["description"] = c.description


def _text_dataset(group: h5py.Group, name: str, text: str) -> None:
    raw = text.encode("utf-8")
    ds = group.create_dataset(name, shape=(), dtype=h5py.string_dtype("utf-8", max(len(raw), 1)))
    ds[()] = raw


def _read_text(ds: h5py.Dataset) -> str:
    return bytes(ds[()]).decode("utf-8")


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"{what} name {name!r}: use letters, digits, '_', '-' and '.'")


def _open_file(path: Path, mode: str, **kw) -> h5py.File:
    """Open without an OS file lock: SWMR readers need none, a reader's lock would keep the
    writer from marking the run's end, network drives often have no locks, and HDF5 wants
    the same locking setting for every opening of one file in a process. Two writers are
    kept apart by ``w-`` (never overwrite) and by the writer's host and process id.

    The chunk cache is small: a writer only ever needs the last, partly filled chunk of each
    dataset, and HDF5's default (1 MiB a dataset) keeps ~90 MiB of written chunks alive."""
    return h5py.File(path, mode, libver="latest", locking=False, rdcc_nbytes=CHUNK_CACHE_BYTES, **kw)


# -- the writer ------------------------------------------------------------------------------


class _Table:
    """One group's datasets and their preallocated row buffers."""

    __slots__ = ("datasets", "buffers", "rows", "pending")

    def __init__(self, group: h5py.Group, columns: tuple[_Column, ...], cap: int):
        self.datasets = tuple(group[c.name] for c in columns)
        self.buffers = tuple(np.zeros((cap,) + c.shape, c.dtype) for c in columns)
        self.rows = min(ds.shape[0] for ds in self.datasets)
        self.pending = 0

    def write(self) -> bool:
        """Append the buffered rows to the datasets (not yet flushed); True if any."""
        n = self.pending
        if not n:
            return False
        end = self.rows + n
        for ds, buf in zip(self.datasets, self.buffers):
            ds.resize(end, axis=0)
            ds[self.rows:end] = buf[:n]
        self.rows, self.pending = end, 0
        return True


class RunWriter:
    """Writes one run file (see the module's description and docs/run-file.md).

    Args:
        path: the file to create; an existing file is never overwritten.
        n_sources, n_targets, n_edges: sizes S, T, E of the network (each at least 1).
        n_test: number of test samples M of every :meth:`evaluation` (0: no evaluations).
        metadata: name -> text stored in ``/metadata`` (e.g. ``"experiment"``: TOML,
            ``"network"``: TOML, ``"wiring"``: TOML, ``"calibration"``: JSON or "",
            ``"task"``: JSON, see docs/run-file.md).
        provenance: JSON-able dict, usually :func:`provenance`'s.
        task_arrays: name -> array stored once under ``/task`` (e.g. ``train_inputs``,
            ``test_targets``).
        flush_s: longest time between flushes (s), measured with ``clock``.
        buffer_rows: rows buffered per table before a flush is forced.
        clock: monotonic seconds; tests inject their own.

    Attributes:
        path: the file.
        metadata: name -> text, as stored (also after :meth:`resume`).
        last_checkpoint: the state of the latest :meth:`checkpoint` (None before the first).
        last_checkpoint_step: its step (None before the first).

    Raises:
        RunFileError: the file exists already.
        ValueError: a size, name or setting is out of range.
    """

    def __init__(
        self, path, *, n_sources: int, n_targets: int, n_edges: int, n_test: int = 0,
        metadata: dict[str, str], provenance: dict, task_arrays: dict[str, np.ndarray] | None = None,
        flush_s: float = 1.0, buffer_rows: int = 4096, clock: Callable[[], float] = time.monotonic,
    ):
        path = Path(path)
        sizes = {"n_sources": n_sources, "n_targets": n_targets, "n_edges": n_edges}
        for name, n in sizes.items():
            if not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        if not isinstance(n_test, (int, np.integer)) or n_test < 0:
            raise ValueError(f"n_test must be a non-negative integer, got {n_test!r}")
        for name, text in metadata.items():
            _check_name(name, "metadata")
            if not isinstance(text, str):
                raise ValueError(f"metadata {name!r} must be text, got {type(text).__name__}")
        arrays = {}
        for name, a in (task_arrays or {}).items():
            _check_name(name, "task array")
            a = np.asarray(a)
            if a.dtype.hasobject:
                raise ValueError(f"task array {name!r}: numbers or text only, got an object array")
            arrays[name] = a
        prov_text = json.dumps(provenance, default=_json_default)
        _check_settings(flush_s, buffer_rows)
        lock = _lock_for_writing(path)
        try:
            f = _open_file(path, "w-")
        except FileExistsError:
            lock.release()
            raise RunFileError(
                f"{path}: already exists (a run file is never overwritten; resume it or choose another name)"
            ) from None
        except BaseException:
            lock.release()
            raise
        try:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["status"] = "running"
            f.attrs["start_time"] = provenance.get("start_time") or _now_iso()
            for name, n in sizes.items():
                f.attrs[name] = int(n)
            f.attrs["n_test"] = int(n_test)
            _mark_writer(f)
            meta = f.create_group("metadata")
            for name, text in metadata.items():
                _text_dataset(meta, name, text)
            _text_dataset(f, "provenance", prov_text)
            task = f.create_group("task")
            for name, a in arrays.items():
                if a.dtype.kind == "U":
                    task.create_dataset(name, data=a.astype(object), dtype=h5py.string_dtype())
                elif a.ndim and a.size * a.dtype.itemsize > 65536:
                    task.create_dataset(name, data=a, shuffle=True, **_COMPRESSION)
                else:
                    task.create_dataset(name, data=a)
            for group, columns in _schema(n_sources, n_targets, n_edges, n_test).items():
                _create_table(f.create_group(group), columns)
            ck = f.create_group("checkpoint")
            ck.create_dataset(
                "slots", shape=(2, 0), maxshape=(2, None), chunks=(1, CHECKPOINT_CHUNK_BYTES), dtype=_U1
            ).attrs["description"] = "two slots of UTF-8 JSON, written alternately"
            empty = np.array([-1, -1, 0, 0] + [0] * len(TABLES), _I8)
            pointer = ck.create_dataset("pointer", data=empty, chunks=empty.shape, maxshape=empty.shape)
            pointer.attrs["description"] = (
                "step, slot, length in bytes, CRC-32 of the latest checkpoint (step -1: none), then the rows "
                f"of {', '.join(TABLES)} when it was taken"
            )
            f.flush()
            self._start(f, path, flush_s, buffer_rows, clock, t_s=0.0, lock=lock)
        except BaseException:  # an interrupted creation leaves no file behind
            _OPEN_WRITERS.discard(path.resolve())
            f.close()
            path.unlink(missing_ok=True)
            lock.release()
            raise

    @classmethod
    def resume(
        cls, path, *, flush_s: float = 1.0, buffer_rows: int = 4096,
        clock: Callable[[], float] = time.monotonic, force: bool = False,
    ) -> "RunWriter":
        """Reopen a run file to continue it from its last checkpoint.

        Every record written after the last checkpoint is dropped (each table is truncated
        to the rows it had when the checkpoint was taken: those of steps up to the
        checkpoint's step N), the status goes back to "running", an event "resumed at step
        N" is logged and SWMR mode starts again.
        A file whose writer was killed is fine; its HDF5 "open for writing" flags are
        cleared first, once the writer is known to be gone (same host, process not
        alive; pass ``force=True`` when it was written on another host and is dead).

        Raises:
            RunFileError: the file is not a twinrig run file, is marked complete, has no
                checkpoint, or its writer may still be alive.
        """
        path = Path(path)
        _check_settings(flush_s, buffer_rows)
        if path.resolve() in _OPEN_WRITERS:
            raise RunFileError(f"{path}: is still being written by this process")
        lock = _lock_for_writing(path)
        try:
            return cls._resume(path, lock, flush_s, buffer_rows, clock, force)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _resume(cls, path: Path, lock, flush_s: float, buffer_rows: int, clock, force: bool) -> "RunWriter":
        with RunReader(path) as r:
            status, pointer = r.stored_status, r.checkpoint_pointer()
            host, pid = r.attrs.get("writer_host"), r.attrs.get("writer_pid")
            if status == "complete":
                raise RunFileError(f"{path}: the run is complete; there is nothing to resume")
            if pointer[0] < 0:
                raise RunFileError(f"{path}: has no checkpoint to resume from")
            state = _read_checkpoint(r._file, pointer, path)
            rows = dict(zip(TABLES, (int(n) for n in pointer[4:])))
            for name, n in rows.items():
                if r.rows(name) < n:
                    raise RunFileError(f"{path}: /{name} has {r.rows(name)} rows, fewer than the {n} of the checkpoint")
        if status == "running" and not force:
            if host != socket.gethostname():
                raise RunFileError(
                    f"{path}: was being written on host {host} (process {pid}); resume it there, "
                    "or pass force=True if that writer is gone"
                )
            mine = path.resolve() in _OPEN_WRITERS
            if mine or (pid is not None and int(pid) != os.getpid() and _alive(int(pid))):
                raise RunFileError(f"{path}: is still being written by process {pid}")
        _clear_open_flags(path)
        ck_step = int(pointer[0])
        f = _open_file(path, "r+")
        try:
            for name, n in rows.items():
                for ds in f[name].values():
                    ds.resize(n, axis=0)
            f.attrs["status"] = "running"
            if "end_time" in f.attrs:
                del f.attrs["end_time"]
            _mark_writer(f)
            t_s = max(_last_t_s(f), _seconds_since(f.attrs["start_time"]))
            f.flush()
            self = cls.__new__(cls)
            self._start(f, path, flush_s, buffer_rows, clock, t_s=t_s, checkpoint=(ck_step, state), lock=lock)
        except BaseException:
            f.close()
            raise
        self.event(ck_step, "info", f"resumed at step {ck_step}")
        self.flush()
        return self

    def _start(self, f: h5py.File, path: Path, flush_s: float, buffer_rows: int, clock, t_s: float,
               checkpoint: tuple[int | None, dict | None] = (None, None), lock=None) -> None:
        """Take over the open file ``f`` (no SWMR yet), switch on SWMR; ``t_s`` is now;
        ``checkpoint``: (step, state) of the last checkpoint; ``lock``: the file's write lock,
        held until :meth:`close`."""
        self.path = path
        self._lock = lock
        self.metadata = {name: _read_text(ds) for name, ds in f["metadata"].items()}
        self._file = f
        self._clock = clock
        self._flush_s = float(flush_s)
        self._cap = int(buffer_rows)
        a = f.attrs
        self._shape_outputs = (int(a["n_test"]), int(a["n_targets"]))
        self._n_edges = int(a["n_edges"])
        schema = _schema(int(a["n_sources"]), int(a["n_targets"]), self._n_edges, int(a["n_test"]))
        big = max(int(np.prod(self._shape_outputs)) * 8, 1)
        caps = {"evaluations": max(1, min(self._cap, (1 << 20) // big))}  # at most ~1 MiB buffered
        self._tables = {name: _Table(f[name], cols, caps.get(name, self._cap)) for name, cols in schema.items()}
        self._steps = self._tables["steps"]
        self._step_buffers = self._steps.buffers
        self._slots = f["checkpoint/slots"]
        self._pointer = f["checkpoint/pointer"]
        self._slot = int(self._pointer[1])
        self.last_checkpoint_step, self.last_checkpoint = checkpoint
        self._closed = False
        f.swmr_mode = True
        _OPEN_WRITERS.add(path.resolve())
        now = clock()
        self._t0 = now - t_s
        self._last_flush = now

    # -- records -----------------------------------------------------------------------------

    def step(self, step: int, epoch: int, sample: int, inputs, free_outputs, clamps, targets,
             error: float, learned: bool) -> None:
        """Record one training step: ``inputs`` (S,) source voltages (V), ``free_outputs``,
        ``clamps`` and ``targets`` (T,) target voltages O_F, O_C and L (V), ``error`` (V^2),
        ``learned``: whether the learning pulse was applied. Copies into the buffer; flushes
        when it is full or ``flush_s`` has passed since the last flush."""
        if self._closed:
            raise RunFileError(f"{self.path}: the run file is closed")
        t = self._steps
        i = t.pending
        now = self._clock()
        b_step, b_epoch, b_sample, b_error, b_learned, b_t, b_in, b_free, b_clamp, b_target = self._step_buffers
        b_step[i] = step
        b_epoch[i] = epoch
        b_sample[i] = sample
        b_error[i] = error
        b_learned[i] = learned
        b_t[i] = now - self._t0
        b_in[i] = inputs
        b_free[i] = free_outputs
        b_clamp[i] = clamps
        b_target[i] = targets
        t.pending = i + 1
        if i + 1 == self._cap or now - self._last_flush >= self._flush_s:
            self.flush()

    def evaluation(self, step: int, epoch: int, outputs: np.ndarray) -> None:
        """Record the free target voltages (M, T) of the whole test set at ``step`` (V)."""
        outputs = np.asarray(outputs, dtype=float)
        if self._shape_outputs[0] == 0:
            raise ValueError(f"{self.path}: this run has no test set (n_test = 0)")
        if outputs.shape != self._shape_outputs:
            raise ValueError(f"evaluation outputs must have shape {self._shape_outputs}, got {outputs.shape}")
        self._append("evaluations", (step, epoch, outputs))

    def epoch(self, epoch: int, step: int, *, train_error: float = float("nan"),
              train_accuracy: float = float("nan"), test_error: float = float("nan"),
              test_accuracy: float = float("nan")) -> None:
        """Record an epoch's figures (errors in V^2, accuracies as fractions; NaN: not taken)."""
        self._append("epochs", (epoch, step, train_error, train_accuracy, test_error, test_accuracy))

    def edges(self, step: int, state: np.ndarray) -> None:
        """Record a snapshot (E,) of the edges' learned state (the device's unit)."""
        state = np.asarray(state, dtype=float)
        if state.shape != (self._n_edges,):
            raise ValueError(f"edge state must have shape ({self._n_edges},), got {state.shape}")
        self._append("edges", (step, state))

    def event(self, step: int, level: str, message: str) -> None:
        """Log an event. ``level``: info | warning | fault | pause. The message is stored as
        UTF-8 cut to at most 240 bytes (never inside a character), NUL characters removed.
        A fault is flushed at once."""
        if level not in LEVELS:
            raise ValueError(f"event level must be one of {', '.join(LEVELS)}, got {level!r}")
        now = self._clock()
        self._append("events", (step, now - self._t0, level.encode("ascii"), event_bytes(message)), now)
        if level == "fault":
            self.flush()

    def _append(self, name: str, row: tuple, now: float | None = None) -> None:
        if self._closed:
            raise RunFileError(f"{self.path}: the run file is closed")
        t = self._tables[name]
        i = t.pending
        for buf, value in zip(t.buffers, row):
            buf[i] = value
        t.pending = i + 1
        now = self._clock() if now is None else now
        if i + 1 == t.buffers[0].shape[0] or now - self._last_flush >= self._flush_s:
            self.flush()

    # -- durability ----------------------------------------------------------------------------

    def checkpoint(self, step: int, state: dict) -> None:
        """Store the runner's resume state (JSON-able; numpy arrays allowed, see
        :func:`encode_state`) together with every record written so far: the records are
        flushed first, then the state goes into the slot not holding the previous
        checkpoint, and only then does the pointer (step, slot, length, CRC-32, the tables'
        row counts) move to it, so a crash at any moment leaves one complete checkpoint."""
        if self._closed:
            raise RunFileError(f"{self.path}: the run file is closed")
        blob = encode_state(state)
        self.flush()
        slot = 1 - self._slot if self._slot in (0, 1) else 0
        if self._slots.shape[1] < len(blob):
            self._slots.resize(len(blob), axis=1)
        self._slots[slot, : len(blob)] = np.frombuffer(blob, _U1)
        self._file.flush()
        rows = [self._tables[name].rows for name in TABLES]
        self._pointer[:] = (step, slot, len(blob), zlib.crc32(blob), *rows)
        self._file.flush()
        self._slot = slot
        self.last_checkpoint_step = int(step)
        self.last_checkpoint = decode_state(blob)

    def tick(self) -> None:
        """Flush if ``flush_s`` has passed since the last flush (call it between steps)."""
        if not self._closed and self._clock() - self._last_flush >= self._flush_s:
            self.flush()

    def flush(self) -> None:
        """Write every buffered record: from now on readers see it and a crash of this
        process cannot lose it (no fsync: a power cut still can)."""
        if self._closed:
            return
        wrote = False
        for t in self._tables.values():
            wrote |= t.write()
        if wrote:
            self._file.flush()
        self._last_flush = self._clock()

    def close(self, status: str = "complete") -> None:
        """Flush, close, and mark the file ``status`` (complete | interrupted | failed) with
        its ``end_time``. A second call does nothing. If the last flush fails the status
        becomes "failed" and the error is raised after the file is marked."""
        if status not in STATUSES[1:]:
            raise ValueError(f"status must be one of {', '.join(STATUSES[1:])}, got {status!r}")
        if self._closed:
            return
        failure: BaseException | None = None
        try:
            self.flush()
        except BaseException as exc:
            failure, status = exc, "failed"
        self._closed = True
        _OPEN_WRITERS.discard(self.path.resolve())
        try:
            self._file.close()
        except BaseException as exc:
            failure = failure or exc
        # attributes cannot change in SWMR mode: mark the file in a short ordinary session
        try:
            with _open_file(self.path, "r+") as f:
                f.attrs["status"] = status
                f.attrs["end_time"] = _now_iso()
        finally:
            if self._lock is not None:
                self._lock.release()
        if failure is not None:
            raise failure

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        """Close as "complete", "interrupted" (KeyboardInterrupt) or "failed" (any other
        exception), unless already closed."""
        if not self._closed:
            if exc_type is None:
                self.close("complete")
            else:
                self.close("interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed")
        return False


def event_bytes(message: str) -> bytes:
    """``message`` as stored: UTF-8 (unencodable characters as "?"), NULs removed, cut to at
    most :data:`MESSAGE_BYTES` bytes at a character boundary."""
    raw = message.replace("\x00", "").encode("utf-8", errors="replace")[:MESSAGE_BYTES]
    return raw.decode("utf-8", errors="ignore").encode("utf-8")


def _check_settings(flush_s: float, buffer_rows: int) -> None:
    if not flush_s >= 0:
        raise ValueError(f"flush_s must be at least 0 s, got {flush_s!r}")
    if not isinstance(buffer_rows, (int, np.integer)) or buffer_rows < 1:
        raise ValueError(f"buffer_rows must be a positive integer, got {buffer_rows!r}")


def _lock_for_writing(path: Path):
    """The write lock of the run file ``path`` (see :mod:`hostctl.locks`), acquired.

    Raises:
        RunFileError: another process (or another writer of this one) holds it, or the lock
            file cannot be made there (the message names the file and why).
    """
    from .locks import FileLock, LockHeld, lock_path_for

    lock = FileLock(lock_path_for(path))
    try:
        return lock.acquire()
    except LockHeld as exc:
        who = "another process" if exc.pid is None else f"process {exc.pid}"
        raise RunFileError(f"{path}: is still being written by {who} (it holds {exc.path}); "
                           "a run file is written by one process at a time") from None
    except OSError as exc:
        raise RunFileError(f"{path}: cannot write a run file there: {exc.strerror or exc}") from None


def _mark_writer(f: h5py.File) -> None:
    f.attrs["writer_host"] = socket.gethostname()
    f.attrs["writer_pid"] = os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _seconds_since(iso: str) -> float:
    try:
        return max(0.0, time.time() - datetime.fromisoformat(iso).timestamp())
    except (TypeError, ValueError):
        return 0.0


def _last_t_s(f: h5py.File) -> float:
    last = [float(f[g]["t_s"][-1]) for g in ("steps", "events") if f[g]["t_s"].shape[0]]
    return max(last, default=0.0)


def _read_checkpoint(f: h5py.File, pointer: np.ndarray, path: Path) -> dict:
    step, slot, length, crc = (int(v) for v in pointer[:4])
    if slot not in (0, 1) or length > f["checkpoint/slots"].shape[1]:
        raise RunFileError(f"{path}: the checkpoint pointer is damaged ({pointer.tolist()})")
    blob = f["checkpoint/slots"][slot, :length].tobytes()
    if zlib.crc32(blob) != crc:
        raise RunFileError(f"{path}: the checkpoint of step {step} is damaged (CRC mismatch)")
    return decode_state(blob)


# -- the HDF5 superblock's "open for writing" flags -----------------------------------------


_M32 = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 hash (hashlittle), HDF5's metadata checksum."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & _M32
    padded = data + bytes(-n % 12 if n else 0)
    words = [int.from_bytes(padded[i:i + 4], "little") for i in range(0, len(padded), 4)]
    last = max(len(words) // 3 - 1, 0)
    for block in range(last):
        a, b, c = ((v + w) & _M32 for v, w in zip((a, b, c), words[3 * block:3 * block + 3]))
        for k in (4, 6, 8, 16, 19, 4):  # mix: x -= z; x ^= rot(z, k); z += y, roles rotating
            a = ((a - c) & _M32) ^ _rot(c, k)
            c = (c + b) & _M32
            a, b, c = b, c, a
    if n == 0:
        return c
    a, b, c = ((v + w) & _M32 for v, w in zip((a, b, c), words[3 * last:3 * last + 3]))
    x, y, z = c, b, a
    for k in (14, 11, 25, 16, 4, 14, 24):  # final: x ^= y; x -= rot(y, k), roles rotating
        x = ((x ^ y) - _rot(y, k)) & _M32
        x, y, z = z, x, y
    return y  # seven rotations: c is now in y's place


def _clear_open_flags(path: Path) -> bool:
    """Clear the file-consistency flags a killed writer leaves in the superblock (what
    HDF5's ``h5clear -s`` does); True if they were set. Only for a writer known to be gone."""
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3):
            raise RunFileError(f"{path}: not an HDF5 file with a version 2 or 3 superblock")
        end = 12 + 4 * head[9]  # four addresses, then the checksum
        fh.seek(0)
        block = fh.read(end + 4)
        if int.from_bytes(block[end:end + 4], "little") != _lookup3(block[:end]):
            raise RunFileError(f"{path}: the HDF5 superblock is damaged (checksum mismatch)")
        if block[11] == 0:
            return False
        cleared = block[:11] + b"\x00" + block[12:end]
        fh.seek(0)
        fh.write(cleared + _lookup3(cleared).to_bytes(4, "little"))
        fh.flush()
        os.fsync(fh.fileno())
    return True


# -- reading ---------------------------------------------------------------------------------


@dataclass
class Run:
    """A run file's content.

    Attributes:
        steps: step, epoch, sample, error (V^2), learned (bool), t_s (s), input_0..input_{S-1},
            free_0..free_{T-1}, clamp_0.., target_0.. (V).
        epochs: epoch, step, train_error, train_accuracy, test_error, test_accuracy.
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


_READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, UnicodeDecodeError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _damaged(path: Path, exc: BaseException) -> RunFileError:
    return RunFileError(f"{path}: the run file is damaged or incomplete ({type(exc).__name__}: {_first_line(exc)})")


def _one_line_damage(method):
    """What HDF5 raises reading a damaged file (a cut dataset, a broken heap, a missing
    group) becomes one RunFileError naming the file."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        try:
            return method(self, *args, **kw)
        except RunFileError:
            raise
        except _READ_ERRORS as exc:
            raise _damaged(self.path, exc) from None
    return wrapper


def _being_written(path: Path) -> bool:
    """Whether a live process holds the run file's write lock (by the pid it recorded)."""
    from .locks import holder, lock_path_for

    return holder(lock_path_for(path)) is not None


def _check_intact(path: Path) -> bool:
    """RunFileError when a file nobody writes is shorter than its HDF5 superblock says
    (cut, or copied before it was complete), or its superblock is damaged. A SWMR writer
    extends the file before its superblock points past the old end, so a killed writer's
    file passes. Returns whether the superblock is marked open for writing (a killed
    writer's file, which HDF5 opens only in SWMR mode)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3):
            return True  # another superblock version: HDF5 checks it
        size_o = head[9]
        end = 12 + 4 * size_o
        block = head + fh.read(end + 4 - 12)
    if len(block) < end + 4:
        raise RunFileError(f"{path}: the run file is damaged (its HDF5 superblock is cut short)")
    if int.from_bytes(block[end:end + 4], "little") != _lookup3(block[:end]):
        raise RunFileError(f"{path}: the run file is damaged (its HDF5 superblock checksum does not match)")
    base = int.from_bytes(block[12:12 + size_o], "little")
    eof = base + int.from_bytes(block[12 + 2 * size_o:12 + 3 * size_o], "little")
    size = path.stat().st_size
    if size < eof:
        raise RunFileError(f"{path}: the run file is damaged: it has {size} bytes, its HDF5 superblock says "
                           f"{eof} (cut short, or copied before it was complete)")
    return block[11] != 0


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
            order = ("epoch", "step", "train_error", "train_accuracy", "test_error", "test_accuracy")
            return pd.DataFrame({k: cols[k] for k in order})
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


def _task_array(ds: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return np.array(ds.asstr()[()], dtype=str)
    return ds[()]


def load(path) -> Run:
    """Read a run file (SWMR read mode: works while a writer is running and on the file of
    a killed writer).

    Raises:
        FileNotFoundError: no such file.
        RunFileError: not a twinrig run file, or unreadable (the message names the file).
    """
    with RunReader(path) as r:
        return r.run()
