"""Plans: what a training run does, step by step, separate from doing it.

A :class:`TrainingPlan` is a generator of actions (:class:`Learn`, :class:`Evaluate`,
:class:`ReadEdges`, :class:`EndEpoch`); the runner (:mod:`hostctl.runner`) executes each on
a rig and sends evaluation results back into the generator. The plan's position (epoch,
step, the epoch's sample order, its random generator, what the task has adapted) is plain
data: :meth:`TrainingPlan.state` and :meth:`TrainingPlan.load_state` make a checkpoint from
which a run resumes exactly.

:func:`check_plan` checks, without hardware, that no output the plan can ask for breaks the
rig's limits: every input pattern of the task with the clamps anywhere in the node range,
and (whatever the sample order) no jump between two patterns beyond a ramp limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instruments.safety import Limits, LimitError
from instruments.wiring import Layout

from .experiment import Experiment


@dataclass
class Learn:
    """One training step on training sample ``index``."""

    step: int
    epoch: int
    index: int


@dataclass
class Evaluate:
    """Free outputs of every sample of ``split`` with learning off; the runner sends back
    the (N, T) outputs (V)."""

    split: str
    epoch: int
    step: int


@dataclass
class ReadEdges:
    """Read every board's state."""

    step: int


@dataclass
class EndEpoch:
    """An epoch is over: record its metrics (epoch -1: the state before training)."""

    epoch: int
    step: int
    train_outputs: np.ndarray | None
    test_outputs: np.ndarray | None


class TrainingPlan:
    """The schedule of an experiment: epochs of learning steps, evaluations, edge read-backs.

    Metadata (``name``, ``args``) says which plan and with what, for the run file.
    """

    name = "training"

    def __init__(self, experiment: Experiment):
        self.exp = experiment
        self.task = experiment.task
        self.rng = np.random.default_rng(np.random.SeedSequence([experiment.seed, 0x91A7]))
        self.epoch = 0
        self.k = 0  # position in the epoch's order
        self.step = 0
        self.order: np.ndarray | None = None
        self.started = False
        self.finished = False

    @property
    def args(self) -> dict:
        e = self.exp
        return {"epochs": e.epochs, "steps_per_epoch": e.steps_per_epoch, "order": e.order,
                "eval_every": e.eval_every, "edges_every": e.edges_every}

    @property
    def total_steps(self) -> int:
        return self.exp.epochs * self.exp.steps_per_epoch

    def _draw_order(self) -> np.ndarray:
        n, m = self.task.n_train, self.exp.steps_per_epoch
        if self.exp.order == "cyclic":
            return np.arange(m) % n
        reps = -(-m // n)
        return np.concatenate([self.rng.permutation(n) for _ in range(reps)])[:m]

    def actions(self):
        """The generator of actions, from the plan's current position."""
        e = self.exp
        if not self.started:
            # the state before training: epoch -1 in the run file
            self.started = True
            train_out = yield Evaluate("train", -1, 0)
            self.task.begin_epoch(train_out)
            test_out = (yield Evaluate("test", -1, 0)) if e.eval_every else None
            yield ReadEdges(0)
            yield EndEpoch(-1, 0, train_out, test_out)
        while self.epoch < e.epochs:
            if self.order is None:
                self.order = self._draw_order()
            while self.k < e.steps_per_epoch:
                index = self.task.sample_at(int(self.order[self.k]), self.step)
                yield Learn(self.step, self.epoch, index)
                self.step += 1
                self.k += 1
                if e.edges_every and self.step % e.edges_every == 0:
                    yield ReadEdges(self.step)
            last = self.epoch == e.epochs - 1
            evaluate = last or (e.eval_every and (self.epoch + 1) % e.eval_every == 0)
            train_out = test_out = None
            if evaluate or self.task.needs_train_outputs:
                train_out = yield Evaluate("train", self.epoch, self.step)
                # the targets and read-out of the next epoch, and this epoch's read-out
                self.task.begin_epoch(train_out)
            if evaluate:
                test_out = yield Evaluate("test", self.epoch, self.step)
            if not e.edges_every:
                yield ReadEdges(self.step)
            yield EndEpoch(self.epoch, self.step, train_out, test_out)
            self.epoch += 1
            self.k = 0
            self.order = None
        self.finished = True

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict:
        """Where the plan is, as JSON-able data (taken between learning steps)."""
        return {"epoch": self.epoch, "k": self.k, "step": self.step, "started": self.started,
                "order": None if self.order is None else self.order.tolist(),
                "rng": self.rng.bit_generator.state, "task": self.task.state()}

    def load_state(self, state: dict) -> None:
        self.epoch, self.k, self.step = int(state["epoch"]), int(state["k"]), int(state["step"])
        self.started = bool(state["started"])
        self.order = None if state["order"] is None else np.array(state["order"], np.int64)
        self.rng.bit_generator.state = state["rng"]
        self.task.load_state(state["task"])


def check_plan(experiment: Experiment, layout: Layout, limits: Limits) -> int:
    """Check every output the experiment can ask for against the limits, without hardware.

    Every limit the safety layer enforces during a run is covered: per channel and across
    channels for every sample with the clamps anywhere in their limits (each clamp
    independently: the runner clips each to its own output's limits), and the ramp limit
    between any two writes.

    Returns:
        the number of output patterns checked.

    Raises:
        LimitError: naming the sample (and split) and the broken limit.
    """
    task = experiment.task
    lo_clamp = limits.min_v[layout.clamp_ao]
    hi_clamp = limits.max_v[layout.clamp_ao]
    rows, labels = [], []
    for split, inputs in (("train", task.train_inputs), ("test", task.test_inputs)):
        for i, x in enumerate(inputs):
            labels.append(f"{split} sample {i}")
            for clamps in (lo_clamp, hi_clamp):
                v = layout.outputs(x, clamps)
                problem = limits.violation(v, v)
                if problem is not None:
                    raise LimitError(f"{split} sample {i}: {problem}")
                rows.append(v)
    rows = np.array(rows)
    _check_cross_limits(rows.reshape(-1, 2, rows.shape[1]), labels, limits)
    span = rows.max(axis=0) - rows.min(axis=0)
    over = np.flatnonzero(span > limits.max_step_v)
    if over.size:
        j = int(over[0])
        raise LimitError(
            f"{limits.channels[j]}: the plan's values span {span[j]:.6g} V, beyond its ramp limit "
            f"{limits.max_step_v[j]:g} V per write (samples follow each other in any order)"
        )
    return len(rows)


def _check_cross_limits(bounds: np.ndarray, labels: list[str], limits: Limits) -> None:
    """Each cross-channel limit against the worst pair of values its channels can take at
    once: ``bounds`` (samples, 2, N) holds each sample's outputs with every clamp at its
    lowest and at its highest value, so per sample a channel ranges between the two."""
    if not limits.cross_a.size:
        return
    lo, hi = bounds.min(axis=1), bounds.max(axis=1)
    a, b = limits.cross_a, limits.cross_b
    worst = np.maximum(hi[:, a] - lo[:, b], hi[:, b] - lo[:, a])
    bad = np.argwhere(worst > limits.cross_max_v)
    if bad.size:
        i, k = map(int, bad[0])
        ca, cb = limits.channels[a[k]], limits.channels[b[k]]
        raise LimitError(
            f"{labels[i]}: {ca} - {cb}: the difference can reach {worst[i, k]:.6g} V (clamps anywhere in "
            f"their limits), beyond the cross-channel limit {limits.cross_max_v[k]:g} V"
        )
