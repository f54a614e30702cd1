"""``hostctl firmware update`` and ``hostctl firmware provision``: protocol 2 over the bus.

``update --port P [--port ...] IMAGE`` updates every board of every bus at once
(:class:`instruments.bus.v2.rig.Rig`: the buses in parallel, each by
:func:`instruments.bus.v2.host_update.update_bus`), shows the blocks going out per bus, names
every board that rolled back or failed, and ends with one summary line (boards confirmed,
rolled back, failed, blocks resent, bus time). It exits 0 when every board confirmed the new
version, 1 otherwise.

``provision --port P --uid UID --address A [--board-definition FILE.toml]`` gives the board
with that unique id its address (``assign_address``, stored in its flash) and, with a
board definition, checks the definition against the board (its kind, protocol, state limits
and actuator resolution from ``read_actuator``, its uid), sets and stores its ``initial_state`` on the board
(``set_state``, ``store_state``), and writes the resolved definition as that board's
``config.json`` under ``--config-dir`` (``<uid>.json``; protocol 2 has no command that
carries a configuration, which goes onto the board with ``hostctl firmware deploy``).

Bad input is one :class:`~hostctl.errors.UserError` line naming the option and the value.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from hostctl.errors import UserError

__all__ = ["run_update", "run_provision", "uid_arg", "default_config_dir"]

_VERSION_IN_NAME = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})")


def uid_arg(text: str) -> str:
    """argparse type: a board's unique id, 16 hex digits (lower-cased)."""
    import argparse

    t = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{16}", t):
        raise argparse.ArgumentTypeError(f"a unique id is 16 hex digits, got {text!r}")
    return t


def default_config_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "twinrig" / "boards"


def _read_image(path: Path) -> bytes:
    from instruments.bus.v2.constants import IMAGE_MAX_BYTES

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"IMAGE {path}: cannot read it ({exc.strerror or exc})") from None
    if not 1 <= len(data) <= IMAGE_MAX_BYTES:
        raise UserError(f"IMAGE {path}: an image is 1..{IMAGE_MAX_BYTES:,} bytes, this one is {len(data):,}")
    return data


def _image_version(args) -> tuple[int, int, int]:
    from instruments.bus.v2.host_update import parse_version

    if args.version is not None:
        try:
            return parse_version(args.version)
        except ValueError as exc:
            raise UserError(f"--version {args.version}: {exc}") from None
    m = _VERSION_IN_NAME.search(Path(args.image).name)
    if not m:
        raise UserError(f"IMAGE {args.image}: no MAJOR.MINOR.PATCH in its name; give --version")
    try:
        return parse_version(".".join(m.groups()))
    except ValueError as exc:
        raise UserError(f"IMAGE {args.image}: {exc}") from None


def require_port(port: str) -> None:
    """A device path that does not exist is refused by name (a pyserial URL is left to it)."""
    if "://" not in port and not Path(port).exists():
        raise UserError(f"--port {port}: no such port")


def _open_rig(ports, args):
    from instruments.bus.v2.client import BusError
    from instruments.bus.v2.rig import Rig

    for p in ports:
        require_port(p)
    try:
        return Rig(ports, baud=args.baud, latency_s=args.latency)
    except BusError as exc:
        raise UserError(f"--port: {exc}") from None


class _Progress:
    """A rich progress bar per bus (the blocks broadcast), the step in its description."""

    def __init__(self, ports, blocks: int, enabled: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 console=Console(stderr=True), disable=not enabled, transient=False)
        self.tasks = {p: self.progress.add_task(f"{p}: starting", total=blocks) for p in ports}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, bus: str, stage: str, done: int, total: int) -> None:
        task = self.tasks.get(bus)
        if task is None:
            return
        if stage == "blocks":
            self.progress.update(task, completed=done, description=f"{bus}: blocks")
        elif stage == "resend":
            self.progress.update(task, description=f"{bus}: {done} block(s) resent")
        else:
            self.progress.update(task, description=f"{bus}: {stage}")


def run_update(args) -> int:
    from instruments.bus.v2.client import BusError
    from instruments.bus.v2.update import image_blocks

    image = _read_image(args.image)
    version = _image_version(args)
    rig = _open_rig(args.port, args)
    try:
        with _Progress([b.name for b in rig.buses], len(image_blocks(image)), not args.quiet) as progress:
            try:
                scans = rig.scan()
            except BusError as exc:
                raise UserError(str(exc), exit_code=1) from None
            for name, scan in scans.items():
                if not len(scan):
                    raise UserError(f"--port {name}: no board answers identify", exit_code=1)
                dups = rig.duplicates[name]
                if dups:
                    raise UserError(f"{dups.summary(name)}: give one of each its own address "
                                    "(hostctl firmware provision) before updating", exit_code=1)
                if not scan.agreed:
                    print(f"{name}: warning: scan: {scan.summary()}", file=sys.stderr)
            result = rig.update(image, version, progress=progress, scans=scans)
    finally:
        rig.close()
    for bus, err in result.errors.items():
        print(f"{bus}: not updated: {err}", file=sys.stderr)
    for u in result.buses:
        for b in sorted(u.boards.values(), key=lambda b: b.address):
            if b.outcome != "confirmed":
                print(b.line(u.bus))
    print(result.summary())
    ok = not result.errors and all(b.outcome == "confirmed" for b in result.boards.values())
    return 0 if ok else 1


def run_provision(args) -> int:
    from hostctl.boarddef import BoardDefError, config_json, load_board
    from instruments.bus.v2.client import BusError, BusTimeout
    from instruments.bus.v2.constants import ADDR_UNASSIGNED

    cfg = None
    if args.board_definition is not None:
        try:
            cfg = load_board(args.board_definition)
        except BoardDefError as exc:
            raise UserError(f"--board-definition {exc}") from None
        except OSError as exc:
            raise UserError(f"--board-definition {args.board_definition}: cannot read it "
                            f"({exc.strerror or exc})") from None
        if cfg.get("uid_hex") and cfg["uid_hex"].lower() != args.uid:
            raise UserError(f"--board-definition {args.board_definition}: uid_hex: {cfg['uid_hex']} "
                            f"is not --uid {args.uid}")
        cfg["address"], cfg["uid_hex"] = args.address, args.uid
        # where config.json goes is checked before the bus is touched: a provision that
        # cannot keep its definition changes nothing on the board
        out_dir = Path(args.config_dir) if args.config_dir else default_config_dir()
        base = out_dir
        while not base.exists() and base != base.parent:
            base = base.parent  # the folder it would be made in (made only when written)
        if not base.is_dir() or not os.access(base, os.W_OK):
            raise UserError(f"--config-dir {out_dir}: cannot write ({base} is not a writable folder)")
    rig = _open_rig([args.port], args)
    bus = rig.buses[0]
    try:
        try:
            scan, _ = bus.survey()
        except BusError as exc:
            raise UserError(str(exc), exit_code=1) from None
        holder = next((b for b in scan if b.address == args.address), None)
        if holder is not None and holder.uid != args.uid:
            raise UserError(f"--address {args.address}: taken by board {holder.uid} on {bus.name}", exit_code=1)
        # where the board answers now (248 if the scan did not hear it): a definition it
        # contradicts puts it back there, so a refused provision changes nothing
        before = next((b.address for b in scan if b.uid == args.uid), ADDR_UNASSIGNED)
        try:
            bus.assign_address(args.uid, args.address)
        except BusTimeout:
            raise UserError(f"--uid {args.uid}: no board with this unique id answers on {bus.name}",
                            exit_code=1) from None
        except BusError as exc:
            raise UserError(f"--uid {args.uid}: {exc}", exit_code=1) from None
        try:
            info = bus.identify(args.address)
            if info.uid != args.uid:
                raise UserError(f"--address {args.address}: board {info.uid} answers there, not {args.uid}",
                                exit_code=1)
            lines = [f"{bus.name}: board {args.uid} ({info.kind}, firmware {info.firmware}) at address {args.address}"]
            if cfg is not None:
                if cfg["kind"] != info.kind:
                    raise UserError(f"--board-definition {args.board_definition}: kind: {cfg['kind']!r}, "
                                    f"but board {args.uid} is a {info.kind} board", exit_code=1)
                if cfg.get("protocol") not in (None, info.protocol):
                    raise UserError(f"--board-definition {args.board_definition}: protocol: {cfg['protocol']}, "
                                    f"but board {args.uid} speaks protocol {info.protocol}", exit_code=1)
                limits = bus.request(args.address, "read_actuator")
                for name in ("state_min", "state_max", "resolution"):
                    if cfg.get(name) is not None and cfg[name] != limits[name]:
                        raise UserError(f"--board-definition {args.board_definition}: {name}: {cfg[name]}, "
                                        f"but the board's is {limits[name]}", exit_code=1)
                if cfg.get("initial_state") is not None:
                    s = cfg["initial_state"]
                    if not limits["state_min"] <= s <= limits["state_max"]:
                        raise UserError(f"--board-definition {args.board_definition}: initial_state: {s} is "
                                        f"outside the board's {limits['state_min']}..{limits['state_max']}",
                                        exit_code=1)
                    reached = bus.set_state(args.address, s)
                    generation = bus.store_state(args.address)
                    lines.append(f"initial_state {s} set (reached {reached['state']}) and stored "
                                 f"(generation {generation})")
                try:
                    out_dir.mkdir(parents=True, exist_ok=True)
                    path = out_dir / f"{args.uid}.json"
                    path.write_text(config_json(cfg))
                except OSError as exc:
                    raise UserError(f"--config-dir {out_dir}: cannot write ({exc.strerror or exc})") from None
                lines.append(f"config.json for {args.uid} written to {path}")
        except (BusError, UserError) as exc:
            # refused or cut short after the move: the board goes back where it answered
            if before != args.address:
                try:
                    bus.assign_address(args.uid, before)
                except BusError as back:
                    raise UserError(f"--uid {args.uid}: {exc}; and it could not be moved back to address "
                                    f"{before}: {back}", exit_code=1) from None
            if isinstance(exc, BusError):
                raise UserError(str(exc), exit_code=1) from None
            raise
    finally:
        rig.close()
    print("; ".join(lines))
    return 0
