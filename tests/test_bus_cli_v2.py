"""``hostctl bus scan --protocol 2`` and ``hostctl bus assign`` against emulated protocol-2
boards on a pseudo-terminal (instruments.bus.v2.onwire): the table of boards, a protocol-1
board refused by name, two boards at one address named with their uids, and fresh boards
(all at the unassigned address 248) given addresses by unique id, none twice."""

from __future__ import annotations

import json

import pytest

from hostctl.cli import main
from instruments.bus import reference as v1_reference
from instruments.bus.v2 import onwire
from instruments.bus.v2.constants import ADDR_UNASSIGNED




def test_a_protocol_2_scan_lists_the_boards(serve, capsys):
    boards = onwire.make_boards(5, seed=11)
    em = serve(boards)
    assert main(["bus", "scan", "--protocol", "2", "--port", em.port]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["address", "unique", "id", "kind", "firmware", "protocol"]
    rows = [ln.split() for ln in lines[1:-1]]
    assert [(int(r[0]), r[1], r[2], r[4]) for r in rows] == [
        (b.address, b.uid.hex(), "mosfet", "2.1") for b in boards]
    assert lines[-1] == "5 board(s) in 2 passes, 0 replies garbled"


def test_a_protocol_2_scan_names_two_boards_at_one_address(serve, capsys):
    boards = onwire.make_boards(4, seed=12)
    boards[3].address = boards[2].address = 3
    em = serve(boards)
    assert main(["bus", "scan", "--protocol", "2", "--port", em.port, "--json"]) == 1
    out, err = capsys.readouterr()
    assert {b["address"] for b in json.loads(out)} >= {1, 2}
    uids = sorted(b.uid.hex() for b in boards[2:])
    assert f"address 3 is shared by boards {', '.join(uids)}" in err or \
           f"address 3 is shared by boards {', '.join(reversed(uids))}" in err


def test_a_protocol_1_board_is_refused_by_name(serve, capsys):
    old = v1_reference.ReferenceBoard(9, bytes.fromhex("1122334455667788"), 2)
    em = serve(onwire.make_boards(2, seed=13), others=[old])
    assert main(["bus", "scan", "--protocol", "2", "--port", em.port]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "protocol 1" in err[0] and "9" in err[0], err
    assert "Traceback" not in err[0]


def test_fresh_boards_get_free_addresses_by_their_unique_ids(serve, capsys):
    placed = onwire.make_boards(2, seed=14)                       # at 1 and 2
    fresh = onwire.make_boards(12, unassigned=True, seed=15)
    em = serve(placed + fresh)
    assert main(["bus", "assign", "--port", em.port, "--expect", "12"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"12 board(s) given an address on {em.port}; 2 already had one"
    given = {ln.split()[1].rstrip(":"): int(ln.split()[-1]) for ln in lines[:-1]}
    assert given == {b.uid.hex(): b.address for b in fresh}
    assert sorted(given.values()) == list(range(3, 15))           # 1 and 2 were taken
    assert all(b.address != ADDR_UNASSIGNED for b in fresh)
    assert main(["bus", "scan", "--protocol", "2", "--port", em.port]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("14 board(s)")


@pytest.mark.parametrize("argv, message", [
    (["bus", "assign", "--port", "/dev/no-such-port"], "--port /dev/no-such-port: no such port"),
    (["bus", "scan", "--protocol", "3", "--port", "x"], "argument --protocol: must be 1..2, got 3"),
    (["bus", "assign", "--port", "x", "--first", "248"], "argument --first: must be 1..247, got 248"),
])
def test_bad_arguments_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        rc = main(argv)
        raise SystemExit(rc)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_baud_rate_option_has_one_name_everywhere(serve, capsys):
    # `--baud` (firmware emulate/update) and `--baudrate` (bus scan/assign) are one option
    em = serve(onwire.make_boards(2, seed=12))
    assert main(["bus", "scan", "--protocol", "2", "--port", em.port, "--baud", "115200"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("2 board(s)")
    from hostctl.cli import build_parser

    ns = build_parser().parse_args(["firmware", "update", "--port", "p", "--baudrate", "57600", "img"])
    assert ns.baud == 57600
