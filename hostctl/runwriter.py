"""Writing run files: :class:`RunWriter` creates a run file, appends its records in
buffered batches in SWMR mode, checkpoints the runner's state, resumes a file from its last
checkpoint and closes it with its status.

One process writes a run file at a time: the writer holds the file's lock
(:mod:`hostctl.locks`) and records its host and process id in the file. Voltages are in V,
errors in V^2, times in s (``flush_s``: the longest time between flushes, on a monotonic
clock); event messages are at most :data:`~hostctl.runschema.MESSAGE_BYTES` bytes of
UTF-8 (:func:`event_bytes`). The layout is in ``docs/run-file.md``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from .runcheck import _alive, _clear_open_flags
from .runreader import RunReader
from .runschema import (
    CHECKPOINT_CHUNK_BYTES, FORMAT, FORMAT_VERSION, LEVELS, MESSAGE_BYTES, STATUSES, TABLES, RunFileError, _Column,
    _I8, _U1, _check_name, _create_table, _json_default, _now_iso, _open_file, _read_checkpoint, _read_text, _schema,
    _task_dataset, _text_dataset, decode_state, encode_state,
)

_OPEN_WRITERS: set[Path] = set()  # files this process is writing (resume must not take them over)


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
                _task_dataset(task, name, a)
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
              test_accuracy: float = float("nan"), lab_time_s: float = float("nan"),
              power_free_w: float = float("nan"), power_clamped_w: float = float("nan"),
              energy_inference_j: float = float("nan"), energy_update_j: float = float("nan"),
              energy_per_parameter_j: float = float("nan")) -> None:
        """Record an epoch's figures (errors in V^2, accuracies as fractions, time s, power W,
        energy J; NaN: not taken)."""
        self._append("epochs", (epoch, step, train_error, train_accuracy, test_error, test_accuracy, lab_time_s,
                                power_free_w, power_clamped_w, energy_inference_j, energy_update_j,
                                energy_per_parameter_j))

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



def _seconds_since(iso: str) -> float:
    try:
        return max(0.0, time.time() - datetime.fromisoformat(iso).timestamp())
    except (TypeError, ValueError):
        return 0.0


def _last_t_s(f: h5py.File) -> float:
    last = [float(f[g]["t_s"][-1]) for g in ("steps", "events") if f[g]["t_s"].shape[0]]
    return max(last, default=0.0)

