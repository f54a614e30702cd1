"""``hostctl calibrate edges --port PORT``: every MOSFET board on a protocol-2 bus measures its
gate's slopes and leak (protocol 2.1, calibrate_actuator), the host reads each table back,
checks it, stores the run in a calibration store and shows it; boards emulated on a
pseudo-terminal (instruments.bus.v2.onwire), each with its own gate."""

from __future__ import annotations

import pytest

from calibration import store
from calibration.gates import GateRun, check
from hostctl.cli import main
from instruments.bus.v2 import GateCalibration, Kind, onwire
from instruments.bus.v2.client import Bus

NOMINAL = GateCalibration.from_rc(2200, 6_000_000)


def _gate(rc_us: int, leak_uv_per_s: int = -20) -> GateCalibration:
    return GateCalibration.from_rc(rc_us, 6_000_000, leak_uv_per_s)


#: The same table with charging and discharging swapped: what a board with its charge and
#: discharge pins swapped measures.
SWAPPED = GateCalibration(NOMINAL.charge_gate_uv, NOMINAL.discharge_nv_per_us, NOMINAL.discharge_gate_uv,
                          NOMINAL.charge_nv_per_us, 0)




def _boards():
    good = onwire.make_boards(3, seed=5)
    for b, rc in zip(good, (2250, 2310, 2150)):
        b.gate_measured = _gate(rc)
    odd = onwire.make_boards(6, seed=6)[3:]
    odd[0].gate_measured = SWAPPED                   # 4: pins swapped
    odd[1].gate_measured = _gate(2200, -4000)        # 5: leaks 4 mV/s
    odd[2].storage_fails = True                       # 6: the table cannot be stored
    digipot = onwire.make_boards(7, seed=7, kind=Kind.DIGIPOT)[6]  # 7: no gate
    return good + odd + [digipot]


def test_every_board_measures_its_gate_and_the_run_is_stored_and_checked(serve, tmp_path, capsys):
    boards = _boards()
    em = serve(boards)
    where = tmp_path / "buses.h5"
    rc = main(["calibrate", "edges", "--port", em.port, "--store", str(where)])
    out = capsys.readouterr().out
    assert rc == 1, out  # problems found: a non-zero exit
    # each board now uses the table its own gate measured, source 1 (the board keeps it)
    for b in boards[:5]:
        assert b.gate_source == 1 and b.gate_calibration == b.gate_measured
    assert boards[5].gate_source == 0 and boards[6].gate_source == 0
    cal = store.load(where)
    run = GateRun.from_dict(cal.edges)
    by_addr = {g.address: g for g in run.boards}
    assert sorted(by_addr) == [1, 2, 3, 4, 5, 6]
    assert [by_addr[a].after for a in (1, 2, 3)] == [b.gate_measured for b in boards[:3]]
    assert all(by_addr[a].before == NOMINAL and by_addr[a].before_source == 0 for a in by_addr)
    assert not any(by_addr[a].problems for a in (1, 2, 3))
    assert "charge and discharge swapped" in " ".join(by_addr[4].problems)
    assert "leaks -4 mV/s" in " ".join(by_addr[5].problems)
    assert "nominal table" in by_addr[6].problems[0]
    assert run.skipped == {7: "a digipot board has no gate to calibrate"}
    assert cal.key.boards == {a: g.uid for a, g in by_addr.items()}
    lines = out.splitlines()
    assert lines[0].startswith(f"gate calibration v1 of bus {em.port} saved in {where}")
    assert sum(ln.startswith("out of tolerance: board ") for ln in lines) == 6  # swapped: 2 per direction
    assert f"  {1:>3} {boards[0].uid.hex()}  1.00 V: +2222/-444.4  2.00 V: +1778/" in out  # V/s, RC 2.25 ms


def test_a_second_run_compares_with_the_first_and_show_reads_it_back(serve, tmp_path, capsys):
    boards = onwire.make_boards(2, seed=9)
    for b in boards:
        b.gate_measured = _gate(2300)
    em = serve(boards)
    where = tmp_path / "buses.h5"
    assert main(["calibrate", "edges", "--port", em.port, "--store", str(where)]) == 0
    boards[1].gate_measured = _gate(4000)  # its resistor changed: 42 % slower
    assert main(["calibrate", "edges", "--port", em.port, "--store", str(where)]) == 1
    out = capsys.readouterr().out
    assert "out of tolerance: board 2" in out and "-42 % from" in out and "board 1" not in out.split("v2 of")[1]
    run = GateRun.from_dict(store.load(where, 2).edges)
    assert {g.address: g.before_source for g in run.boards} == {1: 1, 2: 1}
    assert main(["calibration", "show", "--store", str(where), "--version", "2"]) == 0
    shown = capsys.readouterr().out
    assert "gates of 2 MOSFET board(s)" in shown and "PROBLEM" in shown


def test_the_check_names_each_fault():
    assert check(NOMINAL, NOMINAL) == []
    flat = GateCalibration(NOMINAL.charge_gate_uv, (0, 0, 0, 0, 0), NOMINAL.discharge_gate_uv,
                           NOMINAL.discharge_nv_per_us, 0)
    assert check(flat, NOMINAL) == ["the gate does not move charging at 1.00 V, 2.00 V, 3.00 V, 4.00 V, 5.00 V "
                                    "(slope <= 0: check the driver stage)"]
    slower = _gate(2200 * 2, 0)
    msgs = check(slower, NOMINAL, tolerance=0.3)
    assert len(msgs) == 2 and all("-50 % from" in m for m in msgs)
    assert check(slower, NOMINAL, tolerance=0.6) == []
    assert check(_gate(2200, 999), NOMINAL) == [] and check(_gate(2200, -1001), NOMINAL) != []


@pytest.mark.parametrize("argv, message", [
    (["calibrate", "daq", "--port", "/dev/null"], "--port calibrates the gates of a protocol-2 bus"),
    (["calibrate", "edges", "--port", "/dev/null", "--builtin", "gen2"], "--port and --builtin"),
    (["calibrate", "edges", "--port", "/nonexistent/tty"], "/nonexistent/tty"),
    (["calibrate", "edges", "--port", "x", "--tolerance", "0"], "--tolerance"),
])
def test_bad_arguments_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err


def test_the_client_reads_and_calibrates_one_board(serve):
    boards = onwire.make_boards(1, seed=3)
    em = serve(boards)
    with Bus(em.port, latency_s=0.05) as bus:
        assert bus.read_actuator_calibration(1) == (0, NOMINAL)
        source, table = bus.calibrate_actuator(1)
        assert (source, table) == (1, boards[0].gate_measured) == bus.read_actuator_calibration(1)
