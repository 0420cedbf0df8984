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

from trustlayer.errors import SignatureError
from trustlayer.provenance._json import STATEMENT_MEDIA_TYPE
from trustlayer.provenance.dsse import open_envelope
from trustlayer.provenance.keys import Keyring
from trustlayer.provenance.records import HOP_PREDICATE, Record

__all__ = ["RecordView", "read_record", "record_digest", "record_identity"]


def record_digest(envelope: bytes) -> str:
    """A record's id: the hex SHA-256 of its exact envelope bytes."""
    return hashlib.sha256(envelope).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordView:
    """The fields of a verified hop record that the log uses (``time``: Unix milliseconds)."""

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


def read_record(envelope: bytes, keyring: Keyring) -> RecordView:
    """Verify ``envelope`` with ``keyring``, then read the fields the log needs.

    Raises ``SignatureError`` for an untrusted key, a bad signature or a malformed record
    (``trustlayer.provenance.records.Record.from_envelope`` does both).
    """
    record = Record.from_envelope(envelope, keyring)
    p = record.predicate
    outcome: str
    if p.decision is not None:
        outcome = p.decision.outcome
    else:
        outcome = "block" if p.direction == "block" else ""
    return RecordView(
        digest=record.digest,
        key_id=record.key_id,
        sequence=p.sequence,
        conversation_id=p.conversation_id,
        sender=p.route.sender,
        recipient=p.route.recipient,
        direction=p.direction,
        outcome=outcome,
        rule_ids=tuple(p.decision.rule_ids) if p.decision is not None else (),
        entity_types=tuple(sorted(p.entity_counts)),
        time=p.time,
        parents=tuple(p.parents),
    )


def record_identity(envelope: bytes, keyring: Keyring) -> tuple[str, int]:
    """Verify ``envelope`` and return only (signing key id, sequence): the fast path of ``audit verify``.

    It checks what log integrity rests on: a trusted signature over the exact bytes, a hop
    record, and that the record names the key that signed it. The full record schema is
    validated where records are read for review (``read_record``); skipping it here saves
    about a third of the per-entry cost of verifying a large log.
    """
    verified = open_envelope(envelope, keyring, payload_type=STATEMENT_MEDIA_TYPE)
    try:
        statement = json.loads(verified.payload)
        if statement.get("predicateType") != HOP_PREDICATE:
            raise KeyError("predicateType")
        key_id, sequence = statement["predicate"]["key_id"], statement["predicate"]["sequence"]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SignatureError("signed payload is not a hop record with a key_id and a sequence") from exc
    if key_id != verified.key_id:
        raise SignatureError(f"record names key {str(key_id)[:16]} but is signed by key {verified.key_id[:16]}")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise SignatureError("record sequence is not a positive integer")
    return verified.key_id, sequence
