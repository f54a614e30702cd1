"""The SPICE reader's constructs, each against ngspice's operating point: .param, .subckt/X,
.include, current sources, LAMBDA, .temp 27, a node held only by cut-off transistors (GMIN);
and one error, naming file, line and card, for what is still not accepted."""

import numpy as np
import pytest

from instruments.sim import ngspice
from instruments.sim.circuit import CutOffNodeError, DCSolver
from instruments.sim.edges import Mosfet
from instruments.sim.netlist import NetlistError, parse_netlist, read_netlist

needs_ngspice = pytest.mark.skipif(not ngspice.available(), reason="ngspice is not on PATH")
OPTIONS = ".options reltol=1e-9 vntol=1e-12 abstol=1e-15\n.op\n.end\n"
#: agreement with ngspice (V): its tolerances above, at node voltages below 1 V
TOL_V = 1e-9


def agree(text, base_dir=None):
    """Our node voltages and ngspice's for the netlist ``text``; the worst difference (V)."""
    nl = parse_netlist(text, base_dir=base_dir)
    ours = nl.solve()
    theirs = nl.named(ngspice.operating_point(text))
    worst = max(abs(ours[k] - theirs[k]) for k in theirs)
    return nl, ours, worst


CUT_OFF = """a node held only by cut-off transistors
Vin in 0 DC 0.45
Vg1 g1 0 DC 0.5
Vg2 g2 0 DC 0.6
Vg3 g3 0 DC 2.5
M1 in g1 mid 0 nm
M2 mid g2 0 0 nm
M3 in g3 out 0 nm
R1 out 0 2k
.model nm NMOS (LEVEL=1 KP=8.5e-4 VTO=0.7)
""" + OPTIONS


@pytest.mark.ngspice
@needs_ngspice
def test_cut_off_node_gets_ngspices_gmin_and_its_voltage():
    nl, ours, worst = agree(CUT_OFF)
    assert worst <= TOL_V
    assert ours["mid"] == pytest.approx(0.0, abs=1e-9)  # at its bulk, as ngspice puts it
    # without GMIN the same circuit has no unique solution, and says so by name
    fixed = nl.boundary_v()
    solver = DCSolver(nl.network, [nl.network.index(n) for n in fixed])
    with pytest.raises(CutOffNodeError) as info:
        solver.solve(nl.device, nl.state, np.array(list(fixed.values())))
    assert info.value.nodes == ["mid"]


@pytest.mark.ngspice
@needs_ngspice
def test_cut_off_node_settles_at_its_bulk_voltage():
    text = CUT_OFF.replace("M1 in g1 mid 0 nm", "M1 in g1 mid bb nm").replace(
        "M2 mid g2 0 0 nm", "M2 mid g2 0 bb nm\nVbb bb 0 DC 0.3")
    # the bulk junctions at in, 0 and mid: mid follows the bulk
    nl, ours, worst = agree(text)
    assert ours["mid"] == pytest.approx(0.3, abs=1e-9)
    assert worst <= TOL_V


def test_gmin_zero_leaves_a_cut_off_node_undetermined():
    text = CUT_OFF.replace(".options ", ".options gmin=0 ")
    with pytest.raises(CutOffNodeError, match="mid"):
        parse_netlist(text).solve()


PARAM = """parameters
.param vin=0.45 rbase=1k
.param rtop={rbase * 2} rbot = {(rbase + 500) / 3 - -1}
Vin in 0 DC {vin}
R1 in mid {rtop}
R2 mid 0 {rbot}
R3 mid out 'rbase*3'
R4 out 0 {rbase}
""" + OPTIONS


@pytest.mark.ngspice
@needs_ngspice
def test_params_and_expressions_agree_with_ngspice():
    nl, ours, worst = agree(PARAM)
    assert worst <= TOL_V
    assert nl.state[1] == pytest.approx(1 / 501.0, rel=1e-15)


SUBCKT = """nested subcircuits with parameters
.param rr=2k
.subckt leg a b params: r=1k gate=2.5
Vg g 0 DC {gate}
M1 a g m 0 nm
R1 m b {r}
.ends leg
.subckt pair top bottom params: r=1k
X1 top mid leg r={r}
X2 mid bottom leg r={r/2} gate=3
.ends
Vin in 0 DC 0.45
Xa in 0 pair r={rr}
Xb in out pair
R9 out 0 1k
.model nm NMOS (LEVEL=1 KP=8.5e-4 VTO=0.7)
""" + OPTIONS


@pytest.mark.ngspice
@needs_ngspice
def test_nested_subcircuits_agree_with_ngspice():
    nl, ours, worst = agree(SUBCKT)
    assert worst <= TOL_V
    assert "Xa.X1.m" in ours and "Xa.mid" in ours
    assert "R.Xa.X2.R1" in nl.network.edge_names
    assert nl.state[nl.network.edge_names.index("R.Xa.X2.R1")] == pytest.approx(1 / 1e3, rel=1e-15)


@pytest.mark.ngspice
@needs_ngspice
def test_include_relative_to_the_file_agrees_with_ngspice(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "cells.inc").write_text(
        "* a resistor cell\n.subckt cell a b\nR1 a b 1k\nR2 a b 3k\n.ends\n.include models.inc\n"
    )
    (tmp_path / "lib" / "models.inc").write_text(".model nm NMOS (LEVEL=1 KP=8.5e-4 VTO=0.7)\n")
    body = "includes\n.include {}\nVin in 0 0.45\nVg g 0 2\nX1 in mid cell\nM1 mid g 0 0 nm\n" + OPTIONS
    top = tmp_path / "top.cir"
    top.write_text(body.format("lib/cells.inc"))
    ours = read_netlist(top).solve()
    # ngspice runs the deck elsewhere: give it the absolute path
    theirs = parse_netlist(body.format(tmp_path / "lib" / "cells.inc")).named(
        ngspice.operating_point(body.format(tmp_path / "lib" / "cells.inc")))
    assert max(abs(ours[k] - theirs[k]) for k in theirs) <= TOL_V


def test_include_cycle_is_refused_by_name(tmp_path):
    (tmp_path / "a.inc").write_text("R1 a 0 1k\n.include b.inc\n")
    (tmp_path / "b.inc").write_text("R2 a 0 1k\n.include a.inc\n")
    top = tmp_path / "top.cir"
    top.write_text("cycle\nV1 a 0 1\n.include a.inc\n")
    with pytest.raises(NetlistError) as info:
        read_netlist(top)
    assert "include cycle: a.inc -> b.inc -> a.inc" in str(info.value)
    assert info.value.source == str(tmp_path / "b.inc") and info.value.line == 2


CURRENT = """current sources
Vin in 0 DC 0.3
R1 in a 1k
R2 a 0 2k
R3 a b 1.5k
R4 b 0 1k
I1 0 b DC 100u
I2 a b 20uA
Vg g 0 2.2
M1 b g c 0 nm
R5 c 0 3k
.model nm NMOS (LEVEL=1 KP=8.5e-4 VTO=0.7)
""" + OPTIONS


@pytest.mark.ngspice
@needs_ngspice
def test_current_sources_agree_with_ngspice():
    _, ours, worst = agree(CURRENT)
    assert worst <= TOL_V


def test_current_source_on_a_resistor_alone_is_ohms_law():
    v = parse_netlist("t\nI1 0 a 1m\nR1 a 0 2k\n").solve()
    assert v["a"] == pytest.approx(2.0, rel=1e-14)


LAMBDA = """channel-length modulation
Vin in 0 DC 0.45
Vg1 g1 0 DC 1.0
Vg2 g2 0 DC 2.0
R1 in a 1k
M1 a g1 0 0 nm
M2 in g2 b 0 nm
R2 b 0 1k
.model nm NMOS (LEVEL=1 KP=8.5e-4 VTO=0.7 LAMBDA=0.08)
""" + OPTIONS


@pytest.mark.ngspice
@needs_ngspice
def test_lambda_agrees_with_ngspice_in_saturation_and_triode():
    nl, ours, worst = agree(LAMBDA)
    assert worst <= TOL_V
    assert isinstance(nl.device.parts[1][0], Mosfet) and nl.device.parts[1][0].has_lambda
    # M1 is saturated (Vov 0.3 V < Vds), M2 in triode
    assert ours["a"] > 0.3 and ours["in"] - ours["b"] < 2.0 - 0.7 - ours["b"]


@pytest.mark.ngspice
@needs_ngspice
def test_temp_27_is_accepted_and_agrees():
    _, _, worst = agree(LAMBDA.replace(".options", ".temp 27\n.options"))
    assert worst <= TOL_V


@pytest.mark.parametrize("card", [".temp 50", ".options temp=0"])
def test_other_temperatures_are_refused_saying_the_simulator_is_at_27(card):
    with pytest.raises(NetlistError) as info:
        parse_netlist(f"t\nV1 a 0 1\nR1 a 0 1k\n{card}\n", "hot.cir")
    assert str(info.value).startswith("hot.cir, line 4: ")
    assert "the simulator is at 27 degC" in str(info.value) and card in str(info.value)


NOT_ACCEPTED = [
    ("D1 a 0 dmod\n.model dmod D", "unsupported diode D1 is not accepted", "D1 a 0 dmod"),
    ("Vg g 0 2\nM1 a g 0 0 pm\n.model pm PMOS (KP=1e-4 VTO=-0.7)", "only NMOS transistors are accepted", "M1 a g 0 0 pm"),
    ("Vg g 0 2\nM1 a g 0 0 nm\n.model nm NMOS (GAMMA=0.4)", "GAMMA=0.4 is not accepted", ".model nm"),
    (".lib models.lib tt", ".lib is not accepted", ".lib models.lib tt"),
    ("E1 a 0 b 0 2", "unsupported controlled source E1 is not accepted", "E1 a 0 b 0 2"),
    ("R2 a 0 {sqrt(4)}", "functions such as sqrt() are not accepted", "R2 a 0 {sqrt(4)}"),
]


@pytest.mark.parametrize("extra, problem, card", NOT_ACCEPTED, ids=[x[1][:30] for x in NOT_ACCEPTED])
def test_what_is_not_accepted_is_one_error_naming_file_line_and_card(extra, problem, card):
    with pytest.raises(NetlistError) as info:
        parse_netlist("t\nV1 a 0 1\nR1 a 0 1k\n" + extra + "\n", "deck.cir")
    msg = str(info.value)
    assert msg.startswith("deck.cir, line ") and problem in msg and card in msg and "\n" not in msg


def test_error_inside_a_subcircuit_names_its_line_and_instance():
    text = "t\n.subckt cell a b\nR1 a b {nope}\n.ends\nV1 in 0 1\nXq in 0 cell\n"
    with pytest.raises(NetlistError) as info:
        parse_netlist(text, "s.cir")
    assert info.value.line == 3 and "unknown parameter nope" in str(info.value)
    assert "in Xq, s.cir line 6" in str(info.value)


@pytest.mark.parametrize("text, problem", [
    ("t\n.subckt c a b\nXi a b c\n.ends\nV1 in 0 1\nX1 in 0 c\n", "nested deeper than"),
    ("t\n.subckt c a b\nR1 a b 1\n.ends\nV1 in 0 1\nX1 in c\n", "gives 1 node(s) to .subckt c, which has 2"),
    ("t\n.subckt c a b\nR1 a b 1\n.ends\nV1 in 0 1\nX1 in 0 c r=2\n", ".subckt c has no parameter r"),
    ("t\n.subckt c a b\nR1 a b 1\n.ends d\n", ".ends d closes .subckt c"),
    ("t\n.ends\n", ".ends without .subckt"),
    ("t\n.param a={1/0}\n", "division by zero"),
    ("t\n.param a={(1+2}\n", "missing ')'"),
])
def test_subcircuit_and_parameter_errors(text, problem):
    with pytest.raises(NetlistError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_netlist(text)


@pytest.mark.parametrize("text, value", [
    ("1k + 2 * 3", 1006.0), ("(1k + 2) * 3", 3006.0), ("-a / 4", -0.5), ("--a", 2.0),
    ("A * 1meg", 2e6), ("10 / 4 / 5", 0.5), ("2.5u*2", 5e-6),
])
def test_expressions_follow_arithmetic(text, value):
    from instruments.sim.netlist import evaluate

    assert evaluate(text, {"a": 2.0}) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text", ["1 +", "2 ** 3", "a < 1", "__import__('os')", "(1", "1)", ""])
def test_anything_but_arithmetic_is_refused(text):
    from instruments.sim.netlist import ExpressionError, evaluate

    with pytest.raises(ExpressionError):
        evaluate(text, {"a": 2.0})


@pytest.mark.ngspice
@needs_ngspice
def test_a_network_with_lambda_exports_reads_back_and_agrees_with_ngspice():
    from instruments.sim.circuit import solve_dc
    from instruments.sim.netlist import export_netlist
    from instruments.sim.network import gen2_lattice

    rng = np.random.default_rng(5)
    net = gen2_lattice()
    dev = Mosfet(net.n_edges, subthreshold_v=None, lambda_per_v=rng.uniform(0.0, 0.1, net.n_edges))
    state = rng.uniform(1.5, 2.8, net.n_edges)
    fixed = dict(zip(["r0c0", "r2c2", "r0c2", "r2c0"], [0.2, 0.35, 0.45, 0.0]))
    text = export_netlist(net, dev, state, fixed)
    back = parse_netlist(text)
    assert np.array_equal(back.device.lambda_per_v, dev.lambda_per_v)
    ours = solve_dc(net, dev, state, {net.nodes[net.ground]: 0.0, **fixed})
    theirs = back.named(ngspice.operating_point(text))
    assert max(abs(ours[i] - theirs[n]) for i, n in enumerate(net.nodes)) <= 1e-6  # the 1 uV of test_ngspice
    _, _, worst = agree(text)  # with the junctions' GMIN, as ngspice
    assert worst <= TOL_V
