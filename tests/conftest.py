"""Every test sees an empty calibration store of its own, never the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_calibration_store(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TWINRIG_CALIBRATION", str(tmp_path_factory.mktemp("calibration") / "store.h5"))
