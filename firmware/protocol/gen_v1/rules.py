"""``vectors/rules.json``: the generator and every rule case, per minor version (format: ``gen_vectors.py``)."""

from __future__ import annotations

from instruments.bus import protocol as P

from .common import GEN2_GAIN, GEN2_GAIN_FORMULA, GAIN_MAX, GAIN_MAX_1_0, UID_A, UID_B, _hex

def prng_vectors() -> list[dict]:
    out = []
    for uid in (UID_A, UID_B, bytes.fromhex("b979379effffffff"), bytes.fromhex("ffffffff00000000"),
                bytes.fromhex("0123456789abcdef")):
        seed = P.seed_from_uid(uid)
        g = P.Xorshift32(seed)
        out.append({"uid_hex": _hex(uid), "seed": seed, "draws": [g.next() for _ in range(8)]})
    return out


def _draw(uid: bytes, n: int) -> int:
    """Draw number n (1-based) since reset."""
    g = P.Xorshift32(P.seed_from_uid(uid))
    for _ in range(n):
        r = g.next()
    return r


DIGIPOT = ("digipot", 0, 99)
MOSFET = ("mosfet", 1_000_000, 5_500_000)
WIDE = ("mosfet", P.I32_MIN, P.I32_MAX)


def _case_of(name, board, state, rule, *, node, cal=(0, 0, 0, 0), prob=65536, gain=0, db=0,
          uid=UID_A, draws_before=0, minor=P.PROTOCOL_MINOR) -> dict:
    kind, lo, hi = board
    r = _draw(uid, draws_before + 1)
    res = P.learn_step(rule=P.RULES[rule], probability=prob, gain=gain, dead_band_uv2=db, state=state,
                       state_min=lo, state_max=hi, draw=r, node_uv=node, calibration_uv=cal, minor=minor)
    return {"name": name, "protocol_minor": minor, "kind": kind, "state_min": lo, "state_max": hi, "state_before": state,
            "uid_hex": _hex(uid), "draws_before": draws_before, "rule": rule, "probability": prob,
            "gain": gain, "dead_band_uv2": db, "calibration_uv": list(cal), "node_uv": list(node),
            "dv_free_uv": res["dv_free_uv"], "dv_clamped_uv": res["dv_clamped_uv"],
            "contrast_uv2": res["contrast_uv2"], "updated": res["updated"], "state_after": res["state"],
            "draw": r}


def _node(dvf: int, dvc: int, base: int = 1_000_000) -> list[int]:
    return [base + dvf, base, base + 500_000 + dvc, base + 500_000]


# Rounding of c * gain / 2^48 (c = dv_free^2 - dv_clamped^2): gains and drops that put it
# exactly one 2^-48 beside a half: (2^47 + 1) = 283 * 497305612563 with 283 = 142^2 - 141^2,
# (2^47 - 1) = 2351 * 59862819377 with 2351 = 1176^2 - 1175^2.
GAIN_ABOVE_HALF = 497_305_612_563
GAIN_BELOW_HALF = 59_862_819_377


def rule_cases(minor: int = P.PROTOCOL_MINOR) -> list[dict]:
    """Every rule case, as a board of protocol minor version ``minor`` computes it."""
    c = []
    add = c.append

    def _case(*args, **kw):  # noqa: F811 - the module's _case on this minor version
        return _case_of(*args, minor=minor, **kw)
    # tap rule and the dead band: dvf^2 - dvc^2 = 1000^2 - 0 = 1e6
    add(_case("tap_up", DIGIPOT, 50, "tap", node=_node(1000, 0), db=999_999))
    add(_case("tap_dead_band_edge_positive", DIGIPOT, 50, "tap", node=_node(1000, 0), db=1_000_000))
    add(_case("tap_dead_band_edge_negative", DIGIPOT, 50, "tap", node=_node(0, 1000), db=1_000_000))
    add(_case("tap_down", DIGIPOT, 50, "tap", node=_node(0, -1000), db=999_999))
    add(_case("tap_zero_dead_band_zero_contrast", DIGIPOT, 50, "tap", node=_node(300, -300)))
    add(_case("tap_zero_dead_band_plus_one", DIGIPOT, 50, "tap", node=_node(1, 0)))
    add(_case("tap_zero_dead_band_minus_one", DIGIPOT, 50, "tap", node=_node(0, 1)))
    add(_case("tap_clip_at_max", DIGIPOT, 99, "tap", node=_node(5000, 10)))
    add(_case("tap_clip_at_min", DIGIPOT, 0, "tap", node=_node(10, 5000)))
    add(_case("tap_narrow_limits", ("digipot", 10, 20), 20, "tap", node=_node(2000, 0)))
    add(_case("tap_huge_dead_band", DIGIPOT, 50, "tap", node=_node(2_000_000, 0), db=(1 << 62)))
    add(_case("tap_contrast_clipped_at_dead_band", DIGIPOT, 50, "tap", node=_node(2_000_000, 0),
              db=P.CONTRAST_LIMIT_UV2))
    add(_case("tap_contrast_clipped_below_dead_band", DIGIPOT, 50, "tap", node=_node(2_000_000, 0),
              db=P.CONTRAST_LIMIT_UV2 - 1))
    # gate charging, Gen-2 gain
    add(_case("gate_gen2_gain_up", MOSFET, 3_000_000, "gate_charging", node=_node(100_000, 50_000),
              gain=GEN2_GAIN))
    add(_case("gate_gen2_gain_down", MOSFET, 3_000_000, "gate_charging", node=_node(50_000, -100_000),
              gain=GEN2_GAIN))
    add(_case("gate_gen2_gain_max_contrast", MOSFET, 3_000_000, "gate_charging", node=_node(600_000, 0),
              gain=GEN2_GAIN))
    add(_case("gate_gen2_formula_gain_max_contrast", MOSFET, 3_000_000, "gate_charging",
              node=_node(600_000, 0), gain=GEN2_GAIN_FORMULA))
    add(_case("gate_gen2_gain_min_contrast", MOSFET, 3_000_000, "gate_charging", node=_node(0, 600_000),
              gain=GEN2_GAIN))
    add(_case("gate_contrast_clip_positive", MOSFET, 3_000_000, "gate_charging",
              node=_node(1_000_000, 0), gain=GAIN_MAX_1_0))
    add(_case("gate_contrast_clip_negative", MOSFET, 3_000_000, "gate_charging",
              node=_node(0, -1_000_000), gain=GAIN_MAX_1_0))
    add(_case("gate_contrast_exactly_limit", MOSFET, 3_000_000, "gate_charging",
              node=_node(524_288, 0), gain=GEN2_GAIN))
    add(_case("gate_clip_at_max", MOSFET, 5_499_000, "gate_charging", node=_node(1_000_000, 0), gain=GAIN_MAX_1_0))
    add(_case("gate_clip_at_min", MOSFET, 1_000_500, "gate_charging", node=_node(0, 1_000_000), gain=GAIN_MAX_1_0))
    # rounding of c*gain/2^48: to nearest, halves away from zero (minor 1): -0.5 -> -1,
    # +0.5 -> +1, +-(0.5 - 2^-48) -> 0, +-(0.5 + 2^-48) -> +-1, +-1.5 -> +-2, -tiny -> 0;
    # the floor (minor 0): -0.5 -> -1, +0.5 -> 0, -tiny -> -1, +1.5 -> 1, -1.5 -> -2
    add(_case("gate_round_minus_half", MOSFET, 2_000_000, "gate_charging", node=_node(0, 1 << 16),
              gain=1 << 15))
    add(_case("gate_round_plus_half", MOSFET, 2_000_000, "gate_charging", node=_node(1 << 16, 0),
              gain=1 << 15))
    add(_case("gate_round_minus_one_exact", MOSFET, 2_000_000, "gate_charging", node=_node(0, 1 << 16),
              gain=1 << 16))
    add(_case("gate_round_plus_one_exact", MOSFET, 2_000_000, "gate_charging", node=_node(1 << 16, 0),
              gain=1 << 16))
    add(_case("gate_round_tiny_negative", MOSFET, 2_000_000, "gate_charging", node=_node(0, 1), gain=1))
    add(_case("gate_round_tiny_positive", MOSFET, 2_000_000, "gate_charging", node=_node(1, 0), gain=1))
    add(_case("gate_round_just_above_half_positive", MOSFET, 2_000_000, "gate_charging", node=_node(142, 141),
              gain=GAIN_ABOVE_HALF))
    add(_case("gate_round_just_above_half_negative", MOSFET, 2_000_000, "gate_charging", node=_node(141, 142),
              gain=GAIN_ABOVE_HALF))
    add(_case("gate_round_just_below_half_positive", MOSFET, 2_000_000, "gate_charging", node=_node(1176, 1175),
              gain=GAIN_BELOW_HALF))
    add(_case("gate_round_just_below_half_negative", MOSFET, 2_000_000, "gate_charging", node=_node(1175, 1176),
              gain=GAIN_BELOW_HALF))
    add(_case("gate_round_plus_one_and_half", MOSFET, 2_000_000, "gate_charging", node=_node(1 << 16, 0),
              gain=3 << 15))
    add(_case("gate_round_minus_one_and_half", MOSFET, 2_000_000, "gate_charging", node=_node(0, 1 << 16),
              gain=3 << 15))
    add(_case("gate_round_plus_half_at_the_contrast_clip", MOSFET, 2_000_000, "gate_charging",
              node=_node(1_000_000, 0), gain=1 << 9))              # 2^38 * 2^9 = 2^47
    add(_case("gate_round_minus_half_at_the_contrast_clip", MOSFET, 2_000_000, "gate_charging",
              node=_node(0, 1_000_000), gain=1 << 9))
    add(_case("gate_zero_gain", MOSFET, 2_000_000, "gate_charging", node=_node(0, 300_000), gain=0))
    # gains of 2^24 and above (firmware 1.1.0): at the contrast clip +-2^38 the change is
    # +-gain / 2^10; with 2^24 and 2^30 the gate stays inside its limits, larger gains clip
    for label, g in (("2_24", 1 << 24), ("2_30", 1 << 30), ("2_39", 1 << 39), ("max", GAIN_MAX)):
        add(_case(f"gate_gain_{label}_contrast_clip_positive", MOSFET, 3_000_000, "gate_charging",
                  node=_node(1_000_000, 0), gain=g))
        add(_case(f"gate_gain_{label}_contrast_clip_negative", MOSFET, 3_000_000, "gate_charging",
                  node=_node(0, -1_000_000), gain=g))
    # ... and on the widest limits, where nothing clips but the i32 range: the 64-bit split
    for label, g in (("2_39", 1 << 39), ("max", GAIN_MAX)):
        add(_case(f"continuous_wide_gain_{label}_contrast_clip_positive", WIDE, 0, "continuous",
                  node=_node(1_000_000, 0), gain=g))                     # +2^29; 2^30 - 1
        add(_case(f"continuous_wide_gain_{label}_contrast_clip_negative", WIDE, 0, "continuous",
                  node=_node(0, -1_000_000), gain=g))                    # -2^29; -2^30
    add(_case("continuous_wide_gain_max_sum_beyond_i32_max", WIDE, P.I32_MAX - 5, "continuous",
              node=_node(1_000_000, 0), gain=GAIN_MAX))
    add(_case("continuous_wide_gain_max_sum_beyond_i32_min", WIDE, P.I32_MIN + 5, "continuous",
              node=_node(0, 1_000_000), gain=GAIN_MAX))
    add(_case("continuous_wide_gain_max_contrast_minus_one", WIDE, 0, "continuous", node=_node(0, 1),
              gain=GAIN_MAX))                                            # -tiny: 0 (floor: -1)
    add(_case("continuous_wide_gain_max_contrast_plus_one", WIDE, 0, "continuous", node=_node(1, 0),
              gain=GAIN_MAX))
    add(_case("continuous_wide_gain_max_contrast_odd", WIDE, 0, "continuous", node=_node(524_288, 1),
              gain=GAIN_MAX))                                            # c = 2^38 - 1
    add(_case("continuous_wide_gain_max_contrast_odd_negative", WIDE, 0, "continuous",
              node=_node(1, 524_288), gain=GAIN_MAX))
    for label, g in (("2_24_plus_1", (1 << 24) + 1), ("mixed", (1 << 39) + (1 << 24) + 12_345)):
        add(_case(f"continuous_wide_gain_{label}_positive", WIDE, 0, "continuous",
                  node=_node(456_789, 123_457), gain=g))
        add(_case(f"continuous_wide_gain_{label}_negative", WIDE, 0, "continuous",
                  node=_node(123_457, -456_789), gain=g))
    add(_case("gate_gain_2_30_mixed_negative", MOSFET, 3_000_000, "gate_charging",
              node=_node(123_457, -456_789), gain=(1 << 30) + 987_654))
    # continuous on both kinds
    add(_case("continuous_digipot_up", DIGIPOT, 50, "continuous", node=_node(400_000, 0), gain=GAIN_MAX_1_0))
    add(_case("continuous_digipot_down_small", DIGIPOT, 50, "continuous", node=_node(0, 1000), gain=GAIN_MAX_1_0))
    add(_case("continuous_digipot_clip_min", DIGIPOT, 3, "continuous", node=_node(0, 524_288), gain=GAIN_MAX_1_0))
    add(_case("continuous_mosfet", MOSFET, 4_000_000, "continuous", node=_node(-70_000, 123_456),
              gain=GEN2_GAIN))
    # probability
    add(_case("probability_zero", DIGIPOT, 50, "tap", node=_node(1000, 0), prob=0))
    add(_case("probability_one", DIGIPOT, 50, "tap", node=_node(1000, 0), prob=65536))
    for db_, uid in ((3, UID_A), (0, UID_B), (7, bytes.fromhex("0123456789abcdef"))):
        r = _draw(uid, db_ + 1) >> 16
        add(_case(f"probability_equal_to_draw_after_{db_}", DIGIPOT, 50, "tap", node=_node(1000, 0),
                  prob=r, uid=uid, draws_before=db_))
        add(_case(f"probability_draw_plus_one_after_{db_}", DIGIPOT, 50, "tap", node=_node(1000, 0),
                  prob=r + 1, uid=uid, draws_before=db_))
    add(_case("probability_half_gate", MOSFET, 3_000_000, "gate_charging", node=_node(100_000, 0),
              gain=GEN2_GAIN, prob=32768, draws_before=5))
    add(_case("rule_none_never_updates", DIGIPOT, 50, "none", node=_node(1000, 0), prob=65536))
    # calibration offsets
    add(_case("calibration_offsets_cancel", DIGIPOT, 50, "tap", node=[1_003_000, 1_000_000, 2_000_000, 2_000_500],
              cal=[3_000, 0, 0, 500]))
    add(_case("calibration_offsets_flip_sign", DIGIPOT, 50, "tap", node=[1_001_000, 1_000_000, 2_000_000, 2_000_000],
              cal=[0, -1_500, 200_000, 0]))
    add(_case("calibration_gate", MOSFET, 3_000_000, "gate_charging", node=[900_000, 100_000, 700_000, 450_000],
              cal=[-12_345, 6_789, 1_000, -2_000], gain=GEN2_GAIN))
    add(_case("drops_saturate_i32", MOSFET, 3_000_000, "gate_charging",
              node=[P.I32_MAX, P.I32_MIN, P.I32_MIN, P.I32_MAX], cal=[-1000, 1000, 0, 0], gain=GEN2_GAIN))
    add(_case("drops_saturate_free_only", MOSFET, 3_000_000, "gate_charging",
              node=[P.I32_MAX, 0, 0, 0], cal=[P.I32_MIN, 0, 0, 0], gain=GEN2_GAIN))
    add(_case("drops_offset_overflows_i32_unsaturated", DIGIPOT, 50, "tap",
              node=[P.I32_MIN, P.I32_MIN, 0, 0], cal=[P.I32_MAX, P.I32_MAX, 0, 0]))
    return c
