"""``hostctl calibrate`` and ``hostctl calibration``: measure the bench, keep the results.

- ``calibrate daq|edges|all [--rig RIG.toml [--simulate]] [--store PATH]``: the DAQ's
  analog channels against the multimeter, the edge boards' ADC offsets and device curves
  against the source-measure unit, or both; the result is saved, with the key of the rig
  (:class:`~calibration.rigkey.RigKey`), as a new version in the rig's calibration store and
  used automatically by every later run on this rig. Without a rig file the built-in
  simulated bench is calibrated (``--builtin gen2|gen1``, ``--seed N`` for its own seed), or
  with ``--experiment EXP`` the simulated bench that experiment runs on (its network, wiring,
  seed and DAQ errors, exactly as ``hostctl train EXP`` opens it);
  ``--rig RIG.toml --simulate`` rehearses calibrating a real wiring on the simulated bench
  (into the rig's simulated store). On a real bench the command asks you to connect the
  meter where it is needed.
- ``calibrate edges --port PORT [--tolerance R] [--leak-limit V/S]``: every MOSFET board on
  a protocol-2 bus measures its gate's charge and discharge slope and its leak (protocol
  2.1, ``calibrate_actuator``, all boards at once), keeps the table in its flash and times
  its pulses by it; the host reads each back, checks it (:mod:`calibration.gates`) and saves
  the run in ``--store`` (default ``$XDG_DATA_HOME/twinrig/calibration/buses.h5``); exit 1
  when a board is out of tolerance.
- ``calibration show [--version N]``: every version, or one in full;
- ``calibration diff A B``: what drifted between two versions, by how much.

Every command takes the rig file (``--rig RIG.toml [--simulate]``) whose store it reads or
writes, or ``--store PATH``; without either, the store of the built-in simulated benches.
See :func:`hostctl.calibrating.store_path`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from hostctl import argtypes
from hostctl.errors import UserError


#: A calibration's version in its store: 1, 2, 3...
VERSION = argtypes.integer(1, 2**31 - 1)


def _store_arguments(p, calibrating: bool = False) -> None:
    p.add_argument("--rig", metavar="RIG.toml", help="the bench's rig file (default: the built-in simulated bench)")
    p.add_argument("--simulate", action="store_true", help="the rig file's wiring on the simulated bench")
    if calibrating:
        p.add_argument("--experiment", metavar="EXP",
                       help="the simulated bench an experiment file (or built-in experiment) runs on: its "
                            "network, wiring, seed and DAQ errors, as `hostctl train EXP` opens it")
        p.add_argument("--builtin", choices=("gen2", "gen1"), default=None,
                       help="the built-in simulated bench, without --rig or --experiment (default gen2)")
        p.add_argument("--seed", type=argtypes.seed, default=None, help="the simulated bench's seed (default 0)")
    p.add_argument("--store", metavar="PATH", help="the calibration store (default: the rig's own)")


def register(sub) -> None:
    from hostctl.commands.bus import port_arguments

    c = sub.add_parser("calibrate", help="calibrate the DAQ channels and/or the edge boards",
                       description="Measure the bench and save a new calibration version in the rig's store.")
    c.add_argument("what", choices=("daq", "edges", "all"), help="what to calibrate")
    _store_arguments(c, calibrating=True)
    g = c.add_argument_group("protocol-2 gates", "`calibrate edges --port PORT`: every MOSFET board on a "
                             "protocol-2 bus measures its gate's charge and discharge slope and its leak "
                             "(protocol 2.1), keeps them and times its pulses by them; the host checks and "
                             "stores them")
    port_arguments(g, required=False)
    g.add_argument("--latency", type=argtypes.number(0.0, 10.0, "s"), default=0.05,
                   help="a real port's extra wait beyond the protocol's windows (s, default 0.05)")
    g.add_argument("--tolerance", type=argtypes.number(0.01, 10.0, "relative"), default=0.3,
                   help="largest change of a slope from the board's table before (relative, default 0.3)")
    g.add_argument("--leak-limit", type=argtypes.number(0.0, 10.0, "V/s"), default=1e-3,
                   help="largest gate leak not flagged (V/s, default 0.001)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=calibrate)
    s = sub.add_parser("calibration", help="show and compare stored calibrations")
    cmds = s.add_subparsers(dest="calibration_command", metavar="CALIBRATION_COMMAND")
    cmds.required = True
    sh = cmds.add_parser("show", help="list the stored calibrations, or show one")
    _store_arguments(sh)
    sh.add_argument("--version", type=VERSION, help="one version in full (default: the list)")
    sh.set_defaults(func=show)
    d = cmds.add_parser("diff", help="what changed between two calibration versions")
    d.add_argument("a", type=VERSION, metavar="A")
    d.add_argument("b", type=VERSION, metavar="B")
    _store_arguments(d)
    d.set_defaults(func=diff)


def _store(args):
    """The store the command reads or writes: ``--store``, else the rig's own."""
    from hostctl.calibrating import store_path

    if args.simulate and args.rig is None:
        raise UserError("--simulate needs --rig (without a rig file the bench is simulated anyway)")
    if args.rig is not None:
        from hostctl.commands.rig import load

        load(args.rig)  # one error line naming the file when it cannot be read
    return store_path(args.store, args.rig, args.simulate)


def _open_rig(args):
    from instruments.rig import open_rig
    from instruments.wiring import default_wiring

    if args.experiment is not None:
        return _experiment_rig(args)
    seed = 0 if args.seed is None else args.seed
    if args.rig is None:
        return open_rig(default_wiring(args.builtin or "gen2"), simulate=True, seed=seed)
    from hostctl.commands.rig import load

    wiring = load(args.rig)
    problems = wiring.problems()
    if problems:
        raise UserError(f"{args.rig}: the wiring is not sound: {problems[0]}")
    try:
        if args.simulate:
            return open_rig(wiring, simulate=True, seed=seed)
        return open_rig(wiring)
    except (ValueError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot open the bench: {exc}") from None


def _experiment_rig(args):
    """The bench ``hostctl train EXP [--rig RIG.toml [--simulate]]`` opens: the same wiring
    and, when simulated, the experiment's bench seed and DAQ errors, so the calibration's
    rig key is the one that run will look for."""
    from hostctl import session

    for name in ("builtin", "seed"):
        if getattr(args, name) is not None:
            raise UserError(f"--{name} and --experiment: the experiment names its bench; give one of them")
    exp = session.resolve_experiment(args.experiment)
    return session.open_bench(exp, session.wiring_for(exp, args.rig), simulate=args.rig is None or args.simulate)


def _connectors(rig):
    """How the meter and the SMU reach what they measure: the simulated bench routes them;
    on a real bench the scientist does, when asked."""
    if rig.simulated:
        return (lambda channel=None, node=None, twin="free": rig.bench.probe_dmm(channel, node=node, twin=twin),
                lambda edge, twin: rig.bench.probe_smu(edge, twin))

    def ask(what: str) -> None:
        input(f"connect {what}, then press Enter ")

    def dmm(channel=None, node=None, twin="free"):
        ask(f"the multimeter to {'output ' + channel if channel else f'node {node} of the {twin} twin'}")
        return None

    def smu(edge, twin):
        ask(f"the source-measure unit across edge {edge} of the {twin} twin")
        return rig.smu

    return dmm, smu


def _calibrate_gates(args: argparse.Namespace) -> int:
    """``calibrate edges --port PORT``: the gates of a protocol-2 bus (calibration.gates)."""
    from calibration import store
    from calibration.gates import calibrate_gates, summary
    from calibration.rigkey import RigKey
    from hostctl.fwupdate import require_port
    from instruments.bus.v2.client import Bus, BusError

    if args.what != "edges":
        raise UserError(f"--port calibrates the gates of a protocol-2 bus: use `hostctl calibrate edges "
                        f"--port {args.port}` (not `{args.what}`)")
    for name in ("rig", "experiment", "builtin", "seed"):
        if getattr(args, name) is not None:
            raise UserError(f"--port and --{name}: --port calibrates the boards on a bus, without a rig")
    if args.simulate:
        raise UserError("--port and --simulate: --port calibrates the boards on a bus, without a rig")
    where = Path(args.store) if args.store else store.data_home() / "twinrig" / "calibration" / "buses.h5"
    require_port(args.port)
    try:
        with Bus(args.port, baud=args.baudrate, latency_s=args.latency) as bus:
            run = calibrate_gates(bus, tolerance=args.tolerance, leak_limit_v_per_s=args.leak_limit)
    except BusError as exc:
        raise UserError(f"--port {args.port}: {exc}") from None
    if not run.boards:
        print(summary(run))
        raise UserError(f"--port {args.port}: no MOSFET board of protocol 2.1 to calibrate")
    key = RigKey(daq=f"none (protocol-2 bus {args.port})", boards={b.address: b.uid for b in run.boards},
                 rig=f"bus {args.port}")
    cal = store.Calibration(f"bus {args.port}", edges=run.to_dict(), key=key, created=run.created)
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        version = store.save(where, cal)
    except store.CalibrationStoreError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{where}: cannot write the calibration store: {exc.strerror or exc}") from None
    print(f"gate calibration v{version} of bus {args.port} saved in {where}; every board keeps its own table")
    print(summary(run))
    for p in run.problems:
        print(f"out of tolerance: {p}")
    return 1 if run.problems or run.refused else 0


def calibrate(args: argparse.Namespace) -> int:
    from calibration import store
    from calibration.daq import calibrate_daq
    from hostctl.commands.run import Progress

    from calibration.rigkey import key_of

    if args.port is not None:
        return _calibrate_gates(args)
    where = _store(args)
    rig = _open_rig(args)
    connect_dmm, connect_smu = _connectors(rig)
    try:
        daq_cal = edges = None
        if args.what in ("daq", "all"):
            n = len(rig.daq.ao_channels) + len(rig.daq.ai_channels)
            with Progress(n, "DAQ channels", args.quiet) as progress:
                done = [0]

                def step(channel, k=None, total=None):
                    if channel:
                        done[0] += 1
                        progress(done[0] - 1, 0, {})

                daq_cal = calibrate_daq(rig, connect_dmm, on_progress=step)
        if args.what in ("edges", "all"):
            from calibration.edges import calibrate_edges
            from instruments.calibrated import apply_daq_calibration

            if daq_cal is not None:
                # the boards' offsets are measured with every node at one level: a level the
                # corrected outputs set far more exactly than the raw ones
                apply_daq_calibration(rig, daq_cal.corrections())
            edges = calibrate_edges(rig, connect_smu, quiet=args.quiet, connect_dmm=connect_dmm)
        cal = store.Calibration(rig.wiring.name, daq=daq_cal, edges=edges, identities=rig.identities(),
                                settings=rig.settings(), key=key_of(rig))
        try:
            version = store.save(where, cal)
        except store.CalibrationStoreError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"{where}: cannot write the calibration store: {exc.strerror or exc}") from None
    finally:
        rig.close()
    print(f"calibration v{version} of {rig.wiring.name} saved in {where} (rig key {cal.key.digest()})")
    if daq_cal is not None:
        print(daq_table(daq_cal))
        for p in daq_cal.problems:
            print(f"out of tolerance: {p}")
    if edges is not None:
        from calibration.edges import summary

        print(summary(edges))
    failed = (daq_cal is not None and daq_cal.problems) or (edges is not None and edges.refused)
    return 1 if failed else 0


def daq_table(daq_cal) -> str:
    lines = [f"{'channel':<18}{'kind':>5}{'gain':>12}{'offset (mV)':>13}{'rms resid (uV)':>16}{'linearity':>11}"]
    for c in daq_cal.channels():
        lines.append(f"{c.name:<18}{c.kind:>5}{c.gain:>12.6f}{c.offset_v * 1e3:>13.4f}"
                     f"{c.residual_rms_v * 1e6:>16.2f}{c.linearity:>11.2e}")
    return "\n".join(lines)


def _store_call(fn, *a):
    from calibration import store

    try:
        return fn(*a)
    except store.CalibrationStoreError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot read the calibration store: {exc}") from None


def show(args: argparse.Namespace) -> int:
    from calibration import store

    where = _store(args)
    if args.version is None:
        infos = _store_call(store.versions, where)
        if not infos:
            print(f"no calibrations in {where}")
            return 0
        print(f"calibrations in {where}")
        print(f"{'version':>7}  {'created':<27}{'rig':<24}{'kind':<6}{'rig key':<10}{'age (days)':>10}")
        for i in infos:
            cal = _store_call(store.load, where, i.version)
            key = cal.key.digest() if cal.key is not None else "none"
            print(f"{i.version:>7}  {i.created:<27}{i.rig:<24}{i.kind:<6}{key:<10}{store.age_s(cal) / 86400:>10.1f}")
        return 0
    cal = _store_call(store.load, where, args.version)
    print(f"calibration v{cal.version} of {cal.rig} ({cal.kind}), made {cal.created} with twinrig {cal.twinrig_version}")
    for role, ident in cal.identities.items():
        print(f"  {role}: {ident}")
        if cal.settings.get(role):
            print(f"    settings: {', '.join(f'{k} = {v}' for k, v in cal.settings[role].items())}")
    if cal.key is None:
        print("  rig key: none (made before rig keys were kept; never applied automatically)")
    else:
        k = cal.key
        print(f"  rig key {k.digest()}: network {k.network}, wiring {k.wiring}, {len(k.boards)} boards"
              + ("" if k.simulated is None else
                 f", simulated bench of seed {k.simulated['seed']} (imperfections {k.simulated['imperfections']})"))
    if cal.daq is not None:
        print(daq_table(cal.daq))
    if cal.edges is not None and "gates" in cal.edges:
        from calibration.gates import GateRun, summary as gate_summary

        print(gate_summary(GateRun.from_dict(cal.edges)))
    elif cal.edges is not None:
        from calibration.edges import summary

        print(summary(cal.edges))
    return 0


def diff(args: argparse.Namespace) -> int:
    from calibration import store

    where = _store(args)
    a = _store_call(store.load, where, args.a)
    b = _store_call(store.load, where, args.b)
    rows = [r for r in store.diff(a, b) if r.a != r.b]
    print(f"calibration v{a.version} ({a.created}) -> v{b.version} ({b.created}): "
          f"{len(rows)} value{'s' if len(rows) != 1 else ''} changed")
    for r in rows:
        shown = lambda x: f"{x:.6g}" if isinstance(x, (int, float)) else str(x)  # noqa: E731
        change = "" if r.change is None or (isinstance(r.change, float) and math.isnan(r.change)) else f"  ({r.change:+.3g})"
        print(f"  {r.what} {r.quantity}: {shown(r.a)} -> {shown(r.b)}{change}")
    return 0
