"""The rig file and ``hostctl rig check``: form errors name file and field; soundness
problems are named one by one; exit 0 only for a sound wiring."""

from __future__ import annotations

import json
import tomllib

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from hostctl.cli import main
from hostctl.rigfile import RigFileError, dumps_builtin, loads_rig, rig_dict
from instruments.wiring import default_wiring


def builtin_dict(name="gen2") -> dict:
    return tomllib.loads(dumps_builtin(name))


def write(tmp_path, data, name="rig.toml"):
    path = tmp_path / name
    path.write_text(tomli_w.dumps(data) if isinstance(data, dict) else data)
    return path


@pytest.mark.parametrize("name", ["gen2", "gen1"])
def test_builtin_bench_round_trips_through_its_rig_file(name):
    w = default_wiring(name)
    back = loads_rig(dumps_builtin(name))
    assert back.problems() == []
    assert (back.outputs, back.inputs, back.boards, back.timing) == (w.outputs, w.inputs, w.boards, w.timing)
    assert (back.smu, back.dmm, back.psu) == (w.smu, w.dmm, w.psu)
    assert rig_dict(back, name) == rig_dict(w, name)


def test_rig_check_passes_a_sound_rig(tmp_path, capsys):
    path = write(tmp_path, builtin_dict())
    assert main(["rig", "check", str(path)]) == 0
    assert "is sound" in capsys.readouterr().out


def test_the_example_rig_file_is_sound(capsys):
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "rig_gen2.toml"
    assert main(["rig", "check", str(path)]) == 0


def broken() -> dict:
    d = builtin_dict()
    d["outputs"] = [o for o in d["outputs"] if o["node"] != "r2c2"]  # a source with no output
    d["outputs"][1]["channel"] = d["outputs"][0]["channel"]  # a channel used twice
    d["outputs"][2]["max_v"] = 12.0  # beyond the PXIe-6738's 10 V
    d["inputs"] = d["inputs"][:1]  # target r3c3 unread
    d["boards"]["addresses"] = d["boards"]["addresses"][:-1]  # edge 31 without a board
    d["inputs"][0]["range_v"] = 3.0  # not an input range of the PXIe-6363
    return d


def test_rig_check_names_every_problem_and_fails(tmp_path, capsys):
    path = write(tmp_path, broken())
    assert main(["rig", "check", str(path)]) == 1
    out = capsys.readouterr().out
    for words in (
        "source r2c2: no output drives it on the free twin",
        "source r2c2: no output drives it on the clamped twin",
        "channel PXI1Slot2/ao0 is already used by output PXI1Slot2/ao0 (r0c0, both)",
        "limits 0.0..12.0 V are outside the PXIe-6738's output range -10.0..10.0 V",
        "target r3c3: no input reads it on the free twin",
        "edge 31 (r3c3-r0c3): no board",
        "range_v 3.0 V is not an input range of the PXIe-6363",
        "problems; the wiring is not sound",
    ):
        assert words in out, words
    assert all(line.startswith(str(path)) for line in out.splitlines())


def test_rig_check_json_lists_problems(tmp_path, capsys):
    path = write(tmp_path, broken())
    assert main(["rig", "check", "--json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["sound"] is False and len(report["problems"]) >= 7


def test_two_boards_on_one_address_are_refused(tmp_path):
    d = builtin_dict()
    d["boards"]["addresses"][5] = d["boards"]["addresses"][4]
    with pytest.raises(RigFileError, match=r"boards.addresses\[5\]: address 5 is already the board of edge 4"):
        loads_rig(tomli_w.dumps(d), "rig.toml")


def test_cross_limit_on_unknown_channel_and_bad_timing_are_named():
    d = builtin_dict()
    d["cross_limits"] = [{"a": "PXI1Slot2/ao0", "b": "PXI1Slot2/ao9", "max_diff_v": 0.2}]
    d["timing"]["sample_rate_hz"] = 1.5e6
    problems = loads_rig(tomli_w.dumps(d)).problems()
    assert "cross limit PXI1Slot2/ao0 - PXI1Slot2/ao9: PXI1Slot2/ao9 is not an output channel" in problems
    # 1 MS/s aggregate over several inputs (X Series User Manual, Table 4-5), not the 2 MS/s of one input alone
    assert any("1.5e+06 Hz x 2 inputs exceeds the PXIe-6363's 1e+06 S/s aggregate input rate" in p for p in problems)
    assert any("exceeds the PXIe-6738's 1e+06 S/s output update rate" in p for p in problems)


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda d: d["outputs"][0].update(twin="left"), "outputs[0].twin: Input should be 'both', 'free' or 'clamped' (got 'left')"),
        (lambda d: d["outputs"][0].pop("max_v"), "outputs[0].max_v: missing"),
        (lambda d: d["timing"].update(settle="1ms"), "timing.settle: unknown field"),
        (lambda d: d["inputs"][1].update(range_v="1 V"), "inputs[1].range_v: "),
        (lambda d: d["network"].update(file="x.toml"), "network: give exactly one of builtin or file"),
    ],
)
def test_a_malformed_rig_file_is_one_line_naming_file_and_field(tmp_path, capsys, mutate, words):
    d = builtin_dict()
    mutate(d)
    path = write(tmp_path, d)
    assert main(["rig", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hostctl: error: {path}: ") and words in err and "\n" not in err


def test_not_toml_and_missing_file_are_one_line(tmp_path, capsys):
    path = write(tmp_path, "name = [unclosed")
    assert main(["rig", "check", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["rig", "check", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read the rig file" in capsys.readouterr().err


def test_network_file_is_read_relative_to_the_rig_file(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "lattice.toml").write_text(
        '[topology]\nkind = "gen2_lattice"\n'
    )
    d = builtin_dict()
    d["network"] = {"file": "nets/lattice.toml"}
    w = loads_rig(tomli_w.dumps(d), "rig.toml", tmp_path)
    assert w.network.n_edges == 32 and w.problems() == []
    d["network"] = {"file": "nets/missing.toml"}
    with pytest.raises(RigFileError, match="network.file: cannot read"):
        loads_rig(tomli_w.dumps(d), "rig.toml", tmp_path)


def test_rig_show_prints_a_loadable_rig(capsys):
    assert main(["rig", "show", "--builtin", "gen1"]) == 0
    assert loads_rig(capsys.readouterr().out).network.name == "gen1-grid"


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(0, 3), max_size=3))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_field_set_to_anything_loads_or_fails_with_a_rig_file_error(data):
    d = builtin_dict(data.draw(st.sampled_from(["gen2", "gen1"])))
    section = data.draw(st.sampled_from(["outputs", "inputs", "timing", "daq", "boards", "top"]))
    value = data.draw(_values)
    if section in ("outputs", "inputs"):
        item = data.draw(st.sampled_from(d[section]))
        item[data.draw(st.sampled_from(sorted(item) + ["extra"]))] = value
    elif section == "top":
        d[data.draw(st.sampled_from(["name", "edge_kind", "other"]))] = value
    else:
        d[section][data.draw(st.sampled_from(sorted(d[section]) + ["extra"]))] = value
    try:
        text = tomli_w.dumps(d)
    except (TypeError, ValueError):
        return  # None has no TOML form
    try:
        wiring = loads_rig(text, "rig.toml")
    except RigFileError as exc:
        assert str(exc).startswith("rig.toml: ")
        return
    assert isinstance(wiring.problems(), list)
