"""``hostctl sweep SWEEP.toml``: many simulated runs of one experiment, in parallel with dask.

- ``sweep SWEEP.toml [--scheduler ADDRESS] [--workers N] [--out DIR]``: expand the sweep file
  (see :mod:`hostctl.sweep`), validate every point, run them on a local cluster of ``N``
  worker processes (default 2) or on the dask scheduler at ``ADDRESS``, and write
  ``DIR/points/*.h5``, ``DIR/summary.parquet`` and ``DIR/summary.png``. Run again to finish
  an interrupted sweep: points with a complete run file are skipped.

The local cluster's scheduler, workers and dashboard listen on 127.0.0.1 only, unless
``--host`` (scheduler and workers) or ``--dashboard-address HOST:PORT`` names another
address. One sweep at a time writes a folder: a second is refused (it names the holder's pid).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from hostctl.argtypes import integer
from hostctl.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a parameter sweep of an experiment on the simulated bench (dask)",
                       description="Run every point of a sweep file on the simulated bench, in parallel "
                       "with dask, and summarise them (summary.parquet, summary.png).")
    p.add_argument("sweep", metavar="SWEEP.toml", help="the sweep file")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running dask scheduler (e.g. tcp://10.0.0.5:8786); default: a local cluster")
    p.add_argument("--workers", type=integer(1, 64, "workers"), default=2, metavar="N",
                   help="worker processes of the local cluster (default 2; ignored with --scheduler)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the sweep file's out, or sweeps/NAME)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                   help="the address the local cluster's scheduler and workers listen on (default 127.0.0.1)")
    p.add_argument("--dashboard-address", metavar="HOST:PORT",
                   help="where the local cluster's dashboard listens (default: --host, a free port)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


class SweepProgress:
    """A progress bar over points (rich); plain lines when the output is not a terminal."""

    def __init__(self, total: int, label: str, quiet: bool):
        self.quiet = quiet
        self.lines = not quiet and not sys.stdout.isatty()
        self.bar = None
        if quiet or self.lines:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[last]}"), TimeElapsedColumn())
        self.task = self.bar.add_task(label, total=total, last="")

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, row: dict, done: int, total: int) -> None:
        acc, err = row["test_accuracy"], row["test_error"]
        metric = f"test accuracy {acc:.1%}" if not math.isnan(acc) else (
            f"test error {err:.3g} V^2" if not math.isnan(err) else "")
        text = f"point {row['index']}: {row['status']}" + (f"  {metric}" if metric and row["status"] != "failed" else "")
        if row["status"] == "failed":
            text += f"  ({row['error']})"
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=done, last=text)
        else:
            print(f"[{done}/{total}] {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    from hostctl import sweep as S

    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    try:
        sweep = S.load_sweep(args.sweep)
        points = S.expand(sweep)
    except S.SweepFileError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{args.sweep}: cannot read the sweep file: {exc.strerror or exc}") from None
    out = Path(args.out) if args.out else sweep.out
    _check_address("--host", args.host, port=False)
    if args.dashboard_address is not None:
        _check_address("--dashboard-address", args.dashboard_address, port=True)
    try:
        lock = S.sweep_lock(out)
    except S.SweepBusy as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{out}: cannot make the sweep's output folder: {exc.strerror or exc}") from None
    try:
        summary = _run(args, S, sweep, points, out, lock)
        table, figure = S.write_summary(summary, sweep.fields, out)
    finally:
        lock.release()
    counts = summary["status"].value_counts()
    print(", ".join(f"{counts.get(s, 0)} {s}" for s in S.STATUSES))
    print(f"summary: {table}\nplot: {figure}")
    top = S.best(summary, sweep.fields)
    if len(top):
        print("best points:")
        print(top.to_string(index=False))
    return 1 if counts.get("failed", 0) else 0


def _run(args, S, sweep, points, out: Path, lock):
    from distributed import Client

    print(f"sweep {sweep.name}: {len(points)} points of {', '.join(sweep.fields)} -> {out}", flush=True)
    with SweepProgress(len(points), f"sweep {sweep.name}", args.quiet) as progress:
        if args.scheduler:
            try:
                client = Client(args.scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise UserError(f"--scheduler {args.scheduler}: cannot connect: {exc}") from None
            with client:
                return S.run_sweep(sweep, points, out, client, progress, lock=lock)
        with S.local_cluster(args.workers, args.host, args.dashboard_address) as cluster, Client(cluster) as client:
            return S.run_sweep(sweep, points, out, client, progress, lock=lock)


def _check_address(option: str, value: str, port: bool) -> None:
    """UserError unless ``value`` is a host name or address (``port``: ``HOST:PORT``, port
    0..65535, 0 for a free one)."""
    host, sep, number = value.rpartition(":") if port else (value, "", "")
    ok = bool(host.strip("[]")) and not any(c.isspace() or c in "/?#@" for c in host)
    if port:
        ok = ok and sep == ":" and number.isdigit() and int(number) <= 65535
    if not ok:
        form = "HOST:PORT (port 0..65535; 0: a free port)" if port else "a host name or address"
        raise UserError(f"{option} must be {form}, got {value!r}")
