"""Writing a network, its edge devices, state and fixed voltages as a SPICE netlist that
ngspice runs (see :mod:`instruments.sim.netlist`).

Units: volts, siemens, ohms, A/V^2, 1/V.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping

import numpy as np

from .edges import EdgeDevice, MixedEdges, Mosfet
from .netlist_base import _SAFE_NAME, SPICE_OPTIONS, NetlistError
from .network import Network, NetworkError


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _unique(candidate: str, used: set[str]) -> str:
    name, k = candidate, 0
    while name.lower() in used:
        k += 1
        name = f"{candidate}_{k}"
    used.add(name.lower())
    return name


def spice_node_names(network: Network) -> list[str]:
    """The name each node of ``network`` gets in an exported netlist: ``0`` for the ground,
    its own name where that is a plain SPICE name (letters, digits, ``_``) not taken
    case-insensitively by an earlier node, else ``_n<index>``."""
    g = network.ground
    names: list[str | None] = [None] * network.n_nodes
    used = {"0", "gnd"}
    for i, n in enumerate(network.nodes):
        if i == g:
            names[i] = "0"
        elif _SAFE_NAME.fullmatch(n) and n.lower() not in used:
            names[i] = n
            used.add(n.lower())
    for i, n in enumerate(names):
        if n is None:
            names[i] = _unique(f"_n{i}", used)
    return names  # type: ignore[return-value]


def _edge_elements(device: EdgeDevice, state: np.ndarray, twin: int) -> list[tuple]:
    """Per edge: ("r", conductance S) or ("m", S A/V^2, V_T V, gate V, LAMBDA 1/V)."""
    e = device.n_edges
    if isinstance(device, MixedEdges):
        out: list = [None] * e
        for part, idx in device.parts:
            for j, item in zip(idx, _edge_elements(part, state[idx], twin)):
                out[j] = item
        return out
    if isinstance(device, Mosfet):
        return [
            ("m", float(device.s_a_per_v2[twin, j]), float(device.vt_v[twin, j]), float(state[j]),
             float(device.lambda_per_v[twin, j]))
            for j in range(e)
        ]
    if device.linear:
        k = np.broadcast_to(np.asarray(device.conductance(state, twin=twin), float), (e,))
        return [("r", float(x)) for x in k]
    raise NetlistError(f"cannot write {device.kind} edges as SPICE elements")


def _resistance_text(g: float) -> tuple[str, bool]:
    """The shortest text of a resistance (Ohm) for conductance ``g`` (S), and whether
    1/R gives back ``g`` exactly (for ~86 % of conductances some float R does)."""
    r = 1.0 / g
    for cand in (r, np.nextafter(r, np.inf), np.nextafter(r, 0.0)):
        if 1.0 / float(cand) == g:
            return repr(float(cand)), True
    return repr(r), False


def export_netlist(
    network: Network,
    device: EdgeDevice,
    state,
    fixed_v: Mapping[str, float] | None = None,
    twin: int = 0,
    title: str | None = None,
    options: str = SPICE_OPTIONS,
) -> str:
    """The netlist (text) of one twin of ``network`` with its edges in ``state``.

    Args:
        network: the topology; its ground node is written as SPICE's ``0``.
        device: the edges: :class:`Resistor`, :class:`Digipot` (written as its resistance at
            the tap), :class:`Mosfet` (written as level-1 NMOS with ``KP = S``, W = L,
            ``VTO = V_T``, bulk at ground, each gate held by its own source), or
            :class:`MixedEdges` of these. SPICE's level-1 model has no subthreshold current:
            with ``subthreshold_v`` set, the netlist agrees only where every edge is on.
        state: ``(E,)`` edge states (S, tap or V by device).
        fixed_v: node name -> voltage (V) for every node held by a source: every ``source``
            node must be in it; targets may be (the clamped twin); the ground, if given,
            must be 0.
        twin: 0 (free twin) or 1 (clamped twin): whose device parameters to write.
        title: the title line (default: the network's name).
        options: the ``.options`` line's settings.

    Raises:
        NetlistError: the network cannot be written (a missing source voltage, a conductance
            that is not positive, a device SPICE has no element for...).
    """
    src = f"network {network.name!r}"
    if twin not in (0, 1):
        raise NetlistError(f"twin must be 0 or 1, got {twin!r}", src)
    state = np.asarray(state, dtype=float)
    if state.shape != (network.n_edges,) or device.n_edges != network.n_edges:
        raise NetlistError(
            f"{network.n_edges} edges, but {device.n_edges} devices and state of shape {state.shape}", src
        )
    fixed = {str(k): float(v) for k, v in (fixed_v or {}).items()}
    for name, v in fixed.items():
        try:
            i = network.index(name)
        except NetworkError:
            raise NetlistError(f"fixed voltage given for {name!r}, which is not a node", src) from None
        if not math.isfinite(v):
            raise NetlistError(f"fixed voltage of {name} is {v}", src)
        if i == network.ground and v != 0.0:
            raise NetlistError(f"the ground node {name} is held at 0 V, not {v:g} V", src)
    missing = [network.nodes[i] for i in network.sources if network.nodes[i] not in fixed]
    if missing:
        raise NetlistError(f"no voltage given for source node(s) {', '.join(missing)}", src)
    elements = _edge_elements(device, state, twin)

    body = spice_node_names(network)
    used_nodes = {b.lower() for b in body} | {"0", "gnd"}
    used_elements: set[str] = set()
    lines = [_one_line(title if title is not None else network.name)]
    lines.append(_one_line(f"* {network.describe()}; {device.kind} edges, twin {twin}. Written by twinrig."))
    lines.append("* The '* twinrig:' comments restore node order, names, roles and positions on import.")
    g = network.ground
    for i, name in enumerate(network.nodes):
        fields = []
        if name != body[i]:
            fields.append(f"name={json.dumps(name)}")
        fields.append(f"role={json.dumps(network.roles[i].value)}")
        if network.positions is not None:
            fields.append(f"position={json.dumps([float(x) for x in network.positions[i]])}")
        lines.append(f"* twinrig: node {body[i]} " + " ".join(fields))

    edge_lines, edge_notes, gate_lines, models = [], [], [], {}
    parts = [p for p, _ in device.parts] if isinstance(device, MixedEdges) else [device]
    if any(isinstance(p, Mosfet) and p.subthreshold_v is not None for p in parts):
        edge_lines.append("* note: the twinrig MOSFET model's subthreshold current has no level-1 equivalent")
    for j, el in enumerate(elements):
        a, b = (body[x] for x in network.edges[j])
        ename = network.edge_names[j]
        letter = el[0].upper()
        if _SAFE_NAME.fullmatch(ename):
            elem = _unique(ename if ename[0].lower() == el[0] else letter + ename, used_elements)
        else:
            elem = _unique(f"{letter}{j}", used_elements)
        fields = [] if elem == ename else [f"name={json.dumps(ename)}"]
        if el[0] == "r":
            gk = el[1]
            if not (gk > 0 and math.isfinite(gk)):
                raise NetlistError(f"edge {ename} has conductance {gk:g} S, which no resistor has", src)
            text, exact = _resistance_text(gk)
            if not exact:
                fields.append(f"conductance_s={gk!r}")
            edge_lines.append(f"{elem} {a} {b} {text}")
        else:
            s, vt, vg, lam = el[1], el[2], el[3], el[4]
            if not (s > 0 and math.isfinite(s) and math.isfinite(vt) and math.isfinite(vg)):
                raise NetlistError(f"edge {ename}: S={s:g}, V_T={vt:g}, V_G={vg:g} cannot be written", src)
            model = models.setdefault((s, vt, lam), f"nmos{len(models) + 1}")
            gate = _unique(f"g_{elem}", used_nodes)
            edge_lines.append(f"{elem} {a} {gate} {b} 0 {model}")
            gate_lines.append(f"V{gate} {gate} 0 DC {vg!r}")
        if fields:
            edge_notes.append(f"* twinrig: edge {elem} " + " ".join(fields))
    lines += edge_notes
    lines.append("* fixed node voltages (V)")
    for i, name in enumerate(network.nodes):
        if name in fixed and i != g:
            vname = _unique(f"V{body[i]}", used_elements)
            lines.append(f"{vname} {body[i]} 0 DC {fixed[name]!r}")
    lines.append("* edges" + (" (resistances in Ohm)" if any(el[0] == "r" for el in elements) else ""))
    lines += edge_lines
    if gate_lines:
        lines.append("* gate voltages (V)")
        lines += gate_lines
        for (s, vt, lam), model in models.items():
            clm = f" LAMBDA={lam!r}" if lam else ""
            lines.append(f".model {model} NMOS (LEVEL=1 KP={s!r} VTO={vt!r}{clm})")
    lines.append(f".options {options}")
    lines.append(".op")
    lines += [".control", "set numdgt=15", ".endc", ".end"]
    return "\n".join(lines) + "\n"


def write_netlist(
    path: str | Path,
    network: Network,
    device: EdgeDevice,
    state,
    fixed_v: Mapping[str, float] | None = None,
    twin: int = 0,
    **kw,
) -> None:
    """Write :func:`export_netlist`'s text (same arguments) to the file ``path``."""
    Path(path).write_text(export_netlist(network, device, state, fixed_v, twin, **kw), encoding="utf-8")
