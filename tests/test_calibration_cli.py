"""Calibration from the command line, and its automatic use by training runs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from calibration import store
from hostctl.cli import main
from hostctl.experiment import builtin_experiment_text
from hostctl.runfile import load


@pytest.fixture
def store_path(tmp_path, monkeypatch):
    path = tmp_path / "store.h5"
    monkeypatch.setenv("TWINRIG_CALIBRATION", str(path))
    return path


def test_calibrate_daq_saves_versions_that_show_and_diff(store_path, capsys):
    assert main(["calibrate", "daq", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "calibration v1 of gen2-sim saved" in out and "PXI1Slot3/ai1" in out
    assert main(["calibrate", "daq", "--quiet", "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["calibration", "show"]) == 0
    listing = capsys.readouterr().out
    assert "      1  " in listing and "      2  " in listing
    assert main(["calibration", "diff", "1", "2"]) == 0
    changes = capsys.readouterr().out
    assert "daq identity" in changes and "ao PXI1Slot2/ao0 offset_v" in changes


def test_calibration_show_of_a_missing_version_is_one_line(store_path, capsys):
    assert main(["calibrate", "daq", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["calibration", "show", "--version", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hostctl: error: ") and "\n" not in err


def xor_on_a_realistic_bench(tmp_path, epochs: int = 4000):
    """XOR on the simulated bench that ``hostctl calibrate`` calibrates (gen2, seed 0)."""
    text = builtin_experiment_text("xor_gen2").replace('daq_errors = "ideal"', 'daq_errors = "realistic"')
    text = text.replace("epochs = 4000", f"epochs = {epochs}")
    path = tmp_path / "xor.toml"
    path.write_text(text)
    return path


def test_a_calibrated_bench_trains_better_than_an_uncalibrated_one(store_path, tmp_path, capsys):
    exp = xor_on_a_realistic_bench(tmp_path)
    assert main(["train", str(exp), "--out", str(tmp_path / "raw.h5"), "--quiet", "--no-calibration"]) == 0
    assert main(["calibrate", "daq", "--quiet", "--seed", "0"]) == 0  # the bench the experiment runs on
    assert main(["train", str(exp), "--out", str(tmp_path / "calibrated.h5"), "--quiet"]) == 0
    raw, cal = load(tmp_path / "raw.h5"), load(tmp_path / "calibrated.h5")
    assert cal.epochs["test_error"].iloc[-1] < raw.epochs["test_error"].iloc[-1]
    assert cal.epochs["test_accuracy"].iloc[-1] == 1.0
    embedded = json.loads(cal.metadata["calibration"])
    assert embedded["version"] == 1 and embedded["daq"] is not None
    assert raw.metadata["calibration"] == ""
    assert any("applied" in m for m in cal.events["message"])


def test_an_old_calibration_draws_a_warning(store_path, tmp_path, capsys):
    assert main(["calibrate", "daq", "--quiet", "--seed", "0"]) == 0
    old = replace(store.load(store_path, 1), created="2026-01-01T00:00:00+00:00", version=None)
    store.save(store_path, old)
    capsys.readouterr()
    out = tmp_path / "r.h5"
    exp = xor_on_a_realistic_bench(tmp_path, epochs=2)  # the bench calibrated
    assert main(["train", str(exp), "--out", str(tmp_path / "young.h5"), "--max-calibration-age", "400"]) == 0
    assert "days old" not in capsys.readouterr().out
    assert main(["train", str(exp), "--out", str(out)]) == 0
    assert "days old" in capsys.readouterr().out
    run = load(out)
    assert any("days old" in m for m in run.events["message"][run.events["level"] == "warning"])


def test_a_bench_without_calibration_is_noted_in_the_run_file(store_path, tmp_path):
    out = tmp_path / "r.h5"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    assert any("no calibration" in m for m in load(out).events["message"])


def test_calibrate_all_fits_the_devices_and_runs_write_the_boards_offsets(store_path, capsys):
    from hostctl import session
    from instruments.rig import open_rig
    from instruments.sim.bench import BenchFaults
    from instruments.wiring import default_wiring

    assert main(["calibrate", "all", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "32 mosfet edges" in out and "twin mismatch" in out
    cal = store.load(store_path)
    assert cal.kind == "all"
    # a fresh bench of the same seed: its boards have no offsets until a run applies them
    rig = open_rig(default_wiring("gen2"), simulate=True, seed=0, adc_offset_uv=0.0, faults=BenchFaults())
    try:
        applied, notes = session.calibrate_rig(rig, store_path)
        assert applied is not None and applied.version == cal.version
        stored = {a: rig.bus.request(a, "read_calibration") for a in (1, 17, 32)}
        for a, reply in stored.items():
            expect = cal.edges["adc"][str(a)]["stored_uv"]
            assert [reply[k] for k in ("offset_free_a_uv", "offset_free_b_uv", "offset_clamped_a_uv",
                                       "offset_clamped_b_uv")] == list(expect)
    finally:
        rig.close()


def test_a_run_file_holds_the_calibrated_device_models(store_path, tmp_path, capsys):
    from instruments.sim.netfile import loads_network_file

    assert main(["calibrate", "all", "--quiet"]) == 0
    exp = xor_on_a_realistic_bench(tmp_path, epochs=2)
    out = tmp_path / "r.h5"
    assert main(["train", str(exp), "--out", str(out), "--quiet"]) == 0
    device = loads_network_file(load(out).metadata["network"]).device
    edges = store.load(store_path).edges
    assert device is not None and device.kind == "mosfet"
    np.testing.assert_allclose(device.s_a_per_v2, np.array(edges["s_a_per_v2"]), rtol=1e-9)
    np.testing.assert_allclose(device.vt_v, np.array(edges["vt_v"]), rtol=1e-9)
