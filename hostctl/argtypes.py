"""Checked command-line values: argparse ``type=`` callables that refuse what the bench or
the machine cannot hold.

Each returns the parsed value or raises :class:`argparse.ArgumentTypeError`, which argparse
reports as one line (``hostctl sim teach: error: argument --steps: ...``) after the usage
and exit status 2: no traceback, nothing opened or written. The bounds are those of the
file formats (:mod:`instruments.tomlspec`): a count of steps or samples, a seed, a finite
number in a range.
"""

from __future__ import annotations

import argparse
import math

from instruments.tomlspec import MAX_SAMPLES, MAX_STEPS, SEED_MAX

__all__ = ["integer", "number", "seed", "steps", "samples", "MAX_STEPS", "MAX_SAMPLES", "SEED_MAX"]


def integer(lo: int, hi: int, unit: str = ""):
    """A type for an integer in ``lo..hi`` (``unit`` is named in the error, e.g. "baud");
    its ``bounds`` attribute is ``(lo, hi)``."""
    suffix = f" {unit}" if unit else ""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo:,}..{hi:,}{suffix}, got {text}")
        return value

    parse.__name__ = "integer"
    parse.bounds = (lo, hi)
    return parse


def number(lo: float, hi: float, unit: str = "", *, lo_open: bool = False):
    """A type for a finite float in ``lo..hi`` (``lo`` excluded when ``lo_open``); its
    ``bounds`` attribute is ``(lo, hi)``."""
    suffix = f" {unit}" if unit else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < lo or value > hi or (lo_open and value == lo):
            low = f"more than {lo:g}" if lo_open else f"at least {lo:g}"
            raise argparse.ArgumentTypeError(f"must be {low} and at most {hi:g}{suffix}, got {text}")
        return value

    parse.__name__ = "number"
    parse.bounds = (lo, hi)
    return parse


#: A random seed: 0..2^32-1, as in every file format.
seed = integer(0, SEED_MAX)
#: A number of training steps: 1..MAX_STEPS.
steps = integer(1, MAX_STEPS)
#: A number of training samples: 1..MAX_SAMPLES.
samples = integer(1, MAX_SAMPLES)
