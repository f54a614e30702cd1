"""Is the network learning, or is the read-out? Iris on the simulated bench, read out several ways.

Trains a built-in Iris experiment on the simulated bench with each read-out and target rule,
with and without a bias source, and prints a Markdown table of test accuracy: untrained
(the run's epoch -1), trained (its last epoch) and with no network at all, read out the same
way (:mod:`hostctl.baselines`). The figures of docs/learning-shown.md come from it::

    python examples/iris_readouts.py iris_gen1
    python examples/iris_readouts.py iris_gen2

For the Gen-1 grid (digipots: linear resistors) it also prints what the best conductances
could do with the highest-target read-out, found by direct optimisation (L-BFGS-B over the
edges' log-conductances within the digipot's range, a softmax loss on the training set,
several random starts): the ceiling the topology sets, whatever the learning rule.
"""

from __future__ import annotations

import argparse
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import tomli_w

from hostctl import baselines, session
from hostctl.experiment import builtin_experiment_text, loads_experiment
from hostctl.runfile import load

#: (label, overrides of [network], [task], [rule]) of every variant.
VARIANTS = {
    "iris_gen1": [
        ("built-in: nearest mean, adaptive targets", {}, {}, {}),
        ("highest target, adaptive targets", {}, {"readout": "argmax"}, {}),
        ("highest target, fixed targets", {}, {"readout": "argmax", "targets": "fixed"}, {}),
        ("highest target, adaptive, bias 1 V", {"bias_v": 1.0}, {"readout": "argmax"}, {}),
        ("highest target, fixed, bias 1 V", {"bias_v": 1.0}, {"readout": "argmax", "targets": "fixed"}, {}),
    ],
    "iris_gen2": [
        ("built-in", {}, {}, {}),
        ("highest target, adaptive targets", {}, {"readout": "argmax"}, {}),
        ("highest target, adaptive, bias 0.45 V", {"bias_v": 0.45}, {"readout": "argmax"}, {}),
        ("highest target, adaptive, bias 0.45 V, margin 0.05 V, update on error",
         {"bias_v": 0.45}, {"readout": "argmax", "margin_v": 0.05}, {"update_only_on_error": True}),
    ],
}


def experiment(name: str, network: dict, task: dict, rule: dict):
    """The built-in ``name`` with the overrides applied."""
    d = tomllib.loads(builtin_experiment_text(name))
    d["network"].update(network)
    d["task"].update(task)
    d["rule"].update(rule)
    return loads_experiment(tomli_w.dumps(d), f"{name} (variant)")


def train(exp, folder: Path):
    """Train ``exp`` on its simulated bench; the run file's epochs and no-network baseline."""
    wiring = session.wiring_for(exp, None)
    rig = session.open_bench(exp, wiring, True)
    out = folder / f"run{len(list(folder.iterdir()))}.h5"
    session.train(exp, rig, out, None)
    run = load(out)
    return run.epochs, baselines.of_run(run)


def digipot_ceiling(exp, starts: int = 4, seed: int = 0) -> tuple[float, float]:
    """(train, test) accuracy of the best highest-target conductances of a digipot network
    (linear edges), found by L-BFGS-B from ``starts`` random starts."""
    from scipy.optimize import minimize

    from instruments.sim.edges import DIGIPOT_R_MAX_OHM, DIGIPOT_R_MIN_OHM

    net, t = exp.network, exp.task
    held = list(net.sources) + ([net.ground] if net.ground is not None else [])
    free = [i for i in range(net.n_nodes) if i not in held]
    lo, hi = np.log(1 / DIGIPOT_R_MAX_OHM), np.log(1 / DIGIPOT_R_MIN_OHM)

    def outputs(log_g, x):
        g = np.exp(np.clip(log_g, lo, hi))
        lap = np.zeros((net.n_nodes, net.n_nodes))
        a, b = net.edges[:, 0], net.edges[:, 1]
        np.add.at(lap, (a, a), g)
        np.add.at(lap, (b, b), g)
        np.add.at(lap, (a, b), -g)
        np.add.at(lap, (b, a), -g)
        vs = np.c_[x, np.zeros((len(x), 1))] if net.ground is not None else x
        v = np.zeros((len(x), net.n_nodes))
        v[:, held] = vs
        v[:, free] = np.linalg.solve(lap[np.ix_(free, free)], -lap[np.ix_(free, held)] @ vs.T).T
        return v[:, net.targets]

    def loss(log_g, beta=60.0):
        o = beta * outputs(log_g, t.train_inputs)
        o -= o.max(axis=1, keepdims=True)
        return -np.mean(o[np.arange(len(o)), t.train_labels] - np.log(np.exp(o).sum(axis=1)))

    rng = np.random.default_rng(seed)
    best = None
    for _ in range(starts):
        r = minimize(loss, rng.uniform(lo, hi, net.n_edges), bounds=[(lo, hi)] * net.n_edges, method="L-BFGS-B")
        if best is None or r.fun < best.fun:
            best = r
    acc = [float(np.mean(outputs(best.x, x).argmax(axis=1) == y))
           for x, y in ((t.train_inputs, t.train_labels), (t.test_inputs, t.test_labels))]
    return acc[0], acc[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=sorted(VARIANTS), help="the built-in Iris experiment")
    args = p.parse_args(argv)
    print(f"{args.name}: test accuracy (train in brackets)\n")
    print("| variant | untrained | trained | best epoch | no network |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, net, task, rule in VARIANTS[args.name]:
            ep, base = train(experiment(args.name, net, task, rule), Path(tmp))
            first, last = ep.iloc[0], ep.iloc[-1]
            print(f"| {label} | {100 * first.test_accuracy:.1f} % | {100 * last.test_accuracy:.1f} % "
                  f"({100 * last.train_accuracy:.1f} %) | {100 * ep.test_accuracy.max():.1f} % | "
                  f"{100 * base.test:.1f} % ({base.how}) |")
    if args.name == "iris_gen1":
        print("\nThe best conductances with the highest-target read-out (direct optimisation):\n")
        print("| network | train | test |")
        print("|---|---|---|")
        for label, net in (("no bias", {}), ("bias 1 V at r1c1 (the default node)", {"bias_v": 1.0}),
                           ("bias 1 V at r3c3 (the far corner)", {"bias_v": 1.0, "bias_node": "r3c3"})):
            tr, te = digipot_ceiling(experiment(args.name, net, {"readout": "argmax"}, {}))
            print(f"| {label} | {100 * tr:.1f} % | {100 * te:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
