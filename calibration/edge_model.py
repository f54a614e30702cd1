"""What an edge calibration is, and the models fitted to it.

The result of :mod:`calibration.edges`'s routines and of the calibration store, and the
arithmetic it is made of, none of it touching a rig:

- :class:`EdgeCalibration`: the edge boards and their devices, calibrated; plain data
  (``to_dict``/``from_dict`` for the calibration store);
- :func:`fit_triode`: ``S`` and ``V_T`` of a MOSFET from its triode currents,
  ``I = S (V_G - V_T - Vds / 2) Vds``, linear in ``S`` and ``S V_T``;
- :func:`mismatch`: the twins' difference on every board, and its summary;
- :func:`device_model`: the edge model the controller uses (the network as calibrated, not
  as designed).

Every name here is importable from :mod:`calibration.edges` too. Units: V, A, Ohm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from instruments.sim.edges import Digipot, EdgeDevice, Mosfet

__all__ = ["EdgeCalibration", "device_model", "fit_triode", "mismatch"]


# -- the result --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EdgeCalibration:
    """The edge boards and their devices, calibrated. Arrays are indexed ``[twin, edge]``
    (twin 0 free, 1 clamped; edges in the network's order).

    Attributes:
        rig: the rig's name (its wiring's).
        kind: ``"mosfet"`` or ``"digipot"``.
        addresses: the board of each edge.
        date: when (ISO 8601, UTC); identities: role -> identity of the instruments.
        adc: address -> drop offsets, as :func:`~calibration.edges.calibrate_adc` returns them ({} when not measured).
        s_a_per_v2, vt_v: (2, E) fitted S (A/V^2) and V_T (V) of each MOSFET (NaN: refused).
        residual_a: (2, E) RMS of each MOSFET fit's residuals (A).
        gates_v, vds_v: the gate and drain voltages swept (V).
        taps: the digipot taps measured; r_ohm: (2, E, len(taps)) their resistance (Ohm, NaN:
            not driven).
        probe_v: the digipots' measuring voltage (V); compliance_a: the SMU's current limit (A).
        refused: the devices (or taps) not measured, each ``{"edge", "twin", "address",
            "why", ...}`` with the gate (V) or tap and the current that stopped it.
        mismatch: the twins' difference per board and summarised (see :func:`mismatch`).
        fixed_r_ohm: (2, E) the measured resistance of each fixed edge (one that does not
            learn; NaN elsewhere), or None when the network has none (Ohm).
    """

    rig: str
    kind: str
    addresses: tuple[int, ...]
    date: str
    identities: dict = field(default_factory=dict)
    adc: dict = field(default_factory=dict)
    s_a_per_v2: np.ndarray | None = None
    vt_v: np.ndarray | None = None
    residual_a: np.ndarray | None = None
    gates_v: tuple[float, ...] = ()
    vds_v: tuple[float, ...] = ()
    taps: tuple[int, ...] = ()
    r_ohm: np.ndarray | None = None
    probe_v: float = math.nan
    compliance_a: float = math.nan
    refused: tuple[dict, ...] = ()
    mismatch: dict = field(default_factory=dict)
    fixed_r_ohm: np.ndarray | None = None

    @property
    def n_edges(self) -> int:
        return len(self.addresses)

    def to_dict(self) -> dict:
        """Plain JSON-able values (arrays as nested lists, NaN as None)."""
        def arr(a):
            return None if a is None else _lists(a)
        return {"rig": self.rig, "kind": self.kind, "addresses": list(self.addresses), "date": self.date,
                "identities": dict(self.identities), "adc": {str(a): dict(v) for a, v in self.adc.items()},
                "s_a_per_v2": arr(self.s_a_per_v2), "vt_v": arr(self.vt_v), "residual_a": arr(self.residual_a),
                "gates_v": list(self.gates_v), "vds_v": list(self.vds_v), "taps": list(self.taps),
                "r_ohm": arr(self.r_ohm), "probe_v": _scalar(self.probe_v),
                "compliance_a": _scalar(self.compliance_a),
                "refused": [dict(r) for r in self.refused], "mismatch": _lists(self.mismatch),
                "fixed_r_ohm": arr(self.fixed_r_ohm)}

    @classmethod
    def from_dict(cls, d: dict) -> "EdgeCalibration":
        def arr(name):
            return None if d.get(name) is None else np.asarray(d[name], float)
        return cls(str(d["rig"]), str(d["kind"]), tuple(int(a) for a in d["addresses"]), str(d["date"]),
                   dict(d["identities"]), {int(a): dict(v) for a, v in d["adc"].items()},
                   arr("s_a_per_v2"), arr("vt_v"), arr("residual_a"),
                   tuple(float(v) for v in d["gates_v"]), tuple(float(v) for v in d["vds_v"]),
                   tuple(int(t) for t in d["taps"]), arr("r_ohm"),
                   math.nan if d["probe_v"] is None else float(d["probe_v"]),
                   math.nan if d["compliance_a"] is None else float(d["compliance_a"]),
                   tuple(dict(r) for r in d["refused"]), _nan_back(d["mismatch"]), arr("fixed_r_ohm"))


def _scalar(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _lists(x):
    """Arrays and floats in ``x`` as JSON-able lists and floats, NaN as None."""
    if isinstance(x, dict):
        return {k: _lists(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return [_lists(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(x) else float(x)
    return x


def _nan_back(x):
    """Undo :func:`_lists` for a summary dict: None back to NaN."""
    if isinstance(x, dict):
        return {k: _nan_back(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_back(v) for v in x]
    return math.nan if x is None else x


def fit_triode(gate_v, vds_v, current_a) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """S (A/V^2), V_T (V) and RMS residual (A) of ``I = S (V_G - V_T - Vds/2) Vds``.

    Least squares in the unknowns ``S`` and ``S V_T``: ``I = S (V_G - Vds/2) Vds - (S V_T) Vds``.
    The arrays broadcast together; the last axis runs over the points of one device, all
    leading axes over devices; NaN points are left out (a device with fewer than two gates
    gives NaN)."""
    vg, vds, i = np.broadcast_arrays(np.asarray(gate_v, float), np.asarray(vds_v, float),
                                     np.asarray(current_a, float))
    ok = np.isfinite(i) & np.isfinite(vg) & np.isfinite(vds)
    x1 = np.where(ok, (vg - 0.5 * vds) * vds, 0.0)
    x2 = np.where(ok, -vds, 0.0)
    y = np.where(ok, i, 0.0)
    a11, a12, a22 = (x1 * x1).sum(-1), (x1 * x2).sum(-1), (x2 * x2).sum(-1)
    b1, b2 = (x1 * y).sum(-1), (x2 * y).sum(-1)
    det = a11 * a22 - a12 * a12
    with np.errstate(divide="ignore", invalid="ignore"):
        good = det > 1e-12 * a11 * a22
        s = np.where(good, (a22 * b1 - a12 * b2) / det, np.nan)
        svt = np.where(good, (a11 * b2 - a12 * b1) / det, np.nan)
        vt = svt / s
        n = ok.sum(-1)
        res = np.where(ok, y - s[..., None] * x1 - svt[..., None] * x2, 0.0)
        rms = np.where(good, np.sqrt((res * res).sum(-1) / np.maximum(n, 1)), np.nan)
    return s, vt, rms


def mismatch(cal_kind: str, s_a_per_v2=None, vt_v=None, r_ohm=None) -> dict:
    """The twins' difference on every board, and its RMS and largest size over the boards.

    MOSFET: ``s_rel`` = (S_clamped - S_free) / mean of the two, ``vt_v`` = V_T,clamped -
    V_T,free (V). Digipot: ``r_rel``, the median over the taps of (R_clamped - R_free) / mean.
    Refused devices are NaN and left out of the summary."""
    def summary(name, x, unit=""):
        x = np.asarray(x, float)
        ok = x[np.isfinite(x)]
        return {name + unit: x, f"{name}_rms{unit}": float(np.sqrt(np.mean(ok**2))) if ok.size else math.nan,
                f"{name}_max_abs{unit}": float(np.max(np.abs(ok))) if ok.size else math.nan}
    if cal_kind == "mosfet":
        s = np.asarray(s_a_per_v2, float)
        return {**summary("s_rel", (s[1] - s[0]) / (0.5 * (s[0] + s[1]))),
                **summary("vt", np.asarray(vt_v, float)[1] - np.asarray(vt_v, float)[0], "_v")}
    r = np.asarray(r_ohm, float)
    with np.errstate(invalid="ignore"):
        rel = (r[1] - r[0]) / (0.5 * (r[0] + r[1]))
    ok = np.isfinite(rel).any(-1)
    med = np.full(rel.shape[0], np.nan)
    med[ok] = np.nanmedian(rel[ok], axis=-1)
    return summary("r_rel", med)


# -- the controller's view ---------------------------------------------------------------------


def device_model(cal: EdgeCalibration, base_device: EdgeDevice) -> EdgeDevice:
    """The edge model with the calibrated per-twin parameters, for the controller.

    MOSFET: ``base_device``'s limits, subthreshold law and update bias with the fitted S and
    V_T. Digipot: its tap table with each twin's gain, the median over the measured taps of
    ``R_table(tap) / R_measured``. A refused device keeps ``base_device``'s parameters.
    """
    if base_device.kind != cal.kind or base_device.n_edges != cal.n_edges:
        raise ValueError(f"the calibration is of {cal.n_edges} {cal.kind} edges, the base device has "
                         f"{base_device.n_edges} {base_device.kind} edges")
    if (cal.s_a_per_v2 if cal.kind == "mosfet" else cal.r_ohm) is None:
        raise ValueError("the calibration has no device fits (only ADC offsets)")
    if cal.kind == "mosfet":
        s = np.where(np.isfinite(cal.s_a_per_v2), cal.s_a_per_v2, base_device.s_a_per_v2)
        vt = np.where(np.isfinite(cal.vt_v), cal.vt_v, base_device.vt_v)
        return Mosfet(base_device.n_edges, update_bias=base_device.update_bias.copy(), s_a_per_v2=s, vt_v=vt,
                      subthreshold_v=base_device.subthreshold_v, state_min=base_device.state_min,
                      state_max=base_device.state_max)
    taps = np.asarray(cal.taps, np.int64)
    if np.any(taps >= base_device.n_taps):
        raise ValueError(f"the calibration measured taps up to {taps.max()}, the base device has {base_device.n_taps}")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = base_device.tap_resistance_ohm[taps] / cal.r_ohm
    gain = base_device.gain.copy()
    ok = np.isfinite(ratio).any(-1)
    gain[ok] = np.nanmedian(ratio[ok], axis=-1)
    return Digipot(base_device.n_edges, update_bias=base_device.update_bias.copy(), n_taps=base_device.n_taps,
                   r_min_ohm=base_device.r_min_ohm, r_max_ohm=base_device.r_max_ohm, gain=gain)
