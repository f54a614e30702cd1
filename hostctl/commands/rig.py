"""``hostctl rig``: the wiring of a bench.

``hostctl rig check RIG.toml`` reads a rig file and reports every problem that makes the
wiring unsound, one per line and each by name (a source without an output on one twin, a
target with no input, a channel used twice, limits outside the device's range, an edge
without a board...); exit status 0 only when it is sound, 1 when it is not, 2 when the file
cannot be read. ``hostctl rig show --builtin gen2|gen1`` prints the rig file of a built-in
simulated bench, a starting point for a real one.
"""

from __future__ import annotations

import argparse
import json

from hostctl.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("rig", help="check and show bench wiring (rig files)")
    cmds = p.add_subparsers(dest="rig_command", metavar="RIG_COMMAND")
    cmds.required = True
    c = cmds.add_parser(
        "check", help="check that a rig file describes a sound wiring",
        description="Read a rig file and list every problem of its wiring; exit 0 only when it is sound.",
    )
    c.add_argument("rig", metavar="RIG.toml", help="the rig file")
    c.add_argument("--json", action="store_true", help="print {\"rig\", \"sound\", \"problems\"} as JSON")
    c.set_defaults(func=check)
    s = cmds.add_parser(
        "show", help="print the rig file of a built-in simulated bench",
        description="Print the rig file of a built-in bench (gen2: the MOSFET lattice; gen1: the digipot grid).",
    )
    s.add_argument("--builtin", choices=("gen2", "gen1"), default="gen2", help="which bench (default gen2)")
    s.set_defaults(func=show)


def load(path: str):
    """The wiring of the rig file at ``path``; UserError (one line) if it cannot be read."""
    from hostctl.rigfile import RigFileError, load_rig

    try:
        return load_rig(path)
    except RigFileError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the rig file: {exc.strerror or exc}") from None


def check(args: argparse.Namespace) -> int:
    wiring = load(args.rig)
    problems = wiring.problems()
    if args.json:
        print(json.dumps({"rig": args.rig, "sound": not problems, "problems": problems}))
    elif problems:
        for p in problems:
            print(f"{args.rig}: {p}")
        print(f"{args.rig}: {len(problems)} problem{'s' if len(problems) > 1 else ''}; the wiring is not sound")
    else:
        net = wiring.network
        print(f"{args.rig}: rig {wiring.name} is sound: network {net.name} ({net.n_nodes} nodes, "
              f"{net.n_edges} edges), {len(wiring.outputs)} outputs, {len(wiring.inputs)} inputs, "
              f"{len(wiring.boards)} boards")
    return 1 if problems else 0


def show(args: argparse.Namespace) -> int:
    from hostctl.rigfile import dumps_builtin

    print(dumps_builtin(args.builtin), end="")
    return 0
