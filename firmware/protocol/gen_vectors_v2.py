"""Write protocol 2's golden vectors from the host's reference board (instruments/bus/v2/).

Run from anywhere: ``python firmware/protocol/gen_vectors_v2.py [--out DIR]``. Deterministic:
no clock, no unseeded randomness; the output is byte-identical on every run (a test checks
that the committed files are current). Writes ``vectors/v2/frames.json``, ``rules.json``,
``timing.json``, ``commands.json`` and ``update.json``; each file's format is in the
docstring of its builder in ``gen_v2/``. Protocol 1's vectors are ``gen_vectors.py``'s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from gen_v2.commands import command_vectors  # noqa: E402
from gen_v2.frames import malformed_frames, valid_frames  # noqa: E402
from gen_v2.rules import rule_vectors  # noqa: E402
from gen_v2.timing_vectors import timing_vectors  # noqa: E402
from gen_v2.update import update_vectors  # noqa: E402

VECTORS = HERE / "vectors" / "v2"


def build() -> dict[str, str]:
    """The vector files' text, by file name."""
    files = {"frames.json": {"valid": valid_frames(), "malformed": malformed_frames()},
             "rules.json": rule_vectors(), "timing.json": timing_vectors(),
             "commands.json": command_vectors(), "update.json": update_vectors()}
    return {name: json.dumps(obj, indent=1) + "\n" for name, obj in files.items()}


def main(argv: list[str] | None = None) -> None:
    """Write the vectors (``--out DIR`` writes them elsewhere, for comparison)."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=VECTORS, help="output directory (default: vectors/v2/)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in build().items():
        (args.out / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
