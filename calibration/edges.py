"""Calibrating the edge boards: their ADC offsets, and the devices they drive.

Two routines, each on an open :class:`~instruments.rig.Rig`:

- :func:`calibrate_adc`: every board's drop offsets. With no current flowing, every node of
  a twin sits at one voltage and every true drop is zero, so what a board reads as its drop
  is the difference of its two terminals' ADC offsets. The routine measures it, stores it on
  the board (``store_calibration``) so that the firmware subtracts it, and checks with a
  second measurement that the drops now read zero. A network with a ground node has its
  nodes at one voltage only at 0 V (the ground's); at any other level current flows to the
  ground, and the true drops must be measured, node by node, with the multimeter.
- :func:`calibrate_devices`: every edge device of both twins, through the source-meter
  wired across it. A MOSFET is swept at small drain voltages (triode) at several gate
  voltages, and ``S`` and ``V_T`` are fitted jointly from the triode law
  ``I = S (V_G - V_T - Vds / 2) Vds``, which is linear in ``S`` and ``S V_T``; a digital
  potentiometer has the resistance of each tap measured at one small voltage.

The result, an :class:`EdgeCalibration`, is plain data (``to_dict``/``from_dict`` for the
calibration store); :func:`device_model` turns it into the edge model the controller uses
(the network as calibrated, not as designed). Both, with the fits (:func:`fit_triode`,
:func:`mismatch`), are in :mod:`calibration.edge_model` and importable from here. Units: V,
A, Ohm; ADC offsets and drops in uV.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Callable, Sequence

import numpy as np

from instruments.interfaces import SourceMeter
from instruments.safe_instruments import SafeSourceMeter
from instruments.sim.edges import DIGIPOT_TAPS
from instruments.wiring import NODE_MAX_V

from .daq import ConnectDmm
from .edge_model import EdgeCalibration, device_model, fit_triode, mismatch  # noqa: F401 (device_model: re-exported)

TWINS = ("free", "clamped")
#: Gate state units on a MOSFET board (uV of gate per state unit, in V).
GATE_UV = 1e-6

ConnectSmu = Callable[[int, str], SourceMeter | None]
"""``connect_smu(edge, twin)``: wire the source-meter across edge ``edge``'s device of the
``"free"`` or ``"clamped"`` twin and return it (None: the rig's own ``smu``). On the
simulated bench ``rig.bench.probe_smu``; on a real bench a switch matrix, or the command
line asking the scientist to move the leads."""

Progress = Callable[[str, int, int], None]


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _progress(on_progress: Progress | None) -> Progress:
    return on_progress or (lambda what, done, total: None)


def _boards(rig) -> tuple[np.ndarray, np.ndarray]:
    """(addresses, edges) of the rig's boards; ValueError when it has no bus."""
    if rig.bus is None:
        raise ValueError("the rig has no edge bus: there are no boards to calibrate")
    return rig.wiring.board_edges()


# -- ADC offsets -------------------------------------------------------------------------------


def _levels(rig, levels_v, connect_dmm) -> tuple[float, ...]:
    """The levels (V) to measure at: checked against the outputs' limits, and against the
    ground node, which holds its nodes' neighbours away from any level but 0 V."""
    net = rig.wiring.network
    grounded = net.ground is not None
    if levels_v is None:
        return (0.0,) if grounded and connect_dmm is None else (0.05, 0.2, 0.4)
    levels = tuple(float(v) for v in levels_v)
    if not levels:
        raise ValueError("levels_v: at least one level is needed")
    lim = rig.limits
    for v in levels:
        if not (np.all(lim.min_v <= v) and np.all(v <= lim.max_v)):
            raise ValueError(f"levels_v: {v:g} V is outside the outputs' limits "
                             f"({np.max(lim.min_v):g}..{np.min(lim.max_v):g} V)")
        if grounded and connect_dmm is None and v != 0.0:
            raise ValueError(
                f"levels_v: at {v:g} V current flows to the ground node {net.nodes[net.ground]!r}, "
                "so the nodes are not at one voltage; measure at 0 V, or give connect_dmm to measure the true drops")
    return levels


def _mean_drops(rig, addresses, n_reads: int) -> np.ndarray:
    """Mean of ``n_reads`` ``sample_drops`` per board, (B, 2) uV: free, clamped."""
    out = np.zeros((len(addresses), 2))
    for _ in range(n_reads):
        for k, a in enumerate(addresses):
            r = rig.bus.request(int(a), "sample_drops")
            out[k, 0] += r["dv_free_uv"]
            out[k, 1] += r["dv_clamped_uv"]
    return out / n_reads


def _true_drops(rig, edges, connect_dmm) -> np.ndarray:
    """The boards' true drops (B, 2) uV: zero, or by the meter node by node."""
    if connect_dmm is None:
        return np.zeros((len(edges), 2))
    net = rig.wiring.network
    v = np.empty((2, net.n_nodes))
    for t, twin in enumerate(TWINS):
        for n, name in enumerate(net.nodes):
            dmm = connect_dmm(node=name, twin=twin)
            dmm = rig.dmm if dmm is None else dmm
            if dmm is None:
                raise ValueError("no multimeter: connect_dmm returned None and the rig has none")
            v[t, n] = dmm.measure_dc_volts()
    a, b = net.edges[edges, 0], net.edges[edges, 1]
    return 1e6 * (v[:, a] - v[:, b]).T


def calibrate_adc(rig, *, levels_v: Sequence[float] | None = None, n_reads: int = 8,
                  connect_dmm: ConnectDmm | None = None, on_progress: Progress | None = None) -> dict:
    """Measure every board's drop offsets, store them on the board, and check them.

    At each level every output (sources and clamps) is driven to ``V`` and every board asked
    ``n_reads`` times for its drops; the raw drop offset of a twin is the mean drop minus the
    true drop (zero without a meter), averaged over the levels, plus what the board already
    subtracts. It is stored as ``offset_a = drop offset, offset_b = 0`` (the firmware reads
    ``(a - offset_a) - (b - offset_b)``), and a second measurement at the same levels gives
    the drops that remain.

    The true drops are zero only when the outputs really are equal: run it on a rig with its
    DAQ calibration applied (an output's offset of a few hundred uV drives a current), or
    give ``connect_dmm``.

    Args:
        rig: an open rig with an edge bus.
        levels_v: the output levels (V); default 0 V on a network with a ground node (the only
            level at which no current flows), else 0.05, 0.2 and 0.4 V; with ``connect_dmm``
            any levels (default 0.05, 0.2, 0.4 V).
        n_reads: ``sample_drops`` per board and level (>= 1).
        connect_dmm: routes the meter to a node (see :data:`calibration.daq.ConnectDmm`);
            every node of both twins is read at each level and the true drops subtracted.
        on_progress: ``on_progress(stage, done, total)`` per level and pass.

    Returns:
        address -> ``{"free_uv", "clamped_uv"`` (raw drop offsets: ADC offset of terminal a
        minus that of b, uV), ``"free_by_level_uv", "clamped_by_level_uv"`` (lists, one per
        level), ``"check_free_uv", "check_clamped_uv"`` (drops left after storing, uV),
        ``"stored_uv"`` (the four offsets written: free a, free b, clamped a, clamped b)``}``;
        JSON-able. The outputs are back at their safe values.
    """
    if n_reads < 1:
        raise ValueError(f"n_reads must be >= 1, got {n_reads}")
    addresses, edges = _boards(rig)
    levels = _levels(rig, levels_v, connect_dmm)
    progress = _progress(on_progress)
    daq, n_ao = rig.daq, len(rig.daq.ao_channels)
    total = 2 * len(levels)

    def measure(stage: str, done: int) -> np.ndarray:
        """Mean drop minus true drop (L, B, 2) at every level."""
        out = np.empty((len(levels), len(addresses), 2))
        for k, v in enumerate(levels):
            progress(f"{stage} at {v:g} V", done + k, total)
            daq.ramp_to(np.full(n_ao, v))
            out[k] = _mean_drops(rig, addresses, n_reads) - _true_drops(rig, edges, connect_dmm)
        return out

    try:
        before = np.array([[r[f] for f in ("offset_free_a_uv", "offset_free_b_uv",
                                           "offset_clamped_a_uv", "offset_clamped_b_uv")]
                           for r in (rig.bus.request(int(a), "read_calibration") for a in addresses)], float)
        subtracted = np.stack([before[:, 0] - before[:, 1], before[:, 2] - before[:, 3]], axis=1)
        by_level = measure("measure", 0) + subtracted
        offset = by_level.mean(axis=0)
        stored = np.zeros((len(addresses), 4), np.int64)
        stored[:, 0] = np.rint(offset[:, 0])
        stored[:, 2] = np.rint(offset[:, 1])
        for a, s in zip(addresses, stored):
            rig.bus.request(int(a), "store_calibration", offset_free_a_uv=int(s[0]), offset_free_b_uv=0,
                            offset_clamped_a_uv=int(s[2]), offset_clamped_b_uv=0)
        check = measure("check", len(levels)).mean(axis=0)
        daq.ramp_to(rig.limits.safe_v)
    finally:
        daq.safe_state()
    progress("", total, total)
    return {int(a): {"free_uv": float(offset[k, 0]), "clamped_uv": float(offset[k, 1]),
                     "free_by_level_uv": by_level[:, k, 0].tolist(),
                     "clamped_by_level_uv": by_level[:, k, 1].tolist(),
                     "check_free_uv": float(check[k, 0]), "check_clamped_uv": float(check[k, 1]),
                     "stored_uv": stored[k].tolist(), "levels_v": list(levels)}
            for k, a in enumerate(addresses)}


# -- the devices -------------------------------------------------------------------------------


def _smu(rig, connect_smu: ConnectSmu, edge: int, twin: str, compliance_a: float, nplc: float,
         max_v: float, max_step_v: float) -> SafeSourceMeter:
    """The SMU across one device, inside the safety layer (levels 0..``max_v`` V, ramped in
    ``max_step_v`` steps; one the rig wired in already keeps its own limits too): configured
    with its output off at 0 V, then switched on at 0 V, never at a level left from before."""
    smu = connect_smu(edge, twin)
    smu = rig.smu if smu is None else smu
    if smu is None:
        raise ValueError("no source-meter: connect_smu returned None and the rig has none")
    if not isinstance(smu, SafeSourceMeter):
        smu = SafeSourceMeter(smu, max_v=max_v, max_step_v=max_step_v, compliance_a=compliance_a, nplc=nplc,
                              name=f"smu across edge {edge} ({twin})")
    smu.configure(compliance_a, nplc)
    smu.output(True)
    return smu


def _measure(smu: SourceMeter, voltage_v: float, compliance_a: float) -> tuple[float, bool]:
    """One current (A), and whether it hit the current limit."""
    i = smu.measure_current(voltage_v)
    return i, smu.in_compliance() or abs(i) >= compliance_a


def _sweep_mosfet(smu, vds: np.ndarray, compliance_a: float) -> tuple[np.ndarray, dict | None]:
    """Currents at the ascending ``vds`` (A), stopping before a point whose current could
    reach the limit: in triode ``I / Vds`` falls as ``Vds`` rises, so ``I_k vds_max / vds_k``
    bounds every current still to come. Returns (currents, why stopped or None)."""
    i = np.full(vds.size, np.nan)
    for k, v in enumerate(vds):
        i[k], hit = _measure(smu, float(v), compliance_a)
        if hit:
            return np.full(vds.size, np.nan), {"why": "hit the compliance", "vds_v": float(v), "current_a": float(i[k])}
        bound = abs(i[k]) * vds[-1] / v
        if k + 1 < vds.size and bound >= compliance_a:
            return np.full(vds.size, np.nan), {"why": "would exceed the compliance", "vds_v": float(vds[-1]),
                                               "current_a": float(bound)}
    return i, None


def rig_fixed_edges(rig) -> np.ndarray:
    """The edges of ``rig`` that do not learn: a simulated bench's ``fixed_edges`` (an
    experiment's, or its network file's); none on a real bench, whose every edge has a board."""
    bench = getattr(rig, "bench", None)
    return np.asarray(getattr(bench, "fixed_edges", ()), np.int64)


def _fixed_resistance(smu, levels_v: np.ndarray, compliance_a: float) -> tuple[float, dict | None]:
    """A fixed edge's resistance (Ohm) from its currents at ``levels_v`` (V, ascending), the
    least-squares line through the origin ``I = V / R``; NaN and why, when a level hit the
    current limit (the levels after it are not driven)."""
    i = np.empty(levels_v.size)
    for k, v in enumerate(levels_v):
        i[k], hit = _measure(smu, float(v), compliance_a)
        if hit:
            return math.nan, {"why": "hit the compliance", "level_v": float(v), "current_a": float(i[k])}
    g = float(np.dot(i, levels_v) / np.dot(levels_v, levels_v))
    return (1.0 / g if g > 0 else math.nan), None


def calibrate_devices(rig, connect_smu: ConnectSmu, *, kind: str, gates_v: Sequence[float] = (1.5, 2.0, 2.5, 3.0),
                      vds_v: Sequence[float] = (0.02, 0.04, 0.06, 0.08, 0.1), taps: Sequence[int] | None = None,
                      probe_v: float = 0.02, compliance_a: float = 1e-3, nplc: float = 1.0, adc: dict | None = None,
                      smu_max_step_v: float = 0.05, on_progress: Progress | None = None,
                      fixed_edges: Sequence[int] | None = None) -> EdgeCalibration:
    """Measure every edge device of both twins with the source-meter and fit its model.

    MOSFET boards: for each edge and twin, the SMU is wired across the device, and for each
    gate voltage (ascending) the board's gate is set over the bus and the drain voltages
    ``vds_v`` (ascending, small enough for triode: ``Vds < V_G - V_T``) are sourced one by one;
    S and V_T are fitted from all gates at once (:func:`fit_triode`). A device that hits, or
    by the triode bound could hit, the current limit is not driven further: it is listed in
    ``refused`` and its fit is NaN. Digipot boards: each tap of ``taps`` (ascending) is set and
    the current at ``probe_v`` measured, ``R = probe_v / I``; a tap whose current would reach
    the limit (extrapolated from the two taps before, log-spaced) or does is not driven, nor
    any tap above it, and is listed in ``refused``. A fixed edge (``fixed_edges``: it does
    not learn, e.g. the 500 Ohm resistor beside two MOSFETs of arXiv:2505.22887's network)
    has no state to set and no device law to fit: its resistance is measured at the drain
    voltages (MOSFET boards) or at ``probe_v`` (digipots) and stored in ``fixed_r_ohm``; its
    device fits are NaN.

    The SMU drives each device inside the safety layer (:func:`_smu`): switched on at 0 V,
    every level within the boards' node range (:data:`~instruments.wiring.NODE_MAX_V`) and
    reached in steps of at most ``smu_max_step_v``, ramped back to 0 V before it is switched
    off. Every board is back at its state from before, and the SMU's output off at 0 V,
    afterwards.

    Args:
        rig: an open rig with an edge bus.
        connect_smu: wires the SMU across one device (see :data:`ConnectSmu`).
        kind: the boards' kind, ``"mosfet"`` or ``"digipot"``; must be the wiring's.
        gates_v: gate voltages (V), at least two different ones, inside the boards' limits.
        vds_v: drain voltages (V), in (0, 0.45] (the MOSFET boards' node range).
        taps: digipot taps to measure; default all (0..99).
        probe_v: the digipots' measuring voltage (V), in (0, 1] (the digipot boards' node range).
        compliance_a, nplc: the SMU's current limit (A) and integration (power-line cycles).
        adc: the boards' drop offsets (:func:`calibrate_adc`'s result), kept in the result.
        smu_max_step_v: the SMU's ramp limit (V per write), > 0.
        on_progress: ``on_progress("edge j twin", done, total)`` per device, and
            ``("", total, total)`` at the end.
        fixed_edges: edges that do not learn; None: the rig's own (:func:`rig_fixed_edges`).

    Raises:
        ValueError: bad arguments, or a kind other than the wiring's.
    """
    if kind not in ("mosfet", "digipot"):
        raise ValueError(f"kind must be 'mosfet' or 'digipot', got {kind!r}")
    if kind != rig.wiring.edge_kind:
        raise ValueError(f"kind {kind!r}: the rig {rig.wiring.name!r} has {rig.wiring.edge_kind} boards")
    addresses, edges = _boards(rig)
    gates = np.sort(np.asarray(gates_v, float))
    vds = np.sort(np.asarray(vds_v, float))
    tap_list = np.sort(np.asarray(range(DIGIPOT_TAPS) if taps is None else taps, np.int64))
    node_max_v = NODE_MAX_V[kind]  # what the edge boards' devices take across them
    if kind == "mosfet":
        if np.unique(gates).size < 2 or not np.all(np.isfinite(gates)):
            raise ValueError(f"gates_v: at least two different finite gate voltages are needed, got {list(gates_v)}")
        if vds.size < 1 or not np.all((vds > 0) & (vds <= node_max_v)):
            raise ValueError(f"vds_v: drain voltages must be in (0, {node_max_v:g}] V, the mosfet boards' node "
                             f"range; got {list(vds_v)}")
    elif tap_list.size < 1 or not 0 < probe_v <= node_max_v:
        raise ValueError(f"need at least one tap and probe_v in (0, {node_max_v:g}] V (the digipot boards' node "
                         f"range), got taps {list(tap_list)} and probe_v {probe_v}")
    progress = _progress(on_progress)
    n_edges = rig.wiring.network.n_edges
    fixed = set((rig_fixed_edges(rig) if fixed_edges is None else np.asarray(fixed_edges, np.int64)).tolist())
    if fixed - set(range(n_edges)):
        raise ValueError(f"fixed_edges {sorted(fixed)}: the network's edges are 0..{n_edges - 1}")
    fixed_r = np.full((2, n_edges), np.nan) if fixed else None
    fixed_levels = vds if kind == "mosfet" else np.array([probe_v])
    board_of = np.zeros(n_edges, np.int64)
    board_of[edges] = addresses
    identities = dict(rig.identities())
    refused: list[dict] = []
    bus = rig.bus
    original = bus.read_states([int(a) for a in addresses])
    smu = None
    total, done = 2 * len(edges), 0
    if kind == "mosfet":
        current = np.full((2, n_edges, gates.size, vds.size), np.nan)
        gate_set = np.full((2, n_edges, gates.size), np.nan)
    else:
        r_ohm = np.full((2, n_edges, tap_list.size), np.nan)
    try:
        for a, j in zip(addresses, edges):
            a, j = int(a), int(j)
            for t, twin in enumerate(TWINS):
                progress(f"edge {j} {twin}", done, total)
                done += 1
                smu = _smu(rig, connect_smu, j, twin, compliance_a, nplc, node_max_v, smu_max_step_v)
                where = {"edge": j, "twin": twin, "address": a}
                if j in fixed:
                    fixed_r[t, j], stop = _fixed_resistance(smu, fixed_levels, compliance_a)
                    if stop:
                        refused.append({**where, "fixed": True, **stop})
                elif kind == "mosfet":
                    for g, vg in enumerate(gates):
                        reply = bus.request(a, "set_state", state=int(round(vg / GATE_UV)))
                        gate_set[t, j, g] = reply["state"] * GATE_UV
                        current[t, j, g], stop = _sweep_mosfet(smu, vds, compliance_a)
                        if stop:
                            current[t, j] = np.nan
                            refused.append({**where, "gate_v": float(vg), **stop})
                            break
                else:
                    seen: list[tuple[int, float]] = []
                    for k, tap in enumerate(tap_list):
                        if len(seen) >= 2:
                            (t0, i0), (t1, i1) = seen[-2:]
                            guess = i1 * (i1 / i0) ** ((tap - t1) / (t1 - t0)) if i0 > 0 and i1 > 0 else 0.0
                            if guess >= compliance_a:
                                refused.extend({**where, "tap": int(x), "why": "would exceed the compliance",
                                                "current_a": float(guess)} for x in tap_list[k:])
                                break
                        bus.request(a, "set_state", state=int(tap))
                        i, hit = _measure(smu, probe_v, compliance_a)
                        if hit:
                            refused.extend({**where, "tap": int(x), "why": "hit the compliance" if x == tap else
                                            "above a tap that hit the compliance", "current_a": float(i)}
                                           for x in tap_list[k:])
                            break
                        r_ohm[t, j, k] = probe_v / i
                        seen.append((int(tap), float(i)))
                smu.safe_state()  # ramped down to 0 V, then off
    finally:
        if smu is not None:
            smu.safe_state()
        for a, state in original.items():
            bus.request(int(a), "set_state", state=int(state))
    progress("", total, total)

    common = dict(rig=rig.wiring.name, kind=kind, addresses=tuple(int(a) for a in board_of), date=_now_iso(),
                  identities=identities, adc=dict(adc or {}), compliance_a=float(compliance_a),
                  refused=tuple(refused), fixed_r_ohm=fixed_r)
    if kind == "mosfet":
        s, vt, res = _fit_all(gate_set, vds, current)
        return EdgeCalibration(**common, s_a_per_v2=s, vt_v=vt, residual_a=res, gates_v=tuple(gates.tolist()),
                               vds_v=tuple(vds.tolist()), mismatch=mismatch("mosfet", s, vt))
    return EdgeCalibration(**common, taps=tuple(int(x) for x in tap_list), r_ohm=r_ohm, probe_v=float(probe_v),
                           mismatch=mismatch("digipot", r_ohm=r_ohm))


def _fit_all(gate_set: np.ndarray, vds: np.ndarray, current: np.ndarray):
    """Fit every device: points flattened over (gate, vds)."""
    shape = current.shape[:2] + (-1,)
    vg = np.broadcast_to(gate_set[..., None], current.shape).reshape(shape)
    v = np.broadcast_to(vds, current.shape).reshape(shape)
    return fit_triode(vg, v, current.reshape(shape))


# -- for the command line ----------------------------------------------------------------------


def calibrate_edges(rig, connect_smu: ConnectSmu, *, quiet: bool = True, connect_dmm: ConnectDmm | None = None,
                    **device_options) -> EdgeCalibration:
    """:func:`calibrate_adc` then :func:`calibrate_devices` (of the wiring's kind, with
    ``device_options``), as one :class:`EdgeCalibration`; unless ``quiet``, one line of
    progress per stage on stderr."""
    import sys

    def say(what: str, done: int, total: int) -> None:
        if what and not quiet:
            print(f"[{done + 1}/{total}] {what}", file=sys.stderr)
    adc = calibrate_adc(rig, connect_dmm=connect_dmm, on_progress=say)
    return calibrate_devices(rig, connect_smu, kind=rig.wiring.edge_kind, adc=adc, on_progress=say,
                             **device_options)


def _as_calibration(cal) -> EdgeCalibration:
    return cal if isinstance(cal, EdgeCalibration) else EdgeCalibration.from_dict(cal)


def write_adc_offsets(rig, cal) -> None:
    """Store a calibration's ADC offsets (an :class:`EdgeCalibration` or its dict) on the
    rig's boards, e.g. after a board was replaced or reset its storage. ValueError when the
    calibration has a board the rig does not."""
    cal = _as_calibration(cal)
    addresses = {int(a) for a in _boards(rig)[0]}
    unknown = sorted(set(cal.adc) - addresses)
    if unknown:
        raise ValueError(f"the edge calibration has boards {unknown} that rig {rig.wiring.name!r} does not")
    for a, offsets in sorted(cal.adc.items()):
        fa, fb, ca, cb = (int(x) for x in offsets["stored_uv"])
        rig.bus.request(a, "store_calibration", offset_free_a_uv=fa, offset_free_b_uv=fb,
                        offset_clamped_a_uv=ca, offset_clamped_b_uv=cb)


def summary(cal) -> str:
    """A few lines for people: the ADC offsets, the devices' fits and mismatch, the refusals."""
    cal = _as_calibration(cal)
    n_fixed = 0 if cal.fixed_r_ohm is None else int(np.isfinite(cal.fixed_r_ohm).any(axis=0).sum())
    edges = (f"{cal.n_edges} {cal.kind} edges" if not n_fixed else
             f"{cal.n_edges} edges ({cal.n_edges - n_fixed} {cal.kind}, {n_fixed} fixed)")
    lines = [f"edge boards of {cal.rig}: {edges}, calibrated {cal.date}"]
    if cal.adc:
        off = np.array([[v["free_uv"], v["clamped_uv"]] for v in cal.adc.values()])
        left = np.array([[v["check_free_uv"], v["check_clamped_uv"]] for v in cal.adc.values()])
        lines.append(f"  ADC drop offsets: largest {np.max(np.abs(off)):.0f} uV, after storing at most "
                     f"{np.max(np.abs(left)):.1f} uV")
    m = cal.mismatch
    if cal.kind == "mosfet" and cal.s_a_per_v2 is not None:
        lines.append(f"  S {np.nanmin(cal.s_a_per_v2):.4g}..{np.nanmax(cal.s_a_per_v2):.4g} A/V^2, "
                     f"V_T {np.nanmin(cal.vt_v):.4f}..{np.nanmax(cal.vt_v):.4f} V, "
                     f"largest fit residual {np.nanmax(cal.residual_a):.3g} A")
        lines.append(f"  twin mismatch: S {100 * m['s_rel_rms']:.2f} % rms ({100 * m['s_rel_max_abs']:.2f} % max), "
                     f"V_T {1e3 * m['vt_rms_v']:.2f} mV rms ({1e3 * m['vt_max_abs_v']:.2f} mV max)")
    elif cal.r_ohm is not None:
        lines.append(f"  {len(cal.taps)} taps per device, R {np.nanmin(cal.r_ohm):.4g}..{np.nanmax(cal.r_ohm):.4g} Ohm")
        lines.append(f"  twin mismatch: R {100 * m['r_rel_rms']:.2f} % rms ({100 * m['r_rel_max_abs']:.2f} % max)")
    if cal.fixed_r_ohm is not None:
        for j in np.flatnonzero(np.isfinite(cal.fixed_r_ohm).any(axis=0)):
            free, clamped = cal.fixed_r_ohm[:, j]
            lines.append(f"  fixed edge {j}: R {free:.6g} Ohm free, {clamped:.6g} Ohm clamped (not a board's device)")
    for r in cal.refused:
        at = (f"gate {r['gate_v']:g} V" if "gate_v" in r else f"{r['level_v']:g} V (fixed edge)" if r.get("fixed")
              else f"tap {r['tap']}")
        lines.append(f"  refused: edge {r['edge']} {r['twin']} (board {r['address']}) at {at}: {r['why']} "
                     f"({r['current_a']:.3g} A)")
    return "\n".join(lines)
