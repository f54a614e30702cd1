"""``hostctl firmware``: emulate edge boards, deploy the MicroPython firmware.

``hostctl firmware emulate --boards N [--runtime micropython|micropython-wasm|c|reference]``
serves N emulated boards
behind one pseudo-terminal; the first line printed is the port's path; it serves until
interrupted. ``hostctl firmware build --out DIR`` compiles the MicroPython firmware to
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
    em.add_argument("--runtime", choices=RUNTIMES, default="micropython",
                    help="firmware that runs the boards: the MicroPython firmware (default; "
                         "micropython-wasm: on MicroPython's WebAssembly port under Node), the "
                         "C core, or the host's reference model")
    em.add_argument("--kind", choices=("mosfet", "digipot"), default="mosfet", help="board kind (default mosfet)")
    em.add_argument("--seed", type=argtypes.seed, default=0,
                    help="seed of the boards' unique ids, 0..2^32-1 (default 0)")
    em.set_defaults(func=run_emulate)
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


def run_emulate(args: argparse.Namespace) -> int:
    from instruments.bus.emulator import BusEmulator, make_boards
    from instruments.bus.runtimes import RuntimeUnavailable

    try:
        boards = make_boards(args.boards, args.runtime, args.kind, args.seed)
    except ValueError as exc:
        raise UserError(f"--boards: {exc}") from None
    except RuntimeUnavailable as exc:
        raise UserError(f"--runtime {args.runtime}: {exc}") from None
    emulator = BusEmulator(boards)
    print(emulator.port, flush=True)
    print(f"{len(boards)} {args.kind} boards ({args.runtime} firmware) at addresses 1..{len(boards)}; "
          "Ctrl-C stops", file=sys.stderr, flush=True)
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
