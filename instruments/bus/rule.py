"""The rule arithmetic of the edge-bus protocol, exactly as the boards compute it.

``firmware/protocol/PROTOCOL-1.md``, "Drops and the rule" (and "Clarifications" for the
generator and saturation): the board's xorshift32 generator seeded from its uid
(:func:`seed_from_uid`, :class:`Xorshift32`), the calibrated drops (:func:`drops_uv`,
saturated to i32), the contrast (:func:`contrast_uv2`, clipped to +-2^38 uV^2), the
probability draw (:func:`should_update`), the integer gate rule's change
(:func:`gain_delta`, exact; :func:`gain_delta_int64`, the same in 64-bit steps as the
firmware does it; rounding per protocol minor version, "Versioning"), :func:`apply_rule`,
one whole :func:`learn_step`, and the Gen-2 :func:`gate_gain`.

Units: voltages integer uV, contrasts integer uV^2, ``gain`` state units per uV^2 times
2^48 (0 .. 2^40 - 1), states taps or gate uV; generator values 32-bit unsigned.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from .constants import (
    CONTRAST_LIMIT_UV2, GAIN_LIMIT, GAIN_SHIFT, I32_MAX, I32_MIN, PROTOCOL_MINOR, Rule,
)

__all__ = [
    "xorshift32", "seed_from_uid", "SEED_XOR", "Xorshift32", "drops_uv", "contrast_uv2",
    "should_update", "GAIN_SPLIT_BITS", "gain_delta", "gain_delta_int64", "apply_rule",
    "learn_step", "gate_gain",
]

_M32 = 0xFFFFFFFF
#: Seed mixing constant: seed = uid[0:4] little-endian xor 0x9E3779B9 (1 if that is 0).
SEED_XOR = 0x9E3779B9


def xorshift32(x: int) -> int:
    """One step of xorshift32 (13, 17, 5) on a 32-bit state; returns the new state = draw."""
    x &= _M32
    x ^= (x << 13) & _M32
    x ^= x >> 17
    x ^= (x << 5) & _M32
    return x


def seed_from_uid(uid: bytes) -> int:
    """Generator seed: first four uid bytes little-endian, xor 0x9E3779B9, 1 if zero."""
    uid = bytes(uid)
    if len(uid) < 4:
        raise ValueError("uid needs at least 4 bytes")
    s = int.from_bytes(uid[:4], "little") ^ SEED_XOR
    return s or 1


class Xorshift32:
    """The board's generator: ``next()`` advances and returns the new 32-bit state."""

    def __init__(self, seed: int) -> None:
        self.state = int(seed) & _M32 or 1
        self.draws = 0

    def next(self) -> int:
        self.state = xorshift32(self.state)
        self.draws += 1
        return self.state

    def __iter__(self) -> Iterator[int]:
        while True:
            yield self.next()


def _sat_i32(v: int) -> int:
    return I32_MIN if v < I32_MIN else I32_MAX if v > I32_MAX else v


def drops_uv(node_uv: Sequence[int], calibration_uv: Sequence[int] = (0, 0, 0, 0)) -> tuple[int, int]:
    """Calibrated drops ``(dv_free_uv, dv_clamped_uv)`` (uV) from the four node voltages.

    ``node_uv`` = (a_F, b_F, a_C, b_C) in uV (i32); ``calibration_uv`` = the four stored
    offsets (uV, same order). Each drop is ``(a - off_a) - (b - off_b)``, saturated to the
    i32 range.
    """
    af, bf, ac, bc = (int(v) for v in node_uv)
    oa, ob, oc, od = (int(v) for v in calibration_uv)
    return _sat_i32((af - oa) - (bf - ob)), _sat_i32((ac - oc) - (bc - od))


def contrast_uv2(dv_free_uv: int, dv_clamped_uv: int) -> int:
    """``dv_free^2 - dv_clamped^2`` (uV^2, exact), clipped to +-2^38."""
    c = int(dv_free_uv) ** 2 - int(dv_clamped_uv) ** 2
    return max(-CONTRAST_LIMIT_UV2, min(CONTRAST_LIMIT_UV2, c))


def should_update(draw: int, probability: int) -> bool:
    """True when the draw selects an update: ``(draw >> 16) < probability``."""
    return (int(draw) >> 16) < int(probability)


#: Bits of the low part of a gain in the 64-bit split (``gain = gh * 2^24 + gl``).
GAIN_SPLIT_BITS = 24
_GAIN_LOW_MASK = (1 << GAIN_SPLIT_BITS) - 1


_HALF = 1 << (GAIN_SHIFT - 1)


def gain_delta(contrast: int, gain: int, minor: int = PROTOCOL_MINOR) -> int:
    """The change a gate_charging/continuous update makes, ``contrast * gain / 2^48``
    rounded to an integer state change.

    Protocol minor 1 (firmware 1.2.0 on) rounds to the nearest integer, halves away from
    zero: ``sign(c) * floor((|c| * gain + 2^47) / 2^48)``, so ``gain_delta(-c) ==
    -gain_delta(c)`` and a contrast that is zero on average changes the state by zero on
    average. Minor 0 (1.1.0 and before) took ``floor(c * gain / 2^48)``, a bias of -1/2
    state unit per update. ``contrast`` in uV^2 (clipped to +-2^38), ``gain`` in state units
    per uV^2 times 2^48 (0 .. 2^40 - 1); the result, in state units, is at most 2^30 in
    magnitude. Exact (Python integers); :func:`gain_delta_int64` is the same number computed
    in 64 bits.
    """
    if minor < 1:
        return (contrast * gain) >> GAIN_SHIFT
    q = (abs(contrast) * gain + _HALF) >> GAIN_SHIFT
    return q if contrast >= 0 else -q


def gain_delta_int64(contrast: int, gain: int, minor: int = PROTOCOL_MINOR) -> int:
    """:func:`gain_delta` as a board computes it, with no intermediate beyond int64.

    Minor 1 (round half away from zero) works on ``m = |contrast| <= 2^38``: with the split
    below, ``m * gain = a1 * 2^48 + (a0 * 2^24 + B)`` where every term is non-negative, so
    ``floor((m * gain + 2^47) / 2^48) = a1 + ((a0 * 2^24 + B + 2^47) >> 48)``, the sum below
    ``2^48 + 2^62 + 2^47 < 2^63``; the sign of the contrast is put back last.

    Minor 0 (floor): ``contrast * gain`` needs up to 79 bits, so the gain is split,
    ``gain = gh * 2^24 + gl`` (0 <= gl < 2^24, 0 <= gh < 2^16), and with
    ``|contrast| <= 2^38``:

    * ``A = contrast * gh``, ``|A| < 2^54``, written ``A = a1 * 2^24 + a0`` with
      ``a1 = floor(A / 2^24)`` and ``0 <= a0 < 2^24`` (an arithmetic shift and a mask);
    * ``B = contrast * gl``, ``|B| < 2^62``;
    * ``contrast * gain = A * 2^24 + B = a1 * 2^48 + (a0 * 2^24 + B)``, so
      ``floor(contrast * gain / 2^48) = a1 + floor((a0 * 2^24 + B) / 2^48)``, where
      ``|a0 * 2^24 + B| < 2^48 + 2^62 < 2^63``.

    Below 2^24 the gain has ``gh = 0`` and this is ``floor(contrast * gain / 2^48)`` formed
    directly, as firmware 1.0.x did. Raises ValueError outside those ranges.
    """
    if not -CONTRAST_LIMIT_UV2 <= contrast <= CONTRAST_LIMIT_UV2:
        raise ValueError(f"contrast must be within +-2^38 uV^2, got {contrast}")
    if not 0 <= gain < GAIN_LIMIT:
        raise ValueError(f"gain must be 0..2^40 - 1, got {gain}")
    gh, gl = gain >> GAIN_SPLIT_BITS, gain & _GAIN_LOW_MASK
    if minor >= 1:
        m = -contrast if contrast < 0 else contrast
        a = m * gh
        q = (a >> GAIN_SPLIT_BITS) + ((((a & _GAIN_LOW_MASK) << GAIN_SPLIT_BITS) + m * gl + _HALF) >> GAIN_SHIFT)
        return -q if contrast < 0 else q
    a = contrast * gh
    a1, a0 = a >> GAIN_SPLIT_BITS, a & _GAIN_LOW_MASK  # Python's >> floors, & of a negative is mod 2^24
    return a1 + (((a0 << GAIN_SPLIT_BITS) + contrast * gl) >> GAIN_SHIFT)


def apply_rule(rule: int, state: int, contrast: int, *, gain: int = 0, dead_band_uv2: int = 0,
               state_min: int, state_max: int, minor: int = PROTOCOL_MINOR) -> int:
    """The state after one run of ``rule`` (no probability draw here).

    Args:
        rule: :class:`Rule` code.
        state: current state (tap, or gate voltage in uV).
        contrast: clipped contrast (uV^2), see :func:`contrast_uv2`.
        gain: state units per uV^2 times 2^48 (gate_charging, continuous), 0 .. 2^40 - 1.
        dead_band_uv2: dead band half-width (uV^2, tap).
        state_min, state_max: the board's limits; the result is clipped to them.

    ``tap``: +1 when ``contrast > dead_band``, -1 when ``contrast < -dead_band``;
    ``gate_charging``/``continuous``: ``state + contrast * gain / 2^48`` rounded to nearest,
    halves away from zero (``minor`` 0: the floor) (:func:`gain_delta`, up to 2^30 in
    magnitude, added before clipping); ``none``: unchanged.
    """
    rule = Rule(rule)
    if rule == Rule.TAP:
        if contrast > dead_band_uv2:
            state += 1
        elif contrast < -dead_band_uv2:
            state -= 1
    elif rule in (Rule.GATE_CHARGING, Rule.CONTINUOUS):
        state += gain_delta(contrast, gain, minor)
    return max(state_min, min(state_max, state))


def learn_step(*, rule: int, probability: int, gain: int, dead_band_uv2: int, state: int,
               state_min: int, state_max: int, draw: int, node_uv: Sequence[int],
               calibration_uv: Sequence[int] = (0, 0, 0, 0), minor: int = PROTOCOL_MINOR) -> dict:
    """One ``learn`` given the draw already taken from the generator (on a board of protocol
    minor version ``minor``, see :func:`gain_delta`).

    Returns a dict with ``dv_free_uv``, ``dv_clamped_uv`` (uV), ``contrast_uv2`` (clipped,
    uV^2), ``updated`` (0/1) and ``state`` (after). Rule ``none`` never updates.
    """
    dvf, dvc = drops_uv(node_uv, calibration_uv)
    c = contrast_uv2(dvf, dvc)
    updated = int(rule != Rule.NONE and should_update(draw, probability))
    if updated:
        state = apply_rule(rule, state, c, gain=gain, dead_band_uv2=dead_band_uv2,
                           state_min=state_min, state_max=state_max, minor=minor)
    return {"dv_free_uv": dvf, "dv_clamped_uv": dvc, "contrast_uv2": c, "updated": updated,
            "state": state}


def gate_gain(pulse_s: float, r_ohm: float, c_f: float, g_per_v: float) -> int:
    """Gen-2 ``gain`` for ``configure_rule``: ``round(pulse / (R C) * g * 1e-6 * 2^48)``.

    ``pulse_s`` (s), ``r_ohm`` (Ohm), ``c_f`` (F), ``g_per_v`` (1/V); the result is in uV of
    gate per uV^2 of contrast times 2^48. Boards take it below :data:`GAIN_LIMIT` = 2^40
    (firmware 1.1.0 and later; 2^24 before), i.e. a learning rate ``pulse / (R C) * g``
    below 2^-8 uV per uV^2 = 3906 V of gate per V^2 of contrast; the lab's Gen-2 values
    (200 us, 1 kOhm, 2.2 uF, 0.1 /V: 9.09e-3 V/V^2) give 2,558,863. The caller checks the
    limit (``configure_rule`` answers ``out_of_range``).
    """
    return round(pulse_s / (r_ohm * c_f) * g_per_v * 1e-6 * (1 << GAIN_SHIFT))
