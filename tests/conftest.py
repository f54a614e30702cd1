"""Shared test set-up.

Hypothesis runs under one of two profiles: ``ci`` (chosen when ``CI=true``) derandomises
every property test, so a CI run never passes or fails by luck; ``dev`` (elsewhere) draws
fresh examples each run, so local runs keep exploring. Every example a run has found is
kept in its test as an explicit ``@example`` or case. Neither profile has a deadline: a
test's speed is measured by the benchmarks, never by a wall clock.

Every test sees an empty calibration store of its own, never the user's, and a data folder
(``$XDG_DATA_HOME``) of its own: the default stores of the built-in benches are there.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")


@pytest.fixture(autouse=True)
def _private_calibration_store(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TWINRIG_CALIBRATION", str(tmp_path_factory.mktemp("calibration") / "store.h5"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


@pytest.fixture
def serve():
    """``serve(boards, others=(), **emulator_args)``: protocol-2 ``boards`` (and protocol-1
    ``others``) on a running :func:`instruments.bus.v2.onwire.emulate` pseudo-terminal,
    closed after the test."""
    from instruments.bus.v2 import onwire

    running = []

    def start(boards, others=(), **kw):
        em = onwire.emulate(boards, others, **kw)
        em.start()
        running.append(em)
        return em

    yield start
    for em in running:
        em.close()
