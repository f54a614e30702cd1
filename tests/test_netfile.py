"""The TOML network file: explicit networks, topologies, roles, devices, state, errors, round trip."""

import tomllib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.sim.edges import Digipot, MixedEdges, Mosfet, Resistor
from instruments.sim.netfile import (
    NetworkFileError,
    dumps_network_file,
    load_network_file,
    loads_network_file,
    save_network_file,
)
from instruments.sim.network import Network, Role, gen2_lattice, random_connected, square_grid

DIVIDER = """
name = "divider"
nodes = ["in", "mid", "out", "gnd"]
edges = [["in", "mid"], ["mid", "out"], ["out", "gnd"]]
edge_names = ["top", "middle", "bottom"]

[roles]
sources = ["in"]
targets = ["out"]
ground = "gnd"

[positions]
in = [0.0, 0.0]
mid = [1, 0]
out = [2.0, 0.0]
gnd = [3.0, 0.0]

[device]
kind = "resistor"
state_min = 1e-5
initial_state = [1e-3, 2e-3, 3e-3]
"""


def read(text: str):
    return loads_network_file(text, "net.toml")


# -- reading --------------------------------------------------------------------------------


def test_explicit_network_keeps_its_order_names_roles_and_positions():
    f = read(DIVIDER)
    net = f.network
    assert net.name == "divider"
    assert net.nodes == ("in", "mid", "out", "gnd")
    assert net.edges.tolist() == [[0, 1], [1, 2], [2, 3]]
    assert net.edge_names == ("top", "middle", "bottom")
    assert net.roles == (Role.SOURCE, Role.HIDDEN, Role.TARGET, Role.GROUND)
    assert net.positions.tolist() == [[0, 0], [1, 0], [2, 0], [3, 0]]
    assert isinstance(f.device, Resistor) and f.device.state_min == 1e-5
    assert f.state.tolist() == [1e-3, 2e-3, 3e-3]
    assert f.source == "net.toml"


def test_nodes_default_to_order_of_first_mention_and_all_hidden():
    f = read('edges = [["b", "a"], ["a", "c"]]')
    assert f.network.nodes == ("b", "a", "c")
    assert set(f.network.roles) == {Role.HIDDEN}
    assert f.network.edge_names == ("e0", "e1")
    assert f.device is None and f.state is None


def test_a_listed_node_may_have_no_edges():
    f = read('nodes = ["a", "b", "lone"]\nedges = [["a", "b"]]')
    assert f.network.nodes == ("a", "b", "lone")


def test_gen2_lattice_topology_keeps_its_roles_unless_given():
    f = read('[topology]\nkind = "gen2_lattice"')
    assert f.network.describe() == gen2_lattice().describe()
    f = read('name = "mine"\n[topology]\nkind = "gen2_lattice"\n[roles]\nsources = ["r0c0"]\nground = "r3c3"')
    assert f.network.name == "mine"
    assert f.network.sources.tolist() == [0] and f.network.targets.size == 0
    assert f.network.nodes[f.network.ground] == "r3c3"


def test_square_grid_and_random_topologies():
    f = read('[topology]\nkind = "square_grid"\nrows = 3\ncols = 5\nperiodic = true')
    want = square_grid(3, 5, periodic=True)
    assert f.network.nodes == want.nodes and f.network.edges.tolist() == want.edges.tolist()
    assert f.network.positions.tolist() == want.positions.tolist()
    f = read('[topology]\nkind = "random_connected"\nn_nodes = 10\nn_edges = 15\nseed = 3')
    assert f.network.edges.tolist() == random_connected(10, 15, seed=3).edges.tolist()


def test_mosfet_device_with_per_twin_parameters_and_level1_law():
    f = read("""
edges = [["a", "b"], ["b", "c"]]
[device]
kind = "mosfet"
s_a_per_v2 = [[8e-4, 9e-4], [8.1e-4, 9.1e-4]]
vt_v = [0.6, 0.7]
subthreshold_v = false
update_bias = 0.001
initial_state = 2.5
""")
    dev = f.device
    assert isinstance(dev, Mosfet) and dev.subthreshold_v is None
    assert dev.s_a_per_v2.tolist() == [[8e-4, 9e-4], [8.1e-4, 9.1e-4]]
    assert dev.vt_v.tolist() == [[0.6, 0.7], [0.6, 0.7]]
    assert dev.update_bias.tolist() == [0.001, 0.001]
    assert f.state.tolist() == [2.5, 2.5]


def test_mosfet_defaults_are_the_gen2_lab_values():
    dev = read('edges = [["a", "b"]]\n[device]\nkind = "mosfet"').device
    assert (dev.s_a_per_v2[0, 0], dev.vt_v[0, 0], dev.subthreshold_v) == (8.5e-4, 0.7, 0.1)
    assert (dev.state_min, dev.state_max) == (1.0, 5.5)


def test_digipot_device_with_taps():
    f = read('edges = [["a", "b"]]\n[device]\nkind = "digipot"\nn_taps = 64\ninitial_state = [10]')
    assert isinstance(f.device, Digipot) and f.device.n_taps == 64
    assert f.state.tolist() == [10.0]


def test_mixed_device_gathers_parts_by_edge_name():
    f = read("""
edges = [["high", "out"], ["in", "out"], ["out", "low"]]
edge_names = ["fixed", "m1", "m2"]
[device]
kind = "mixed"
update_bias = [0.0, 0.01, 0.02]
[[device.parts]]
kind = "mosfet"
edges = ["m2", "m1"]
initial_state = [3.0, 2.5]
[[device.parts]]
kind = "resistor"
edges = ["fixed"]
initial_state = 2e-3
""")
    dev = f.device
    assert isinstance(dev, MixedEdges)
    assert [idx.tolist() for _, idx in dev.parts] == [[2, 1], [0]]
    assert f.state.tolist() == [2e-3, 2.5, 3.0]
    assert dev.update_bias.tolist() == [0.0, 0.01, 0.02]


def test_load_and_save_files(tmp_path):
    f = read(DIVIDER)
    save_network_file(tmp_path / "div.toml", f.network, f.device, f.state)
    g = load_network_file(tmp_path / "div.toml")
    assert g.source == str(tmp_path / "div.toml")
    assert g.network.nodes == f.network.nodes and g.state.tolist() == f.state.tolist()


def test_saved_file_is_readable_toml_with_one_edge_a_line():
    text = dumps_network_file(gen2_lattice(), Mosfet(32), np.full(32, 2.5))
    assert '    ["r0c0", "r0c1"],' in text.splitlines()
    assert "initial_state = 2.5" in text.splitlines()
    assert "edge_names" not in text  # the default names need no listing
    assert tomllib.loads(text)["roles"]["ground"] == "r1c3"


# -- errors: one message naming file, field and value ---------------------------------------

BAD = [
    ('edges = [["a", "b"]\n', "", "not valid TOML"),
    ('edges = [["a", "b"]]\ncolour = "red"', "colour", "unknown field"),
    ('nodes = ["a"]', "edges", "missing (give edges, or a [topology])"),
    ('edges = [["a", "b", "c"]]', "edges[0]", "expected a pair of node names (got ['a', 'b', 'c'])"),
    ('edges = [["a", "a"]]', "edges[0]", "edge joins node 'a' to itself"),
    ('nodes = ["a", "b"]\nedges = [["a", "x"]]', "edges[0]", "no node named 'x' in nodes"),
    ('nodes = ["a", "a"]\nedges = []', "nodes[1]", "node 'a' listed twice"),
    ('edges = [["a", "b"], ["b", "c"]]\nedge_names = ["x"]', "edge_names", "1 names for 2 edges"),
    ('edges = [["a", "b"], ["b", "c"]]\nedge_names = ["x", "x"]', "edge_names[1]", "edge name 'x' used twice"),
    ('edges = [["a", "b"]]\n[roles]\ntargets = ["z"]', "roles.targets[0]", "no node named 'z'"),
    ('edges = [["a", "b"]]\n[roles]\nsources = ["a"]\nground = "a"', "roles.ground", "already has the role source"),
    ('edges = [["a", "b"]]\n[roles]\nground = 3', "roles.ground", "Input should be a valid string (got 3)"),
    ('edges = [["a", "b"]]\n[positions]\na = [0, 0]', "positions", "no position for node 'b'"),
    ('edges = [["a", "b"]]\n[positions]\na = [0, 0]\nb = [1]', "positions.b", "expected a position [x, y] (got [1])"),
    ('[topology]\nkind = "square_grid"\nrows = 3', "topology.cols", "missing (a square_grid needs rows, cols)"),
    ('[topology]\nkind = "gen2_lattice"\nrows = 3', "topology.rows", "not a field of a gen2_lattice (got 3)"),
    ('[topology]\nkind = "hexagons"', "topology.kind", "'gen2_lattice', 'square_grid' or 'random_connected' (got 'hexagons')"),
    ('[topology]\nkind = "square_grid"\nrows = 1\ncols = 1', "topology", "grid needs at least 2 nodes"),
    ('edges = [["a", "b"]]\n[topology]\nkind = "gen2_lattice"', "edges", "give either [topology] or nodes/edges"),
    ('edges = [["a", "b"]]\n[device]\nkind = "memristor"', "device.kind", "unknown kind 'memristor'"),
    ('edges = [["a", "b"]]\n[device]\nvt_v = 0.7', "device.kind", "missing"),
    ('edges = [["a", "b"]]\n[device]\nkind = "mosfet"\nvt_v = "low"', "device.vt_v", "expected a number, a list of numbers"),
    ('edges = [["a", "b"]]\n[device]\nkind = "mosfet"\nvt_v = [0.6, 0.7]', "device.vt_v", "2 values given for 1 edges"),
    ('edges = [["a", "b"]]\n[device]\nkind = "mosfet"\nsubthreshold_v = true', "device.subthreshold_v", "volts per decade"),
    ('edges = [["a", "b"]]\n[device]\nkind = "mosfet"\nstate_max = "high"', "device.state_max", "valid number (got 'high')"),
    ('edges = [["a", "b"]]\n[device]\nkind = "mosfet"\ns_a_per_v2 = -1.0', "device.s_a_per_v2", "must be positive (got -1.0)"),
    ('edges = [["a", "b"]]\n[device]\nkind = "mosfet"\nsubthreshold_v = 0', "device.subthreshold_v", "(0.001..1) or false (got 0)"),
    ('edges = [["a", "b"]]\n[device]\nkind = "digipot"\nn_taps = 1', "device.n_taps", "greater than or equal to 2 (got 1)"),
    ('edges = [["a", "b"]]\n[device]\nkind = "digipot"\nr_min_ohm = 5e4', "device.r_min_ohm", "50000 Ohm is not below r_max_ohm 32000"),
    ('edges = [["a", "b"]]\n[device]\nkind = "mosfet"\ninitial_state = 9.0', "device.initial_state", "9 V, outside [1, 5.5]"),
    ('edges = [["a", "b"]]\n[device]\nkind = "digipot"\ninitial_state = 2.5', "device.initial_state", "not a whole number"),
    ('edges = [["a", "b"]]\n[device]\nkind = "resistor"\nwatts = 3', "device.watts", "unknown field"),
    ('edges = [["a", "b"]]\n[device]\nkind = "mixed"\nparts = [{kind = "resistor", edges = ["e9"]}]', "device.parts[0].edges[0]", "no edge named 'e9'"),
    ('edges = [["a", "b"], ["b", "c"]]\n[device]\nkind = "mixed"\nparts = [{kind = "resistor", edges = ["e0"]}]', "device.parts", "edge 'e1' is in no part"),
    ('edges = [["a", "b"]]\n[device]\nkind = "mixed"\nparts = [{kind = "resistor", edges = ["e0"], gain = "x"}]', "device.parts[0].gain", "expected a number"),
]


@pytest.mark.parametrize("text, field, problem", BAD, ids=[b[1] or "syntax" for b in BAD])
def test_malformed_file_names_file_field_and_value(text, field, problem):
    with pytest.raises(NetworkFileError) as info:
        read(text)
    err = info.value
    assert err.field == field
    assert str(err).startswith(f"net.toml: {field}: " if field else "net.toml: ")
    assert problem in str(err)
    assert "\n" not in str(err)


def test_toml_syntax_error_names_the_line():
    with pytest.raises(NetworkFileError, match=r"not valid TOML: .* \(at line 2, column \d+\)"):
        read('name = "x"\nedges = [["a", "b"]] oops\n')


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        load_network_file(tmp_path / "nowhere.toml")


# -- save -> load is the identity (property) ------------------------------------------------

NAMES = st.text("abcXYZ019_+- .\"'\\\u00b5", min_size=1, max_size=6)


@st.composite
def saved_networks(draw):
    n = draw(st.integers(2, 7))
    names = draw(st.lists(NAMES, min_size=n, max_size=n, unique=True))
    m = draw(st.integers(1, 9))  # a network without edges is refused (test_file_bounds.py)
    pairs = []
    for _ in range(m):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(0, n - 2))
        pairs.append([a, b if b < a else b + 1])
    edge_names = draw(st.lists(NAMES, min_size=m, max_size=m, unique=True))
    roles = draw(st.lists(st.sampled_from(["source", "target", "hidden"]), min_size=n, max_size=n))
    if draw(st.booleans()):
        roles[draw(st.integers(0, n - 1))] = "ground"
    positions = None
    if draw(st.booleans()):
        positions = draw(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=n, max_size=n))
    net = Network(tuple(names), np.array(pairs, dtype=np.int64).reshape(-1, 2), tuple(roles),
                  tuple(edge_names), draw(NAMES), positions)
    floats = st.floats(1e-6, 1.0)
    per_twin = st.one_of(floats, st.lists(floats, min_size=m, max_size=m),
                         st.lists(st.lists(floats, min_size=m, max_size=m), min_size=2, max_size=2))
    kind = draw(st.sampled_from(["resistor", "digipot", "mosfet", "mixed", "none"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bias = draw(st.one_of(st.just(0.0), st.floats(-1e-3, 1e-3)))

    def resistor(k):
        return Resistor(k, gain=np.broadcast_to(draw(per_twin), (2, m))[:, :k] if k == m else 1.0,
                        update_bias=bias), 10 ** rng.uniform(-6, 0, k)

    def mosfet(k):
        sub = draw(st.sampled_from([None, 0.1, 0.05]))
        s = np.broadcast_to(np.asarray(draw(per_twin)) * 1e-3, (2, m))[:, :k]
        return Mosfet(k, s_a_per_v2=s, vt_v=rng.uniform(0.5, 0.8, k), subthreshold_v=sub,
                      update_bias=bias), rng.uniform(1.0, 5.5, k)

    if kind == "none":
        return net, None, None
    if kind == "resistor":
        device, state = resistor(m)
    elif kind == "mosfet":
        device, state = mosfet(m)
    elif kind == "digipot":
        device = Digipot(m, n_taps=50, update_bias=bias)
        state = rng.integers(0, 50, m).astype(float)
    else:
        split = draw(st.integers(0, m))
        order = rng.permutation(m)
        (r, rs), (mo, ms) = resistor(split), mosfet(m - split)
        parts = tuple((d, i) for d, i in ((r, order[:split]), (mo, order[split:])) if i.size)
        device = MixedEdges(m, parts=parts, update_bias=rng.uniform(-1e-3, 1e-3, m))
        state = np.empty(m)
        state[order[:split]], state[order[split:]] = rs, ms
    return net, device, (state if draw(st.booleans()) else None)


def same_device(a, b):
    assert type(a) is type(b)
    assert a.update_bias.tolist() == b.update_bias.tolist()
    if isinstance(a, MixedEdges):
        assert len(a.parts) == len(b.parts)
        for (da, ia), (db, ib) in zip(a.parts, b.parts):
            assert ia.tolist() == ib.tolist()
            da.update_bias = db.update_bias  # a mixed device's bias is its own, not its parts'
            same_device(da, db)
        return
    for attr in ("gain", "s_a_per_v2", "vt_v"):
        if hasattr(a, attr):
            assert getattr(a, attr).tolist() == getattr(b, attr).tolist()
    for attr in ("subthreshold_v", "state_min", "state_max", "n_taps", "r_min_ohm", "r_max_ohm"):
        if hasattr(a, attr):
            assert getattr(a, attr) == getattr(b, attr)


@given(saved_networks())
@settings(max_examples=150, deadline=None)
def test_save_then_load_gives_back_network_device_and_state(case):
    net, device, state = case
    f = loads_network_file(dumps_network_file(net, device, state))
    got = f.network
    assert (got.name, got.nodes, got.roles, got.edge_names) == (net.name, net.nodes, net.roles, net.edge_names)
    assert got.edges.tolist() == net.edges.tolist()
    assert (got.positions is None) == (net.positions is None)
    if net.positions is not None:
        assert got.positions.tolist() == net.positions.tolist()
    if device is None:
        assert f.device is None
    else:
        same_device(f.device, device)
    if isinstance(device, MixedEdges) and not device.parts:
        return  # no edges: no part to hold a state
    assert (f.state is None) == (state is None)
    if state is not None:
        assert f.state.tolist() == state.tolist()
