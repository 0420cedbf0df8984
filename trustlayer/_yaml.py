"""YAML loading that remembers where each value came from, for errors with file, line and field.

Used by the config loader and the policy compiler::

    data, lines = load_yaml("trustlayer.yaml", error=ConfigError)
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, "trustlayer.yaml", lines, error=ConfigError) from exc
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from trustlayer.errors import ConfigError

__all__ = ["Lines", "LocatedError", "load_yaml", "loc_text", "parse_yaml", "validation_error"]

Lines = dict[tuple[str | int, ...], int]


class LocatedError(ValueError):
    """A validation error raised by a model-level check that knows which field is wrong."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _walk(node: yaml.Node, path: tuple[str | int, ...], lines: Lines) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line)
            lines[(*path, name)] = key.start_mark.line + 1
            _walk(value, (*path, name), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


def load_yaml(path: str | Path, *, error: type[ConfigError] = ConfigError,
              what: str = "config") -> tuple[Any, Lines]:
    """Parse a YAML file; return the data and a map from value path to line number.

    Raises ``error`` naming the file (and line) when it is missing, unreadable,
    not valid YAML, or empty.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error(f"{what} file {str(p)!r} does not exist", path=str(p)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} file {str(p)!r} cannot be read: {exc.__class__.__name__}", path=str(p)) from exc
    data, lines, _ = parse_yaml(text, path=p, error=error, what=what)
    return data, lines


def parse_yaml(text: str, *, path: str | Path, error: type[ConfigError] = ConfigError,
               what: str = "config") -> tuple[Any, Lines, yaml.Node]:
    """Parse YAML text; return the data, the value-path-to-line map and the composed node tree.

    Raises ``error`` naming the file (and line) for a syntax error or an empty document.
    """
    p = str(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f" line {line}" if line else ""
        raise error(f"{what} file {p!r}{where}: YAML syntax error: {problem}", path=p, line=line) from exc
    if node is None or data is None:
        raise error(f"{what} file {p!r} is empty", path=p)
    lines: Lines = {}
    _walk(node, (), lines)
    return data, lines, node



def loc_text(loc: tuple[str | int, ...]) -> str:
    """Render a pydantic error location as ``endpoints[1].kind``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _line_for(loc: tuple[str | int, ...], lines: Lines) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def validation_error(exc: ValidationError, path: str | Path, lines: Lines, *,
                     error: type[ConfigError] = ConfigError, what: str = "config") -> ConfigError:
    """Turn the first pydantic validation error into one clear ``error`` with file, line and field."""
    first = exc.errors()[0]
    loc = tuple(x for x in first["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, LocatedError):
        loc = (*loc, *cause.loc)
    field = loc_text(loc)
    line = _line_for(loc, lines)
    msg = str(cause) if isinstance(cause, LocatedError) else first["msg"]
    if first["type"] == "extra_forbidden":
        msg = f"unknown field {str(loc[-1])!r}"
    elif first["type"] == "missing":
        msg = f"required field {str(loc[-1])!r} is missing"
    where = f" line {line}" if line else ""
    more = len(exc.errors()) - 1
    tail = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return error(f"{what} file {str(path)!r}{where}, field {field}: {msg}{tail}",
                 path=str(path), line=line, field=field)
