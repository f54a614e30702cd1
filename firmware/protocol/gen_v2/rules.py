"""``vectors/v2/rules.json``: the generator and the rule on a closed-loop actuator.

``{"prng": [{uid_hex, seed, draws}], "cases": [{name, kind, state_min, state_max,
resolution, actuator_offset, uid_hex, target_before, rule, probability, gain,
dead_band_uv2, calibration_uv, node_uv, learns: [{draw, dv_free_uv, dv_clamped_uv,
contrast_uv2, updated, target, state, residue}]}]}``. Each case starts from a fresh board
whose target was set to ``target_before`` (``set_state``; the state reached and residue
follow from the actuator), runs ``configure_rule`` and then the learns in order; ``draw``
is the generator output each learn used (the first is one step from the seed).
"""

from __future__ import annotations

from instruments.bus import rule as R
from instruments.bus import v2

from .bus import MOSFET_NODES, UID_A, UID_B, board_spec, hexs, make_board

GEN2_GAIN = 2_559_015
# MOSFET_NODES give dv_free 300,000 uV and dv_clamped 150,000 uV: contrast 6.75e10 uV^2
_C = 300_000 ** 2 - 150_000 ** 2
_REVERSED = (1_150_000, 1_000_000, 1_300_000, 1_000_000)  # dv_free 150,000, dv_clamped 300,000


def _gain_for(change_uv: int) -> int:
    """The gain that makes the MOSFET_NODES contrast change the target by ``change_uv``."""
    return round(change_uv * (1 << v2.GAIN_SHIFT) / _C)


def prng_vectors() -> list[dict]:
    out = []
    for uid in (UID_A, bytes(8), bytes.fromhex("b979379effffffff"), UID_B):
        g = R.Xorshift32(R.seed_from_uid(uid))
        out.append({"uid_hex": hexs(uid), "seed": R.seed_from_uid(uid), "draws": [g.next() for _ in range(8)]})
    return out


def _case(name: str, *, kind="mosfet", state_min=None, state_max=None, resolution=1, offset=0, uid=UID_A,
          target, rule, probability=65536, gain=0, dead_band_uv2=0, cal=(0, 0, 0, 0), node=MOSFET_NODES,
          learns=1) -> dict:
    spec = board_spec(uid=uid, kind=kind, address=1, state_min=state_min, state_max=state_max,
                      resolution=resolution, actuator_offset=offset, node_uv=node, calibration_uv=cal)
    b = make_board(spec)
    b._cmd_set_state(target)
    b._cmd_configure_rule(v2.RULES[rule], probability, gain, dead_band_uv2)
    assert b.rule == v2.RULES[rule], name
    dvf, dvc = R.drops_uv(node, cal)
    rows = []
    for _ in range(learns):
        state, residue, updated = b.learn()
        rows.append({"draw": b.prng.state, "dv_free_uv": dvf, "dv_clamped_uv": dvc,
                     "contrast_uv2": R.contrast_uv2(dvf, dvc), "updated": updated, "target": b.target,
                     "state": state, "residue": residue})
    return {"name": name, "kind": kind, "state_min": b.state_min, "state_max": b.state_max,
            "resolution": resolution, "actuator_offset": offset, "uid_hex": hexs(uid), "target_before": target,
            "rule": rule, "probability": probability, "gain": gain, "dead_band_uv2": dead_band_uv2,
            "calibration_uv": list(cal), "node_uv": list(node), "learns": rows}


def rule_cases() -> list[dict]:
    return [
        _case("residue_carried_up", resolution=1000, target=2_000_000, rule="continuous", gain=_gain_for(300),
              learns=8),
        _case("residue_carried_down", resolution=1000, target=2_000_000, rule="gate_charging", gain=_gain_for(300),
              node=_REVERSED, learns=8),
        _case("half_step_rounds_up", resolution=1000, target=2_000_000, rule="continuous", gain=_gain_for(100),
              learns=6),
        _case("odd_resolution", resolution=7, target=2_000_003, rule="continuous", gain=_gain_for(2), learns=6),
        _case("top_grid_point_below_the_limit", resolution=7, target=5_499_990, rule="continuous",
              gain=_gain_for(4), learns=4),
        _case("clipped_at_the_limit", resolution=1000, target=5_499_700, rule="continuous",
              gain=_gain_for(450), learns=3),
        _case("clipped_at_the_bottom", resolution=1000, target=1_000_400, rule="continuous", gain=_gain_for(300),
              node=_REVERSED, learns=3),
        _case("gen2_gain_resolution_1", target=2_500_000, rule="gate_charging", gain=GEN2_GAIN, learns=3),
        _case("gen2_gain_resolution_1000", resolution=1000, target=2_500_000, rule="gate_charging", gain=GEN2_GAIN,
              learns=3),
        _case("probability_half", resolution=1000, target=2_000_000, rule="continuous", probability=32768,
              gain=_gain_for(600), uid=UID_B, learns=8),
        _case("off_grid_set_state_then_learn", resolution=1000, target=2_000_499, rule="continuous",
              gain=_gain_for(2), learns=2),
        _case("actuator_reads_back_an_offset", resolution=1000, offset=37, target=2_000_000, rule="continuous",
              gain=_gain_for(300), learns=3),
        _case("tap_up", kind="digipot", target=50, rule="tap", node=(1_200_000, 1_000_000, 1_100_000, 1_000_000),
              learns=3),
        _case("tap_down_just_outside_the_dead_band", kind="digipot", target=50, rule="tap",
              dead_band_uv2=_C - 1, node=_REVERSED, learns=2),
        _case("tap_inside_the_dead_band", kind="digipot", target=50, rule="tap", dead_band_uv2=_C,
              node=_REVERSED, learns=2),
        _case("tap_at_top", kind="digipot", target=99, rule="tap", node=(1_200_000, 1_000_000, 1_100_000, 1_000_000),
              learns=2),
        _case("calibration_offsets", resolution=1000, target=2_000_000, rule="continuous", gain=_gain_for(300),
              cal=(-1500, 2200, 0, -70), learns=2),
        _case("rule_none_draws_but_never_updates", resolution=1000, target=2_000_000, rule="none", probability=0,
              learns=2),
    ]


def rule_vectors() -> dict:
    return {"prng": prng_vectors(), "cases": rule_cases()}
