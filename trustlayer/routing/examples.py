"""Routing examples: what the device knew about a request, and whether the device sufficed.

    >>> from trustlayer.routing.examples import RoutingExample
    >>> ex = RoutingExample(prompt="what is <PERSON_1>'s age", signals={"entropy": 1.2},
    ...                     local_sufficed=False)
    >>> ex.features.prompt
    "what is <PERSON_1>'s age"

A routing data file is JSONL, one example per line::

    {"prompt": "<redacted prompt>", "signals": {"entropy": 1.2, "mean_logprob": -0.8}, "local_sufficed": true}

``prompt`` is the *redacted* prompt (placeholders, never raw personal data);
``signals`` are the local model's uncertainty signals (finite floats by name);
``local_sufficed`` is the label: did the local answer agree with the consensus.
Errors name the file, the line and the field, never the prompt text.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trustlayer.errors import RouterError

__all__ = ["PromptFeatures", "RoutingDataError", "RoutingExample", "read_jsonl", "write_jsonl"]

_MAX_LINE_BYTES = 1 << 20


class RoutingDataError(RouterError):
    """A routing data file is missing or malformed; the message names the file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


def _check_signals(value: Mapping[str, float]) -> Mapping[str, float]:
    for name, x in value.items():
        if not name:
            raise ValueError("a signal name must not be empty")
        if not math.isfinite(x):
            raise ValueError(f"signal {name!r} must be a finite number, found {x}")
    return dict(sorted(value.items()))


class PromptFeatures(BaseModel):
    """What the device knows about a request before choosing where it goes.

    ``prompt`` is the redacted prompt text; ``signals`` are the local model's
    uncertainty signals (for example mean token log-probability, entropy).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str = Field(repr=False)
    signals: Mapping[str, float] = Field(default_factory=dict)

    @field_validator("signals")
    @classmethod
    def _finite(cls, value: Mapping[str, float]) -> Mapping[str, float]:
        return _check_signals(value)


class RoutingExample(BaseModel):
    """One labelled request: its device-side features and whether the local answer sufficed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str = Field(repr=False)
    signals: Mapping[str, float] = Field(default_factory=dict)
    local_sufficed: bool

    @field_validator("signals")
    @classmethod
    def _finite(cls, value: Mapping[str, float]) -> Mapping[str, float]:
        return _check_signals(value)

    @property
    def features(self) -> PromptFeatures:
        """The example without its label."""
        return PromptFeatures(prompt=self.prompt, signals=self.signals)

    def to_json(self) -> str:
        """One JSONL line (without the newline)."""
        return json.dumps({"prompt": self.prompt, "signals": dict(self.signals),
                           "local_sufficed": self.local_sufficed}, ensure_ascii=False, sort_keys=True)


def _field_of(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(line)"
    # pydantic puts the offending input into the message only via 'input'; we use 'msg' alone.
    return loc, str(err["msg"])


def read_jsonl(path: str | os.PathLike[str]) -> list[RoutingExample]:
    """Read a routing data file; ``RoutingDataError`` names the file, line and field of any problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError as exc:
        raise RoutingDataError(f"routing data file {str(p)!r} does not exist", path=str(p)) from exc
    except OSError as exc:
        raise RoutingDataError(f"cannot read routing data file {str(p)!r}: {exc.strerror}",
                               path=str(p)) from exc
    examples: list[RoutingExample] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        where = f"routing data file {str(p)!r} line {number}"
        if not line.strip():
            continue
        if len(line) > _MAX_LINE_BYTES:
            raise RoutingDataError(f"{where}: the line is longer than {_MAX_LINE_BYTES} bytes",
                                   path=str(p), line=number)
        try:
            doc: Any = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RoutingDataError(f"{where}: not valid JSON", path=str(p), line=number) from exc
        if not isinstance(doc, dict):
            raise RoutingDataError(f"{where}: expected a JSON object, found {type(doc).__name__}",
                                   path=str(p), line=number)
        try:
            examples.append(RoutingExample.model_validate(doc, strict=True))
        except ValidationError as exc:
            field, msg = _field_of(exc)
            raise RoutingDataError(f"{where}: field {field!r}: {msg}", path=str(p), line=number) from exc
    return examples


def write_jsonl(path: str | os.PathLike[str], examples: Iterable[RoutingExample]) -> int:
    """Write examples as a routing data file; return how many were written."""
    lines: Sequence[str] = [ex.to_json() for ex in examples]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)
