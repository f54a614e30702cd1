"""``hostctl bus``: talk to the edge boards over the bus.

``hostctl bus scan --port PORT [--baudrate BAUD] [--passes N] [--json]`` lists every board
that answers (address, unique id, board kind, firmware version, protocol version and minor
version). A scan repeats its identify broadcast until two passes agree (at most ``--passes``)
and says how many passes it took and how many replies arrived garbled: on the last line of
the table, or on standard error with ``--json`` (whose standard output is one JSON list).
"""

from __future__ import annotations

import argparse
import json
import sys

from hostctl import argtypes
from hostctl.errors import UserError

#: Line rates (baud) a port is opened at; the client's own bounds.
BAUDRATE_MIN, BAUDRATE_MAX = 300, 4_000_000


def register(sub) -> None:
    p = sub.add_parser("bus", help="talk to the edge boards over the bus")
    bus_sub = p.add_subparsers(dest="bus_command", metavar="COMMAND")
    bus_sub.required = True
    scan = bus_sub.add_parser("scan", help="list the boards on the bus")
    scan.add_argument("--port", required=True, help="serial port (device path or pyserial URL)")
    scan.add_argument("--baudrate", type=argtypes.integer(BAUDRATE_MIN, BAUDRATE_MAX, "baud"), default=115200,
                      help=f"line rate, {BAUDRATE_MIN}..{BAUDRATE_MAX:,} baud (default 115200)")
    scan.add_argument("--passes", type=argtypes.integer(2, 16), default=6,
                      help="most identify broadcasts before the scan gives up waiting for two that "
                           "agree, 2..16 (default 6)")
    scan.add_argument("--json", action="store_true", help="print one JSON list of boards")
    scan.set_defaults(func=run_scan)


def run_scan(args: argparse.Namespace) -> int:
    from instruments.bus.client import BusClient, BusError

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
