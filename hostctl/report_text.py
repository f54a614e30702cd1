"""The run's summary as text: what ran, its final figures, the accuracy beside its
baselines, its schedule in steps and lab seconds, its energy, wall time and events.

    print(summary(load("runs/iris.h5")))
"""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from . import baselines
from .runfile import Run


# -- what the run is ------------------------------------------------------------------------


def task_info(run: Run) -> dict:
    """The task description ``metadata["task"]`` (JSON), or ``{}`` if absent or unreadable."""
    try:
        info = json.loads(run.metadata.get("task") or "{}")
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def experiment_name(run: Run) -> str:
    """``name`` from the experiment file (TOML) in the metadata, else the run file's stem."""
    try:
        data = tomllib.loads(run.metadata.get("experiment", ""))
    except tomllib.TOMLDecodeError:
        data = {}
    name = data.get("name") or (data.get("experiment") or {}).get("name")
    return str(name) if name else Path(run.path).stem


def _last_step(run: Run) -> int | None:
    steps = [int(df.step.max()) for df in (run.steps, run.epochs, run.edges, run.events) if len(df)]
    steps += [int(run.evaluation_steps.max())] if len(run.evaluation_steps) else []
    return max(steps) if steps else None


def wall_time_s(run: Run) -> float | None:
    """End time minus start time; for a run without an end, the latest record's time (s)."""
    if run.start_time and run.end_time:
        try:
            return (datetime.fromisoformat(run.end_time) - datetime.fromisoformat(run.start_time)).total_seconds()
        except ValueError:
            pass
    times = [float(df.t_s.max()) for df in (run.steps, run.events) if len(df)]
    return max(times) if times else None


# -- the summary ----------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:.4g}"


def _figures(error: float, accuracy: float, split: str) -> str:
    parts = [f"{split} error " + ("n/a" if np.isnan(error) else f"{_num(error)} V^2")]
    if not np.isnan(accuracy):
        parts.append(f"accuracy {100 * accuracy:.1f} %")
    return ", ".join(parts)


def _duration(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    h, rest = divmod(int(round(s)), 3600)
    return f"{s:.0f} s ({h}:{rest // 60:02d}:{rest % 60:02d})"


def summary(run: Run) -> str:
    """A few lines: experiment, task, status, steps and epochs, final errors and accuracies,
    wall time, events (faults first)."""
    info = task_info(run)
    kind = info.get("kind", "unknown")
    task = f"task: {kind}"
    if info.get("input"):
        task += f" (input: {info['input']})"
    last = _last_step(run)
    lines = [
        f"experiment: {experiment_name(run)} ({Path(run.path).name})",
        task,
        f"status: {run.status}",
        f"steps: {len(run.steps):,} recorded, last step {'none' if last is None else f'{last:,}'}; "
        f"epochs: {len(run.epochs):,}; evaluations: {len(run.evaluation_steps):,}; edge snapshots: {len(run.edges):,}",
    ]
    if len(run.epochs):
        e = run.epochs.iloc[-1]
        lines.append(
            f"final (epoch {int(e.epoch)}, step {int(e.step):,}): "
            f"{_figures(e.train_error, e.train_accuracy, 'train')}; {_figures(e.test_error, e.test_accuracy, 'test')}"
        )
    else:
        lines.append("final: no epoch recorded")
    lines.extend(accuracy_lines(run))
    lines.append(schedule_line(run))
    wall = wall_time_s(run)
    lines.append(f"wall time: {'unknown' if wall is None else _duration(wall)}")
    lines.append(energy_line(run))
    counts = run.events.level.value_counts() if len(run.events) else pd.Series(dtype=int)
    lines.append(
        f"faults: {int(counts.get('fault', 0))}; warnings: {int(counts.get('warning', 0))}; "
        f"pauses: {int(counts.get('pause', 0))}"
    )
    return "\n".join(lines)


def _percent(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f} %"


def accuracy_lines(run: Run) -> list[str]:
    """For a classification: the accuracy of each split untrained (epoch -1), trained (the
    last epoch) and with no network at all, read out the same way (see
    :mod:`hostctl.baselines`); no lines for a task without classes."""
    ep = run.epochs
    if not len(ep) or not np.isfinite(ep[["train_accuracy", "test_accuracy"]].to_numpy(float)).any():
        return []
    base = baselines.of_run(run)
    before = ep[ep.epoch < 0]
    lines = []
    for split in ("test", "train"):
        col = f"{split}_accuracy"
        trained = float(ep[col].iloc[-1])
        untrained = float(before[col].iloc[0]) if len(before) else float("nan")
        text = f"{split} accuracy: untrained {_percent(untrained)}, trained {_percent(trained)}"
        if base is not None:
            text += f"; no network {_percent(getattr(base, split))} ({base.how})"
        lines.append(text)
    if base is not None:
        lines.append(f"read-out: {base.readout}" + (" (fits nothing during training)"
                                                     if base.readout in baselines.FIT_NOTHING else
                                                     " (refitted to the training outputs every epoch)"))
    return lines


def schedule_line(run: Run) -> str:
    """The schedule in steps and in lab seconds: the experiment file's epochs and steps per
    epoch, the steps run, and the bench's lab time (a step's share of it)."""
    try:
        sched = tomllib.loads(run.metadata.get("experiment", "") or "").get("schedule", {})
    except tomllib.TOMLDecodeError:
        sched = {}
    last = run.epochs[run.epochs.epoch >= 0] if len(run.epochs) else run.epochs
    steps = int(last.step.iloc[-1]) if len(last) else 0
    planned = ""
    if isinstance(sched, dict) and isinstance(sched.get("epochs"), int):
        per = sched.get("steps_per_epoch")
        planned = (f"{sched['epochs']:,} epochs of {per:,} steps, " if isinstance(per, int)
                   else f"{sched['epochs']:,} epochs, ")
    lab = float(run.epochs.lab_time_s.iloc[-1]) if len(run.epochs) else float("nan")
    if not np.isfinite(lab):
        return f"schedule: {planned}{steps:,} steps run; lab time unknown"
    per_step = f" ({1e3 * lab / steps:.3g} ms a step)" if steps else ""
    return f"schedule: {planned}{steps:,} steps run in {_duration(lab)} of lab time{per_step}"


def energy_line(run: Run) -> str:
    """From the run's trained epochs, its mean power and energy: per inference, per
    parameter per inference and per update (the run file's epochs; a real bench has no power
    meter, a format-1 file no figures). The lab time is in :func:`schedule_line`."""
    ep = run.epochs[run.epochs.epoch >= 0] if len(run.epochs) else run.epochs
    if not len(ep) or not np.isfinite(ep.energy_inference_j).any():
        return "energy: not measured (a real bench has no power meter)"
    mean = ep.mean(numeric_only=True)
    return (f"energy: power {mean.power_free_w:.3g} W free, {mean.power_clamped_w:.3g} W clamped; "
            f"{mean.energy_inference_j:.3g} J an inference ({mean.energy_per_parameter_j:.3g} J a "
            f"parameter), {mean.energy_update_j:.3g} J an update")
