"""Every numeric field of every file format is bounded, finite and sized to the machine.

Each numeric value of the example files (experiments, the rig, a network file) is set to
values a slip of the keyboard gives (infinities, NaN, 1e300, huge integers, negative
numbers): each either loads into something that can run, or fails with one line naming
the file, the field and the value. The cases a fuzzing of these files found are kept as
explicit cases below.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest
import tomli_w

from hostctl.experiment import BUILTIN_EXPERIMENTS, ExperimentFileError, builtin_experiment_text, loads_experiment
from hostctl.plans import TrainingPlan
from hostctl.rigfile import RigFileError, loads_rig
from instruments.sim.netfile import NetworkFileError, loads_network_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NASTY = [math.inf, -math.inf, math.nan, 1e300, -1e300, -1, 0, 2**63 - 1, -(2**63), 1e-300]


def _numeric_leaves(d, path=()):
    """(path, value) of every number in a parsed TOML document (lists indexed)."""
    items = d.items() if isinstance(d, dict) else enumerate(d)
    for k, v in items:
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            yield path + (k,), v
        elif isinstance(v, (dict, list)):
            yield from _numeric_leaves(v, path + (k,))


def _set(d, path, value):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _mutations(text: str):
    doc = tomllib.loads(text)
    for path, _ in _numeric_leaves(doc):
        for value in NASTY:
            m = tomllib.loads(text)
            _set(m, path, value)
            yield ".".join(map(str, path)), value, m


def _one_line(exc: Exception, source: str):
    msg = str(exc)
    assert msg.startswith(f"{source}: ") and "\n" not in msg, msg


def _usable_experiment(exp):
    """A loaded experiment is finite and its plan starts at once (no giant allocation)."""
    assert exp.epochs * exp.steps_per_epoch <= 10**10
    for arr in (exp.task.train_inputs, exp.task.test_inputs):
        assert (abs(arr) < 1e3).all()
    assert math.isfinite(exp.nudge.eta) and math.isfinite(exp.pulse_s)
    gen = TrainingPlan(exp).actions()
    next(gen)


@pytest.mark.parametrize("name", BUILTIN_EXPERIMENTS)
def test_every_numeric_field_of_an_experiment_is_bounded(name):
    text = builtin_experiment_text(name)
    for field, value, doc in _mutations(text):
        try:
            exp = loads_experiment(tomli_w.dumps(doc), "exp.toml")
        except ExperimentFileError as exc:
            _one_line(exc, "exp.toml")
            continue
        _usable_experiment(exp)


def test_every_numeric_field_of_the_rig_file_is_bounded():
    text = (EXAMPLES / "rig_gen2.toml").read_text()
    for field, value, doc in _mutations(text):
        try:
            wiring = loads_rig(tomli_w.dumps(doc), "rig.toml")
        except RigFileError as exc:
            _one_line(exc, "rig.toml")
            continue
        problems = wiring.problems()
        if not problems:
            t = wiring.timing
            assert all(math.isfinite(v) for v in (t.settle_s, t.sample_rate_hz, t.pulse_s, t.watchdog_s)), field
            assert t.n_average <= 100_000, field


def _usable_network(nf):
    """A loaded network file draws and solves: finite positions, physical device parameters."""
    net, dev = nf.network, nf.device
    assert net.n_edges >= 1
    if net.positions is not None:
        assert (abs(net.positions) <= 1e9).all()
    assert (dev.s_a_per_v2 > 0).all() and (dev.s_a_per_v2 <= 1).all()
    assert (abs(dev.vt_v) <= 50).all() and abs(dev.state_min) <= 50 and abs(dev.state_max) <= 50
    assert dev.subthreshold_v is None or 1e-3 <= dev.subthreshold_v <= 1
    assert (abs(dev.update_bias) <= dev.state_max - dev.state_min).all()


def test_every_numeric_field_of_a_network_file_is_bounded():
    text = (EXAMPLES / "gen2_lattice.toml").read_text()
    for field, value, doc in _mutations(text):
        try:
            nf = loads_network_file(tomli_w.dumps(doc), "net.toml")
        except NetworkFileError as exc:
            _one_line(exc, "net.toml")
        else:
            _usable_network(nf)


@pytest.mark.parametrize("field, value", [
    # found by mutating examples/gen2_lattice.toml: each loaded before
    ("positions.r0c0", [math.nan, 0.0]), ("positions.r0c0", [1e300, 0.0]),
    ("device.s_a_per_v2", 1e300), ("device.s_a_per_v2", 1e-300), ("device.vt_v", -1e300),
    ("device.subthreshold_v", math.inf), ("device.subthreshold_v", 1e-300), ("device.state_max", 1e300),
    ("device.state_min", -1e300), ("device.update_bias", 1e300), ("device.update_bias", -5.0),
    ("edges", []),
])
def test_network_file_values_no_device_has_are_refused_naming_the_field(field, value):
    doc = tomllib.loads((EXAMPLES / "gen2_lattice.toml").read_text())
    _set(doc, tuple(field.split(".")), value)
    with pytest.raises(NetworkFileError) as info:
        loads_network_file(tomli_w.dumps(doc), "net.toml")
    _one_line(info.value, "net.toml")
    assert str(info.value).startswith(f"net.toml: {field}"), str(info.value)


@pytest.mark.parametrize("kind, extra, field", [
    ("resistor", {"gain": 11.0}, "device.gain"), ("resistor", {"state_max": 1e7}, "device.state_max"),
    ("digipot", {"gain": 0.0}, "device.gain"), ("digipot", {"update_bias": 100.0}, "device.update_bias"),
])
def test_resistor_and_digipot_parameters_are_bounded(kind, extra, field):
    doc = tomllib.loads((EXAMPLES / "gen2_lattice.toml").read_text())
    doc["device"] = {"kind": kind, **extra}
    with pytest.raises(NetworkFileError) as info:
        loads_network_file(tomli_w.dumps(doc), "net.toml")
    assert str(info.value).startswith(f"net.toml: {field}"), str(info.value)


def _exp(name="iris_gen1", **sections):
    d = tomllib.loads(builtin_experiment_text(name))
    for section, fields in sections.items():
        if section == "top":
            d.update(fields)
        else:
            d.setdefault(section, {}).update(fields)
    return tomli_w.dumps(d)


@pytest.mark.parametrize("name, sections, field", [
    ("regression_gen2", {"rule": {"alpha": 6.4e298}}, "rule.alpha"),
    ("iris_gen1", {"rule": {"dead_band_v2": 1.8e296}}, "rule.dead_band_v2"),
    ("iris_gen1", {"schedule": {"steps_per_epoch": 9223372036854775807}}, "schedule.steps_per_epoch"),
    ("iris_gen1", {"schedule": {"epochs": 9223372036854775807}}, "schedule.epochs"),
    ("iris_gen1", {"task": {"margin_v": math.nan}}, "task.margin_v"),
    ("iris_gen1", {"task": {"margin_v": math.inf}}, "task.margin_v"),
    ("iris_gen1", {"task": {"margin_v": -0.1}}, "task.margin_v"),
    ("iris_gen1", {"rule": {"overclamp_v": math.inf}}, "rule.overclamp_v"),
    ("regression_gen2", {"rule": {"kind": "gate_charging", "r_ohm": math.inf}}, "rule.r_ohm"),
    ("regression_gen2", {"task": {"coefficients": [0.2, math.nan]}}, "task.coefficients[1]"),
    ("iris_gen1", {"top": {"seed": -1}}, "seed"),
    ("iris_gen1", {"task": {"split": -1}}, "task.split"),
    ("iris_gen1", {"bench": {"seed": -1}}, "bench.seed"),
    ("iris_gen1", {"task": {"n_train_per_class": 10**12}}, "task.n_train_per_class"),
    ("regression_gen2", {"task": {"n_train": 10**12}}, "task.n_train"),
    ("iris_gen1", {"rule": {"probability": math.nan}}, "rule.probability"),
])
def test_the_values_a_fuzzing_found_are_refused_naming_the_field(name, sections, field):
    with pytest.raises(ExperimentFileError) as info:
        loads_experiment(_exp(name, **sections), "exp.toml")
    assert str(info.value).startswith(f"exp.toml: {field}: "), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("section, key, value", [
    ("timing", "n_average", 10**9),
    ("timing", "settle_s", math.inf),
    ("timing", "sample_rate_hz", 1e-300),
    ("timing", "watchdog_s", math.inf),
    ("timing", "pulse_s", math.nan),
])
def test_rig_timing_beyond_the_bench_is_refused(section, key, value):
    d = tomllib.loads((EXAMPLES / "rig_gen2.toml").read_text())
    d[section][key] = value
    with pytest.raises(RigFileError) as info:
        loads_rig(tomli_w.dumps(d), "rig.toml")
    assert str(info.value).startswith(f"rig.toml: {section}.{key}: "), str(info.value)


@pytest.mark.parametrize("key, value", [("compliance_a", -1), ("compliance_a", math.inf), ("compliance_a", "1 mA")])
def test_instrument_options_are_checked(key, value):
    d = tomllib.loads((EXAMPLES / "rig_gen2.toml").read_text())
    d.setdefault("instruments", {})["smu"] = {"kind": "keithley2450", "address": "USB0::1::INSTR", key: value}
    with pytest.raises(RigFileError) as info:
        loads_rig(tomli_w.dumps(d), "rig.toml")
    assert str(info.value).startswith(f"rig.toml: instruments.smu.{key}: "), str(info.value)


@pytest.mark.parametrize("field, value", [("outputs[0].max_step_v", math.nan), ("outputs[0].safe_v", math.inf),
                                          ("inputs[0].range_v", math.nan), ("cross_limits[0].max_diff_v", math.inf)])
def test_rig_voltages_must_be_finite(field, value):
    d = tomllib.loads((EXAMPLES / "rig_gen2.toml").read_text())
    d.setdefault("cross_limits", [{"a": "PXI1Slot2/ao0", "b": "PXI1Slot2/ao1", "max_diff_v": 0.3}])
    section, rest = field.split("[0].")
    d[section][0][rest] = value
    with pytest.raises(RigFileError) as info:
        loads_rig(tomli_w.dumps(d), "rig.toml")
    assert str(info.value).startswith(f"rig.toml: {field}: "), str(info.value)


@pytest.mark.parametrize("topology, field", [
    ({"kind": "square_grid", "rows": 10**6, "cols": 10**6}, "topology"),
    ({"kind": "random_connected", "n_nodes": 10, "n_edges": 10**12}, "topology"),
    ({"kind": "random_connected", "n_nodes": 10, "n_edges": 20, "seed": -1}, "topology.seed"),
])
def test_network_sizes_beyond_the_machine_are_refused(topology, field):
    with pytest.raises(NetworkFileError) as info:
        loads_network_file(tomli_w.dumps({"topology": topology}), "net.toml")
    assert str(info.value).startswith(f"net.toml: {field}"), str(info.value)


@pytest.mark.parametrize("loader, error", [
    (lambda t: loads_experiment(t, "f.toml"), ExperimentFileError),
    (lambda t: loads_rig(t, "f.toml"), RigFileError),
    (lambda t: loads_network_file(t, "f.toml"), NetworkFileError),
])
def test_toml_nested_thousands_deep_is_one_error(loader, error):
    text = "a = " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(error) as info:
        loader(text)
    assert str(info.value).startswith("f.toml: ") and "nested" in str(info.value)
