"""Speed of the coupled-learning training step and of evaluation, against a plain reference.

Each row times, in the same run, twinrig's ``TwinNetwork.step`` (free solve, nudge, clamped
solve, local update, through the public API) and a plain reference that does the same step
with a fresh scipy sparse LU (``splu``) of each state's reduced Laplacian (for MOSFET edges:
Newton's method with a fresh ``splu`` of the reduced Jacobian at every iteration), and prints
the ratio. Evaluation rows time a batch of 1,000 inputs: ``TwinNetwork.outputs`` against one
``splu`` per sample. Every row runs in its own process so that its peak resident memory is
its own. Both sides start from the same state and must end in the same state; the largest
difference is printed as a check.

    python benchmarks/bench_step.py              # all rows
    python benchmarks/bench_step.py --quick      # fewer repetitions, no 300 x 300 grid
    python benchmarks/bench_step.py --rows lattice-linear grid-10x10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instruments.sim.edges import Mosfet, Resistor  # noqa: E402
from instruments.sim.network import Network, gen2_lattice, random_connected, square_grid  # noqa: E402
from instruments.sim.rules import CoupledLearning, GateCharging, Nudge  # noqa: E402
from instruments.sim.twin import TwinNetwork  # noqa: E402

ROWS = {
    # name: (network builder, device kind, what)
    "lattice-linear": ("lattice", "resistor", "step"),
    "lattice-mosfet": ("lattice", "mosfet", "step"),
    "grid-10x10": ("grid10", "resistor", "step"),
    "random-300n-1500e": ("random300", "resistor", "step"),
    "grid-100x100": ("grid100", "resistor", "step"),
    "grid-300x300": ("grid300", "resistor", "step"),
    "eval-lattice-linear": ("lattice", "resistor", "eval"),
    "eval-lattice-mosfet": ("lattice", "mosfet", "eval"),
    "eval-grid-100x100": ("grid100", "resistor", "eval"),
}
TARGETS = {  # minimum speed-up over the reference required by the issue
    "lattice-linear": 40.0,
    "grid-10x10": 15.0,
    "random-300n-1500e": 5.0,
    "grid-100x100": 3.0,
}


def with_roles(net: Network, n_sources: int, n_targets: int, seed: int) -> Network:
    """Spread sources, targets and one ground node over the network, reproducibly."""
    pick = np.random.default_rng(seed).choice(net.n_nodes, n_sources + n_targets + 1, replace=False)
    return net.with_roles(
        sources=pick[:n_sources].tolist(),
        targets=pick[n_sources : n_sources + n_targets].tolist(),
        ground=int(pick[-1]),
    )


def build_network(name: str) -> Network:
    if name == "lattice":
        return gen2_lattice()
    if name == "grid10":
        return with_roles(square_grid(10, 10), 3, 2, 1)
    if name == "random300":
        return with_roles(random_connected(300, 1500, seed=3), 3, 2, 1)
    if name == "grid100":
        return with_roles(square_grid(100, 100), 3, 2, 1)
    if name == "grid300":
        return with_roles(square_grid(300, 300), 3, 2, 1)
    raise ValueError(name)


def build_twin(net: Network, kind: str, backend: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    e = net.n_edges
    nudge = Nudge(grid_m=128)
    if kind == "mosfet":
        device = Mosfet(e)
        state = rng.uniform(1.5, 2.8, e)
        rule = GateCharging()
    else:
        device = Resistor(e, state_min=1e-5, state_max=1e-1)
        state = 10 ** rng.uniform(-3.5, -2.5, e)
        rule = CoupledLearning(alpha=1e-3, eta=nudge.effective_eta)
    twin = TwinNetwork(net, device, state, rule=rule, nudge=nudge, seed=seed, backend=backend)
    return twin


def samples(net: Network, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 0.45, (n, net.sources.size)), rng.uniform(0.05, 0.4, (n, net.targets.size))


class ReferenceStep:
    """The plain reference: per step, a fresh ``splu`` of each state's reduced Laplacian."""

    def __init__(self, twin: TwinNetwork):
        self.twin = twin
        net = twin.network
        self.inc = net.incidence().tocsc()
        n = net.n_nodes
        fixed_free = twin.fixed
        fixed_cl = np.r_[twin.fixed, twin.targets]
        self.sets = []
        for fixed in (fixed_free, fixed_cl):
            mask = np.ones(n, bool)
            mask[fixed] = False
            unknown = np.flatnonzero(mask)
            self.sets.append((fixed, unknown, self.inc[:, unknown], self.inc[:, fixed]))
        self.state = twin.state
        self.a, self.b = net.edges[:, 0], net.edges[:, 1]
        self.last = [None, None]

    def solve(self, which: int, vf: np.ndarray) -> np.ndarray:
        fixed, unknown, a_u, a_f = self.sets[which]
        device = self.twin.device
        v = np.empty(self.twin.network.n_nodes)
        v[fixed] = vf
        if device.linear:
            kd = sp.diags(device.conductance(self.state, twin=which))
            k_uu = (a_u.T @ kd @ a_u).tocsc()
            v[unknown] = spla.splu(k_uu).solve(-(a_u.T @ kd @ a_f) @ vf)
            return v
        v[unknown] = 0.0 if self.last[which] is None else self.last[which][unknown]
        for _ in range(100):
            i, ga, gb = device.current(self.state, v[self.a], v[self.b], which)
            f = (self.inc.T @ i)[unknown]
            if np.max(np.abs(f)) <= 1e-12 * np.max(np.abs(i)):
                break
            g = sp.csc_matrix((ga, (np.arange(len(ga)), self.a)), shape=self.inc.shape) + sp.csc_matrix(
                (gb, (np.arange(len(gb)), self.b)), shape=self.inc.shape
            )
            jac = (a_u.T @ g[:, unknown]).tocsc() + sp.identity(unknown.size, format="csc") * 1e-12
            dv = spla.splu(jac).solve(f)
            v[unknown] -= dv * min(1.0, 0.5 / max(np.max(np.abs(dv)), 1e-300))
        self.last[which] = v.copy()
        return v

    def step(self, inputs, desired) -> None:
        twin = self.twin
        vf = np.r_[inputs, np.zeros(twin.fixed.size - inputs.size)]
        v_free = self.solve(0, vf)
        o_f = v_free[twin.targets]
        o_c = twin.nudge.clamp(o_f, desired)
        v_cl = self.solve(1, np.r_[vf, o_c])
        dvf = v_free[self.a] - v_free[self.b]
        dvc = v_cl[self.a] - v_cl[self.b]
        twin.rule.update(self.state, dvf, dvc, twin.device, twin.rng)

    def outputs(self, inputs: np.ndarray) -> np.ndarray:
        out = np.empty((len(inputs), self.twin.targets.size))
        for j, x in enumerate(inputs):
            vf = np.r_[x, np.zeros(self.twin.fixed.size - x.size)]
            out[j] = self.solve(0, vf)[self.twin.targets]
        return out


def timed(fn, min_s: float, min_reps: int, max_reps: int) -> tuple[float, int]:
    """Seconds per call of ``fn(i)``, timing at least ``min_s`` or ``min_reps`` calls."""
    reps = 0
    t0 = time.perf_counter()
    while reps < max_reps and (reps < min_reps or time.perf_counter() - t0 < min_s):
        fn(reps)
        reps += 1
    return (time.perf_counter() - t0) / reps, reps


def run_row(name: str, quick: bool) -> dict:
    net_name, kind, what = ROWS[name]
    net = build_network(net_name)
    fast = build_twin(net, kind, "auto")
    ref = ReferenceStep(build_twin(net, kind, "reference"))
    min_s = 0.3 if quick else 1.5
    big = net.n_nodes > 5000
    if what == "step":
        x, y = samples(net, 64)
        fast.step(x[0], y[0])  # compile and warm up
        ref.step(x[0], y[0])
        # equivalence check: both sides from the same state, the same samples
        fast.state = ref.state
        n_check = 3 if big else 20
        for j in range(n_check):
            fast.step(x[j % 64], y[j % 64])
            ref.step(x[j % 64], y[j % 64])
        diff = float(np.max(np.abs(fast.state - ref.state)) / np.max(np.abs(ref.state)))
        t_fast, n_fast = timed(lambda i: fast.step(x[i % 64], y[i % 64]), min_s, 3, 10**7)
        t_ref, n_ref = timed(lambda i: ref.step(x[i % 64], y[i % 64]), min_s, 2 if big else 3, 10**6)
        unit = "steps/s"
    else:
        x, _ = samples(net, 1000)
        fast.outputs(x[:2])
        ref_out = ref.outputs(x)
        diff = float(np.max(np.abs(fast.outputs(x) - ref_out)))
        t_fast, n_fast = timed(lambda i: fast.outputs(x), min_s, 2, 10**6)
        t_ref, n_ref = timed(lambda i: ref.outputs(x), min_s / 2, 1, 10**6)
        t_fast, t_ref = t_fast / len(x), t_ref / len(x)
        unit = "samples/s"
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "row": name,
        "nodes": net.n_nodes,
        "edges": net.n_edges,
        "unit": unit,
        "fast_per_s": 1 / t_fast,
        "ref_per_s": 1 / t_ref,
        "ratio": t_ref / t_fast,
        "fast_us": t_fast * 1e6,
        "check": diff,
        "peak_mib": rss_mib,
        "backend": type(fast.backend).__name__,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="*", default=None, choices=list(ROWS), help="rows to run")
    p.add_argument("--quick", action="store_true", help="short timings, skip the 300 x 300 grid")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print rows as JSON lines too")
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_row(args.one, args.quick)))
        return 0
    rows = args.rows or [r for r in ROWS if not (args.quick and r == "grid-300x300")]
    head = (
        f"{'row':<20} {'nodes':>6} {'edges':>7} {'twinrig':>12} {'reference':>11} {'unit':<9} "
        f"{'ratio':>7} {'target':>7} {'us/op':>9} {'peak MiB':>9} {'max diff':>9}"
    )
    print(head)
    print("-" * len(head))
    results = []
    for name in rows:
        cmd = [sys.executable, __file__, "--one", name] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name:<20} FAILED\n{out.stderr}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        target = TARGETS.get(name)
        print(
            f"{r['row']:<20} {r['nodes']:>6} {r['edges']:>7} {r['fast_per_s']:>12,.0f} "
            f"{r['ref_per_s']:>11,.1f} {r['unit']:<9} {r['ratio']:>6.1f}x "
            f"{'' if target is None else f'{target:.0f}x':>7} {r['fast_us']:>9.1f} "
            f"{r['peak_mib']:>9.0f} {r['check']:>9.1e}",
            flush=True,
        )
        if args.json:
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
