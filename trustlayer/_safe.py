"""Naming caller-supplied values in errors and block records without ever showing personal data.

Field names, endpoint ids and query parameter names usually are identifiers; when a caller
puts free text there (an e-mail as a JSON key, a name in a URL), the text itself must not
reach an exception or the audit log.
"""

from __future__ import annotations

import re

__all__ = ["shown"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")


def shown(value: object) -> str:
    """``repr(value)`` when it looks like an identifier, otherwise a note that it is withheld."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return repr(value)
    return "(a name that is not shown)"
