"""A run's lab time, power and energy, epoch by epoch (the run file's ``epochs`` table).

On the simulated bench the runner knows what the hardware would have done: after every
inference (``write_and_read``: the sources and clamps held for the settle time and the
read) and every update (``write_and_pulse``: the settle time and the learning pulse) the
meter takes both twins' node voltages from the bench and adds their dissipation over that
time (:mod:`instruments.sim.energy`); an update also costs the charge its gates took, ``C_g
|dV_G| V_G`` (MOSFET edges: the gate capacitor of the experiment's rule, 2.2 uF by default,
charged by each edge's change of state). The figures are sampled: the first learning step of each
epoch and every ``SAMPLE_EVERY``-th after it are measured, since measuring solves the clamped
twin out of turn and copies the state, about 220 us a step on the Gen-2 lattice, eight times
the step itself (benchmarks/bench_runner.py). At the epoch's end it gives the means per inference
and per update, the energy per parameter per inference (the field's headline figure) and the
bench's own clock. A real bench has no power meter: its figures are NaN, and its lab time is
the time since the run began.

Units: s, W, J.
"""

from __future__ import annotations

import numpy as np

from instruments.sim.energy import edge_power_w

__all__ = ["EnergyMeter"]

NAN = float("nan")
#: One learning step in this many is measured (see the module's description).
SAMPLE_EVERY = 64


class EnergyMeter:
    """Accumulates one epoch's power and energy of a run on ``rig`` (see the module).

    Args:
        rig: the open rig; its ``bench`` (the simulated bench) or None on hardware.
        inference_s: one inference's hold (s): the settle time and the samples' read.
        update_s: one update's hold (s): the settle time and the learning pulse.
        gate_c_f: each MOSFET gate's capacitor (F), 0 for other edges.
        clock: the runner's clock (s), for a real bench's lab time.
    """

    def __init__(self, rig, inference_s: float, update_s: float, gate_c_f: float, clock) -> None:
        self.bench = getattr(rig, "bench", None)
        self.inference_s, self.update_s, self.gate_c_f = float(inference_s), float(update_s), float(gate_c_f)
        self.clock, self.t0 = clock, clock()
        self._state_before: np.ndarray | None = None
        self._sampled = False
        self.reset()

    def state(self) -> dict:
        """The epoch's sums so far, for a checkpoint (a resumed run's epoch figures are the
        uninterrupted run's)."""
        out = {"n_inference": self.n_inference, "n_update": self.n_update, "p_free": self.p_free,
               "p_clamped": self.p_clamped, "e_inference": self.e_inference, "e_update": self.e_update,
               "epoch_steps": self._epoch_steps}
        if self.bench is None:  # a real bench's lab time is the run's (the simulated bench keeps its own)
            out["elapsed_s"] = self.clock() - self.t0
        return out

    def load_state(self, state: dict) -> None:
        """Continue from :meth:`state`."""
        self.n_inference, self.n_update = int(state["n_inference"]), int(state["n_update"])
        self.p_free, self.p_clamped = float(state["p_free"]), float(state["p_clamped"])
        self.e_inference, self.e_update = float(state["e_inference"]), float(state["e_update"])
        self._epoch_steps = int(state.get("epoch_steps", 0))
        if "elapsed_s" in state:
            self.t0 = self.clock() - float(state["elapsed_s"])

    def reset(self) -> None:
        self._epoch_steps = 0  # learning steps of the epoch so far, for the sampling
        self.n_inference = self.n_update = 0
        self.p_free = self.p_clamped = self.e_inference = self.e_update = 0.0

    def _powers(self) -> tuple[float, float]:
        b = self.bench
        state = b.device_state()
        pf = float(edge_power_w(b.network, b.device, state, b.node_voltages("free"), 0).sum())
        pc = float(edge_power_w(b.network, b.device, state, b.node_voltages("clamped"), 1).sum())
        return pf, pc

    def after_inference(self) -> None:
        """An inference was read: both twins held for ``inference_s``."""
        if self.bench is None:
            return
        self._sampled = self._epoch_steps % SAMPLE_EVERY == 0
        self._epoch_steps += 1
        if not self._sampled:
            return
        pf, pc = self._powers()
        self.p_free += pf
        self.p_clamped += pc
        self.e_inference += (pf + pc) * self.inference_s
        self.n_inference += 1
        if self.gate_c_f:
            self._state_before = self.bench.device_state()

    def after_update(self) -> None:
        """The learning pulse was given: both twins held for ``update_s``, the gates charged."""
        if self.bench is None or not self._sampled:
            return
        pf, pc = self._powers()
        e = (pf + pc) * self.update_s
        if self.gate_c_f and self._state_before is not None:
            after = self.bench.device_state()
            e += self.gate_c_f * float(np.sum(np.abs(after - self._state_before) * np.abs(after)))
        self.e_update += e
        self.n_update += 1

    def epoch_figures(self, n_parameters: int) -> dict:
        """The epoch's means (the run file's epoch columns), and a fresh start for the next."""
        lab = self.bench.time_s if self.bench is not None else self.clock() - self.t0
        if self.bench is None or self.n_inference == 0:
            out = {"lab_time_s": float(lab), "power_free_w": NAN, "power_clamped_w": NAN,
                   "energy_inference_j": NAN, "energy_update_j": NAN, "energy_per_parameter_j": NAN}
        else:
            e_inf = self.e_inference / self.n_inference
            out = {"lab_time_s": float(lab), "power_free_w": self.p_free / self.n_inference,
                   "power_clamped_w": self.p_clamped / self.n_inference, "energy_inference_j": e_inf,
                   "energy_update_j": self.e_update / self.n_update if self.n_update else NAN,
                   "energy_per_parameter_j": e_inf / max(int(n_parameters), 1)}
        self.reset()
        return out
