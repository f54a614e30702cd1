"""Calibrations in use: find the one that belongs to a rig, apply it, say how old it is.

A DAQ calibration belongs to the DAQ it was made on (its identity, with serial numbers), and
applies channel by channel (a channel's gain and offset do not depend on which node it is
wired to); an edge calibration belongs to the boards of a rig (by the rig's name). Applying
a calibration puts the DAQ corrections under the rig's safety layer and writes each
board's ADC offsets over the bus.
"""

from __future__ import annotations

import numpy as np

from calibration import store
from instruments.calibrated import DaqCorrections, apply_daq_calibration
from instruments.rig import Rig

DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0
"""A calibration older than this (s) draws a warning: a week."""


def find(path, rig: Rig) -> store.Calibration | None:
    """The latest calibration in the store at ``path`` made on this rig's DAQ (or, for an
    edge-only calibration, on a rig of this name); None when there is none or no store."""
    try:
        infos = store.versions(path)
    except (store.CalibrationStoreError, OSError):
        return None
    daq_id = rig.identities().get("daq")
    for info in sorted(infos, key=lambda i: i.version, reverse=True):
        cal = store.load(path, info.version)
        if cal.daq is not None and cal.identities.get("daq") == daq_id:
            return cal
        if cal.daq is None and cal.rig == rig.wiring.name:
            return cal
    return None


def corrections(cal: store.Calibration, rig: Rig) -> tuple[DaqCorrections, list[str]]:
    """The DAQ corrections in the rig's channel order, and the channels the calibration does
    not cover (left uncorrected)."""
    fits = {c.name: c for c in cal.daq.channels()}
    missing: list[str] = []

    def pick(channels):
        gain, offset = np.ones(len(channels)), np.zeros(len(channels))
        for k, ch in enumerate(channels):
            if ch in fits:
                gain[k], offset[k] = fits[ch].gain, fits[ch].offset_v
            else:
                missing.append(ch)
        return gain, offset

    ao = pick(rig.daq.ao_channels)
    ai = pick(rig.daq.ai_channels)
    return DaqCorrections(tuple(rig.daq.ao_channels), ao[0], ao[1], tuple(rig.daq.ai_channels), ai[0], ai[1]), missing


def apply(rig: Rig, cal: store.Calibration, max_age_s: float = DEFAULT_MAX_AGE_S) -> list[str]:
    """Apply ``cal`` to ``rig``; returns the warnings (uncovered channels, its age)."""
    warnings = []
    if cal.daq is not None:
        corr, missing = corrections(cal, rig)
        apply_daq_calibration(rig, corr)
        if missing:
            warnings.append(f"calibration v{cal.version} does not cover {', '.join(missing)}: left uncorrected")
    if cal.edges is not None and rig.bus is not None:
        from calibration.edges import write_adc_offsets

        write_adc_offsets(rig, cal.edges)
    age = store.age_s(cal)
    if age > max_age_s:
        warnings.append(f"calibration v{cal.version} is {age / 86400:.1f} days old (made {cal.created}); "
                        f"recalibrate with hostctl calibrate")
    return warnings
