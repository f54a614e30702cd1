"""Edge device models, vectorised over edges.

Every model holds the parameters of both twins of every edge (arrays of shape ``(2, E)``:
row 0 is the free twin, row 1 the clamped twin), the limits of the learned state, and a
constant per-edge bias on the update (the imperfection of arXiv:2505.22887). The learned
state itself (conductance, tap or gate voltage) is a plain array of shape ``(E,)`` owned by
whoever simulates the network; one board sets both of its twin edges to the same state.

Each model answers, for terminal voltages ``va`` and ``vb`` (V):

* :meth:`EdgeDevice.current`: the current from terminal a to b (A) and its partial
  derivatives with respect to ``va`` and ``vb`` (S), for Newton's method;
* :meth:`EdgeDevice.conductance`: the chord conductance I / (va - vb) (S), its small-signal
  limit where ``va == vb``. Linear models ignore the voltages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --- parameters from the lab (shared/physics.md) ------------------------------------------
GEN2_S_A_PER_V2 = 8.5e-4
GEN2_VT_V = 0.7
GEN2_GATE_MIN_V = 1.0
GEN2_GATE_MAX_V = 5.5
SUBTHRESHOLD_V_PER_DECADE = 0.1
DIGIPOT_TAPS = 100
DIGIPOT_R_MIN_OHM = 40.0
DIGIPOT_R_MAX_OHM = 32e3


def _twin_array(value, n_edges: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=float), (2, n_edges)).copy()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def spread(
    nominal: float,
    n_edges: int,
    rel_spread: float = 0.0,
    twin_mismatch: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Per-edge and per-twin parameter values around ``nominal``, shape ``(2, E)``.

    Each edge draws a factor ``1 + rel_spread * N(0, 1)`` shared by its two twins; each twin
    then draws its own factor ``1 + twin_mismatch * N(0, 1)``. Both are relative (0.01 = 1 %).
    The result has the unit of ``nominal``.

    Args:
        rng: a generator, or a seed (the same seed gives the same values), or None for a
            fresh unseeded generator.
    """
    rng = np.random.default_rng(rng)
    per_edge = 1.0 + rel_spread * rng.standard_normal(n_edges)
    per_twin = 1.0 + twin_mismatch * rng.standard_normal((2, n_edges))
    return nominal * per_edge[None, :] * per_twin


@dataclass(eq=False)
class EdgeDevice:
    """Common part of all edge models.

    Attributes:
        n_edges: number of edges E.
        state_min, state_max: limits of the learned state (its unit depends on the model).
        update_bias: ``(E,)`` constant added to every update of each edge, in state units
            per update (0 for an ideal board).
    """

    n_edges: int
    update_bias: np.ndarray = field(default=None)  # type: ignore[assignment]

    kind = "abstract"
    linear = True
    integer_state = False
    state_unit = ""
    state_min: float = 0.0
    state_max: float = np.inf

    def __post_init__(self) -> None:
        if self.update_bias is None:
            self.update_bias = np.zeros(self.n_edges)
        self.update_bias = np.broadcast_to(np.asarray(self.update_bias, float), (self.n_edges,)).copy()

    @property
    def twins_identical(self) -> bool:
        """True when both twins of every edge have the same parameters."""
        return all(np.array_equal(p[0], p[1]) for p in self._twin_params())

    def _twin_params(self) -> tuple[np.ndarray, ...]:
        return ()

    def clip(self, state: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The state limited to ``[state_min, state_max]`` (in place when ``out`` is given)."""
        return np.clip(state, self.state_min, self.state_max, out=out)

    def check_state(self, state: np.ndarray) -> np.ndarray:
        """``state`` as a float array of shape ``(E,)``; ValueError naming the first edge whose
        state is out of limits (or not whole, for integer states)."""
        s = np.asarray(state, dtype=float)
        if s.shape != (self.n_edges,):
            raise ValueError(f"{self.kind} state must have shape ({self.n_edges},), got {s.shape}")
        problem = self._state_problem(s)
        if problem:
            j, why = problem
            raise ValueError(f"{self.kind} state of edge {j} {why}")
        return s

    def _state_problem(self, s: np.ndarray) -> tuple[int, str] | None:
        """The first edge whose state is not allowed and why, or None."""
        bad = np.flatnonzero(~np.isfinite(s) | (s < self.state_min) | (s > self.state_max))
        if bad.size:
            j = int(bad[0])
            return j, f"is {s[j]:g} {self.state_unit}, outside [{self.state_min:g}, {self.state_max:g}]"
        if self.integer_state:
            bad = np.flatnonzero(s != np.rint(s))
            if bad.size:
                j = int(bad[0])
                return j, f"is {s[j]:g}, not a whole number of {self.state_unit}s"
        return None

    def conductance(self, state, va=None, vb=None, twin: int = 0) -> np.ndarray:
        raise NotImplementedError

    def current(self, state, va, vb, twin: int = 0):
        """Current a -> b (A) and its derivatives with respect to va and vb (S)."""
        k = self.conductance(state, twin=twin)
        return k * (va - vb), k, -k


@dataclass(eq=False)
class Resistor(EdgeDevice):
    """A linear edge whose state is its conductance (S).

    Attributes:
        gain: ``(2, E)`` factor between the commanded and the real conductance of each twin
            (1 for an ideal edge); models spread and twin mismatch.
        state_min, state_max: conductance limits (S), default 1e-6 to 1.
    """

    gain: np.ndarray = None  # type: ignore[assignment]
    state_min: float = 1e-6
    state_max: float = 1.0

    kind = "resistor"
    state_unit = "S"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.gain = _twin_array(1.0 if self.gain is None else self.gain, self.n_edges, "gain")

    def _twin_params(self):
        return (self.gain,)

    def conductance(self, state, va=None, vb=None, twin: int = 0) -> np.ndarray:
        return np.asarray(state, float) * self.gain[twin]


@dataclass(eq=False)
class Digipot(EdgeDevice):
    """A digital potentiometer edge; the state is an integer tap 0..n_taps-1.

    Tap ``t`` has resistance ``r_max_ohm * (r_min_ohm / r_max_ohm) ** (t / (n_taps - 1))``:
    taps are log-spaced and conductance rises with the tap number, so "one tap up" means
    "more conductance", the direction coupled learning asks for when (dV_F)^2 > (dV_C)^2.
    A state between taps counts as the nearest tap, and one beyond the ends as the end tap
    (the wiper of the real part stops there).

    Attributes:
        n_taps: number of taps (>= 2), default 100.
        r_min_ohm, r_max_ohm: end resistances (Ohm), default 40 and 32,000 (X9C303-like).
        gain: ``(2, E)`` factor on each twin's conductance (spread and mismatch).
    """

    n_taps: int = DIGIPOT_TAPS
    r_min_ohm: float = DIGIPOT_R_MIN_OHM
    r_max_ohm: float = DIGIPOT_R_MAX_OHM
    gain: np.ndarray = None  # type: ignore[assignment]

    kind = "digipot"
    integer_state = True
    state_unit = "tap"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_taps < 2 or not (0 < self.r_min_ohm < self.r_max_ohm):
            raise ValueError("digipot needs n_taps >= 2 and 0 < r_min_ohm < r_max_ohm")
        self.gain = _twin_array(1.0 if self.gain is None else self.gain, self.n_edges, "gain")
        self.state_min = 0.0
        self.state_max = float(self.n_taps - 1)
        t = np.arange(self.n_taps) / (self.n_taps - 1)
        self.tap_resistance_ohm = self.r_max_ohm * (self.r_min_ohm / self.r_max_ohm) ** t

    def _twin_params(self):
        return (self.gain,)

    def conductance(self, state, va=None, vb=None, twin: int = 0) -> np.ndarray:
        """Conductance (S) of each edge at its tap; the voltages are ignored."""
        taps = np.clip(np.rint(np.asarray(state, float)), 0, self.n_taps - 1).astype(np.int64)
        return self.gain[twin] / self.tap_resistance_ohm[taps]

    def clip(self, state, out=None):
        return np.clip(np.rint(state), self.state_min, self.state_max, out=out)


@dataclass(eq=False)
class Mosfet(EdgeDevice):
    """An n-MOSFET edge whose learned state is its gate voltage V_G (V).

    The lower-voltage terminal is the source; with ``Vs = min(va, vb)``, ``Vds = |va - vb|``,
    overdrive ``x = V_G - V_T - Vs`` at the source and ``y = x - Vds`` at the drain, the
    current is written as SPICE's level 1 in its forward-minus-reverse form
    ``I = S (F(x) - F(y))`` with ``F(u) = max(u, 0)^2 / 2`` (V^2):

    * triode (``x > Vds``): ``I = S (x - Vds / 2) Vds``;
    * saturation (``0 < x <= Vds``): ``I = S / 2 x^2``;
    * subthreshold: the current falls tenfold per ``subthreshold_v`` volts of gate voltage,
      at every ``Vds``.

    Without subthreshold (``subthreshold_v = None``) this is exactly SPICE's level-1 NMOS with
    ``KP W / L = S``, ``LAMBDA = GAMMA = 0`` (no current for ``x <= 0``). With it, ``F`` below
    ``v_join = 2 subthreshold_v / ln 10`` (87 mV for 0.1 V/decade) becomes the exponential
    ``F(u) = v_join^2 / 2 exp((u - v_join) ln 10 / subthreshold_v)``, which meets the parabola
    with equal value and slope. Below threshold (``x <= 0``) ``I = S (F(x) - F(y))
    = S F(x) (1 - exp(-Vds ln 10 / subthreshold_v))``: tenfold per ``subthreshold_v`` at every
    ``Vds``, in triode and saturation alike. At and above ``x = v_join`` the current is exactly
    level 1. Between (``0 < x < v_join``, moderate inversion) the reverse term blends from the
    exponential to level 1's: ``I = S (F(x) - F(y) - lam(x) (D(y) - D(x)))`` with
    ``D(u) = max(u, 0)^2 / 2 - F(u)`` and ``lam`` the smoothstep ``3 t^2 - 2 t^3``,
    ``t = x / v_join``. The current is continuous with continuous first derivatives in
    ``V_G``, ``va`` and ``vb`` everywhere, and never exactly zero.

    Attributes:
        s_a_per_v2: ``(2, E)`` transconductance factor S (A/V^2), default 8.5e-4.
        vt_v: ``(2, E)`` threshold voltage V_T (V), default 0.7.
        subthreshold_v: volts of overdrive per decade of subthreshold current, or None.
        state_min, state_max: gate voltage limits (V), default 1.0 to 5.5.
        lambda_per_v: ``(2, E)`` channel-length modulation LAMBDA (1/V, >= 0), default 0: the
            current of every region times ``(1 + LAMBDA Vds)``, as in SPICE's level 1. The
            compiled kernels take only LAMBDA = 0 (others use the general solver).
    """

    s_a_per_v2: np.ndarray = None  # type: ignore[assignment]
    vt_v: np.ndarray = None  # type: ignore[assignment]
    subthreshold_v: float | None = SUBTHRESHOLD_V_PER_DECADE
    state_min: float = GEN2_GATE_MIN_V
    state_max: float = GEN2_GATE_MAX_V
    lambda_per_v: np.ndarray = None  # type: ignore[assignment]

    kind = "mosfet"
    linear = False
    state_unit = "V"

    def __post_init__(self) -> None:
        super().__post_init__()
        s = GEN2_S_A_PER_V2 if self.s_a_per_v2 is None else self.s_a_per_v2
        vt = GEN2_VT_V if self.vt_v is None else self.vt_v
        self.s_a_per_v2 = _twin_array(s, self.n_edges, "s_a_per_v2")
        self.vt_v = _twin_array(vt, self.n_edges, "vt_v")
        self.lambda_per_v = _twin_array(0.0 if self.lambda_per_v is None else self.lambda_per_v,
                                        self.n_edges, "lambda_per_v")
        if np.any(self.lambda_per_v < 0):
            raise ValueError("MOSFET lambda_per_v (LAMBDA) must be >= 0")
        if np.any(self.s_a_per_v2 <= 0):
            raise ValueError("MOSFET S must be positive")
        if self.subthreshold_v is not None and self.subthreshold_v <= 0:
            raise ValueError("subthreshold_v must be positive or None")

    def _twin_params(self):
        return (self.s_a_per_v2, self.vt_v, self.lambda_per_v)

    @property
    def has_lambda(self) -> bool:
        """True when some edge has channel-length modulation (LAMBDA > 0)."""
        return bool(np.any(self.lambda_per_v != 0))

    @property
    def v_join(self) -> float:
        """Overdrive (V) at and above which the current is exactly level 1; 0 without
        subthreshold."""
        return 0.0 if self.subthreshold_v is None else 2.0 * self.subthreshold_v / np.log(10.0)

    def current(self, state, va, vb, twin: int = 0):
        lam = self.lambda_per_v[twin] if self.has_lambda else None
        return mosfet_current(self.s_a_per_v2[twin], self.vt_v[twin], self.subthreshold_v, state, va, vb, lam)

    def conductance(self, state, va=None, vb=None, twin: int = 0) -> np.ndarray:
        """Chord conductance I / (va - vb) (S); its limit dI/dva where ``va == vb``; with no
        voltages given, at both terminals 0 V."""
        vg = np.asarray(state, float)
        if va is None:
            va = vb = np.zeros_like(vg)
        va = np.asarray(va, float)
        vb = np.asarray(vb, float)
        i, g_a, _ = self.current(vg, va, vb, twin)
        dv = va - vb
        small = np.abs(dv) < 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            chord = np.where(small, 0.0, i / np.where(small, 1.0, dv))
        # at vds = 0 the chord conductance is the slope dI/dva
        return np.where(small, g_a, chord)


def _f_law(u, sub_v):
    """``F(u)`` (V^2) and ``F'(u)`` (V) of :class:`Mosfet`, and ``D(u)``, ``D'(u)``."""
    up = np.maximum(u, 0.0)
    if sub_v is None:
        z = np.zeros_like(up)
        return 0.5 * up * up, up, z, z
    n = sub_v / np.log(10.0)
    vj = 2.0 * n
    ex = 0.5 * vj * vj * np.exp(np.minimum(u - vj, 0.0) / n)
    below = u < vj
    f = np.where(below, ex, 0.5 * u * u)
    df = np.where(below, ex / n, u)
    return f, df, 0.5 * up * up - f, up - df


def mosfet_current(s, vt, sub_v, vg, va, vb, lambda_per_v=None):
    """Current a -> b (A) of :class:`Mosfet` edges and its partial derivatives with respect to
    ``va`` and ``vb`` (S).

    Args:
        s: transconductance factors S (A/V^2), broadcastable to the voltages.
        vt: threshold voltages V_T (V).
        sub_v: volts of gate per decade of subthreshold current (> 0), or None (level 1).
        vg, va, vb: gate and terminal voltages (V).
        lambda_per_v: channel-length modulation LAMBDA (1/V), or None for 0: the current
            times ``(1 + LAMBDA Vds)`` in every region.
    """
    vg = np.asarray(vg, float)
    va = np.asarray(va, float)
    vb = np.asarray(vb, float)
    a_high = va >= vb
    vds = np.abs(va - vb)
    x = vg - vt - np.where(a_high, vb, va)  # overdrive at the source (lower terminal)
    y = x - vds  # at the drain
    fx, dfx, dx, ddx = _f_law(x, sub_v)
    fy, dfy, dy, ddy = _f_law(y, sub_v)
    vj = 0.0 if sub_v is None else 2.0 * sub_v / np.log(10.0)
    # exact level 1 at and above the join: the factored triode form, the square law
    level1 = np.where(y > 0.0, (x - 0.5 * vds) * vds, 0.5 * np.maximum(x, 0.0) ** 2)
    if sub_v is None:
        i_f, d_drain, d_source = level1, np.maximum(y, 0.0), -np.maximum(x, 0.0)
    else:
        n = sub_v / np.log(10.0)
        t = np.clip(x / vj, 0.0, 1.0)
        lam = t * t * (3.0 - 2.0 * t)
        dlam = np.where((x > 0.0) & (x < vj), 6.0 * t * (1.0 - t) / vj, 0.0)
        # below threshold both ends are exponential: F(x) (1 - exp(-Vds / n)), no cancellation
        sub_i = np.where(x < vj, fx * -np.expm1(-vds / n), fx - fy)
        blend_i = sub_i - lam * (dy - dx)
        i_f = np.where(x >= vj, level1, blend_i)
        d_drain = np.where(x >= vj, np.maximum(y, 0.0), dfy + lam * ddy)
        d_source = np.where(x >= vj, -x, -(dfx - dlam * (dy - dx) + lam * ddx))
    i = s * i_f
    d_drain = s * d_drain
    d_source = s * d_source
    if lambda_per_v is not None:
        clm = 1.0 + lambda_per_v * vds
        d_drain = d_drain * clm + i * lambda_per_v
        d_source = d_source * clm - i * lambda_per_v
        i = i * clm
    sign = np.where(a_high, 1.0, -1.0)
    g_a = np.where(a_high, d_drain, -d_source)
    g_b = np.where(a_high, d_source, -d_drain)
    return sign * i, g_a, g_b


@dataclass(eq=False)
class MixedEdges(EdgeDevice):
    """A network whose edges are of several kinds (e.g. fixed resistors beside MOSFETs).

    Attributes:
        parts: ``(device, edge_indices)`` pairs; every edge belongs to exactly one part, and
            each device is sized for its own edges. The state of edge ``j`` is in the unit
            of its own part. The update bias of edge ``j`` is its part's plus the mixture's.
    """

    parts: tuple = ()

    kind = "mixed"

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = np.full(self.n_edges, -1)
        parts = []
        for p, (dev, idx) in enumerate(self.parts):
            idx = np.asarray(idx, dtype=np.int64)
            if dev.n_edges != idx.size:
                raise ValueError(f"part {p} ({dev.kind}) has {dev.n_edges} edges but {idx.size} indices")
            if np.any(owner[idx] >= 0):
                raise ValueError("an edge belongs to two parts")
            owner[idx] = p
            parts.append((dev, idx))
        if np.any(owner < 0):
            raise ValueError(f"edges without a device: {np.flatnonzero(owner < 0).tolist()}")
        self.parts = tuple(parts)
        self.linear = all(dev.linear for dev, _ in parts)
        self._lo = np.zeros(self.n_edges)
        self._hi = np.zeros(self.n_edges)
        for dev, idx in parts:
            self._lo[idx] = dev.state_min
            self._hi[idx] = dev.state_max
            # a part's own update bias applies to its edges, on top of the mixture's
            self.update_bias[idx] += dev.update_bias

    def _twin_params(self):
        return tuple(p for dev, _ in self.parts for p in dev._twin_params())

    def clip(self, state, out=None):
        res = np.clip(state, self._lo, self._hi, out=out)
        for dev, idx in self.parts:
            res[idx] = dev.clip(res[idx])
        return res

    def _state_problem(self, s):
        for dev, idx in self.parts:
            problem = dev._state_problem(s[idx])
            if problem:
                j, why = problem
                return int(idx[j]), f"({dev.kind}) {why}"
        return None

    def conductance(self, state, va=None, vb=None, twin: int = 0):
        state = np.asarray(state, float)
        k = np.empty(self.n_edges)
        for dev, idx in self.parts:
            k[idx] = dev.conductance(
                state[idx], None if va is None else np.asarray(va)[idx],
                None if vb is None else np.asarray(vb)[idx], twin,
            )
        return k

    def current(self, state, va, vb, twin: int = 0):
        state = np.asarray(state, float)
        va = np.asarray(va, float)
        vb = np.asarray(vb, float)
        out = np.empty((3, self.n_edges))
        for dev, idx in self.parts:
            i, ga, gb = dev.current(state[idx], va[idx], vb[idx], twin)
            out[0, idx], out[1, idx], out[2, idx] = i, ga, gb
        return out[0], out[1], out[2]
