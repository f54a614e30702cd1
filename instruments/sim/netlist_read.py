"""Reading a SPICE deck's cards (:mod:`.netlist_deck`) into a :class:`Netlist`: elements,
models, sources, annotations, and the network they make (see :mod:`instruments.sim.netlist`).

Units: volts, siemens, amperes, ohms, A/V^2.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .edges import EdgeDevice, MixedEdges, Mosfet, Resistor
from .netlist_base import (
    _NUMBER, SPICE_GMIN_S, TEMPERATURE_C, Netlist, NetlistError, _key, parse_number,
)
from .netlist_deck import Card, read_deck
from .netlist_notes import _Annotation, _Annotations
from .network import Network, NetworkError, Role

_IGNORED_CARDS = {
    ".op", ".print", ".plot", ".probe", ".save", ".tran",
    ".ac", ".dc", ".noise", ".tf", ".sens", ".disto", ".pz", ".four", ".meas", ".measure",
    ".width", ".nodeset", ".ic",
}
_UNSUPPORTED_CARDS = {
    ".lib": "libraries", ".func": "functions", ".global": "global nodes",
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
_MODEL_ZERO = {"gamma", "rd", "rs", "rsh", "ld"}
#: What this reader accepts, for the messages about what it does not.
ACCEPTED = (
    "this reader takes R, C, V and I (DC) elements, level-1 NMOS M elements with KP, VTO and "
    "LAMBDA, X instances of .subckt, .param, .include, .model, .options and .temp 27"
)
#: ngspice's default gate width and length (DEFW, DEFL), m.
_DEFAULT_W_M = 100e-6
_DEFAULT_L_M = 100e-6
_DEFAULT_KP = 2e-5
_DEFAULT_VTO = 0.0



class _Reader(_Annotations):
    def __init__(self, text: str, source: str, base_dir: Path | None = None):
        self.text = text
        self.source = source
        self.base_dir = base_dir
        self.isources: list[tuple[Card, str, str, float]] = []
        self.gmin_s = SPICE_GMIN_S
        self.nodes: dict[str, str] = {}  # key -> name as first written
        self.order: list[str] = []  # keys in order of first mention
        self.names: dict[str, Card] = {}  # element name (lower) -> card
        self.models: dict[str, tuple[Card, str, dict[str, float]]] = {}
        self.edges: list[tuple[Card, str, str, str, dict]] = []  # card, kind, a, b, data
        self.vsources: list[tuple[Card, str, str, float]] = []
        self.bulk: list[tuple[Card, str]] = []
        self.annotations: list[_Annotation] = []

    def error(self, card: Card | _Annotation, problem: str) -> NetlistError:
        if isinstance(card, Card):
            return card.error(problem)
        return NetlistError(problem, self.source, card.line, card.text)

    # -- cards to elements ------------------------------------------------------------------
    def tokens(self, card: Card, split_parens: bool = False) -> list[str]:
        text = re.sub(r"\s*=\s*", "=", card.text)
        if split_parens:
            text = re.sub(r"[(),]", " ", text)
        if "{" in text or "}" in text or "'" in text:
            raise self.error(card, "unbalanced { } or ' in an expression")
        return text.split()

    def number(self, card: Card, token: str, what: str) -> float:
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

    def params(self, card: Card, tokens: list[str], allowed: set[str], flags=frozenset()) -> dict[str, str]:
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

    def element(self, card: Card) -> None:
        tok = card.tokens
        name = tok[0]
        letter = name[0].lower()
        if letter == "c":
            return  # open at DC
        if letter not in "rvmi":
            kind = _ELEMENT_KINDS.get(letter, "element")
            raise self.error(card, f"unsupported {kind} {name} is not accepted ({ACCEPTED})")
        if name.lower() in self.names:
            first = self.names[name.lower()].line
            raise self.error(card, f"element {name} defined twice (first on line {first})")
        self.names[name.lower()] = card
        if letter == "r":
            self.resistor(card)
        elif letter == "v":
            self.vsources.append(self.source_card(card, "voltage"))
        elif letter == "i":
            self.isources.append(self.source_card(card, "current"))
        else:
            self.mosfet(card)

    def two_nodes(self, card: Card, need: str) -> tuple[str, str]:
        tok = card.tokens
        if len(tok) < 3 or "=" in tok[1] or "=" in tok[2]:
            raise self.error(card, f"{tok[0]} needs {need}")
        a, b = self.node(tok[1]), self.node(tok[2])
        if a == b:
            raise self.error(card, f"{tok[0]} connects node {tok[1]} to itself")
        return a, b

    def resistor(self, card: Card) -> None:
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

    def source_card(self, card: Card, what: str) -> tuple[Card, str, str, float]:
        """An independent source ``p n [DC] value`` (voltage, V, or current, A, from p
        through the source to n)."""
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
            raise self.error(card, f"unexpected {rest[i]!r} in {what} source {tok[0]}")
        if value is None:
            if transient:
                raise self.error(card, f"{tok[0]} has a transient waveform but no DC value")
            value = 0.0  # SPICE's default for a source without a value
        return card, p, n, value

    def mosfet(self, card: Card) -> None:
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
        self.edges.append((card, "m", d, s, {"gate": g, "model": tok[5], "drain": d, "source": s, **geo}))
        self.bulk.append((card, b))

    def model(self, card: Card) -> None:
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
                        what = "the body effect" if k == "gamma" else "series resistance" if k != "ld" else "lateral diffusion"
                        raise self.error(card, f"{k.upper()}={v} is not accepted ({what} is not modelled; it must be 0)")
                    continue
                if k == "level":
                    if val != 1:
                        raise self.error(card, f"only LEVEL=1 MOSFET models are supported, got LEVEL={v}")
                    continue
                if k == "tnom":
                    if val != 27:
                        raise self.error(card, f"TNOM={v} is not supported (only 27)")
                    continue
                if k == "lambda" and val < 0:
                    raise self.error(card, f"LAMBDA must be >= 0, got {v}")
                if k not in ("kp", "vto", "lambda"):
                    raise self.error(card, f"unsupported model parameter {k.upper()} (give KP, VTO and LAMBDA)")
                params[k] = val
            if params.get("kp", _DEFAULT_KP) <= 0:
                raise self.error(card, f"KP must be positive, got {params['kp']:g}")
        self.models[name.lower()] = (card, kind, params)

    def temperature(self, card: Card, tokens: list[str]) -> None:
        if not tokens:
            raise self.error(card, ".temp needs a temperature (degC)")
        t = self.number(card, tokens[0], "temperature")
        if t != TEMPERATURE_C:
            raise self.error(
                card, f"temperature {tokens[0]} degC is not accepted: the simulator is at "
                f"{TEMPERATURE_C:g} degC (its device parameters hold there)"
            )

    def options(self, card: Card) -> None:
        """``.options``: GMIN (S, >= 0) and TEMP (27 only) are read; the rest are ngspice's."""
        for t in card.tokens[1:]:
            if "=" not in t:
                continue
            k, v = t.split("=", 1)
            if k.lower() == "gmin":
                g = self.number(card, v, "GMIN")
                if not (g >= 0 and math.isfinite(g)):
                    raise self.error(card, f"GMIN must be >= 0 S, got {v}")
                self.gmin_s = g
            elif k.lower() == "temp":
                self.temperature(card, [v])

    # -- assembly ---------------------------------------------------------------------------
    def read(self) -> Netlist:
        deck = read_deck(self.text, self.source, self.base_dir)
        title, cards = deck.title, deck.cards
        for n, text in deck.comments:
            self.annotation(n, text)
        for card in cards:
            card.tokens = self.tokens(card)
            head = card.tokens[0].lower()
            if head.startswith("."):
                if head == ".model":
                    self.model(card)
                elif head == ".title":
                    title = card.text.split(None, 1)[1].strip() if len(card.tokens) > 1 else ""
                elif head == ".temp":
                    self.temperature(card, card.tokens[1:2])
                elif head in (".options", ".option", ".opt"):
                    self.options(card)
                elif head in _UNSUPPORTED_CARDS:
                    raise self.error(card, f"{head} is not accepted ({_UNSUPPORTED_CARDS[head]}; {ACCEPTED})")
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
        r_idx, m_idx, s_m, vt_m, lam_m = [], [], [], [], []
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
            s, vt, lam = self.mosfet_model(card, data)
            s_m.append(s)
            vt_m.append(vt)
            lam_m.append(lam)
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
        device = _device(e, r_idx, m_idx, s_m, vt_m, lam_m)
        shunt_s, shunt_v = self.junction_shunts(index, volts)
        inject = self.injections(index, in_net, volts)
        return Netlist(
            title, network, device, state, fixed_v, ground, gate_v, spice_names, self.source,
            shunt_s, shunt_v, inject,
        )

    def junction_shunts(self, index: dict[str, int], volts: dict[str, float]):
        """GMIN (S) from each MOSFET drain and source to its bulk, summed per node, and the
        junction-weighted bulk voltage (V) it goes to; (None, None) without MOSFETs."""
        mos = [(c, d) for c, kind, _, _, d in self.edges if kind == "m"]
        if not mos:
            return None, None
        n = len(index)
        g = np.zeros(n)
        gv = np.zeros(n)
        for (card, data), (_, b) in zip(mos, self.bulk):
            for t in (data["drain"], data["source"]):
                g[index[t]] += self.gmin_s
                gv[index[t]] += self.gmin_s * volts[b]
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(g > 0, gv / np.where(g > 0, g, 1.0), 0.0)
        return g, v

    def injections(self, index: dict[str, int], in_net: set[str], volts: dict[str, float]):
        """Current (A) into each network node from the I elements; None without them."""
        if not self.isources:
            return None
        inject = np.zeros(len(index))
        for card, p, n, value in self.isources:
            for k in (p, n):
                if k not in in_net and k not in volts:
                    raise self.error(
                        card, f"node {self.nodes[k]} of {card.tokens[0]} is on no R or M element and "
                        "held by no voltage source (a current source needs a network node)"
                    )
            # SPICE: the current flows from p through the source to n
            if p in index:
                inject[index[p]] -= value
            if n in index:
                inject[index[n]] += value
        return inject

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

    def mosfet_model(self, card: Card, data: dict) -> tuple[float, float]:
        entry = self.models.get(data["model"].lower())
        if entry is None:
            raise self.error(card, f"no .model named {data['model']}")
        _, kind, params = entry
        if kind != "nmos":
            raise self.error(
                card, f"model {data['model']} is {kind.upper()}: only NMOS transistors are accepted "
                "(PMOS and other devices are not modelled)"
            )
        s = params.get("kp", _DEFAULT_KP) * (data["w"] / data["l"]) * data["m"]
        return s, params.get("vto", _DEFAULT_VTO), params.get("lambda", 0.0)

    def gate_voltage(self, card: Card, gate: str, volts: dict[str, float], in_net: set[str]) -> float:
        if gate in volts:
            return volts[gate]
        where = "network node" if gate in in_net else "gate node"
        raise self.error(
            card, f"{where} {self.nodes[gate]}, the gate of {card.tokens[0]}, is not held by a voltage "
            "source (a MOSFET edge needs a fixed gate voltage)"
        )


def _device(e: int, r_idx, m_idx, s_m, vt_m, lam_m) -> EdgeDevice:
    def resistors(n):
        return Resistor(n, state_min=0.0, state_max=np.inf)

    def mosfets():
        return Mosfet(
            len(m_idx), s_a_per_v2=np.array(s_m), vt_v=np.array(vt_m), subthreshold_v=None,
            state_min=-np.inf, state_max=np.inf, lambda_per_v=np.array(lam_m),
        )

    if not m_idx:
        return resistors(e)
    if not r_idx:
        return mosfets()
    return MixedEdges(e, parts=((resistors(len(r_idx)), r_idx), (mosfets(), m_idx)))


