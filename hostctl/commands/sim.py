"""``hostctl sim``: the circuit simulator from the command line.

``hostctl sim solve NETLIST [--json]`` reads a SPICE netlist (R elements, DC voltage sources,
level-1 NMOS with their ``.model`` cards and gate sources; see
:mod:`instruments.sim.netlist`), solves its DC operating point and prints every node's
voltage: an aligned table, or with ``--json`` one JSON object mapping each node name, as
written, to volts (the ground included, at 0.0).
"""

from __future__ import annotations

import argparse
import json

from hostctl.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("sim", help="the bare simulator: DC operating points of netlists, teacher-student learning")
    cmds = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND")
    cmds.required = True
    s = cmds.add_parser(
        "solve", help="print every node's DC voltage of a SPICE netlist",
        description="Solve the DC operating point of a SPICE netlist (R, DC V sources to "
        "ground, level-1 NMOS with gate sources) and print every node's voltage.",
    )
    s.add_argument("netlist", metavar="NETLIST", help="the SPICE netlist file")
    s.add_argument("--json", action="store_true", help="print one JSON object: node name -> volts")
    s.set_defaults(func=solve)
    from hostctl.commands import teach

    t = cmds.add_parser(
        "teach", help="a student network learns a teacher's answers on the bare simulator",
        description="Coupled learning on the bare simulated Gen-2 lattice (no bench): a teacher "
        "network with random gates defines the desired outputs, a student learns them; the error "
        "curve is printed as it falls.",
    )
    teach.add_arguments(t)
    t.set_defaults(func=teach.run)


def solve(args: argparse.Namespace) -> int:
    from instruments.sim.circuit import ConvergenceError, FloatingNodeError
    from instruments.sim.netlist import NetlistError, read_netlist

    path = args.netlist
    try:
        netlist = read_netlist(path)
    except NetlistError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the netlist: {exc.strerror or exc}") from None
    try:
        volts = netlist.solve()
    except FloatingNodeError as exc:
        raise UserError(f"{path}: {exc}") from None
    except ConvergenceError as exc:
        raise UserError(f"{path}: {exc}", exit_code=1) from None
    if args.json:
        print(json.dumps(volts))
    else:
        print(format_table(volts, netlist.title))
    return 0


def format_table(volts: dict[str, float], title: str = "") -> str:
    """Node names and voltages in aligned columns (V, to 1 nV)."""
    width = max([len("node")] + [len(n) for n in volts])
    lines = [f"* {title}"] if title else []
    lines.append(f"{'node':<{width}}  {'voltage (V)':>16}")
    lines += [f"{name:<{width}}  {v:>16.9f}" for name, v in volts.items()]
    return "\n".join(lines)
