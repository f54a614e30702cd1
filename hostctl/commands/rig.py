"""``hostctl rig``: the wiring of a bench.

``hostctl rig check RIG.toml`` reads a rig file and reports every problem that makes the
wiring unsound, one per line and each by name (a source without an output on one twin, a
target with no input, a channel used twice, limits outside the device's range, an edge
without a board...); exit status 0 only when it is sound, 1 when it is not, 2 when the file
cannot be read. A sound wiring's summary says how long the way to the safe state takes at
worst (the ramp from the far end of every output's limits, within its ramp limit).

``hostctl rig probe RIG.toml`` asks the connected hardware (NI devices and their channels,
every SCPI instrument's identity and command set, the boards on the bus) whether it is what
the wiring says, one line per part; ``--simulate`` probes the simulated bench built from the
wiring the same way. Exit status 0 when every part is as wired, 1 when one is not or cannot
be reached, 2 when the rig file cannot be read.

``hostctl rig show --builtin gen2|gen1`` prints the rig file of a built-in simulated bench,
a starting point for a real one.
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
    pr = cmds.add_parser(
        "probe", help="ask the connected bench whether it is what a rig file says",
        description="Ask every part a rig file names (NI devices and channels, SCPI instruments, the boards on "
                    "the bus) whether it is there and is what the wiring says; one line per part; exit 0 "
                    "only when every part is as wired.",
    )
    pr.add_argument("rig", metavar="RIG.toml", nargs="?", help="the rig file (default: --builtin)")
    pr.add_argument("--builtin", choices=("gen2", "gen1"), help="probe a built-in bench (always simulated)")
    pr.add_argument("--simulate", action="store_true", help="probe the simulated bench built from the wiring")
    pr.add_argument("--json", action="store_true", help="print {\"rig\", \"ok\", \"findings\"} as JSON")
    pr.set_defaults(func=probe)
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
        print(f"{args.rig}: {safe_way(wiring)}")
    return 1 if problems else 0


STATIC_WRITE_S = 1e-3
"""Time of one software-timed static AO write (s) for a device the table does not know:
about 1 ms over USB, the slowest bus a lab DAQ sits on (an estimate)."""


def safe_way(wiring) -> str:
    """How long the way to the safe state takes at worst, one line."""
    from instruments.daq import models
    from instruments.safety import Limits

    writes = Limits.from_wiring(wiring).safe_ramp_writes()
    write_s = max((models.MODELS[m].ao_write_s if m in models.MODELS else STATIC_WRITE_S)
                  for m in wiring.daq_devices.values())
    return (f"the safe state is at most {writes} write{'s' if writes > 1 else ''} away "
            f"(about {writes * write_s:.3g} s at {write_s * 1e6:g} us a software-timed write, an estimate); "
            f"a watchdog expiry goes there in one step")


def probe(args: argparse.Namespace) -> int:
    from instruments.probe import probe as probe_rig
    from instruments.wiring import default_wiring

    if args.rig is None and args.builtin is None:
        raise UserError("rig probe: give a rig file or --builtin gen2|gen1")
    if args.rig is not None and args.builtin is not None:
        raise UserError("rig probe: give a rig file or --builtin, not both")
    if args.builtin is not None:
        wiring, name, simulate = default_wiring(args.builtin), f"builtin {args.builtin}", True
    else:
        wiring, name, simulate = load(args.rig), args.rig, args.simulate
        problems = wiring.problems()
        if problems:
            for p in problems:
                print(f"{name}: {p}")
            raise UserError(f"{name}: the wiring is not sound ({len(problems)} problem"
                            f"{'s' if len(problems) > 1 else ''}); `hostctl rig check` lists them", exit_code=1)
    findings = probe_rig(wiring, simulate=simulate)
    ok = all(f.ok for f in findings)
    if args.json:
        print(json.dumps({"rig": name, "simulated": simulate, "ok": ok,
                          "findings": [{"part": f.part, "ok": f.ok, "message": f.message} for f in findings]}))
    else:
        for f in findings:
            print(f"{name}: {f.line()}")
        bad = sum(not f.ok for f in findings)
        verdict = "every part is as wired" if ok else f"{bad} finding{'s' if bad > 1 else ''} not as wired"
        print(f"{name}: {verdict}{' (simulated bench)' if simulate else ''}")
    return 0 if ok else 1


def show(args: argparse.Namespace) -> int:
    from hostctl.rigfile import dumps_builtin

    print(dumps_builtin(args.builtin), end="")
    return 0
