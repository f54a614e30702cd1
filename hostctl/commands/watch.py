"""``hostctl watch RUN.h5``: follow a running experiment from its run file in the terminal.

Reads the file as an SWMR reader (never blocks the writer), refreshes every ``--interval``
seconds and exits when the run is no longer running; see docs/watch.md.
"""

from __future__ import annotations

import argparse

from hostctl.argtypes import number
from hostctl.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("watch", help="follow a running experiment from its run file",
                       description="Show a run's step, errors, error curves, edge-state range, events, status and "
                       "wall time, refreshed until the run ends (live in a terminal, one block per refresh "
                       "otherwise). Ctrl-C stops watching; the run goes on.")
    p.add_argument("run", metavar="RUN.h5", help="the run file")
    p.add_argument("--interval", type=number(0.01, 3600.0, "s"), default=1.0, metavar="S", help="seconds between refreshes (default 1.0)")
    p.add_argument("--once", action="store_true", help="refresh once and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hostctl.runfile import RunFileError
    from hostctl.watch import follow

    try:
        follow(args.run, args.interval, args.once)
    except (FileNotFoundError, RunFileError) as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        pass  # the run is not ours to stop: watching it ends quietly
    return 0
