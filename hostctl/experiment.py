"""The experiment file: network, task, rule, schedule and seed, in TOML.

::

    name = "iris-gen1"
    seed = 0                              # every random choice of the run follows from it

    [network]
    builtin = "gen1"                      # "gen2" (MOSFET lattice) | "gen1" (digipot grid)
                                          # | "alternating" (arXiv:2505.22887's 4 nodes)
    # fixed_edges = ["e3"]                # edges that do not learn (simulated bench only)
    # bias_v = 1.0                        # a bias source: one more source node held at this
    # bias_node = "r1c1"                  # voltage (V) in every sample; default node: the
                                          # hidden node nearest the ground
    # file = "net.toml"                   # or a network file (relative to this file)
    # sources = [...]  targets = [...]  ground = "..."   # roles, replacing the network's

    [task]
    kind = "iris"                         # iris | csv | xor | regression | allostery | alternating
    inputs = ["r0c0", "r0c1", "r0c2", "r0c3"]   # source nodes, in feature order
    v_min = 0.0                           # features scaled to [v_min, v_max] (V)
    v_max = 1.0
    targets = "adaptive"                  # adaptive | fixed (high_v, low_v)
    margin_v = 0.1
    readout = "nearest_mean"              # nearest_mean | argmax | difference

    [rule]
    kind = "tap"                          # tap | gate_charging | continuous
    eta = 0.1                             # the nudge, or eta_m = 128 for eta = m/129
    probability = 0.3                     # update probability per learn pulse
    dead_band_v2 = 1e-3                   # tap rule dead band (V^2)

    [schedule]
    epochs = 50
    steps_per_epoch = 30                  # default: the number of training samples
    order = "random"                      # random | cyclic

Task fields by kind:

- ``iris``: ``split`` (seed of the random split, default the run's seed),
  ``n_train_per_class`` (10), ``n_test_per_class`` (40), and the classification fields:
  ``inputs``, ``fixed`` (a table node -> V for the other sources), ``v_min``, ``v_max``,
  ``targets``, ``margin_v``, ``high_v``, ``low_v``, ``readout``;
- ``csv``: a user's data set: ``file``, ``label`` (the label column; text labels make a
  classification, numbers a regression whose values are scaled from their training range to
  ``[out_min_v, out_max_v]``), ``train_fraction`` (0.25), ``split``, and the classification
  fields;
- ``xor``: ``inputs`` (two nodes), ``low_v``/``high_v`` of the inputs, ``fixed`` (the + and -
  sources), targets ``common_mode`` (the outputs' mean kept, their difference pushed to
  ``+-2 margin_v``), ``fixed`` (``out_high_v``/``out_low_v``) or ``adaptive``; read-out
  ``difference`` (the default: O = O+ - O-, the first target minus the second), ``argmax``
  or ``nearest_mean``;
- ``regression``: ``input`` (one node), ``fixed``, ``x_min_v``, ``x_max_v``, ``coefficients``
  (L(u) = sum c_k P_k(u), V, with u the input scaled to [-1, 1]), ``n_train`` (11), ``n_test`` (21);
- ``allostery``: ``inputs_v`` (every source -> V) and ``desired_v`` (every target -> V);
- ``alternating``: ``patterns`` (a list of tables with ``inputs_v`` and ``desired_v``) and
  ``period_steps`` (steps before switching to the next pattern; or a list of periods tau,
  each trained for ``cycles_per_period`` full cycles (4) in turn, then the last kept: the
  report plots the cycle's span against tau).

Rule fields: ``eta`` or ``eta_m``; ``overclamp_v`` (overclamping: the clamp overshoots the
target by this much and the update scales with the error); ``probability`` (0..1);
``update_only_on_error``; ``tap``: ``dead_band_v2``; ``gate_charging``: ``pulse_s``,
``r_ohm``, ``c_f``, ``g_per_v`` (the Gen-2 gate circuit); ``continuous``: ``alpha`` (state
change per V^2 of contrast is ``alpha / eta``: volts of gate per V^2 for MOSFET edges);
``decay_epochs`` (gate rules: the rate of epoch n is divided by ``1 + n / decay_epochs``).

Bench fields (the simulated bench, used when no rig file is given; see
:mod:`hostctl.experiment_bench` and docs/experiment-file.md): ``daq_errors``
(``realistic``: channel gain and offset errors drawn from the bench's seed; ``ideal``),
``seed`` (the simulated bench's own seed, default the experiment's: pin it to run many
experiments on one simulated bench, e.g. the one a calibration was made on),
``twin_mismatch`` and ``edge_spread`` (relative, 0..1), ``update_bias`` (device units per
update, a number or one per edge), ``adc_offset_uv`` (spread of the boards' ADC offsets, uV)
and ``adc_noise_uv`` (uV per reading), ``gate_leak_s`` and ``gate_rest_v`` (the gates'
relaxation, s and V), ``temperature_c`` (C) and ``node_capacitance_f`` (F); all off unless
given. Misspelt forms (``gate_leak``, ``node_capacitance``, ``temperature``) are refused
with the name to write instead.

A network file's ``[device]`` (V_T, S, limits, update bias, initial state) is the simulated
bench's device; ``[network] initial_state`` and ``[bench] twin_mismatch``, ``edge_spread``,
``update_bias`` are then refused by name rather than one of the two silently dropped.

Schedule fields: ``epochs``, ``steps_per_epoch``, ``order``, ``eval_every`` (epochs between
test-set evaluations, default 1), ``edges_every`` (steps between edge-state read-backs; 0:
at every epoch's end), ``record_steps`` (true: a record per step in the run file).

Every problem is one :class:`ExperimentFileError` naming the file, the field and the value.
"""

from __future__ import annotations

import math
from importlib import resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from instruments.bus import protocol as P
from instruments.sim.edges import EdgeDevice
from instruments.sim.network import Network
from instruments.sim.rules import Nudge
from instruments.tomlspec import (
    MAX_SAMPLES,
    MAX_STEPS,
    Number,
    Seed,
    SpecProblem,
    Strict,
    parse_toml,
    read_text,
    shown,
    validate_spec,
)
from instruments.wiring import NODE_MAX_V

from . import tasks as T
from .experiment_bench import BenchSettings, BenchSpec, bench_settings, refuse_transient
from .experiment_network import file_states as _file_states
from .experiment_network import initial_state as _initial_state
from .experiment_network import network_of as _network

Volts = dict[str, Number]

MAX_STEPS_PER_EPOCH = 10**7
"""The most learning steps of one epoch (its sample order is held in memory: 80 MB)."""
MAX_COEFFICIENTS = 64
"""The most Legendre coefficients of a regression target."""


class ExperimentFileError(ValueError):
    """An experiment file is malformed; the message names the file, the field and the value."""

    def __init__(self, source: str, field: str, problem: str):
        self.source = source
        self.field = field
        super().__init__(f"{source}: {field}: {problem}" if field else f"{source}: {problem}")


BUILTIN_EXPERIMENTS = ("iris_gen1", "iris_gen2", "regression_gen2", "xor_gen2", "alternating_gen2")


def builtin_experiment_text(name: str) -> str:
    """The text of a built-in experiment (``hostctl/data/experiments/NAME.toml``)."""
    try:
        return resources.files("hostctl.data").joinpath("experiments", f"{name}.toml").read_text()
    except FileNotFoundError:
        raise ValueError(f"no built-in experiment {name!r}; built in: {', '.join(BUILTIN_EXPERIMENTS)}") from None


# -- the schema ------------------------------------------------------------------------------


class NetworkSpec(Strict):
    builtin: Literal["gen2", "gen1", "alternating"] | None = None
    file: str | None = None
    sources: list[str] | None = None
    targets: list[str] | None = None
    ground: str | None = None
    initial_state: Number | list[Number] | None = None
    fixed_edges: list[str] | None = None
    bias_v: Number | None = None
    bias_node: str | None = None

    @model_validator(mode="after")
    def _check(self):
        if (self.builtin is None) == (self.file is None):
            raise ValueError("give exactly one of builtin or file")
        if (self.sources is None) != (self.targets is None):
            raise ValueError("give sources and targets together (ground optional)")
        return self


class TaskSpec(Strict):
    kind: Literal["iris", "csv", "xor", "regression", "allostery", "alternating"]
    # classification
    inputs: list[str] | None = None
    fixed: Volts = {}
    v_min: Number = 0.0
    v_max: Number | None = None
    targets: Literal["adaptive", "fixed", "common_mode"] = "adaptive"
    readout: Literal["nearest_mean", "argmax", "difference"] | None = None
    margin_v: Number = Field(0.05, gt=0, le=max(NODE_MAX_V.values()))
    high_v: Number | None = None
    low_v: Number | None = None
    split: Seed | None = None
    n_train_per_class: int = Field(10, ge=1, le=MAX_SAMPLES)
    n_test_per_class: int | None = Field(40, ge=1, le=MAX_SAMPLES)
    # csv
    file: str | None = None
    label: str | None = None
    train_fraction: Number = Field(0.25, gt=0, lt=1)
    out_min_v: Number = 0.05
    out_max_v: Number | None = None
    # xor
    out_low_v: Number | None = None
    out_high_v: Number | None = None
    # regression
    input: str | None = None
    x_min_v: Number = 0.0
    x_max_v: Number | None = None
    coefficients: list[Number] | None = Field(None, min_length=1, max_length=MAX_COEFFICIENTS)
    n_train: int = Field(11, ge=2, le=MAX_SAMPLES)
    n_test: int = Field(21, ge=2, le=MAX_SAMPLES)
    # allostery, alternating
    inputs_v: Volts | None = None
    desired_v: Volts | None = None
    patterns: list[dict] | None = Field(None, max_length=MAX_SAMPLES)
    period_steps: Annotated[int, Field(ge=1, le=MAX_STEPS)] | Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_STEPS)]], Field(max_length=MAX_SAMPLES)] = 1
    cycles_per_period: int = Field(4, ge=1, le=MAX_STEPS)


class RuleSpec(Strict):
    kind: Literal["tap", "gate_charging", "continuous"]
    eta: Number | None = None
    eta_m: int | None = Field(None, ge=1, le=129)
    overclamp_v: Number | None = Field(None, gt=0, le=max(NODE_MAX_V.values()))
    probability: Number = Field(1.0, ge=0, le=1)
    update_only_on_error: bool = False
    dead_band_v2: Number = Field(0.0, ge=0, le=1.0)
    pulse_s: Number = Field(1e-4, gt=0, le=1)
    r_ohm: Number = Field(1e3, gt=0, le=1e12)
    c_f: Number = Field(2.2e-6, gt=0, le=1.0)
    g_per_v: Number = Field(0.1, gt=0, le=1e3)
    alpha: Number | None = Field(None, gt=0, le=1e6)
    decay_epochs: Number | None = Field(None, gt=0, le=MAX_STEPS)

    @model_validator(mode="after")
    def _check(self):
        if self.eta is not None and self.eta_m is not None:
            raise ValueError("give eta or eta_m, not both")
        if self.eta is not None and not 0 < self.eta <= 1:
            raise ValueError(f"eta must be in (0, 1] (got {self.eta})")
        if self.kind == "continuous" and self.alpha is None:
            raise ValueError("the continuous rule needs alpha")
        return self


class ScheduleSpec(Strict):
    epochs: int = Field(ge=1, le=MAX_STEPS)
    steps_per_epoch: int | None = Field(None, ge=1, le=MAX_STEPS_PER_EPOCH)
    order: Literal["random", "cyclic"] = "random"
    eval_every: int = Field(1, ge=0, le=MAX_STEPS)
    edges_every: int = Field(0, ge=0, le=MAX_STEPS)
    record_steps: bool = True


class ExperimentSpec(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=100_000)
    seed: Seed = 0
    network: NetworkSpec
    task: TaskSpec
    rule: RuleSpec
    schedule: ScheduleSpec
    bench: BenchSpec = BenchSpec()


# -- what a file describes -------------------------------------------------------------------


@dataclass(frozen=True)
class BoardRule:
    """The rule as the boards are configured with it (``configure_rule``).

    Attributes:
        decay_epochs: with a decaying rate, the gain of epoch ``n`` is
            ``gain / (1 + n / decay_epochs)``; None for a constant gain.
    """

    rule: int
    probability: int
    gain: int
    dead_band_uv2: int
    decay_epochs: float | None = None

    def gain_at(self, epoch: int) -> int:
        """The gain of ``epoch`` (from 0)."""
        if self.decay_epochs is None:
            return self.gain
        return int(round(self.gain / (1.0 + epoch / self.decay_epochs)))


@dataclass
class Experiment:
    """A validated experiment.

    Attributes:
        name, description, seed: from the file.
        network: topology and roles (the wiring must match it).
        edge_kind: ``"mosfet"`` or ``"digipot"``.
        task: samples, encodings and desired outputs.
        nudge: how the clamps are set.
        board_rule: the rule configured on every board.
        update_only_on_error: learn only on misclassified samples.
        pulse_s: learning pulse (s).
        epochs, steps_per_epoch, order, eval_every, edges_every, record_steps: the schedule.
        daq_errors: the simulated bench's DAQ errors (``"realistic"`` or ``"ideal"``).
        bench_seed: the simulated bench's seed (its channel errors, device spread, initial
            state and noise): the experiment's seed unless ``[bench] seed`` pins one bench.
        initial_state: (E,) state every board is set to before training (V of gate, or
            taps), or None to train from whatever the boards hold.
        text: the file's text (kept in the run file); source: its name.
        task_info: a JSON-able description of the task (kind, nodes), for reports.
        bench: the simulated bench's imperfections (``[bench]``; all off by default).
        device: the edge devices of the network file's ``[device]`` (its V_T, S, limits and
            update bias), which the simulated bench is built with; None for the bench's
            default device (a built-in network, or a file without ``[device]``).
        fixed_edges: indices of the edges that do not learn (``fixed_edges``); their boards
            never update and their devices keep their initial state.
        device_state: (E,) the devices' initial state from the network file (a fixed
            resistor's conductance included), or None; ``initial_state`` is what the boards
            are set to (a fixed edge's board holds its lowest state).
    """

    name: str
    description: str
    seed: int
    network: Network
    edge_kind: str
    task: T.Task
    nudge: Nudge
    board_rule: BoardRule
    update_only_on_error: bool
    pulse_s: float
    epochs: int
    steps_per_epoch: int
    order: str
    eval_every: int
    edges_every: int
    record_steps: bool
    daq_errors: str
    bench_seed: int
    initial_state: np.ndarray | None
    text: str
    source: str
    task_info: dict
    bench: BenchSettings = BenchSettings()
    device: EdgeDevice | None = None
    fixed_edges: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    device_state: np.ndarray | None = None


def loads_experiment(text: str, source: str = "<experiment>", base: Path | None = None) -> Experiment:
    """An :class:`Experiment` from the text of an experiment file.

    Raises:
        ExperimentFileError: a syntax error, a missing or unknown field, a bad value, a node
            that is not in the network, a voltage outside the node range of the bench.
    """
    data = parse_toml(text, source, ExperimentFileError)
    try:
        refuse_transient(data)
        spec = validate_spec(ExperimentSpec, data)
        network, edge_kind, nf, fixed = _network(spec.network, base)
        v_node = NODE_MAX_V[edge_kind]
        task_spec = _with_bias(spec.task, spec.network, network, v_node)
        task, info = _task(task_spec, network, v_node, spec.seed, base)
        if spec.network.bias_v is not None:
            info.update(bias_node=network.nodes[network.sources[-1]], bias_v=float(spec.network.bias_v))
        nudge, board_rule = _rule(spec.rule, edge_kind)
        initial_state = _initial_state(spec.network.initial_state, network, edge_kind)
        device = None if nf is None else nf.device
        initial_state, device_state = _file_states(nf, fixed, initial_state, network, edge_kind)
        bench = bench_settings(spec.bench, network.n_edges, edge_kind, device is not None,
                               None if nf is None else Path(nf.source).name)
        if spec.rule.update_only_on_error and not isinstance(task, T.ClassificationTask):
            raise SpecProblem("rule.update_only_on_error", f"needs a classification task, not {task.kind}")
        steps_per_epoch = spec.schedule.steps_per_epoch or task.n_train
        if spec.schedule.epochs * steps_per_epoch > MAX_STEPS:
            raise SpecProblem("schedule", f"{spec.schedule.epochs} epochs of {steps_per_epoch} steps are more than "
                                          f"the {MAX_STEPS:.0e} steps one run can hold")
    except SpecProblem as p:
        raise ExperimentFileError(source, p.field, p.problem) from None
    s = spec.schedule
    return Experiment(
        spec.name, spec.description, spec.seed, network, edge_kind, task, nudge, board_rule,
        spec.rule.update_only_on_error, float(spec.rule.pulse_s), s.epochs,
        steps_per_epoch, s.order, s.eval_every, s.edges_every, s.record_steps,
        spec.bench.daq_errors, spec.seed if spec.bench.seed is None else spec.bench.seed, initial_state, text, source, info,
        bench, device, fixed, device_state,
    )


def load_experiment(path: str | Path) -> Experiment:
    """Read the experiment file at ``path`` (see the module's description).

    Raises:
        OSError: the file cannot be read.
        ExperimentFileError: it is not a valid experiment file.
    """
    path = Path(path)
    return loads_experiment(read_text(path, ExperimentFileError), str(path), path.parent)


def _with_bias(task: TaskSpec, net_spec: NetworkSpec, network: Network, v_node: float) -> TaskSpec:
    """The task with the bias source (``[network] bias_v``, the network's last source) held
    at its voltage in every sample: in ``fixed``, and in every ``inputs_v`` table."""
    if net_spec.bias_v is None:
        return task
    node = network.nodes[network.sources[-1]]
    v = _voltage(net_spec.bias_v, "network.bias_v", v_node)
    if task.inputs is not None and node in task.inputs:
        raise SpecProblem("task.inputs", f"node {node} is the bias source ([network] bias_v), not an input")
    if node in task.fixed:
        raise SpecProblem(f"task.fixed.{node}", f"node {node} is the bias source: its voltage is [network] bias_v")
    update: dict = {"fixed": {**task.fixed, node: v}}
    if task.inputs_v is not None:
        if node in task.inputs_v:
            raise SpecProblem(f"task.inputs_v.{node}", f"node {node} is the bias source: its voltage is "
                                                      f"[network] bias_v")
        update["inputs_v"] = {**task.inputs_v, node: v}
    if task.patterns is not None:
        pats = []
        for i, p in enumerate(task.patterns):
            ins = p.get("inputs_v") if isinstance(p, dict) else None
            if isinstance(ins, dict):
                if node in ins:
                    raise SpecProblem(f"task.patterns[{i}].inputs_v.{node}", f"node {node} is the bias source: its "
                                                                            f"voltage is [network] bias_v")
                p = {**p, "inputs_v": {**ins, node: v}}
            pats.append(p)
        update["patterns"] = pats
    return task.model_copy(update=update)


def _node_index(network: Network, name: str, field: str, among: np.ndarray, role: str) -> int:
    if name not in network.nodes:
        raise SpecProblem(field, f"no node {shown(name)} in network {network.name}")
    idx = network.nodes.index(name)
    pos = np.flatnonzero(among == idx)
    if pos.size == 0:
        raise SpecProblem(field, f"node {name} is not a {role} of network {network.name}")
    return int(pos[0])


def _voltage(v: float, field: str, v_node: float) -> float:
    if not (math.isfinite(v) and 0.0 <= v <= v_node):
        raise SpecProblem(field, f"{v} V is outside the bench's node range 0..{v_node} V")
    return float(v)


def _sources_row(network: Network, values: dict, field: str, v_node: float, need_all: bool) -> np.ndarray:
    row = np.full(network.sources.size, np.nan)
    for name, v in values.items():
        row[_node_index(network, name, f"{field}.{name}", network.sources, "source")] = _voltage(v, f"{field}.{name}", v_node)
    if need_all and np.isnan(row).any():
        missing = [network.nodes[s] for s, r in zip(network.sources, row) if np.isnan(r)]
        raise SpecProblem(field, f"no voltage for source {missing[0]}")
    return row


def _targets_row(network: Network, values: dict, field: str, v_node: float) -> np.ndarray:
    row = np.full(network.targets.size, np.nan)
    for name, v in values.items():
        row[_node_index(network, name, f"{field}.{name}", network.targets, "target")] = _voltage(v, f"{field}.{name}", v_node)
    if np.isnan(row).any():
        missing = [network.nodes[t] for t, r in zip(network.targets, row) if np.isnan(r)]
        raise SpecProblem(field, f"no voltage for target {missing[0]}")
    return row


def _feature_sources(network: Network, spec: TaskSpec, v_node: float, n_features: int):
    if spec.inputs is None:
        raise SpecProblem("task.inputs", "missing")
    if len(spec.inputs) != n_features:
        raise SpecProblem("task.inputs", f"{len(spec.inputs)} nodes for {n_features} features")
    feat = [_node_index(network, n, f"task.inputs[{i}]", network.sources, "source") for i, n in enumerate(spec.inputs)]
    if len(set(feat)) != len(feat):
        raise SpecProblem("task.inputs", "a node is named twice")
    fixed = _sources_row(network, spec.fixed, "task.fixed", v_node, need_all=False)
    for i, f in enumerate(feat):
        if not np.isnan(fixed[f]):
            raise SpecProblem(f"task.fixed.{spec.inputs[i]}", "this source carries a feature")
    free = [network.nodes[s] for k, s in enumerate(network.sources) if k not in feat and np.isnan(fixed[k])]
    if free:
        raise SpecProblem("task.fixed", f"source {free[0]} has neither a feature nor a fixed voltage")
    v_max = v_node if spec.v_max is None else _voltage(spec.v_max, "task.v_max", v_node)
    v_min = _voltage(spec.v_min, "task.v_min", v_node)
    if not v_min < v_max:
        raise SpecProblem("task.v_max", f"{v_max} V is not above v_min {v_min} V")
    return feat, fixed, v_min, v_max


def _classification(kind, network, spec, v_node, x_train, y_train, x_test, y_test, n_classes, class_names, default_readout):
    feat, fixed, v_min, v_max = _feature_sources(network, spec, v_node, x_train.shape[1])
    enc = T.Encoding.fit(x_train, feat, fixed, v_min, v_max)
    readout = spec.readout or default_readout
    high = spec.out_high_v if spec.out_high_v is not None else spec.high_v
    low = spec.out_low_v if spec.out_low_v is not None else spec.low_v
    try:
        return T.ClassificationTask(
            kind, enc(x_train), enc(x_test), network.targets.size, y_train, y_test, x_train, x_test,
            n_classes=n_classes, targets=spec.targets, readout=readout, margin_v=float(spec.margin_v),
            high_v=_voltage(high if high is not None else 0.6 * v_node, "task.high_v", v_node),
            low_v=_voltage(low if low is not None else 0.2 * v_node, "task.low_v", v_node),
            v_out_max=v_node, class_names=class_names,
        ), {"encoding": {"lo": enc.lo.tolist(), "hi": enc.hi.tolist(), "v_min": v_min, "v_max": v_max},
            "readout": readout, "targets_rule": spec.targets}
    except ValueError as exc:
        raise SpecProblem("task", str(exc)) from None


def _task(spec: TaskSpec, network: Network, v_node: float, seed: int, base: Path | None):
    info: dict = {"kind": spec.kind, "sources": [network.nodes[s] for s in network.sources],
                  "targets": [network.nodes[t] for t in network.targets]}
    split = seed if spec.split is None else spec.split
    if spec.kind == "iris":
        x, y, names = T.iris()
        tr, te = T.lab_split(y, spec.n_train_per_class, spec.n_test_per_class, split)
        task, more = _classification("iris", network, spec, v_node, x[tr], y[tr], x[te], y[te], 3,
                                     T.IRIS_SPECIES, "nearest_mean")
        info.update(more, features=list(names), classes=list(T.IRIS_SPECIES), split=split)
    elif spec.kind == "xor":
        lo = 0.0 if spec.low_v is None else spec.low_v
        hi = v_node if spec.high_v is None else spec.high_v
        x = np.array([[lo, lo], [lo, hi], [hi, lo], [hi, hi]], float)
        y = np.array([0, 1, 1, 0])
        feat, fixed, _, _ = _feature_sources(network, spec.model_copy(update={"v_min": lo, "v_max": hi}), v_node, 2)
        enc = T.Encoding(network.sources.size, np.array(feat), fixed, np.array([lo, lo]), np.array([hi, hi]), lo, hi)
        try:
            task = T.ClassificationTask(
                "xor", enc(x), enc(x), network.targets.size, y, y, x, x, n_classes=2, targets=spec.targets,
                readout=spec.readout or "difference", margin_v=float(spec.margin_v),
                high_v=_voltage(spec.out_high_v if spec.out_high_v is not None else 0.3, "task.out_high_v", v_node),
                low_v=_voltage(spec.out_low_v if spec.out_low_v is not None else 0.1, "task.out_low_v", v_node),
                v_out_max=v_node, class_names=("O<0", "O>0"),
            )
        except ValueError as exc:
            raise SpecProblem("task", str(exc)) from None
        g = np.linspace(lo, hi, 15)
        task.grid_inputs = enc(np.array([[a, b] for b in g for a in g]))
        info.update(readout=task.readout, targets_rule=spec.targets)
    elif spec.kind == "csv":
        if spec.file is None or spec.label is None:
            raise SpecProblem("task.file" if spec.file is None else "task.label", "missing")
        path = Path(spec.file)
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            with open(path, encoding="utf-8") as f:
                x, y, names, classes = T.read_csv_table(f, spec.label, None, str(path))
        except OSError as exc:
            raise SpecProblem("task.file", f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise SpecProblem("task.file", str(exc)) from None
        rng = np.random.default_rng(split)
        if classes:
            n_per = max(1, int(round(spec.train_fraction * np.bincount(y).min())))
            tr, te = T.lab_split(y, n_per, None, split)
            task, more = _classification("csv", network, spec, v_node, x[tr], y[tr], x[te], y[te], len(classes),
                                         classes, "nearest_mean")
            info.update(more, classes=list(classes))
        else:
            order = rng.permutation(y.size)
            n_tr = max(2, int(round(spec.train_fraction * y.size)))
            tr, te = order[:n_tr], order[n_tr:]
            feat, fixed, v_min, v_max = _feature_sources(network, spec, v_node, x.shape[1])
            enc = T.Encoding.fit(x[tr], feat, fixed, v_min, v_max)
            out_max = v_node if spec.out_max_v is None else _voltage(spec.out_max_v, "task.out_max_v", v_node)
            out_min = _voltage(spec.out_min_v, "task.out_min_v", v_node)
            lo, hi = y[tr].min(), y[tr].max()
            scale = (out_max - out_min) / (hi - lo if hi > lo else 1.0)
            d = lambda v: np.repeat((out_min + (v - lo) * scale)[:, None], network.targets.size, axis=1)  # noqa: E731
            task = T.FixedTask("csv", enc(x[tr]), enc(x[te]), network.targets.size, train_x=x[tr], test_x=x[te],
                               train_desired=d(y[tr]), test_desired=d(y[te]))
        info.update(features=list(names), file=str(spec.file), label=spec.label)
    elif spec.kind == "regression":
        if spec.input is None or spec.coefficients is None:
            raise SpecProblem("task.input" if spec.input is None else "task.coefficients", "missing")
        k = _node_index(network, spec.input, "task.input", network.sources, "source")
        fixed = _sources_row(network, spec.fixed, "task.fixed", v_node, need_all=False)
        fixed[k] = 0.0
        if np.isnan(fixed).any():
            free = [network.nodes[s] for s, f in zip(network.sources, fixed) if np.isnan(f)]
            raise SpecProblem("task.fixed", f"source {free[0]} has neither the input nor a fixed voltage")
        x_max = v_node if spec.x_max_v is None else _voltage(spec.x_max_v, "task.x_max_v", v_node)
        x_min = _voltage(spec.x_min_v, "task.x_min_v", v_node)
        if not x_min < x_max:
            raise SpecProblem("task.x_max_v", f"{x_max} V is not above x_min_v {x_min} V")
        task = T.regression(spec.coefficients, x_min, x_max, spec.n_train, spec.n_test, k, fixed, network.targets.size)
        for split_name in ("train", "test"):
            d = task.desired(split_name)
            if d.min() < 0 or d.max() > v_node:
                raise SpecProblem("task.coefficients", f"the desired output leaves the node range 0..{v_node} V")
        info.update(input=spec.input, x_min_v=x_min, x_max_v=x_max, coefficients=list(map(float, spec.coefficients)))
    else:
        if spec.kind == "allostery":
            if spec.inputs_v is None or spec.desired_v is None:
                raise SpecProblem("task.inputs_v" if spec.inputs_v is None else "task.desired_v", "missing")
            pats = [{"inputs_v": spec.inputs_v, "desired_v": spec.desired_v}]
            where = ["task"]
        else:
            if not spec.patterns or len(spec.patterns) < 2:
                raise SpecProblem("task.patterns", "alternating needs at least two patterns")
            pats = spec.patterns
            where = [f"task.patterns[{i}]" for i in range(len(pats))]
        ins, outs = [], []
        for p, w in zip(pats, where):
            if set(p) - {"inputs_v", "desired_v"}:
                raise SpecProblem(f"{w}.{sorted(set(p) - {'inputs_v', 'desired_v'})[0]}", "unknown field")
            for key in ("inputs_v", "desired_v"):
                if not isinstance(p.get(key), dict):
                    raise SpecProblem(f"{w}.{key}", "expected a table node -> V")
            ins.append(_sources_row(network, p["inputs_v"], f"{w}.inputs_v", v_node, need_all=True))
            outs.append(_targets_row(network, p["desired_v"], f"{w}.desired_v", v_node))
        ins, outs = np.array(ins), np.array(outs)
        cls = T.FixedTask if spec.kind == "allostery" else T.AlternatingTask
        periods = spec.period_steps if isinstance(spec.period_steps, list) else []
        if isinstance(spec.period_steps, list) and not periods:
            raise SpecProblem("task.period_steps", "an empty list: give a period or a list of periods")
        extra = {} if spec.kind == "allostery" else {
            "period_steps": periods[0] if periods else spec.period_steps, "periods": tuple(periods),
            "cycles_per_period": spec.cycles_per_period}
        task = cls(spec.kind, ins, ins, network.targets.size, train_desired=outs, test_desired=outs, **extra)
        if spec.kind == "alternating":
            info.update(period_steps=spec.period_steps, cycles_per_period=spec.cycles_per_period,
                        blocks=[list(b) for b in task.blocks()] if periods else None)
        else:
            info.update(period_steps=None)
    return task, info


def _rule(spec: RuleSpec, edge_kind: str) -> tuple[Nudge, BoardRule]:
    nudge = Nudge(eta=1.0 if spec.eta is None else float(spec.eta), grid_m=spec.eta_m, overclamp_v=spec.overclamp_v)
    probability = int(round(spec.probability * P.PROBABILITY_ONE))
    if spec.kind == "tap":
        if spec.decay_epochs is not None:
            raise SpecProblem("rule.decay_epochs", "the tap rule steps one tap at a time; its rate cannot decay")
        if edge_kind != "digipot":
            raise SpecProblem("rule.kind", f"the tap rule is for digipot edges; this network has {edge_kind} edges")
        return nudge, BoardRule(P.Rule.TAP, probability, 0, int(round(spec.dead_band_v2 * 1e12)))
    if edge_kind != "mosfet":
        raise SpecProblem("rule.kind", f"{spec.kind} is a rule for MOSFET (gate) edges; this network has {edge_kind} edges")
    if spec.kind == "gate_charging":
        raw = spec.pulse_s / (spec.r_ohm * spec.c_f) * spec.g_per_v * 1e-6 * (1 << P.GAIN_SHIFT)
        code = P.Rule.GATE_CHARGING
    else:
        raw = spec.alpha / nudge.effective_eta * 1e-6 * (1 << P.GAIN_SHIFT)
        code = P.Rule.CONTINUOUS
    if not raw < P.GAIN_LIMIT - 0.5:
        raise SpecProblem("rule", f"the update rate needs a board gain of {raw:.4g}, beyond the boards' limit {P.GAIN_LIMIT - 1}")
    gain = int(round(raw))  # for gate charging, P.gate_gain's formula
    if gain == 0:
        raise SpecProblem("rule", f"the update rate rounds to a board gain of 0 ({raw:.3g}): no gate would ever move")
    return nudge, BoardRule(code, probability, gain, 0, None if spec.decay_epochs is None else float(spec.decay_epochs))
