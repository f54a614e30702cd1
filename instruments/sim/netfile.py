"""The network file: a readable TOML description of a network, its devices and their state.

A network is given either by its edges::

    name = "divider"
    nodes = ["in", "mid", "out", "gnd"]      # optional: the node order (default: order of
                                             # first mention in edges); lists lone nodes too
    edges = [["in", "mid"], ["mid", "out"], ["out", "gnd"]]
    edge_names = ["top", "middle", "bottom"] # optional (default e0, e1, ...)
    fixed_edges = ["top"]                    # optional: edges that do not learn (any device)

or by a built-in topology (then ``nodes``, ``edges`` and ``edge_names`` are not given)::

    [topology]
    kind = "square_grid"                     # or "gen2_lattice", "random_connected"
    rows = 4
    cols = 4
    periodic = true                          # random_connected: n_nodes, n_edges, seed

Roles (every node not named is hidden; a topology's own roles, such as the Gen-2 lattice's,
are replaced when ``[roles]`` is given), positions (drawing coordinates, every node or none)
and the edge devices with their initial state are optional::

    [roles]
    sources = ["in"]
    targets = ["out"]
    ground = "gnd"

    [positions]
    in = [0.0, 0.0]
    ...

    [device]
    kind = "mosfet"            # resistor | digipot | mosfet | mixed
    s_a_per_v2 = 8.5e-4        # A/V^2; a number, one per edge, or [[free twin], [clamped twin]]
    vt_v = 0.7                 # V, likewise
    subthreshold_v = 0.1       # V per decade; false for SPICE's level-1 law
    state_min = 1.0            # V (gate limits)
    state_max = 5.5
    update_bias = 0.0          # state units per update; a number or one per edge
    initial_state = 2.5        # V; a number or one per edge

Resistor fields: ``gain`` (per twin), ``state_min``/``state_max`` (S). Digipot fields:
``n_taps``, ``r_min_ohm``, ``r_max_ohm``, ``gain``; its state is a tap number.

A *fixed* edge (``fixed_edges``, by name; with a built-in topology too) keeps its initial
state: a fixed resistor beside MOSFETs (a ``mixed`` device), or a MOSFET whose gate is held.
The simulator and a run never change it; its board, on the simulated bench, never updates.

Every number is finite and within what a device on a bench can be: positions within
+-1e9 (drawing units); ``gain`` in (0, 10] (the real over the commanded conductance);
``s_a_per_v2`` in [1e-12, 1] A/V^2; ``vt_v`` and the gate limits within +-50 V;
``subthreshold_v`` in [1e-3, 1] V per decade; resistor conductance limits in [0, 1e6] S;
``update_bias`` at most the state's span (``state_max - state_min``) per update. A mixed device
lists its parts as ``[[device.parts]]`` tables, each with a ``kind``, the ``edges`` (by name)
it covers, and that kind's fields (per-edge values then run over the part's own edges); its
``update_bias`` is given once, on ``[device]``, for all edges.

Every problem is one :class:`NetworkFileError` naming the file, the field and the value.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tomli_w
from pydantic import BaseModel, BeforeValidator, Field, model_validator

from .edges import (
    DIGIPOT_R_MAX_OHM,
    DIGIPOT_R_MIN_OHM,
    DIGIPOT_TAPS,
    GEN2_GATE_MAX_V,
    GEN2_GATE_MIN_V,
    GEN2_S_A_PER_V2,
    GEN2_VT_V,
    SUBTHRESHOLD_V_PER_DECADE,
    Digipot,
    EdgeDevice,
    MixedEdges,
    Mosfet,
    Resistor,
)
from ..tomlspec import Number, Seed, SpecProblem, Strict, parse_toml, read_text, shown, validate_spec
from .network import MAX_EDGES, MAX_NODES, Network, NetworkError, Role, gen2_lattice, random_connected, square_grid


class NetworkFileError(ValueError):
    """A network file is malformed; the message names the file, the field and the value.

    Attributes:
        source: the file name (or label).
        field: the dotted field, e.g. ``device.vt_v[3]``, or "" for the whole file.
    """

    def __init__(self, source: str, field: str, problem: str):
        self.source = source
        self.field = field
        super().__init__(f"{source}: {field}: {problem}" if field else f"{source}: {problem}")


@dataclass(frozen=True, eq=False)
class NetworkFile:
    """What a network file holds.

    Attributes:
        network: the topology and roles.
        device: the edge devices, or None if the file has no ``[device]``.
        state: the ``(E,)`` initial state (unit of the device), or None if not given.
        source: the file name (or label) it was read from.
        fixed: indices of the edges that do not learn (``fixed_edges``), ascending; empty
            when every edge learns.
    """

    network: Network
    device: EdgeDevice | None = None
    state: np.ndarray | None = None
    source: str = "<network file>"
    fixed: np.ndarray = dc_field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def learning(self) -> np.ndarray:
        """(E,) bool: True for an edge that learns (the mask of the learning edges)."""
        mask = np.ones(self.network.n_edges, bool)
        mask[self.fixed] = False
        return mask


# -- the schema -----------------------------------------------------------------------------


#: The largest drawing coordinate of a node.
POSITION_MAX = 1e9
#: Bounds of the device parameters (SI units): gain factor, S (A/V^2), V_T and gate limits (V),
#: subthreshold slope (V per decade), resistor conductance (S).
GAIN_MAX = 10.0
S_MIN_A_PER_V2, S_MAX_A_PER_V2 = 1e-12, 1.0
VOLTS_MAX = 50.0
SUBTHRESHOLD_MIN_V, SUBTHRESHOLD_MAX_V = 1e-3, 1.0
CONDUCTANCE_MAX_S = 1e6

Volts = Annotated[Number, Field(ge=-VOLTS_MAX, le=VOLTS_MAX)]
Siemens = Annotated[Number, Field(ge=0, le=CONDUCTANCE_MAX_S)]


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _per_edge(x):
    """A number, or a list of numbers (one per edge)."""
    if _is_number(x) or (isinstance(x, list) and all(_is_number(v) for v in x)):
        return x
    raise ValueError("expected a number or a list of numbers (one per edge)")


def _per_twin(x):
    """A number, a list of numbers (one per edge), or two such lists (free, clamped twin)."""
    if _is_number(x) or (isinstance(x, list) and all(_is_number(v) for v in x)):
        return x
    if isinstance(x, list) and len(x) == 2 and all(isinstance(r, list) and all(map(_is_number, r)) for r in x):
        return x
    raise ValueError(
        "expected a number, a list of numbers (one per edge), or two such lists (free, clamped twin)"
    )


def _off_is_none(x):
    """``false`` (TOML has no null) switches subthreshold conduction off."""
    if x is False:
        return None
    if _is_number(x) and SUBTHRESHOLD_MIN_V <= x <= SUBTHRESHOLD_MAX_V:
        return x
    raise ValueError(f"expected volts per decade ({SUBTHRESHOLD_MIN_V:g}..{SUBTHRESHOLD_MAX_V:g}) or false")


def _pair(x):
    if isinstance(x, list) and len(x) == 2 and all(isinstance(v, str) for v in x):
        return x
    raise ValueError("expected a pair of node names")


def _xy(x):
    if isinstance(x, list) and len(x) == 2 and all(_is_number(v) for v in x):
        if all(math.isfinite(v) and abs(v) <= POSITION_MAX for v in x):
            return x
        raise ValueError(f"expected finite coordinates within +-{POSITION_MAX:g}")
    raise ValueError("expected a position [x, y]")


PerEdge = Annotated[Any, BeforeValidator(_per_edge)]
PerTwin = Annotated[Any, BeforeValidator(_per_twin)]
Pair = Annotated[list[str], BeforeValidator(_pair)]
Position = Annotated[list[float], BeforeValidator(_xy)]


_Strict = Strict


class TopologySpec(_Strict):
    """``[topology]``: a built-in network."""

    kind: Literal["gen2_lattice", "square_grid", "random_connected"]
    rows: int | None = Field(None, ge=1, le=MAX_NODES)
    cols: int | None = Field(None, ge=1, le=MAX_NODES)
    periodic: bool | None = None
    n_nodes: int | None = Field(None, ge=1, le=MAX_NODES)
    n_edges: int | None = Field(None, ge=1, le=MAX_EDGES)
    seed: Seed | None = None

    @model_validator(mode="after")
    def _size(self):
        if self.rows is not None and self.cols is not None and self.rows * self.cols > MAX_NODES:
            raise ValueError(f"a {self.rows} x {self.cols} grid has more than the {MAX_NODES:,} nodes a network may have")
        return self


class RolesSpec(_Strict):
    """``[roles]``: node names by role; every other node is hidden."""

    sources: list[str] = []
    targets: list[str] = []
    ground: str | None = None


class _DeviceSpec(_Strict):
    update_bias: PerEdge = 0.0
    initial_state: PerEdge | None = None


class ResistorSpec(_DeviceSpec):
    kind: Literal["resistor"]
    gain: PerTwin = 1.0
    state_min: Siemens = 1e-6
    state_max: Siemens = 1.0


class DigipotSpec(_DeviceSpec):
    kind: Literal["digipot"]
    n_taps: Annotated[int, Field(ge=2, le=1 << 16)] = DIGIPOT_TAPS
    r_min_ohm: Annotated[Number, Field(gt=0, le=1e12)] = DIGIPOT_R_MIN_OHM
    r_max_ohm: Annotated[Number, Field(gt=0, le=1e12)] = DIGIPOT_R_MAX_OHM
    gain: PerTwin = 1.0


class MosfetSpec(_DeviceSpec):
    kind: Literal["mosfet"]
    s_a_per_v2: PerTwin = GEN2_S_A_PER_V2
    vt_v: PerTwin = GEN2_VT_V
    subthreshold_v: Annotated[float | None, BeforeValidator(_off_is_none)] = SUBTHRESHOLD_V_PER_DECADE
    state_min: Volts = GEN2_GATE_MIN_V
    state_max: Volts = GEN2_GATE_MAX_V


class MixedSpec(_Strict):
    kind: Literal["mixed"]
    update_bias: PerEdge = 0.0
    parts: list[dict[str, Any]] = []


_DEVICE_SPECS: dict[str, type[BaseModel]] = {
    "resistor": ResistorSpec, "digipot": DigipotSpec, "mosfet": MosfetSpec, "mixed": MixedSpec,
}


class FileSpec(_Strict):
    """The whole file; ``device`` is checked by kind after the rest."""

    name: str | None = None
    topology: TopologySpec | None = None
    nodes: list[str] | None = Field(None, max_length=MAX_NODES)
    edges: list[Pair] | None = Field(None, max_length=MAX_EDGES)
    edge_names: list[str] | None = Field(None, max_length=MAX_EDGES)
    roles: RolesSpec | None = None
    positions: dict[str, Position] | None = None
    fixed_edges: list[str] | None = Field(None, max_length=MAX_EDGES)
    device: dict[str, Any] | None = None


# -- reading --------------------------------------------------------------------------------


def loads_network_file(text: str, source: str = "<network file>") -> NetworkFile:
    """Read a network file from its text.

    Raises:
        NetworkFileError: a syntax error, a missing or unknown field, a bad value, or a
            network that is not consistent (unknown node, self-loop, duplicate names...).
    """
    data = parse_toml(text, source, NetworkFileError)
    try:
        spec = validate_spec(FileSpec, data)
        network = _network(spec)
        if network.n_edges == 0:
            raise SpecProblem("edges", "a network needs at least one edge")
        device, state = _device(spec.device, network) if spec.device is not None else (None, None)
        fixed = fixed_edge_indices(network, spec.fixed_edges or (), "fixed_edges")
    except SpecProblem as p:
        raise NetworkFileError(source, p.field, p.problem) from None
    return NetworkFile(network, device, state, source, fixed)


def fixed_edge_indices(network: Network, names, where: str) -> np.ndarray:
    """The ascending indices of the edges ``names`` (edge names) of ``network``;
    SpecProblem at ``where[i]`` for an unknown or repeated name."""
    out = []
    for i, name in enumerate(names):
        if name not in network.edge_names:
            raise SpecProblem(f"{where}[{i}]", f"no edge {shown(name)} in network {network.name}")
        j = network.edge_names.index(name)
        if j in out:
            raise SpecProblem(f"{where}[{i}]", f"edge {name} is named twice")
        out.append(j)
    if len(out) == network.n_edges:
        raise SpecProblem(where, "every edge is fixed: nothing would learn")
    return np.array(sorted(out), np.int64)


def load_network_file(path: str | Path) -> NetworkFile:
    """Read the network file at ``path`` (see the module's description).

    Raises:
        OSError: the file cannot be read.
        NetworkFileError: it is not a valid network file.
    """
    path = Path(path)
    return loads_network_file(read_text(path, NetworkFileError), str(path))


def _network(spec: FileSpec) -> Network:
    if spec.topology is not None:
        for name in ("nodes", "edges", "edge_names"):
            if getattr(spec, name) is not None:
                raise SpecProblem(name, "give either [topology] or nodes/edges, not both")
        net = _topology(spec.topology, spec.name)
        nodes = list(net.nodes)
    else:
        if spec.edges is None:
            raise SpecProblem("edges", "missing (give edges, or a [topology])")
        net = None
        nodes = list(spec.nodes) if spec.nodes is not None else []
        if spec.nodes is not None:
            seen: set[str] = set()
            for i, n in enumerate(spec.nodes):
                if n in seen:
                    raise SpecProblem(f"nodes[{i}]", f"node {n!r} listed twice")
                seen.add(n)
        known = set(nodes)
        for j, (a, b) in enumerate(spec.edges):
            for x in (a, b):
                if x not in known:
                    if spec.nodes is not None:
                        raise SpecProblem(f"edges[{j}]", f"no node named {x!r} in nodes")
                    nodes.append(x)
                    known.add(x)
            if a == b:
                raise SpecProblem(f"edges[{j}]", f"edge joins node {a!r} to itself")
        if spec.edge_names is not None and len(spec.edge_names) != len(spec.edges):
            raise SpecProblem("edge_names", f"{len(spec.edge_names)} names for {len(spec.edges)} edges")
        if spec.edge_names is not None:
            seen = set()
            for j, n in enumerate(spec.edge_names):
                if n in seen:
                    raise SpecProblem(f"edge_names[{j}]", f"edge name {n!r} used twice")
                seen.add(n)
    index = {n: i for i, n in enumerate(nodes)}
    roles = _roles(spec.roles, index, net)
    positions = None
    if spec.positions is not None:
        for n in spec.positions:
            if n not in index:
                raise SpecProblem(f"positions.{n}", f"no node named {n!r}")
        lacking = [n for n in nodes if n not in spec.positions]
        if lacking:
            raise SpecProblem("positions", f"no position for node {lacking[0]!r} (give every node one, or none)")
        positions = np.array([spec.positions[n] for n in nodes], dtype=float)
    try:
        if net is not None:
            return Network(
                net.nodes, net.edges, roles, net.edge_names, net.name,
                net.positions if positions is None else positions,
            )
        pairs = np.array([[index[a], index[b]] for a, b in spec.edges], dtype=np.int64).reshape(-1, 2)
        return Network(
            tuple(nodes), pairs, roles, tuple(spec.edge_names or ()),
            spec.name if spec.name is not None else "network", positions,
        )
    except NetworkError as exc:
        raise SpecProblem("", str(exc)) from None


def _topology(t: TopologySpec, name: str | None) -> Network:
    need = {
        "gen2_lattice": (),
        "square_grid": ("rows", "cols"),
        "random_connected": ("n_nodes", "n_edges"),
    }[t.kind]
    allowed = set(need) | {"square_grid": {"periodic"}, "random_connected": {"seed"}}.get(t.kind, set())
    for f in ("rows", "cols", "periodic", "n_nodes", "n_edges", "seed"):
        value = getattr(t, f)
        if f in need and value is None:
            raise SpecProblem(f"topology.{f}", f"missing (a {t.kind} needs {', '.join(need)})")
        if f not in allowed and value is not None:
            raise SpecProblem(f"topology.{f}", f"not a field of a {t.kind} (got {value!r})")
    try:
        if t.kind == "gen2_lattice":
            net = gen2_lattice()
        elif t.kind == "square_grid":
            net = square_grid(t.rows, t.cols, bool(t.periodic))
        else:
            net = random_connected(t.n_nodes, t.n_edges, t.seed or 0)
    except NetworkError as exc:
        raise SpecProblem("topology", str(exc)) from None
    if name is not None:
        net = Network(net.nodes, net.edges, net.roles, net.edge_names, name, net.positions)
    return net


def _roles(spec: RolesSpec | None, index: dict[str, int], net: Network | None) -> tuple[Role, ...]:
    if spec is None:
        return net.roles if net is not None else (Role.HIDDEN,) * len(index)
    roles = [Role.HIDDEN] * len(index)
    listed = [("sources", n, Role.SOURCE, i) for i, n in enumerate(spec.sources)]
    listed += [("targets", n, Role.TARGET, i) for i, n in enumerate(spec.targets)]
    if spec.ground is not None:
        listed.append(("ground", spec.ground, Role.GROUND, None))
    for field, n, role, i in listed:
        where = f"roles.{field}" + ("" if i is None else f"[{i}]")
        if n not in index:
            raise SpecProblem(where, f"no node named {n!r}")
        if roles[index[n]] is not Role.HIDDEN:
            raise SpecProblem(where, f"node {n!r} already has the role {roles[index[n]].value}")
        roles[index[n]] = role
    return tuple(roles)


def _values(x, n: int, field: str, twins: bool, positive: bool = False,
            within: tuple[float, float, str] | None = None) -> np.ndarray:
    """A per-edge (``(n,)``) or per-twin (``(2, n)``) parameter array from its file form;
    ``within`` is ``(lo, hi, unit)``, both ends included."""
    try:
        arr = np.asarray(x, dtype=float)
    except ValueError:
        raise SpecProblem(field, "the two twins' lists must have one value per edge each") from None
    if arr.ndim == 1 and arr.size != n:
        raise SpecProblem(field, f"{arr.size} values given for {n} edges")
    if arr.ndim == 2 and arr.shape[1] != n:
        raise SpecProblem(field, f"{arr.shape[1]} values per twin given for {n} edges")
    if not np.all(np.isfinite(arr)):
        raise SpecProblem(field, f"values must be finite (got {shown(x)})")
    if positive and not np.all(arr > 0):
        raise SpecProblem(field, f"values must be positive (got {shown(x)})")
    if within is not None:
        lo, hi, unit = within
        bad = arr[(arr < lo) | (arr > hi)]
        if bad.size:
            suffix = f" {unit}" if unit else ""
            raise SpecProblem(field, f"{bad.flat[0]:g}{suffix} is outside {lo:g}..{hi:g}{suffix}")
    return np.broadcast_to(arr, (2, n) if twins else (n,)).copy()


def _device(data: dict[str, Any], network: Network) -> tuple[EdgeDevice, np.ndarray | None]:
    kind = data.get("kind")
    if kind is None:
        raise SpecProblem("device.kind", f"missing (one of {', '.join(_DEVICE_SPECS)})")
    if kind not in _DEVICE_SPECS:
        raise SpecProblem("device.kind", f"unknown kind {shown(kind)} (one of {', '.join(_DEVICE_SPECS)})")
    if kind != "mixed":
        spec = validate_spec(_DEVICE_SPECS[kind], data, "device")
        return _single(spec, network.n_edges, "device")
    spec = validate_spec(MixedSpec, data, "device")
    e = network.n_edges
    names = {n: j for j, n in enumerate(network.edge_names)}
    owner = np.full(e, -1)
    parts, states = [], []
    for p, part in enumerate(spec.parts):
        where = f"device.parts[{p}]"
        if part.get("kind") not in ("resistor", "digipot", "mosfet"):
            got = shown(part.get("kind"))
            raise SpecProblem(f"{where}.kind", f"expected resistor, digipot or mosfet (got {got})")
        edges = part.get("edges")
        if not isinstance(edges, list) or not all(isinstance(x, str) for x in edges):
            raise SpecProblem(f"{where}.edges", f"expected a list of edge names (got {shown(edges)})")
        idx = []
        for i, x in enumerate(edges):
            if x not in names:
                raise SpecProblem(f"{where}.edges[{i}]", f"no edge named {x!r}")
            if owner[names[x]] >= 0:
                raise SpecProblem(f"{where}.edges[{i}]", f"edge {x!r} is already in part {owner[names[x]]}")
            owner[names[x]] = p
            idx.append(names[x])
        if "update_bias" in part:
            raise SpecProblem(f"{where}.update_bias", "a mixed device's update_bias is given on [device]")
        sub = validate_spec(_DEVICE_SPECS[part["kind"]], {k: v for k, v in part.items() if k != "edges"}, where)
        dev, state = _single(sub, len(idx), where)
        parts.append((dev, np.array(idx, dtype=np.int64)))
        states.append((where, idx, state))
    if np.any(owner < 0):
        lone = network.edge_names[int(np.flatnonzero(owner < 0)[0])]
        raise SpecProblem("device.parts", f"edge {lone!r} is in no part")
    given = [s is not None for _, _, s in states]
    if any(given) and not all(given):
        where = states[given.index(False)][0]
        raise SpecProblem(f"{where}.initial_state", "missing (give every part an initial state, or none)")
    bias = _values(spec.update_bias, e, "device.update_bias", twins=False)
    try:
        device = MixedEdges(e, update_bias=bias, parts=tuple(parts))
    except ValueError as exc:
        raise SpecProblem("device", str(exc)) from None
    for dev, idx in parts:
        _check_bias(bias[idx], dev, "device.update_bias")
    if not any(given):
        return device, None
    state = np.empty(e)
    for _, idx, s in states:
        state[idx] = s
    return device, state


def _check_bias(bias: np.ndarray, dev: EdgeDevice, field: str) -> None:
    """An update bias larger than the whole state range is no device's drift."""
    span = float(dev.state_max - dev.state_min)
    big = np.flatnonzero(np.abs(bias) > span)
    if big.size:
        j = int(big[0])
        raise SpecProblem(field, f"{bias[j]:g} {dev.state_unit} per update (edge {j}) is more than the state's "
                                 f"whole range {span:g} {dev.state_unit}")


def _single(spec, n: int, where: str) -> tuple[EdgeDevice, np.ndarray | None]:
    bias = _values(spec.update_bias, n, f"{where}.update_bias", twins=False)
    try:
        if isinstance(spec, ResistorSpec):
            dev: EdgeDevice = Resistor(
                n, update_bias=bias, gain=_values(spec.gain, n, f"{where}.gain", True, True, (0, GAIN_MAX, "")),
                state_min=spec.state_min, state_max=spec.state_max,
            )
        elif isinstance(spec, DigipotSpec):
            if not spec.r_min_ohm < spec.r_max_ohm:
                why = f"{spec.r_min_ohm:g} Ohm is not below r_max_ohm {spec.r_max_ohm:g}"
                raise SpecProblem(f"{where}.r_min_ohm", why)
            dev = Digipot(
                n, update_bias=bias, n_taps=spec.n_taps, r_min_ohm=spec.r_min_ohm,
                r_max_ohm=spec.r_max_ohm, gain=_values(spec.gain, n, f"{where}.gain", True, True, (0, GAIN_MAX, "")),
            )
        else:
            dev = Mosfet(
                n, update_bias=bias,
                s_a_per_v2=_values(spec.s_a_per_v2, n, f"{where}.s_a_per_v2", True, True, (S_MIN_A_PER_V2, S_MAX_A_PER_V2, "A/V^2")),
                vt_v=_values(spec.vt_v, n, f"{where}.vt_v", True, within=(-VOLTS_MAX, VOLTS_MAX, "V")),
                subthreshold_v=spec.subthreshold_v, state_min=spec.state_min, state_max=spec.state_max,
            )
    except ValueError as exc:
        raise SpecProblem(where, str(exc)) from None
    if not dev.state_min <= dev.state_max:
        raise SpecProblem(f"{where}.state_min", f"{dev.state_min:g} is above state_max {dev.state_max:g}")
    _check_bias(bias, dev, f"{where}.update_bias")
    if spec.initial_state is None:
        return dev, None
    state = _values(spec.initial_state, n, f"{where}.initial_state", twins=False)
    try:
        dev.check_state(state)
    except ValueError as exc:
        raise SpecProblem(f"{where}.initial_state", str(exc)) from None
    return dev, state


# -- writing --------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WIDTH = 92


def _atom(x) -> str:
    """One TOML value (a string, number or bool) as tomli_w writes it."""
    if isinstance(x, (float, np.floating)):
        x = float(x)
    elif isinstance(x, (np.integer,)):
        x = int(x)
    return tomli_w.dumps({"v": x})[len("v = "):].rstrip("\n")


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _atom(k)


def _inline(x) -> str:
    if isinstance(x, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_inline(v) for v in x) + "]"
    return _atom(x)


def _assign(key: str, x, one_per_line: bool = False) -> list[str]:
    """``key = value``, wrapped over lines (several items a line, or one) when long."""
    text = f"{_key(key)} = {_inline(x)}"
    if not isinstance(x, (list, tuple, np.ndarray)) or (len(text) <= _WIDTH and not one_per_line):
        return [text]
    out, line = [f"{_key(key)} = ["], "   "
    for item in x:
        piece = f" {_inline(item)},"
        if one_per_line or len(line) + len(piece) > _WIDTH:
            if line.strip():
                out.append(line)
            line = "   "
        line += piece
    if line.strip():
        out.append(line)
    return out + ["]"]


def _compact(arr: np.ndarray, integer: bool = False):
    """A parameter array in its shortest file form: a number, one per edge, or per twin."""
    arr = np.asarray(arr, dtype=float)
    cast = (lambda v: int(v)) if integer else float
    if arr.size and np.all(arr == arr.flat[0]):
        return cast(arr.flat[0])
    if arr.ndim == 2 and np.array_equal(arr[0], arr[1]):
        arr = arr[0]
    return [[cast(v) for v in row] for row in arr] if arr.ndim == 2 else [cast(v) for v in arr]


def _device_fields(dev: EdgeDevice, state: np.ndarray | None, bias: bool = True) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("kind", dev.kind)]
    if isinstance(dev, Resistor):
        out += [
            ("gain", _compact(dev.gain)), ("state_min", float(dev.state_min)),
            ("state_max", float(dev.state_max)),
        ]
    elif isinstance(dev, Digipot):
        out += [
            ("n_taps", int(dev.n_taps)), ("r_min_ohm", float(dev.r_min_ohm)),
            ("r_max_ohm", float(dev.r_max_ohm)), ("gain", _compact(dev.gain)),
        ]
    elif isinstance(dev, Mosfet):
        out += [
            ("s_a_per_v2", _compact(dev.s_a_per_v2)), ("vt_v", _compact(dev.vt_v)),
            ("subthreshold_v", False if dev.subthreshold_v is None else float(dev.subthreshold_v)),
            ("state_min", float(dev.state_min)), ("state_max", float(dev.state_max)),
        ]
    else:
        raise ValueError(f"cannot write a {dev.kind} device to a network file")
    if bias:
        out.append(("update_bias", _compact(dev.update_bias)))
    if state is not None:
        out.append(("initial_state", _compact(state, integer=dev.integer_state) if state.size else []))
    return out


def dumps_network_file(network: Network, device: EdgeDevice | None = None, state=None, fixed=()) -> str:
    """The text of a network file for ``network``, its ``device`` and ``state`` (optional), and
    its ``fixed`` edges (indices of the edges that do not learn).

    The network is written by its edges (never as a topology), so reading the text back
    gives the same nodes, edges, names, roles, positions, device parameters and state.

    Raises:
        ValueError: the device is of a kind the file cannot hold, or the state has the
            wrong shape.
    """
    lines = _assign("name", network.name)
    lines += _assign("nodes", list(network.nodes))
    if network.edge_names != tuple(f"e{j}" for j in range(network.n_edges)):
        lines += _assign("edge_names", list(network.edge_names))
    lines += _assign("edges", [[network.nodes[a], network.nodes[b]] for a, b in network.edges.tolist()], True)
    if len(fixed):
        lines += _assign("fixed_edges", [network.edge_names[j] for j in sorted(int(j) for j in fixed)])
    roles = []
    for key, idx in (("sources", network.sources), ("targets", network.targets)):
        if idx.size:
            roles += _assign(key, [network.nodes[i] for i in idx])
    if network.ground is not None:
        roles += _assign("ground", network.nodes[network.ground])
    if roles:
        lines += ["", "[roles]"] + roles
    if network.positions is not None:
        lines += ["", "[positions]"]
        for name, xy in zip(network.nodes, network.positions.tolist()):
            lines += _assign(name, xy)
    if device is not None:
        if device.n_edges != network.n_edges:
            raise ValueError(f"device has {device.n_edges} edges, network {network.n_edges}")
        st = None if state is None else np.asarray(state, dtype=float)
        if st is not None and st.shape != (network.n_edges,):
            raise ValueError(f"state must have shape ({network.n_edges},), got {st.shape}")
        lines += ["", "[device]"]
        if isinstance(device, MixedEdges):
            lines += _assign("kind", "mixed")
            lines += _assign("update_bias", _compact(device.update_bias))
            for dev, idx in device.parts:
                lines += ["", "[[device.parts]]"]
                fields = _device_fields(dev, None if st is None else st[idx], bias=False)
                lines += _assign(fields[0][0], fields[0][1])
                lines += _assign("edges", [network.edge_names[j] for j in idx])
                for k, v in fields[1:]:
                    lines += _assign(k, v)
        else:
            for k, v in _device_fields(device, st):
                lines += _assign(k, v)
    elif state is not None:
        raise ValueError("a state needs a device")
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # what we write must read back
    return text


def save_network_file(path: str | Path, network: Network, device: EdgeDevice | None = None, state=None,
                      fixed=()) -> None:
    """Write :func:`dumps_network_file`'s text to the file ``path``."""
    Path(path).write_text(dumps_network_file(network, device, state, fixed), encoding="utf-8")
