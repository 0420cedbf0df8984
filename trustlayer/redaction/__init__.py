"""Redaction: find personal data and secrets, pseudonymize reversibly, restore responses.

    >>> from trustlayer.redaction import Redactor, Vault          # doctest: +SKIP
    >>> vault = Vault.open("vault.db", key=bytes(32))                # doctest: +SKIP
    >>> redactor = Redactor(vault)                                # doctest: +SKIP
    >>> findings = redactor.detect(message)                       # doctest: +SKIP

``ENTITY_TYPES`` and ``PATTERN_ENTITY_TYPES`` import without loading Presidio or spaCy;
``Redactor`` and ``Vault`` are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trustlayer.redaction.entities import (
    CREDENTIAL_ENTITY_TYPES,
    DEFAULT_ENTITY_TYPES,
    DESCRIPTIONS,
    ENTITY_TYPES,
    NER_ENTITY_TYPES,
    OPT_IN_ENTITY_TYPES,
    PATTERN_ENTITY_TYPES,
    VALIDATED_ENTITY_TYPES,
)

if TYPE_CHECKING:
    from trustlayer.redaction.redactor import Redactor
    from trustlayer.redaction.vault import Vault

__all__ = [
    "CREDENTIAL_ENTITY_TYPES",
    "DEFAULT_ENTITY_TYPES",
    "DESCRIPTIONS",
    "ENTITY_TYPES",
    "NER_ENTITY_TYPES",
    "OPT_IN_ENTITY_TYPES",
    "PATTERN_ENTITY_TYPES",
    "Redactor",
    "VALIDATED_ENTITY_TYPES",
    "Vault",
]

_LAZY = {"Redactor": "trustlayer.redaction.redactor", "Vault": "trustlayer.redaction.vault"}


def __getattr__(name: str) -> Any:
    # PEP 562: import the heavy parts (Presidio, cryptography) only when used.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trustlayer.redaction' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
