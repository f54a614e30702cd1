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
written. The run lives in the rig's safety guard; signals follow :mod:`hostctl.stopping`:
during set-up a signal ends the run at once; while running, a Ctrl-C (or SIGTERM, or
:meth:`Runner.request_stop`) lets the current step finish, then the outputs go safe, a last
checkpoint is written and the file is closed as ``interrupted``; a second signal aborts the
step at once and writes no checkpoint (the run resumes from its last consistent one).
``hostctl resume RUN.h5`` continues it.

A checkpoint holds everything the run depends on: the plan's position, the outputs, the
board configuration the runner last sent (and the epoch of its gain), and on a simulated
rig the bench's whole state. A resume takes all of it from the checkpoint and sets each
piece once: on a simulated rig the bench's saved state *is* the hardware's (nothing is
written to it besides); on a real bench the boards get the saved configuration and the
outputs are ramped to the saved values.
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
from instruments.sim.rules import GateCharging

from .experiment import Experiment
from .plans import EndEpoch, Evaluate, Learn, ReadEdges, TrainingPlan, check_plan
from .runenergy import EnergyMeter
from .runfile import RunWriter
from .stopping import Stop, active

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
        checkpoint_s: seconds between checkpoints (s); also taken when the run stops or ends.
        on_progress: called after every epoch with (epoch, step, metrics dict).
        clock: monotonic clock (s).
        stop: the stop requests to follow (default: the one installed by the command, see
            :func:`hostctl.stopping.active`, else a new one, installed for :meth:`run`).
    """

    def __init__(self, experiment: Experiment, rig: Rig, writer: RunWriter, *, checkpoint_s: float = 1.0,
                 on_progress: Callable[[int, int, dict], None] | None = None, clock=time.monotonic,
                 stop: Stop | None = None):
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
        self.stop = stop or active() or Stop()
        self._gain_epoch = 0
        self._board_config: dict | None = None  # the configure_rule arguments last sent
        self._guard = None
        self._guard_clock = _guard_clock(rig)
        self._next_checkpoint = -np.inf
        t = self.timing
        gate_c_f = GateCharging().c_f if rig.wiring.edge_kind == "mosfet" else 0.0
        self.energy = EnergyMeter(rig, t.settle_s + t.n_average / t.sample_rate_hz, t.settle_s + experiment.pulse_s,
                                  gate_c_f, clock)

    # -- the pieces ------------------------------------------------------------------------------
    def configure_boards(self, scale: float = 1.0) -> None:
        """The experiment's rule on every board (one broadcast), at the current epoch's gain
        times ``scale``."""
        r = self.exp.board_rule
        gain = min(P.GAIN_LIMIT - 1, int(round(r.gain_at(self.plan.epoch) * scale)))
        self._send_board_config({"rule": int(r.rule), "probability": int(r.probability), "gain": gain,
                                 "dead_band_uv2": int(r.dead_band_uv2)})
        self._gain_epoch = self.plan.epoch

    def _send_board_config(self, config: dict) -> None:
        self.rig.bus.broadcast("configure_rule", **config)
        self._board_config = config
        # a broadcast has no reply; every board answering afterwards has applied it (each board
        # handles its frames in order), before the learn line, which is not on the bus, fires
        self.rig.bus.read_states(self.addresses.tolist())

    def request_stop(self, reason: str = "a stop request") -> None:
        """Stop before the next learning step, as a first Ctrl-C does (checkpoint written,
        file left ``interrupted``)."""
        self.stop.request(reason)

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
        self.energy.after_inference()
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
            self.energy.after_update()
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
        self.writer.epoch(a.epoch, a.step, **m, **self.energy.epoch_figures(len(self.edge_of_address)))
        self.last_metrics = m
        self.on_progress(a.epoch, a.step, m)

    # -- checkpoints -----------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """The resume state, taken between learning steps: the plan's position, the outputs
        (V), the board configuration last sent and the epoch of its gain, and the rig's own
        state (:meth:`Rig.snapshot`: the simulated bench's whole state; None on hardware)."""
        state = {"plan": self.plan.state(), "clamps": self._clamps.tolist(), "values": self._values.tolist(),
                 "boards": {"config": self._board_config, "gain_epoch": self._gain_epoch},
                 "guard": {"next_poll_s": -np.inf if self._guard is None else float(self._guard._next_poll)},
                 "bench": self.rig.snapshot(), "energy": self.energy.state()}
        self.writer.checkpoint(self.plan.step, state)
        self._next_checkpoint = self.clock() + self.checkpoint_s

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint (see :meth:`checkpoint`), every piece of state taken
        from it and set once: the plan, the outputs and the board configuration the runner
        knows; then the hardware: on a simulated rig the bench's saved state (which holds the
        boards' configuration and what the outputs hold, so nothing else is written to it),
        on a real bench the saved board configuration sent and the outputs ramped back."""
        self.plan.load_state(state["plan"])
        self._clamps[:] = state["clamps"]
        self._values[:] = state["values"]
        boards = state.get("boards")
        if boards is not None:
            self._board_config = boards["config"]
            self._gain_epoch = int(boards["gain_epoch"])
        else:  # a checkpoint from before the board configuration was saved
            self._board_config = None
            self._gain_epoch = -1  # a decaying gain is set again at the next learning step
        self.rig.restore(state["bench"])
        if state.get("energy") is not None:  # the epoch's sums so far (a checkpoint from before: none)
            self.energy.load_state(state["energy"])
        guard = state.get("guard")
        if state["bench"] is not None and guard is not None and self._guard is not None:
            # the supply is polled at the same points of the bench's own time as before
            self._guard._next_poll = float(guard["next_poll_s"])
        if state["bench"] is None:
            if self._board_config is not None:
                self._send_board_config(self._board_config)
            else:
                self.configure_boards()
            self.rig.daq.ramp_to(self._values)

    # -- the run ---------------------------------------------------------------------------------
    def run(self, resume_state: dict | None = None) -> Outcome:
        """Execute the plan (from ``resume_state`` when given); returns how it ended.

        Raises:
            LimitError: the plan breaks a limit (before any output).
            anything the instruments raise (the outputs are then safe and the file closed
            as failed by its owner).
        """
        check_plan(self.exp, self.layout, self.rig.limits)
        w, stop = self.writer, self.stop
        guard = self.rig.guard(defer_signals=True, clock=self._guard_clock,
                               on_event=lambda m: w.event(self.plan.step, "warning", m))
        self._guard = guard
        with stop.handling(), guard:
            stop.take_over()  # the guard's handler would raise in the middle of a step
            try:
                if resume_state is None:
                    self.configure_boards()
                    if self.exp.initial_state is not None:
                        self.set_initial_state()
                    self.rig.daq.ramp_to(self._values)
                    self.checkpoint()
                else:
                    self.restore(resume_state)
                if guard.stop_requested is not None:  # arrived before the handler was ours
                    stop.request(guard.stop_requested)
                stop.running()
                self._loop(guard)
            except Interrupted as exc:
                stop.winding_down()
                if stop.aborted is not None:
                    w.event(self.plan.step, "pause",
                            f"aborted by {stop.aborted} during step {self.plan.step} (after {stop.requested}); "
                            f"the run resumes from the checkpoint of step {w.last_checkpoint_step}")
                else:
                    w.event(self.plan.step, "pause", f"interrupted by {exc.signal_name} before step {self.plan.step}")
                    self.checkpoint()
                return Outcome("interrupted", self.plan.step, **self.last_metrics)
            finally:
                stop.winding_down()
            self.checkpoint()
        return Outcome("complete", self.plan.step, **self.last_metrics)

    def _loop(self, guard) -> None:
        w, stop = self.writer, self.stop
        gen = self.plan.actions()
        reply = None
        while True:
            try:
                a = gen.send(reply)
            except StopIteration:
                return
            reply = None
            if isinstance(a, Learn):
                if stop.requested is not None:
                    stop.winding_down()  # from here on no signal raises
                    raise Interrupted(stop.requested)
                guard.check()
                if self.clock() >= self._next_checkpoint:
                    self.checkpoint()
                self.learn(a)
            elif isinstance(a, Evaluate):
                reply = self.evaluate(a.split)
            elif isinstance(a, ReadEdges):
                w.edges(a.step, self.edge_states())
            elif isinstance(a, EndEpoch):
                self.end_epoch(a)
            w.tick()


def _guard_clock(rig: Rig) -> Callable[[], float]:
    """The clock the safety guard polls the power supply by (s): a simulated bench's own time
    (its DAQ operations and bus traffic), so that a simulated run and its resume poll, and so
    solve the network, at the same points; the monotonic wall clock on hardware."""
    bench = rig.bench
    if bench is not None and hasattr(bench, "time_s"):
        return lambda: bench.time_s
    return time.monotonic


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
        "network": dumps_network_file(exp.network, _calibrated_device(exp, calibration), exp.device_state,
                                      exp.fixed_edges),
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
    has the boards' devices (of this network); in a mixed network each learning part
    calibrated and each fixed resistor at the resistance the calibration measured; else the
    network file's device (None for a built-in network: the bench's default)."""
    if calibration is None or not calibration.edges:
        return exp.device
    from dataclasses import replace

    from calibration.edges import EdgeCalibration, device_model
    from instruments.sim.edges import Digipot, MixedEdges, Mosfet, Resistor

    edges = EdgeCalibration.from_dict(calibration.edges)
    n = exp.network.n_edges
    base = Mosfet(n) if exp.edge_kind == "mosfet" else Digipot(n)
    try:
        learned = device_model(edges, base)
    except ValueError:  # the calibration is of other edges
        return exp.device
    if not isinstance(exp.device, MixedEdges):
        return learned
    parts = []
    for dev, idx in exp.device.parts:
        if isinstance(dev, Mosfet) and isinstance(learned, Mosfet):
            dev = replace(dev, s_a_per_v2=learned.s_a_per_v2[:, idx].copy(), vt_v=learned.vt_v[:, idx].copy())
        elif isinstance(dev, Digipot) and isinstance(learned, Digipot):
            dev = replace(dev, gain=learned.gain[:, idx].copy())
        elif isinstance(dev, Resistor) and edges.fixed_r_ohm is not None and exp.device_state is not None:
            measured = 1.0 / edges.fixed_r_ohm[:, idx]  # S, NaN where not measured
            gain = np.where(np.isfinite(measured), measured / exp.device_state[idx], dev.gain)
            dev = replace(dev, gain=gain)
        parts.append((dev, idx))
    return MixedEdges(n, parts=tuple(parts), update_bias=exp.device.update_bias.copy())
