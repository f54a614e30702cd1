"""The experiment file, the tasks and the plan check: what an experiment asks for, in volts."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from hostctl import tasks as T
from hostctl.experiment import ExperimentFileError, loads_experiment
from hostctl.plans import Learn, TrainingPlan, check_plan
from hostctl.experiment import BUILTIN_EXPERIMENTS, builtin_experiment_text
from instruments.bus import protocol as P
from instruments.safety import Limits, LimitError
from instruments.wiring import bench_for


def builtin(name="iris_gen1") -> dict:
    return tomllib.loads(builtin_experiment_text(name))


def load(d: dict):
    return loads_experiment(tomli_w.dumps(d), "exp.toml")


@pytest.mark.parametrize("name", BUILTIN_EXPERIMENTS)
def test_every_builtin_experiment_loads_and_fits_its_bench(name):
    exp = load(builtin(name))
    wiring = bench_for(exp.network, exp.edge_kind)
    assert wiring.problems() == []
    assert check_plan(exp, wiring.layout(), Limits.from_wiring(wiring)) > 0


def test_iris_is_the_lab_protocol():
    exp = load(builtin("iris_gen1"))
    task = exp.task
    assert task.train_inputs.shape == (30, 4) and task.test_inputs.shape == (120, 4)
    assert np.bincount(task.train_labels).tolist() == [10, 10, 10]
    assert np.bincount(task.test_labels).tolist() == [40, 40, 40]
    assert task.train_inputs.min() == 0.0 and task.train_inputs.max() == 1.0  # scaled to 0..1 V
    assert exp.steps_per_epoch == 30 and exp.board_rule.rule == P.Rule.TAP
    assert exp.board_rule.dead_band_uv2 == 10**9 and exp.board_rule.probability == round(0.3 * 65536)


def test_the_split_follows_the_seed():
    a, b = builtin(), builtin()
    b["seed"] = 1
    ta, tb = load(a).task, load(b).task
    assert not np.array_equal(ta.train_x, tb.train_x)
    np.testing.assert_array_equal(load(a).task.train_x, ta.train_x)


def test_encoding_stays_inside_its_range_for_any_feature():
    enc = T.Encoding.fit(np.array([[0.0, 5.0], [1.0, 7.0]]), [1, 0], np.array([np.nan, np.nan, 0.3]), 0.1, 0.4)
    v = enc(np.array([[-5.0, 100.0], [0.5, 6.0]]))
    np.testing.assert_allclose(v, [[0.4, 0.1, 0.3], [0.25, 0.25, 0.3]])


def test_adaptive_targets_ask_for_a_margin_beyond_the_class_means():
    task = load(builtin()).task
    outputs = np.tile([0.2, 0.3, 0.4], (30, 1)) + 0.01 * task.train_labels[:, None]
    task.begin_epoch(outputs)
    d = task.class_desired
    assert d[0, 0] == pytest.approx(0.4 + 0.1) and d[0, 1] == pytest.approx(0.3 - 0.1)
    assert d[2, 2] == pytest.approx(0.42 + 0.1) and d[2, 0] == pytest.approx(0.22 - 0.1)


def test_nearest_mean_readout():
    task = load(builtin()).task
    task.class_means = np.array([[0.1, 0.1, 0.1], [0.3, 0.3, 0.3], [0.5, 0.5, 0.5]])
    assert task.predict(np.array([[0.12, 0.1, 0.0], [0.45, 0.5, 0.6]])).tolist() == [0, 2]


def test_regression_desired_is_the_legendre_series():
    exp = load(builtin("regression_gen2"))
    x = exp.task.train_x[:, 0]
    u = 2 * x / 0.45 - 1
    expect = 0.15 + 0.05 * u - 0.012 * (1.5 * u**2 - 0.5)
    np.testing.assert_allclose(exp.task.desired("train")[:, 0], expect)
    np.testing.assert_allclose(exp.task.train_inputs[:, 1], 0.45)  # the fixed source


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (lambda d: d["task"].update(inputs=["r0c0", "r0c1", "r0c2", "r9c9"]), "task.inputs[3]", "no node 'r9c9'"),
        (lambda d: d["task"].update(inputs=["r0c0", "r0c1", "r0c2", "r3c0"]), "task.inputs[3]", "not a source"),
        (lambda d: d["task"].update(v_max=2.0), "task.v_max", "outside the bench's node range 0..1.0 V"),
        (lambda d: d["rule"].update(kind="continuous", alpha=1.0), "rule.kind", "for MOSFET (gate) edges"),
        (lambda d: d["rule"].update(eta=1.5), "rule", "eta must be in (0, 1]"),
        (lambda d: d["schedule"].update(epochs=0), "schedule.epochs", "greater than or equal to 1"),
        (lambda d: d["network"].update(initial_state=120), "network.initial_state[0]", "outside 0..99 taps"),
        (lambda d: d.update(colour="blue"), "colour", "unknown field"),
    ],
)
def test_a_bad_experiment_is_one_error_naming_file_and_field(mutate, field, words):
    d = builtin()
    mutate(d)
    with pytest.raises(ExperimentFileError) as info:
        load(d)
    assert str(info.value).startswith(f"exp.toml: {field}: ") and words in str(info.value)


def test_a_gate_rate_beyond_the_boards_is_refused():
    d = builtin("regression_gen2")
    d["rule"]["alpha"] = 1e6
    with pytest.raises(ExperimentFileError, match="rule: the update rate needs a board gain of .* beyond the boards' limit"):
        load(d)


_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 200), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=6), st.lists(st.floats(-1, 2, allow_nan=False), max_size=4))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_field_set_to_anything_loads_or_fails_with_one_file_error(data):
    d = builtin(data.draw(st.sampled_from(BUILTIN_EXPERIMENTS)))
    section = data.draw(st.sampled_from(["task", "rule", "schedule", "network"]))
    key = data.draw(st.sampled_from(sorted(d[section]) + ["extra"]))
    d[section][key] = data.draw(_values)
    try:
        text = tomli_w.dumps(d)
    except (TypeError, ValueError):
        return  # None has no TOML form
    try:
        exp = loads_experiment(text, "exp.toml")
    except ExperimentFileError as exc:
        assert str(exc).startswith("exp.toml: ") and "\n" not in str(exc)
        return
    assert exp.task.train_inputs.shape[1] == exp.network.sources.size


def test_plan_check_refuses_an_input_beyond_a_tighter_limit():
    from dataclasses import replace

    exp = load(builtin())
    wiring = bench_for(exp.network, exp.edge_kind)
    outs = list(wiring.outputs)
    outs[2] = replace(outs[2], max_v=0.8)
    wiring = replace(wiring, outputs=tuple(outs))
    with pytest.raises(LimitError, match=r"train sample \d+: PXI1Slot2/ao2: [\d.]+ V is above its limit 0.8 V"):
        check_plan(exp, wiring.layout(), Limits.from_wiring(wiring))


def test_plan_check_refuses_jumps_beyond_a_ramp_limit():
    from dataclasses import replace

    exp = load(builtin())
    wiring = bench_for(exp.network, exp.edge_kind)
    wiring = replace(wiring, outputs=tuple(replace(o, max_step_v=0.5) for o in wiring.outputs))
    with pytest.raises(LimitError, match="the plan's values span 1 V, beyond its ramp limit 0.5 V"):
        check_plan(exp, wiring.layout(), Limits.from_wiring(wiring))


def _run_plan(plan: TrainingPlan, until: int | None = None):
    """Drive the plan with dummy outputs; the learning steps (step, epoch, index) until ``until``."""
    gen = plan.actions()
    steps, reply = [], None
    n_t = plan.exp.network.targets.size
    while True:
        try:
            a = gen.send(reply)
        except StopIteration:
            return steps
        reply = None
        if isinstance(a, Learn):
            if until is not None and a.step == until:
                return steps
            steps.append((a.step, a.epoch, a.index))
        elif type(a).__name__ == "Evaluate":
            n = plan.task.n_train if a.split == "train" else plan.task.test_inputs.shape[0]
            reply = np.full((n, n_t), 0.3)


def test_a_plan_resumed_from_its_state_continues_identically():
    d = builtin()
    d["schedule"]["epochs"] = 3
    whole = _run_plan(TrainingPlan(load(d)))
    assert len(whole) == 90 and sorted(i for _, e, i in whole if e == 1) == list(range(30))
    first = TrainingPlan(load(d))
    head = _run_plan(first, until=47)
    state = first.state()
    second = TrainingPlan(load(d))
    second.load_state(tomllib.loads(tomli_w.dumps({"s": _jsonable(state)}))["s"])
    assert head + _run_plan(second) == whole


def _jsonable(x):
    import json

    return json.loads(json.dumps(x))


def test_a_users_csv_is_a_classification_or_a_regression(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (40, 4))
    rows = ["a,b,c,d,kind,value"] + [f"{r[0]},{r[1]},{r[2]},{r[3]},{'big' if r.sum() > 20 else 'small'},{r.sum()}"
                                      for r in x]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    d = builtin()
    d["task"] = {"kind": "csv", "file": "data.csv", "label": "kind", "inputs": ["r0c0", "r0c1", "r0c2", "r0c3"],
                 "v_max": 1.0}
    text = tomli_w.dumps(d)
    # the label "kind" has text: a classification, whose features are all the other columns
    with pytest.raises(ExperimentFileError, match="task.inputs: 4 nodes for 5 features"):
        loads_experiment(text, "exp.toml", tmp_path)
    (tmp_path / "data.csv").write_text("\n".join(",".join(r.split(",")[:5]) for r in rows) + "\n")
    task = loads_experiment(text, "exp.toml", tmp_path).task
    assert isinstance(task, T.ClassificationTask) and task.n_classes == 2
    assert task.train_inputs.shape[1] == 4 and 0 <= task.train_inputs.min() and task.train_inputs.max() <= 1.0


def test_a_bad_csv_names_its_line(tmp_path):
    (tmp_path / "data.csv").write_text("a,b,label\n1,2,x\n3,oops,y\n")
    d = builtin()
    d["task"] = {"kind": "csv", "file": "data.csv", "label": "label", "inputs": ["r0c0", "r0c1"],
                 "fixed": {"r0c2": 0.0, "r0c3": 0.0}}
    with pytest.raises(ExperimentFileError, match=r"task.file: .*data.csv: line 3: 'oops' is not a number"):
        loads_experiment(tomli_w.dumps(d), "exp.toml", tmp_path)


def allostery_and_alternating():
    d = builtin("regression_gen2")
    d["task"] = {"kind": "allostery", "inputs_v": {"r0c0": 0.2, "r0c2": 0.45}, "desired_v": {"r1c1": 0.3}}
    e = builtin("regression_gen2")
    e["task"] = {"kind": "alternating", "period_steps": 3, "patterns": [
        {"inputs_v": {"r0c0": 0.4351, "r0c2": 0.0181}, "desired_v": {"r1c1": 0.31}},
        {"inputs_v": {"r0c0": 0.0181, "r0c2": 0.4351}, "desired_v": {"r1c1": 0.14}}]}
    return load(d), load(e)


def test_allostery_and_alternating_tasks_give_their_patterns():
    allo, alt = allostery_and_alternating()
    np.testing.assert_allclose(allo.task.desired("train"), [[0.3]])
    np.testing.assert_allclose(allo.task.train_inputs, [[0.2, 0.45]])
    assert [alt.task.sample_at(0, s) for s in range(8)] == [0, 0, 0, 1, 1, 1, 0, 0]


def test_an_alternating_pattern_with_a_missing_target_is_named():
    e = builtin("regression_gen2")
    e["task"] = {"kind": "alternating", "patterns": [
        {"inputs_v": {"r0c0": 0.4, "r0c2": 0.0}, "desired_v": {"r1c1": 0.31}},
        {"inputs_v": {"r0c0": 0.0, "r0c2": 0.4}, "desired_v": {}}]}
    with pytest.raises(ExperimentFileError, match=r"task.patterns\[1\].desired_v: no voltage for target r1c1"):
        load(e)
