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

The file, in short: root attributes ``format`` ("twinrig-run"), ``format_version``,
``status``, ``start_time``, ``end_time``, the sizes ``n_sources``, ``n_targets``,
``n_edges``, ``n_test`` (S, T, E, M) and the writer's host and process id; texts in
``/metadata`` and ``/provenance`` (JSON); task arrays in ``/task``; the appendable tables
``/steps``, ``/epochs``, ``/evaluations``, ``/edges`` and ``/events`` (one chunked,
compressed dataset a column, each with its ``unit`` and ``description``: voltages in V,
errors in V^2, times in s); and ``/checkpoint`` (two slots of JSON state and a pointer to
the latest, with every table's row count when it was taken).

Import every name from this module; the code lives in the modules beside it, one per part:

* :mod:`hostctl.runschema`: the format's constants, the tables' columns and datasets,
  texts and task arrays, checkpoint state as JSON (:func:`encode_state`,
  :func:`decode_state`), :func:`provenance`, :class:`RunFileError`; the lowest module;
* :mod:`hostctl.runcheck`: a file's integrity against its HDF5 superblock, clearing a
  killed writer's "open for writing" flags, whether a writer lives, one-line errors for
  damaged files;
* :mod:`hostctl.runreader`: :class:`RunReader`, :class:`Run` and :func:`load`;
* :mod:`hostctl.runwriter`: :class:`RunWriter` (create, append, checkpoint, resume, close)
  and :func:`event_bytes`.
"""

from __future__ import annotations

from .runreader import Run, RunReader, load
from .runschema import (  # noqa: F401  (_git_state: for tests)
    CHECKPOINT_CHUNK_BYTES, CHUNK_BYTES, CHUNK_CACHE_BYTES, FORMAT, FORMAT_VERSION, LEVELS, MESSAGE_BYTES,
    STATUSES, TABLES, RunFileError, _git_state, decode_state, encode_state, provenance,
)
from .runwriter import RunWriter, event_bytes

__all__ = [
    # the format
    "FORMAT", "FORMAT_VERSION", "STATUSES", "LEVELS", "MESSAGE_BYTES", "CHUNK_BYTES", "CHUNK_CACHE_BYTES",
    "CHECKPOINT_CHUNK_BYTES", "TABLES", "RunFileError", "provenance", "encode_state", "decode_state",
    # writing
    "RunWriter", "event_bytes",
    # reading
    "Run", "RunReader", "load",
]
