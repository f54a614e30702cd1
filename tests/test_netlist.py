"""SPICE netlists: numbers, cards, elements, the network they make, errors, and export."""

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.sim.edges import Digipot, MixedEdges, Mosfet, Resistor
from instruments.sim.netlist import (
    NetlistError,
    export_netlist,
    parse_netlist,
    parse_number,
    read_netlist,
    spice_node_names,
    write_netlist,
)
from instruments.sim.network import Network, Role, from_edge_list, gen2_lattice

DIVIDER = """resistor divider
Vin in 0 DC 0.4
R1 in mid 1k
R2 mid 0 3k
.end
"""

TRANSISTOR = """one transistor below a resistor
Vin in 0 0.45
Vg g1 0 DC 2.5
R1 in mid 1k
M1 mid g1 0 0 nch W=2u L=1u
.model nch NMOS (LEVEL=1 KP=4.25e-4 VTO=0.7)
"""


# -- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("1", 1.0), ("-2.5", -2.5), (".5", 0.5), ("5.", 5.0), ("+3e-3", 3e-3), ("1E3", 1e3),
        ("10k", 1e4), ("10kOhm", 1e4), ("4.7K", 4.7e3), ("1.5V", 1.5), ("2MEG", 2e6),
        ("2megohm", 2e6), ("1m", 1e-3), ("1M", 1e-3), ("3mil", 76.2e-6), ("1u", 1e-6),
        ("100nF", 1e-7), ("1p", 1e-12), ("1F", 1e-15), ("2g", 2e9), ("1t", 1e12),
        ("1e3k", 1e6), ("0.1u", 1e-7), ("7Volts", 7.0),
    ],
)
def test_spice_numbers_take_scale_suffixes_and_ignore_units(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "k", "abc", "1.2.3", "1k2", "--1", "1 k", "{r}"])
def test_non_numbers_are_refused(text):
    with pytest.raises(ValueError):
        parse_number(text)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_reads_back_from_its_repr(x):
    assert parse_number(repr(x)) == x


SCALES = {"t": 12, "g": 9, "meg": 6, "k": 3, "m": -3, "u": -6, "n": -9, "p": -12, "f": -15, "": 0}


@given(
    st.decimals(min_value=-1e6, max_value=1e6, places=6, allow_nan=False, allow_infinity=False),
    st.sampled_from(sorted(SCALES)),
    st.sampled_from(["", "V", "Ohm", "A", "Hz", "s"]),
    st.booleans(),
)
def test_suffixed_numbers_are_the_correctly_rounded_decimal(mantissa, suffix, unit, upper):
    if suffix == "m" and unit.lower().startswith(("eg", "il")):
        return
    text = f"{mantissa}{suffix.upper() if upper else suffix}{unit}"
    assert parse_number(text) == float(Decimal(mantissa).scaleb(SCALES[suffix]))


# -- reading --------------------------------------------------------------------------------


def test_divider_becomes_a_resistor_network():
    nl = parse_netlist(DIVIDER, "div.cir")
    assert nl.title == "resistor divider"
    assert nl.network.nodes == ("in", "0", "mid")
    assert nl.network.edge_names == ("R1", "R2")
    assert nl.network.edges.tolist() == [[0, 2], [2, 1]]
    assert nl.network.roles == (Role.SOURCE, Role.GROUND, Role.HIDDEN)
    assert isinstance(nl.device, Resistor)
    assert nl.state.tolist() == [1e-3, 1 / 3e3]
    assert nl.fixed_v == {"in": 0.4}
    assert nl.ground == "0"
    assert nl.source == "div.cir"


def test_divider_solves_to_its_ratio():
    assert parse_netlist(DIVIDER).solve() == pytest.approx({"in": 0.4, "0": 0.0, "mid": 0.3}, abs=1e-15)


def test_comments_continuations_and_case_are_spice_s():
    text = """* the title line may look like a comment
* a comment line
   * an indented comment
vIN In GND dc 0.2 ; inline comment
r1 in
+ Mid
+ 2K $ another comment
R2 MID gnd 2k
.OP
.Options RELTOL=1e-6
"""
    nl = parse_netlist(text)
    assert nl.title == "* the title line may look like a comment"
    assert nl.network.nodes == ("In", "GND", "Mid")  # first spelling kept; gnd is node 0
    assert nl.network.edge_names == ("r1", "R2")
    assert nl.ground == "GND"
    assert nl.state.tolist() == [5e-4, 5e-4]
    assert nl.solve()["Mid"] == pytest.approx(0.1, abs=1e-16)


def test_control_blocks_and_cards_after_end_are_ignored():
    text = DIVIDER.replace(".end\n", "") + """.control
op
R9 this is not read
print all
.endc
.tran 1u 1m
.end
L1 what follows .end is never read
"""
    assert parse_netlist(text).network.edge_names == ("R1", "R2")


def test_title_card_replaces_the_title():
    assert parse_netlist("first line\n.title the real title\nV1 a 0 1\n").title == "the real title"


def test_capacitors_are_open_at_dc():
    nl = parse_netlist(DIVIDER.replace(".end", "C1 mid 0 1u\n.end"))
    assert nl.network.edge_names == ("R1", "R2")


def test_resistor_multiplier_and_named_value():
    nl = parse_netlist("t\nV1 a 0 1\nR1 a 0 r=2k m=4\n")
    assert nl.state.tolist() == [2e-3]


def test_source_written_from_ground_holds_minus_its_value():
    nl = parse_netlist("t\nV1 0 a DC 0.3\nR1 a b 1k\nR2 b 0 1k\n")
    assert nl.fixed_v == {"a": -0.3}


def test_source_without_value_is_zero_volts_and_ac_parts_are_ignored():
    nl = parse_netlist("t\nV1 a 0\nV2 b 0 DC 0.2 AC 1 0\nR1 a b 1k\n")
    assert nl.fixed_v == {"a": 0.0, "b": 0.2}


def test_transient_source_uses_its_dc_value():
    nl = parse_netlist("t\nV1 a 0 DC 0.25 PULSE(0 1 0 1n 1n 1u 2u)\nR1 a 0 1k\n")
    assert nl.fixed_v == {"a": 0.25}


def test_transistor_netlist_becomes_a_level1_mosfet_edge():
    nl = parse_netlist(TRANSISTOR)
    assert nl.network.nodes == ("in", "0", "mid")  # the gate node is not a network node
    assert nl.gate_v == {"g1": 2.5}
    assert isinstance(nl.device, MixedEdges)
    (res, r_idx), (mos, m_idx) = nl.device.parts
    assert r_idx.tolist() == [0] and m_idx.tolist() == [1]
    assert mos.subthreshold_v is None
    assert mos.s_a_per_v2[:, 0].tolist() == [8.5e-4, 8.5e-4]  # KP W / L
    assert mos.vt_v[:, 0].tolist() == [0.7, 0.7]
    assert nl.state.tolist() == [1e-3, 2.5]
    assert nl.network.edges[1].tolist() == [2, 1]  # drain -> source


def test_transistor_below_a_resistor_matches_the_square_law():
    # (Vin - x) / R = S ((Vg - Vt) x - x^2 / 2) + GMIN x, the triode law with the source at
    # ground and ngspice's GMIN across the drain junction to the bulk
    s, vov, vin, r, gmin = 8.5e-4, 2.5 - 0.7, 0.45, 1e3, 1e-12
    a, b, c = s / 2, -(s * vov + 1 / r + gmin), vin / r
    x = (-b - np.sqrt(b * b - 4 * a * c)) / (2 * a)
    assert parse_netlist(TRANSISTOR).solve()["mid"] == pytest.approx(x, rel=1e-13)


def test_mosfet_only_netlist_gives_a_mosfet_device_with_model_defaults():
    nl = parse_netlist("t\nVd d 0 0.3\nVg g 0 3\nM1 d g s 0 plain\nM2 s g 0 0 plain M=2\n.model plain nmos\n")
    assert isinstance(nl.device, Mosfet)
    assert nl.device.s_a_per_v2[0].tolist() == [2e-5, 4e-5]  # KP's default, W = L, times M
    assert nl.device.vt_v[0].tolist() == [0.0, 0.0]
    assert nl.state.tolist() == [3.0, 3.0]


def test_gate_source_may_stand_on_a_fixed_node():
    nl = parse_netlist("t\nVin in 0 0.45\nVgs g in 2.0\nM1 in g out 0 n\nR1 out 0 1k\n.model n nmos kp=1e-3 vto=0.7\n")
    assert nl.state.tolist() == [2.45, 1e-3]
    assert nl.gate_v == {"g": 2.45}


def test_gate_may_be_a_fixed_network_node():
    nl = parse_netlist("t\nVin in 0 3\nM1 in in out 0 n\nR1 out 0 1k\n.model n nmos kp=1e-3 vto=0.7\n")
    assert nl.state.tolist() == [3.0, 1e-3] and nl.gate_v == {}


def test_ignored_model_parameters_and_zero_lambda_are_accepted():
    text = "t\nVg g 0 2\nVd d 0 1\nM1 d g 0 0 n AD=1p PD=1u\n.model n NMOS(LEVEL=1, KP=1m, VTO=0.6, LAMBDA=0, CGSO=1p, IS=1e-14)\n"
    nl = parse_netlist(text)
    assert nl.device.s_a_per_v2[0, 0] == 1e-3 and nl.device.vt_v[0, 0] == 0.6


def test_read_netlist_reads_a_file(tmp_path):
    path = tmp_path / "div.cir"
    path.write_text(DIVIDER)
    nl = read_netlist(path)
    assert nl.source == str(path) and nl.network.n_edges == 2


def test_a_binary_file_is_a_netlist_error(tmp_path):
    path = tmp_path / "x.cir"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(NetlistError, match="x.cir: not a text file"):
        read_netlist(path)


# -- errors: each names the file, the line and the offending text ---------------------------

BAD = [
    ("t\nV1 a 0 1\nL1 a 0 1m\n", 3, "unsupported inductor L1", "L1 a 0 1m"),
    ("t\nV1 a 0 1\nR1 a 0\n", 3, "R1 needs two nodes and a resistance", "R1 a 0"),
    ("t\nV1 a 0 1\nR1 a 0 abc\n", 3, "resistance 'abc' is not a number", "R1 a 0 abc"),
    ("t\nV1 a 0 1\nR1 a 0 -1k\n", 3, "resistance must be positive", "R1 a 0 -1k"),
    ("t\nV1 a 0 1\nR1 a A 1k\n", 3, "R1 connects node a to itself", "R1 a A 1k"),
    ("t\nV1 a 0 1\nR1 a 0 1k\nr1 a 0 2k\n", 4, "element r1 defined twice (first on line 3)", "r1 a 0 2k"),
    ("t\nV1 a 0 1\nR1 a 0 1k tc3=1\n", 3, "unsupported parameter tc3", "R1 a 0 1k tc3=1"),
    ("t\nV1 a 0 1\nR1 a 0 {rval}\n", 3, "unknown parameter rval", "R1 a 0 {rval}"),
    ("t\n+ R1 a 0 1k\n", 2, "continuation line with nothing to continue", "+ R1 a 0 1k"),
    ("t\nV1 a 0 1\nR1 a\n+ b\n+ bad\n", 3, "resistance 'bad' is not a number", "R1 a b bad"),
    ("t\nV1 a 0 1\nVg g 0 2\nM1 a g 0 0\n", 4, "M1 needs drain, gate, source and bulk", "M1 a g 0 0"),
    ("t\nV1 a 0 1\nVg g 0 2\nM1 a g 0 0 nx\n", 4, "no .model named nx", "M1 a g 0 0 nx"),
    ("t\nV1 a 0 1\nVg g 0 2\nM1 a g 0 0 p\n.model p PMOS\n", 4, "only NMOS", "M1 a g 0 0 p"),
    ("t\nV1 a 0 1\nVg g 0 2\nM1 a g 0 0 n W=0\n.model n NMOS\n", 4, "W must be positive", "W=0"),
    ("t\nV1 a 0 1\nVg g 0 2\nM1 a g 0 0 n\n.model n NMOS (LEVEL=3)\n", 5, "only LEVEL=1", "LEVEL=3"),
    ("t\nV1 a 0 1\nVg g 0 2\nM1 a g 0 0 n\n.model n NMOS (GAMMA=0.4)\n", 5, "GAMMA=0.4 is not accepted (the body effect", ".model n"),
    ("t\nV1 a 0 1\nVg g 0 2\nM1 a g 0 0 n\n.model n NMOS (TOX=1e-8)\n", 5, "unsupported model parameter TOX", "TOX"),
    ("t\nV1 a 0 1\nM1 a g 0 0 n\n.model n NMOS\n", 3, "gate node g, the gate of M1, is not held", "M1 a g 0 0 n"),
    ("t\nV1 a 0 1\nVg g 0 2\nM1 a g b 0 n\nR1 b c 1k\nM2 c b 0 0 n\n.model n NMOS\n", 6, "network node b, the gate of M2", "M2 c b 0 0 n"),
    ("t\nV1 a 0 1\nV2 b a 0.5\nR1 a b 1k\nR2 b 0 1k\n", 3, "V2 sits between network nodes b and a", "V2 b a 0.5"),
    ("t\nV1 a 0 1\nV2 a 0 2\nR1 a 0 1k\n", 3, "V2 closes a loop of voltage sources", "V2 a 0 2"),
    ("t\nVg g x 1\nR1 a 0 1k\nM1 a g 0 0 n\n.model n NMOS\n", 2, "neither is held at a fixed voltage", "Vg g x 1"),
    ("t\nV1 a 0 PULSE(0 1 0 1n)\nR1 a 0 1k\n", 2, "transient waveform but no DC value", "V1 a 0"),
    ("t\nV1 a 0 DC\nR1 a 0 1k\n", 2, "DC needs a value", "V1 a 0 DC"),
    ("t\nV1 a 0 1 foo\nR1 a 0 1k\n", 2, "unexpected 'foo' in voltage source V1", "V1 a 0 1 foo"),
    ("t\nV1 a 0 1\nR1 a 0 1k\n.control\nop\n", 4, ".control block without .endc", ".control"),
    ("t\nV1 a 0 1\n.include no_such_models.lib\n", 3, "cannot read included file no_such_models.lib", ".include no_such_models.lib"),
    ("t\nV1 a 0 1\n.subckt cell a b\n", 3, ".subckt without .ends", ".subckt cell a b"),
    ("t\nV1 a 0 1\n.param r\n", 3, ".param needs name=value", ".param"),
    ("t\nV1 a 0 1\n.frobnicate\n", 3, "unknown control card .frobnicate", ".frobnicate"),
    ("t\nV1 a 0 1\nX1 a 0 cell\n", 3, "no .subckt named cell", "X1 a 0 cell"),
    ("", 1, "empty netlist", ""),
]


@pytest.mark.parametrize("text, line, problem, shown", BAD, ids=[b[2][:40] for b in BAD])
def test_malformed_netlist_names_file_line_and_text(text, line, problem, shown):
    with pytest.raises(NetlistError) as info:
        parse_netlist(text, "bad.cir")
    err = info.value
    assert err.line == line
    assert str(err).startswith(f"bad.cir, line {line}: ")
    assert problem in str(err)
    assert shown in str(err)
    assert "\n" not in str(err)


def test_netlist_without_elements_is_an_error():
    with pytest.raises(NetlistError, match="^bad.cir: no R, M or V elements$"):
        parse_netlist("just a title\n* and a comment\n.op\n", "bad.cir")


NODE_0 = "* twinrig: node 0\n"


@pytest.mark.parametrize(
    "notes, problem",
    [
        ("* twinrig: vertex a\n", "unknown twinrig annotation 'vertex'"),
        ("* twinrig: node a colour=1\n" + NODE_0, "unknown node annotation field colour"),
        ("* twinrig: node a role=\"boss\"\n" + NODE_0, "unknown role 'boss'"),
        ("* twinrig: node a role=\"ground\"\n" + NODE_0, "the ground node is SPICE's node 0"),
        ("* twinrig: node a role=\"source\" role\n" + NODE_0, "expected key=value at 'role'"),
        ("* twinrig: node a name=\n" + NODE_0, "bad value for name"),
        ("* twinrig: node a position=[1]\n" + NODE_0, "position must be a pair of numbers"),
        ("* twinrig: edge R9 name=\"x\"\n", "annotated edge R9 is not an R or M element"),
        ("* twinrig: edge R1 conductance_s=\"big\"\n", "conductance_s must be a number"),
    ],
)
def test_malformed_annotation_names_its_line(notes, problem):
    with pytest.raises(NetlistError) as info:
        parse_netlist(f"t\n{notes}V1 a 0 1\nR1 a 0 1k\n", "bad.cir")
    assert info.value.line == 2 and problem in str(info.value)


def test_edge_terminal_left_out_of_node_annotations_is_an_error():
    with pytest.raises(NetlistError) as info:
        parse_netlist(f"t\n{NODE_0}V1 a 0 1\nR1 a 0 1k\n", "bad.cir")
    assert info.value.line == 4 and "node a is missing from the twinrig node annotations" in str(info.value)


def test_an_ordinary_comment_mentioning_twinrig_is_just_a_comment():
    assert parse_netlist("t\n* twinrig wrote this\nV1 a 0 1\nR1 a 0 1k\n").network.n_edges == 1


def test_netlist_error_is_a_value_error():
    assert issubclass(NetlistError, ValueError)


# -- writing --------------------------------------------------------------------------------


def lattice_netlist(device=None, state=None):
    net = gen2_lattice()
    device = device or Mosfet(net.n_edges, subthreshold_v=None)
    state = np.linspace(2.0, 4.5, net.n_edges) if state is None else state
    fixed = {"r0c0": 0.2, "r2c2": 0.3, "r0c2": 0.45, "r2c0": 0.0}
    return net, device, state, fixed, export_netlist(net, device, state, fixed)


def test_export_writes_a_runnable_deck():
    *_, text = lattice_netlist()
    lines = text.splitlines()
    assert lines[0] == "gen2-lattice"
    assert ".op" in lines and lines[-1] == ".end"
    assert any(line.startswith(".options reltol=1e-9") for line in lines)
    assert "set numdgt=15" in lines
    assert any(line.startswith(".model nmos1 NMOS (LEVEL=1 KP=0.00085 VTO=0.7)") for line in lines)


def test_export_writes_the_ground_as_node_0_and_keeps_its_name():
    net, device, state, fixed, text = lattice_netlist()
    assert "* twinrig: node 0 name=\"r1c3\" role=\"ground\"" in text
    nl = parse_netlist(text)
    assert nl.ground == "r1c3" and nl.network.nodes == net.nodes


def test_lattice_round_trips_with_roles_positions_and_state():
    net, device, state, fixed, text = lattice_netlist()
    nl = parse_netlist(text)
    assert_same_network(nl.network, net)
    assert nl.state.tolist() == state.tolist()
    assert nl.fixed_v == fixed


def test_digipot_is_written_as_its_resistance_at_the_tap():
    net = from_edge_list([("in", "mid"), ("mid", "gnd")], {"in": "source", "gnd": "ground"})
    dev = Digipot(2)
    taps = np.array([0.0, 99.0])
    nl = parse_netlist(export_netlist(net, dev, taps, {"in": 0.4}))
    assert isinstance(nl.device, Resistor)
    assert nl.state == pytest.approx(dev.conductance(taps), rel=1e-15)
    assert nl.solve()["mid"] == pytest.approx(0.4 * 40.0 / (32e3 + 40.0), rel=1e-13)


def test_twin_index_selects_the_clamped_twins_parameters():
    net = from_edge_list([("in", "gnd")], {"in": "source", "gnd": "ground"})
    dev = Mosfet(1, s_a_per_v2=[[8e-4], [9e-4]], vt_v=[[0.6], [0.7]], subthreshold_v=None)
    free = parse_netlist(export_netlist(net, dev, [3.0], {"in": 0.1}, twin=0)).device
    clamped = parse_netlist(export_netlist(net, dev, [3.0], {"in": 0.1}, twin=1)).device
    assert (free.s_a_per_v2[0, 0], free.vt_v[0, 0]) == (8e-4, 0.6)
    assert (clamped.s_a_per_v2[0, 0], clamped.vt_v[0, 0]) == (9e-4, 0.7)


def test_subthreshold_model_is_exported_with_a_note():
    net, device, state, fixed, text = lattice_netlist(device=Mosfet(32))
    assert "subthreshold current has no level-1 equivalent" in text


def test_names_that_spice_cannot_hold_are_renamed_and_annotated():
    net = Network(("a b", "A", "a", "gnd", "0"), [[0, 1], [1, 2], [2, 3], [3, 4]],
                  ("source", "hidden", "hidden", "hidden", "ground"), ("e 0", "R1", "m2", "Rx"))
    assert spice_node_names(net) == ["_n0", "A", "_n2", "_n3", "0"]
    nl = parse_netlist(export_netlist(net, Resistor(4), [1e-3, 2e-3, 3e-3, 4e-3], {"a b": 0.1}))
    assert_same_network(nl.network, net)


@pytest.mark.parametrize(
    "fixed, state, problem",
    [
        ({}, [1e-3], "no voltage given for source node(s) in"),
        ({"in": 0.1, "nowhere": 0.2}, [1e-3], "'nowhere', which is not a node"),
        ({"in": 0.1, "gnd": 0.2}, [1e-3], "ground node gnd is held at 0 V"),
        ({"in": 0.1}, [0.0], "conductance 0 S"),
        ({"in": 0.1}, [1e-3, 1e-3], "state of shape (2,)"),
    ],
)
def test_export_refuses_what_it_cannot_write(fixed, state, problem):
    net = from_edge_list([("in", "gnd")], {"in": "source", "gnd": "ground"})
    with pytest.raises(NetlistError, match="network 'network'") as info:
        export_netlist(net, Resistor(1, state_min=0.0), state, fixed)
    assert problem in str(info.value)


def test_write_netlist_writes_a_file_that_reads_back(tmp_path):
    net, device, state, fixed, text = lattice_netlist()
    write_netlist(tmp_path / "lattice.cir", net, device, state, fixed)
    assert (tmp_path / "lattice.cir").read_text() == text


def test_conductance_that_1_over_r_cannot_give_back_is_kept_in_an_annotation():
    net = from_edge_list([("in", "gnd")], {"in": "source", "gnd": "ground"}, ["e0"])
    g = 1.9e-3  # no float R has 1 / R == g exactly
    text = export_netlist(net, Resistor(1), [g], {"in": 0.1})
    assert "* twinrig: edge Re0 name=\"e0\" conductance_s=0.0019" in text
    assert parse_netlist(text).state[0] == g


def test_resistance_edited_against_its_annotation_is_an_error():
    net = from_edge_list([("in", "gnd")], {"in": "source", "gnd": "ground"}, ["e0"])
    lines = export_netlist(net, Resistor(1), [1.9e-3], {"in": 0.1}).splitlines()
    note = next(i for i, ln in enumerate(lines) if "conductance_s" in ln)
    edited = [("Re0 in 0 1k" if ln.startswith("Re0 ") else ln) for ln in lines]
    with pytest.raises(NetlistError) as info:
        parse_netlist("\n".join(edited))
    assert info.value.line == note + 1
    assert "disagrees with the element's 1/R = 0.001 S" in str(info.value)


# -- export -> import is the identity (property) --------------------------------------------

NAME_CHARS = "abcXYZ019_+- .\"'\\;$*\u00b5"


@st.composite
def exported_networks(draw):
    n = draw(st.integers(2, 7))
    names = draw(st.lists(st.text(NAME_CHARS, min_size=1, max_size=5), min_size=n, max_size=n, unique=True))
    m = draw(st.integers(0, 10))
    pairs = []
    for _ in range(m):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(0, n - 2))
        pairs.append([a, b if b < a else b + 1])
    edge_names = draw(st.lists(st.text(NAME_CHARS, min_size=1, max_size=5), min_size=m, max_size=m, unique=True))
    roles = draw(st.lists(st.sampled_from(["source", "target", "hidden"]), min_size=n, max_size=n))
    if draw(st.booleans()):
        roles[draw(st.integers(0, n - 1))] = "ground"
    positions = None
    if draw(st.booleans()):
        positions = draw(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=n, max_size=n))
    title = draw(st.text("abcdefgh01-_ ", min_size=1, max_size=12).map(str.strip).filter(bool))
    net = Network(tuple(names), np.array(pairs, dtype=np.int64).reshape(-1, 2), tuple(roles),
                  tuple(edge_names), title, positions)
    kinds = draw(st.lists(st.sampled_from(["r", "m"]), min_size=m, max_size=m))
    g = [draw(st.floats(1e-6, 1.0)) for _ in range(m)]
    s = [draw(st.floats(1e-5, 1e-2)) for _ in range(m)]
    vt = [draw(st.floats(0.3, 0.9)) for _ in range(m)]
    vg = [draw(st.floats(0.0, 5.5)) for _ in range(m)]
    r_idx = [j for j in range(m) if kinds[j] == "r"]
    m_idx = [j for j in range(m) if kinds[j] == "m"]
    mos = Mosfet(len(m_idx), s_a_per_v2=[s[j] for j in m_idx], vt_v=[vt[j] for j in m_idx], subthreshold_v=None)
    if not m_idx:
        device = Resistor(m)
    elif not r_idx:
        device = mos
    else:
        device = MixedEdges(m, parts=((Resistor(len(r_idx)), r_idx), (mos, m_idx)))
    state = np.array([g[j] if kinds[j] == "r" else vg[j] for j in range(m)])
    fixed = {}
    for name, role in zip(names, roles):
        if role == "source" or (role == "target" and draw(st.booleans())):
            fixed[name] = draw(st.floats(-1.0, 1.0))
    return net, device, state, fixed


def assert_same_network(got: Network, want: Network):
    assert got.name == want.name
    assert got.nodes == want.nodes
    assert got.edges.tolist() == want.edges.tolist()
    assert got.roles == want.roles
    assert got.edge_names == want.edge_names
    if want.positions is None:
        assert got.positions is None
    else:
        assert got.positions.tolist() == want.positions.tolist()


def mosfet_params(device, state):
    parts = device.parts if isinstance(device, MixedEdges) else ((device, np.arange(device.n_edges)),)
    out = {}
    for dev, idx in parts:
        if isinstance(dev, Mosfet):
            for k, j in enumerate(idx):
                out[int(j)] = (dev.s_a_per_v2[0, k], dev.vt_v[0, k])
    return out


@given(exported_networks())
@settings(max_examples=150, deadline=None)
def test_export_then_import_gives_back_network_state_and_voltages(case):
    net, device, state, fixed = case
    nl = parse_netlist(export_netlist(net, device, state, fixed))
    assert_same_network(nl.network, net)
    assert nl.state.tolist() == state.tolist()
    assert nl.fixed_v == {k: v for k, v in fixed.items() if net.roles[net.index(k)] is not Role.GROUND}
    assert mosfet_params(nl.device, nl.state) == mosfet_params(device, state)
    assert nl.network.ground == net.ground
