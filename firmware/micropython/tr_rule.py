# twinrig edge board: the rule arithmetic and the generator (protocol version 1.1).
#
# Everything here is exact integer arithmetic, per firmware/protocol/PROTOCOL.md
# ("Drops and the rule"). MicroPython ints are arbitrary precision (or 64-bit on
# ports built with the long-long implementation; every intermediate value below
# fits in 63 bits: the rule's 79-bit product contrast * gain is never formed, see
# gain_delta), so the results equal CPython's bit for bit. Runs unchanged on
# MicroPython and CPython (the host's emulator imports it).
#
# Units: voltages in integer microvolts (uV), contrasts in uV^2.

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

RULE_NONE = const(0)
RULE_TAP = const(1)
RULE_GATE_CHARGING = const(2)
RULE_CONTINUOUS = const(3)
RULE_NAMES = ("none", "tap", "gate_charging", "continuous")

KIND_DIGIPOT = const(1)
KIND_MOSFET = const(2)
KIND_NAMES = {1: "digipot", 2: "mosfet"}

GAIN_SHIFT = const(48)
GAIN_HALF = 1 << 47               # 2^(GAIN_SHIFT - 1): rounds the quotient to nearest
CONTRAST_LIMIT_UV2 = 1 << 38      # contrast clipped to +-2^38 uV^2
GAIN_LIMIT = 1 << 40              # gain must be below 2^40 (2^24 before firmware 1.1.0)
GAIN_SPLIT = const(24)            # gain = gh * 2^24 + gl in gain_delta
GAIN_LOW_MASK = const(0xFFFFFF)   # 2^24 - 1
PROBABILITY_ONE = const(65536)    # (r >> 16) < 65536 always holds

I32_MIN = -(1 << 31)
I32_MAX = (1 << 31) - 1
M32 = 0xFFFFFFFF
SEED_XOR = 0x9E3779B9

# Default state limits per kind: taps 0..99; gate 1,000,000 .. 5,500,000 uV.
DEFAULT_LIMITS = {1: (0, 99), 2: (1000000, 5500000)}


def rule_allowed(rule, kind):
    """True when ``rule`` may run on a board of ``kind`` (tap: digipot only;
    gate_charging: MOSFET only; none and continuous: any)."""
    if rule == RULE_TAP:
        return kind == KIND_DIGIPOT
    if rule == RULE_GATE_CHARGING:
        return kind == KIND_MOSFET
    return rule == RULE_NONE or rule == RULE_CONTINUOUS


# ---------------------------------------------------------------- generator

def xorshift32(x):
    """One xorshift32 (13, 17, 5) step of a 32-bit state; the new state is the draw."""
    x &= M32
    x ^= (x << 13) & M32
    x ^= x >> 17
    x ^= (x << 5) & M32
    return x


def seed_from_uid(uid):
    """First four uid bytes little-endian, xor 0x9E3779B9; 1 if that is 0."""
    s = (uid[0] | (uid[1] << 8) | (uid[2] << 16) | (uid[3] << 24)) ^ SEED_XOR
    return s if s else 1


class Xorshift32:
    """The board's generator. ``next()`` advances one step and returns the new state."""

    def __init__(self, seed):
        seed &= M32
        self.state = seed if seed else 1
        self.draws = 0

    def next(self):
        self.state = xorshift32(self.state)
        self.draws += 1
        return self.state


# ---------------------------------------------------------------- drops and contrast

def sat_i32(v):
    if v < I32_MIN:
        return I32_MIN
    if v > I32_MAX:
        return I32_MAX
    return v


def drops_uv(node_uv, calibration_uv):
    """(dv_free_uv, dv_clamped_uv) from the four node voltages (a_F, b_F, a_C, b_C)
    and the four stored offsets (same order): (a - off_a) - (b - off_b), computed
    exactly, then saturated to the i32 range."""
    dvf = (node_uv[0] - calibration_uv[0]) - (node_uv[1] - calibration_uv[1])
    dvc = (node_uv[2] - calibration_uv[2]) - (node_uv[3] - calibration_uv[3])
    return sat_i32(dvf), sat_i32(dvc)


def contrast_uv2(dv_free_uv, dv_clamped_uv):
    """dv_free^2 - dv_clamped^2 (exact), clipped to +-2^38 uV^2."""
    c = dv_free_uv * dv_free_uv - dv_clamped_uv * dv_clamped_uv
    if c > CONTRAST_LIMIT_UV2:
        return CONTRAST_LIMIT_UV2
    if c < -CONTRAST_LIMIT_UV2:
        return -CONTRAST_LIMIT_UV2
    return c


def should_update(draw, probability):
    return (draw >> 16) < probability


def gain_delta(contrast, gain):
    """contrast * gain / 2^48 rounded to the nearest integer, halves away from zero
    (protocol minor 1: sign(c) * floor((|c| * gain + 2^47) / 2^48), so the change
    for -c is minus the change for c), for |contrast| <= 2^38 and
    0 <= gain < 2^40, with every intermediate within 63 bits (the product needs up
    to 79).

    On m = |contrast|: gain = gh * 2^24 + gl; A = m * gh (< 2^54) = a1 * 2^24 + a0
    with 0 <= a0 < 2^24; B = m * gl (< 2^62); m * gain = a1 * 2^48 + (a0 * 2^24 + B),
    so the rounded quotient is a1 + ((a0 * 2^24 + B + 2^47) >> 48), the sum below
    2^48 + 2^62 + 2^47 < 2^63; the sign of the contrast is put back last."""
    m = -contrast if contrast < 0 else contrast
    a = m * (gain >> GAIN_SPLIT)
    q = (a >> GAIN_SPLIT) + ((((a & GAIN_LOW_MASK) << GAIN_SPLIT)
                              + m * (gain & GAIN_LOW_MASK) + GAIN_HALF) >> GAIN_SHIFT)
    return -q if contrast < 0 else q


def apply_rule(rule, state, contrast, gain, dead_band_uv2, state_min, state_max):
    """The state after one run of ``rule`` (the draw already decided to update),
    clipped to [state_min, state_max].

    tap: +1 when contrast > dead band, -1 when contrast < -dead band;
    gate_charging / continuous: state + contrast * gain / 2^48 rounded to nearest,
    halves away from zero (see gain_delta; at most 2^30 in magnitude); none:
    unchanged."""
    if rule == RULE_TAP:
        if contrast > dead_band_uv2:
            state += 1
        elif contrast < -dead_band_uv2:
            state -= 1
    elif rule == RULE_GATE_CHARGING or rule == RULE_CONTINUOUS:
        state += gain_delta(contrast, gain)
    if state < state_min:
        return state_min
    if state > state_max:
        return state_max
    return state


def learn_step(rule, probability, gain, dead_band_uv2, state, state_min, state_max,
               draw, node_uv, calibration_uv):
    """One learn with the draw already taken from the generator.

    Returns (state_after, updated, dv_free_uv, dv_clamped_uv, contrast_uv2).
    Rule none never updates."""
    dvf, dvc = drops_uv(node_uv, calibration_uv)
    c = contrast_uv2(dvf, dvc)
    updated = 0
    if rule != RULE_NONE and (draw >> 16) < probability:
        updated = 1
        state = apply_rule(rule, state, c, gain, dead_band_uv2, state_min, state_max)
    return state, updated, dvf, dvc, c
