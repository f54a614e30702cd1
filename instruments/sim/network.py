"""Network topology: named nodes, edges between them, and the role of every node.

A :class:`Network` is pure structure; it knows nothing of devices or voltages. Nodes have
one of four roles:

* ``source``: voltage imposed on both twins (an input, or a fixed bias such as ``+``/``-``);
* ``target``: an output; read on the free twin, clamped on the clamped twin;
* ``ground``: held at 0 V on both twins;
* ``hidden``: everything else, free to settle.

Built-in topologies: :func:`gen2_lattice` (the 4 x 4 periodic lattice of the Gen-2 network),
:func:`square_grid` (any size, open or periodic) and :func:`random_connected`.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np


MAX_NODES = 2_000_000
"""The most nodes a network may have: a 1000 x 1000 grid trains in about 3 GiB, and twice
that fits the lab's machines (24 GiB)."""
MAX_EDGES = 8_000_000
"""The most edges a network may have (see :data:`MAX_NODES`)."""

class Role(str, enum.Enum):
    """The role of a node in a twin network."""

    SOURCE = "source"
    TARGET = "target"
    GROUND = "ground"
    HIDDEN = "hidden"


class NetworkError(ValueError):
    """A network description is inconsistent (unknown node, self-loop, bad index...)."""


@dataclass(frozen=True, eq=False)
class Network:
    """Nodes, edges and node roles of one network (both twins share it).

    Parallel edges (two or more edges joining the same pair of nodes, in either direction)
    are legal, as parallel resistors are in a circuit: each is a device of its own with its
    own state, and the solvers add their currents. Self-loops are not (an edge from a node to
    itself carries no current and has no voltage drop to learn from).

    Attributes:
        nodes: node names, in index order, e.g. ``("n0", "n1", ...)``.
        edges: ``(E, 2)`` int array of node indices; edge ``j`` joins ``edges[j, 0]`` (terminal
            a) to ``edges[j, 1]`` (terminal b). Currents are positive from a to b.
        roles: the role of every node, same order as ``nodes``.
        edge_names: one name per edge, e.g. ``("e0", "e1", ...)``.
        name: a label for files and plots.
        positions: optional ``(N, 2)`` drawing coordinates (arbitrary units).
    """

    nodes: tuple[str, ...]
    edges: np.ndarray
    roles: tuple[Role, ...]
    edge_names: tuple[str, ...] = ()
    name: str = "network"
    positions: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        edges = _edge_array(self.edges)
        edges.setflags(write=False)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "nodes", tuple(str(n) for n in self.nodes))
        names = self.nodes + tuple(f"#{i}" for i in range(len(self.nodes), len(self.roles)))
        object.__setattr__(self, "roles", tuple(_role(r, x) for r, x in zip(self.roles, names)))
        if not self.edge_names:
            object.__setattr__(self, "edge_names", tuple(f"e{j}" for j in range(len(edges))))
        else:
            object.__setattr__(self, "edge_names", tuple(str(n) for n in self.edge_names))
        n = len(self.nodes)
        if len(set(self.nodes)) != n:
            raise NetworkError(f"duplicate node names: {', '.join(_duplicates(self.nodes))}")
        if len(self.roles) != n:
            raise NetworkError(f"{len(self.roles)} roles given for {n} nodes")
        if len(self.edge_names) != len(edges):
            raise NetworkError(f"{len(self.edge_names)} edge names given for {len(edges)} edges")
        if len(set(self.edge_names)) != len(self.edge_names):
            raise NetworkError(f"duplicate edge names: {', '.join(_duplicates(self.edge_names))}")
        bad = np.flatnonzero((edges < 0).any(axis=1) | (edges >= n).any(axis=1))
        if bad.size:
            j = int(bad[0])
            raise NetworkError(
                f"edge {self.edge_names[j]} refers to node index {edges[j].tolist()}, outside 0..{n - 1}"
            )
        loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
        if loops.size:
            j = int(loops[0])
            raise NetworkError(f"edge {self.edge_names[j]} joins node {self.nodes[edges[j, 0]]} to itself")
        grounds = [x for x, r in zip(self.nodes, self.roles) if r is Role.GROUND]
        if len(grounds) > 1:
            raise NetworkError(f"more than one ground node: {', '.join(grounds)}")
        if self.positions is not None:
            pos = np.asarray(self.positions, dtype=float)
            if pos.shape != (n, 2):
                raise NetworkError(f"positions must have shape ({n}, 2), got {pos.shape}")
            pos = pos.copy()
            pos.setflags(write=False)
            object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "_index", {x: i for i, x in enumerate(self.nodes)})

    # -- sizes and index sets ---------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def _where(self, role: Role) -> np.ndarray:
        return np.array([i for i, r in enumerate(self.roles) if r is role], dtype=np.int64)

    @property
    def sources(self) -> np.ndarray:
        """Indices of source nodes, in node order."""
        return self._where(Role.SOURCE)

    @property
    def targets(self) -> np.ndarray:
        """Indices of target nodes, in node order."""
        return self._where(Role.TARGET)

    @property
    def hidden(self) -> np.ndarray:
        """Indices of hidden nodes, in node order."""
        return self._where(Role.HIDDEN)

    @property
    def ground(self) -> int | None:
        """Index of the ground node, or None if there is none."""
        g = self._where(Role.GROUND)
        return int(g[0]) if g.size else None

    def index(self, name: str) -> int:
        """Index of the node called ``name``; :class:`NetworkError` if there is none."""
        try:
            return self._index[name]
        except KeyError:
            raise NetworkError(f"no node named {name!r}") from None

    def with_roles(
        self,
        sources: Iterable[str | int] = (),
        targets: Iterable[str | int] = (),
        ground: str | int | None = None,
    ) -> "Network":
        """A copy with the given nodes as sources, targets and ground; all others hidden.

        Nodes are given by name or index; a single name may stand for a list of one.
        """
        roles = [Role.HIDDEN] * self.n_nodes

        def idx(x: str | int) -> int:
            if isinstance(x, (int, np.integer)):
                if not 0 <= x < self.n_nodes:
                    raise NetworkError(f"node index {int(x)} outside 0..{self.n_nodes - 1}")
                return int(x)
            return self.index(x)

        for role, members in ((Role.SOURCE, sources), (Role.TARGET, targets)):
            for m in [members] if isinstance(members, str) else members:
                i = idx(m)
                if roles[i] is role:
                    raise NetworkError(f"node {self.nodes[i]} listed twice as {role.value}")
                if roles[i] is not Role.HIDDEN:
                    raise NetworkError(f"node {self.nodes[i]} given two roles ({roles[i].value}, {role.value})")
                roles[i] = role
        if ground is not None:
            i = idx(ground)
            if roles[i] is not Role.HIDDEN:
                raise NetworkError(f"node {self.nodes[i]} given two roles ({roles[i].value}, ground)")
            roles[i] = Role.GROUND
        return Network(self.nodes, self.edges, tuple(roles), self.edge_names, self.name, self.positions)

    def incidence(self):
        """Signed incidence matrix ``(E, N)`` as scipy CSR: +1 at terminal a, -1 at b."""
        import scipy.sparse as sp

        e = self.n_edges
        rows = np.repeat(np.arange(e), 2)
        cols = self.edges.ravel()
        vals = np.tile([1.0, -1.0], e)
        return sp.csr_matrix((vals, (rows, cols)), shape=(e, self.n_nodes))

    def describe(self) -> str:
        """One line: name, sizes, role counts and the ground node."""
        return (
            f"{self.name}: {self.n_nodes} nodes, {self.n_edges} edges, "
            f"{len(self.sources)} sources, {len(self.targets)} targets, "
            f"ground {'none' if self.ground is None else self.nodes[self.ground]}"
        )


def _edge_array(edges) -> np.ndarray:
    """``edges`` as an ``(E, 2)`` int64 array; NetworkError if it is not one."""
    arr = np.asarray(edges)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise NetworkError(f"edges must be an (E, 2) array of node indices, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(arr == np.round(arr)):
            raise NetworkError("edges must hold whole node indices")
    return arr.astype(np.int64)


def _duplicates(names: Sequence[str]) -> list[str]:
    counts = Counter(names)
    return sorted(x for x, c in counts.items() if c > 1)


def _role(r, node: str) -> Role:
    try:
        return Role(r)
    except ValueError:
        valid = ", ".join(x.value for x in Role)
        raise NetworkError(f"node {node}: unknown role {r!r} (valid: {valid})") from None


# -- built-in topologies -------------------------------------------------------------------


def square_grid(rows: int, cols: int, periodic: bool = False, name: str | None = None) -> Network:
    """A ``rows`` x ``cols`` square grid of nodes ``r{i}c{j}``; all nodes hidden.

    With ``periodic`` the grid wraps in both directions (a torus); each wrap needs at least
    3 nodes along that direction so that no edge is doubled.
    """
    if rows < 1 or cols < 1 or rows * cols < 2:
        raise NetworkError(f"grid needs at least 2 nodes, got {rows} x {cols}")
    if periodic and (rows < 3 or cols < 3):
        raise NetworkError(f"a periodic grid needs at least 3 x 3 nodes, got {rows} x {cols}")
    idx = np.arange(rows * cols).reshape(rows, cols)
    pairs = [
        np.c_[idx[:, :-1].ravel(), idx[:, 1:].ravel()],
        np.c_[idx[:-1, :].ravel(), idx[1:, :].ravel()],
    ]
    if periodic:
        pairs.append(np.c_[idx[:, -1], idx[:, 0]])
        pairs.append(np.c_[idx[-1, :], idx[0, :]])
    edges = np.vstack(pairs)
    nodes = tuple(f"r{i}c{j}" for i in range(rows) for j in range(cols))
    yy, xx = np.divmod(np.arange(rows * cols), cols)
    return Network(
        nodes,
        edges,
        (Role.HIDDEN,) * len(nodes),
        name=name or f"grid{rows}x{cols}{'-periodic' if periodic else ''}",
        positions=np.c_[xx, -yy].astype(float),
    )


def gen2_lattice() -> Network:
    """The Gen-2 network: 4 x 4 nodes, periodic both ways (16 nodes, 32 edges).

    Default roles follow the lab's two-input tasks: inputs at ``r0c0`` and ``r2c2``, fixed
    bias nodes at ``r0c2`` and ``r2c0`` (sources too), targets at ``r1c1`` and ``r3c3``, and
    ground at ``r1c3``. Use :meth:`Network.with_roles` for other assignments.
    """
    net = square_grid(4, 4, periodic=True, name="gen2-lattice")
    return net.with_roles(
        sources=["r0c0", "r2c2", "r0c2", "r2c0"], targets=["r1c1", "r3c3"], ground="r1c3"
    )


def random_connected(n_nodes: int, n_edges: int, seed: int = 0, name: str | None = None) -> Network:
    """A random connected simple graph: a random spanning tree plus random extra edges.

    Args:
        n_nodes: number of nodes, at least 2.
        n_edges: number of edges, from ``n_nodes - 1`` to ``n_nodes (n_nodes - 1) / 2``.
        seed: seed of the random generator; the same seed gives the same graph.
    """
    max_edges = n_nodes * (n_nodes - 1) // 2
    if n_nodes < 2 or not (n_nodes - 1 <= n_edges <= max_edges):
        raise NetworkError(
            f"a connected simple graph on {n_nodes} nodes has {n_nodes - 1}..{max_edges} edges, "
            f"asked for {n_edges}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_nodes)
    parents = order[(rng.random(n_nodes - 1) * np.arange(1, n_nodes)).astype(np.int64)]
    tree = np.c_[order[1:], parents]
    have = {(min(a, b), max(a, b)) for a, b in tree.tolist()}
    while len(have) < n_edges:
        need = n_edges - len(have)
        cand = rng.integers(0, n_nodes, size=(2 * need + 8, 2))
        for a, b in cand.tolist():
            if a != b:
                have.add((min(a, b), max(a, b)))
                if len(have) == n_edges:
                    break
    edges = np.array(sorted(have), dtype=np.int64)
    nodes = tuple(f"n{i}" for i in range(n_nodes))
    return Network(nodes, edges, (Role.HIDDEN,) * n_nodes, name=name or f"random{n_nodes}-{n_edges}")


def from_edge_list(
    edges: Sequence[tuple[str, str]],
    roles: Mapping[str, str | Role] | None = None,
    edge_names: Sequence[str] = (),
    name: str = "network",
) -> Network:
    """Build a network from named edges; nodes appear in order of first mention.

    Nodes named only in ``roles`` are added after the others (with no edges). A pair may
    appear more than once: parallel edges.
    """
    nodes: dict[str, int] = {}
    edges = list(edges)
    if any(len(pair) != 2 for pair in edges):
        raise NetworkError("every edge must be a pair of node names")
    for a, b in edges:
        for x in (a, b):
            nodes.setdefault(str(x), len(nodes))
    for x in roles or {}:
        nodes.setdefault(str(x), len(nodes))
    idx = np.array([[nodes[str(a)], nodes[str(b)]] for a, b in edges], dtype=np.int64).reshape(-1, 2)
    role_list = [Role.HIDDEN] * len(nodes)
    for x, r in (roles or {}).items():
        role_list[nodes[str(x)]] = _role(r, str(x))
    return Network(tuple(nodes), idx, tuple(role_list), tuple(edge_names), name)
