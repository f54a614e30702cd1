"""Calibrations in use: which store belongs to a rig, which of its calibrations belongs to
the rig at hand, applying it, saying how old it is.

A calibration belongs to the whole rig it was measured on, its
:class:`~calibration.rigkey.RigKey`: the DAQ's identity, every board's unique id, the
network and the wiring, and on the simulated bench its seed and imperfections. A run
applies the newest calibration of its store whose key is the rig's. A calibration made
for a rig of this name that no longer matches (a board replaced, another DAQ, another
seed) is refused, naming what differs; with ``partial=True`` (``--partial-calibration``)
the part of it that still holds is applied and the rest named:

- the DAQ part, when the DAQ is the same (a channel's gain and offset do not depend on
  which node it is wired to);
- each board's ADC offsets, when the same board (by uid) is at that address; on the
  simulated bench only when the bench's seed and imperfections are the same too (its
  boards are part of it);
- the device fits, when besides the network and every board are the same, each on its
  edge.

Calibrations of other rigs are ignored; calibrations without a key (stores of format 1)
never match. Applying a calibration puts the DAQ corrections under the rig's safety layer
and writes each board's ADC offsets over the bus.

Stores: a store belongs to a rig. ``--store``/``--calibration-store`` when given; else the
rig file's ``calibration = "PATH"`` (relative to the rig file); else
``$TWINRIG_CALIBRATION``; else ``RIG.calibration.h5`` beside the rig file ``RIG.toml``, or
for the built-in simulated benches ``$XDG_DATA_HOME/twinrig/calibration/simulated-benches.h5``
(:func:`calibration.store.default_path`; their keys tell the benches apart).
A rig file's wiring on the simulated bench (``--simulate``) has its own store beside the
real one: ``X.h5`` becomes ``X.simulated.h5``, so rehearsing never touches the real
bench's calibrations.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from calibration import store
from calibration.rigkey import RigKey, board_differences, differences, key_of
from instruments.calibrated import DaqCorrections, apply_daq_calibration
from instruments.rig import Rig

from .errors import UserError

DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0
"""A calibration older than this (s) draws a warning: a week."""


class CalibrationMismatch(UserError):
    """A calibration made for this rig does not match it; the message names what differs."""


# -- which store -------------------------------------------------------------------------------


def rig_file_store(rig_file) -> Path | None:
    """The store a rig file names (``calibration = "PATH"``, relative to the rig file), or
    None when it names none. The rig file's form is checked by :func:`hostctl.rigfile.load_rig`."""
    from instruments.tomlspec import parse_toml, read_text

    from .rigfile import RigFileError

    rig_file = Path(rig_file)
    data = parse_toml(read_text(rig_file, RigFileError), str(rig_file), RigFileError)
    named = data.get("calibration")
    if named is None:
        return None
    path = Path(named).expanduser()
    return path if path.is_absolute() else rig_file.parent / path


def store_path(explicit=None, rig_file=None, simulated: bool = True) -> Path:
    """The calibration store of a rig (see the module's description).

    Args:
        explicit: a path given on the command line, used as it is.
        rig_file: the rig file, or None for a built-in simulated bench.
        simulated: the rig file's wiring runs on the simulated bench (ignored without a
            rig file).

    Raises:
        UserError: the rig file cannot be read.
    """
    if explicit is not None:
        return Path(explicit)
    if rig_file is None:
        return store.default_path()
    from .rigfile import RigFileError

    try:
        base = rig_file_store(rig_file)
    except RigFileError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{rig_file}: cannot read the rig file: {exc.strerror or exc}") from None
    if base is None:
        env = os.environ.get(store.ENV_VAR)
        base = Path(env).expanduser() if env else Path(rig_file).with_suffix(".calibration.h5")
    return base.with_name(f"{base.stem}.simulated{base.suffix}") if simulated else base


# -- which calibration -------------------------------------------------------------------------


def _describe(cal: store.Calibration) -> str:
    return f"calibration v{cal.version} of {cal.rig} ({cal.created})"


def _restricted(edges: dict, addresses, devices: bool) -> dict:
    """The dict of an edge calibration with the ADC offsets of the boards at ``addresses``
    only, and the device fits (and their mismatch) only when ``devices``."""
    keep = {int(a) for a in addresses}
    d = {**edges, "adc": {a: v for a, v in edges.get("adc", {}).items() if int(a) in keep}}
    if not devices:
        d.update(s_a_per_v2=None, vt_v=None, residual_a=None, r_ohm=None, refused=[], mismatch={})
    return d


def restrict(cal: store.Calibration, present: RigKey, rig: Rig) -> tuple[store.Calibration | None, list[str]]:
    """The part of ``cal`` that holds on the rig of key ``present`` (see the module's
    description), and what was left out, one phrase each; None when nothing holds."""
    recorded = cal.key
    omitted: list[str] = []
    daq = cal.daq
    if daq is not None and recorded.daq != present.daq:
        daq = None
        omitted.append("the DAQ channels (another DAQ)")
    edges = cal.edges
    if edges is not None:
        same_bench = recorded.simulated == present.simulated
        ok = [a for a, uid in recorded.boards.items()
              if same_bench and uid is not None and present.boards.get(a) == uid]
        had_adc = {int(a) for a in edges.get("adc", {})}
        lost = sorted(had_adc - set(ok))
        if lost:
            why = "; ".join(board_differences({a: recorded.boards.get(a) for a in lost}, present.boards)) \
                if same_bench else "another simulated bench"
            omitted.append(f"the ADC offsets of boards {', '.join(map(str, lost))} ({why})")
        has_devices = edges.get("s_a_per_v2") is not None or edges.get("r_ohm") is not None
        by_edge = {int(e): int(a) for a, e in rig.wiring.boards.items()}
        devices = (has_devices and same_bench and recorded.network == present.network
                   and set(ok) >= set(edges["addresses"])
                   and all(by_edge.get(e) == a for e, a in enumerate(edges["addresses"])))
        if has_devices and not devices:
            omitted.append("the device fits (another network, or boards replaced or moved)")
        edges = _restricted(edges, sorted(had_adc & set(ok)), devices)
        if not edges["adc"] and not devices:
            edges = None
    if daq is None and edges is None:
        return None, omitted
    return store.Calibration(cal.rig, daq=daq, edges=edges, created=cal.created, identities=cal.identities,
                             settings=cal.settings,
                             version=cal.version, twinrig_version=cal.twinrig_version, key=cal.key,
                             omitted=tuple(cal.omitted) + tuple(omitted)), omitted


def _load_all(path) -> list[store.Calibration]:
    """Every calibration of the store, newest first (none when there is no file)."""
    try:
        return [store.load(path, i.version) for i in reversed(store.versions(path))]
    except store.CalibrationStoreError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{store._path(path)}: cannot read the calibration store: {exc}") from None


def choose(path, rig: Rig, partial: bool = False,
           how: str = "hostctl calibrate") -> tuple[store.Calibration | None, list[str]]:
    """The calibration of the store at ``path`` (None: the default) to apply to ``rig``, and
    notes for the run's log; None (and why) when it has none. ``how`` is the command that
    calibrates this rig, named in the notes and errors.

    Raises:
        CalibrationMismatch: the newest calibration made for a rig of this name does not
            match it (and ``partial`` is False, or nothing of it matches).
        UserError: the store cannot be read.
    """
    where = store._path(path)
    cals = _load_all(path)
    present = key_of(rig)
    keyed = [c for c in cals if c.key is not None]
    for cal in keyed:
        if cal.key.matches(present):
            return cal, [f"{_describe(cal)} applied"]
    candidate = next((c for c in keyed if _same_rig(c.key, present)), None)
    if candidate is None and partial:
        candidate = next((c for c in keyed if _shares_parts(c.key, present)), None)
    if candidate is not None:
        what = "; ".join(differences(candidate.key, present))
        if not partial:
            raise CalibrationMismatch(
                f"{where}: {_describe(candidate)} is not of this rig: {what}; recalibrate ({how}), or "
                f"run with --partial-calibration (the part that matches) or --no-calibration")
        part, omitted = restrict(candidate, present, rig)
        if part is None:
            raise CalibrationMismatch(f"{where}: nothing of {_describe(candidate)} holds on this rig: {what}")
        return part, [f"{_describe(candidate)} applied in part ({what}); not applied: {'; '.join(omitted)}"]
    old = len(cals) - len(keyed)
    note = f"no calibration of this rig in {where}: values are uncorrected ({how})"
    if old:
        note += (f"; {old} calibration{'s' if old > 1 else ''} there predate{'s' if old == 1 else ''} rig keys "
                 f"and {'are' if old > 1 else 'is'} never applied automatically")
    return None, [note]


def _same_rig(recorded: RigKey, present: RigKey) -> bool:
    """``recorded`` is of this rig, as it was before something changed: a rig of this name
    or of this network and wiring, and on the simulated bench the same bench (seed and
    imperfections; another seed is another bench, whose calibrations are simply not this
    one's)."""
    if recorded.rig != present.rig and (recorded.network, recorded.wiring) != (present.network, present.wiring):
        return False
    return recorded.simulated is None or present.simulated is None or recorded.simulated == present.simulated


def _shares_parts(recorded: RigKey, present: RigKey) -> bool:
    """Some part of ``recorded`` may hold on ``present``: the same DAQ, or a board of the
    same uid (on the simulated bench, of the same bench)."""
    if recorded.daq == present.daq:
        return True
    if recorded.simulated != present.simulated:
        return False
    uids = {u for u in present.boards.values() if u is not None}
    return any(u in uids for u in recorded.boards.values())


def reapply(rig: Rig, cal: store.Calibration) -> list[str]:
    """Apply again the calibration a run file embeds (for ``hostctl resume``), after
    checking that what it applied still holds on ``rig``; returns the warnings.

    Raises:
        CalibrationMismatch: the rig is not the one the calibration was applied to.
    """
    if cal.key is not None:
        present = key_of(rig)
        if cal.omitted:
            _, lost = restrict(cal, present, rig)
        else:
            lost = differences(cal.key, present)
        if lost:
            raise CalibrationMismatch(f"the run's {_describe(cal)} does not hold on this rig: {'; '.join(lost)}")
    return apply(rig, cal, max_age_s=float("inf"))


# -- applying it -------------------------------------------------------------------------------


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
