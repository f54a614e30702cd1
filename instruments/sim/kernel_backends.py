"""Twin-pair back ends built on the compiled kernels of :mod:`instruments.sim.kernels`.

* :class:`LinearKernelBackend` (resistors, digital potentiometers, any all-linear mix): one
  LDL^T factorisation per state change; the clamped state shares the free factor when the
  twins are identical, and gets its own when they are mismatched.
* :class:`MosfetKernelBackend` (n-MOSFET edges): compiled Newton, each state warm-started
  from its own previous solution.

Devices with no kernel (MOSFETs mixed with other kinds, MOSFETs with LAMBDA > 0) get None, and the caller falls back
to the general :class:`~instruments.sim.circuit.DCSolver`.
"""

from __future__ import annotations

import numpy as np

from .edges import EdgeDevice, Mosfet
from .kernels import LinearTwinSolver, MosfetTwinSolver
from .network import Network
from .twin import Backend


class LinearKernelBackend(Backend):
    """Linear edges: :class:`LinearTwinSolver`, factorised once per state change."""

    def __init__(self, network: Network, device: EdgeDevice, fixed: np.ndarray, targets: np.ndarray):
        self.device = device
        self._mismatched = not device.twins_identical
        self.solver = LinearTwinSolver(network.edges, network.n_nodes, fixed, targets, node_names=network.nodes)
        e = network.n_edges
        self._k0 = np.empty(e)
        self._k1 = np.empty(e) if self._mismatched else None

    def prepare(self, state: np.ndarray) -> None:
        self._k0[:] = self.device.conductance(state, twin=0)
        if self._mismatched:
            self._k1[:] = self.device.conductance(state, twin=1)
        self.solver.factor(self._k0, self._k1)

    def free(self, v_fixed: np.ndarray) -> np.ndarray:
        return self.solver.solve_free(v_fixed)

    def clamped(self, v_fixed: np.ndarray, v_targets: np.ndarray) -> np.ndarray:
        return self.solver.solve_clamped(v_fixed, v_targets)

    def free_batch(self, v_fixed: np.ndarray) -> np.ndarray:
        return self.solver.solve_free_batch(v_fixed)


class MosfetKernelBackend(Backend):
    """MOSFET edges (gate voltage as state): :class:`MosfetTwinSolver`."""

    def __init__(self, network: Network, device: Mosfet, fixed: np.ndarray, targets: np.ndarray):
        self.solver = MosfetTwinSolver.from_device(network, device, fixed, targets)
        self._state: np.ndarray | None = None

    def prepare(self, state: np.ndarray) -> None:
        self._state = state

    def free(self, v_fixed: np.ndarray) -> np.ndarray:
        return self.solver.solve_free(self._state, v_fixed, twin=0)

    def clamped(self, v_fixed: np.ndarray, v_targets: np.ndarray) -> np.ndarray:
        return self.solver.solve_clamped(self._state, v_fixed, v_targets, twin=1)


def for_device(network: Network, device: EdgeDevice, fixed, targets) -> Backend | None:
    """The compiled back end for ``device``, or None where no kernel applies."""
    if device.linear:
        return LinearKernelBackend(network, device, fixed, targets)
    if isinstance(device, Mosfet) and not device.has_lambda:
        return MosfetKernelBackend(network, device, fixed, targets)
    return None
