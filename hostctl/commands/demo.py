"""``hostctl demo``: the main job, with no hardware and no files: Iris on the simulated bench.

Runs the built-in experiment ``iris_gen1`` (Iris as the lab ran it, on a Gen-1-style digipot
network, 50 epochs of 30 steps) on the simulated bench with a progress bar, writes the run
file and its report, and prints the test accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hostctl.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("demo", help="train Iris on the simulated bench; write a run file and its report",
                       description="Iris, lab protocol, on the simulated Gen-1 digipot bench: a run file, "
                       "its report, and the test accuracy.")
    p.add_argument("--out", metavar="RUN.h5", help="the run file (default runs/iris-gen1-TIME.h5)")
    p.add_argument("--experiment", default="iris_gen1", metavar="NAME",
                   help="a built-in experiment (iris_gen1, iris_gen2, regression_gen2, xor_gen2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hostctl import session
    from hostctl.commands.run import Progress, describe, write_report

    if args.experiment not in session.BUILTIN_EXPERIMENTS:
        raise UserError(f"--experiment must be one of {', '.join(session.BUILTIN_EXPERIMENTS)}, got {args.experiment!r}")
    exp = session.resolve_experiment(args.experiment)
    out = Path(args.out) if args.out else session.default_run_path(exp)
    if out.exists():
        raise UserError(f"{out} exists; choose another --out (run files are never overwritten)")
    rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
    try:
        cal, notes = session.calibrate_rig(rig, None, how=session.calibrate_command(args.experiment))
        with Progress(exp.epochs, f"{exp.name} (simulated bench)", args.quiet) as progress:
            outcome = session.train(exp, rig, out, progress, calibration=cal, notes=tuple(notes))
    finally:
        rig.close()
    print(describe(outcome, out))
    if outcome.status == "complete":
        write_report(out)
        print(f"test accuracy: {outcome.test_accuracy:.1%}")
    return 130 if outcome.status == "interrupted" else 0
