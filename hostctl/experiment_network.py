"""The experiment file's ``[network]``: a built-in network or a network file, its roles, and
the edges' initial state (see :mod:`hostctl.experiment`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from instruments.sim.edges import DIGIPOT_TAPS, GEN2_GATE_MAX_V, GEN2_GATE_MIN_V
from instruments.sim.netfile import NetworkFileError, load_network_file
from instruments.sim.network import Network, NetworkError, gen2_lattice
from instruments.tomlspec import SpecProblem
from instruments.wiring import NODE_MAX_V, gen1_grid


def network_of(spec, base: Path | None):
    """The network, its edge kind and the network file (None for a built-in)."""
    nf = None
    if spec.builtin == "gen2":
        net, kind = gen2_lattice(), "mosfet"
    elif spec.builtin == "gen1":
        net, kind = gen1_grid(), "digipot"
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
        net = nf.network
        kind = nf.device.kind if nf.device is not None else "mosfet"
        if kind not in NODE_MAX_V:
            raise SpecProblem("network.file", f"edges of kind {kind!r}: the bench has mosfet or digipot boards")
    if spec.sources is not None:
        try:
            net = net.with_roles(sources=spec.sources, targets=spec.targets, ground=spec.ground)
        except (NetworkError, KeyError, ValueError) as exc:
            raise SpecProblem("network", str(exc).strip("'\"")) from None
    for role, nodes in (("sources", net.sources), ("targets", net.targets)):
        if nodes.size == 0:
            raise SpecProblem(f"network.{role}", f"network {net.name} has no {role[:-1]} node")
    return net, kind, nf


def initial_state(value, network: Network, edge_kind: str) -> np.ndarray | None:
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
