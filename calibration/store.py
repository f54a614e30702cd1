"""The calibration store: an HDF5 file holding the calibrations of a rig, dated and
versioned, newest last, each with the key of the rig it was made on.

Layout (``h5ls -r`` shows it all)::

    /                            attrs format = "twinrig-calibration", format_version = 2
    /calibrations/<version>      version = 1, 2, 3... in the order they were saved;
                                 attrs version, created (ISO 8601 UTC), rig, kind ("daq",
                                 "edges" or "all"), identities (JSON: role -> identity),
                                 twinrig_version, rig_key (JSON, see
                                 :class:`~calibration.rigkey.RigKey`; absent in format 1)
        daq/                     attrs date, tolerance (JSON), problems (JSON), n_samples
            ao/, ai/             datasets channel (str), gain, offset_v, residual_rms_v,
                                 linearity (one value per channel, the DAQ's order)
                points/<i>       (2, n) the channel's points: known_v, observed_v; attr channel
        edges                    the edge boards' calibration, a JSON string (scalar)

A :class:`Calibration` holds a DAQ part (:class:`~calibration.daq.DaqCalibration`) and an
edge-board part, the plain dict of an edge calibration's ``to_dict()`` (passed through, so
the store does not depend on how the boards are calibrated), or both, and the
:class:`~calibration.rigkey.RigKey` of the rig. A calibration of format 1 has no key: it is
still read, shown and compared, but belongs to no rig that can be checked, so it is never
applied automatically. The default file (the store of the built-in simulated benches) is
``$TWINRIG_CALIBRATION`` or ``$XDG_DATA_HOME/twinrig/calibration/simulated-benches.h5``
(``~/.local/share`` when ``XDG_DATA_HOME`` is not set); :mod:`hostctl.calibrating` chooses
the store of a rig file. Every function takes a path (None for the default). A run file
embeds :func:`to_json` of the calibration it ran with, key included.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from .daq import ChannelFit, DaqCalibration, Tolerance
from .rigkey import RigKey, differences

FORMAT = "twinrig-calibration"
#: 2: every calibration carries the key of its rig; 1 (still read): none does.
FORMAT_VERSION = 2
ENV_VAR = "TWINRIG_CALIBRATION"
KINDS = ("daq", "edges", "all")
#: The numbers of each channel that :func:`diff` compares, and the HDF5 datasets per kind.
CHANNEL_QUANTITIES = ("gain", "offset_v", "linearity", "residual_rms_v")


class CalibrationStoreError(ValueError):
    """A calibration file or JSON text is not usable; the message names it and why."""


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _twinrig_version() -> str | None:
    try:
        return importlib.metadata.version("twinrig")
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True, eq=False)
class Calibration:
    """What the store keeps: one dated calibration of one rig.

    Attributes:
        rig: the rig's name.
        daq: the DAQ's channels, or None.
        edges: the edge boards' calibration as a JSON-able dict, or None; an object with
            ``to_dict()`` (an ``EdgeCalibration``) is turned into its dict.
        created: ISO 8601 UTC; default the DAQ calibration's date, else now.
        identities: role -> identity of the instruments; default the DAQ calibration's.
        settings: role -> what the instrument was set to when it measured, read back from
            it (:meth:`instruments.rig.Rig.settings`); empty for a calibration from before
            settings were kept.
        version: its version in the store (None until saved or loaded).
        twinrig_version: the software that made it; default this one.
        key: the rig it was made on; None for a calibration from before keys were kept
            (never applied automatically).
        omitted: what of it was left out because it does not match the rig it is applied
            to (a part applied with ``--partial-calibration``), one phrase each; empty for a
            calibration as it was made. Only whole calibrations are stored.
    """

    rig: str
    daq: DaqCalibration | None = None
    edges: dict | None = None
    created: str | None = None
    identities: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    version: int | None = None
    twinrig_version: str | None = None
    key: RigKey | None = None
    omitted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.edges is not None and not isinstance(self.edges, dict):
            object.__setattr__(self, "edges", self.edges.to_dict())
        if self.daq is None and self.edges is None:
            raise ValueError("a calibration needs a DAQ part, an edge part or both")
        if self.created is None:
            object.__setattr__(self, "created", self.daq.date if self.daq is not None else _now_iso())
        if not self.identities and self.daq is not None:
            object.__setattr__(self, "identities", dict(self.daq.identities))
        if self.twinrig_version is None:
            object.__setattr__(self, "twinrig_version", _twinrig_version())

    @property
    def kind(self) -> str:
        """``"daq"``, ``"edges"`` or ``"all"`` (both)."""
        return "all" if self.daq is not None and self.edges is not None else ("daq" if self.daq is not None else "edges")

    def to_dict(self) -> dict:
        """Plain JSON-able values."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "version": self.version, "rig": self.rig,
                "kind": self.kind, "created": self.created, "identities": dict(self.identities),
                "settings": {role: dict(v) for role, v in self.settings.items()}, "twinrig_version": self.twinrig_version,
                "daq": None if self.daq is None else self.daq.to_dict(), "edges": self.edges,
                "key": None if self.key is None else self.key.to_dict(), "omitted": list(self.omitted)}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        if d.get("format") != FORMAT:
            raise CalibrationStoreError(f"not a twinrig calibration (format {d.get('format')!r}, expected {FORMAT!r})")
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise CalibrationStoreError(f"calibration format {d['format_version']}, this twinrig reads up to {FORMAT_VERSION}")
        return cls(rig=str(d["rig"]), daq=None if d["daq"] is None else DaqCalibration.from_dict(d["daq"]),
                   edges=d["edges"], created=str(d["created"]), identities=dict(d["identities"]),
                   settings=dict(d.get("settings") or {}), version=None if d["version"] is None else int(d["version"]), twinrig_version=d["twinrig_version"],
                   key=None if d.get("key") is None else RigKey.from_dict(d["key"]),
                   omitted=tuple(str(o) for o in d.get("omitted", ())))


class VersionInfo(NamedTuple):
    """One line of :func:`versions`: ``keyed`` is False for a calibration without a rig key
    (format 1), which is never applied automatically."""

    version: int
    created: str
    rig: str
    kind: str
    keyed: bool


class DiffRow(NamedTuple):
    """One line of :func:`diff`: ``change`` is ``b - a`` for numbers, None otherwise (or
    when one side lacks the quantity)."""

    what: str
    quantity: str
    a: object
    b: object
    change: float | None


# -- the file --------------------------------------------------------------------------------


def data_home() -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is not set (or not absolute, as the
    XDG specification says)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    return Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"


def default_path() -> Path:
    """``$TWINRIG_CALIBRATION``, or the store of the built-in simulated benches,
    ``$XDG_DATA_HOME/twinrig/calibration/simulated-benches.h5``: one file for them all (one
    bench has several names, ``gen2-sim`` and ``gen2-lattice-sim``; their keys tell them
    apart)."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else data_home() / "twinrig" / "calibration" / "simulated-benches.h5"


def _path(path) -> Path:
    return default_path() if path is None else Path(path)


def _open(path: Path, mode: str) -> h5py.File:
    try:
        f = h5py.File(path, mode)
    except FileNotFoundError:
        raise  # an OSError too, but a missing file is not a broken one
    except OSError as exc:
        raise CalibrationStoreError(f"{path}: not a calibration file (not an HDF5 file: {exc})") from None
    fmt = f.attrs.get("format")
    if fmt is None and mode == "a" and not f.keys():
        f.attrs["format"], f.attrs["format_version"] = FORMAT, FORMAT_VERSION
        f.create_group("calibrations")
        return f
    if fmt != FORMAT:
        f.close()
        raise CalibrationStoreError(f"{path}: not a calibration file (format attribute {fmt!r}, expected {FORMAT!r})")
    if int(f.attrs["format_version"]) > FORMAT_VERSION:
        found = int(f.attrs["format_version"])
        f.close()
        raise CalibrationStoreError(f"{path}: calibration format {found}, this twinrig reads up to {FORMAT_VERSION}")
    return f


def _versions_in(f: h5py.File) -> list[int]:
    return sorted(int(name) for name in f["calibrations"])


def _write_channels(group: h5py.Group, fits: tuple[ChannelFit, ...]) -> None:
    group.create_dataset("channel", data=np.array([c.name for c in fits], dtype=h5py.string_dtype()))
    for q in CHANNEL_QUANTITIES:
        group.create_dataset(q, data=np.array([getattr(c, q) for c in fits], float))
    points = group.create_group("points")
    for i, c in enumerate(fits):
        ds = points.create_dataset(str(i), data=np.stack([c.known_v, c.observed_v]).astype(float))
        ds.attrs["channel"] = c.name
        ds.attrs["columns"] = "known_v, observed_v"


def _read_channels(group: h5py.Group, kind: str) -> tuple[ChannelFit, ...]:
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in group["channel"][()]]
    cols = {q: group[q][()] for q in CHANNEL_QUANTITIES}
    out = []
    for i, name in enumerate(names):
        known, observed = group["points"][str(i)][()]
        out.append(ChannelFit(name, kind, float(cols["gain"][i]), float(cols["offset_v"][i]),
                              float(cols["residual_rms_v"][i]), float(cols["linearity"][i]), known, observed))
    return tuple(out)


def save(path, calibration: Calibration) -> int:
    """Add ``calibration`` to the file at ``path`` (None: :func:`default_path`), creating it
    (and its folder) if needed; returns its version, one more than the newest there."""
    cal = calibration
    if cal.omitted:
        raise ValueError("a calibration with parts left out is not stored; store the calibration as it was made")
    path = _path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, "a") as f:
        existing = _versions_in(f)
        version = existing[-1] + 1 if existing else 1
        # a format-1 file grows format-2 entries; its old entries read as before
        f.attrs["format_version"] = FORMAT_VERSION
        g = f["calibrations"].create_group(str(version))
        try:
            g.attrs.update(version=version, created=cal.created, rig=cal.rig, kind=cal.kind,
                           identities=json.dumps(cal.identities), twinrig_version=cal.twinrig_version or "")
            if cal.key is not None:
                g.attrs["rig_key"] = json.dumps(cal.key.to_dict())
            if cal.settings:
                g.attrs["settings"] = json.dumps(cal.settings)
            if cal.daq is not None:
                d = g.create_group("daq")
                d.attrs.update(date=cal.daq.date, rig=cal.daq.rig, identities=json.dumps(cal.daq.identities),
                               tolerance=json.dumps(cal.daq.to_dict()["tolerance"]),
                               problems=json.dumps(list(cal.daq.problems)), n_samples=cal.daq.n_samples)
                _write_channels(d.create_group("ao"), cal.daq.ao)
                _write_channels(d.create_group("ai"), cal.daq.ai)
            if cal.edges is not None:
                g.create_dataset("edges", data=json.dumps(cal.edges), dtype=h5py.string_dtype())
        except BaseException:
            del f["calibrations"][str(version)]  # a half-written version is no version
            raise
    return version


def _load_group(g: h5py.Group) -> Calibration:
    a = g.attrs
    daq = None
    if "daq" in g:
        d = g["daq"]
        daq = DaqCalibration(
            rig=str(d.attrs["rig"]), ao=_read_channels(d["ao"], "ao"), ai=_read_channels(d["ai"], "ai"),
            identities=json.loads(d.attrs["identities"]), date=str(d.attrs["date"]),
            tolerance=Tolerance(**json.loads(d.attrs["tolerance"])), problems=tuple(json.loads(d.attrs["problems"])),
            n_samples=int(d.attrs["n_samples"]))
    edges = None
    if "edges" in g:
        raw = g["edges"][()]
        edges = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    key = RigKey.from_dict(json.loads(a["rig_key"])) if "rig_key" in a else None
    return Calibration(rig=str(a["rig"]), daq=daq, edges=edges, created=str(a["created"]),
                       identities=json.loads(a["identities"]), version=int(a["version"]),
                       settings=json.loads(a["settings"]) if "settings" in a else {},
                       twinrig_version=str(a["twinrig_version"]) or None, key=key)


def load(path=None, version: int | None = None) -> Calibration:
    """Calibration ``version`` of the file (the newest when None).

    Raises:
        FileNotFoundError: no file at ``path``.
        CalibrationStoreError: not a calibration file, empty, or no such version.
    """
    path = _path(path)
    with _open(path, "r") as f:
        have = _versions_in(f)
        if not have:
            raise CalibrationStoreError(f"{path}: holds no calibration yet")
        v = have[-1] if version is None else int(version)
        if v not in have:
            raise CalibrationStoreError(f"{path}: no calibration version {v}; versions {have[0]}..{have[-1]}")
        return _load_group(f["calibrations"][str(v)])


def versions(path=None) -> list[VersionInfo]:
    """Every calibration in the file, oldest first (empty when there is no file)."""
    path = _path(path)
    if not path.exists():
        return []
    with _open(path, "r") as f:
        out = []
        for v in _versions_in(f):
            a = f["calibrations"][str(v)].attrs
            out.append(VersionInfo(v, str(a["created"]), str(a["rig"]), str(a["kind"]), "rig_key" in a))
        return out


def latest(path, key: RigKey, kind: str | None = None) -> Calibration | None:
    """The newest calibration made on the rig of ``key`` (:meth:`RigKey.matches`; of
    ``kind``, or one that includes it: an ``"all"`` calibration has a ``"daq"`` part), or
    None when there is none. Calibrations without a key never match."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    for info in reversed(versions(path)):
        if info.keyed and (kind is None or info.kind in (kind, "all")):
            cal = load(path, info.version)
            if cal.key.matches(key):
                return cal
    return None


# -- text, age, differences ------------------------------------------------------------------


def to_json(cal: Calibration) -> str:
    """The whole calibration as one JSON text (what a run file embeds); NaN as ``NaN``."""
    return json.dumps(cal.to_dict())


def from_json(text: str) -> Calibration:
    """The calibration of :func:`to_json`."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationStoreError(f"calibration JSON: {exc}") from None
    return Calibration.from_dict(d)


def age_s(cal: Calibration, now: datetime | None = None) -> float:
    """Seconds from the calibration's creation to ``now`` (default: the present, UTC)."""
    created = datetime.fromisoformat(cal.created)
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return ((now or datetime.now(timezone.utc)) - created).total_seconds()


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _leaves(x, prefix: str = "") -> dict[str, object]:
    """Flatten nested dicts and lists into ``"a.b.0"`` -> value."""
    if isinstance(x, dict):
        items = x.items()
    elif isinstance(x, list):
        items = enumerate(x)
    else:
        return {prefix: x}
    out: dict[str, object] = {}
    for k, v in items:
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _row(what: str, quantity: str, a, b) -> DiffRow:
    change = b - a if _number(a) and _number(b) else None
    return DiffRow(what, quantity, a, b, change)


def diff(a: Calibration, b: Calibration) -> list[DiffRow]:
    """How ``b`` differs from ``a``: for every DAQ channel its gain, offset, linearity and
    residual (``change`` = b - a, NaN-safe: None when a side lacks the channel); for the
    edge parts every numeric leaf of their dicts that differs (``"boards.3.offset_uv"``);
    every instrument whose identity changed, every part of the rig's key that differs
    (what ``"rig"``, quantity ``"key"``, ``b`` the phrase of :func:`~calibration.rigkey.differences`,
    or the keys' digests when only one side has a key). Rows: instruments, key, channels in order, then edges."""
    rows: list[DiffRow] = []
    for role in sorted(set(a.identities) | set(b.identities)):
        ia, ib = a.identities.get(role), b.identities.get(role)
        if ia != ib:
            rows.append(DiffRow(role, "identity", ia, ib, None))
    if (a.key is None) != (b.key is None):
        rows.append(DiffRow("rig", "key", "none" if a.key is None else a.key.digest(),
                            "none" if b.key is None else b.key.digest(), None))
    elif a.key is not None:
        rows.extend(DiffRow("rig", "key", "", what, None) for what in differences(a.key, b.key))
    fits = lambda cal, kind: {} if cal.daq is None else {c.name: c for c in getattr(cal.daq, kind)}  # noqa: E731
    for kind in ("ao", "ai"):
        fa, fb = fits(a, kind), fits(b, kind)
        for name in list(fa) + [n for n in fb if n not in fa]:
            ca, cb = fa.get(name), fb.get(name)
            for q in CHANNEL_QUANTITIES:
                rows.append(_row(f"{kind} {name}", q, None if ca is None else getattr(ca, q),
                                 None if cb is None else getattr(cb, q)))
    la, lb = _leaves(a.edges or {}), _leaves(b.edges or {})
    for key in list(la) + [k for k in lb if k not in la]:
        va, vb = la.get(key), lb.get(key)
        same = va == vb or (_number(va) and _number(vb) and math.isnan(va) and math.isnan(vb))
        if not same:
            rows.append(_row("edges", key, va, vb))
    return rows

