"""From files to a running experiment: resolve the experiment and the rig, open the run file,
run, and say how it went. The command line (``hostctl train``, ``resume``, ``eval``, ``demo``)
is a thin layer over these functions.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Callable

import numpy as np

from instruments.rig import Rig, open_rig
from instruments.wiring import Wiring, bench_for

from .errors import UserError
from .experiment import (
    BUILTIN_EXPERIMENTS,
    Experiment,
    ExperimentFileError,
    builtin_experiment_text,
    load_experiment,
    loads_experiment,
)
from .runfile import RunWriter, provenance
from .runner import Outcome, Runner, metadata

def resolve_experiment(spec: str) -> Experiment:
    """An experiment file's path, or the name of a built-in experiment (``iris_gen1``...)."""
    path = Path(spec)
    try:
        if not path.exists() and spec in BUILTIN_EXPERIMENTS:
            return loads_experiment(builtin_experiment_text(spec), f"<built-in {spec}>")
        return load_experiment(path)
    except ExperimentFileError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{spec}: cannot read the experiment file: {exc.strerror or exc}") from None


def wiring_for(exp: Experiment, rig_path: str | None) -> Wiring:
    """The rig file's wiring (its network must be the experiment's), or the built-in bench
    wiring of the experiment's network."""
    if rig_path is None:
        wiring = bench_for(exp.network, exp.edge_kind)
        check_plan_on(exp, wiring)
        return wiring
    from hostctl.commands.rig import load

    wiring = load(rig_path)
    a, b = wiring.network, exp.network
    same = (a.nodes == b.nodes and np.array_equal(a.edges, b.edges) and a.roles == b.roles)
    if not same:
        raise UserError(f"{rig_path}: the rig's network ({a.describe()}) is not the experiment's "
                        f"({b.describe()}): nodes, edges and roles must match")
    if wiring.edge_kind != exp.edge_kind:
        raise UserError(f"{rig_path}: the rig has {wiring.edge_kind} boards, the experiment {exp.edge_kind} edges")
    problems = wiring.problems()
    if problems:
        raise UserError(f"{rig_path}: the wiring is not sound ({len(problems)} problems; see hostctl rig check): {problems[0]}")
    check_plan_on(exp, wiring, rig_path)
    return wiring


def check_plan_on(exp: Experiment, wiring: Wiring, rig_path: str | None = None) -> None:
    """UserError (one line: the sample, the limit, what to change) when the experiment asks
    for an output beyond a limit of the wiring; checked before any file or output exists."""
    from instruments.safety import LimitError, Limits

    from .plans import check_plan

    try:
        check_plan(exp, wiring.layout(), Limits.from_wiring(wiring))
    except LimitError as exc:
        where = rig_path or f"the built-in bench {wiring.name}"
        raise UserError(f"{exp.source}: the plan breaks a limit of {where}: {exc} "
                        f"(change the experiment's voltages, or the limit in the rig file)") from None


def bench_options(exp: Experiment, wiring: Wiring) -> dict:
    """The simulated bench's options (:class:`~instruments.sim.bench.SimBench`) of ``exp``:
    its seed, DAQ errors, the network file's device and initial state, the fixed edges, and
    the ``[bench]`` imperfections (twin mismatch, edge spread, update bias, the boards' ADC
    offsets and noise, the gates' leak, the temperature, the node capacitance)."""
    from instruments.sim.bench import BenchFaults, DaqErrors

    from .experiment_bench import adc_offsets_uv

    b = exp.bench
    options: dict = {"seed": exp.bench_seed}
    if exp.daq_errors == "ideal":
        options["errors"] = DaqErrors.ideal()
    if exp.device is not None:
        options["device"] = exp.device
    if exp.device_state is not None:
        options["initial_state"] = exp.device_state
    if exp.fixed_edges.size:
        options["fixed_edges"] = exp.fixed_edges
    if b.shapes_device:
        options["faults"] = BenchFaults(edge_spread=b.edge_spread, twin_mismatch=b.twin_mismatch,
                                        update_bias=0.0 if b.update_bias is None else b.update_bias)
    n_boards = len(wiring.board_edges()[0])
    if b.adc_offset_uv:
        options["adc_offset_uv"] = adc_offsets_uv(b, n_boards, exp.bench_seed)
    if b.adc_noise_uv:
        options["adc_noise_uv"] = b.adc_noise_uv
    if b.gate_leak_s is not None:
        from instruments.sim.retention import GateLeak

        options["gate_leak"] = GateLeak(b.gate_leak_s, b.gate_rest_v)
    if b.temperature_c is not None:
        options["temperature_c"] = b.temperature_c
    if b.node_capacitance_f is not None:
        options["node_capacitance_f"] = b.node_capacitance_f
    return options


def open_bench(exp: Experiment, wiring: Wiring, simulate: bool) -> Rig:
    """The rig: simulated (seeded by the experiment, with its ``[bench]`` imperfections and
    its network file's device) or real (UserError when the experiment asks for simulated
    imperfections, which a real bench cannot take)."""
    try:
        if simulate:
            return open_rig(wiring, simulate=True, **bench_options(exp, wiring))
        if exp.fixed_edges.size:
            names = ", ".join(exp.network.edge_names[j] for j in exp.fixed_edges)
            raise UserError(f"{exp.source}: fixed edges ({names}) run on the simulated bench only: on a real rig "
                            f"a fixed edge has no board, and hostctl train drives a board on every edge; "
                            f"add --simulate")
        asked = [k for k, v in exp.bench.as_dict().items() if v]
        if asked:
            raise UserError(f"{exp.source}: [bench] {asked[0]} is an imperfection of the simulated bench; a real "
                            f"bench has its own: remove it to run on {wiring.name}, or add --simulate")
        return open_rig(wiring)
    except (ValueError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot open the bench: {exc}") from None


def calibrate_command(experiment: str, rig_path: str | None = None, simulate: bool = False) -> str:
    """The command that calibrates the bench ``hostctl train EXPERIMENT [--rig RIG [--simulate]]``
    runs on."""
    import shlex

    words = ["hostctl", "calibrate", "all", "--experiment", experiment]
    if rig_path is not None:
        words += ["--rig", str(rig_path)] + (["--simulate"] if simulate else [])
    return shlex.join(words)


def default_run_path(exp: Experiment) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{exp.name}-{stamp}.h5"


def calibrate_rig(rig: Rig, store_path, use: bool = True, max_age_s: float | None = None, *,
                  partial: bool = False, rig_file=None,
                  how: str = "hostctl calibrate") -> tuple[object | None, list[str]]:
    """Apply the calibration of this rig from its store (``store_path``, or None for the
    rig's own: see :mod:`hostctl.calibrating`); returns it (None when there is none, or
    ``use`` is False; with ``partial``, the part that holds) and the notes to log, which
    name ``how`` (the command that calibrates this rig) when there is none.

    Raises:
        CalibrationMismatch: the store's calibration of this rig no longer matches it.
    """
    from . import calibrating

    if not use:
        return None, ["calibration not applied (--no-calibration)"]
    path = calibrating.store_path(store_path, rig_file, rig.simulated)
    cal, notes = calibrating.choose(path, rig, partial, how)
    if cal is None:
        return None, notes
    age = calibrating.DEFAULT_MAX_AGE_S if max_age_s is None else max_age_s
    return cal, [*notes, *calibrating.apply(rig, cal, max_age_s=age)]


def watchdog_event(rig: Rig) -> tuple[str, str] | None:
    """The run's event (level, message) naming the outputs no hardware watchdog guards on this
    bench, so only the host's safety layer drives them safe (a host that hangs leaves them at
    their last values); None when a device's watchdog guards every output. On the simulated
    bench it says what the real bench of this wiring would leave to the host, as information."""
    summary = rig.wiring.host_guarded_summary()
    if summary is None:
        return None
    if rig.simulated:
        return "info", f"on the real bench no hardware watchdog would guard {summary}: only the host drives them safe"
    return "warning", (f"no hardware watchdog guards {summary}: only the host drives them safe; "
                       f"a host that hangs leaves them at their last values")


def train(exp: Experiment, rig: Rig, out: Path, on_progress: Callable | None = None, *,
          calibration=None, notes: tuple[str, ...] = ()) -> Outcome:
    """Run ``exp`` on ``rig`` into a new run file ``out``; ``calibration`` (the one applied to
    the rig, if any) is embedded in the file, ``notes`` logged as its first events.

    Raises:
        LimitError: the plan breaks a limit of the rig; no run file is made.
    """
    from .plans import check_plan

    check_plan(exp, rig.layout, rig.limits)
    out.parent.mkdir(parents=True, exist_ok=True)
    task = exp.task
    arrays = {"train_inputs": task.train_inputs, "test_inputs": task.test_inputs,
              "train_desired": task.desired("train"), "test_desired": task.desired("test")}
    for name in ("train_labels", "test_labels", "train_x", "test_x", "grid_inputs"):
        value = getattr(task, name)
        if value is not None:
            arrays[name] = np.asarray(value)
    net = exp.network
    with RunWriter(out, n_sources=net.sources.size, n_targets=net.targets.size, n_edges=net.n_edges,
                   n_test=task.test_inputs.shape[0] + (0 if task.grid_inputs is None else task.grid_inputs.shape[0]),
                   metadata=metadata(exp, rig, calibration),
                   provenance=provenance(rig.identities(), rig.settings()), task_arrays=arrays) as writer:
        for note in notes:
            writer.event(0, "info" if note.endswith(" applied") else "warning", note)
        if (guard := watchdog_event(rig)) is not None:
            writer.event(0, *guard)
        outcome = Runner(exp, rig, writer, on_progress=on_progress).run()
        writer.close(outcome.status)
    return outcome


def resume(path: Path, rig_path: str | None, on_progress: Callable | None = None) -> tuple[Experiment, Outcome]:
    """Continue the run in ``path`` from its last checkpoint, on the rig it ran on."""
    from .runfile import RunFileError

    try:
        writer = RunWriter.resume(path)
    except RunFileError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot open the run file: {exc}") from None
    with writer:
        meta = writer.metadata
        try:
            exp = loads_experiment(meta["experiment"], f"{path}:/experiment")
        except ExperimentFileError as exc:
            raise UserError(str(exc)) from None
        simulated = json.loads(meta["wiring"]).get("simulated", False)
        if simulated and rig_path is not None:
            raise UserError(f"{path} ran on the simulated bench; resume it without --rig")
        if not simulated and rig_path is None:
            raise UserError(f"{path} ran on a real bench; give its rig file with --rig")
        rig = open_bench(exp, wiring_for(exp, rig_path), simulated)
        if meta.get("calibration"):
            from calibration.store import from_json

            from . import calibrating

            for note in calibrating.reapply(rig, from_json(meta["calibration"])):
                writer.event(writer.last_checkpoint_step or 0, "warning", note)
        if (guard := watchdog_event(rig)) is not None:
            writer.event(writer.last_checkpoint_step or 0, *guard)
        try:
            outcome = Runner(exp, rig, writer, on_progress=on_progress).run(writer.last_checkpoint)
        finally:
            rig.close()
        writer.close(outcome.status)
    return exp, outcome

