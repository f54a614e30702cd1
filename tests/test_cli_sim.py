"""``hostctl sim solve``: the table, the JSON, and one clear error line for every bad input."""

import json

import numpy as np
import pytest

from hostctl.cli import main
from instruments.sim import ngspice
from instruments.sim.circuit import ConvergenceError
from instruments.sim.edges import Mosfet
from instruments.sim.netlist import Netlist, export_netlist, parse_netlist
from instruments.sim.network import gen2_lattice

TRANSISTOR = """one transistor below a resistor
Vin in 0 0.45
Vg g1 0 DC 2.5
R1 in Mid 1k
M1 Mid g1 out 0 nch W=2u L=1u
R2 out 0 2k
.model nch NMOS (LEVEL=1 KP=4.25e-4 VTO=0.7)
.end
"""


@pytest.fixture
def netlist(tmp_path):
    def write(text: str, name: str = "circuit.cir") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def run(capsys, *argv):
    status = main(["sim", "solve", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_json_maps_every_node_as_written_to_volts(netlist, capsys):
    status, out, err = run(capsys, netlist(TRANSISTOR), "--json")
    assert status == 0 and err == ""
    volts = json.loads(out)
    assert list(volts) == ["in", "0", "Mid", "out", "g1"]
    assert volts["0"] == 0.0 and volts["in"] == 0.45 and volts["g1"] == 2.5
    assert 0.0 < volts["out"] < volts["Mid"] < 0.45
    assert out.count("\n") == 1  # exactly one JSON object, on one line


def test_json_voltages_satisfy_kirchhoff_at_the_hidden_nodes(netlist, capsys):
    _, out, _ = run(capsys, netlist(TRANSISTOR), "--json")
    v = json.loads(out)
    s, vov = 8.5e-4, 2.5 - 0.7 - v["out"]
    vds = v["Mid"] - v["out"]
    i_mos = s * (vov - vds / 2) * vds
    assert (v["in"] - v["Mid"]) / 1e3 == pytest.approx(i_mos, rel=1e-12)
    assert v["out"] / 2e3 == pytest.approx(i_mos, rel=1e-12)


def test_table_lists_every_node_with_aligned_voltages(netlist, capsys):
    status, out, err = run(capsys, netlist(TRANSISTOR))
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "* one transistor below a resistor"
    assert lines[1].split() == ["node", "voltage", "(V)"]
    rows = [ln.split() for ln in lines[2:]]
    assert [r[0] for r in rows] == ["in", "0", "Mid", "out", "g1"]
    assert float(rows[0][1]) == 0.45 and float(rows[1][1]) == 0.0
    assert len({len(ln) for ln in lines[1:]}) == 1  # every row as wide: columns line up
    assert len({ln.index(".") for ln in lines[2:]}) == 1  # decimal points line up


def test_ground_written_gnd_is_reported_under_that_name(netlist, capsys):
    _, out, _ = run(capsys, netlist("divider\nV1 in GND 1\nR1 in mid 1k\nR2 mid gnd 1k\n"), "--json")
    assert json.loads(out) == {"in": 1.0, "GND": 0.0, "mid": 0.5}


def error_line(capsys, *argv):
    status, out, err = run(capsys, *argv)
    assert status != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("hostctl: error: ")
    assert "Traceback" not in err
    return err.strip()


def test_missing_file_is_one_error_line(tmp_path, capsys):
    err = error_line(capsys, str(tmp_path / "nowhere.cir"))
    assert "nowhere.cir: cannot read the netlist: No such file or directory" in err


def test_malformed_netlist_error_names_file_and_line(netlist, capsys):
    path = netlist("bad\nV1 a 0 1\nR1 a 0 1k\nR2 a 0 ten\n", "bad.cir")
    err = error_line(capsys, path, "--json")
    assert err == f"hostctl: error: {path}, line 4: resistance 'ten' is not a number: R2 a 0 ten"


def test_floating_node_is_named(netlist, capsys):
    err = error_line(capsys, netlist("float\nV1 a 0 1\nR1 a 0 1k\nR2 x y 1k\n"))
    assert "circuit.cir: 2 node(s) have no path to a fixed-voltage node: x, y" in err


def test_non_convergence_is_one_error_line(netlist, capsys, monkeypatch):
    def fails(self, tol=None):
        raise ConvergenceError(100, "Mid", 1.5e-6)

    monkeypatch.setattr(Netlist, "solve", fails)
    err = error_line(capsys, netlist(TRANSISTOR))
    assert "did not converge in 100 iterations: worst node Mid" in err


def test_solve_needs_a_netlist_argument(capsys):
    with pytest.raises(SystemExit) as info:
        main(["sim", "solve"])
    assert info.value.code == 2
    assert "NETLIST" in capsys.readouterr().err


@pytest.mark.ngspice
@pytest.mark.skipif(not ngspice.available(), reason="ngspice is not on PATH")
def test_solve_agrees_with_ngspice_on_an_exported_lattice(netlist, capsys):
    net = gen2_lattice()
    state = np.random.default_rng(0).uniform(1.5, 2.8, net.n_edges)
    fixed = {"r0c0": 0.2, "r2c2": 0.35, "r0c2": 0.45, "r2c0": 0.0}
    text = export_netlist(net, Mosfet(net.n_edges, subthreshold_v=None), state, fixed)
    _, out, _ = run(capsys, netlist(text), "--json")
    ours = json.loads(out)
    theirs = parse_netlist(text).named(ngspice.operating_point(text))
    assert list(ours) == list(theirs) and list(ours)[:16] == list(net.nodes)
    assert max(abs(ours[n] - theirs[n]) for n in ours) <= 1e-6
