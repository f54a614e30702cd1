"""A simulated twin pair: two copies of one network, trained by a local rule.

:class:`TwinNetwork` holds the learned state of every edge (one value per board, shared by
its two twin edges), solves the free twin with the sources imposed and the clamped twin with
the sources and the nudged targets imposed, and lets the rule update the state from the two
drops each board measures. It is the physics behind the simulated bench; instruments and
the controller drive it through their own interfaces.

Solving is delegated to a back end chosen by device and size (see :func:`make_backend`):
the compiled kernels of :mod:`instruments.sim.kernels` for the training loop, or the general
:class:`~instruments.sim.circuit.DCSolver`, which the kernels are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .circuit import DCSolver, check_floating
from .edges import EdgeDevice
from .network import Network
from .rules import DropSensor, Nudge, Rule, misclassified


@dataclass
class StepResult:
    """What one training step produced.

    Attributes:
        o_free: free outputs at the targets (V), shape (T,).
        o_clamped: clamped target voltages imposed on the clamped twin (V), shape (T,).
        error: output error ``C = 1/2 sum (O_F - L)^2`` (V^2) before the update.
        learned: whether the rule updated the state on this step.
    """

    o_free: np.ndarray
    o_clamped: np.ndarray
    error: float
    learned: bool


class Backend:
    """Solves the two states of a twin pair for the current edge state.

    The owner calls :meth:`prepare` whenever the state has changed, then any number of
    solves. ``v_fixed`` is ordered as sources (in node order) then ground.
    """

    def prepare(self, state: np.ndarray) -> None:
        raise NotImplementedError

    def free(self, v_fixed: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def clamped(self, v_fixed: np.ndarray, v_targets: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def free_batch(self, v_fixed: np.ndarray) -> np.ndarray:
        return np.stack([self.free(vf).copy() for vf in v_fixed])


class ReferenceBackend(Backend):
    """The general solver (:class:`DCSolver`) for any device; Newton warm-starts from the
    previous solution of the same state."""

    def __init__(self, network: Network, device: EdgeDevice, fixed: np.ndarray, targets: np.ndarray):
        self.device = device
        self._free = DCSolver(network, fixed)
        self._clamped = DCSolver(network, np.r_[fixed, targets])
        self._state: np.ndarray | None = None
        self._last_free: np.ndarray | None = None
        self._last_clamped: np.ndarray | None = None

    def prepare(self, state):
        self._state = state

    def free(self, v_fixed):
        self._last_free = self._free.solve(self.device, self._state, v_fixed, 0, self._last_free)
        return self._last_free

    def clamped(self, v_fixed, v_targets):
        vf = np.r_[v_fixed, v_targets]
        self._last_clamped = self._clamped.solve(self.device, self._state, vf, 1, self._last_clamped)
        return self._last_clamped

    def free_batch(self, v_fixed):
        if self.device.linear:
            return self._free.solve_linear(self.device.conductance(self._state, twin=0), v_fixed)
        return super().free_batch(v_fixed)


def make_backend(network: Network, device: EdgeDevice, fixed, targets, kind: str = "auto") -> Backend:
    """The solver back end for a twin pair.

    Args:
        kind: ``"reference"`` for :class:`ReferenceBackend`, ``"kernel"`` for the compiled
            kernels, ``"auto"`` for the kernels where they apply (all linear devices; MOSFET
            edges) and the reference otherwise.
    """
    if kind not in ("auto", "kernel", "reference"):
        raise ValueError(f"unknown solver back end {kind!r}")
    fixed = np.asarray(fixed, np.int64)
    targets = np.asarray(targets, np.int64)
    if kind != "reference":
        from . import kernel_backends

        backend = kernel_backends.for_device(network, device, fixed, targets)
        if backend is not None:
            return backend
        if kind == "kernel":
            raise ValueError(f"no compiled kernel for {device.kind} edges")
    return ReferenceBackend(network, device, fixed, targets)


class TwinNetwork:
    """A twin pair of one network with edges of one device model, trained by a local rule.

    Args:
        network: topology and roles; needs at least one target and at least one source or
            ground node.
        device: edge model (parameters of both twins, limits, bias).
        state: initial learned state, shape (E,), in the device's unit.
        rule: the local learning rule (None: the state never changes).
        nudge: how the clamped targets are set from the free outputs.
        sensor: the boards' read-out of their drops (noise, quantisation).
        update_only_on_error: None, or a read-out (``"argmax"``/``"difference"``) under which
            the state changes only on misclassified samples.
        seed: seed of the random generator (desynchronous updates, read-out noise).
        backend: ``"auto"``, ``"kernel"`` or ``"reference"`` (see :func:`make_backend`).
        leak: the gates' leak (:class:`~instruments.sim.retention.GateLeak`), or None.
        step_period_s: the time from one step to the next (s; the learning pulse, settling
            and read-out), over which ``leak`` acts before each step; None: no time passes.
    """

    def __init__(
        self,
        network: Network,
        device: EdgeDevice,
        state,
        rule: Rule | None = None,
        nudge: Nudge = Nudge(),
        sensor: DropSensor = DropSensor(),
        update_only_on_error: str | None = None,
        seed: int | None = 0,
        backend: str = "auto",
        leak=None,
        step_period_s: float | None = None,
    ):
        if device.n_edges != network.n_edges:
            raise ValueError(f"device has {device.n_edges} edges, network {network.n_edges}")
        self.network = network
        self.device = device
        self.rule = rule
        self.nudge = nudge
        self.sensor = sensor
        self.update_only_on_error = update_only_on_error
        self.rng = np.random.default_rng(seed)
        if step_period_s is not None and not step_period_s > 0:
            raise ValueError(f"step_period_s must be positive, got {step_period_s!r}")
        self.leak, self.step_period_s = leak, step_period_s
        self.sources = network.sources
        self.targets = network.targets
        ground = network.ground
        self.fixed = np.r_[self.sources, [] if ground is None else [ground]].astype(np.int64)
        if self.targets.size == 0:
            raise ValueError(f"network {network.name} has no target node")
        if self.fixed.size == 0:
            raise ValueError(f"network {network.name} has neither source nor ground node")
        check_floating(network, self.fixed)
        self._state = device.check_state(state).copy()
        self._backend = make_backend(network, device, self.fixed, self.targets, backend)
        self._dirty = True
        self._v_fixed = np.zeros(self.fixed.size)
        self._a = network.edges[:, 0]
        self._b = network.edges[:, 1]
        e = network.n_edges
        self._dv_free = np.empty(e)
        self._dv_clamped = np.empty(e)
        self._o_free = np.empty(self.targets.size)
        self._o_clamped = np.empty(self.targets.size)

    # -- state -------------------------------------------------------------------------------
    @property
    def state(self) -> np.ndarray:
        """A copy of the learned state (E,), in the device's unit."""
        return self._state.copy()

    @state.setter
    def state(self, value) -> None:
        self._state[:] = self.device.check_state(value)
        self._dirty = True

    @property
    def backend(self) -> Backend:
        return self._backend

    def conductance(self, twin: int = 0) -> np.ndarray:
        """Edge conductances (S) of one twin; MOSFET edges at their last free-state drops."""
        return self.device.conductance(self._state, twin=twin)

    def _prepare(self) -> None:
        if self._dirty:
            self._backend.prepare(self._state)
            self._dirty = False

    def _fixed(self, inputs) -> np.ndarray:
        inputs = np.asarray(inputs, float)
        if inputs.shape != self.sources.shape:
            raise ValueError(f"expected {self.sources.size} source voltages, got shape {inputs.shape}")
        self._v_fixed[: self.sources.size] = inputs
        return self._v_fixed

    # -- solves ------------------------------------------------------------------------------
    def free_state(self, inputs) -> np.ndarray:
        """Node voltages (V, shape (N,)) of the free twin with the sources at ``inputs`` (V)."""
        self._prepare()
        return self._backend.free(self._fixed(inputs)).copy()

    def clamped_state(self, inputs, clamps) -> np.ndarray:
        """Node voltages (V) of the clamped twin with sources at ``inputs`` and targets at
        ``clamps`` (V)."""
        self._prepare()
        return self._backend.clamped(self._fixed(inputs), np.asarray(clamps, float)).copy()

    def outputs(self, inputs) -> np.ndarray:
        """Free outputs (V) for one input vector (S,) or a batch (B, S) -> (T,) or (B, T)."""
        inputs = np.asarray(inputs, float)
        if inputs.ndim == 1:
            return self.free_state(inputs)[self.targets]
        if inputs.ndim != 2 or inputs.shape[1] != self.sources.size:
            raise ValueError(f"expected inputs of shape (B, {self.sources.size}), got {inputs.shape}")
        self._prepare()
        vf = np.zeros((inputs.shape[0], self.fixed.size))
        vf[:, : self.sources.size] = inputs
        return self._backend.free_batch(vf)[:, self.targets]

    # -- time ------------------------------------------------------------------------------------
    def hold(self, duration_s: float) -> None:
        """Time passes with no step (``duration_s``, s): the gates leak (if ``leak``)."""
        if self.leak is not None and duration_s:
            self.leak.apply(self._state, float(duration_s), self.device)
            self._dirty = True

    # -- training ----------------------------------------------------------------------------
    def step(self, inputs, desired, learn: bool = True) -> StepResult:
        """One coupled-learning step: free solve, nudge, clamped solve, local update.

        Args:
            inputs: source voltages (V), shape (S,), in the order of ``network.sources``.
            desired: desired target voltages L (V), shape (T,).
            learn: False to only evaluate (no clamped solve, no update).
        """
        if self.leak is not None and self.step_period_s is not None:
            self.hold(self.step_period_s)
        self._prepare()
        vf = self._fixed(inputs)
        desired = np.asarray(desired, float)
        v_free = self._backend.free(vf)
        o_f = np.take(v_free, self.targets, out=self._o_free)
        diff = o_f - desired
        error = 0.5 * float(diff @ diff)
        o_c = self.nudge.clamp(o_f, desired, out=self._o_clamped)
        learned = learn and self.rule is not None and (
            self.update_only_on_error is None or misclassified(o_f, desired, self.update_only_on_error)
        )
        if learned:
            v_cl = self._backend.clamped(vf, o_c)
            np.subtract(v_free[self._a], v_free[self._b], out=self._dv_free)
            np.subtract(v_cl[self._a], v_cl[self._b], out=self._dv_clamped)
            if not self.sensor.ideal:
                self.sensor.measure(self._dv_free, self.rng, out=self._dv_free)
                self.sensor.measure(self._dv_clamped, self.rng, out=self._dv_clamped)
            scale = self.nudge.update_scale(o_f, desired)
            self.rule.update(self._state, self._dv_free, self._dv_clamped, self.device, self.rng, scale)
            self._dirty = True
        return StepResult(o_f.copy(), o_c.copy(), error, learned)

    def learn_continuously(self, inputs, desired, duration_s: float, substeps: int = 100) -> StepResult:
        """Learning held on for ``duration_s`` (s): the lab's "continuous" mode, in which the
        gates charge for as long as both twins hold their states, the network's drops
        changing as the gates do. Integrated as ``substeps`` pulses of ``duration_s /
        substeps`` each (the rule, a :class:`~instruments.sim.rules.GateCharging`, with its
        pulse set to that; the free and clamped states solved afresh before each), which
        converges to the continuous charge as ``substeps`` grows (first order). Returns the
        last sub-step's result."""
        from .rules import GateCharging

        if not isinstance(self.rule, GateCharging):
            raise ValueError("continuous learning charges gates: it needs a GateCharging rule")
        if not (duration_s > 0 and int(substeps) >= 1):
            raise ValueError(f"continuous learning needs a duration > 0 and substeps >= 1, got {duration_s!r}, {substeps!r}")
        held, period = self.rule.pulse_s, self.step_period_s
        self.rule.pulse_s, self.step_period_s = duration_s / int(substeps), None
        try:
            for _ in range(int(substeps)):
                result = self.step(inputs, desired)
        finally:
            self.rule.pulse_s, self.step_period_s = held, period
        if self.leak is not None:
            self.hold(duration_s)
        return result

    def error(self, inputs, desired) -> float:
        """Mean output error ``1/2 sum_t (O_F - L)^2`` (V^2) over a batch (B, S), (B, T)."""
        out = self.outputs(np.atleast_2d(inputs))
        d = out - np.atleast_2d(desired)
        return float(0.5 * np.mean(np.sum(d * d, axis=1)))
