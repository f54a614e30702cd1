"""Fingerprints: short, stable digests of what a bench is made of.

A calibration is valid only on the bench it was measured on. These digests say, in a few
hex digits, whether two benches have the same network, the same wiring (which channel
reaches which node, which board sits on which edge), or, for a simulated bench, the same
imperfections. They depend only on values, never on object identity or dict order, and
are the same from one Python process (or machine) to the next.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

#: Hex digits of a fingerprint: 64 bits, far past any chance collision among a lab's rigs.
DIGITS = 16


def _canonical(value):
    """``value`` as plain JSON-able data, every float exact (its hex form), arrays with their
    shape, dicts sorted by key, dataclasses as their fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"<type>": type(value).__name__,
                **{f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, np.ndarray):
        flat = value.ravel().tolist()
        return {"<shape>": list(value.shape), "values": [_canonical(x) for x in flat]}
    if isinstance(value, dict):
        return {"<dict>": sorted([json.dumps(_canonical(k)), _canonical(v)] for k, v in value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(x) for x in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value).hex()
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "value") and hasattr(value, "name"):  # an enum member
        return f"{type(value).__name__}.{value.name}"
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def fingerprint(*values) -> str:
    """A digest of ``values`` (numbers, strings, arrays, dicts, lists, dataclasses): equal
    values give equal digests; :data:`DIGITS` hex digits."""
    text = json.dumps(_canonical(list(values)), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGITS]


def network_fingerprint(network) -> str:
    """The network's nodes, edges (with their terminals' order) and roles; not its name."""
    return fingerprint(list(network.nodes), np.asarray(network.edges), [str(r) for r in network.roles])


def wiring_fingerprint(wiring) -> str:
    """What a calibration depends on in a wiring: the DAQ's devices and models, every output's
    channel, node and twin, every input's channel, node, twin and range, the learn line, the
    board on each edge and the kind of the boards. Not the name, the limits, the timing,
    the serial port's name or the instruments' addresses: changing those leaves the
    channels' gains and offsets and the boards' ADCs as they were."""
    return fingerprint(
        dict(wiring.daq_devices),
        [(o.channel, o.node, o.twin) for o in wiring.outputs],
        [(i.channel, i.node, i.twin, i.range_v) for i in wiring.inputs],
        wiring.learn_line,
        {int(a): int(e) for a, e in wiring.boards.items()},
        wiring.edge_kind,
    )
