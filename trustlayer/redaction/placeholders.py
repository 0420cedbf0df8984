"""The placeholder format, and how to find placeholders an LLM has rewritten.

A placeholder is ``<TYPE_xxxxxx>``: the entity type (so the model still knows a name
from an e-mail) and six hex digits of an HMAC keyed by the vault key (so it reveals
nothing about the value). Models drop the brackets, change case, turn underscores
into spaces or dashes, or wrap it in quotes; :data:`PATTERN` accepts all of these::

    >>> m = PATTERN.search("Dear person 7F3A2C, ...")
    >>> canonical(m)
    '<PERSON_7f3a2c>'
    >>> could_start("<EMAIL_ADD")
    True
    >>> could_start("Hello")
    False
"""

from __future__ import annotations

import re

from trustlayer.redaction.entities import ENTITY_TYPES

__all__ = ["MAX_LENGTH", "PATTERN", "TAG_LENGTH", "canonical", "could_start", "make"]

TAG_LENGTH = 6
"""Hex digits in a placeholder's tag."""

_OPEN = "<[{"
_CLOSE = ">]}"
_TYPES = sorted(ENTITY_TYPES, key=len, reverse=True)
_TYPE_ALTERNATION = "|".join(t.replace("_", r"[_ \t-]?") for t in _TYPES)

PATTERN = re.compile(
    r"(?:(?:<{1,2}|\[|\{)[ \t]?)?"
    r"(?<![A-Za-z0-9])(?P<type>" + _TYPE_ALTERNATION + r")[_ \t-]?(?P<tag>[0-9a-fA-F]{" + str(TAG_LENGTH) + r"})"
    r"(?![0-9A-Za-z])(?:[ \t]?(?:>{1,2}|\]|\}))?",
    re.IGNORECASE,
)
"""A placeholder as written by us or as rewritten by a model (brackets, case, separators)."""

MAX_LENGTH = 2 + 1 + max(len(t) for t in _TYPES) + 1 + TAG_LENGTH + 1 + 2
"""The most characters a (rewritten) placeholder can span."""

_CANON = {re.sub(r"[^A-Z]", "", t): t for t in ENTITY_TYPES}


def make(entity_type: str, tag: str) -> str:
    """The placeholder for ``entity_type`` with hex ``tag``."""
    return f"<{entity_type}_{tag.lower()}>"


def canonical(match: re.Match[str]) -> str:
    """The placeholder a (possibly rewritten) match stands for, in the form the vault stores."""
    letters = re.sub(r"[^A-Za-z]", "", match.group("type")).upper()
    return make(_CANON.get(letters, letters), match.group("tag"))


def _type_prefix(text: str, name: str) -> int | None:
    """How many characters of ``text`` a placeholder of type ``name`` could account for.

    Returns ``len(text)`` when all of ``text`` is a viable beginning, ``None`` when not.
    """
    j = k = 0
    n = len(text)
    while k < len(name):
        if j == n:
            return n
        if name[k] == "_":
            if text[j] in "_ -\t":
                j += 1
            k += 1
            continue
        if text[j].upper() != name[k]:
            return None
        j += 1
        k += 1
    if j < n and text[j] in "_ -\t":
        j += 1
    digits = 0
    while j < n and digits < TAG_LENGTH and text[j] in "0123456789abcdefABCDEF":
        j += 1
        digits += 1
    if j == n:
        return n
    return None


def could_start(text: str) -> bool:
    """True when ``text`` could be the beginning of a placeholder that is not yet complete."""
    i = 0
    while i < len(text) and i < 2 and text[i] in _OPEN:
        i += 1
    if i < len(text) and text[i] in " \t" and i > 0:
        i += 1
    rest = text[i:]
    if not rest:
        return True
    return any(_type_prefix(rest, name) == len(rest) for name in _TYPES)
