"""``hostctl sim``: the circuit simulator from the command line.

``hostctl sim solve NETLIST [--json]`` reads a SPICE netlist (R elements, DC voltage sources,
level-1 NMOS with their ``.model`` cards and gate sources; see
:mod:`instruments.sim.netlist`), solves its DC operating point and prints every node's
voltage: an aligned table, or with ``--json`` one JSON object mapping each node name, as
written, to volts (the ground included, at 0.0).

``hostctl sim settle NETLIST [--tol-v V] [--c-node-f F] [--json]``: the netlist's inference
latency: every node starts at rest (0 V), every source steps to its value at t = 0, each
free node has ``--c-node-f`` to ground (its wiring and terminals), and the transient
(:mod:`instruments.sim.transient`) runs until the slowest time constant has passed twenty
times; the settling time is when every node stays within ``--tol-v`` of its operating point.
"""

from __future__ import annotations

import argparse
import json

from hostctl import argtypes
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
    st = cmds.add_parser(
        "settle", help="how long a netlist's nodes take to settle after its sources step",
        description="The transient of a SPICE netlist from rest after every source steps to its "
        "value: the time until every node stays within a tolerance of its operating point.",
    )
    st.add_argument("netlist", metavar="NETLIST", help="the SPICE netlist file")
    st.add_argument("--tol-v", type=argtypes.number(1e-12, 10.0, "V"), default=1e-3,
                    help="the tolerance (V, default 0.001)")
    st.add_argument("--c-node-f", type=argtypes.number(1e-18, 1.0, "F"), default=10e-12,
                    help="each node's capacitance to ground (F, default 1e-11: a PCB node)")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=settle)
    from hostctl.commands import teach

    t = cmds.add_parser(
        "teach", help="a student network learns a teacher's answers on the bare simulator",
        description="Coupled learning on the bare simulated Gen-2 lattice (no bench): a teacher "
        "network with random gates defines the desired outputs, a student learns them; the error "
        "curve is printed as it falls.",
    )
    teach.add_arguments(t)
    t.set_defaults(func=teach.run)


def _read_and_solve(path: str):
    """The netlist in ``path`` and its DC node voltages; every problem one UserError naming
    the file (a floating or cut-off node, no convergence: exit status 1)."""
    from instruments.sim.circuit import ConvergenceError, FloatingNodeError
    from instruments.sim.netlist import NetlistError, read_netlist

    try:
        netlist = read_netlist(path)
    except NetlistError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the netlist: {exc.strerror or exc}") from None
    try:
        return netlist, netlist.solve()
    except FloatingNodeError as exc:
        raise UserError(f"{path}: {exc}") from None
    except ConvergenceError as exc:
        raise UserError(f"{path}: {exc}", exit_code=1) from None


def solve(args: argparse.Namespace) -> int:
    netlist, volts = _read_and_solve(args.netlist)
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


#: Steps of a settle run: the slowest time constant twenty times over, 1000 steps to each.
SETTLE_STEPS = 20_000


def settle(args: argparse.Namespace) -> int:
    import numpy as np

    from instruments.sim.transient import TransientError, settling_time, simulate

    path = args.netlist
    netlist, dc = _read_and_solve(path)
    net = netlist.network
    v_dc = np.array([dc[n] for n in net.nodes])
    boundary = netlist.boundary_v()
    fixed = [net.index(n) for n in boundary]
    free = [i for i in range(net.n_nodes) if i not in set(fixed)]
    if not free:
        raise UserError(f"{path}: every node is held by a source: nothing settles")
    # time constants of the network linearised at its operating point: C / (its conductances)
    a, b = net.edges[:, 0], net.edges[:, 1]
    g = netlist.device.conductance(netlist.state, v_dc[a], v_dc[b])
    k = np.zeros((net.n_nodes, net.n_nodes))
    np.add.at(k, (a, a), g)
    np.add.at(k, (b, b), g)
    np.add.at(k, (a, b), -g)
    np.add.at(k, (b, a), -g)
    lam = np.linalg.eigvalsh(k[np.ix_(free, free)] / args.c_node_f)
    lam = lam[lam > 0]
    if lam.size == 0:
        raise UserError(f"{path}: the free nodes conduct nothing at the operating point: no time constant")
    tau_max, tau_min = 1.0 / lam.min(), 1.0 / lam.max()
    t_stop = 20.0 * tau_max
    dt = t_stop / SETTLE_STEPS
    method = "trapezoidal" if dt <= tau_min else "backward_euler"  # the stiff case does not ring
    try:
        res = simulate(net, netlist.device, netlist.state, fixed, [boundary[net.nodes[i]] for i in fixed],
                       t_stop, dt, c_node_f=args.c_node_f, method=method)
    except TransientError as exc:
        raise UserError(f"{path}: {exc}", exit_code=1) from None
    t_settle = settling_time(res, args.tol_v, nodes=[net.nodes[i] for i in free], final_v=v_dc)
    out = {"settling_time_s": t_settle, "tolerance_v": args.tol_v, "c_node_f": args.c_node_f,
           "slowest_time_constant_s": tau_max, "fastest_time_constant_s": tau_min, "method": method,
           "dt_s": dt, "nodes": len(free)}
    if args.json:
        print(json.dumps(out))
        return 0 if np.isfinite(t_settle) else 1
    if not np.isfinite(t_settle):
        print(f"{path}: not within {args.tol_v:g} V of its operating point after {t_stop:.4g} s")
        return 1
    print(f"{path}: {len(free)} nodes settle to within {args.tol_v:g} V of the operating point in "
          f"{t_settle:.4g} s ({args.c_node_f:g} F a node; time constants {tau_min:.3g} .. {tau_max:.3g} s; "
          f"{method.replace('_', ' ')}, dt {dt:.3g} s)")
    return 0
