"""Validating TOML files with pydantic: one error naming the field and the bad value.

Every file format of the project (network, rig, experiment) validates its parsed TOML with
:func:`validate_spec` against a :class:`Strict` model; the first problem becomes a
:class:`SpecProblem` whose ``field`` is the dotted path (``outputs[2].max_v``) and whose
``problem`` quotes the value, and the file's reader prefixes the file name.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError


class Strict(BaseModel):
    """A file section: unknown fields are errors and values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


_TYPE_TAGS = ("float", "int", "str", "bool", "none")


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


Number = Annotated[float | int, AfterValidator(_finite)]
"""A finite number (TOML's ``inf`` and ``nan`` are refused): every file's numeric fields."""

SEED_MAX = 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
"""A random seed, 0 .. 2^32 - 1 (what every generator of the project accepts)."""

MAX_STEPS = 10**9
"""The most learning steps (or samples) one run may hold: a run file of this many step
records is about 100 GB, beyond any disk of a lab machine."""

MAX_SAMPLES = 10**6
"""The most samples one data set, task or evaluation may hold in memory."""

MAX_NESTING = 100
"""TOML arrays and tables nested deeper than this are refused (no file format needs more
than a few levels; Python's parser would exhaust its stack near 1,000)."""


class SpecProblem(Exception):
    """One problem of a file: ``field`` (dotted path) and ``problem`` (what is wrong)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem


def shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def field_path(loc, prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validate_spec(model: type[BaseModel], data, prefix: str = ""):
    """``model`` validated from ``data``; :class:`SpecProblem` for the first problem found."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        more = exc.error_count() - 1
        # drop the type tags pydantic puts in the location of a union's member
        loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in _TYPE_TAGS))]
        kind = err["type"]
        if kind == "extra_forbidden":
            problem = "unknown field"
        elif kind == "missing":
            problem = "missing"
        else:
            problem = err["msg"].removeprefix("Value error, ")
            problem += f" (got {shown(err['input'])})"
        if more:
            problem += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise SpecProblem(field_path(loc, prefix), problem) from None


def _nesting(text: str) -> int:
    """The deepest bracket nesting of ``text`` outside strings and comments (an upper bound
    of the TOML nesting: it counts inline tables and arrays alike)."""
    depth = deepest = 0
    quote = ""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
        i += 1
    return deepest


def parse_toml(text: str, source: str, error) -> dict:
    """The TOML document of ``text``; ``error(source, field, problem)`` (the file format's
    error class) when it is not valid TOML or nests deeper than :data:`MAX_NESTING`."""
    if _nesting(text) > MAX_NESTING:
        raise error(source, "", f"not a usable TOML file: arrays or tables nested deeper than {MAX_NESTING} levels")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(source, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise error(source, "", "not a usable TOML file: nested too deep") from None


def read_text(path: Path, error) -> str:
    """The UTF-8 text of ``path``; ``error(source, field, problem)`` (the file format's error
    class) when it is not text. OSError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(str(path), "", f"not a text file ({exc.reason} at byte {exc.start})") from None
