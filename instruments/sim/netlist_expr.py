"""Arithmetic of SPICE parameters: the value of ``{r1 * 2 + 1k}``, without ``eval``.

The grammar (case-insensitive names, SPICE numbers with scale suffixes as in
:func:`~instruments.sim.netlist_base.parse_number`)::

    expr   := term (("+" | "-") term)*
    term   := factor (("*" | "/") factor)*
    factor := ("+" | "-") factor | number | name | "(" expr ")"

Names are looked up in a mapping of parameters already evaluated (floats). Anything else (a
function call, ``**``, a comparison, an unknown name, division by zero) is a
:class:`ExpressionError` saying what and where.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

from .netlist_base import parse_number

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z]*)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<op>[-+*/()]))"
)


class ExpressionError(ValueError):
    """An expression cannot be evaluated; the message says why."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"unexpected {text[pos:].strip()[:20]!r} in expression {text.strip()!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def evaluate(text: str, params: Mapping[str, float]) -> float:
    """The value of the expression ``text`` with the parameters ``params`` (lower-case name
    -> value).

    Raises:
        ExpressionError: the expression is malformed, names an unknown parameter, divides by
            zero or overflows.
    """
    toks = _tokens(text)
    if not toks:
        raise ExpressionError("empty expression")
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else ("end", "")

    def take():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def expr() -> float:
        value = term()
        while peek() in (("op", "+"), ("op", "-")):
            op = take()[1]
            rhs = term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term() -> float:
        value = factor()
        while peek() in (("op", "*"), ("op", "/")):
            op = take()[1]
            rhs = factor()
            if op == "*":
                value = value * rhs
            else:
                if rhs == 0:
                    raise ExpressionError(f"division by zero in expression {text.strip()!r}")
                value = value / rhs
        return value

    def factor() -> float:
        kind, tok = take() if pos < len(toks) else ("end", "")
        if kind == "op" and tok in "+-":
            value = factor()
            return -value if tok == "-" else value
        if kind == "num":
            try:
                return parse_number(tok)
            except ValueError:
                raise ExpressionError(f"{tok!r} is not a number (in {text.strip()!r})") from None
        if kind == "name":
            if peek() == ("op", "("):
                raise ExpressionError(f"functions such as {tok}() are not accepted (in {text.strip()!r})")
            key = tok.lower()
            if key not in params:
                raise ExpressionError(f"unknown parameter {tok} (in {text.strip()!r})")
            return params[key]
        if (kind, tok) == ("op", "("):
            value = expr()
            if peek() != ("op", ")"):
                raise ExpressionError(f"missing ')' in expression {text.strip()!r}")
            take()
            return value
        where = "end" if kind == "end" else repr(tok)
        raise ExpressionError(f"unexpected {where} in expression {text.strip()!r}")

    value = expr()
    if pos != len(toks):
        raise ExpressionError(f"unexpected {toks[pos][1]!r} in expression {text.strip()!r}")
    if not math.isfinite(value):
        raise ExpressionError(f"expression {text.strip()!r} overflows")
    return float(value)
