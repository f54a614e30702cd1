"""ngspice as the referee: running it, reading its raw files, and agreeing with it to 1 uV."""

import struct

import numpy as np
import pytest

from instruments.sim import ngspice
from instruments.sim.circuit import solve_dc
from instruments.sim.edges import MixedEdges, Mosfet, Resistor, spread
from instruments.sim.netlist import export_netlist, parse_netlist
from instruments.sim.network import from_edge_list, gen2_lattice, random_connected

needs_ngspice = pytest.mark.skipif(not ngspice.available(), reason="ngspice is not on PATH")

UV = 1e-6

DIVIDER = """divider
V1 in 0 DC 0.4
R1 in mid 1k
R2 mid Out 1k
R3 Out 0 2k
.options reltol=1e-9 vntol=1e-12 abstol=1e-15
.op
.end
"""


# -- the deck, the raw file, a missing ngspice (no ngspice needed) --------------------------


def test_batch_deck_replaces_control_blocks_save_cards_and_end():
    deck = ngspice.batch_deck(
        "t\nR1 a 0 1k\n.save v(a)\n+ v(b)\n.control\nprint all\n.endc\n.end\nR2 b 0 1k\n", "x.raw"
    )
    assert deck.splitlines() == [
        "t", "R1 a 0 1k", ".control", "set filetype=binary", "op", "write x.raw all", "quit", ".endc", ".end",
    ]


RAW_HEADER = (
    "Title: divider\nDate: today\nPlotname: Operating Point\nFlags: real\nNo. Variables: 3\n"
    "No. Points: 1\nVariables:\n\t0\tv(in)\tvoltage\n\t1\tv(mid)\tvoltage\n\t2\ti(v1)\tcurrent\n"
)


def test_binary_raw_file_gives_every_float64_unrounded():
    values = (0.4, 0.1 + 0.2, -1.2e-4)
    data = (RAW_HEADER + "Binary:\n").encode() + struct.pack("=3d", *values)
    plot = ngspice.read_raw(data)
    assert plot["voltage"] == {"in": 0.4, "mid": 0.1 + 0.2}
    assert plot["current"] == {"i(v1)": -1.2e-4}


def test_ascii_raw_file_is_read_too():
    data = (RAW_HEADER + "Values:\n 0\t4.000000000000000e-01\n\t3.0e-01\n\t-1.2e-04\n").encode()
    assert ngspice.read_raw(data)["voltage"] == {"in": 0.4, "mid": 0.3}


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"Title: x\n", "without data"),
        (RAW_HEADER.replace("Operating Point", "DC transfer characteristic").encode() + b"Binary:\n", "not an operating point"),
        ((RAW_HEADER + "Binary:\n").encode() + struct.pack("=2d", 0.1, 0.2), "2 values for 3 variables"),
    ],
)
def test_broken_raw_file_is_an_ngspice_error(data, problem):
    with pytest.raises(ngspice.NgspiceError, match=problem):
        ngspice.read_raw(data)


def test_missing_ngspice_is_a_clear_error():
    with pytest.raises(ngspice.NgspiceError, match="ngspice not found on PATH"):
        ngspice.operating_point(DIVIDER, executable="twinrig-no-such-ngspice")
    assert not ngspice.available("twinrig-no-such-ngspice")


# -- running ngspice ------------------------------------------------------------------------


@pytest.mark.ngspice
@needs_ngspice
def test_operating_point_of_a_divider_at_full_precision():
    v = ngspice.operating_point(DIVIDER)
    assert v.keys() == {"in", "mid", "out", "0"}  # ngspice lower-cases node names
    assert v["mid"] == pytest.approx(0.3, abs=1e-15)
    assert v["out"] == pytest.approx(0.2, abs=1e-15)


@pytest.mark.ngspice
@needs_ngspice
@pytest.mark.parametrize(
    "netlist, complaint",
    [
        ("t\nV1 a 0 1\nM1 a a 0 0 nowhere\n.end\n", "could not find a valid modelname"),
        ("t\nV1 a 0 1\nR1 a 0 1k\nR2 f1 f2 1k\n.end\n", "singular matrix"),
    ],
    ids=["unknown-model", "floating-node"],
)
def test_ngspice_failure_is_an_error_quoting_it(netlist, complaint):
    with pytest.raises(ngspice.NgspiceError, match=complaint):
        ngspice.operating_point(netlist)


# -- agreement with the DC solver within 1 uV on every node ---------------------------------


def with_sources(net, rng, n_sources):
    pick = rng.choice(net.n_nodes, n_sources + 1, replace=False)
    net = net.with_roles(sources=pick[1:].tolist(), ground=int(pick[0]))
    fixed = {net.nodes[i]: float(rng.uniform(0.0, 1.0)) for i in net.sources}
    return net, fixed


def linear_case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 40))
    m = int(rng.integers(n, 3 * n))
    net, fixed = with_sources(random_connected(n, m, seed=seed), rng, int(rng.integers(1, 4)))
    return net, Resistor(m, state_min=0.0), 10 ** rng.uniform(-5, -2, m), fixed


def mosfet_devices(m, rng):
    return Mosfet(
        m, s_a_per_v2=spread(8.5e-4, m, 0.2, rng=rng)[0], vt_v=rng.uniform(0.6, 0.7, m), subthreshold_v=None,
    )


def mosfet_case(seed):
    # gates 2-5 V, sources 0-1 V: every edge conducts (overdrive >= 0.3 V), in triode or saturation
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 25))
    m = int(rng.integers(n, 2 * n))
    net, fixed = with_sources(random_connected(n, m, seed=seed), rng, int(rng.integers(1, 4)))
    return net, mosfet_devices(m, rng), rng.uniform(2.0, 5.0, m), fixed


def mixed_case(seed):
    rng = np.random.default_rng(seed)
    net, fixed = with_sources(random_connected(20, 45, seed=seed), rng, 3)
    r_idx, m_idx = np.array_split(rng.permutation(45), [15])
    device = MixedEdges(45, parts=((Resistor(15, state_min=0.0), r_idx), (mosfet_devices(30, rng), m_idx)))
    state = np.empty(45)
    state[r_idx] = 10 ** rng.uniform(-4, -2.5, 15)
    state[m_idx] = rng.uniform(2.0, 5.0, 30)
    return net, device, state, fixed


def lattice_case(seed):
    rng = np.random.default_rng(seed)
    net = gen2_lattice()
    fixed = dict(zip(["r0c0", "r2c2", "r0c2", "r2c0"], [0.2, 0.35, 0.45, 0.0]))
    return net, mosfet_devices(net.n_edges, rng), rng.uniform(1.5, 2.8, net.n_edges), fixed


CASES = [
    ("linear", linear_case, 1), ("linear", linear_case, 2), ("linear", linear_case, 3),
    ("mosfet", mosfet_case, 4), ("mosfet", mosfet_case, 5), ("mosfet", mosfet_case, 6),
    ("mixed", mixed_case, 7), ("gen2-lattice", lattice_case, 8),
]


def worst_difference(net, device, state, fixed):
    """Largest |ours - ngspice| over every node (V), ngspice run on the exported netlist."""
    ours = solve_dc(net, device, state, {net.nodes[net.ground]: 0.0, **fixed})
    text = export_netlist(net, device, state, fixed)
    theirs = parse_netlist(text).named(ngspice.operating_point(text))
    assert list(theirs)[: net.n_nodes] == list(net.nodes)
    return ours, max(abs(ours[i] - theirs[name]) for i, name in enumerate(net.nodes))


@pytest.mark.ngspice
@needs_ngspice
@pytest.mark.parametrize("kind, make, seed", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_dc_solver_agrees_with_ngspice_within_1uV(kind, make, seed):
    _, worst = worst_difference(*make(seed))
    assert worst <= UV, f"{kind}: worst node differs by {worst:.3e} V"


@pytest.mark.ngspice
@needs_ngspice
def test_saturated_edges_agree_with_ngspice_within_1uV():
    # 1 V through low-gate MOSFETs into resistors to ground: two of three edges saturate
    net = from_edge_list(
        [("in", "a"), ("a", "gnd"), ("a", "b"), ("b", "gnd"), ("in", "b")], {"in": "source", "gnd": "ground"}
    )
    mos = [0, 2, 4]
    device = MixedEdges(5, parts=((Mosfet(3, subthreshold_v=None), mos), (Resistor(2, state_min=0.0), [1, 3])))
    state = np.array([1.6, 1 / 2e3, 1.9, 1 / 5e3, 1.2])
    v, worst = worst_difference(net, device, state, {"in": 1.0})
    va, vb = v[net.edges[mos, 0]], v[net.edges[mos, 1]]
    overdrive = state[mos] - 0.7 - np.minimum(va, vb)
    assert np.all(overdrive > 0) and np.sum(overdrive < np.abs(va - vb)) == 2
    assert worst <= UV
