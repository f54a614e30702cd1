"""Follow a running experiment from its run file, in the terminal.

A :class:`Watcher` reopens the run file (read-only, SWMR, no lock: see
``docs/run-file.md``) at every :meth:`Watcher.snapshot` and reads only the rows it needs:
the last steps, the epochs, the first and last edge snapshots and the events it has not
seen. Reopening is what makes the run's end visible (attributes such as ``status`` are read
when a reader opens) and keeps no handle on the file between refreshes, so the writer is
never blocked. :func:`follow` repeats that every ``interval_s`` seconds until the run is no
longer running.

    final = follow("runs/iris.h5", interval_s=1.0)
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from hostctl.runfile import RunFileError, RunReader

#: Step errors (most recent) and epoch test errors drawn in the sparklines.
CURVE_POINTS = 60
#: Events listed in the view (most recent).
LAST_EVENTS = 5

_BARS = "▁▂▃▄▅▆▇█"
_STATUS_STYLE = {"running": "bold green", "complete": "bold blue", "interrupted": "bold yellow",
                 "failed": "bold red", "killed": "bold red"}
_LEVEL_STYLE = {"info": "dim", "warning": "yellow", "fault": "bold red", "pause": "cyan"}


class Watcher:
    """Snapshots of one run file's progress.

    Args:
        path: the run file.
        curve_points: how many recent step errors (and epoch test errors) the curves keep.

    The first :meth:`snapshot` raises ``FileNotFoundError`` (no file) or
    :class:`~hostctl.runfile.RunFileError` (not a run file) with a one-line message.
    """

    def __init__(self, path, curve_points: int = CURVE_POINTS):
        self.path = Path(path)
        self.curve_points = curve_points
        self._first_edges: np.ndarray | None = None
        self._events_seen = 0
        self._counts = {"fault": 0, "warning": 0, "pause": 0}
        self._last_events: deque = deque(maxlen=LAST_EVENTS)

    def snapshot(self) -> dict:
        """The run as it stands (errors in V^2, accuracies as fractions, NaN or None: not
        measured yet):

        ``{"path", "status", "steps" (rows), "step", "epoch", "epochs" (rows),
        "train_error", "test_error", "train_accuracy", "test_accuracy", "step_errors" (list,
        most recent last), "test_errors" (list, one per epoch, NaN skipped), "edge_min",
        "edge_max" (last snapshot, device unit), "edge_change_min", "edge_change_max" (last
        minus first snapshot), "edge_snapshots", "faults", "warnings", "pauses",
        "events" (list of (step, level, message), most recent last), "wall_s"}``
        """
        with RunReader(self.path) as r:
            rows = r.refresh()
            snap = {"path": str(self.path), "status": r.status, "steps": rows["steps"], "epochs": rows["epochs"]}
            snap.update(self._steps(r, rows["steps"]))
            snap.update(self._epochs(r))
            snap.update(self._edges(r, rows["edges"]))
            times = snap.pop("_last_t_s") + self._events(r)
            snap.update({"faults": self._counts["fault"], "warnings": self._counts["warning"],
                         "pauses": self._counts["pause"], "events": list(self._last_events)})
            snap["wall_s"] = _wall_s(r.attrs, max(times, default=None))
        return snap

    def _steps(self, r: RunReader, n: int) -> dict:
        tail = r.table("steps", start=n - self.curve_points)
        if not len(tail):
            return {"step": None, "epoch": None, "step_errors": [], "_last_t_s": []}
        return {"step": int(tail.step.iloc[-1]), "epoch": int(tail.epoch.iloc[-1]),
                "step_errors": tail.error.tolist(), "_last_t_s": [float(tail.t_s.iloc[-1])]}

    def _epochs(self, r: RunReader) -> dict:
        epochs = r.table("epochs")
        out = {k: math.nan for k in ("train_error", "test_error", "train_accuracy", "test_accuracy")}
        if len(epochs):
            last = epochs.iloc[-1]
            out.update({k: float(last[k]) for k in out})
        test = epochs.test_error.to_numpy()
        out["test_errors"] = test[~np.isnan(test)][-self.curve_points:].tolist()
        return out

    def _edges(self, r: RunReader, n: int) -> dict:
        out = {"edge_snapshots": n, "edge_min": math.nan, "edge_max": math.nan,
               "edge_change_min": math.nan, "edge_change_max": math.nan}
        if not n:
            return out
        if self._first_edges is None:
            # read once; later refreshes read only the last snapshot
            self._first_edges = _edge_states(r.table("edges").iloc[:1])[0]
        last = _edge_states(r.table("edges", start=n - 1))[0]
        change = last - self._first_edges
        out.update(edge_min=float(last.min()), edge_max=float(last.max()),
                   edge_change_min=float(change.min()), edge_change_max=float(change.max()))
        return out

    def _events(self, r: RunReader) -> list[float]:
        """Count the events not seen yet; the time (s) of the last one, if any."""
        new = r.table("events", start=self._events_seen)
        self._events_seen += len(new)
        for level in self._counts:
            self._counts[level] += int((new.level == level).sum())
        self._last_events.extend(zip(new.step.astype(int).tolist(), new.level, new.message))
        return [float(new.t_s.iloc[-1])] if len(new) else []


def _edge_states(edges) -> np.ndarray:
    return edges.drop(columns="step").to_numpy(dtype=float)


def _wall_s(attrs: dict, last_t_s: float | None) -> float | None:
    """End time minus start time once the run has ended; else the latest record's time."""
    start, end = attrs.get("start_time"), attrs.get("end_time")
    if start and end:
        try:
            return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
        except ValueError:
            pass
    return last_t_s


# -- rendering -------------------------------------------------------------------------------


def sparkline(values) -> str:
    """One bar character per value, scaled between the values' minimum and maximum (on a
    log scale when all are positive and span more than a factor 10); NaN as a space."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if not len(finite):
        return ""
    if finite.min() > 0 and finite.max() > 10 * finite.min():
        v, finite = np.log10(v), np.log10(finite)
    lo, hi = finite.min(), finite.max()
    scaled = np.zeros_like(v) if hi == lo else (v - lo) / (hi - lo)
    return "".join(" " if not np.isfinite(x) else _BARS[int(round(x * (len(_BARS) - 1)))] for x in scaled)


def _num(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.4g}"


def _duration(s: float | None) -> str:
    if s is None:
        return "unknown"
    h, rest = divmod(int(round(s)), 3600)
    return f"{s:.1f} s" if s < 60 else f"{s:.0f} s ({h}:{rest // 60:02d}:{rest % 60:02d})"


def _figures(error: float, accuracy: float) -> str:
    text = "n/a" if np.isnan(error) else f"{_num(error)} V^2"
    return text if np.isnan(accuracy) else f"{text}, accuracy {100 * accuracy:.1f} %"


def render(snapshot: dict) -> Group:
    """The snapshot as a rich renderable: a grid of figures, the error curves, the events."""
    s = snapshot
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    status = Text(s["status"], style=_STATUS_STYLE.get(s["status"], ""))
    grid.add_row("run", Text(s["path"]))
    grid.add_row("status", Text.assemble(status, f"   wall time {_duration(s['wall_s'])}"))
    step = "none yet" if s["step"] is None else f"{s['step']:,} (epoch {s['epoch']}, {s['steps']:,} recorded)"
    grid.add_row("step", step)
    grid.add_row("epochs", f"{s['epochs']:,} recorded")
    grid.add_row("train", _figures(s["train_error"], s["train_accuracy"]))
    grid.add_row("test", _figures(s["test_error"], s["test_accuracy"]))
    if s["step_errors"]:
        grid.add_row("step error", Text.assemble((sparkline(s["step_errors"]), "cyan"),
                                                f"  last {_num(s['step_errors'][-1])} V^2"))
    if s["test_errors"]:
        grid.add_row("test error", Text.assemble((sparkline(s["test_errors"]), "magenta"),
                                                f"  per epoch, last {_num(s['test_errors'][-1])} V^2"))
    if s["edge_snapshots"]:
        grid.add_row("edges", f"{_num(s['edge_min'])} .. {_num(s['edge_max'])} (last of {s['edge_snapshots']:,} "
                     f"snapshots), change since the first {_num(s['edge_change_min'])} .. {_num(s['edge_change_max'])}")
    else:
        grid.add_row("edges", "no snapshot yet")
    counts = Text.assemble((f"{s['faults']} faults", "bold red" if s["faults"] else ""), ", ",
                           (f"{s['warnings']} warnings", "yellow" if s["warnings"] else ""), f", {s['pauses']} pauses")
    grid.add_row("events", counts)
    for step_no, level, message in s["events"]:
        grid.add_row("", Text.assemble(f"step {step_no:,} ", (level, _LEVEL_STYLE.get(level, "")), f": {message}"))
    if s.get("note"):
        grid.add_row("note", Text(s["note"], style="yellow"))
    return Group(grid)


# -- following -------------------------------------------------------------------------------


def follow(path, interval_s: float = 1.0, once: bool = False, *, console: Console | None = None,
           live: bool | None = None, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic) -> dict:
    """Show the run's progress every ``interval_s`` seconds until its status is no longer
    "running" (after showing that last state), or once with ``once``.

    Args:
        path: the run file.
        interval_s: seconds from one refresh to the next (time spent reading included).
        once: one refresh, then return.
        console: where to draw (default: standard output).
        live: redraw in place with ``rich.live.Live`` (default: when the console is a
            terminal); else print one plain block per refresh.
        sleep, clock: ``time.sleep`` and a monotonic clock; tests inject their own.

    Returns:
        The last snapshot.

    Raises:
        FileNotFoundError, RunFileError: at the first refresh (no file, not a run file). A
        later failure to read (e.g. while the writer marks the run's end) keeps the last
        snapshot, notes the error and tries again at the next refresh.
    """
    console = console or Console(file=sys.stdout)
    live = console.is_terminal if live is None else live
    watcher = Watcher(path)

    def snapshots():
        started = clock()
        snap = watcher.snapshot()
        yield snap
        while not once and snap["status"] == "running":
            sleep(max(0.0, interval_s - (clock() - started)))
            started = clock()
            try:
                snap = watcher.snapshot()
            except (RunFileError, OSError) as exc:
                snap = dict(snap, note=f"could not read: {exc}")
            yield snap

    if not live:
        snap = None
        for i, snap in enumerate(snapshots()):
            if i:
                console.print()
            console.print(render(snap), no_wrap=False)
        return snap

    from rich.live import Live

    frames = snapshots()
    snap = next(frames)
    with Live(render(snap), console=console, auto_refresh=False, transient=False) as view:
        for snap in frames:
            view.update(render(snap), refresh=True)
    return snap
