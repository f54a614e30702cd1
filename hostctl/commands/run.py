"""``hostctl train``, ``resume``, ``eval`` and ``report``: training runs and their files.

- ``train EXP.toml [--rig RIG.toml [--simulate]] [--out RUN.h5]``: run an experiment (a file,
  or a built-in one: iris_gen1, iris_gen2, regression_gen2, xor_gen2) on the simulated bench
  (no rig file), on a real bench (a rig file), or on a rig file's wiring simulated
  (``--simulate``: a dry run before the hardware is armed);
- ``resume RUN.h5 [--rig RIG.toml]``: continue an interrupted (or killed) run from its last
  checkpoint;
- ``eval RUN.h5``: the run's test metrics, from its file (the last evaluation);
- ``report RUN.h5 [--out DIR]``: the figures and a summary.

Ctrl-C (or SIGTERM) during a run finishes the current step, drives the outputs safe, writes a
checkpoint, closes the file and exits with status 130; the file says how to resume. A second
signal aborts the step at once (the run resumes from its last checkpoint). A signal during
set-up (before the first step) ends the command at once, status 130, leaving no run file (or,
for ``resume``, the file as it was). See :mod:`hostctl.stopping`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from hostctl.argtypes import number
from hostctl.errors import UserError


def register(sub) -> None:
    t = sub.add_parser("train", help="run an experiment, writing a run file",
                       description="Run an experiment on the simulated bench, or on a rig.")
    t.add_argument("experiment", metavar="EXP", help="experiment file, or a built-in experiment name")
    t.add_argument("--rig", metavar="RIG.toml", help="the bench's rig file (default: the simulated bench)")
    t.add_argument("--simulate", action="store_true", help="run the rig file's wiring on the simulated bench")
    t.add_argument("--out", metavar="RUN.h5", help="the run file (default runs/NAME-TIME.h5)")
    t.add_argument("--report", action="store_true", help="write the report when the run ends")
    t.add_argument("--calibration-store", metavar="PATH",
                   help="the calibration store (default: the rig's own; see docs/calibration.md)")
    t.add_argument("--no-calibration", action="store_true", help="run with uncorrected values")
    t.add_argument("--partial-calibration", action="store_true",
                   help="when the rig's calibration no longer matches it, apply the part that does")
    t.add_argument("--max-calibration-age", type=number(0.0, 36500.0, "days", lo_open=True), default=7.0, metavar="DAYS",
                   help="warn when the calibration is older than this (default 7 days)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=train)
    r = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    r.add_argument("run", metavar="RUN.h5")
    r.add_argument("--rig", metavar="RIG.toml", help="the rig file (for a run on a real bench)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=resume)
    e = sub.add_parser("eval", help="a run's test metrics from its file")
    e.add_argument("run", metavar="RUN.h5")
    e.set_defaults(func=evaluate)
    p = sub.add_parser("report", help="write a run's figures and print its summary")
    p.add_argument("run", metavar="RUN.h5")
    p.add_argument("--out", metavar="DIR", help="folder of the figures (default: next to the run file)")
    p.set_defaults(func=report)


class Progress:
    """A progress bar over epochs (rich), with the latest metrics; when the output is not a
    terminal, a plain line at most every second instead (for logs)."""

    def __init__(self, total_epochs: int, label: str, quiet: bool = False):
        import sys
        import time

        self.quiet = quiet
        self.total = total_epochs
        self.lines = not quiet and not sys.stdout.isatty()
        self._clock = time.monotonic
        self._last = -float("inf")
        if quiet or self.lines:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

        self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[metrics]}"), TimeRemainingColumn(), transient=False)
        self.task = self.bar.add_task(label, total=total_epochs, metrics="")

    def __enter__(self):
        if not (self.quiet or self.lines):
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if not (self.quiet or self.lines):
            self.bar.__exit__(*exc)

    def __call__(self, epoch: int, step: int, metrics: dict) -> None:
        if self.quiet:
            return
        shown = "  ".join(f"{k.replace('_', ' ')} {v:.3g}" for k, v in metrics.items() if not math.isnan(v))
        if not self.lines:
            self.bar.update(self.task, completed=epoch + 1, metrics=shown)
            return
        now = self._clock()
        if now - self._last >= 1.0 or epoch + 1 == self.total:
            self._last = now
            where = "before training" if epoch < 0 else f"epoch {epoch + 1}/{self.total}"
            print(f"{where}  step {step}  {shown}", flush=True)


def describe(outcome, out: Path) -> str:
    lines = [f"run file: {out}", f"status: {outcome.status} after {outcome.steps} steps"]
    for split in ("train", "test"):
        err, acc = getattr(outcome, f"{split}_error"), getattr(outcome, f"{split}_accuracy")
        parts = []
        if not math.isnan(acc):
            parts.append(f"accuracy {acc:.1%}")
        if not math.isnan(err):
            parts.append(f"error {err:.3e} V^2")
        if parts:
            lines.append(f"{split}: " + ", ".join(parts))
    if outcome.status == "interrupted":
        lines.append(f"continue with: hostctl resume {out}")
    return "\n".join(lines)


def train(args: argparse.Namespace) -> int:
    from hostctl.stopping import SetUpInterrupted, Stop

    named: dict = {}
    try:
        with Stop().handling():
            return _train(args, named)
    except SetUpInterrupted as exc:
        out = named.get("out")
        if out is not None and _discard_unstarted(out):
            return _stopped_in_set_up(exc, "no run file kept")
        return _stopped_in_set_up(exc, "no run started" if out is None or not out.exists() else f"run file: {out}")


def _stopped_in_set_up(exc, what: str) -> int:
    import sys

    print(f"hostctl: {exc}; {what}", file=sys.stderr)
    return 130


def _discard_unstarted(out: Path) -> bool:
    """Remove ``out`` if this process wrote it and it holds no checkpoint (a run stopped
    before its first step); True if removed."""
    import os

    from hostctl.runfile import RunFileError, RunReader

    try:
        with RunReader(out) as r:
            mine = r.attrs.get("writer_pid") == os.getpid()
            empty = r.checkpoint_pointer()[0] < 0
    except (OSError, RunFileError, KeyError):
        return False
    if mine and empty:
        out.unlink()
        return True
    return False


def _train(args: argparse.Namespace, named: dict) -> int:
    from hostctl import session
    from hostctl.runfile import RunFileError

    if args.simulate and args.rig is None:
        raise UserError("--simulate needs --rig (without a rig file the bench is simulated anyway)")
    exp = session.resolve_experiment(args.experiment)
    wiring = session.wiring_for(exp, args.rig)
    out = Path(args.out) if args.out else session.default_run_path(exp)
    if out.exists():
        raise UserError(f"{out} exists; choose another --out (run files are never overwritten)")
    _make_folder(out.parent, f"--out {out}", "the run file")
    named["out"] = out
    rig = session.open_bench(exp, wiring, simulate=args.rig is None or args.simulate)
    try:
        if not args.max_calibration_age > 0:
            raise UserError(f"--max-calibration-age must be positive, got {args.max_calibration_age}")
        cal, notes = session.calibrate_rig(rig, args.calibration_store, not args.no_calibration,
                                           max_age_s=args.max_calibration_age * 86400.0,
                                           partial=args.partial_calibration, rig_file=args.rig,
                                           how=session.calibrate_command(args.experiment, args.rig, args.simulate))
        if not args.quiet:
            for note in notes:
                print(note)
        with Progress(exp.epochs, exp.name, args.quiet) as progress:
            try:
                outcome = session.train(exp, rig, out, progress, calibration=cal, notes=tuple(notes))
            except RunFileError as exc:  # another process took the name, or holds its lock
                raise UserError(str(exc)) from None
    finally:
        rig.close()
    print(describe(outcome, out))
    if args.report and outcome.status == "complete":
        write_report(out)
    return 130 if outcome.status == "interrupted" else 0


def resume(args: argparse.Namespace) -> int:
    from hostctl.stopping import SetUpInterrupted, Stop

    try:
        with Stop().handling():
            return _resume(args)
    except SetUpInterrupted as exc:
        return _stopped_in_set_up(exc, f"{args.run} is as it was (resume it again)")


def _resume(args: argparse.Namespace) -> int:
    from hostctl import session

    from hostctl.locks import holder, lock_path_for

    path = Path(args.run)
    pid = holder(lock_path_for(path))
    if pid is not None:
        raise UserError(f"{path}: is still being written by process {pid}; a run file is written by one process at a time")
    run = _load(args.run)
    total = _resumable(path, run.metadata)
    with Progress(total, f"{path.name} (resumed)", args.quiet) as progress:
        _, outcome = session.resume(path, args.rig, progress)
    print(describe(outcome, path))
    return 130 if outcome.status == "interrupted" else 0


def _resumable(path: Path, meta: dict) -> int:
    """The run's epochs, after checking that its file holds what a resume needs (the
    experiment, the wiring and the plan); UserError naming what is missing or wrong."""
    for name in ("experiment", "wiring", "plan"):
        if not meta.get(name):
            raise UserError(f"{path}: the run file has no /metadata/{name}, which a resume needs")
    try:
        epochs = json.loads(meta["plan"])["args"]["epochs"]
        json.loads(meta["wiring"]).get("simulated", False)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{path}: /metadata/plan or /metadata/wiring is not what twinrig writes") from None
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise UserError(f"{path}: /metadata/plan: epochs must be a whole number, got {epochs!r}")
    return epochs


def _load(path: str):
    from hostctl.runfile import RunFileError, load

    try:
        return load(path)
    except RunFileError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the run file: {exc}") from None


def evaluate(args: argparse.Namespace) -> int:
    run = _load(args.run)
    if run.epochs.empty:
        raise UserError(f"{args.run}: no evaluation recorded yet")
    last = run.epochs.iloc[-1]
    print(f"{args.run}: epoch {int(last['epoch']) + 1}, step {int(last['step'])}, status {run.status}")
    for split in ("train", "test"):
        acc, err = last[f"{split}_accuracy"], last[f"{split}_error"]
        parts = ([f"accuracy {acc:.1%}"] if not math.isnan(acc) else []) + ([f"error {err:.3e} V^2"] if not math.isnan(err) else [])
        if parts:
            print(f"{split}: " + ", ".join(parts))
    return 0


def _make_folder(folder: Path, option: str, what: str) -> None:
    """Create ``folder`` (and its parents); UserError in one line when a part of its path is
    a file, or it cannot be made."""
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                raise UserError(f"{option}: {part} is a file, not a folder (cannot hold {what})")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option}: cannot make {what} {folder}: {exc.strerror or exc}") from None


def write_report(path: Path, out_dir: str | None = None) -> list[Path]:
    from hostctl.report import summary, write_report as figures

    run = _load(str(path))
    if out_dir is not None:
        _make_folder(Path(out_dir), f"--out {out_dir}", "the report's figures")
    files = figures(path, out_dir)
    print(summary(run))
    for f in files:
        print(f"figure: {f}")
    return files


def report(args: argparse.Namespace) -> int:
    write_report(Path(args.run), args.out)
    return 0
