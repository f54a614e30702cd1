"""The ``hostctl`` command line.

Each command group lives in a module of :mod:`hostctl.commands` that exposes
``register(subparsers)``; it adds its parsers and sets ``func`` (taking the parsed
arguments, returning an exit status) on each. Errors from bad input surface as one line on
standard error and a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from hostctl.errors import UserError

COMMAND_MODULES = ("demo", "run", "calibrate", "sim", "rig", "bus", "firmware", "sweep", "watch")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="hostctl",
        description="twinrig: run, simulate and analyse physical-learning twin networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"hostctl.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"hostctl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hostctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (e.g. `| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
