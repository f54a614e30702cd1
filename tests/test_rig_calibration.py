"""A calibration belongs to the whole rig it was made on, and lives in that rig's store.

The rig's key (:class:`calibration.rigkey.RigKey`) is its DAQ's identity, its boards' uids,
its network and wiring, and on the simulated bench its seed and imperfections. A run uses
only a calibration of its own rig; one made for this rig that no longer matches it is
refused naming what differs, or applied in part with ``--partial-calibration``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from calibration import store
from calibration.rigkey import RigKey, differences, key_of
from hostctl import calibrating, session
from hostctl.calibrating import CalibrationMismatch
from hostctl.cli import main
from hostctl.experiment import builtin_experiment_text
from hostctl.rigfile import dumps_builtin
from hostctl.runfile import load
from instruments.rig import open_rig
from instruments.sim.bench import DaqErrors
from instruments.wiring import default_wiring


def xor_file(tmp_path: Path, epochs: int = 2, errors: str = "realistic") -> Path:
    """xor_gen2, a few epochs long, on the bench ``hostctl calibrate`` calibrates (realistic
    DAQ errors, seed 0) or, with ``errors="ideal"``, on its own ideal bench as shipped."""
    text = builtin_experiment_text("xor_gen2").replace("epochs = 4000", f"epochs = {epochs}")
    path = tmp_path / f"xor-{errors}-{epochs}.toml"
    path.write_text(text.replace('daq_errors = "ideal"', f'daq_errors = "{errors}"'))
    return path


def rig_file(tmp_path: Path, name: str = "bench-a", head: str = "", edit=lambda t: t) -> Path:
    """The built-in Gen-2 bench as a rig file of its own name; ``head`` goes first (top-level
    keys), ``edit`` changes the text."""
    text = dumps_builtin("gen2").replace('name = "gen2-sim"', f'name = "{name}"')
    path = tmp_path / f"{name}.toml"
    path.write_text(head + edit(text))
    return path


def bench(**options):
    return open_rig(default_wiring(options.pop("builtin", "gen2")), simulate=True, **options)


@pytest.fixture
def gen2_store(tmp_path, monkeypatch):
    """A store holding ``hostctl calibrate all`` of the built-in Gen-2 bench, seed 0."""
    path = tmp_path / "store.h5"
    monkeypatch.setenv("TWINRIG_CALIBRATION", str(path))
    assert main(["calibrate", "all", "--quiet"]) == 0
    return path


# -- the key ----------------------------------------------------------------------------------


def test_the_key_of_a_simulated_bench_names_all_it_is_made_of():
    rig = bench(seed=0)
    try:
        key = key_of(rig)
    finally:
        rig.close()
    assert key.rig == "gen2-sim" and key.daq.startswith("National Instruments PXIe-6738")
    assert sorted(key.boards) == list(range(1, 33)) and None not in key.boards.values()
    assert len(set(key.boards.values())) == 32  # every board its own uid
    assert key.simulated["seed"] == 0 and len(key.simulated["imperfections"]) == 16
    assert RigKey.from_dict(json.loads(json.dumps(key.to_dict()))) == key


@pytest.mark.parametrize("other, expect", [
    ({"builtin": "gen1", "seed": 0}, "another network"),
    ({"seed": 1}, "simulated bench of seed 0, this one has seed 1"),
    ({"seed": 0, "errors": DaqErrors.ideal()}, "imperfections"),
    ({"seed": 0, "adc_offset_uv": 200.0}, "imperfections"),
])
def test_benches_of_one_seed_or_one_daq_are_not_one_rig(other, expect):
    a, b = bench(seed=0), bench(**other)
    try:
        what = differences(key_of(a), key_of(b))
    finally:
        a.close()
        b.close()
    assert any(expect in w for w in what), what


def test_a_run_uses_only_a_calibration_of_its_own_rig(gen2_store):
    same = bench(seed=0)
    try:
        cal, notes = calibrating.choose(gen2_store, same)
        assert cal is not None and cal.version == 1 and notes == [f"calibration v1 of gen2-sim ({cal.created}) applied"]
    finally:
        same.close()
    # the Gen-1 grid of the same seed (whose DAQ serial once matched: a traceback), the
    # Gen-2 bench of another seed, or with an ideal DAQ: no calibration, and no error
    for options in ({"builtin": "gen1", "seed": 0}, {"seed": 1}, {"seed": 0, "errors": DaqErrors.ideal()}):
        rig = bench(**options)
        try:
            cal, notes = calibrating.choose(gen2_store, rig)
            assert cal is None, options
            assert notes[0].startswith(f"no calibration of this rig in {gen2_store}"), notes
        finally:
            rig.close()


def test_a_calibration_without_a_key_is_never_applied(tmp_path):
    path = tmp_path / "old.h5"
    rig = bench(seed=0)
    try:
        assert main(["calibrate", "daq", "--quiet", "--store", str(path)]) == 0
        keyless = replace(store.load(path), key=None, version=None)
        store.save(path, keyless)
        with h5py.File(path, "a") as f:  # version 1 made keyless too, as format 1
            del f["calibrations/1"].attrs["rig_key"]
        cal, notes = calibrating.choose(path, rig)
    finally:
        rig.close()
    assert cal is None
    assert "2 calibrations there predate rig keys and are never applied automatically" in notes[0]


# -- refused, or applied in part ----------------------------------------------------------------


def _replace_board(path: Path, address: int) -> None:
    """Store the newest calibration again as if board ``address`` had had another uid."""
    cal = store.load(path)
    boards = {**cal.key.boards, address: "0badc0de0badc0de"}
    store.save(path, replace(cal, key=replace(cal.key, boards=boards), version=None))


def test_a_calibration_of_this_rig_that_no_longer_matches_is_refused_naming_what_differs(gen2_store):
    _replace_board(gen2_store, 3)
    rig = bench(seed=0)
    try:
        present = key_of(rig).boards[3]
        # v1 still matches exactly: the rig as it is now
        assert calibrating.choose(gen2_store, rig)[0].version == 1
        with h5py.File(gen2_store, "a") as f:
            del f["calibrations/1"]
        with pytest.raises(CalibrationMismatch) as refused:
            calibrating.choose(gen2_store, rig)
    finally:
        rig.close()
    message = str(refused.value)
    assert f"calibration v2 of gen2-sim" in message
    assert f"board 3 (uid 0badc0de0badc0de -> {present}) replaced" in message
    assert "--partial-calibration" in message and "\n" not in message


def test_partial_calibration_applies_what_holds_and_the_run_file_records_what_was_left_out(gen2_store, tmp_path, capsys):
    _replace_board(gen2_store, 3)
    with h5py.File(gen2_store, "a") as f:
        del f["calibrations/1"]
    exp = xor_file(tmp_path)
    assert main(["train", str(exp), "--out", str(tmp_path / "refused.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hostctl: error: ") and "\n" not in err and "board 3 (uid 0badc0de0badc0de" in err
    assert not (tmp_path / "refused.h5").exists()

    out = tmp_path / "partial.h5"
    assert main(["train", str(exp), "--out", str(out), "--quiet", "--partial-calibration"]) == 0
    run = load(out)
    embedded = store.from_json(run.metadata["calibration"])
    assert embedded.daq is not None  # the same DAQ: its channels hold
    assert sorted(int(a) for a in embedded.edges["adc"]) == [a for a in range(1, 33) if a != 3]
    assert embedded.edges["s_a_per_v2"] is None  # the fits need every board as it was
    assert any("ADC offsets of boards 3" in o for o in embedded.omitted)
    assert any("device fits" in o for o in embedded.omitted)
    warnings = list(run.events["message"][run.events["level"] == "warning"])
    assert any("applied in part" in m and "board 3" in m for m in warnings), warnings


def test_partial_calibration_of_nothing_that_holds_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    assert main(["calibrate", "edges", "--quiet", "--store", str(path)]) == 0
    cal = store.load(path)
    gone = {a: f"{a:016x}" for a in cal.key.boards}  # every board replaced
    store.save(path, replace(cal, key=replace(cal.key, boards=gone), version=None))
    with h5py.File(path, "a") as f:
        del f["calibrations/1"]
    rig = bench(seed=0)
    try:
        with pytest.raises(CalibrationMismatch, match="nothing of calibration v2 .* holds on this rig"):
            calibrating.choose(path, rig, partial=True)
    finally:
        rig.close()


def test_a_resumed_run_reapplies_its_calibration_only_on_its_own_rig(gen2_store):
    rig, other = bench(seed=0), bench(seed=1)
    try:
        cal, _ = calibrating.choose(gen2_store, rig)
        assert calibrating.reapply(rig, cal) == []
        with pytest.raises(CalibrationMismatch, match="seed 0, this one has seed 1"):
            calibrating.reapply(other, cal)
    finally:
        rig.close()
        other.close()


# -- the rig's store ----------------------------------------------------------------------------


def test_a_rig_file_names_its_store_relative_to_itself(tmp_path, monkeypatch):
    named = rig_file(tmp_path, head='calibration = "cal/mine.h5"\n')
    assert calibrating.store_path(None, named, simulated=False) == tmp_path / "cal" / "mine.h5"
    assert calibrating.store_path(None, named, simulated=True) == tmp_path / "cal" / "mine.simulated.h5"
    assert calibrating.store_path("given.h5", named, simulated=False) == Path("given.h5")
    plain = rig_file(tmp_path, name="bench-b")
    assert calibrating.store_path(None, plain, simulated=False) == Path(store.default_path())  # $TWINRIG_CALIBRATION
    monkeypatch.delenv("TWINRIG_CALIBRATION")
    assert calibrating.store_path(None, plain, simulated=False) == tmp_path / "bench-b.calibration.h5"
    assert calibrating.store_path(None, plain, simulated=True) == tmp_path / "bench-b.calibration.simulated.h5"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert calibrating.store_path(None, None) == tmp_path / "data/twinrig/calibration/simulated-benches.h5"


def test_a_bad_store_in_a_rig_file_is_one_error_naming_the_field(tmp_path, capsys):
    bad = rig_file(tmp_path, head="calibration = 3\n")
    assert main(["rig", "check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{bad}: calibration:" in err
    assert main(["calibrate", "daq", "--rig", str(bad), "--simulate", "--quiet"]) == 2
    assert f"{bad}: calibration:" in capsys.readouterr().err


def test_calibrate_simulate_rig_rehearses_into_the_rigs_simulated_store(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TWINRIG_CALIBRATION")
    rig = rig_file(tmp_path, head='calibration = "bench-a.h5"\n')
    assert main(["calibrate", "all", "--rig", str(rig), "--simulate", "--quiet"]) == 0
    assert f"calibration v1 of bench-a saved in {tmp_path / 'bench-a.simulated.h5'}" in capsys.readouterr().out
    assert not (tmp_path / "bench-a.h5").exists()  # the real bench's store is untouched
    assert main(["calibration", "show", "--rig", str(rig), "--simulate"]) == 0
    assert "bench-a" in capsys.readouterr().out
    assert main(["calibration", "show", "--rig", str(rig)]) == 0
    assert "no calibrations in" in capsys.readouterr().out
    # a dry run of the rig file's wiring uses the rehearsal's calibration
    out = tmp_path / "dry.h5"
    assert main(["train", str(xor_file(tmp_path)), "--rig", str(rig), "--simulate", "--out", str(out), "--quiet"]) == 0
    assert json.loads(load(out).metadata["calibration"])["rig"] == "bench-a"


def test_a_rewired_rig_is_refused_and_a_retimed_one_is_not(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TWINRIG_CALIBRATION")
    rig = rig_file(tmp_path)
    assert main(["calibrate", "daq", "--rig", str(rig), "--simulate", "--quiet"]) == 0
    exp = xor_file(tmp_path)
    # the timing and limits are not what the calibration measured
    rig.write_text(rig.read_text().replace("settle_s = 0.001", "settle_s = 0.002"))
    out = tmp_path / "retimed.h5"
    assert main(["train", str(exp), "--rig", str(rig), "--simulate", "--out", str(out), "--quiet"]) == 0
    assert json.loads(load(out).metadata["calibration"])["version"] == 1
    # another input range is another wiring
    rig.write_text(rig.read_text().replace('node = "r3c3", twin = "free", range_v = 1.0',
                                           'node = "r3c3", twin = "free", range_v = 5.0'))
    capsys.readouterr()
    assert main(["train", str(exp), "--rig", str(rig), "--simulate", "--out", str(tmp_path / "x.h5"), "--quiet"]) == 2
    assert "another wiring" in capsys.readouterr().err


def test_calibrate_simulate_needs_a_rig(capsys):
    assert main(["calibrate", "daq", "--simulate", "--quiet"]) == 2
    assert "--simulate needs --rig" in capsys.readouterr().err


# -- a new user's first session -----------------------------------------------------------------


def test_a_fresh_home_calibrates_runs_the_demo_and_xor_each_with_its_own_rigs_calibration(tmp_path, monkeypatch, capsys):
    import matplotlib

    monkeypatch.setenv("MPLCONFIGDIR", matplotlib.get_configdir())  # its font cache, not the test's
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("TWINRIG_CALIBRATION", raising=False)
    monkeypatch.chdir(tmp_path)
    stores = home / ".local" / "share" / "twinrig" / "calibration"

    # xor_gen2 as shipped (ideal DAQ), short, before any calibration exists
    xor = xor_file(tmp_path, epochs=20, errors="ideal")
    assert main(["train", str(xor), "--out", "before.h5", "--quiet"]) == 0

    assert main(["calibrate", "all", "--quiet"]) == 0
    assert [p.name for p in stores.iterdir()] == ["simulated-benches.h5"]  # the built-in benches' store
    assert main(["demo", "--out", "demo.h5", "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    demo = load(tmp_path / "demo.h5")
    assert demo.metadata["calibration"] == ""
    assert any("no calibration of this rig" in m for m in demo.events["message"])

    # the Gen-2 calibration is of another rig than xor_gen2's: the same run, to the bit
    assert main(["train", str(xor), "--out", "after.h5", "--quiet"]) == 0
    before, after = load(tmp_path / "before.h5"), load(tmp_path / "after.h5")
    assert after.metadata["calibration"] == ""
    for column in ("test_error", "test_accuracy", "train_error"):
        np.testing.assert_array_equal(after.epochs[column].to_numpy(), before.epochs[column].to_numpy())

    # the built-in xor_gen2 itself chooses no calibration; the realistic bench chooses it
    exp = session.resolve_experiment("xor_gen2")
    rig = session.open_bench(exp, session.wiring_for(exp, None), simulate=True)
    try:
        cal, notes = session.calibrate_rig(rig, None)
    finally:
        rig.close()
    assert cal is None and notes[0].startswith(f"no calibration of this rig in {stores / 'simulated-benches.h5'}")
    assert main(["train", str(xor_file(tmp_path, errors="realistic")), "--out", "real.h5", "--quiet"]) == 0
    assert json.loads(load(tmp_path / "real.h5").metadata["calibration"])["version"] == 1
    assert [p.relative_to(home) for p in home.rglob("*.h5")] == [Path(".local/share/twinrig/calibration/simulated-benches.h5")]


def test_calibrate_experiment_calibrates_the_bench_that_experiment_runs_on(tmp_path, capsys):
    exp = xor_file(tmp_path, errors="ideal")  # xor_gen2 as shipped: its own ideal bench
    out = tmp_path / "before.h5"
    assert main(["train", str(exp), "--out", str(out), "--quiet"]) == 0
    # no calibration of its bench yet: the note names the command that makes one
    note = f"values are uncorrected (hostctl calibrate all --experiment {exp})"
    assert any(m.endswith(note) for m in load(out).events["message"])
    assert main(["calibrate", "all", "--quiet"]) == 0  # the default Gen-2 bench is another rig
    assert main(["calibrate", "all", "--experiment", str(exp), "--quiet"]) == 0
    assert "calibration v2 of gen2-lattice-sim saved" in capsys.readouterr().out
    out = tmp_path / "after.h5"
    assert main(["train", str(exp), "--out", str(out), "--quiet"]) == 0
    assert json.loads(load(out).metadata["calibration"])["version"] == 2
    assert "calibration v2 of gen2-lattice-sim" in load(out).events["message"][0]


@pytest.mark.parametrize("extra", [["--seed", "3"], ["--builtin", "gen1"]])
def test_calibrate_experiment_takes_the_bench_from_the_experiment_alone(extra, capsys):
    assert main(["calibrate", "daq", "--experiment", "xor_gen2", *extra, "--quiet"]) == 2
    assert f"{extra[0]} and --experiment" in capsys.readouterr().err
