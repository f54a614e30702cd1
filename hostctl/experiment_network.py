"""The experiment file's ``[network]``: a built-in network or a network file, its roles, and
the edges' initial state (see :mod:`hostctl.experiment`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from instruments.sim.edges import DIGIPOT_TAPS, GEN2_GATE_MAX_V, GEN2_GATE_MIN_V, MixedEdges
from instruments.sim.netfile import NetworkFileError, fixed_edge_indices, load_network_file
from instruments.sim.network import Network, NetworkError, Role, gen2_lattice
from instruments.tomlspec import SpecProblem
from instruments.wiring import NODE_MAX_V, gen1_grid


#: The network of arXiv:2505.22887's alternating tasks: High, Low, Input, Output; a fixed
#: 500 Ohm edge Input-Output and two MOSFET edges into Output (a packaged network file).
ALTERNATING_NETWORK = Path(__file__).parent / "data" / "experiments" / "alternating_gen2.net.toml"


def learning_kind(device, fixed: np.ndarray, n_edges: int) -> str | None:
    """The kind of the learning edges of ``device`` (a mixed device's parts over the edges
    not in ``fixed``), or None when they are of more than one kind."""
    if device is None:
        return "mosfet"
    if not isinstance(device, MixedEdges):
        return device.kind
    learning = np.ones(n_edges, bool)
    learning[fixed] = False
    kinds = {dev.kind for dev, idx in device.parts if learning[idx].any()}
    return kinds.pop() if len(kinds) == 1 else None


def network_of(spec, base: Path | None):
    """The network, its edge kind (of its learning edges), the network file (None for a
    built-in) and the indices of its fixed edges (``fixed_edges`` of either file)."""
    nf = None
    fixed = np.zeros(0, np.int64)
    if spec.builtin == "gen2":
        net, kind = gen2_lattice(), "mosfet"
    elif spec.builtin == "gen1":
        net, kind = gen1_grid(), "digipot"
    else:
        if spec.builtin == "alternating":
            path = ALTERNATING_NETWORK
        else:
            path = Path(spec.file)
            if not path.is_absolute() and base is not None:
                path = base / path
        try:
            nf = load_network_file(path)
        except OSError as exc:
            raise SpecProblem("network.file", f"cannot read {path}: {exc.strerror or exc}") from None
        except NetworkFileError as exc:
            raise SpecProblem("network.file", str(exc)) from None
        net, fixed = nf.network, nf.fixed
        if spec.fixed_edges is not None and fixed.size:
            raise SpecProblem("network.fixed_edges", f"the network file {path.name} names its fixed edges too "
                                                     f"(fixed_edges): give them in one place")
        if spec.fixed_edges is not None:
            fixed = fixed_edge_indices(net, spec.fixed_edges, "network.fixed_edges")
        kind = learning_kind(nf.device, fixed, net.n_edges)
        if kind is None:
            raise SpecProblem("network.file", "its learning edges are of several kinds: the bench's boards are all "
                                              "of one (fix the others with fixed_edges)")
        if kind not in NODE_MAX_V:
            raise SpecProblem("network.file", f"learning edges of kind {kind!r}: the bench has mosfet or digipot "
                                              f"boards (a fixed edge may be of any kind)")
        if isinstance(nf.device, MixedEdges) and nf.state is None:
            raise SpecProblem("network.file", "a mixed device needs its initial_state (a fixed edge keeps it)")
    if spec.sources is not None:
        try:
            net = net.with_roles(sources=spec.sources, targets=spec.targets, ground=spec.ground)
        except (NetworkError, KeyError, ValueError) as exc:
            raise SpecProblem("network", str(exc).strip("'\"")) from None
    if spec.builtin in ("gen1", "gen2") and spec.fixed_edges is not None:
        fixed = fixed_edge_indices(net, spec.fixed_edges, "network.fixed_edges")
    if spec.bias_v is not None:
        net = with_bias(net, spec.bias_node, kind)
    elif spec.bias_node is not None:
        raise SpecProblem("network.bias_node", f"{spec.bias_node!r} without bias_v: give the bias source's voltage")
    for role, nodes in (("sources", net.sources), ("targets", net.targets)):
        if nodes.size == 0:
            raise SpecProblem(f"network.{role}", f"network {net.name} has no {role[:-1]} node")
    return net, kind, nf, fixed


def default_bias_node(net: Network) -> str | None:
    """The node a bias source goes on when the file names none: the hidden node nearest
    (in edges) the ground, or the sources without a ground, as a supply rail sits beside its
    return; ties go to the first in node order. None when no node is hidden.

    On the Gen-1 grid that is ``r1c1``, from which a direct optimisation of the 24
    conductances reaches 98 % test accuracy on Iris with the highest-target read-out; from
    the corner farthest from the ground, ``r3c3``, no conductances do better than 66 %."""
    hidden = [i for i, r in enumerate(net.roles) if r is Role.HIDDEN]
    if not hidden:
        return None
    start = [net.ground] if net.ground is not None else list(net.sources)
    dist = np.full(net.n_nodes, np.iinfo(np.int64).max)
    dist[start] = 0
    frontier = list(start)
    adj = [[] for _ in range(net.n_nodes)]
    for a, b in net.edges.tolist():
        adj[a].append(b)
        adj[b].append(a)
    while frontier:
        nxt = []
        for n in frontier:
            for m in adj[n]:
                if dist[m] > dist[n] + 1:
                    dist[m] = dist[n] + 1
                    nxt.append(m)
        frontier = nxt
    best = min(hidden, key=lambda i: (dist[i], i))
    return net.nodes[best]


def with_bias(net: Network, node: str | None, kind: str) -> Network:
    """``net`` with one more source, the bias (``[network] bias_v``), on ``node`` (a hidden
    node; None: :func:`default_bias_node`)."""
    field = "network.bias_node" if node is not None else "network.bias_v"
    if node is None:
        node = default_bias_node(net)
        if node is None:
            raise SpecProblem(field, f"network {net.name} has no hidden node for the bias source: name one "
                                     f"with bias_node")
    if node not in net.nodes:
        raise SpecProblem(field, f"no node {node!r} in network {net.name}")
    i = net.nodes.index(node)
    if net.roles[i] is not Role.HIDDEN:
        raise SpecProblem(field, f"node {node} is already a {net.roles[i].value}: the bias source needs a "
                                 f"hidden node")
    try:
        return net.with_roles(sources=[net.nodes[s] for s in net.sources] + [node],
                              targets=[net.nodes[t] for t in net.targets],
                              ground=None if net.ground is None else net.nodes[net.ground])
    except NetworkError as exc:  # pragma: no cover - the checks above leave nothing
        raise SpecProblem(field, str(exc)) from None


def initial_state(value, network: Network, edge_kind: str) -> np.ndarray | None:
    """``[network] initial_state`` (a number or one per edge) checked against the boards'
    range, or None."""
    return initial_state_checked(value, network, edge_kind)


def initial_state_checked(value, network: Network, edge_kind: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.broadcast_to(np.asarray(value, float), (network.n_edges,)) if np.ndim(value) == 0 else np.asarray(value, float)
    if arr.shape != (network.n_edges,):
        raise SpecProblem("network.initial_state", f"expected a number or {network.n_edges} values, got {arr.size}")
    lo, hi = (GEN2_GATE_MIN_V, GEN2_GATE_MAX_V) if edge_kind == "mosfet" else (0, DIGIPOT_TAPS - 1)
    bad = np.flatnonzero(~((arr >= lo) & (arr <= hi)) | ((edge_kind == "digipot") & (arr != np.round(arr))))
    if bad.size:
        unit = "V of gate" if edge_kind == "mosfet" else "taps (integers)"
        raise SpecProblem(f"network.initial_state[{bad[0]}]", f"{arr[bad[0]]} is outside {lo}..{hi} {unit}")
    return arr.copy()


def file_states(nf, fixed: np.ndarray, initial_state, network: Network, edge_kind: str):
    """(the boards' initial state, the devices' initial state) once the network file ``nf``
    (or None) is read: the file's ``initial_state`` is the devices' (a fixed resistor's
    conductance included) and, checked, the boards' (a fixed edge's board at its lowest);
    SpecProblem when the experiment gives one too."""
    if nf is None or nf.state is None:
        return initial_state, None
    if initial_state is not None:
        raise SpecProblem("network.initial_state", f"the network file {Path(nf.source).name} gives the initial "
                                                   f"state too ([device] initial_state): give it in one place")
    boards = nf.state.copy()
    boards[fixed] = GEN2_GATE_MIN_V if edge_kind == "mosfet" else 0.0
    return initial_state_checked(boards, network, edge_kind), nf.state.copy()
