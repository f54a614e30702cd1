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
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np


class Role(str, enum.Enum):
    """The role of a node in a twin network."""

    SOURCE = "source"
    TARGET = "target"
    GROUND = "ground"
    HIDDEN = "hidden"


class NetworkError(ValueError):
    """A network description is inconsistent (unknown node, self-loop, duplicate edge...)."""


@dataclass(frozen=True, eq=False)
class Network:
    """Nodes, edges and node roles of one network (both twins share it).

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
        edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        edges.setflags(write=False)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "nodes", tuple(str(n) for n in self.nodes))
        object.__setattr__(self, "roles", tuple(Role(r) for r in self.roles))
        if not self.edge_names:
            object.__setattr__(self, "edge_names", tuple(f"e{j}" for j in range(len(edges))))
        else:
            object.__setattr__(self, "edge_names", tuple(str(n) for n in self.edge_names))
        n = len(self.nodes)
        if len(set(self.nodes)) != n:
            dup = sorted({x for x in self.nodes if self.nodes.count(x) > 1})
            raise NetworkError(f"duplicate node names: {', '.join(dup)}")
        if len(self.roles) != n:
            raise NetworkError(f"{len(self.roles)} roles given for {n} nodes")
        if len(self.edge_names) != len(edges):
            raise NetworkError(f"{len(self.edge_names)} edge names given for {len(edges)} edges")
        if len(set(self.edge_names)) != len(self.edge_names):
            raise NetworkError("duplicate edge names")
        if edges.size and (edges.min() < 0 or edges.max() >= n):
            raise NetworkError(f"edge refers to node index outside 0..{n - 1}")
        loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
        if loops.size:
            j = int(loops[0])
            raise NetworkError(f"edge {self.edge_names[j]} joins node {self.nodes[edges[j, 0]]} to itself")
        if sum(r is Role.GROUND for r in self.roles) > 1:
            raise NetworkError("more than one ground node")
        if self.positions is not None:
            pos = np.asarray(self.positions, dtype=float).reshape(n, 2)
            pos.setflags(write=False)
            object.__setattr__(self, "positions", pos)

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
        return self._where(Role.HIDDEN)

    @property
    def ground(self) -> int | None:
        g = self._where(Role.GROUND)
        return int(g[0]) if g.size else None

    def index(self, name: str) -> int:
        """Index of the node called ``name``; :class:`NetworkError` if there is none."""
        try:
            return self.nodes.index(name)
        except ValueError:
            raise NetworkError(f"no node named {name!r}") from None

    def with_roles(
        self,
        sources: Iterable[str | int] = (),
        targets: Iterable[str | int] = (),
        ground: str | int | None = None,
    ) -> "Network":
        """A copy with the given nodes as sources, targets and ground; all others hidden."""
        roles = [Role.HIDDEN] * self.n_nodes

        def idx(x: str | int) -> int:
            return int(x) if isinstance(x, (int, np.integer)) else self.index(x)

        for role, members in ((Role.SOURCE, sources), (Role.TARGET, targets)):
            for m in members:
                i = idx(m)
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
        return (
            f"{self.name}: {self.n_nodes} nodes, {self.n_edges} edges, "
            f"{len(self.sources)} sources, {len(self.targets)} targets, "
            f"ground {'none' if self.ground is None else self.nodes[self.ground]}"
        )


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
    """Build a network from named edges; nodes appear in order of first mention."""
    nodes: dict[str, int] = {}
    for a, b in edges:
        for x in (a, b):
            nodes.setdefault(str(x), len(nodes))
    for x in roles or {}:
        nodes.setdefault(str(x), len(nodes))
    idx = np.array([[nodes[str(a)], nodes[str(b)]] for a, b in edges], dtype=np.int64).reshape(-1, 2)
    role_list = [Role.HIDDEN] * len(nodes)
    for x, r in (roles or {}).items():
        role_list[nodes[str(x)]] = Role(r)
    return Network(tuple(nodes), idx, tuple(role_list), tuple(edge_names), name)
