"""``hostctl bus``: talk to the edge boards over the bus.

``hostctl bus scan --port PORT [--baudrate BAUD] [--passes N] [--json] [--protocol 1|2]``
lists every board that answers (address, unique id, board kind, firmware version, protocol
version and minor version). A scan repeats its identify broadcast until two passes agree
(at most ``--passes``) and says how many passes it took and how many replies arrived
garbled: on the last line of the table, or on standard error with ``--json`` (whose
standard output is one JSON list). With ``--protocol 2`` (firmware/protocol/PROTOCOL.md) the
scan first probes for protocol-1 boards (refused by name with the version they speak) and
names any address two boards share, with their unique ids.

``hostctl bus assign --port PORT [--first N] [--expect N]`` finds the protocol-2 boards that
have no address yet (``discover`` with fresh salts) and gives each a free address by its
unique id (``assign_address``), lowest first from ``--first``; it prints one line per board
and stops when two discovers in a row hear nothing.
"""

from __future__ import annotations

import argparse
import json
import sys

from hostctl import argtypes
from hostctl.errors import UserError

#: Line rates (baud) a port is opened at; the client's own bounds.
BAUDRATE_MIN, BAUDRATE_MAX = 300, 4_000_000


def port_arguments(p, required: bool = True) -> None:
    """A bus port's ``--port`` and its line rate ``--baudrate`` (also ``--baud``)."""
    p.add_argument("--port", required=required, help="serial port (device path or pyserial URL)")
    p.add_argument("--baudrate", "--baud", type=argtypes.integer(BAUDRATE_MIN, BAUDRATE_MAX, "baud"), default=115200,
                   help=f"line rate, {BAUDRATE_MIN}..{BAUDRATE_MAX:,} baud (default 115200)")


def register(sub) -> None:
    p = sub.add_parser("bus", help="talk to the edge boards over the bus")
    bus_sub = p.add_subparsers(dest="bus_command", metavar="COMMAND")
    bus_sub.required = True
    scan = bus_sub.add_parser("scan", help="list the boards on the bus")
    port_arguments(scan)
    scan.add_argument("--passes", type=argtypes.integer(2, 16), default=6,
                      help="most identify broadcasts before the scan gives up waiting for two that "
                           "agree, 2..16 (default 6)")
    scan.add_argument("--json", action="store_true", help="print one JSON list of boards")
    _protocol_args(scan)
    scan.set_defaults(func=run_scan)
    assign = bus_sub.add_parser("assign", help="give every protocol-2 board without an address one, "
                                               "by its unique id")
    port_arguments(assign)
    assign.add_argument("--first", type=argtypes.integer(1, 247), default=1,
                        help="the lowest address to give, 1..247 (default 1); addresses boards "
                             "already answer at are skipped")
    assign.add_argument("--expect", type=argtypes.integer(1, 247), default=None,
                        help="about how many new boards (sizes discover's first slots; default 16)")
    assign.add_argument("--latency", type=argtypes.number(0.0, 10.0, "s"), default=0.05,
                        help="a real port's extra wait beyond the protocol's windows (s, default 0.05)")
    assign.set_defaults(func=run_assign)


def _protocol_args(p) -> None:
    p.add_argument("--protocol", type=argtypes.integer(1, 2), default=1,
                   help="the protocol the boards speak, 1 or 2 (default 1)")
    p.add_argument("--latency", type=argtypes.number(0.0, 10.0, "s"), default=0.05,
                   help="protocol 2: a real port's extra wait beyond the protocol's windows "
                        "(s, default 0.05)")


def _open_v2(args):
    from hostctl.fwupdate import require_port
    from instruments.bus.v2.client import Bus, BusError

    require_port(args.port)
    try:
        return Bus(args.port, baud=args.baudrate, latency_s=args.latency)
    except BusError as exc:
        raise UserError(f"--port {args.port}: {exc}") from None


def _run_scan_v2(args: argparse.Namespace) -> int:
    from instruments.bus.v2.client import BusError

    try:
        with _open_v2(args) as bus:
            boards, dups = bus.survey(max_passes=args.passes)
    except BusError as exc:
        raise UserError(str(exc)) from None
    shared = f"; {dups.summary(args.port)}" if dups else ""
    if args.json:
        print(json.dumps([b.as_dict() for b in boards]))
        print(f"hostctl bus scan: {boards.summary()}{shared}", file=sys.stderr)
        return 1 if dups else 0
    if not boards:
        print(f"no boards answered on {args.port} ({boards.summary()})")
        return 1
    print(f"{'address':>7}  {'unique id':<16}  {'kind':<8}  {'firmware':<9}  protocol")
    for b in boards:
        flag = "  (another board answers at its address)" if b.duplicate_flag else ""
        print(f"{b.address:>7}  {b.uid:<16}  {b.kind:<8}  {b.firmware:<9}  {b.protocol}.{b.protocol_minor}{flag}")
    print(boards.summary() + shared)
    return 1 if dups else 0


def run_assign(args: argparse.Namespace) -> int:
    from instruments.bus.v2.client import BusError

    try:
        with _open_v2(args) as bus:
            boards, dups = bus.survey()
            if dups:
                raise UserError(f"{dups.summary(args.port)}: move them apart first "
                                "(hostctl firmware provision --uid ... --address ...)")
            taken = {b.address for b in boards}
            given = bus.assign_unassigned(taken, range(args.first, 248), expected=args.expect)
    except BusError as exc:
        raise UserError(str(exc)) from None
    for uid, address in sorted(given.items(), key=lambda kv: kv[1]):
        print(f"board {uid}: address {address}")
    print(f"{len(given)} board(s) given an address on {args.port}; {len(boards)} already had one")
    return 0


def run_scan(args: argparse.Namespace) -> int:
    from instruments.bus.client import BusClient, BusError

    if args.protocol == 2:
        return _run_scan_v2(args)

    try:
        with BusClient(args.port, baudrate=args.baudrate) as client:
            boards = client.scan(max_passes=args.passes)
    except BusError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps([b.as_dict() for b in boards]))
        print(f"hostctl bus scan: {boards.summary()}", file=sys.stderr)
        return 0
    if not boards:
        print(f"no boards answered on {args.port} ({boards.summary()})")
        return 1
    print(f"{'address':>7}  {'unique id':<16}  {'kind':<8}  {'firmware':<9}  protocol")
    for b in boards:
        print(f"{b.address:>7}  {b.uid:<16}  {b.kind:<8}  {b.firmware:<9}  {b.protocol}.{b.protocol_minor}")
    print(boards.summary())
    return 0
