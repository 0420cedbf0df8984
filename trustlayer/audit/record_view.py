"""What the audit log reads from a hop record: identity (key, sequence) and search columns.

``read_record`` verifies the envelope against trusted keys *before* it parses the
record, so every value it returns came from a signature that verified. Verification
uses ``key_id`` and ``sequence`` (replay and deletion checks); the search index uses
the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from trustlayer.errors import SignatureError
from trustlayer.provenance.dsse import open_envelope
from trustlayer.provenance.keys import Keyring

__all__ = ["RecordView", "read_record", "record_digest"]


def record_digest(envelope: bytes) -> str:
    """A record's id: the hex SHA-256 of its exact envelope bytes."""
    return hashlib.sha256(envelope).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordView:
    """The fields of a verified hop record that the log uses."""

    digest: str
    key_id: str
    sequence: int
    conversation_id: str
    sender: str
    recipient: str
    direction: str
    outcome: str
    rule_ids: tuple[str, ...]
    entity_types: tuple[str, ...]
    time: int
    parents: tuple[str, ...]


def _get(doc: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(doc, dict) or name not in doc:
            raise SignatureError(f"record predicate has no field {'.'.join(path)!r}")
        doc = doc[name]
    return doc


def _opt(doc: Any, *path: str, default: Any = None) -> Any:
    try:
        return _get(doc, *path)
    except SignatureError:
        return default


def read_record(envelope: bytes, keyring: Keyring) -> RecordView:
    """Verify ``envelope`` with ``keyring``, then read the fields the log needs.

    Raises ``SignatureError`` for an untrusted key, a bad signature or a malformed record.
    """
    verified = open_envelope(envelope, keyring)
    try:
        statement = json.loads(verified.payload)
    except ValueError as exc:
        raise SignatureError("record payload is not valid JSON") from exc
    predicate = _get(statement, "predicate")
    sequence = _get(predicate, "sequence")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise SignatureError(f"record sequence must be a non-negative integer, found {sequence!r}")
    counts = _opt(predicate, "entity_counts", default={}) or {}
    return RecordView(
        digest=record_digest(envelope),
        key_id=verified.key_id,
        sequence=sequence,
        conversation_id=str(_get(predicate, "conversation_id")),
        sender=str(_opt(predicate, "route", "sender", default="")),
        recipient=str(_opt(predicate, "route", "recipient", default="")),
        direction=str(_opt(predicate, "direction", default="")),
        outcome=str(_opt(predicate, "decision", "outcome", default="") or ""),
        rule_ids=tuple(str(r) for r in _opt(predicate, "decision", "rule_ids", default=()) or ()),
        entity_types=tuple(sorted(str(k) for k in counts)),
        time=int(_opt(predicate, "time", default=0)),
        parents=tuple(str(p) for p in _opt(predicate, "parents", default=()) or ()),
    )
