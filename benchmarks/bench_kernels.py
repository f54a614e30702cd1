"""Component measurements for instruments/sim/kernels.py: orderings, factor and solve times.

Times, per network, a whole linear training step done with :class:`LinearTwinSolver`
(factor, free solve, nudge in numpy, clamped solve, coupled-learning update in numpy) against
the plain reference (a fresh scipy ``splu`` of each state's reduced Laplacian), the MOSFET
lattice step with :class:`MosfetTwinSolver`, the candidate orderings, and memory.

    PYTHONPATH=. python benchmarks/bench_kernels.py                 # all but 300 x 300
    PYTHONPATH=. python benchmarks/bench_kernels.py --rows grid300  # one row (own process)
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

from instruments.sim.network import Network, gen2_lattice, random_connected, square_grid  # noqa: E402


def with_roles(net: Network, n_sources: int, n_targets: int, seed: int) -> Network:
    pick = np.random.default_rng(seed).choice(net.n_nodes, n_sources + n_targets + 1, replace=False)
    return net.with_roles(sources=pick[:n_sources].tolist(), targets=pick[n_sources:-1].tolist(),
                          ground=int(pick[-1]))


NETS = {
    "lattice": gen2_lattice,
    "grid10": lambda: with_roles(square_grid(10, 10), 3, 2, 1),
    "random300": lambda: with_roles(random_connected(300, 1500, seed=3), 3, 2, 1),
    "grid100": lambda: with_roles(square_grid(100, 100), 3, 2, 1),
    "grid300": lambda: with_roles(square_grid(300, 300), 3, 2, 1),
}


def timed(fn, min_s=1.0, min_reps=3):
    reps = 0
    t0 = time.perf_counter()
    while reps < min_reps or time.perf_counter() - t0 < min_s:
        fn()
        reps += 1
    return (time.perf_counter() - t0) / reps


class Reference:
    """Per state: reduced Laplacian and a fresh splu (as benchmarks/bench_step.py)."""

    def __init__(self, net, fixed, targets):
        inc = net.incidence().tocsc()
        self.n = net.n_nodes
        self.sets = []
        for fx in (fixed, np.r_[fixed, targets]):
            mask = np.ones(self.n, bool)
            mask[fx] = False
            unk = np.flatnonzero(mask)
            self.sets.append((fx, unk, inc[:, unk], inc[:, fx]))

    def solve(self, which, k, vf):
        fx, unk, a_u, a_f = self.sets[which]
        kd = sp.diags(k)
        v = np.empty(self.n)
        v[fx] = vf
        v[unk] = spla.splu((a_u.T @ kd @ a_u).tocsc()).solve(-(a_u.T @ kd @ a_f) @ vf)
        return v


def linear_row(name: str, quick: bool) -> dict:
    from instruments.sim.kernels import LinearTwinSolver

    net = NETS[name]()
    fixed = np.r_[net.sources, [net.ground]].astype(np.int64)
    targets = net.targets
    rng = np.random.default_rng(0)
    k = 10 ** rng.uniform(-3.5, -2.5, net.n_edges)
    vf = np.r_[rng.uniform(0, 0.45, net.sources.size), 0.0]
    desired = rng.uniform(0.05, 0.4, targets.size)
    a, b = net.edges[:, 0], net.edges[:, 1]
    eta, alpha = 128 / 129, 1e-3
    t0 = time.perf_counter()
    s = LinearTwinSolver(net.edges, net.n_nodes, fixed, targets)
    t_build = time.perf_counter() - t0
    big = net.n_nodes > 20000
    min_s = 0.3 if quick else (3.0 if big else 1.0)
    kk = k.copy()
    dvf = np.empty(net.n_edges)
    dvc = np.empty(net.n_edges)
    oc = np.empty(targets.size)

    def kernel_step(fused=False):
        if fused:
            v_f = s.factor_solve_free(kk, vf)
        else:
            s.factor(kk)
            v_f = s.solve_free(vf)
        of = v_f[targets]
        np.subtract(desired, of, out=oc)
        np.multiply(oc, eta, out=oc)
        np.add(oc, of, out=oc)
        v_c = s.solve_clamped(vf, oc)
        np.subtract(v_f[a], v_f[b], out=dvf)
        np.subtract(v_c[a], v_c[b], out=dvc)
        np.multiply(dvf, dvf, out=dvf)
        np.multiply(dvc, dvc, out=dvc)
        np.subtract(dvf, dvc, out=dvf)
        np.multiply(dvf, alpha / eta, out=dvf)  # the update (k kept fixed: stationary timing)

    ref = Reference(net, fixed, targets)

    def ref_step():
        v_f = ref.solve(0, k, vf)
        of = v_f[targets]
        o_c = of + eta * (desired - of)
        v_c = ref.solve(1, k, np.r_[vf, o_c])
        _ = (alpha / eta) * ((v_f[a] - v_f[b]) ** 2 - (v_c[a] - v_c[b]) ** 2)

    kernel_step()
    kernel_step(True)  # compile both paths before timing
    # agreement
    v_f = ref.solve(0, k, vf)
    o_c = v_f[targets] + eta * (desired - v_f[targets])
    err = max(np.max(np.abs(s.solve_free(vf) - v_f)), np.max(np.abs(s.solve_clamped(vf, o_c) - ref.solve(1, k, np.r_[vf, o_c]))))
    t_kernel = timed(kernel_step, min_s)
    t_fused = timed(lambda: kernel_step(True), min_s)
    t_ref = timed(ref_step, min_s, 2 if big else 3)
    # parts
    t_factor = timed(lambda: s.factor(kk), min_s / 2)
    t_free = timed(lambda: s.solve_free(vf), min_s / 2)
    t_cl = timed(lambda: s.solve_clamped(vf, o_c), min_s / 2)
    return {
        "row": name, "nodes": net.n_nodes, "edges": net.n_edges, "ordering": s.ordering,
        "costs": {kk_: [c[0], f"{c[1]:.3g}"] for kk_, c in s.ordering_costs.items()},
        "nnz_L": s.nnz_l, "build_s": round(t_build, 3), "kernel_step_us": t_kernel * 1e6,
        "fused_step_us": t_fused * 1e6, "ref_step_us": t_ref * 1e6, "ratio": t_ref / t_kernel, "factor_us": t_factor * 1e6,
        "solve_free_us": t_free * 1e6, "solve_clamped_us": t_cl * 1e6, "max_abs_err_V": float(err),
        "solver_MiB": s.memory_bytes / 2**20,
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def mosfet_row(quick: bool) -> dict:
    from instruments.sim.edges import Mosfet
    from instruments.sim.kernels import MosfetTwinSolver

    net = gen2_lattice()
    fixed = np.r_[net.sources, [net.ground]].astype(np.int64)
    targets = net.targets
    dev = Mosfet(net.n_edges)
    rng = np.random.default_rng(0)
    vg = rng.uniform(1.5, 2.8, net.n_edges)
    xs = rng.uniform(0, 0.45, (64, 4))
    ys = rng.uniform(0.05, 0.4, (64, 2))
    m = MosfetTwinSolver.from_device(net, dev, fixed, targets)
    a, b = net.edges[:, 0], net.edges[:, 1]
    vf = np.zeros(5)
    eta = 128 / 129
    gain = 100e-6 / (1e3 * 2.2e-6) * 0.1
    its = []
    i = [0]

    def step():
        j = i[0] % 64
        i[0] += 1
        vf[:4] = xs[j]
        v_f = m.solve_free(vg, vf)
        of = v_f[targets]
        oc = of + eta * (ys[j] - of)
        v_c = m.solve_clamped(vg, vf, oc)
        dvg = gain * ((v_f[a] - v_f[b]) ** 2 - (v_c[a] - v_c[b]) ** 2)
        np.clip(vg + dvg, 1.0, 5.5, out=vg)
        its.append(m.iterations)

    step()
    t = timed(step, 0.3 if quick else 1.5)
    it = np.array(its)
    return {"row": "lattice-mosfet", "step_us": t * 1e6, "steps_per_s": 1 / t,
            "mean_iterations_free_clamped": it.mean(axis=0).tolist(), "max_iterations": it.max(axis=0).tolist()}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", nargs="*", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--one")
    args = p.parse_args()
    if args.one:
        r = mosfet_row(args.quick) if args.one == "mosfet" else linear_row(args.one, args.quick)
        print(json.dumps(r))
        return 0
    rows = args.rows or ["lattice", "grid10", "random300", "grid100", "mosfet"]
    for name in rows:
        out = subprocess.run([sys.executable, __file__, "--one", name] + (["--quick"] if args.quick else []),
                             capture_output=True, text=True)
        if out.returncode:
            print(name, "FAILED", out.stderr)
            continue
        print(out.stdout.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
