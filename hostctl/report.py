"""Figures and a short summary of a run file (PNG, matplotlib's Agg backend, no pyplot).

    write_report("runs/xor.h5")   # -> runs/xor_report/error.png, network.png, decision.png
    print(summary(load("runs/xor.h5")))

Which figures a run gets depends on its task kind (``metadata["task"]``, see
docs/run-file.md): every run gets ``error.png`` and, when its network is stored,
``network.png``; two-input classifications (``xor``, ``classification2``) get
``decision.png``; regressions get ``regression_parts.png`` (see :func:`error_parts`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from . import baselines
from .report_text import (  # noqa: F401  (the summary's parts, re-exported for callers of the report)
    accuracy_lines,
    energy_line,
    experiment_name,
    schedule_line,
    summary,
    task_info,
    wall_time_s,
)
from .runfile import Run, load

DPI = 120
TWO_INPUT_KINDS = ("xor", "classification2")
STATE_UNITS = {"mosfet": "V", "digipot": "tap", "resistor": "S"}  # edge kind -> state unit
_PART_NAMES = ("mean", "slope", "curvature")


# -- what the run is: hostctl.report_text ---------------------------------------------------


def _test_targets(run: Run) -> np.ndarray | None:
    for key in ("test_targets", "test_desired"):
        if key in run.task:
            return np.asarray(run.task[key], float).reshape(-1, run.n_targets)
    return None


# -- regression: the residual's Legendre parts ----------------------------------------------


def _input_column(run: Run, info: dict) -> np.ndarray:
    """The test set's single analog input x (M,): the source named ``info["input"]``, else
    ``task["test_x"][:, 0]``, else the one source column that varies."""
    inputs = np.asarray(run.task.get("test_inputs", np.zeros((0, run.n_sources))), float)
    sources = info.get("sources")
    if info.get("input") in (sources or ()) and inputs.ndim == 2 and inputs.shape[1] == len(sources):
        return inputs[:, sources.index(info["input"])]
    if "test_x" in run.task:
        return np.asarray(run.task["test_x"], float).reshape(len(run.task["test_x"]), -1)[:, 0]
    varying = np.flatnonzero(np.ptp(inputs, axis=0) > 0) if inputs.size else []
    if len(varying) != 1:
        raise ValueError(f"{run.path}: cannot tell the regression's input (give metadata task 'input' or task test_x)")
    return inputs[:, varying[0]]


def error_parts(run: Run) -> pd.DataFrame:
    """The residual of every evaluation split into Legendre parts.

    For each evaluation, the residual ``r = outputs - test targets`` (M, T), averaged over
    the targets, is fitted by least squares with ``c0 P0(u) + c1 P1(u) + c2 P2(u)``, where u
    is the test input x scaled to [-1, 1] (by ``x_min_v``/``x_max_v`` of the task metadata,
    else by the test inputs' range). ``mean`` = c0, ``slope`` = c1, ``curvature`` = c2 (V);
    a residual made of P0..P2 only is recovered exactly.

    Returns:
        DataFrame with columns step, epoch, mean, slope, curvature (one row per evaluation).

    Raises:
        ValueError: the run has no test targets (task ``test_targets`` or ``test_desired``)
            or its input cannot be told.
    """
    targets = _test_targets(run)
    if targets is None:
        raise ValueError(f"{run.path}: no test targets stored (task 'test_targets' or 'test_desired')")
    info = task_info(run)
    x = _input_column(run, info)
    lo, hi = float(info.get("x_min_v", np.min(x))), float(info.get("x_max_v", np.max(x)))
    u = 2 * (x - lo) / (hi - lo if hi > lo else 1.0) - 1
    basis = np.polynomial.legendre.legvander(u, 2)  # (M, 3)
    m = targets.shape[0]  # evaluations may hold grid points after the M test samples
    residual = (run.evaluation_outputs[:, :m] - targets[None]).mean(axis=2)  # (K, M)
    coef = np.linalg.lstsq(basis, residual.T, rcond=None)[0].T if len(residual) else np.zeros((0, 3))
    out = pd.DataFrame({"step": run.evaluation_steps, "epoch": run.evaluation_epochs})
    for j, name in enumerate(_PART_NAMES):
        out[name] = coef[:, j]
    return out


# -- figures --------------------------------------------------------------------------------


def _figure(width: float = 8.0, height: float = 5.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def _positive(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return v.size > 0 and bool(np.all(v > 0))


def error_figure(run: Run, path: Path) -> Path:
    """Train and test error against step (and accuracy, where the task has classes)."""
    ep = run.epochs
    accuracy = ep[["train_accuracy", "test_accuracy"]].to_numpy(float) if len(ep) else np.zeros((0, 2))
    with_accuracy = bool(np.isfinite(accuracy).any())
    fig = _figure(8.0, 6.5 if with_accuracy else 4.5)
    axes = fig.subplots(2 if with_accuracy else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    plotted = []
    if len(run.steps) > 1:
        window = max(1, len(run.steps) // 200)
        smooth = run.steps.error.rolling(window, min_periods=1).mean()
        label = "step error" if window == 1 else f"step error (moving mean of {window})"
        ax.plot(run.steps.step, smooth, color="0.6", lw=0.8, label=label)
        plotted.append(smooth.to_numpy(float))
    for col, colour, label in (("train_error", "C0", "train error"), ("test_error", "C1", "test error")):
        if len(ep) and np.isfinite(ep[col].to_numpy(float)).any():
            ax.plot(ep.step, ep[col], "o-", color=colour, ms=3, lw=1.5, label=label)
            plotted.append(ep[col].to_numpy(float))
    if plotted and _positive(np.concatenate(plotted)):
        ax.set_yscale("log")
    if plotted:
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no errors recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("error 1/2 sum (O - L)^2 (V^2)")
    ax.set_title(f"{experiment_name(run)}: error during training ({task_info(run).get('kind', 'task')}, {run.status})")
    ax.grid(alpha=0.3)
    if with_accuracy:
        acc = axes[1]
        for j, (colour, label) in enumerate((("C0", "train accuracy"), ("C1", "test accuracy"))):
            if np.isfinite(accuracy[:, j]).any():
                acc.plot(ep.step, 100 * accuracy[:, j], "o-", color=colour, ms=3, lw=1.5, label=label)
        base = baselines.of_run(run)
        if base is not None and np.isfinite(base.test):
            acc.axhline(100 * base.test, color="C1", ls="--", lw=1.0,
                        label=f"no network, test ({base.how})")
        acc.set_ylabel("accuracy (%)")
        acc.set_ylim(-2, 102)
        acc.legend(loc="best", fontsize="small")
        acc.grid(alpha=0.3)
    axes[-1].set_xlabel("training step")
    return _save(fig, path)


def spring_layout(n_nodes: int, edges: np.ndarray, iterations: int = 300, seed: int = 0) -> np.ndarray:
    """Node positions (n, 2) by Fruchterman-Reingold, from a circle; deterministic. Falls
    back to the circle itself above 400 nodes (the all-pairs step grows as n^2)."""
    angle = 2 * np.pi * np.arange(n_nodes) / max(n_nodes, 1)
    pos = np.c_[np.cos(angle), np.sin(angle)]
    if n_nodes > 400 or n_nodes < 3:
        return pos
    pos = pos + np.random.default_rng(seed).normal(0.0, 1e-3, pos.shape)
    k = 1.0 / np.sqrt(n_nodes)
    step = 0.1
    a, b = edges[:, 0], edges[:, 1]
    for _ in range(iterations):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.maximum(np.linalg.norm(delta, axis=2), 1e-9)
        move = np.sum(delta * (k * k / dist**2)[:, :, None], axis=1)  # repulsion k^2/d along delta/d
        d = pos[a] - pos[b]
        length = np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        pull = d * (length / k)[:, None]  # attraction d^2/k along d/d
        np.subtract.at(move, a, pull)
        np.add.at(move, b, pull)
        size = np.maximum(np.linalg.norm(move, axis=1), 1e-9)
        pos += move * (np.minimum(size, step) / size)[:, None]
        step *= 0.985
    return pos


def _state_unit(run: Run, device) -> str:
    if device is not None and getattr(device, "state_unit", ""):
        return device.state_unit
    try:
        kind = json.loads(run.metadata.get("wiring") or "{}").get("edge_kind")
    except (json.JSONDecodeError, AttributeError):
        kind = None
    return STATE_UNITS.get(kind, "state units")


def network_figure(run: Run, path: Path) -> Path | None:
    """The network: edge width for the final edge state, colour for its change since the
    first snapshot; sources, targets and ground marked. None when the run stores no
    readable network of its size."""
    from instruments.sim.netfile import NetworkFileError, loads_network_file
    from instruments.sim.network import Role

    text = run.metadata.get("network")
    if not text:
        return None
    try:
        nf = loads_network_file(text, f"{run.path}:/metadata/network")
    except NetworkFileError:
        return None
    net = nf.network
    if net.n_edges != run.n_edges:
        return None
    pos = net.positions if net.positions is not None else spring_layout(net.n_nodes, net.edges)
    unit = _state_unit(run, nf.device)
    fig = _figure(7.5, 6.5)
    ax = fig.subplots()
    segments = pos[net.edges]  # (E, 2, 2)
    if len(run.edges):
        states = run.edges.iloc[:, 1:].to_numpy(float)
        first, final = states[0], states[-1]
        span = np.ptp(final[np.isfinite(final)]) if np.isfinite(final).any() else 0.0
        widths = 1.0 + 5.0 * (final - np.nanmin(final)) / span if span > 0 else np.full(net.n_edges, 3.0)
        change = final - first
        limit = float(np.nanmax(np.abs(change))) if np.isfinite(change).any() else 0.0
        limit = limit if limit > 0 else 1.0
        lines = LineCollection(segments, linewidths=np.nan_to_num(widths, nan=0.5), cmap="RdBu_r",
                               norm=Normalize(-limit, limit), zorder=1)
        lines.set_array(np.nan_to_num(change))
        ax.add_collection(lines)
        bar = fig.colorbar(lines, ax=ax, shrink=0.8)
        first_step, last_step = int(run.edges.step.iloc[0]), int(run.edges.step.iloc[-1])
        bar.set_label(f"state change, step {first_step:,} to {last_step:,} ({unit})")
        title = (f"{experiment_name(run)}: edges at step {int(run.edges.step.iloc[-1]):,}\n"
                 f"width: final state ({np.nanmin(final):.3g} to {np.nanmax(final):.3g} {unit}); colour: its change")
    else:
        ax.add_collection(LineCollection(segments, colors="0.6", linewidths=1.5, zorder=1))
        title = f"{experiment_name(run)}: network (no edge snapshots recorded)"
    roles = np.array([r.value for r in net.roles])
    styles = ((Role.HIDDEN.value, "o", "white", 30, "hidden"), (Role.SOURCE.value, "s", "tab:green", 80, "source"),
              (Role.TARGET.value, "D", "tab:orange", 80, "target"), (Role.GROUND.value, "v", "black", 90, "ground"))
    for role, marker, colour, size, label in styles:
        idx = np.flatnonzero(roles == role)
        if idx.size:
            ax.scatter(pos[idx, 0], pos[idx, 1], marker=marker, s=size, c=colour, edgecolors="black",
                       linewidths=0.8, zorder=2, label=label)
    if net.n_nodes <= 64:
        for i in np.flatnonzero(roles != Role.HIDDEN.value):
            ax.annotate(net.nodes[i], pos[i], xytext=(4, 4), textcoords="offset points", fontsize=7, zorder=3)
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=4, fontsize="small", frameon=False)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.margins(0.08)
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, path)


def _decision_values(outputs: np.ndarray, threshold_v: float) -> np.ndarray:
    """D (V) of output vectors (N, T): O_0 - O_1 with two or more targets, else O_0 - threshold."""
    return outputs[:, 0] - outputs[:, 1] if outputs.shape[1] >= 2 else outputs[:, 0] - threshold_v


def _two_inputs(run: Run, info: dict) -> tuple[np.ndarray, list[str]] | None:
    """The two source columns a two-input task varies, and their names."""
    inputs = np.asarray(run.task.get("test_inputs", np.zeros((0, 0))), float)
    if inputs.ndim != 2 or not inputs.size:
        return None
    varying = np.flatnonzero(np.ptp(inputs, axis=0) > 0)
    if len(varying) != 2:
        return None
    sources = info.get("sources") or []
    names = [sources[j] if len(sources) == inputs.shape[1] else f"input {j}" for j in varying]
    return varying, names


def decision_figure(run: Run, path: Path) -> Path | None:
    """Test points of a two-input task, coloured by label and by predicted side at the last
    evaluation; the contour D = 0 when the evaluations hold a grid. None when it cannot be
    drawn (no evaluation, no labels, not two varying inputs)."""
    info = task_info(run)
    cols = _two_inputs(run, info)
    if cols is None or not len(run.evaluation_steps) or "test_labels" not in run.task:
        return None
    varying, names = cols
    test = np.asarray(run.task["test_inputs"], float)
    labels = np.asarray(run.task["test_labels"]).astype(int)
    m = test.shape[0]
    last = run.evaluation_outputs[-1]
    threshold = float(info.get("threshold_v", 0.0))
    side = (_decision_values(last[:m], threshold) > 0).astype(int)
    grid = np.asarray(run.task["grid_inputs"], float) if "grid_inputs" in run.task else None
    has_grid = grid is not None and grid.ndim == 2 and last.shape[0] == m + grid.shape[0]
    fig = _figure(10.0, 4.8)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    classes = info.get("classes") or ["class 0", "class 1"]
    for ax, values, what in ((axes[0], labels, "label"), (axes[1], side, "predicted side (D > 0: class 1)")):
        if has_grid:
            d = _decision_values(last[m:], threshold)
            gx, gy = grid[:, varying[0]], grid[:, varying[1]]
            ax.tricontourf(gx, gy, d, levels=20, cmap="RdBu_r", alpha=0.35)
            if d.min() < 0 < d.max():
                ax.tricontour(gx, gy, d, levels=[0.0], colors="black", linewidths=1.5)
        for c, colour in ((0, "tab:blue"), (1, "tab:red")):
            sel = values == c
            ax.scatter(test[sel, varying[0]], test[sel, varying[1]], c=colour, s=60, edgecolors="black",
                       label=str(classes[c]) if c < len(classes) else f"class {c}", zorder=3)
        wrong = side != labels
        if what != "label" and wrong.any():
            ax.scatter(test[wrong, varying[0]], test[wrong, varying[1]], marker="x", c="black", s=90,
                       label="misclassified", zorder=4)
        ax.set_title(f"coloured by {what}", fontsize="medium")
        ax.set_xlabel(f"{names[0]} (V)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize="small", frameon=False)
        ax.grid(alpha=0.3)
    shown = np.r_[test, grid] if has_grid else test
    for j, set_lim in zip(varying, (axes[0].set_xlim, axes[0].set_ylim)):
        lo, hi = shown[:, j].min(), shown[:, j].max()
        pad = 0.06 * (hi - lo if hi > lo else 1.0)
        set_lim(lo - pad, hi + pad)
    axes[0].set_ylabel(f"{names[1]} (V)")
    contour = "; black line: D = 0 V" if has_grid else ""
    fig.suptitle(f"{experiment_name(run)}: decision at step {int(run.evaluation_steps[-1]):,} "
                 f"(D = O0 - O1{contour})")
    return _save(fig, path)


def regression_figure(run: Run, path: Path) -> Path | None:
    """The residual's mean, slope and curvature parts (V) against step (see :func:`error_parts`)."""
    try:
        parts = error_parts(run)
    except ValueError:
        return None
    if not len(parts):
        return None
    fig = _figure(8.0, 4.5)
    ax = fig.subplots()
    for name, label in zip(_PART_NAMES, ("mean (P0)", "slope (P1)", "curvature (P2)")):
        ax.plot(parts.step, parts[name], "o-", ms=3, label=label)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("residual part, output - target (V)")
    ax.set_title(f"{experiment_name(run)}: regression residual, Legendre parts")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def cycle_spans(run: Run) -> pd.DataFrame:
    """The cycle span of an alternating run at each period tau of its sweep
    (``period_steps`` a list; one row per period, or one for a single period).

    Columns: ``tau_steps`` (steps per task), ``tau_s`` (the same in lab seconds, from the
    run's lab time per step), ``span_v`` (the largest range of an edge's state over the last
    full cycle at that tau: gate V or taps; a fixed edge's is 0) and ``drift_v`` (the largest
    net change of an edge's state over that cycle). Empty when the run is not alternating or
    its edges were not read back at every step of a cycle (``edges_every = 1``).
    """
    info = task_info(run)
    cols = ["tau_steps", "tau_s", "span_v", "drift_v"]
    if info.get("kind") != "alternating" or run.edges is None or not len(run.edges):
        return pd.DataFrame(columns=cols)
    n_patterns = len(info.get("patterns_v", [])) or 2
    blocks = info.get("blocks") or [[0, int(run.edges.step.max()), int(info.get("period_steps") or 1)]]
    edges = run.edges.drop_duplicates("step", keep="last").set_index("step").sort_index()
    states = edges[[c for c in edges.columns if c.startswith("edge_")]]
    t = run.steps.set_index("step")["t_s"] if len(run.steps) else None
    rows = []
    for start, stop, tau in blocks:
        first = stop - n_patterns * tau
        if first < start or not {first, stop} <= set(states.index):
            continue
        cycle = states.loc[first:stop]
        if len(cycle) != stop - first + 1:
            continue
        step_s = np.nan
        if t is not None and first in t.index and stop - 1 in t.index and stop - 1 > first:
            step_s = (t.loc[stop - 1] - t.loc[first]) / (stop - 1 - first)
        rows.append([tau, tau * step_s, float((cycle.max() - cycle.min()).max()),
                     float((cycle.iloc[-1] - cycle.iloc[0]).abs().max())])
    return pd.DataFrame(rows, columns=cols)


def span_slope(spans: pd.DataFrame) -> float:
    """The slope of log span against log tau (1 when the span grows in proportion to tau)."""
    ok = spans[(spans.span_v > 0) & (spans.tau_steps > 0)]
    if len(ok) < 2:
        return float("nan")
    return float(np.polyfit(np.log(ok.tau_steps.astype(float)), np.log(ok.span_v.astype(float)), 1)[0])


def alternating_figure(run: Run, path: Path) -> Path | None:
    """Cycle span against the period tau (log-log, steps and lab seconds), with its slope."""
    spans = cycle_spans(run)
    if len(spans) < 2:
        return None
    fig = _figure(7.0, 4.5)
    ax = fig.subplots()
    ax.loglog(spans.tau_steps, spans.span_v, "o-", label=f"span (slope {span_slope(spans):.3f})")
    ax.loglog(spans.tau_steps, spans.drift_v.where(spans.drift_v > 0), "s--", ms=3, alpha=0.6,
              label="net drift over the cycle")
    ref = spans.span_v.iloc[0] * spans.tau_steps / spans.tau_steps.iloc[0]
    ax.loglog(spans.tau_steps, ref, ":", color="gray", label="proportional to tau")
    ax.set_xlabel("period tau (learning steps per task)")
    ax.set_ylabel("cycle span of the edge states (V of gate or taps)")
    if spans.tau_s.notna().all():
        sec = ax.secondary_xaxis("top", functions=(lambda x: x * spans.tau_s.iloc[0] / spans.tau_steps.iloc[0],
                                                   lambda x: x * spans.tau_steps.iloc[0] / spans.tau_s.iloc[0]))
        sec.set_xlabel("tau (lab s)")
    ax.set_title(f"{experiment_name(run)}: cycle span against tau")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


#: Energy per parameter per inference elsewhere in the field (J), for the energy figure.
FIELD_ENERGY_J = (("Gen-2 breadboard network", 1e-11), ("digital AI accelerator", 1e-12),
                  ("Gen-3 chip (projected)", 1e-14))


def energy_figure(run: Run, path: Path) -> Path | None:
    """Both twins' mean power and the energy of an inference (per parameter, beside the
    field's figures :data:`FIELD_ENERGY_J`) and of an update, epoch by epoch; None for a run
    without energy figures (a real bench, a format-1 file)."""
    ep = run.epochs[run.epochs.epoch >= 0] if len(run.epochs) else run.epochs
    if not len(ep) or not np.isfinite(ep.energy_inference_j.to_numpy(float)).any():
        return None
    fig = _figure(8.0, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(ep.step, 1e3 * ep.power_free_w, "o-", ms=3, color="C0", label="free twin")
    top.plot(ep.step, 1e3 * ep.power_clamped_w, "o-", ms=3, color="C3", label="clamped twin")
    top.set_ylabel("mean power (mW)")
    top.set_title(f"{experiment_name(run)}: power and energy (simulated bench)")
    top.legend(loc="best", fontsize="small")
    top.grid(alpha=0.3)
    bottom.semilogy(ep.step, ep.energy_per_parameter_j, "o-", ms=3, color="C0",
                    label="an inference, per parameter")
    bottom.semilogy(ep.step, ep.energy_update_j, "s-", ms=3, color="C2", label="an update (the whole network)")
    for (label, value), style in zip(FIELD_ENERGY_J, ("--", "-.", ":")):
        bottom.axhline(value, color="0.4", ls=style, lw=1.0, label=f"{label}: {value:.0e} J a parameter")
    bottom.set_ylabel("energy (J)")
    bottom.set_xlabel("training step")
    bottom.legend(loc="best", fontsize="x-small")
    bottom.grid(alpha=0.3, which="both")
    return _save(fig, path)


def write_report(path_or_run, out_dir=None) -> list[Path]:
    """Write the run's figures (PNG) and return their paths.

    Args:
        path_or_run: a run file's path or a loaded :class:`Run`.
        out_dir: where to write; default ``RUN_report/`` next to the run file ``RUN.h5``.

    Returns:
        The files written: error.png always; network.png when the network is stored;
        energy.png when the run has energy figures (the simulated bench);
        decision.png for two-input classifications; regression_parts.png for regressions;
        cycle_span.png for alternating runs that sweep tau (:func:`cycle_spans`).
    """
    run = path_or_run if isinstance(path_or_run, Run) else load(path_or_run)
    src = Path(run.path)
    out = Path(out_dir) if out_dir is not None else src.with_name(f"{src.stem}_report")
    out.mkdir(parents=True, exist_ok=True)
    kind = task_info(run).get("kind")
    written = [error_figure(run, out / "error.png"), network_figure(run, out / "network.png"),
               energy_figure(run, out / "energy.png")]
    if kind in TWO_INPUT_KINDS:
        written.append(decision_figure(run, out / "decision.png"))
    if kind == "regression":
        written.append(regression_figure(run, out / "regression_parts.png"))
    if kind == "alternating":
        written.append(alternating_figure(run, out / "cycle_span.png"))
    return [p for p in written if p is not None]
