"""Speed and memory of a whole training step: runner, interfaces, simulated bench, run file.

Each row times, in the same process, on the Gen-2 lattice (32 MOSFET edges):

* the full step as ``hostctl train`` does it: ``Runner.learn`` (the step through the safety
  layer's checked DAQ on the simulated bench: sources out and free outputs back, the clamps,
  the learn pulse through the emulated boards) plus the step's record in an HDF5 run file
  (``RunWriter.step``, flushed every second), plus the runner's per-step bookkeeping
  (checkpoint clock, safety check, flush tick);
* the bare simulator's step: ``TwinNetwork.step`` with the same device, initial state,
  nudge and the gate rule, on the same samples.

Blocks of full and bare steps alternate and the fastest block of each counts. Target: the
full step at most 2x the bare one. With ``--million`` it also runs a 1,000,000-step training
run (``Runner.run``, Iris on the MOSFET lattice, records every step) and reports the peak
resident memory (target: under 500 MB) and the run file's size.

    python benchmarks/bench_runner.py             # the step table
    python benchmarks/bench_runner.py --million   # and the long run (about a minute)
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostctl import session  # noqa: E402
from hostctl.experiment import builtin_experiment_text, loads_experiment  # noqa: E402
from hostctl.plans import Learn  # noqa: E402
from hostctl.runfile import RunWriter, provenance  # noqa: E402
from hostctl.runner import Runner, metadata  # noqa: E402
from instruments.sim.rules import CoupledLearning  # noqa: E402
from instruments.sim.twin import TwinNetwork  # noqa: E402

TARGET_RATIO = 2.0


def experiment(epochs: int = 1, steps: int = 30):
    d = tomllib.loads(builtin_experiment_text("iris_gen2"))
    d["schedule"].update(epochs=epochs, steps_per_epoch=steps, eval_every=0)
    return loads_experiment(tomli_w.dumps(d), "<bench>")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def step_table(blocks: int, block_steps: int) -> None:
    exp = experiment()
    rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
    bare = TwinNetwork(exp.network, rig.bench.device, rig.bench.device_state(),
                       rule=CoupledLearning(alpha=100.0, eta=0.1), nudge=exp.nudge, seed=0)
    task = exp.task
    n = task.n_train
    with tempfile.TemporaryDirectory() as tmp:
        net = exp.network
        writer = RunWriter(Path(tmp) / "bench.h5", n_sources=net.sources.size, n_targets=net.targets.size,
                           n_edges=net.n_edges, metadata=metadata(exp, rig), provenance=provenance())
        runner = Runner(exp, rig, writer)
        runner.configure_boards()
        guard = rig.guard()
        full_best = bare_best = np.inf
        for _ in range(blocks):
            t0 = time.perf_counter()
            for k in range(block_steps):
                if runner.clock() >= runner._next_checkpoint:
                    runner._next_checkpoint = runner.clock() + runner.checkpoint_s
                guard.check()
                runner.learn(Learn(k, 0, k % n))
                writer.tick()
            full_best = min(full_best, (time.perf_counter() - t0) / block_steps)
            t0 = time.perf_counter()
            for k in range(block_steps):
                i = k % n
                bare.step(task.train_inputs[i], task.desired("train")[i])
            bare_best = min(bare_best, (time.perf_counter() - t0) / block_steps)
        writer.close()
        rig.close()
    ratio = full_best / bare_best
    print(f"{'row':<28}{'full us':>9}{'bare us':>9}{'ratio':>8}{'target':>8}")
    print("-" * 62)
    print(f"{'gen2-lattice, iris_gen2':<28}{full_best * 1e6:>9.1f}{bare_best * 1e6:>9.1f}{ratio:>7.2f}x"
          f"{TARGET_RATIO:>7.1f}x")


def million() -> None:
    exp = experiment(epochs=1000, steps=1000)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "million.h5"
        rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
        t0 = time.perf_counter()
        before = peak_mib()
        outcome = session.train(exp, rig, path)
        dt = time.perf_counter() - t0
        rig.close()
        print(f"\n1,000,000-step run: {outcome.steps:,} steps in {dt:.0f} s ({outcome.steps / dt:,.0f} steps/s), "
              f"peak resident {peak_mib():.0f} MiB (before the run {before:.0f} MiB; target < 500 MB), "
              f"run file {path.stat().st_size / 2**20:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--block-steps", type=int, default=3000)
    ap.add_argument("--million", action="store_true", help="also the 1,000,000-step run")
    args = ap.parse_args()
    step_table(args.blocks, args.block_steps)
    if args.million:
        million()


if __name__ == "__main__":
    main()
