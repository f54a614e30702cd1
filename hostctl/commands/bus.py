"""``hostctl bus``: talk to the edge boards over the bus.

``hostctl bus scan --port PORT [--json]`` lists every board that answers (address, unique
id, board kind, firmware version, protocol version and minor version).
"""

from __future__ import annotations

import argparse
import json

from hostctl.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("bus", help="talk to the edge boards over the bus")
    bus_sub = p.add_subparsers(dest="bus_command", metavar="COMMAND")
    bus_sub.required = True
    scan = bus_sub.add_parser("scan", help="list the boards on the bus")
    scan.add_argument("--port", required=True, help="serial port (device path or pyserial URL)")
    scan.add_argument("--baudrate", type=int, default=115200, help="line rate (baud), default 115200")
    scan.add_argument("--json", action="store_true", help="print one JSON list of boards")
    scan.set_defaults(func=run_scan)


def run_scan(args: argparse.Namespace) -> int:
    from instruments.bus.client import BusClient, BusError

    if args.baudrate <= 0:
        raise UserError(f"--baudrate must be positive, got {args.baudrate}")
    try:
        with BusClient(args.port, baudrate=args.baudrate) as client:
            boards = client.scan()
    except BusError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps([b.as_dict() for b in boards]))
        return 0
    if not boards:
        print(f"no boards answered on {args.port}")
        return 1
    print(f"{'address':>7}  {'unique id':<16}  {'kind':<8}  {'firmware':<9}  protocol")
    for b in boards:
        print(f"{b.address:>7}  {b.uid:<16}  {b.kind:<8}  {b.firmware:<9}  {b.protocol}.{b.protocol_minor}")
    return 0
