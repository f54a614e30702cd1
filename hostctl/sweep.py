"""Parameter sweeps: many simulated runs of one experiment, each with some fields changed.

A sweep file (TOML) names a base experiment and the fields to vary::

    name = "eta"
    base = "iris_gen2"              # a built-in experiment, or base_file = "exp.toml"
    out = "sweeps/eta"              # default output folder (relative to the working folder)

    [grid]                          # the Cartesian product of the lists
    "rule.eta" = [0.05, 0.1, 0.2]
    "seed" = [0, 1, 2, 3]

or, instead of ``[grid]``, ``[random]`` with ``n`` points drawn with ``seed``, and per field
``{low, high}`` (uniform), ``{values = [...]}`` (a choice) or ``{log_low, log_high}``
(log-uniform).

:func:`load_sweep` reads and validates the file; :func:`expand` turns it into points, each the
base experiment with the fields replaced and validated by
:func:`~hostctl.experiment.loads_experiment`; :func:`run_sweep` runs the points on a dask
client (one task per point, each writing ``OUT/points/<index>-<hash>.h5``) and
:func:`write_summary` writes ``summary.parquet`` and ``summary.png``. A point whose run file
exists with status "complete" is not run again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import tomli_w
from pydantic import Field, model_validator

from instruments.tomlspec import SpecProblem, Strict, read_text, shown, validate_spec

from .experiment import BUILTIN_EXPERIMENTS, ExperimentFileError, builtin_experiment_text, loads_experiment

Number = float | int

STATUSES = ("complete", "failed", "skipped-existing")
#: The most points a sweep file may describe (grid product or ``random.n``): every point is
#: built and validated before anything runs.
MAX_POINTS = 100_000
METRICS = ("train_error", "test_error", "train_accuracy", "test_accuracy")


class SweepFileError(ValueError):
    """A sweep file, or one of its points, is malformed; the message names the file, the
    field and the value."""

    def __init__(self, source: str, field: str, problem: str):
        self.source = source
        self.field = field
        super().__init__(f"{source}: {field}: {problem}" if field else f"{source}: {problem}")


# -- the schema ------------------------------------------------------------------------------


class UniformSpec(Strict):
    low: Number
    high: Number

    @model_validator(mode="after")
    def _check(self):
        if not self.low < self.high:
            raise ValueError(f"low must be below high (got low={self.low}, high={self.high})")
        return self

    def draw(self, rng: np.random.Generator):
        return float(rng.uniform(self.low, self.high))


class LogUniformSpec(Strict):
    log_low: Number = Field(gt=0)
    log_high: Number = Field(gt=0)

    @model_validator(mode="after")
    def _check(self):
        if not self.log_low < self.log_high:
            raise ValueError(f"log_low must be below log_high (got {self.log_low}, {self.log_high})")
        return self

    def draw(self, rng: np.random.Generator):
        return float(math.exp(rng.uniform(math.log(self.log_low), math.log(self.log_high))))


class ChoiceSpec(Strict):
    values: list[Any] = Field(min_length=1)

    def draw(self, rng: np.random.Generator):
        return self.values[int(rng.integers(len(self.values)))]


_DISTRIBUTION_KEYS = {"low", "high", "log_low", "log_high", "values"}


class SweepSpec(Strict):
    name: str | None = None
    description: str = ""
    base: str | None = None
    base_file: str | None = None
    out: str | None = None
    grid: dict[str, Any] | None = None
    random: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self):
        if (self.base is None) == (self.base_file is None):
            raise ValueError("give exactly one of base (a built-in experiment) or base_file")
        if self.base is not None and self.base not in BUILTIN_EXPERIMENTS:
            raise ValueError(f"base must be a built-in experiment ({', '.join(BUILTIN_EXPERIMENTS)}), "
                             f"got {self.base!r}; use base_file for a file")
        if (self.grid is None) == (self.random is None):
            raise ValueError("give exactly one of [grid] or [random]")
        return self


# -- what a file describes -------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One run of a sweep.

    Attributes:
        index: its place in the sweep (from 0).
        params: dotted field -> value, the swept fields only.
        text: the experiment file it runs (TOML).
        hash: 12 hex digits of the SHA-256 of the whole experiment: the same point of a
            resumed sweep has the same hash; a changed base or value gives another.
    """

    index: int
    params: dict[str, Any]
    text: str
    hash: str

    @property
    def file_name(self) -> str:
        return f"{self.index}-{self.hash}.h5"


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file.

    Attributes:
        name: the file's name, or its stem.
        source: the file (for messages).
        base_data: the base experiment as a TOML dict.
        base_dir: the folder relative files of the experiment are found in (None: built-in).
        fields: the swept dotted fields, in file order.
        grid: field -> values, or None.
        n, seed, distributions: the random sweep (n 0 for a grid).
        out: the default output folder.
    """

    name: str
    source: str
    base_data: dict
    base_dir: Path | None
    fields: tuple[str, ...]
    grid: dict[str, list] | None
    n: int
    seed: int
    distributions: dict[str, UniformSpec | LogUniformSpec | ChoiceSpec]
    out: Path


def _flatten(table: dict, prefix: str, is_leaf: Callable[[Any], bool]) -> dict[str, Any]:
    """``{"rule": {"eta": v}}`` -> ``{"rule.eta": v}`` (unquoted dotted TOML keys nest)."""
    flat = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and not is_leaf(value):
            flat.update(_flatten(value, path, is_leaf))
        else:
            flat[path] = value
    return flat


def _distribution(field: str, value) -> UniformSpec | LogUniformSpec | ChoiceSpec:
    if not isinstance(value, dict):
        raise SpecProblem(f"random.{field}", f"must be a table {{low, high}}, {{values}} or "
                          f"{{log_low, log_high}} (got {shown(value)})")
    keys = set(value)
    model = ChoiceSpec if "values" in keys else LogUniformSpec if keys & {"log_low", "log_high"} else UniformSpec
    return validate_spec(model, value, f"random.{field}")


def loads_sweep(text: str, source: str = "<sweep>", base: Path | None = None) -> Sweep:
    """A :class:`Sweep` from the text of a sweep file; ``base`` is the folder ``base_file`` is
    relative to.

    Raises:
        SweepFileError: a syntax error, a missing or unknown field, a bad value, an
            unreadable or invalid base experiment.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepFileError(source, "", f"not valid TOML: {exc}") from None
    try:
        spec = validate_spec(SweepSpec, data)
        grid, n, seed, dists = None, 0, 0, {}
        if spec.grid is not None:
            grid = _flatten(spec.grid, "", lambda v: False)
            for field, values in grid.items():
                if not isinstance(values, list) or not values:
                    raise SpecProblem(f"grid.{field}", f"must be a non-empty list of values (got {shown(values)})")
            size = math.prod(len(values) for values in grid.values())
            if size > MAX_POINTS:
                lengths = " x ".join(str(len(values)) for values in grid.values())
                raise SpecProblem("grid", f"describes {lengths} = {size} points, at most {MAX_POINTS} "
                                          "(every point is built and checked before the sweep runs)")
            fields = tuple(grid)
        else:
            rest = dict(spec.random)
            n = rest.pop("n", None)
            # a table under "seed" draws the experiment's seed; a number seeds the draws
            seed = 0 if isinstance(rest.get("seed", 0), dict) else rest.pop("seed", 0)
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_POINTS:
                raise SpecProblem("random.n", "missing" if n is None else
                                  f"must be a whole number from 1 to {MAX_POINTS} (got {shown(n)})")
            if not isinstance(seed, int) or isinstance(seed, bool):
                raise SpecProblem("random.seed", f"must be a whole number (got {shown(seed)})")
            flat = _flatten(rest, "", lambda v: bool(set(v) & _DISTRIBUTION_KEYS))
            dists = {field: _distribution(field, value) for field, value in flat.items()}
            fields = tuple(dists)
        if not fields:
            raise SpecProblem("grid" if grid is not None else "random", "no fields to sweep")
    except SpecProblem as p:
        raise SweepFileError(source, p.field, p.problem) from None

    if spec.base is not None:
        base_text, base_source, base_dir = builtin_experiment_text(spec.base), f"<built-in {spec.base}>", None
    else:
        path = (base or Path(".")) / spec.base_file
        try:
            base_text = read_text(path, SweepFileError)
        except OSError as exc:
            raise SweepFileError(source, "base_file", f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
        base_source, base_dir = str(path), path.parent.resolve()
    try:
        loads_experiment(base_text, base_source, base_dir)
    except ExperimentFileError as exc:
        raise SweepFileError(source, "base_file", f"the base experiment is not valid: {exc}") from None
    name = spec.name or Path(source).stem
    return Sweep(name, source, tomllib.loads(base_text), base_dir, fields, grid, n, seed, dists,
                 Path(spec.out) if spec.out else Path("sweeps") / name)


def load_sweep(path: str | Path) -> Sweep:
    """Read the sweep file at ``path`` (see :func:`loads_sweep`).

    Raises:
        OSError: the file cannot be read.
        SweepFileError: it is not a valid sweep file.
    """
    path = Path(path)
    return loads_sweep(read_text(path, SweepFileError), str(path), path.parent)


# -- expansion -------------------------------------------------------------------------------


def _plain(value):
    """A TOML-writable Python value (numpy scalars become int/float)."""
    return value.item() if isinstance(value, np.generic) else value


def set_field(data: dict, field: str, value) -> None:
    """Replace the dotted ``field`` of the TOML dict ``data`` (missing tables are created).

    Raises:
        SpecProblem: a part of the path is a value, not a table.
    """
    *tables, key = field.split(".")
    node = data
    for i, part in enumerate(tables):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecProblem(field, f"{'.'.join(tables[:i + 1])} is a value, not a table")
    node[key] = value


def _parameter_sets(sweep: Sweep) -> list[dict[str, Any]]:
    if sweep.grid is not None:
        return [dict(zip(sweep.fields, combo)) for combo in itertools.product(*sweep.grid.values())]
    rng = np.random.default_rng(sweep.seed)
    return [{field: _plain(dist.draw(rng)) for field, dist in sweep.distributions.items()}
            for _ in range(sweep.n)]


def point_hash(data: dict) -> str:
    """12 hex digits identifying an experiment's content (key order does not matter)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def describe_params(params: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def expand(sweep: Sweep) -> list[Point]:
    """Every point of the sweep, each validated as an experiment.

    Raises:
        SweepFileError: a point is not a valid experiment; the message names the sweep file,
            the point (index and values) and the field.
    """
    points = []
    for index, params in enumerate(_parameter_sets(sweep)):
        data = json.loads(json.dumps(sweep.base_data))
        where = f"{sweep.source}: point {index} ({describe_params(params)})"
        try:
            for field, value in params.items():
                set_field(data, field, value)
            text = tomli_w.dumps(data)
        except SpecProblem as p:
            raise SweepFileError(where, p.field, p.problem) from None
        except (TypeError, ValueError) as exc:
            raise SweepFileError(where, "", f"cannot be written as TOML: {exc}") from None
        try:
            loads_experiment(text, "<point>", sweep.base_dir)
        except ExperimentFileError as exc:
            problem = str(exc).removeprefix("<point>: ").removeprefix(f"{exc.field}: ")
            raise SweepFileError(where, exc.field, problem) from None
        points.append(Point(index, params, text, point_hash(data)))
    return points


# -- running ---------------------------------------------------------------------------------


def run_point(text: str, source: str, base_dir: str | None, out: str) -> dict:
    """Run one point on the simulated bench into the run file ``out`` (in a dask worker).

    Never raises: a failure is returned as ``status "failed"`` with its error and traceback.
    Returns a dict of status, error, traceback, steps, the four final metrics and wall_s.
    """
    from . import session

    started = time.perf_counter()
    row = {"status": "failed", "error": None, "traceback": None, "steps": 0,
           **{m: float("nan") for m in METRICS}}
    try:
        exp = loads_experiment(text, source, Path(base_dir) if base_dir else None)
        rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
        try:
            outcome = session.train(exp, rig, Path(out))
        finally:
            rig.close()
        row.update(status="complete" if outcome.status == "complete" else "failed", steps=int(outcome.steps),
                   **{m: float(getattr(outcome, m)) for m in METRICS})
        if outcome.status != "complete":
            row["error"] = f"the run ended {outcome.status}"
    except Exception as exc:
        row.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    row["wall_s"] = time.perf_counter() - started
    return row


def _existing(path: Path) -> dict | None:
    """The final metrics of a complete run file at ``path``, or None (missing, unfinished,
    unreadable)."""
    from .runfile import RunReader

    if not path.exists():
        return None
    try:
        with RunReader(path) as reader:
            if reader.status != "complete":
                return None
            epochs = reader.table("epochs")
    except (OSError, ValueError, KeyError):
        return None
    row = {"status": "skipped-existing", "error": None, "traceback": None, "wall_s": 0.0,
           "steps": int(epochs["step"].iloc[-1]) if len(epochs) else 0}
    for m in METRICS:
        row[m] = float(epochs[m].iloc[-1]) if len(epochs) else float("nan")
    return row


class SweepBusy(RuntimeError):
    """Another sweep holds the output folder's lock; the message names the folder and its pid."""


#: The lock file of a sweep's output folder.
LOCK_NAME = ".sweep.lock"


def sweep_lock(out: str | Path):
    """Create the output folder ``out`` (and ``out/points``) and take its lock (an
    exclusive ``fcntl.flock`` on ``out/.sweep.lock``, see :mod:`hostctl.locks`), held
    until released or until this process ends.

    Raises:
        SweepBusy: another sweep (another process, or another lock of this one) holds it.
        OSError: the folder cannot be made (e.g. a part of its path is a file).
    """
    from .locks import FileLock, LockHeld

    out = Path(out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / LOCK_NAME)
    try:
        return lock.acquire()
    except LockHeld as exc:
        who = "another sweep" if exc.pid is None else f"another sweep (process {exc.pid})"
        raise SweepBusy(f"{out}: {who} is writing this folder ({exc.path}); wait for it to end "
                        "or choose another --out") from None


def local_cluster(n_workers: int, host: str = "127.0.0.1", dashboard_address: str | None = None):
    """A dask LocalCluster of ``n_workers`` single-threaded worker processes whose scheduler,
    workers, nannies and dashboard all listen on ``host`` only (default the loopback
    interface); the dashboard at ``dashboard_address`` (``HOST:PORT``; default ``host`` on
    a free port)."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host=host,
                        dashboard_address=dashboard_address or f"{host}:0", worker_dashboard_address=None)


def _failed(error: str) -> dict:
    return {"status": "failed", "error": error, "traceback": None, "steps": 0, "wall_s": float("nan"),
            **{m: float("nan") for m in METRICS}}


def run_sweep(sweep: Sweep, points: list[Point], out: str | Path, client,
              on_point: Callable[[dict, int, int], None] | None = None, *, lock=None) -> pd.DataFrame:
    """Run ``points`` on the dask ``client`` (one task each) into ``out``; returns the summary.

    Points whose run file exists with status "complete" are skipped; any other file of the
    point (failed, interrupted, killed) is replaced, unless another process is writing it
    (it holds the run file's lock): that point is recorded as failed and its file left
    alone. ``on_point(row, done, total)`` is called as each point finishes. The workers must
    see ``out`` (a shared file system on a cluster). ``lock``: the folder's lock, already
    held (:func:`sweep_lock`); without it, it is taken for the duration.

    Raises:
        SweepBusy: another sweep holds the folder.
    """
    out = Path(out).resolve()
    own = sweep_lock(out) if lock is None else None
    try:
        return _run_sweep(sweep, points, out, client, on_point)
    finally:
        if own is not None:
            own.release()


def _run_sweep(sweep: Sweep, points: list[Point], out: Path, client, on_point) -> pd.DataFrame:
    from distributed import as_completed

    from .locks import FileLock, LockHeld, lock_path_for

    base_dir = str(sweep.base_dir) if sweep.base_dir else None
    rows: dict[int, dict] = {}
    total = len(points)

    def finish(point: Point, result: dict) -> None:
        row = {"index": point.index, **point.params, **result, "hash": point.hash,
               "run_file": str(out / "points" / point.file_name)}
        rows[point.index] = row
        if on_point is not None:
            on_point(row, len(rows), total)

    futures = {}
    for point in points:
        path = out / "points" / point.file_name
        done = _existing(path)
        if done is not None:
            finish(point, done)
            continue
        point_lock = FileLock(lock_path_for(path))
        try:
            point_lock.acquire()
        except LockHeld as exc:
            who = "another process" if exc.pid is None else f"process {exc.pid}"
            finish(point, _failed(f"{path} is being written by {who}; left alone"))
            continue
        try:
            path.unlink(missing_ok=True)
        finally:
            point_lock.release()
        source = f"{sweep.source}: point {point.index}"
        future = client.submit(run_point, point.text, source, base_dir, str(path), pure=False,
                               key=f"sweep-{sweep.name}-{point.index}-{point.hash}-{time.time_ns()}")
        futures[future] = point
    for future in as_completed(list(futures)):
        point = futures[future]
        try:
            result = future.result()
        except Exception as exc:  # the worker died, or the task could not be run at all
            result = {**_failed(f"{type(exc).__name__}: {exc}"), "traceback": "".join(traceback.format_exception(exc))}
        finish(point, result)
        future.release()
    columns = ["index", *sweep.fields, "status", "error", "traceback", *METRICS, "steps", "wall_s", "hash", "run_file"]
    return pd.DataFrame([rows[i] for i in sorted(rows)], columns=columns)


# -- results ---------------------------------------------------------------------------------


def ranking_metric(summary: pd.DataFrame) -> tuple[str, bool]:
    """The column that ranks points and whether higher is better: test accuracy for a
    classification, else test error."""
    if summary["test_accuracy"].notna().any():
        return "test_accuracy", True
    return "test_error", False


def best(summary: pd.DataFrame, fields: tuple[str, ...], k: int = 5) -> pd.DataFrame:
    """The ``k`` best points that ran (by :func:`ranking_metric`)."""
    metric, higher = ranking_metric(summary)
    ok = summary[summary["status"] != "failed"]
    return ok.sort_values(metric, ascending=not higher).head(k)[["index", *fields, metric, "status"]]


def _axis_values(column: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Numbers to plot ``column`` at, and tick labels when its values are not numbers."""
    try:
        return column.astype(float).to_numpy(), None
    except (TypeError, ValueError):
        labels = sorted({str(v) for v in column})
        return np.array([labels.index(str(v)) for v in column], float), labels


def plot_summary(summary: pd.DataFrame, fields: tuple[str, ...], path: Path) -> None:
    """Scatter the final test metric against each swept field that varies (coloured by the
    other one when two vary) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, _ = ranking_metric(summary)
    ok = summary[summary["status"] != "failed"]
    fields = tuple(f for f in fields if summary[f].astype(str).nunique() > 1) or fields
    fig, axes = plt.subplots(1, len(fields), figsize=(4.5 * len(fields), 3.6), squeeze=False)
    for ax, field in zip(axes[0], fields):
        x, labels = _axis_values(ok[field])
        colour = None
        if len(fields) == 2:
            other = fields[1] if field == fields[0] else fields[0]
            colour, _ = _axis_values(ok[other])
        art = ax.scatter(x, ok[metric].to_numpy(float), c=colour, cmap="viridis" if colour is not None else None, s=22)
        if colour is not None:
            fig.colorbar(art, ax=ax, label=other)
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=30)
        elif len(x) and (x > 0).all() and x.max() / x.min() >= 100:
            ax.set_xscale("log")
        ax.set_xlabel(field)
        ax.set_ylabel(metric.replace("_", " ") + (" (V^2)" if metric.endswith("error") else ""))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_summary(summary: pd.DataFrame, fields: tuple[str, ...], out: str | Path) -> tuple[Path, Path]:
    """``OUT/summary.parquet`` and ``OUT/summary.png``; returns their paths."""
    out = Path(out)
    table, figure = out / "summary.parquet", out / "summary.png"
    summary.to_parquet(table, engine="pyarrow", index=False)
    plot_summary(summary, fields, figure)
    return table, figure
