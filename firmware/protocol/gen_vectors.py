"""Write protocol 1's golden vectors from the host's reference implementation.

Protocol 1.1 (``PROTOCOL-1.md``); protocol 2's are ``gen_vectors_v2.py``'s. The builders,
one module per file, are in ``gen_v1/``.

Run from anywhere: ``python firmware/protocol/gen_vectors.py [--out DIR]``. Deterministic: no clock, no
unseeded randomness; the output is byte-identical on every run (a test checks that the
committed files are current). Writes ``vectors/frames.json``, ``vectors/rules.json`` and
``vectors/commands.json`` beside this file.

Formats:

* frames.json: ``{"valid": [{name, wire_hex, line_hex, frame_hex, version, dst, src, seq,
  cmd, payload_hex}], "malformed": [{name, wire_hex, error}]}``. ``wire_hex`` is one chunk
  including its trailing 00; ``line_hex`` is what the host sends, 00 before it as well. Malformed vectors named ``zero_inside_*`` hold a 00 before the
  final delimiter: a chunk decoder that is handed the whole chunk must report ``bad_cobs``;
  a stream splitter sees two chunks there, each of which is also ``bad_cobs``.
* rules.json: ``{"prng": [{uid_hex, seed, draws}], "cases": [{name, protocol_minor, kind,
  state_min, state_max, state_before, uid_hex, draws_before, rule, probability, gain,
  dead_band_uv2, calibration_uv, node_uv, dv_free_uv, dv_clamped_uv, contrast_uv2, updated,
  state_after, draw}], "cases_minor_0": [...]}`` (``draw`` is the generator output this
  learn used, draw number ``draws_before + 1`` since reset). ``cases`` are this protocol
  minor version's (firmware 1.2.0: the rule rounds to nearest, halves away from zero);
  ``cases_minor_0`` are the same inputs on a board of minor 0 (firmware 1.1.0 and before,
  which floors), for emulators of the older boards.
* commands.json: ``{"cases": [{name, board: {address, uid_hex, kind, state_min, state_max,
  initial_state, node_uv, uptime_ms, fw_version}, exchanges: [{request_hex, reply_hex}]}],
  "streams": [{name, board, stream_hex, replies_hex}]}`` against a fresh board (calibration
  all zero, uptime constant); ``reply_hex`` null means no reply. A stream is fed to the
  board as one byte stream (in any pieces): line noise, then frames as the host sends them
  (:func:`~instruments.bus.protocol.line_frame`: a 0x00 before each frame as well as
  after); ``replies_hex`` are the board's replies in order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from gen_v1.commands import command_cases, stream_cases  # noqa: E402
from gen_v1.frames import malformed_frames, valid_frames  # noqa: E402
from gen_v1.rules import prng_vectors, rule_cases  # noqa: E402

VECTORS = HERE / "vectors"


def build() -> dict[str, str]:
    """The three vector files' text, by file name."""
    frames = {"valid": valid_frames(), "malformed": malformed_frames()}
    rules = {"prng": prng_vectors(), "cases": rule_cases(), "cases_minor_0": rule_cases(0)}
    commands = {"cases": command_cases(), "streams": stream_cases()}
    return {name: json.dumps(obj, indent=1) + "\n"
            for name, obj in (("frames.json", frames), ("rules.json", rules), ("commands.json", commands))}


def main(argv: list[str] | None = None) -> None:
    """Write the vectors (``--out DIR`` writes them elsewhere, for comparison)."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=VECTORS, help="output directory (default: vectors/)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in build().items():
        (args.out / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
