"""``hostctl sim teach``: coupled learning on the bare simulator, teacher and student.

The task is one the network can solve exactly: a *teacher* twin network with random gate
voltages defines the desired outputs for random input voltages; the *student*, started from
uniform gates, learns them with the Gen-2 gate-charging rule. The error curve is printed as
it falls.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hostctl import argtypes

#: The teacher's answers for every sample are solved at once (a few kB each).
MAX_TEACH_SAMPLES = 10_000
#: Rows of the printed error curve (each one solve of every sample).
MAX_POINTS = 10_000


def add_arguments(p) -> None:
    """The options of ``hostctl sim teach``."""
    p.add_argument("--steps", type=argtypes.steps, default=200000,
                   help=f"training steps, 1..{argtypes.MAX_STEPS:.0e} (default 200000)")
    p.add_argument("--samples", type=argtypes.integer(1, MAX_TEACH_SAMPLES), default=8,
                   help=f"training samples, 1..{MAX_TEACH_SAMPLES} (default 8)")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="random seed, 0..2^32-1 (default 0)")
    p.add_argument("--device", choices=("mosfet", "resistor"), default="mosfet",
                   help="edge devices: Gen-2 MOSFETs (default) or linear resistors")
    p.add_argument("--points", type=argtypes.integer(1, MAX_POINTS), default=10,
                   help=f"rows of the printed error curve, 1..{MAX_POINTS} (default 10)")


def build(device_kind: str, samples: int, seed: int):
    """Student twin, training inputs (B, S) and desired outputs (B, T) (V)."""
    from instruments.sim.edges import Mosfet, Resistor
    from instruments.sim.network import gen2_lattice
    from instruments.sim.rules import CoupledLearning, GateCharging, Nudge
    from instruments.sim.twin import TwinNetwork

    rng = np.random.default_rng(seed)
    net = gen2_lattice()
    e = net.n_edges
    nudge = Nudge(grid_m=128)
    if device_kind == "mosfet":
        device = Mosfet(e)
        teacher_state = rng.uniform(1.5, 4.5, e)
        student_state = np.full(e, 2.5)
        rule = GateCharging(pulse_s=200e-6)
    else:
        device = Resistor(e, state_min=1e-5, state_max=1e-2)
        teacher_state = 10 ** rng.uniform(-4, -2.5, e)
        student_state = np.full(e, 10 ** -3.25)
        rule = CoupledLearning(alpha=2e-2, eta=nudge.effective_eta)
    # inputs: two analog inputs 0..0.45 V and the two bias nodes at 0.45 V and 0 V
    x = rng.uniform(0.0, 0.45, (samples, 2))
    inputs = np.c_[x[:, 0], np.full(samples, 0.45), np.full(samples, 0.0), x[:, 1]]
    teacher = TwinNetwork(net, device, teacher_state)
    desired = teacher.outputs(inputs)
    student = TwinNetwork(net, device, student_state, rule=rule, nudge=nudge, seed=seed)
    return student, inputs, desired


def run(args: argparse.Namespace) -> int:
    student, inputs, desired = build(args.device, args.samples, args.seed)
    order = np.random.default_rng(args.seed + 1)
    report_at = set(np.unique(np.linspace(0, args.steps, args.points + 1).astype(int)).tolist())
    print(f"coupled learning on the simulated {student.network.describe()}")
    print(f"{args.device} edges, {args.samples} samples, {args.steps} steps")
    print(f"{'step':>8}  {'test error (V^2)':>16}  {'rms error (mV)':>14}")
    t0 = time.perf_counter()
    first = None
    for k in range(args.steps + 1):
        if k in report_at:
            err = student.error(inputs, desired)
            first = err if first is None else first
            rms_mv = 1e3 * np.sqrt(2 * err / desired.shape[1])
            print(f"{k:>8}  {err:>16.3e}  {rms_mv:>14.3f}")
        if k < args.steps:
            i = order.integers(len(inputs))
            student.step(inputs[i], desired[i])
    dt = time.perf_counter() - t0
    print(f"error fell {first / max(err, 1e-300):.1f}x in {args.steps} steps ({args.steps / dt:,.0f} steps/s)")
    return 0
