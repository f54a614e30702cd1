"""Validating TOML files with pydantic: one error naming the field and the bad value.

Every file format of the project (network, rig, experiment) validates its parsed TOML with
:func:`validate_spec` against a :class:`Strict` model; the first problem becomes a
:class:`SpecProblem` whose ``field`` is the dotted path (``outputs[2].max_v``) and whose
``problem`` quotes the value, and the file's reader prefixes the file name.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """A file section: unknown fields are errors and values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


_TYPE_TAGS = ("float", "int", "str", "bool", "none")


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


def read_text(path: Path, error) -> str:
    """The UTF-8 text of ``path``; ``error(source, field, problem)`` (the file format's error
    class) when it is not text. OSError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(str(path), "", f"not a text file ({exc.reason} at byte {exc.start})") from None
