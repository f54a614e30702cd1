"""Speed of a training step on the simulated bench, against the bare simulator's step.

Each row times, in the same process and on the same network, device, initial state and
samples:

* the bench step, through the interfaces, as a controller does it:
  ``SimBench.daq.write_and_read`` (sources out, free outputs back through the simulated
  DAQ), the clamps ``O_C = O_F + eta (L - O_F)`` with eta = 128/129, then
  ``write_and_pulse`` (every emulated board samples its drops through its ADC and runs the
  firmware's integer rule, and the devices follow);
* the bare step: ``TwinNetwork.step`` with the matching rule (``GateCharging`` for the
  MOSFET lattice, ``TapRule`` for the digipot grid) and the same nudge.

Blocks of bench and bare steps alternate and the fastest block of each counts, so that a
busy machine slows both alike. The target is a bench step within about 1.5x of the bare one.

    python benchmarks/bench_bench.py            # all rows
    python benchmarks/bench_bench.py --quick    # fewer, shorter blocks
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instruments.sim.bench import DaqErrors, SimBench  # noqa: E402
from instruments.sim.rules import GateCharging, Nudge, TapRule  # noqa: E402
from instruments.sim.twin import TwinNetwork  # noqa: E402
from instruments.wiring import default_wiring  # noqa: E402

ROWS = {
    # name: (built-in wiring, DAQ errors)
    "gen2-lattice": ("gen2", "drawn"),
    "gen2-lattice-ideal-daq": ("gen2", "ideal"),
    "gen1-grid": ("gen1", "drawn"),
}
TARGET_RATIO = 1.5
N_SAMPLES = 64


def build(row: str):
    wiring_name, errors = ROWS[row]
    wiring = default_wiring(wiring_name)
    bench = SimBench(wiring, seed=0, errors=DaqErrors.ideal() if errors == "ideal" else None)
    nudge = Nudge(grid_m=128)
    rule = GateCharging(pulse_s=wiring.timing.pulse_s) if wiring.edge_kind == "mosfet" else TapRule()
    bare = TwinNetwork(bench.network, bench.device, bench.device_state(), rule=rule, nudge=nudge, seed=0)

    node_max_v = max(o.max_v for o in wiring.outputs)
    rng = np.random.default_rng(1)
    net = bench.network
    inputs = rng.uniform(0.0, node_max_v, (N_SAMPLES, net.sources.size))
    desired = rng.uniform(0.1 * node_max_v, 0.8 * node_max_v, (N_SAMPLES, net.targets.size))
    lay = bench.layout
    outputs = np.stack([lay.outputs(x, np.zeros(net.targets.size)) for x in inputs])
    eta = nudge.effective_eta
    daq, free_ai, clamp_ao = bench.daq, lay.free_ai, lay.clamp_ao
    timing = wiring.timing
    settle_s, n_avg, pulse_s = timing.settle_s, timing.n_average, timing.pulse_s
    pulse_out = np.empty(lay.n_ao)

    def bench_step(i: int) -> None:
        j = i % N_SAMPLES
        o_free = daq.write_and_read(outputs[j], settle_s, n_avg)[free_ai]
        pulse_out[:] = outputs[j]
        pulse_out[clamp_ao] = np.clip(o_free + eta * (desired[j] - o_free), 0.0, node_max_v)
        daq.write_and_pulse(pulse_out, settle_s, pulse_s)

    def bare_step(i: int) -> None:
        j = i % N_SAMPLES
        bare.step(inputs[j], desired[j])

    return bench, bench_step, bare_step


def block(fn, start: int, n: int) -> float:
    """Seconds per call over one block of ``n`` calls."""
    t0 = time.perf_counter()
    for i in range(start, start + n):
        fn(i)
    return (time.perf_counter() - t0) / n


def run_row(row: str, quick: bool) -> dict:
    bench, bench_step, bare_step = build(row)
    for i in range(50):  # compile and warm up
        bench_step(i)
        bare_step(i)
    n, blocks = (300, 5) if quick else (2000, 15)
    t_bench = t_bare = np.inf
    for k in range(blocks):
        t_bench = min(t_bench, block(bench_step, k * n, n))
        t_bare = min(t_bare, block(bare_step, k * n, n))
    net = bench.network
    return {"row": row, "nodes": net.n_nodes, "edges": net.n_edges, "bench_us": t_bench * 1e6,
            "bare_us": t_bare * 1e6, "ratio": t_bench / t_bare}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS), help="rows to run")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter blocks")
    args = ap.parse_args()
    head = f"{'row':<24} {'nodes':>6} {'edges':>6} {'bench us':>9} {'bare us':>8} {'ratio':>6} {'target':>7}"
    print(head)
    print("-" * len(head))
    for row in args.rows:
        r = run_row(row, args.quick)
        print(f"{r['row']:<24} {r['nodes']:>6} {r['edges']:>6} {r['bench_us']:>9.1f} {r['bare_us']:>8.1f} "
              f"{r['ratio']:>5.2f}x {TARGET_RATIO:>6.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
