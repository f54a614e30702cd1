"""The run file's format: constants, the tables' columns, how datasets are laid out and
opened, texts, task arrays, checkpoint state as JSON, provenance.

This is the lowest of the run-file modules (:mod:`hostctl.runcheck`,
:mod:`hostctl.runreader` and :mod:`hostctl.runwriter` import it); :mod:`hostctl.runfile`
re-exports its public names. Units are SI (V, V^2, s; sizes in bytes); the format itself is
described in ``docs/run-file.md``.
"""

from __future__ import annotations

import base64
import getpass
import importlib.metadata
import json
import platform
import re
import socket
import subprocess
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

FORMAT = "twinrig-run"
FORMAT_VERSION = 2  # 2: the epochs carry lab time, power and energy

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


class RunFileError(ValueError):
    """A file is not a usable run file (not one at all, from a newer twinrig, complete when
    it should not be, without a checkpoint, damaged); the message names the file."""


# -- provenance ------------------------------------------------------------------------------


def provenance(identities: dict[str, str] | None = None, settings: dict[str, dict] | None = None) -> dict:
    """Where a run comes from: software, source tree, machine, start time, instruments.

    Returns:
        ``{"twinrig_version", "git_revision", "git_dirty", "host", "user", "python",
        "platform", "packages", "start_time", "instruments", "settings"}``: ``git_revision`` and
        ``git_dirty`` are None unless the package is imported from a git checkout (dirty:
        any change to tracked files or any untracked file that is not ignored);
        ``start_time`` is ISO 8601 UTC; ``instruments`` is ``identities`` (instrument name
        -> identity string, e.g. the ``*IDN?`` reply), or ``{}``; ``settings`` is what each
        instrument was set to, read back from it (role -> setting -> value, see
        :meth:`instruments.rig.Rig.settings`), or ``{}``.
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
        "settings": {role: dict(values) for role, values in (settings or {}).items()},
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
            C("lab_time_s", _F8, (), "s", "the bench's time at the epoch's end: the simulated bench's own clock "
              "(DAQ operations and bus traffic), on hardware the time since the run began"),
            C("power_free_w", _F8, (), "W", "mean power the free twin dissipated during the epoch's inferences "
              "(NaN: not known, a real bench)"),
            C("power_clamped_w", _F8, (), "W", "the same for the clamped twin"),
            C("energy_inference_j", _F8, (), "J", "mean energy of one inference: both twins over its settle and read"),
            C("energy_update_j", _F8, (), "J", "mean energy of one update: both twins over its settle and pulse, "
              "and the charge the gates took"),
            C("energy_per_parameter_j", _F8, (), "J", "energy_inference_j per learning edge"),
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


def _task_dataset(group: h5py.Group, name: str, a: np.ndarray) -> None:
    """Store the task array ``a`` once as ``group[name]``: text as variable-length UTF-8,
    numbers as given (compressed when over 64 KiB)."""
    if a.dtype.kind == "U":
        group.create_dataset(name, data=a.astype(object), dtype=h5py.string_dtype())
    elif a.ndim and a.size * a.dtype.itemsize > 65536:
        group.create_dataset(name, data=a, shuffle=True, **_COMPRESSION)
    else:
        group.create_dataset(name, data=a)


def _task_array(ds: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return np.array(ds.asstr()[()], dtype=str)
    return ds[()]


def _read_checkpoint(f: h5py.File, pointer: np.ndarray, path: Path) -> dict:
    step, slot, length, crc = (int(v) for v in pointer[:4])
    if slot not in (0, 1) or length > f["checkpoint/slots"].shape[1]:
        raise RunFileError(f"{path}: the checkpoint pointer is damaged ({pointer.tolist()})")
    blob = f["checkpoint/slots"][slot, :length].tobytes()
    if zlib.crc32(blob) != crc:
        raise RunFileError(f"{path}: the checkpoint of step {step} is damaged (CRC mismatch)")
    return decode_state(blob)
