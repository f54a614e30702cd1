"""Network topology: validation, the built-in topologies, roles and the incidence matrix."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from instruments.sim.network import (
    Network,
    NetworkError,
    Role,
    from_edge_list,
    gen2_lattice,
    random_connected,
    square_grid,
)


def hidden(n: int) -> tuple[Role, ...]:
    return (Role.HIDDEN,) * n


def degrees(net: Network) -> np.ndarray:
    return np.bincount(net.edges.ravel(), minlength=net.n_nodes)


def n_components(net: Network) -> int:
    e = net.edges
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(net.n_nodes,) * 2)
    return connected_components(adj, directed=False)[0]


def pair_set(net: Network) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in net.edges.tolist()}


# -- validation -----------------------------------------------------------------------------


def test_valid_network_keeps_its_parts():
    net = Network(("a", "b", "c"), [[0, 1], [1, 2]], ("source", "hidden", "ground"), name="tiny")
    assert net.nodes == ("a", "b", "c")
    assert net.edges.dtype == np.int64 and net.edges.shape == (2, 2)
    assert net.roles == (Role.SOURCE, Role.HIDDEN, Role.GROUND)
    assert net.edge_names == ("e0", "e1")
    assert (net.n_nodes, net.n_edges) == (3, 2)
    assert net.sources.tolist() == [0] and net.hidden.tolist() == [1] and net.ground == 2
    assert net.targets.size == 0


def test_edges_are_read_only_and_not_the_callers_array():
    given_edges = np.array([[0, 1], [1, 2]], dtype=np.int64)
    net = Network(("a", "b", "c"), given_edges, hidden(3))
    with pytest.raises(ValueError):
        net.edges[0, 0] = 2
    given_edges[0, 0] = 2  # the caller's array stays writable and the network unaffected
    assert net.edges[0, 0] == 0


def test_duplicate_node_names_are_named():
    with pytest.raises(NetworkError, match="duplicate node names: a"):
        Network(("a", "b", "a"), [[0, 1], [1, 2]], hidden(3))


def test_duplicate_edge_names_are_named():
    with pytest.raises(NetworkError, match="duplicate edge names: x"):
        Network(("a", "b", "c"), [[0, 1], [1, 2]], hidden(3), edge_names=("x", "x"))


@pytest.mark.parametrize("bad", [[[0, 3]], [[-1, 1]]])
def test_edge_index_outside_the_nodes_is_rejected(bad):
    with pytest.raises(NetworkError, match=r"edge e0 refers to node index .* outside 0\.\.2"):
        Network(("a", "b", "c"), bad, hidden(3))


@pytest.mark.parametrize("bad", [[[0, 1, 2]], [0, 1, 2], [[0.5, 1.0]]])
def test_edges_that_are_not_index_pairs_are_rejected(bad):
    with pytest.raises(NetworkError, match="edges must"):
        Network(("a", "b", "c"), bad, hidden(3))


def test_whole_float_indices_are_accepted():
    net = Network(("a", "b"), [[0.0, 1.0]], hidden(2))
    assert net.edges.tolist() == [[0, 1]]


def test_self_loop_is_rejected_by_name():
    with pytest.raises(NetworkError, match="edge e1 joins node b to itself"):
        Network(("a", "b"), [[0, 1], [1, 1]], hidden(2))


def test_more_than_one_ground_is_rejected():
    with pytest.raises(NetworkError, match="more than one ground node: a, c"):
        Network(("a", "b", "c"), [[0, 1], [1, 2]], ("ground", "hidden", "ground"))


def test_role_count_must_match_node_count():
    with pytest.raises(NetworkError, match="2 roles given for 3 nodes"):
        Network(("a", "b", "c"), [[0, 1], [1, 2]], hidden(2))
    with pytest.raises(NetworkError, match="4 roles given for 3 nodes"):
        Network(("a", "b", "c"), [[0, 1], [1, 2]], hidden(4))


def test_edge_name_count_must_match_edge_count():
    with pytest.raises(NetworkError, match="1 edge names given for 2 edges"):
        Network(("a", "b", "c"), [[0, 1], [1, 2]], hidden(3), edge_names=("x",))


def test_unknown_role_names_the_node():
    with pytest.raises(NetworkError, match="node b: unknown role 'output'"):
        Network(("a", "b"), [[0, 1]], ("source", "output"))


def test_positions_must_be_one_pair_per_node():
    with pytest.raises(NetworkError, match=r"positions must have shape \(2, 2\)"):
        Network(("a", "b"), [[0, 1]], hidden(2), positions=[[0, 0], [1, 0], [2, 0]])


def test_network_without_edges_is_allowed():
    net = Network(("a",), [], hidden(1))
    assert net.edges.shape == (0, 2)
    assert net.incidence().shape == (0, 1)


def test_index_by_name():
    net = square_grid(2, 3)
    assert net.index("r1c2") == 5
    with pytest.raises(NetworkError, match="no node named 'r9c9'"):
        net.index("r9c9")


# -- parallel edges ---------------------------------------------------------------------------


def test_parallel_edges_are_legal_in_either_direction():
    net = Network(("a", "b"), [[0, 1], [0, 1], [1, 0]], ("source", "ground"))
    assert net.n_edges == 3
    assert degrees(net).tolist() == [3, 3]
    # each parallel edge keeps its own row in the incidence matrix
    assert net.incidence().toarray().tolist() == [[1, -1], [1, -1], [-1, 1]]


def test_from_edge_list_keeps_parallel_edges():
    net = from_edge_list([("a", "b"), ("a", "b")], edge_names=("r1", "r2"))
    assert net.edges.tolist() == [[0, 1], [0, 1]]
    assert net.edge_names == ("r1", "r2")


# -- gen2 lattice -----------------------------------------------------------------------------


def test_gen2_lattice_is_the_periodic_4x4_lattice():
    net = gen2_lattice()
    assert (net.n_nodes, net.n_edges) == (16, 32)
    assert np.all(degrees(net) == 4)
    assert len(pair_set(net)) == 32  # no parallel edges
    # every edge joins nearest neighbours on the torus
    for a, b in net.edges.tolist():
        (ra, ca), (rb, cb) = divmod(a, 4), divmod(b, 4)
        dr, dc = (ra - rb) % 4, (ca - cb) % 4
        assert sorted([dr, dc]) in ([0, 1], [0, 3])


def test_gen2_lattice_roles():
    net = gen2_lattice()
    names = lambda idx: {net.nodes[i] for i in idx}  # noqa: E731
    assert names(net.sources) == {"r0c0", "r2c2", "r0c2", "r2c0"}
    assert names(net.targets) == {"r1c1", "r3c3"}
    assert net.nodes[net.ground] == "r1c3"
    assert net.hidden.size == 16 - 4 - 2 - 1
    assert net.describe() == "gen2-lattice: 16 nodes, 32 edges, 4 sources, 2 targets, ground r1c3"


# -- square grids -----------------------------------------------------------------------------


@given(st.integers(1, 12), st.integers(1, 12))
@settings(max_examples=40, deadline=None)
def test_open_grid_edge_count_and_neighbours(rows, cols):
    if rows * cols < 2:
        with pytest.raises(NetworkError):
            square_grid(rows, cols)
        return
    net = square_grid(rows, cols)
    assert net.n_nodes == rows * cols
    assert net.n_edges == rows * (cols - 1) + cols * (rows - 1)
    assert len(pair_set(net)) == net.n_edges
    assert n_components(net) == 1
    for a, b in net.edges.tolist():
        (ra, ca), (rb, cb) = divmod(a, cols), divmod(b, cols)
        assert abs(ra - rb) + abs(ca - cb) == 1
    assert net.nodes[cols * (rows - 1) + cols - 1] == f"r{rows - 1}c{cols - 1}"
    assert all(r is Role.HIDDEN for r in net.roles)


@given(st.integers(3, 12), st.integers(3, 12))
@settings(max_examples=30, deadline=None)
def test_periodic_grid_is_a_4_regular_torus(rows, cols):
    net = square_grid(rows, cols, periodic=True)
    assert net.n_edges == 2 * rows * cols
    assert len(pair_set(net)) == net.n_edges
    assert np.all(degrees(net) == 4)
    for a, b in net.edges.tolist():
        (ra, ca), (rb, cb) = divmod(a, cols), divmod(b, cols)
        dr, dc = (ra - rb) % rows, (ca - cb) % cols
        assert min(dr, rows - dr) + min(dc, cols - dc) == 1  # neighbours on the torus


@pytest.mark.parametrize("rows, cols", [(2, 4), (4, 2), (2, 2)])
def test_periodic_grid_needs_three_nodes_per_direction(rows, cols):
    with pytest.raises(NetworkError, match="at least 3 x 3"):
        square_grid(rows, cols, periodic=True)


def test_grid_positions_follow_rows_and_columns():
    net = square_grid(2, 3)
    assert net.positions.shape == (6, 2)
    assert net.positions[net.index("r1c2")].tolist() == [2.0, -1.0]


# -- random connected graphs ------------------------------------------------------------------


@st.composite
def graph_sizes(draw):
    n = draw(st.integers(2, 40))
    m = draw(st.integers(n - 1, n * (n - 1) // 2))
    return n, m, draw(st.integers(0, 2**32 - 1))


@given(graph_sizes())
@settings(max_examples=60, deadline=None)
def test_random_connected_is_connected_simple_with_exact_edge_count(size):
    n, m, seed = size
    net = random_connected(n, m, seed=seed)
    assert (net.n_nodes, net.n_edges) == (n, m)
    assert n_components(net) == 1
    assert len(pair_set(net)) == m  # no parallel edges
    assert np.all(net.edges[:, 0] != net.edges[:, 1])


@given(graph_sizes())
@settings(max_examples=20, deadline=None)
def test_random_connected_is_reproducible_by_seed(size):
    n, m, seed = size
    assert np.array_equal(random_connected(n, m, seed=seed).edges, random_connected(n, m, seed=seed).edges)


def test_random_connected_differs_between_seeds():
    assert not np.array_equal(random_connected(30, 60, seed=1).edges, random_connected(30, 60, seed=2).edges)


@pytest.mark.parametrize("n, m", [(1, 0), (5, 3), (5, 11), (0, 0)])
def test_random_connected_rejects_impossible_sizes(n, m):
    with pytest.raises(NetworkError, match="connected simple graph"):
        random_connected(n, m)


def test_random_connected_complete_graph():
    net = random_connected(7, 21, seed=3)
    assert pair_set(net) == {(a, b) for a in range(7) for b in range(a + 1, 7)}


# -- roles -----------------------------------------------------------------------------------


def test_with_roles_by_name_and_index():
    net = square_grid(3, 3).with_roles(sources=["r0c0", 4], targets=[8], ground="r2c0")
    assert net.sources.tolist() == [0, 4]
    assert net.targets.tolist() == [8]
    assert net.ground == 6
    assert net.hidden.tolist() == [1, 2, 3, 5, 7]
    assert net.name == "grid3x3"


def test_with_roles_resets_earlier_roles_and_keeps_the_rest():
    base = gen2_lattice()
    net = base.with_roles(sources="r0c1")  # a single name is a list of one
    assert net.sources.tolist() == [1]
    assert net.targets.size == 0 and net.ground is None
    assert np.array_equal(net.edges, base.edges)
    assert net.edge_names == base.edge_names
    assert np.array_equal(net.positions, base.positions)


def test_with_roles_rejects_a_node_with_two_roles():
    net = square_grid(2, 2)
    with pytest.raises(NetworkError, match=r"node r0c0 given two roles \(source, target\)"):
        net.with_roles(sources=["r0c0"], targets=["r0c0"])
    with pytest.raises(NetworkError, match=r"node r0c1 given two roles \(target, ground\)"):
        net.with_roles(targets=["r0c1"], ground="r0c1")
    with pytest.raises(NetworkError, match="node r0c0 listed twice as source"):
        net.with_roles(sources=["r0c0", 0])


def test_with_roles_rejects_unknown_nodes():
    net = square_grid(2, 2)
    with pytest.raises(NetworkError, match="no node named 'x'"):
        net.with_roles(sources=["x"])
    with pytest.raises(NetworkError, match=r"node index 4 outside 0\.\.3"):
        net.with_roles(targets=[4])
    with pytest.raises(NetworkError, match=r"node index -1 outside 0\.\.3"):
        net.with_roles(ground=-1)


# -- incidence matrix ------------------------------------------------------------------------


@given(graph_sizes())
@settings(max_examples=30, deadline=None)
def test_incidence_matrix_is_signed_per_edge(size):
    n, m, seed = size
    net = random_connected(n, m, seed=seed)
    inc = net.incidence()
    assert sp.isspmatrix_csr(inc) and inc.shape == (m, n)
    dense = inc.toarray()
    rows = np.arange(m)
    assert np.all(dense[rows, net.edges[:, 0]] == 1.0)
    assert np.all(dense[rows, net.edges[:, 1]] == -1.0)
    assert np.all(np.count_nonzero(dense, axis=1) == 2)
    # the drops of any node voltages are v_a - v_b; the Laplacian has the node degrees
    v = np.random.default_rng(seed).normal(size=n)
    assert np.allclose(inc @ v, v[net.edges[:, 0]] - v[net.edges[:, 1]])
    assert np.array_equal(np.diag((inc.T @ inc).toarray()), degrees(net))


# -- from_edge_list --------------------------------------------------------------------------


def test_from_edge_list_orders_nodes_by_first_mention():
    net = from_edge_list(
        [("in", "mid"), ("mid", "out"), ("mid", "gnd")],
        roles={"in": "source", "out": Role.TARGET, "gnd": "ground", "spare": "hidden"},
        edge_names=("r_in", "r_out", "r_gnd"),
        name="divider",
    )
    assert net.nodes == ("in", "mid", "out", "gnd", "spare")
    assert net.edges.tolist() == [[0, 1], [1, 2], [1, 3]]
    assert net.roles == (Role.SOURCE, Role.HIDDEN, Role.TARGET, Role.GROUND, Role.HIDDEN)
    assert net.edge_names == ("r_in", "r_out", "r_gnd")
    assert net.name == "divider"


def test_from_edge_list_validates():
    with pytest.raises(NetworkError, match="node a: unknown role 'drain'"):
        from_edge_list([("a", "b")], roles={"a": "drain"})
    with pytest.raises(NetworkError, match="joins node a to itself"):
        from_edge_list([("a", "b"), ("a", "a")])
    with pytest.raises(NetworkError, match="pair of node names"):
        from_edge_list([("a", "b", "c")])
    with pytest.raises(NetworkError, match="more than one ground"):
        from_edge_list([("a", "b")], roles={"a": "ground", "b": "ground"})
