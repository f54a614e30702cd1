"""The ``* twinrig:`` annotations of a netlist: comment lines (SPICE ignores them) that keep
what SPICE cannot say: node order, names, roles, positions, edge names and exact
conductances (see :mod:`instruments.sim.netlist`)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np

from .netlist_base import NetlistError, _key
from .network import Role


@dataclass
class _Annotation:
    line: int
    text: str
    kind: str
    target: str
    fields: dict



class _Annotations:
    """The annotation part of the reader (mixed into ``netlist_read._Reader``, which holds
    ``source``, ``annotations``, ``edges`` and ``error``)."""

    def annotation(self, n: int, text: str) -> None:
        m = re.match(r"\*\s*twinrig:\s*(\w+)\s*(.*)$", text)
        if not m:
            return
        kind, rest = m.group(1).lower(), m.group(2)
        note = _Annotation(n, text, kind, "", {})
        if kind not in ("node", "edge"):
            raise self.error(note, f"unknown twinrig annotation {kind!r} (expected node or edge)")
        parts = rest.split(None, 1)
        if not parts:
            raise self.error(note, f"twinrig {kind} annotation names no {kind}")
        note.target = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        decoder = json.JSONDecoder()
        pos = 0
        while pos < len(rest):
            km = re.compile(r"\s*(\w+)=").match(rest, pos)
            if not km:
                raise self.error(note, f"expected key=value at {rest[pos:].strip()!r}")
            try:
                value, pos = decoder.raw_decode(rest, km.end())
            except json.JSONDecodeError:
                raise self.error(note, f"bad value for {km.group(1)}") from None
            note.fields[km.group(1).lower()] = value
            while pos < len(rest) and rest[pos].isspace():
                pos += 1
        self.annotations.append(note)

    def node_annotations(self) -> dict[str, _Annotation] | None:
        notes = [a for a in self.annotations if a.kind == "node"]
        if not notes:
            return None
        out: dict[str, _Annotation] = {}
        for note in notes:
            k = _key(note.target)
            if k in out:
                raise self.error(note, f"node {note.target} annotated twice (first on line {out[k].line})")
            bad = set(note.fields) - {"name", "role", "position"}
            if bad:
                raise self.error(note, f"unknown node annotation field {sorted(bad)[0]}")
            if "name" in note.fields and not isinstance(note.fields["name"], str):
                raise self.error(note, "name must be a string")
            out[k] = note
        return out

    def edge_annotations(self) -> dict[str, _Annotation]:
        out: dict[str, _Annotation] = {}
        edge_cards = {c.tokens[0].lower() for c, *_ in self.edges}
        for note in (a for a in self.annotations if a.kind == "edge"):
            k = note.target.lower()
            if k not in edge_cards:
                raise self.error(note, f"annotated edge {note.target} is not an R or M element of the netlist")
            if k in out:
                raise self.error(note, f"edge {note.target} annotated twice (first on line {out[k].line})")
            bad = set(note.fields) - {"name", "conductance_s"}
            if bad:
                raise self.error(note, f"unknown edge annotation field {sorted(bad)[0]}")
            if "name" in note.fields and not isinstance(note.fields["name"], str):
                raise self.error(note, "name must be a string")
            out[k] = note
        return out

    def exact_conductance(self, note: _Annotation, from_r: float) -> float:
        g = note.fields["conductance_s"]
        if not isinstance(g, (int, float)) or isinstance(g, bool) or not math.isfinite(g):
            raise self.error(note, "conductance_s must be a number")
        if abs(g - from_r) > 8 * np.finfo(float).eps * abs(from_r):
            raise self.error(
                note, f"conductance_s={g!r} S disagrees with the element's 1/R = {from_r!r} S "
                "(edit both, or delete the annotation)"
            )
        return float(g)

    def annotated_role(self, note: _Annotation, k: str, volts: dict[str, float]) -> Role:
        try:
            role = Role(note.fields["role"])
        except (ValueError, TypeError):
            valid = ", ".join(r.value for r in Role)
            raise self.error(note, f"unknown role {note.fields['role']!r} (valid: {valid})") from None
        if (role is Role.GROUND) != (k == "0"):
            raise self.error(note, "the ground node is SPICE's node 0, and node 0 is the ground")
        if role is Role.SOURCE and k not in volts:
            raise self.error(note, f"source node {note.target} is held by no voltage source")
        return role

    def position(self, note: _Annotation) -> list[float]:
        p = note.fields["position"]
        ok = (
            isinstance(p, list) and len(p) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in p)
        )
        if not ok:
            raise self.error(note, "position must be a pair of numbers [x, y]")
        return [float(x) for x in p]

    def check_unique(self, names: list[str], notes: list[_Annotation | None], what: str) -> None:
        seen: set[str] = set()
        for name, note in zip(names, notes):
            if name in seen:
                if note is not None:
                    raise self.error(note, f"two {what}s named {name!r}")
                raise NetlistError(f"two {what}s named {name!r}", self.source)  # pragma: no cover
            seen.add(name)

