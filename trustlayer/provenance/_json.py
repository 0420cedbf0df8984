"""Deterministic JSON for signed payloads: sorted keys, no whitespace, no floats.

Floats are refused on both sides: their text form differs between languages and
libraries, so a float in signed JSON makes "the same record" serialize differently.
Ratios are signed as integers (per-mille) instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trustlayer.errors import SignatureError

__all__ = ["STATEMENT_TYPE", "STATEMENT_MEDIA_TYPE", "check_no_floats", "dumps", "loads"]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
"""The in-toto Statement v1 ``_type``."""

STATEMENT_MEDIA_TYPE = "application/vnd.in-toto+json"
"""The DSSE payloadType of an in-toto Statement (in-toto attestation spec v1, envelope layer)."""

_MAX_DEPTH = 32


_SCALARS = (str, int, bool, type(None))
_FAST_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(value: Any, depth: int) -> bool:
    # exact-type dispatch: isinstance against ABCs is several times slower
    t = type(value)
    if t in _FAST_SCALARS:
        return True
    if depth >= _MAX_DEPTH:
        return False
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or not (type(v) in _FAST_SCALARS or _plain(v, depth + 1)):
                return False
        return True
    if t is list or t is tuple:
        return all(type(v) in _FAST_SCALARS or _plain(v, depth + 1) for v in value)
    return False


def check_no_floats(value: Any) -> None:
    """Raise ``SignatureError`` naming the path of the first float (or non-JSON value) in ``value``."""
    # Fast pass without building paths (it runs for every signed record); when it meets
    # anything unusual, the slow pass names the problem or accepts (e.g. a Mapping subclass).
    if not _plain(value, 0):
        _locate(value, "$", 0)


def _locate(value: Any, where: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise SignatureError(f"signed JSON nests deeper than {_MAX_DEPTH} levels at {where}")
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, float):
        raise SignatureError(f"signed JSON must not contain floats; found one at {where}")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise SignatureError(f"signed JSON keys must be strings; found {type(k).__name__} at {where}")
            _locate(v, f"{where}.{k}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _locate(v, f"{where}[{i}]", depth + 1)
        return
    raise SignatureError(f"signed JSON cannot hold a {type(value).__name__} (at {where})")


# One encoder for every record: json.dumps builds a new JSONEncoder per call when given options.
# check_circular=False: payloads are trees built per record; a cycle would still fail (RecursionError).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, check_circular=False)


def dumps(value: Mapping[str, Any], *, checked: bool = False) -> bytes:
    """Serialize a signed payload deterministically; ``SignatureError`` on floats.

    ``checked=True`` skips the float check for a value whose types are guaranteed by
    construction (``records.build_statement``); everything else is checked.
    """
    if not checked:
        check_no_floats(value)
    return _ENCODER.encode(value).encode("ascii")


def _refuse_float(text: str) -> Any:
    raise SignatureError(f"signed JSON must not contain floats; found {text[:32]!r}")


def _refuse_constant(text: str) -> Any:
    raise SignatureError(f"signed JSON must not contain {text}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SignatureError(f"signed JSON has the field {k!r} twice")
        out[k] = v
    return out


def loads(payload: bytes, what: str = "payload") -> dict[str, Any]:
    """Parse a (verified) signed JSON object, refusing floats, NaN and duplicate keys."""
    try:
        doc = json.loads(payload, parse_float=_refuse_float, parse_constant=_refuse_constant,
                         object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise SignatureError(f"{what} is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise SignatureError(f"{what} must be a JSON object, found {type(doc).__name__}")
    return doc
