"""SPICE netlists in and out: a network, its edge devices, their state and the fixed voltages.

**Reading** (:func:`parse_netlist`, :func:`read_netlist`). The subset of SPICE a twin network
needs, with SPICE's conventions:

* the first line is the title (whatever it says); ``*`` starts a comment line, ``;`` and
  ``$`` (after a blank) an inline comment; a line starting with ``+`` continues the previous
  card; element letters, dot-cards, keywords and node names are case-insensitive (a node keeps
  the spelling of its first mention); ``.end`` ends the netlist;
* numbers take SPICE's scale suffixes (``f p n u m k meg g t``, and ``mil``) followed by any
  unit letters, which are ignored: ``10kOhm`` is 1e4, ``1.5V`` is 1.5, ``1MEG`` is 1e6 and
  ``1m`` is 1e-3 (see :func:`parse_number`);
* ``R<name> a b value [m=..]``: a resistor edge (state: its conductance, S);
* ``M<name> d g s b model [W=..] [L=..] [M=..]``: a level-1 NMOS edge from ``d`` to ``s``
  (state: its gate voltage, V), with ``.model <model> NMOS (LEVEL=1 KP=.. VTO=..)``: the
  device is :class:`~instruments.sim.edges.Mosfet` with ``subthreshold_v=None`` and
  ``S = KP W / L`` (times the multiplier ``M``). Parameters that would change the DC current
  (``LAMBDA``, ``GAMMA``, ``RD``, ``RS``, ...) must be zero or absent; capacitances and noise
  parameters are ignored. The gate must be held by voltage sources: its voltage is the state;
* ``V<name> p n [DC] value``: a DC voltage source. A node held by a source to ground ``0``
  (``gnd`` is the same node) is a *fixed* node of the network (role ``source``). A source
  between two other nodes is allowed only as a *gate source*: one of its nodes is a gate
  node outside the network, the other a node whose voltage is fixed;
* ``C`` elements are open circuits at DC and ignored; ``.op``, ``.options``, analysis and
  output cards, and ``.control`` ... ``.endc`` blocks are ignored.

The network's nodes are the ground and every terminal of an edge, in order of first mention;
nodes outside it (gate nodes) are reported in :attr:`Netlist.gate_v`. Every error is a
:class:`NetlistError` whose message names the file, the line and the offending text.

**Writing** (:func:`export_netlist`). Any network with a resistor, digital potentiometer
(written as its resistance at the tap), MOSFET (level-1) or mixed device, its state, its fixed
voltages and a twin index becomes a netlist that ngspice runs with ``ngspice -b``: it holds
tight ``.options`` and an ``.op`` card and prints every node voltage to 15 digits. Comment lines
``* twinrig: node ...`` and ``* twinrig: edge ...`` (SPICE ignores them; this reader uses them)
record what SPICE cannot say: node order, names that are not valid SPICE names, roles
(targets, a ground node not called ``0``), positions, edge names, and a conductance that
``1 / R`` would not give back to the last bit. Reading an exported netlist therefore gives
back the same network, state and fixed voltages.

Units: volts, siemens, ohms, A/V^2.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Mapping

import numpy as np

from .circuit import Tolerances, solve_dc
from .edges import EdgeDevice, MixedEdges, Mosfet, Resistor
from .network import Network, NetworkError, Role

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

_IGNORED_CARDS = {
    ".op", ".options", ".option", ".opt", ".print", ".plot", ".probe", ".save", ".tran",
    ".ac", ".dc", ".noise", ".tf", ".sens", ".disto", ".pz", ".four", ".meas", ".measure",
    ".width", ".nodeset", ".ic",
}
_UNSUPPORTED_CARDS = {
    ".include": "file inclusion", ".inc": "file inclusion", ".lib": "libraries",
    ".subckt": "subcircuits", ".ends": "subcircuits", ".param": "parameters",
    ".func": "functions", ".global": "global nodes", ".temp": "a temperature other than 27 C",
    ".endc": "an .endc without .control",
}
_ELEMENT_KINDS = {
    "i": "current source", "l": "inductor", "d": "diode", "q": "bipolar transistor",
    "j": "JFET", "z": "MESFET", "x": "subcircuit instance", "e": "controlled source",
    "f": "controlled source", "g": "controlled source", "h": "controlled source",
    "b": "behavioural source", "k": "inductor coupling", "s": "switch", "w": "switch",
    "t": "transmission line", "o": "transmission line", "u": "transmission line",
    "y": "transmission line", "a": "code model", "n": "OSDI device", "p": "coupled lines",
}
_TRANSIENT_WORDS = {"pulse", "sin", "exp", "pwl", "sffm", "am", "trnoise", "trrandom", "distof1", "distof2"}
#: Level-1 parameters that do not change the DC operating point here (capacitances, noise,
#: junction saturation currents: the junctions stay reverse biased with the bulk at ground).
_MODEL_IGNORED = {
    "cbd", "cbs", "cgso", "cgdo", "cgbo", "cj", "mj", "cjsw", "mjsw", "pb", "fc", "tt",
    "kf", "af", "is", "js", "phi",
}
#: Level-1 parameters that change the DC current and must therefore be zero.
_MODEL_ZERO = {"gamma", "lambda", "rd", "rs", "rsh", "ld"}
#: ngspice's default gate width and length (DEFW, DEFL), m.
_DEFAULT_W_M = 100e-6
_DEFAULT_L_M = 100e-6
_DEFAULT_KP = 2e-5
_DEFAULT_VTO = 0.0


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

    def boundary_v(self) -> dict[str, float]:
        """Every fixed network node, ground included (0 V), -> its voltage (V)."""
        out = {} if self.ground is None else {self.ground: 0.0}
        out.update(self.fixed_v)
        return out

    def solve(self, tol: Tolerances = Tolerances()) -> dict[str, float]:
        """DC node voltages (V): every network node in network order, then the gate nodes.

        Raises:
            FloatingNodeError: a node has no path to a fixed node.
            ConvergenceError: Newton's method did not converge (MOSFET edges).
        """
        v = solve_dc(self.network, self.device, self.state, self.boundary_v(), tol=tol)
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


def read_netlist(path: str | Path) -> Netlist:
    """Read the netlist in file ``path`` (see :func:`parse_netlist`).

    Raises:
        OSError: the file cannot be read.
        NetlistError: it is not a netlist this module reads.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NetlistError(f"not a text file ({exc.reason} at byte {exc.start})", str(path)) from None
    return parse_netlist(text, str(path))


def parse_netlist(text: str, source: str = "<netlist>") -> Netlist:
    """Read a SPICE netlist (the text of a file) into a :class:`Netlist`.

    Args:
        text: the netlist; its first line is the title.
        source: the file name, used in error messages.

    Raises:
        NetlistError: the netlist is malformed or uses what this module does not read; the
            message names ``source``, the line and the offending text.
    """
    return _Reader(text, source).read()


# -- reading --------------------------------------------------------------------------------


@dataclass
class _Card:
    line: int
    text: str
    tokens: list[str] = field(default_factory=list)


@dataclass
class _Annotation:
    line: int
    text: str
    kind: str
    target: str
    fields: dict


def _key(node: str) -> str:
    """The identity of a node name: case-insensitive, with ``gnd`` the same as ``0``."""
    k = node.lower()
    return "0" if k in _GROUND_NAMES else k


def _strip_inline_comment(line: str) -> str:
    cut = line.find(";")
    if cut >= 0:
        line = line[:cut]
    m = re.search(r"(^|\s)\$", line)
    if m:
        line = line[: m.start()]
    return line.rstrip()


class _Reader:
    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self.nodes: dict[str, str] = {}  # key -> name as first written
        self.order: list[str] = []  # keys in order of first mention
        self.names: dict[str, _Card] = {}  # element name (lower) -> card
        self.models: dict[str, tuple[_Card, str, dict[str, float]]] = {}
        self.edges: list[tuple[_Card, str, str, str, dict]] = []  # card, kind, a, b, data
        self.vsources: list[tuple[_Card, str, str, float]] = []
        self.bulk: list[tuple[_Card, str]] = []
        self.annotations: list[_Annotation] = []

    def error(self, card: _Card | _Annotation, problem: str) -> NetlistError:
        return NetlistError(problem, self.source, card.line, card.text)

    # -- lines to cards ---------------------------------------------------------------------
    def cards(self) -> tuple[str, list[_Card]]:
        lines = self.text.splitlines()
        if not lines or not lines[0].strip() and len(lines) == 1:
            raise NetlistError("empty netlist (the first line is the title)", self.source, 1)
        title = lines[0].strip()
        cards: list[_Card] = []
        control: _Card | None = None
        for n, raw in enumerate(lines[1:], start=2):
            stripped = raw.strip()
            if control is not None:
                if stripped.lower().split()[:1] == [".endc"]:
                    control = None
                continue
            if not stripped:
                continue
            if stripped.startswith("*"):
                self.annotation(n, stripped)
                continue
            body = _strip_inline_comment(stripped)
            if not body:
                continue
            if body.startswith("+"):
                if not cards:
                    raise NetlistError("continuation line with nothing to continue", self.source, n, stripped)
                cards[-1].text += " " + body[1:].strip()
                continue
            first = body.split()[0].lower()
            if first == ".end":
                break
            if first == ".control":
                control = _Card(n, body)
                continue
            cards.append(_Card(n, body))
        if control is not None:
            raise self.error(control, ".control block without .endc")
        return title, cards

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

    # -- cards to elements ------------------------------------------------------------------
    def tokens(self, card: _Card, split_parens: bool = False) -> list[str]:
        text = re.sub(r"\s*=\s*", "=", card.text)
        if split_parens:
            text = re.sub(r"[(),]", " ", text)
        if "{" in text or "'" in text:
            raise self.error(card, "expressions ({...}) are not supported")
        return text.split()

    def number(self, card: _Card, token: str, what: str) -> float:
        try:
            return parse_number(token)
        except ValueError:
            raise self.error(card, f"{what} {token!r} is not a number") from None

    def node(self, token: str) -> str:
        k = _key(token)
        if k not in self.nodes:
            self.nodes[k] = token
            self.order.append(k)
        return k

    def params(self, card: _Card, tokens: list[str], allowed: set[str], flags=frozenset()) -> dict[str, str]:
        """``key=value`` parameters (keys lower-cased); bare words must be in ``flags``."""
        out = {}
        for t in tokens:
            if "=" not in t:
                if t.lower() in flags:
                    continue
                raise self.error(card, f"unexpected {t!r}")
            k, v = t.split("=", 1)
            if k.lower() not in allowed:
                raise self.error(card, f"unsupported parameter {k}")
            out[k.lower()] = v
        return out

    def element(self, card: _Card) -> None:
        tok = card.tokens
        name = tok[0]
        letter = name[0].lower()
        if letter == "c":
            return  # open at DC
        if letter not in "rvm":
            kind = _ELEMENT_KINDS.get(letter, "element")
            raise self.error(card, f"unsupported {kind} {name} (this reader takes R, V, M and C elements)")
        if name.lower() in self.names:
            first = self.names[name.lower()].line
            raise self.error(card, f"element {name} defined twice (first on line {first})")
        self.names[name.lower()] = card
        if letter == "r":
            self.resistor(card)
        elif letter == "v":
            self.vsource(card)
        else:
            self.mosfet(card)

    def two_nodes(self, card: _Card, need: str) -> tuple[str, str]:
        tok = card.tokens
        if len(tok) < 3 or "=" in tok[1] or "=" in tok[2]:
            raise self.error(card, f"{tok[0]} needs {need}")
        a, b = self.node(tok[1]), self.node(tok[2])
        if a == b:
            raise self.error(card, f"{tok[0]} connects node {tok[1]} to itself")
        return a, b

    def resistor(self, card: _Card) -> None:
        tok = card.tokens
        a, b = self.two_nodes(card, "two nodes and a resistance")
        rest = tok[3:]
        value = None
        if rest and "=" not in rest[0]:
            value = self.number(card, rest[0], "resistance")
            rest = rest[1:]
        p = self.params(card, rest, {"r", "resistance", "m", "tc1", "tc2", "tce", "ac", "noisy"})
        for k in ("r", "resistance"):
            if k in p:
                if value is not None:
                    raise self.error(card, f"{tok[0]} has two resistance values")
                value = self.number(card, p[k], "resistance")
        if value is None:
            raise self.error(card, f"{tok[0]} needs two nodes and a resistance")
        if not value > 0:
            raise self.error(card, f"resistance must be positive, got {value:g} Ohm")
        mult = self.number(card, p["m"], "multiplier m") if "m" in p else 1.0
        if not mult > 0:
            raise self.error(card, f"multiplier m must be positive, got {mult:g}")
        self.edges.append((card, "r", a, b, {"conductance": mult / value}))

    def vsource(self, card: _Card) -> None:
        card.tokens = self.tokens(card, split_parens=True)
        tok = card.tokens
        p, n = self.two_nodes(card, "two nodes and a DC value")
        rest = tok[3:]
        value = None
        if rest and _NUMBER.fullmatch(rest[0]):
            value = self.number(card, rest[0], "DC value")
            rest = rest[1:]
        transient = False
        i = 0
        while i < len(rest):
            word = rest[i].lower()
            if word == "dc":
                if value is not None:
                    raise self.error(card, f"{tok[0]} has two DC values")
                if i + 1 >= len(rest):
                    raise self.error(card, f"{tok[0]}: DC needs a value")
                value = self.number(card, rest[i + 1], "DC value")
                i += 2
                continue
            if word == "ac" or word in _TRANSIENT_WORDS:
                transient |= word != "ac"
                i += 1
                while i < len(rest) and _NUMBER.fullmatch(rest[i]):
                    i += 1
                continue
            raise self.error(card, f"unexpected {rest[i]!r} in voltage source {tok[0]}")
        if value is None:
            if transient:
                raise self.error(card, f"{tok[0]} has a transient waveform but no DC value")
            value = 0.0  # SPICE's default for a source without a value
        self.vsources.append((card, p, n, value))

    def mosfet(self, card: _Card) -> None:
        tok = card.tokens
        if len(tok) < 6 or any("=" in t for t in tok[1:6]):
            raise self.error(card, f"{tok[0]} needs drain, gate, source and bulk nodes and a model name")
        d, g, s, b = (self.node(t) for t in tok[1:5])
        if d == s:
            raise self.error(card, f"{tok[0]} connects node {tok[1]} to itself (drain = source)")
        p = self.params(
            card, tok[6:], {"w", "l", "m", "ad", "as", "pd", "ps", "nrd", "nrs", "ic"}, flags={"off"}
        )
        geo = {}
        for k, default in (("w", _DEFAULT_W_M), ("l", _DEFAULT_L_M), ("m", 1.0)):
            geo[k] = self.number(card, p[k], k.upper()) if k in p else default
            if not geo[k] > 0:
                raise self.error(card, f"{k.upper()} must be positive, got {geo[k]:g}")
        self.edges.append((card, "m", d, s, {"gate": g, "model": tok[5], **geo}))
        self.bulk.append((card, b))

    def model(self, card: _Card) -> None:
        tok = self.tokens(card, split_parens=True)
        if len(tok) < 3:
            raise self.error(card, ".model needs a name and a type")
        name, kind = tok[1], tok[2].lower()
        if name.lower() in self.models:
            raise self.error(card, f"model {name} defined twice")
        params: dict[str, float] = {}
        if kind == "nmos":
            for t in tok[3:]:
                if "=" not in t:
                    raise self.error(card, f"unexpected {t!r} in .model {name}")
                k, v = t.split("=", 1)
                k = k.lower()
                k = "vto" if k == "vt0" else k
                val = self.number(card, v, k.upper())
                if k in _MODEL_IGNORED:
                    continue
                if k in _MODEL_ZERO:
                    if val != 0:
                        raise self.error(card, f"{k.upper()}={v} is not supported (it must be 0)")
                    continue
                if k == "level":
                    if val != 1:
                        raise self.error(card, f"only LEVEL=1 MOSFET models are supported, got LEVEL={v}")
                    continue
                if k == "tnom":
                    if val != 27:
                        raise self.error(card, f"TNOM={v} is not supported (only 27)")
                    continue
                if k not in ("kp", "vto"):
                    raise self.error(card, f"unsupported model parameter {k.upper()} (give KP and VTO)")
                params[k] = val
            if params.get("kp", _DEFAULT_KP) <= 0:
                raise self.error(card, f"KP must be positive, got {params['kp']:g}")
        self.models[name.lower()] = (card, kind, params)

    # -- assembly ---------------------------------------------------------------------------
    def read(self) -> Netlist:
        title, cards = self.cards()
        for card in cards:
            card.tokens = self.tokens(card)
            head = card.tokens[0].lower()
            if head.startswith("."):
                if head == ".model":
                    self.model(card)
                elif head == ".title":
                    title = card.text.split(None, 1)[1].strip() if len(card.tokens) > 1 else ""
                elif head in _UNSUPPORTED_CARDS:
                    raise self.error(card, f"{head} is not supported ({_UNSUPPORTED_CARDS[head]})")
                elif head not in _IGNORED_CARDS:
                    raise self.error(card, f"unknown control card {card.tokens[0]}")
            else:
                self.element(card)
        if not (self.edges or self.vsources or self.annotations):
            raise NetlistError("no R, M or V elements", self.source)
        return self.assemble(title)

    def assemble(self, title: str) -> Netlist:
        node_notes = self.node_annotations()
        members = self.members(node_notes)
        in_net = set(members)
        volts = self.resolve_sources(in_net)
        index = {k: i for i, k in enumerate(members)}
        edge_notes = self.edge_annotations()

        # edges, their devices and states
        e = len(self.edges)
        pairs = np.zeros((e, 2), dtype=np.int64)
        state = np.zeros(e)
        r_idx, m_idx, s_m, vt_m = [], [], [], []
        edge_names, edge_note_list = [], []
        for j, (card, kind, a, b, data) in enumerate(self.edges):
            pairs[j] = index[a], index[b]
            note = edge_notes.get(card.tokens[0].lower())
            edge_note_list.append(note)
            edge_names.append(note.fields.get("name", card.tokens[0]) if note else card.tokens[0])
            exact = note is not None and "conductance_s" in note.fields
            if kind == "r":
                r_idx.append(j)
                state[j] = self.exact_conductance(note, data["conductance"]) if exact else data["conductance"]
                continue
            if exact:
                raise self.error(note, "conductance_s applies only to resistors")
            m_idx.append(j)
            s, vt = self.mosfet_model(card, data)
            s_m.append(s)
            vt_m.append(vt)
            state[j] = self.gate_voltage(card, data["gate"], volts, in_net)
        for card, b in self.bulk:
            if b not in volts:
                raise self.error(
                    card, f"bulk node {self.nodes[b]} of {card.tokens[0]} is not held at a fixed voltage"
                )

        # nodes: names, roles, positions
        names, written_names, roles, positions, node_note_list = [], [], [], [], []
        for k in members:
            note = node_notes.get(k) if node_notes else None
            node_note_list.append(note)
            written = self.nodes.get(k, note.target if note else k)
            written_names.append(written)
            names.append(note.fields.get("name", written) if note else written)
            if note is not None and "role" in note.fields:
                roles.append(self.annotated_role(note, k, volts))
            else:
                roles.append(Role.GROUND if k == "0" else Role.SOURCE if k in volts else Role.HIDDEN)
            if note is not None and "position" in note.fields:
                positions.append(self.position(note))
        if positions and len(positions) != len(members):
            lacking = next(n for n in node_note_list if "position" not in n.fields)
            raise self.error(lacking, "some nodes have a position and this one has none")
        self.check_unique(names, node_note_list, "node")
        self.check_unique(edge_names, edge_note_list, "edge")
        try:
            network = Network(
                tuple(names), pairs, tuple(roles), tuple(edge_names),
                name=title or "network", positions=np.array(positions) if positions else None,
            )
        except NetworkError as exc:  # pragma: no cover - the checks above come first
            raise NetlistError(str(exc), self.source) from None

        ground = None if network.ground is None else names[network.ground]
        fixed_v = {
            names[i]: volts[k] for i, k in enumerate(members) if k in volts and roles[i] is not Role.GROUND
        }
        spice_names = dict(zip(names, written_names))
        gate_v = {}
        for k in self.order:
            if k not in in_net and k != "0" and k in volts:
                if self.nodes[k] in spice_names:
                    raise NetlistError(f"gate node {self.nodes[k]} has the name of a network node", self.source)
                gate_v[self.nodes[k]] = volts[k]
                spice_names[self.nodes[k]] = self.nodes[k]
        device = _device(e, r_idx, m_idx, s_m, vt_m)
        return Netlist(title, network, device, state, fixed_v, ground, gate_v, spice_names, self.source)

    def members(self, node_notes: dict[str, _Annotation] | None) -> list[str]:
        """Keys of the network's nodes, in order: the annotated nodes, or else the ground and
        every edge terminal in order of first mention."""
        if node_notes is None:
            terminals = {k for _, _, a, b, _ in self.edges for k in (a, b)}
            return [k for k in self.order if k in terminals or k == "0"]
        for card, _, a, b, _ in self.edges:
            for k in (a, b):
                if k not in node_notes:
                    raise self.error(card, f"node {self.nodes[k]} is missing from the twinrig node annotations")
        return list(node_notes)

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

    def resolve_sources(self, in_net: set[str]) -> dict[str, float]:
        """Voltage of every node held by voltage sources, from ground outwards (V)."""
        for card, p, n, _ in self.vsources:
            if p != "0" and n != "0" and p in in_net and n in in_net:
                raise self.error(
                    card, f"{card.tokens[0]} sits between network nodes {self.nodes[p]} and {self.nodes[n]}; "
                    "network nodes can only be held by sources to ground (0)"
                )
        volts = {"0": 0.0}
        pending = list(self.vsources)
        while pending:
            left = []
            for src in pending:
                card, p, n, value = src
                if p in volts and n in volts:
                    raise self.error(card, f"{card.tokens[0]} closes a loop of voltage sources")
                if n in volts:
                    volts[p] = volts[n] + value
                elif p in volts:
                    volts[n] = volts[p] - value
                else:
                    left.append(src)
            if len(left) == len(pending):
                card, p, n, _ = left[0]
                raise self.error(
                    card, f"{card.tokens[0]} holds {self.nodes[p]} against {self.nodes[n]}, and neither "
                    "is held at a fixed voltage (by voltage sources to ground)"
                )
            pending = left
        return volts

    def mosfet_model(self, card: _Card, data: dict) -> tuple[float, float]:
        entry = self.models.get(data["model"].lower())
        if entry is None:
            raise self.error(card, f"no .model named {data['model']}")
        _, kind, params = entry
        if kind != "nmos":
            raise self.error(card, f"model {data['model']} is {kind.upper()}; only NMOS is supported")
        s = params.get("kp", _DEFAULT_KP) * (data["w"] / data["l"]) * data["m"]
        return s, params.get("vto", _DEFAULT_VTO)

    def gate_voltage(self, card: _Card, gate: str, volts: dict[str, float], in_net: set[str]) -> float:
        if gate in volts:
            return volts[gate]
        where = "network node" if gate in in_net else "gate node"
        raise self.error(
            card, f"{where} {self.nodes[gate]}, the gate of {card.tokens[0]}, is not held by a voltage "
            "source (a MOSFET edge needs a fixed gate voltage)"
        )


def _device(e: int, r_idx, m_idx, s_m, vt_m) -> EdgeDevice:
    def resistors(n):
        return Resistor(n, state_min=0.0, state_max=np.inf)

    def mosfets():
        return Mosfet(
            len(m_idx), s_a_per_v2=np.array(s_m), vt_v=np.array(vt_m), subthreshold_v=None,
            state_min=-np.inf, state_max=np.inf,
        )

    if not m_idx:
        return resistors(e)
    if not r_idx:
        return mosfets()
    return MixedEdges(e, parts=((resistors(len(r_idx)), r_idx), (mosfets(), m_idx)))


# -- writing --------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _unique(candidate: str, used: set[str]) -> str:
    name, k = candidate, 0
    while name.lower() in used:
        k += 1
        name = f"{candidate}_{k}"
    used.add(name.lower())
    return name


def spice_node_names(network: Network) -> list[str]:
    """The name each node of ``network`` gets in an exported netlist: ``0`` for the ground,
    its own name where that is a plain SPICE name (letters, digits, ``_``) not taken
    case-insensitively by an earlier node, else ``_n<index>``."""
    g = network.ground
    names: list[str | None] = [None] * network.n_nodes
    used = {"0", "gnd"}
    for i, n in enumerate(network.nodes):
        if i == g:
            names[i] = "0"
        elif _SAFE_NAME.fullmatch(n) and n.lower() not in used:
            names[i] = n
            used.add(n.lower())
    for i, n in enumerate(names):
        if n is None:
            names[i] = _unique(f"_n{i}", used)
    return names  # type: ignore[return-value]


def _edge_elements(device: EdgeDevice, state: np.ndarray, twin: int) -> list[tuple]:
    """Per edge: ("r", conductance S) or ("m", S A/V^2, V_T V, gate V)."""
    e = device.n_edges
    if isinstance(device, MixedEdges):
        out: list = [None] * e
        for part, idx in device.parts:
            for j, item in zip(idx, _edge_elements(part, state[idx], twin)):
                out[j] = item
        return out
    if isinstance(device, Mosfet):
        return [
            ("m", float(device.s_a_per_v2[twin, j]), float(device.vt_v[twin, j]), float(state[j]))
            for j in range(e)
        ]
    if device.linear:
        k = np.broadcast_to(np.asarray(device.conductance(state, twin=twin), float), (e,))
        return [("r", float(x)) for x in k]
    raise NetlistError(f"cannot write {device.kind} edges as SPICE elements")


def _resistance_text(g: float) -> tuple[str, bool]:
    """The shortest text of a resistance (Ohm) for conductance ``g`` (S), and whether
    1/R gives back ``g`` exactly (for ~86 % of conductances some float R does)."""
    r = 1.0 / g
    for cand in (r, np.nextafter(r, np.inf), np.nextafter(r, 0.0)):
        if 1.0 / float(cand) == g:
            return repr(float(cand)), True
    return repr(r), False


def export_netlist(
    network: Network,
    device: EdgeDevice,
    state,
    fixed_v: Mapping[str, float] | None = None,
    twin: int = 0,
    title: str | None = None,
    options: str = SPICE_OPTIONS,
) -> str:
    """The netlist (text) of one twin of ``network`` with its edges in ``state``.

    Args:
        network: the topology; its ground node is written as SPICE's ``0``.
        device: the edges: :class:`Resistor`, :class:`Digipot` (written as its resistance at
            the tap), :class:`Mosfet` (written as level-1 NMOS with ``KP = S``, W = L,
            ``VTO = V_T``, bulk at ground, each gate held by its own source), or
            :class:`MixedEdges` of these. SPICE's level-1 model has no subthreshold current:
            with ``subthreshold_v`` set, the netlist agrees only where every edge is on.
        state: ``(E,)`` edge states (S, tap or V by device).
        fixed_v: node name -> voltage (V) for every node held by a source: every ``source``
            node must be in it; targets may be (the clamped twin); the ground, if given,
            must be 0.
        twin: 0 (free twin) or 1 (clamped twin): whose device parameters to write.
        title: the title line (default: the network's name).
        options: the ``.options`` line's settings.

    Raises:
        NetlistError: the network cannot be written (a missing source voltage, a conductance
            that is not positive, a device SPICE has no element for...).
    """
    src = f"network {network.name!r}"
    if twin not in (0, 1):
        raise NetlistError(f"twin must be 0 or 1, got {twin!r}", src)
    state = np.asarray(state, dtype=float)
    if state.shape != (network.n_edges,) or device.n_edges != network.n_edges:
        raise NetlistError(
            f"{network.n_edges} edges, but {device.n_edges} devices and state of shape {state.shape}", src
        )
    fixed = {str(k): float(v) for k, v in (fixed_v or {}).items()}
    for name, v in fixed.items():
        try:
            i = network.index(name)
        except NetworkError:
            raise NetlistError(f"fixed voltage given for {name!r}, which is not a node", src) from None
        if not math.isfinite(v):
            raise NetlistError(f"fixed voltage of {name} is {v}", src)
        if i == network.ground and v != 0.0:
            raise NetlistError(f"the ground node {name} is held at 0 V, not {v:g} V", src)
    missing = [network.nodes[i] for i in network.sources if network.nodes[i] not in fixed]
    if missing:
        raise NetlistError(f"no voltage given for source node(s) {', '.join(missing)}", src)
    elements = _edge_elements(device, state, twin)

    body = spice_node_names(network)
    used_nodes = {b.lower() for b in body} | {"0", "gnd"}
    used_elements: set[str] = set()
    lines = [_one_line(title if title is not None else network.name)]
    lines.append(_one_line(f"* {network.describe()}; {device.kind} edges, twin {twin}. Written by twinrig."))
    lines.append("* The '* twinrig:' comments restore node order, names, roles and positions on import.")
    g = network.ground
    for i, name in enumerate(network.nodes):
        fields = []
        if name != body[i]:
            fields.append(f"name={json.dumps(name)}")
        fields.append(f"role={json.dumps(network.roles[i].value)}")
        if network.positions is not None:
            fields.append(f"position={json.dumps([float(x) for x in network.positions[i]])}")
        lines.append(f"* twinrig: node {body[i]} " + " ".join(fields))

    edge_lines, edge_notes, gate_lines, models = [], [], [], {}
    parts = [p for p, _ in device.parts] if isinstance(device, MixedEdges) else [device]
    if any(isinstance(p, Mosfet) and p.subthreshold_v is not None for p in parts):
        edge_lines.append("* note: the twinrig MOSFET model's subthreshold current has no level-1 equivalent")
    for j, el in enumerate(elements):
        a, b = (body[x] for x in network.edges[j])
        ename = network.edge_names[j]
        letter = el[0].upper()
        if _SAFE_NAME.fullmatch(ename):
            elem = _unique(ename if ename[0].lower() == el[0] else letter + ename, used_elements)
        else:
            elem = _unique(f"{letter}{j}", used_elements)
        fields = [] if elem == ename else [f"name={json.dumps(ename)}"]
        if el[0] == "r":
            gk = el[1]
            if not (gk > 0 and math.isfinite(gk)):
                raise NetlistError(f"edge {ename} has conductance {gk:g} S, which no resistor has", src)
            text, exact = _resistance_text(gk)
            if not exact:
                fields.append(f"conductance_s={gk!r}")
            edge_lines.append(f"{elem} {a} {b} {text}")
        else:
            s, vt, vg = el[1], el[2], el[3]
            if not (s > 0 and math.isfinite(s) and math.isfinite(vt) and math.isfinite(vg)):
                raise NetlistError(f"edge {ename}: S={s:g}, V_T={vt:g}, V_G={vg:g} cannot be written", src)
            model = models.setdefault((s, vt), f"nmos{len(models) + 1}")
            gate = _unique(f"g_{elem}", used_nodes)
            edge_lines.append(f"{elem} {a} {gate} {b} 0 {model}")
            gate_lines.append(f"V{gate} {gate} 0 DC {vg!r}")
        if fields:
            edge_notes.append(f"* twinrig: edge {elem} " + " ".join(fields))
    lines += edge_notes
    lines.append("* fixed node voltages (V)")
    for i, name in enumerate(network.nodes):
        if name in fixed and i != g:
            vname = _unique(f"V{body[i]}", used_elements)
            lines.append(f"{vname} {body[i]} 0 DC {fixed[name]!r}")
    lines.append("* edges" + (" (resistances in Ohm)" if any(el[0] == "r" for el in elements) else ""))
    lines += edge_lines
    if gate_lines:
        lines.append("* gate voltages (V)")
        lines += gate_lines
        for (s, vt), model in models.items():
            lines.append(f".model {model} NMOS (LEVEL=1 KP={s!r} VTO={vt!r})")
    lines.append(f".options {options}")
    lines.append(".op")
    lines += [".control", "set numdgt=15", ".endc", ".end"]
    return "\n".join(lines) + "\n"


def write_netlist(
    path: str | Path,
    network: Network,
    device: EdgeDevice,
    state,
    fixed_v: Mapping[str, float] | None = None,
    twin: int = 0,
    **kw,
) -> None:
    """Write :func:`export_netlist`'s text (same arguments) to the file ``path``."""
    Path(path).write_text(export_netlist(network, device, state, fixed_v, twin, **kw), encoding="utf-8")
