"""The calibration store: dated, versioned calibrations in one HDF5 file."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration import store
from calibration.daq import ChannelFit, DaqCalibration, Tolerance, calibrate_daq
from calibration.rigkey import RigKey
from calibration.store import Calibration, CalibrationStoreError
from instruments.rig import open_rig
from instruments.sim.bench import DaqErrors
from instruments.wiring import default_wiring

WIRING = default_wiring("gen2")


def calibrate(ao_offset_v: float = 0.002, seed: int = 1) -> DaqCalibration:
    rig = open_rig(WIRING, simulate=True, seed=seed,
                   errors=DaqErrors(ao_gain=0.003, ao_offset_v=ao_offset_v, ai_gain=-0.002, ai_offset_v=0.001,
                                    ai_noise_v=60e-6))
    return calibrate_daq(rig, lambda channel=None, node=None, twin="free": rig.bench.probe_dmm(channel, node=node, twin=twin),
                         n_points=5, n_samples=20)


@pytest.fixture(scope="module")
def monday() -> DaqCalibration:
    return calibrate(ao_offset_v=0.002)


@pytest.fixture(scope="module")
def friday(monday) -> DaqCalibration:
    """The same bench after the outputs' offsets drifted by 1 mV (the same DAQ: a simulated
    DAQ of other errors has another serial, a real one that drifted keeps its own)."""
    return replace(calibrate(ao_offset_v=0.003), identities=monday.identities)


class EdgePart:
    """Stands in for an edge-board calibration: anything with ``to_dict()``."""

    def __init__(self, offsets_uv):
        self.offsets_uv = offsets_uv

    def to_dict(self) -> dict:
        return {"boards": {str(a): {"offset_uv": o} for a, o in enumerate(self.offsets_uv, 1)}, "method": "shorted"}


def test_saving_twice_gives_versions_1_and_2_and_load_gives_the_newest(tmp_path, monday, friday):
    path = tmp_path / "cal.h5"
    assert store.save(path, Calibration("gen2-sim", daq=monday)) == 1
    assert store.save(path, Calibration("gen2-sim", daq=friday)) == 2
    assert [(v.version, v.rig, v.kind) for v in store.versions(path)] == [(1, "gen2-sim", "daq"), (2, "gen2-sim", "daq")]
    assert store.versions(path)[0].created == monday.date
    newest = store.load(path)
    assert newest.version == 2
    assert newest.daq.to_dict() == friday.to_dict()
    assert store.load(path, 1).daq.to_dict() == monday.to_dict()


def test_a_loaded_calibration_corrects_like_the_saved_one(tmp_path, monday):
    store.save(tmp_path / "cal.h5", Calibration("gen2-sim", daq=monday))
    loaded = store.load(tmp_path / "cal.h5").daq
    v = np.linspace(0.0, 0.45, 6)
    np.testing.assert_array_equal(loaded.correct_outputs(v), monday.correct_outputs(v))
    np.testing.assert_array_equal(loaded.correct_inputs(v[:2]), monday.correct_inputs(v[:2]))


KEY = RigKey(daq="NI PXIe-6738 SN 1", boards={1: "aa", 2: "bb"}, network="n1", wiring="w1", rig="gen2-sim")


def test_latest_finds_the_newest_of_one_rig_by_its_key(tmp_path, monday, friday):
    path = tmp_path / "cal.h5"
    other = replace(KEY, boards={1: "aa", 2: "cc"})  # board 2 replaced: another rig
    assert store.latest(path, KEY) is None  # no file yet
    store.save(path, Calibration("gen2-sim", daq=monday, key=KEY))
    store.save(path, Calibration("gen2-sim", daq=friday, key=other))
    store.save(path, Calibration("gen2-sim", edges=EdgePart([3.0, -2.0]), key=KEY))
    store.save(path, Calibration("gen2-sim", daq=friday))  # no key: never matches
    assert store.latest(path, KEY).version == 3
    assert store.latest(path, replace(KEY, rig="renamed")).version == 3  # the name is not the rig
    assert store.latest(path, KEY, kind="daq").version == 1
    assert store.latest(path, other).version == 2
    assert store.latest(path, replace(KEY, network="n2")) is None
    assert [v.keyed for v in store.versions(path)] == [True, True, True, False]


def test_the_key_survives_the_store_and_json(tmp_path, monday):
    key = replace(KEY, simulated={"seed": 3, "imperfections": "0123456789abcdef"}, boards={1: "aa", 2: None})
    store.save(tmp_path / "cal.h5", Calibration("gen2-sim", daq=monday, key=key))
    loaded = store.load(tmp_path / "cal.h5")
    assert loaded.key == key
    assert store.from_json(store.to_json(loaded)).key == key


SETTINGS = {"dmm": {"function": "VOLT:DC", "range_v": 10.0, "nplc": 10.0, "autozero": True, "input_impedance": "10G"},
            "smu": {"source_v": 0.0, "current_limit_a": 1e-3, "output_on": False}}


def test_the_settings_instruments_measured_with_survive_the_store_and_json(tmp_path, monday):
    store.save(tmp_path / "cal.h5", Calibration("gen2-sim", daq=monday, key=KEY, settings=SETTINGS))
    loaded = store.load(tmp_path / "cal.h5")
    assert loaded.settings == SETTINGS
    assert store.from_json(store.to_json(loaded)).settings == SETTINGS


def test_a_calibration_stored_before_settings_were_kept_reads_with_none(tmp_path, monday):
    store.save(tmp_path / "cal.h5", Calibration("gen2-sim", daq=monday, key=KEY))
    with h5py.File(tmp_path / "cal.h5", "r") as f:
        assert "settings" not in f["calibrations/1"].attrs
    assert store.load(tmp_path / "cal.h5").settings == {}


def test_a_format_1_store_is_read_and_grows_keyed_entries(tmp_path, monday):
    path = tmp_path / "cal.h5"
    store.save(path, Calibration("gen2-sim", daq=monday))
    with h5py.File(path, "a") as f:  # as a twinrig before rig keys wrote it
        f.attrs["format_version"] = 1
    assert store.load(path).key is None
    store.save(path, Calibration("gen2-sim", daq=monday, key=KEY))
    assert [v.keyed for v in store.versions(path)] == [False, True]
    assert store.latest(path, KEY).version == 2


def test_a_calibration_with_parts_left_out_is_not_stored(tmp_path, monday):
    with pytest.raises(ValueError, match="parts left out"):
        store.save(tmp_path / "cal.h5", Calibration("gen2-sim", daq=monday, key=KEY, omitted=("the DAQ",)))


def test_diff_names_what_differs_in_the_rig_keys(monday):
    a = Calibration("gen2-sim", daq=monday, key=KEY)
    rows = store.diff(a, Calibration("gen2-sim", daq=monday, key=replace(KEY, boards={1: "aa", 2: "cc"})))
    assert [r.b for r in rows if r.quantity == "key"] == ["board 2 (uid bb -> cc) replaced"]
    rows = store.diff(a, Calibration("gen2-sim", daq=monday))
    assert [(r.a, r.b) for r in rows if r.quantity == "key"] == [(KEY.digest(), "none")]


def test_diff_lists_the_drift_with_numbers(monday, friday):
    rows = store.diff(Calibration("gen2-sim", daq=monday), Calibration("gen2-sim", daq=friday))
    by_key = {(r.what, r.quantity): r for r in rows}
    drift = by_key[("ao PXI1Slot2/ao0", "offset_v")]
    assert drift.a == pytest.approx(0.002, abs=2e-4) and drift.b == pytest.approx(0.003, abs=2e-4)
    assert drift.change == pytest.approx(1e-3, abs=5e-5)
    assert by_key[("ao PXI1Slot2/ao0", "gain")].change == pytest.approx(0.0, abs=2e-4)
    assert {r.what for r in rows} >= {f"ao {c}" for c in WIRING.ao_channels} | {f"ai {c}" for c in WIRING.ai_channels}
    assert len(rows) == 4 * 8  # four quantities per channel; the same instruments


def test_diff_names_channels_on_one_side_only_and_changed_edges_and_instruments(monday):
    a = Calibration("gen2-sim", daq=monday, edges=EdgePart([3.0, -2.0]))
    fewer = DaqCalibration(monday.rig, monday.ao[:-1], monday.ai, {**monday.identities, "dmm": "another meter"},
                           monday.date)
    rows = store.diff(a, Calibration("gen2-sim", daq=fewer, edges=EdgePart([3.5, -2.0])))
    assert ("dmm", "identity", monday.identities["dmm"], "another meter", None) in rows
    gone = [r for r in rows if r.what == "ao PXI1Slot2/ao5"]
    assert len(gone) == 4 and all(r.b is None and r.change is None for r in gone)
    assert [r for r in rows if r.what == "edges"] == [("edges", "boards.1.offset_uv", 3.0, 3.5, 0.5)]


def test_json_round_trip_keeps_everything(monday):
    cal = Calibration("gen2-sim", daq=monday, edges=EdgePart([1.0]), version=7)
    again = store.from_json(store.to_json(cal))
    assert again.to_dict() == cal.to_dict()
    assert again.kind == "all" and again.version == 7


def test_json_that_is_not_a_calibration_is_refused():
    with pytest.raises(CalibrationStoreError, match="not a twinrig calibration"):
        store.from_json('{"format": "twinrig-run"}')
    with pytest.raises(CalibrationStoreError, match="calibration JSON"):
        store.from_json("{")


def test_age_is_seconds_since_creation(monday):
    cal = Calibration("gen2-sim", daq=monday)
    created = datetime.fromisoformat(monday.date)
    assert store.age_s(cal, now=created + timedelta(hours=2)) == 7200.0
    assert store.age_s(cal) >= 0.0


def test_an_edge_part_passes_through_the_store(tmp_path):
    path = tmp_path / "cal.h5"
    part = EdgePart([3.0, -2.0])
    store.save(path, Calibration("gen2-sim", edges=part, identities={"bus": "loop://gen2-sim/bus"}))
    loaded = store.load(path)
    assert loaded.kind == "edges" and loaded.daq is None
    assert loaded.edges == part.to_dict()
    assert loaded.identities == {"bus": "loop://gen2-sim/bus"}


def test_a_calibration_needs_a_part():
    with pytest.raises(ValueError, match="DAQ part, an edge part or both"):
        Calibration("gen2-sim")


def test_the_default_file_comes_from_the_environment(tmp_path, monkeypatch, monday):
    monkeypatch.setenv(store.ENV_VAR, str(tmp_path / "deep" / "cal.h5"))
    assert store.save(None, Calibration("gen2-sim", daq=monday)) == 1
    assert (tmp_path / "deep" / "cal.h5").exists()
    assert store.load().version == 1
    monkeypatch.delenv(store.ENV_VAR)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert store.default_path() == tmp_path / "data" / "twinrig" / "calibration" / "simulated-benches.h5"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    share = tmp_path / "home" / ".local" / "share"
    assert store.default_path() == share / "twinrig" / "calibration" / "simulated-benches.h5"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")  # not absolute: ignored, as XDG says
    assert store.default_path().parent == share / "twinrig" / "calibration"


def test_a_file_that_is_not_a_calibration_file_is_refused_by_name(tmp_path):
    other = tmp_path / "run.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "twinrig-run"
    with pytest.raises(CalibrationStoreError, match=rf"{other}: not a calibration file"):
        store.load(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CalibrationStoreError, match="not an HDF5 file"):
        store.save(text, Calibration("x", edges={}))


def test_a_missing_version_is_refused_naming_the_versions(tmp_path, monday):
    store.save(tmp_path / "cal.h5", Calibration("gen2-sim", daq=monday))
    with pytest.raises(CalibrationStoreError, match=r"no calibration version 5; versions 1..1"):
        store.load(tmp_path / "cal.h5", 5)


# -- property: whatever goes in comes out ------------------------------------------------------

_volts = st.floats(-10, 10, allow_nan=False)
_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789/_", min_size=1, max_size=20)


@st.composite
def channel_fits(draw, kind: str):
    fits = []
    for _ in range(draw(st.integers(0, 6))):
        known = np.array(draw(st.lists(_volts, min_size=2, max_size=12)))
        observed = np.array(draw(st.lists(_volts, min_size=known.size, max_size=known.size)))
        fits.append(ChannelFit(draw(_names), kind, draw(st.floats(0.5, 2) | st.just(math.nan)), draw(_volts),
                               draw(st.floats(0, 1)), draw(st.floats(0, 1)), known, observed))
    return tuple(fits)


def _equal(a: dict, b: dict) -> bool:
    """Dicts equal, NaN equal to NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@settings(max_examples=40, deadline=None)
@given(
    ao=channel_fits("ao"),
    ai=channel_fits("ai"),
    edges=st.none() | st.dictionaries(_names, st.floats(allow_nan=False) | st.integers(-5, 5) | st.text(max_size=5),
                                      max_size=4),
    problems=st.lists(st.text(max_size=30), max_size=3),
    tolerance=st.builds(Tolerance, st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
)
def test_whatever_is_saved_is_loaded_and_survives_json(ao, ai, edges, problems, tolerance):
    daq = DaqCalibration("rig-é", ao, ai, {"daq": "NI ∆ 1"},
                         datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc).isoformat(), tolerance, tuple(problems), 10)
    cal = Calibration("rig-é", daq=daq, edges=edges)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cal.h5"
        version = store.save(path, cal)
        loaded = store.load(path, version)
    expected = {**cal.to_dict(), "version": version}
    assert _equal(loaded.to_dict(), expected)
    assert _equal(store.from_json(store.to_json(loaded)).to_dict(), expected)
