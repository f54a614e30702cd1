"""The runner: executes a plan on a rig, through its interfaces only, into a run file.

One learning step (see ``../shared/design.md``):

1. ``daq.write_and_read``: sources on both twins (the clamps hold their last values), the
   free twin's targets read back, ``O_F``;
2. the clamps ``O_C = O_F + eta (L - O_F)`` (clipped to the clamp outputs' limits);
3. ``daq.write_and_pulse``: the clamps written, the learn line pulsed: every board samples
   its drops and applies its rule;
4. the step recorded in the run file (buffered; flushed at least every second).

Before the first output the plan is checked against the rig's limits (:func:`check_plan`),
the boards are configured with the experiment's rule over the bus, and a checkpoint is
written. The run lives in the rig's safety guard with signals deferred: a Ctrl-C (or
SIGTERM) lets the current step finish, then the outputs go safe, a last checkpoint is
written and the file is closed as ``interrupted``; ``hostctl resume RUN.h5`` continues it.
Nothing here knows whether the rig is simulated.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from instruments.bus import protocol as P
from instruments.rig import Rig
from instruments.safety import Interrupted

from .experiment import Experiment
from .plans import EndEpoch, Evaluate, Learn, ReadEdges, TrainingPlan, check_plan
from .runfile import RunWriter

STATE_SCALE = {"mosfet": 1e-6, "digipot": 1.0}
"""Board state units to the device's unit: uV of gate to V; taps stay taps."""


@dataclass
class Outcome:
    """How a run ended.

    Attributes:
        status: ``"complete"`` or ``"interrupted"``.
        steps: learning steps done in total (including before a resume).
        train_accuracy, test_accuracy, train_error, test_error: the last epoch's metrics.
    """

    status: str
    steps: int
    train_error: float = float("nan")
    test_error: float = float("nan")
    train_accuracy: float = float("nan")
    test_accuracy: float = float("nan")


class Runner:
    """Executes one experiment's plan on one rig into one run file.

    Args:
        experiment: what to do.
        rig: where (real or simulated; only its interfaces are used).
        writer: the run file, open for writing.
        checkpoint_s: seconds between checkpoints (s); also taken at every epoch's end.
        on_progress: called after every epoch with (epoch, step, metrics dict).
        clock: monotonic clock (s).
    """

    def __init__(self, experiment: Experiment, rig: Rig, writer: RunWriter, *, checkpoint_s: float = 1.0,
                 on_progress: Callable[[int, int, dict], None] | None = None, clock=time.monotonic):
        self.exp = experiment
        self.rig = rig
        self.writer = writer
        self.plan = TrainingPlan(experiment)
        self.checkpoint_s = float(checkpoint_s)
        self.on_progress = on_progress or (lambda epoch, step, metrics: None)
        self.clock = clock
        lay = rig.layout
        self.layout = lay
        self.timing = rig.wiring.timing
        self.addresses, _ = rig.wiring.board_edges()
        self.edge_of_address = dict(rig.wiring.boards)
        self._values = lay.safe_v.copy()
        self._clamps = lay.safe_v[lay.clamp_ao].copy()
        self._clamp_lo = rig.limits.min_v[lay.clamp_ao]
        self._clamp_hi = rig.limits.max_v[lay.clamp_ao]
        self._state_scale = STATE_SCALE[rig.wiring.edge_kind]
        self.last_metrics: dict = {}
        self._gain_epoch = 0
        self._next_checkpoint = -np.inf

    # -- the pieces ------------------------------------------------------------------------------
    def configure_boards(self, scale: float = 1.0) -> None:
        """The experiment's rule on every board (one broadcast), at the current epoch's gain
        times ``scale``."""
        r = self.exp.board_rule
        self._gain_epoch = self.plan.epoch
        gain = min(P.GAIN_LIMIT - 1, int(round(r.gain_at(self.plan.epoch) * scale)))
        self.rig.bus.broadcast("configure_rule", rule=int(r.rule), probability=r.probability, gain=gain,
                               dead_band_uv2=r.dead_band_uv2)
        # a broadcast has no reply; every board answering afterwards has applied it (each board
        # handles its frames in order), before the learn line, which is not on the bus, fires
        self.rig.bus.read_states(self.addresses.tolist())

    def set_initial_state(self) -> None:
        """Every board to the experiment's initial state (one request per board)."""
        for addr, edge in self.edge_of_address.items():
            state = int(round(self.exp.initial_state[edge] / self._state_scale))
            self.rig.bus.request(addr, "set_state", state=state)

    def edge_states(self) -> np.ndarray:
        """Every edge's state in the device's unit (V of gate, or taps), in edge order."""
        states = self.rig.bus.read_states(self.addresses.tolist())
        out = np.empty(len(self.edge_of_address))
        for addr, edge in self.edge_of_address.items():
            out[edge] = states[addr] * self._state_scale
        return out

    def evaluate(self, split: str) -> np.ndarray:
        """Free outputs (N, T) of every sample of ``split``, learning off (V); for the test
        split, followed by the task's grid points when it has them."""
        task, lay, t = self.exp.task, self.layout, self.timing
        inputs = task.train_inputs if split == "train" else task.test_inputs
        if split == "test" and task.grid_inputs is not None:
            inputs = np.r_[inputs, task.grid_inputs]  # the decision boundary, drawn by the report
        rows = np.empty((inputs.shape[0], lay.n_ao))
        for i, x in enumerate(inputs):
            lay.outputs(x, self._clamps, out=rows[i])
        # batches that fit well inside the DAQ watchdog's timeout
        row_s = t.settle_s + t.n_average / t.sample_rate_hz
        chunk = max(1, int(0.5 * t.watchdog_s / row_s))
        out = np.concatenate([self.rig.daq.write_and_read_many(rows[k : k + chunk], t.settle_s, t.n_average)
                              for k in range(0, rows.shape[0], chunk)])
        self._values[:] = rows[-1]
        return out[:, lay.free_ai]

    def learn(self, a: Learn) -> None:
        exp, lay, t, v = self.exp, self.layout, self.timing, self._values
        task = exp.task
        x = task.train_inputs[a.index]
        v[lay.source_ao] = x[lay.source_of]
        v[lay.clamp_ao] = self._clamps
        o_free = self.rig.daq.write_and_read(v, t.settle_s, t.n_average)[lay.free_ai]
        desired = task.desired_at(a.index, a.step, o_free)
        d = o_free - desired
        error = 0.5 * float(d @ d)
        learned = not exp.update_only_on_error or task.misclassified(o_free, a.index)
        if learned:
            clamps = exp.nudge.clamp(o_free, desired, out=self._clamps)
            np.clip(clamps, self._clamp_lo, self._clamp_hi, out=clamps)
            v[lay.clamp_ao] = clamps
            if exp.nudge.overclamp_v is not None:
                self.configure_boards(exp.nudge.update_scale(o_free, desired))
            elif exp.board_rule.decay_epochs is not None and a.epoch != self._gain_epoch:
                self.configure_boards()
            self.rig.daq.write_and_pulse(v, t.settle_s, exp.pulse_s)
        if exp.record_steps:
            self.writer.step(a.step, a.epoch, a.index, x, o_free, self._clamps, desired, error, learned)

    def end_epoch(self, a: EndEpoch) -> None:
        task = self.exp.task
        m = {}
        for split, out in (("train", a.train_outputs), ("test", a.test_outputs)):
            if out is not None:
                n = task.train_inputs.shape[0] if split == "train" else task.test_inputs.shape[0]
                m[f"{split}_error"] = task.error(out[:n], split)
                m[f"{split}_accuracy"] = task.accuracy(out[:n], split)
                if split == "test":
                    self.writer.evaluation(a.step, a.epoch, out)
        self.writer.epoch(a.epoch, a.step, **m)
        self.last_metrics = m
        self.on_progress(a.epoch, a.step, m)

    # -- checkpoints -----------------------------------------------------------------------------
    def checkpoint(self) -> None:
        state = {"plan": self.plan.state(), "clamps": self._clamps.tolist(), "values": self._values.tolist(),
                 "bench": self.rig.snapshot()}
        self.writer.checkpoint(self.plan.step, state)
        self._next_checkpoint = self.clock() + self.checkpoint_s

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint (see :meth:`checkpoint`): the boards configured and the
        outputs ramped back to where they were, then (on a simulated rig) the bench's own
        state put back, so the run goes on exactly as it would have."""
        self.plan.load_state(state["plan"])
        self._clamps[:] = state["clamps"]
        self._values[:] = state["values"]
        self.configure_boards()
        self.rig.daq.ramp_to(self._values)
        self.rig.restore(state["bench"])

    # -- the run ---------------------------------------------------------------------------------
    def run(self, resume_state: dict | None = None) -> Outcome:
        """Execute the plan (from ``resume_state`` when given); returns how it ended.

        Raises:
            LimitError: the plan breaks a limit (before any output).
            anything the instruments raise (the outputs are then safe and the file closed
            as failed by its owner).
        """
        check_plan(self.exp, self.layout, self.rig.limits)
        w = self.writer
        with self.rig.guard(defer_signals=True, on_event=lambda m: w.event(self.plan.step, "warning", m)) as guard:
            if resume_state is None:
                self.configure_boards()
                if self.exp.initial_state is not None:
                    self.set_initial_state()
                self.rig.daq.ramp_to(self._values)
                self.checkpoint()
            else:
                self.restore(resume_state)
            try:
                gen = self.plan.actions()
                reply = None
                while True:
                    try:
                        a = gen.send(reply)
                    except StopIteration:
                        break
                    reply = None
                    if isinstance(a, Learn):
                        if self.clock() >= self._next_checkpoint:
                            self.checkpoint()
                        guard.check()
                        self.learn(a)
                    elif isinstance(a, Evaluate):
                        reply = self.evaluate(a.split)
                    elif isinstance(a, ReadEdges):
                        w.edges(a.step, self.edge_states())
                    elif isinstance(a, EndEpoch):
                        self.end_epoch(a)
                    w.tick()
            except Interrupted as exc:
                w.event(self.plan.step, "pause", f"interrupted by {exc.signal_name} before step {self.plan.step}")
                self.checkpoint()
                return Outcome("interrupted", self.plan.step, **self.last_metrics)
            self.checkpoint()
        return Outcome("complete", self.plan.step, **self.last_metrics)


def metadata(exp: Experiment, rig: Rig, calibration=None) -> dict[str, str]:
    """What a run file keeps of the experiment, the rig and the calibration in use (text)."""
    from instruments.sim.netfile import dumps_network_file

    w = rig.wiring
    wiring = {
        "name": w.name, "edge_kind": w.edge_kind, "daq_devices": w.daq_devices, "learn_line": w.learn_line,
        "outputs": [vars(o) | {"max_step_v": None if np.isinf(o.max_step_v) else o.max_step_v} for o in w.outputs],
        "inputs": [vars(i) for i in w.inputs], "boards": {str(a): e for a, e in w.boards.items()},
        "timing": vars(w.timing), "simulated": rig.simulated,
    }
    return {
        "experiment": exp.text,
        "network": dumps_network_file(exp.network, _calibrated_device(exp, calibration)),
        "wiring": json.dumps(wiring),
        "calibration": "" if calibration is None else _calibration_json(calibration),
        "task": json.dumps(exp.task_info),
        "plan": json.dumps({"name": TrainingPlan.name, "args": TrainingPlan(exp).args}),
    }


def _calibration_json(calibration) -> str:
    from calibration.store import to_json

    return to_json(calibration)


def _calibrated_device(exp: Experiment, calibration):
    """The controller's view of the edges: the calibrated device models when the calibration
    has the boards' devices (of this network), else None (the network alone)."""
    if calibration is None or not calibration.edges:
        return None
    from calibration.edges import EdgeCalibration, device_model
    from instruments.sim.edges import Digipot, Mosfet

    edges = EdgeCalibration.from_dict(calibration.edges)
    base = Mosfet(exp.network.n_edges) if exp.edge_kind == "mosfet" else Digipot(exp.network.n_edges)
    try:
        return device_model(edges, base)
    except ValueError:  # the calibration is of other edges
        return None
