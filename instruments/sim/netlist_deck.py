"""A SPICE deck as flat cards: lines joined, comments dropped, files included, parameters
evaluated and subcircuits expanded, each card still knowing its file and line.

* the first line of the top file is the title; ``*`` starts a comment line (kept, for the
  ``* twinrig:`` annotations of the top file), ``;`` and ``$`` (after a blank) an inline
  comment; ``+`` continues the previous card; ``.control`` ... ``.endc`` is skipped; ``.end``
  ends a file;
* ``.include path`` (or ``.inc``; quotes allowed) reads another file in place, ``path``
  relative to the including file's folder (or to ``base_dir`` for a netlist given as text).
  Included files have no title line. A file that includes itself, directly or not, is refused,
  naming the chain of files;
* ``.param name=value ...``: values are numbers or expressions (``{...}``, ``'...'`` or bare)
  of ``+ - * /``, parentheses, numbers and earlier parameters (:mod:`.netlist_expr`; no
  ``eval``). ``{expr}`` and ``'expr'`` anywhere in a card are replaced by their value;
* ``.subckt name node... [params:] [p=default ...]`` ... ``.ends [name]`` defines a
  subcircuit, ``X<name> node... name [params:] [p=value ...]`` instantiates it. Definitions
  may nest (an inner one is visible only inside its outer one) and instances may nest. Inside
  an instance ``X1`` an element ``R1`` becomes ``R.X1.R1`` and a node ``n`` becomes ``X1.n``
  (ngspice's names); the ground ``0`` stays global. Its parameters are the top-level ones, the
  defaults of its ``.subckt`` line, the instance's values and its own ``.param`` cards, in that
  order of precedence (later wins). ``.model`` cards inside a subcircuit are global.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .netlist_base import NetlistError
from .netlist_expr import ExpressionError, evaluate

#: Subcircuit instances nested deeper than this are refused (a subcircuit that contains
#: itself would otherwise expand for ever).
MAX_DEPTH = 50
#: Terminals of an element, by its letter (to rename the nodes of a subcircuit's elements).
_NODE_COUNT = {"r": 2, "c": 2, "v": 2, "i": 2, "l": 2, "d": 2, "m": 4, "q": 3, "j": 3}
_EXPR = re.compile(r"\{([^{}]*)\}|'([^']*)'")


@dataclass
class Card:
    """One logical card: ``text`` (continuations joined, comments removed) from ``source``,
    its first line ``line``; ``context`` says which subcircuit instance it was expanded in."""

    line: int
    text: str
    source: str = "<netlist>"
    tokens: list[str] = field(default_factory=list)
    context: str = ""

    def error(self, problem: str) -> NetlistError:
        """A :class:`NetlistError` naming this card's file, line and text."""
        return NetlistError(problem + (f" ({self.context})" if self.context else ""), self.source, self.line, self.text)


@dataclass
class Deck:
    """Title, flat cards (every instance expanded) and the top file's comment lines."""

    title: str
    cards: list[Card]
    comments: list[tuple[int, str]]


@dataclass
class _Subckt:
    name: str
    ports: list[str]
    defaults: list[tuple[str, str]]
    body: list[Card]
    card: Card
    defs: dict  # definitions visible inside (outer ones and its own nested ones)
    models_done: bool = False


def strip_inline_comment(line: str) -> str:
    """``line`` without a ``;`` comment or a ``$`` comment after a blank."""
    cut = line.find(";")
    if cut >= 0:
        line = line[:cut]
    m = re.search(r"(^|\s)\$", line)
    if m:
        line = line[: m.start()]
    return line.rstrip()


def read_deck(text: str, source: str = "<netlist>", base_dir: Path | None = None) -> Deck:
    """The flat deck of the netlist ``text`` (read from ``source``; includes relative to
    ``base_dir``, default the current folder).

    Raises:
        NetlistError: naming the file, line and card of what cannot be read.
    """
    lines = text.splitlines()
    if not lines or not lines[0].strip() and len(lines) == 1:
        raise NetlistError("empty netlist (the first line is the title)", source, 1)
    comments: list[tuple[int, str]] = []
    folder = Path(base_dir) if base_dir is not None else Path(".")
    chain = [str(Path(source).resolve())] if source != "<netlist>" else []
    cards = _file_cards(lines[1:], 2, source, folder, chain, comments)
    top, defs = _split_definitions(cards, {})
    params: dict[str, float] = {}
    out: list[Card] = []
    _expand(top, params, defs, [], {}, "", out, 0)
    return Deck(lines[0].strip(), out, comments)


def _file_cards(lines, first_line, source, folder: Path, chain, comments) -> list[Card]:
    """Logical cards of one file, its ``.include`` cards replaced by the included cards."""
    cards: list[Card] = []
    control: Card | None = None
    for n, raw in enumerate(lines, start=first_line):
        stripped = raw.strip()
        if control is not None:
            if stripped.lower().split()[:1] == [".endc"]:
                control = None
            continue
        if not stripped:
            continue
        if stripped.startswith("*"):
            if comments is not None:
                comments.append((n, stripped))
            continue
        body = strip_inline_comment(stripped)
        if not body:
            continue
        if body.startswith("+"):
            if not cards:
                raise NetlistError("continuation line with nothing to continue", source, n, stripped)
            cards[-1].text += " " + body[1:].strip()
            continue
        first = body.split()[0].lower()
        if first == ".end":
            break
        if first == ".control":
            control = Card(n, body, source)
            continue
        cards.append(Card(n, body, source))
    if control is not None:
        raise control.error(".control block without .endc")
    out: list[Card] = []
    for card in cards:
        if card.text.split()[0].lower() in (".include", ".inc"):
            out += _include(card, folder, chain)
        else:
            out.append(card)
    return out


def _include(card: Card, folder: Path, chain: list[str]) -> list[Card]:
    parts = card.text.split(None, 1)
    if len(parts) < 2:
        raise card.error(".include needs a file name")
    name = parts[1].strip().strip("\"'")
    path = Path(name) if Path(name).is_absolute() else folder / name
    key = str(path.resolve())
    if key in chain:
        shown = " -> ".join(Path(c).name for c in chain[chain.index(key):]) + f" -> {path.name}"
        raise card.error(f"include cycle: {shown}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise card.error(f"included file {path} is not a text file ({exc.reason})") from None
    except OSError as exc:
        raise card.error(f"cannot read included file {path}: {exc.strerror or exc}") from None
    return _file_cards(text.splitlines(), 1, str(path), path.parent, chain + [key], None)


def _split_definitions(cards: list[Card], outer: dict) -> tuple[list[Card], dict]:
    """The cards outside ``.subckt`` blocks and the definitions (outer ones plus these)."""
    defs = dict(outer)
    local: dict[str, _Subckt] = {}
    top: list[Card] = []
    i = 0
    while i < len(cards):
        card = cards[i]
        head = card.text.split()[0].lower()
        if head == ".ends":
            raise card.error(".ends without .subckt")
        if head != ".subckt":
            top.append(card)
            i += 1
            continue
        depth, j = 1, i + 1
        while j < len(cards) and depth:
            h = cards[j].text.split()[0].lower()
            depth += (h == ".subckt") - (h == ".ends")
            j += 1
        if depth:
            raise card.error(".subckt without .ends")
        end = cards[j - 1]
        tok = re.sub(r"\s*=\s*", "=", card.text).split()
        if len(tok) < 2:
            raise card.error(".subckt needs a name")
        name = tok[1]
        ends_name = end.text.split()[1:2]
        if ends_name and ends_name[0].lower() != name.lower():
            raise end.error(f".ends {ends_name[0]} closes .subckt {name}")
        ports, defaults = [], []
        for t in tok[2:]:
            if t.lower() == "params:":
                continue
            if "=" in t:
                k, v = t.split("=", 1)
                defaults.append((k.lower(), v))
            elif defaults:
                raise card.error(f"node {t} after the parameters of .subckt {name}")
            else:
                ports.append(t)
        if name.lower() in local:
            first = local[name.lower()].card
            raise card.error(f".subckt {name} defined twice (first in {first.source}, line {first.line})")
        sub = _Subckt(name, ports, defaults, cards[i + 1 : j - 1], card, {})
        defs[name.lower()] = local[name.lower()] = sub
        i = j
    for sub in local.values():
        sub.body, sub.defs = _split_definitions(sub.body, defs)
    return top, defs


def _value(card: Card, text: str, params: dict[str, float]) -> float:
    t = text.strip()
    if len(t) >= 2 and (t[0], t[-1]) in (("{", "}"), ("'", "'")):
        t = t[1:-1]
    try:
        return evaluate(t, params)
    except ExpressionError as exc:
        raise card.error(str(exc)) from None


def _substitute(card: Card, params: dict[str, float]) -> str:
    def one(m):
        return repr(_value(card, m.group(1) if m.group(1) is not None else m.group(2), params))

    return _EXPR.sub(one, card.text)


def _param_card(card: Card, params: dict[str, float]) -> None:
    body = card.text.split(None, 1)
    text = body[1] if len(body) > 1 else ""
    # name = value pairs; a value runs to the next "name=" (values may hold blanks in {})
    pairs = list(re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", text))
    if not pairs:
        raise card.error(".param needs name=value")
    if text[: pairs[0].start()].strip():
        raise card.error(f"unexpected {text[: pairs[0].start()].strip()!r} in .param")
    for k, m in enumerate(pairs):
        end = pairs[k + 1].start() if k + 1 < len(pairs) else len(text)
        value = text[m.end() : end].strip()
        if not value:
            raise card.error(f"parameter {m.group(1)} has no value")
        params[m.group(1).lower()] = _value(card, value, params)


def _expand(cards, params, defs, path, node_map, context, out, depth) -> None:
    """Append ``cards`` to ``out`` with parameters substituted and instances expanded;
    ``path`` names the instance (empty at the top), ``node_map`` its ports."""
    params = dict(params)
    for card in cards:
        if card.text.split()[0].lower() == ".param":
            _param_card(Card(card.line, card.text, card.source, context=context), params)
    for card in cards:
        head = card.text.split()[0].lower()
        if head == ".param":
            continue
        here = Card(card.line, card.text, card.source, context=context)
        here.text = _substitute(here, params)
        if head[0] == "x":
            _instance(here, params, defs, path, node_map, out, depth)
            continue
        if path and not head.startswith("."):
            here.text = _rename(here.text, path, node_map)
        out.append(here)


def _rename(text: str, path: list[str], node_map: dict[str, str]) -> str:
    tok = text.split()
    prefix = ".".join(path)
    n = _NODE_COUNT.get(tok[0][0].lower(), 0)
    tok[0] = f"{tok[0][0]}.{prefix}.{tok[0]}"
    for i in range(1, min(1 + n, len(tok))):
        tok[i] = _node(tok[i], prefix, node_map)
    return " ".join(tok)


def _node(name: str, prefix: str, node_map: dict[str, str]) -> str:
    k = name.lower()
    if k in ("0", "gnd"):
        return name
    return node_map.get(k, f"{prefix}.{name}")


def _instance(card: Card, params, defs, path, node_map, out, depth) -> None:
    tok = re.sub(r"\s*=\s*", "=", card.text).split()
    name = tok[0]
    words = [t for t in tok[1:] if "=" not in t and t.lower() != "params:"]
    given = [t.split("=", 1) for t in tok[1:] if "=" in t]
    if not words:
        raise card.error(f"{name} needs nodes and a subcircuit name")
    sub = defs.get(words[-1].lower())
    if sub is None:
        raise card.error(f"no .subckt named {words[-1]}")
    nodes = words[:-1]
    if len(nodes) != len(sub.ports):
        raise card.error(
            f"{name} gives {len(nodes)} node(s) to .subckt {sub.name}, which has {len(sub.ports)} "
            f"({' '.join(sub.ports)})"
        )
    if depth >= MAX_DEPTH:
        raise card.error(f"subcircuits nested deeper than {MAX_DEPTH} (does .subckt {sub.name} contain itself?)")
    prefix = ".".join(path)
    actual = [_node(n, prefix, node_map) if path else n for n in nodes]
    inner_map = {p.lower(): a for p, a in zip(sub.ports, actual)}
    scope = dict(params)
    allowed = {k for k, _ in sub.defaults}
    for k, v in sub.defaults:
        scope[k] = _value(sub.card, v, scope)
    for k, v in given:
        if k.lower() not in allowed:
            raise card.error(f".subckt {sub.name} has no parameter {k}")
        scope[k.lower()] = _value(card, v, params)
    inner_path = path + [name]
    where = f"in {'.'.join(inner_path)}, {card.source} line {card.line}"
    body = [c for c in sub.body if c.text.split()[0].lower() != ".model" or not sub.models_done]
    sub.models_done = True
    _expand(body, scope, sub.defs, inner_path, inner_map, where, out, depth + 1)
