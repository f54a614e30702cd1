"""The plan check covers every limit the runner enforces, and ``rig check`` holds each
output's limits against the network's node range: a plan that would break a limit is one
line before anything is written, and leaves no run file."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import tomli_w

from hostctl.cli import main
from hostctl.experiment import builtin_experiment_text, loads_experiment
from hostctl.plans import check_plan
from hostctl.rigfile import dumps_builtin
from instruments.safety import Limits, LimitError
from instruments.wiring import CrossLimit, bench_for, default_wiring

XOR = loads_experiment(builtin_experiment_text("xor_gen2"), "xor.toml")


def _gen2_with(**changes):
    return replace(default_wiring("gen2"), **changes)


def test_a_cross_limit_between_two_clamps_is_seen_by_the_plan_check():
    """Each clamp is clipped to its own limits: together they can be 0.45 V apart."""
    w = default_wiring("gen2")
    clamps = [o.channel for o in w.outputs if o.twin == "clamped"]
    w = replace(w, cross_limits=(CrossLimit(clamps[0], clamps[1], 0.1),))
    assert w.problems() == []
    with pytest.raises(LimitError, match=rf"{clamps[0]} - {clamps[1]}: the difference can reach 0.45 V"):
        check_plan(XOR, w.layout(), Limits.from_wiring(w))


def test_a_cross_limit_between_a_source_and_a_clamp_is_seen_by_the_plan_check():
    w = default_wiring("gen2")
    src = next(o.channel for o in w.outputs if o.node == "r2c0")  # fixed at 0.45 V in XOR
    clamp = next(o.channel for o in w.outputs if o.twin == "clamped")
    w = replace(w, cross_limits=(CrossLimit(src, clamp, 0.3),))
    with pytest.raises(LimitError, match=rf"{src} - {clamp}"):
        check_plan(XOR, w.layout(), Limits.from_wiring(w))


def test_cross_limits_the_plan_keeps_pass():
    w = default_wiring("gen2")
    clamps = [o.channel for o in w.outputs if o.twin == "clamped"]
    w = replace(w, cross_limits=(CrossLimit(clamps[0], clamps[1], 0.45),))
    assert check_plan(XOR, w.layout(), Limits.from_wiring(w)) > 0


def test_rig_check_holds_output_limits_against_the_node_range(tmp_path, capsys):
    d = tomllib.loads(dumps_builtin("gen2"))
    for o in d["outputs"]:
        if o["twin"] == "clamped":
            o["max_v"] = 10.0
            o["max_step_v"] = 10.0
    rig = tmp_path / "rig.toml"
    rig.write_text(tomli_w.dumps(d))
    assert main(["rig", "check", str(rig)]) == 1
    out = capsys.readouterr().out
    assert "limits 0.0..10.0 V go beyond the node range 0..0.45 V that mosfet edge boards are safe in" in out


def test_a_negative_output_limit_is_beyond_the_node_range():
    w = default_wiring("gen1")
    outs = list(w.outputs)
    outs[0] = replace(outs[0], min_v=-0.5)
    assert any("go beyond the node range 0..1.0 V" in p for p in replace(w, outputs=tuple(outs)).problems())


def test_a_step_longer_than_the_watchdog_allows_is_a_rig_problem():
    w = default_wiring("gen2")
    slow = replace(w, timing=replace(w.timing, n_average=100_000, sample_rate_hz=1000.0))
    assert any("more than half the watchdog" in p for p in slow.problems())
    assert w.problems() == []


def _rig_with_clamp_cross_limit(tmp_path: Path) -> Path:
    d = tomllib.loads(dumps_builtin("gen2"))
    clamps = [o["channel"] for o in d["outputs"] if o["twin"] == "clamped"]
    d["cross_limits"] = [{"a": clamps[0], "b": clamps[1], "max_diff_v": 0.1}]
    rig = tmp_path / "rig.toml"
    rig.write_text(tomli_w.dumps(d))
    return rig


def test_a_refused_plan_is_one_line_and_leaves_no_run_file(tmp_path, capsys):
    rig = _rig_with_clamp_cross_limit(tmp_path)
    out = tmp_path / "runs" / "xor.h5"
    status = main(["train", "xor_gen2", "--rig", str(rig), "--simulate", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status != 0
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "the plan breaks a limit" in err and "cross-channel limit 0.1 V" in err
    assert not out.exists() and not out.parent.exists()


def test_session_train_refuses_before_making_a_run_file(tmp_path):
    from hostctl import session
    from instruments.rig import open_rig

    w = default_wiring("gen2")
    clamps = [o.channel for o in w.outputs if o.twin == "clamped"]
    w = replace(w, cross_limits=(CrossLimit(clamps[0], clamps[1], 0.1),))
    rig = open_rig(w, simulate=True, seed=0)
    try:
        with pytest.raises(LimitError):
            session.train(XOR, rig, tmp_path / "run.h5")
    finally:
        rig.close()
    assert not (tmp_path / "run.h5").exists()


def test_every_builtin_experiment_passes_on_its_builtin_bench():
    from hostctl.experiment import BUILTIN_EXPERIMENTS

    for name in BUILTIN_EXPERIMENTS:
        exp = loads_experiment(builtin_experiment_text(name), name)
        w = bench_for(exp.network, exp.edge_kind)
        assert w.problems() == [] and check_plan(exp, w.layout(), Limits.from_wiring(w)) > 0
