"""The common ground of the SPICE netlist modules: the error, SPICE numbers, and
:class:`Netlist`, a netlist read into a twin network's terms (see :mod:`instruments.sim.netlist`).

Units: volts, siemens, amperes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Mapping

import numpy as np

from .circuit import DCSolver, Tolerances
from .edges import EdgeDevice
from .network import Network

#: ``.options`` written into exported netlists: tight enough for ngspice to agree with the
#: DC solver to far better than 1 uV (ngspice's defaults stop at RELTOL 1e-3, VNTOL 1 uV).
SPICE_OPTIONS = "reltol=1e-9 vntol=1e-12 abstol=1e-15"

#: SPICE scale suffixes (matched case-insensitively; ``meg`` and ``mil`` before ``m``).
SCALE_SUFFIXES = {
    "t": "1e12", "g": "1e9", "meg": "1e6", "k": "1e3", "mil": "25.4e-6",
    "m": "1e-3", "u": "1e-6", "n": "1e-9", "p": "1e-12", "f": "1e-15",
}

_NUMBER = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([A-Za-z]*)")
#: Node and element names written without renaming.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_]+")
_GROUND_NAMES = ("0", "gnd")

#: ngspice's default GMIN (S): across every pn junction, so from each MOSFET terminal to its
#: bulk (``.options gmin``).
SPICE_GMIN_S = 1e-12
#: The one temperature of this simulator (degC): SPICE's nominal 27.
TEMPERATURE_C = 27.0


class NetlistError(ValueError):
    """A netlist cannot be read (or a network cannot be written as one).

    Attributes:
        source: the file name (or a label such as ``"<netlist>"``).
        line: the 1-based line number of the offending card (its first line if continued),
            or None when the problem has no single line.
        text: the offending card as read (continuations joined, comments removed), or "".
        problem: what is wrong, without the location.
    """

    def __init__(self, problem: str, source: str = "<netlist>", line: int | None = None, text: str = ""):
        self.source = source
        self.line = line
        self.text = text
        self.problem = problem
        where = source if line is None else f"{source}, line {line}"
        super().__init__(f"{where}: {problem}" + (f": {text}" if text else ""))


def parse_number(text: str) -> float:
    """The value of a SPICE number such as ``10k``, ``4.7kOhm``, ``1.5V``, ``2MEG`` or ``3e-6``.

    A scale suffix (case-insensitive: ``t g meg k mil m u n p f``) multiplies the number;
    any further letters are units and ignored, as SPICE ignores them (``1F`` is 1e-15, since
    ``f`` is femto). The result is the decimal value correctly rounded to a float.

    Raises:
        ValueError: ``text`` is not a number.
    """
    m = _NUMBER.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a number: {text!r}")
    letters = m.group(2).lower()
    scale = "1"
    for suffix in ("meg", "mil", "t", "g", "k", "m", "u", "n", "p", "f"):
        if letters.startswith(suffix):
            scale = SCALE_SUFFIXES[suffix]
            break
    try:
        value = float(Decimal(m.group(1)) * Decimal(scale))
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimal numbers
        raise ValueError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text!r}")
    return value


@dataclass(frozen=True, eq=False)
class Netlist:
    """A netlist read into a twin network's terms.

    Attributes:
        title: the title line, stripped.
        network: the nodes (named as written), edges (named after their elements) and roles:
            ``ground`` for node 0, ``source`` for nodes held by voltage sources, ``hidden``
            for the rest (unless ``* twinrig:`` annotations say otherwise).
        device: :class:`Resistor` (state: conductance, S), :class:`Mosfet` (state: gate
            voltage, V; ``subthreshold_v=None``) or :class:`MixedEdges` of both, with state
            limits wide open; parameters equal for both twins.
        state: ``(E,)`` state of every edge.
        fixed_v: network nodes held by voltage sources -> their voltage (V); ground excluded.
        ground: name of the ground node, or None if the network has none.
        gate_v: nodes outside the network (gate nodes) -> their voltage (V).
        spice_names: every node of the network and every gate node -> its name in the
            netlist's elements (``"0"`` for the ground when annotations renamed it).
        source: the file name or label the netlist was read from.
        shunt_s: ``(N,)`` conductance (S) from each network node to :attr:`shunt_v`: GMIN
            (``.options gmin``, default 1e-12 S) for each MOSFET junction at the node, as
            ngspice puts GMIN across the drain-bulk and source-bulk junctions; None for a
            netlist without MOSFETs. It makes a node held only by cut-off transistors
            settle where ngspice puts it (at its bulk's voltage).
        shunt_v: ``(N,)`` voltage (V) the shunts go to: the bulk voltage (the mean of the
            bulks, weighted by junction, where several meet); None with no shunts.
        inject_a: ``(N,)`` current (A) driven into each network node by the independent
            current sources (``I`` elements); None for a netlist without them.
    """

    title: str
    network: Network
    device: EdgeDevice
    state: np.ndarray
    fixed_v: dict[str, float]
    ground: str | None
    gate_v: dict[str, float] = field(default_factory=dict)
    spice_names: dict[str, str] = field(default_factory=dict)
    source: str = "<netlist>"
    shunt_s: np.ndarray | None = None
    shunt_v: np.ndarray | None = None
    inject_a: np.ndarray | None = None

    def boundary_v(self) -> dict[str, float]:
        """Every fixed network node, ground included (0 V), -> its voltage (V)."""
        out = {} if self.ground is None else {self.ground: 0.0}
        out.update(self.fixed_v)
        return out

    def solve(self, tol: Tolerances = Tolerances()) -> dict[str, float]:
        """DC node voltages (V): every network node in network order, then the gate nodes.

        The MOSFET junctions' GMIN (:attr:`shunt_s`) and the current sources
        (:attr:`inject_a`) are included, as ngspice includes them.

        Raises:
            FloatingNodeError: a node has no path to a fixed node.
            CutOffNodeError: a node's conductance to the rest is below ``tol.cutoff_s``
                (possible only with ``.options gmin=0``).
            ConvergenceError: Newton's method did not converge (MOSFET edges).
        """
        fixed = self.boundary_v()
        idx = np.array([self.network.index(n) for n in fixed], dtype=np.int64)
        v = DCSolver(self.network, idx, tol).solve(
            self.device, self.state, np.array(list(fixed.values()), float),
            shunt_s=self.shunt_s, shunt_v=0.0 if self.shunt_v is None else self.shunt_v,
            inject_a=self.inject_a,
        )
        out = {name: float(x) for name, x in zip(self.network.nodes, v)}
        out.update(self.gate_v)
        return out

    def named(self, spice_v: Mapping[str, float]) -> dict[str, float]:
        """Voltages keyed by SPICE node name (any case, e.g. from ngspice, which lower-cases
        them) -> the same voltages keyed by this netlist's node names, in :meth:`solve`'s
        order; the ground is 0 V.

        Raises:
            NetlistError: a node is missing from ``spice_v``.
        """
        lower = {k.lower(): float(x) for k, x in spice_v.items()}
        out = {}
        for name, spice in self.spice_names.items():
            key = spice.lower()
            if key in _GROUND_NAMES:
                out[name] = 0.0
            elif key in lower:
                out[name] = lower[key]
            else:
                raise NetlistError(f"no voltage given for node {spice}", self.source)
        return out


def _key(node: str) -> str:
    """The identity of a node name: case-insensitive, with ``gnd`` the same as ``0``."""
    k = node.lower()
    return "0" if k in _GROUND_NAMES else k


