"""What the audit log reads from a signed record: identity (key, sequence) and search columns.

Every entry is an in-toto Statement v1 in a DSSE envelope whose predicate names the
signing key (``key_id``) and that key's ``sequence`` number. Hop records
(``https://trustlayer.dev/hop/v1``) are read in full through
``trustlayer.provenance.records.Record``; other statements written to the log by
trustlayer (e.g. ``https://trustlayer.dev/router-training/v1``) are accepted with the
same identity checks and shown by their ``event`` name.

Both readers verify the envelope against trusted keys *before* they parse it, so every
value returned came from a signature that verified.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from trustlayer.errors import SignatureError
from trustlayer.provenance._json import STATEMENT_MEDIA_TYPE, STATEMENT_TYPE
from trustlayer.provenance.dsse import Verified, open_envelope
from trustlayer.provenance.keys import Keyring
from trustlayer.provenance.records import HOP_PREDICATE, Record

__all__ = ["RecordView", "read_record", "record_digest", "record_identity"]


def record_digest(envelope: bytes) -> str:
    """A record's id: the hex SHA-256 of its exact envelope bytes."""
    return hashlib.sha256(envelope).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordView:
    """The fields of a verified record that the log uses (``time``: Unix milliseconds).

    ``predicate_type`` tells hop records from other statements; for those, ``direction``
    holds the statement's ``event`` name and the route and decision fields are empty.
    """

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
    predicate_type: str = HOP_PREDICATE


def _statement(verified: Verified) -> tuple[str, dict[str, Any], str, int]:
    """(predicateType, predicate, key id, sequence) of a verified in-toto statement, checked."""
    try:
        statement = json.loads(verified.payload)
        if statement.get("_type") != STATEMENT_TYPE:
            raise KeyError("_type")
        predicate_type, predicate = statement["predicateType"], statement["predicate"]
        key_id, sequence = predicate["key_id"], predicate["sequence"]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SignatureError("signed payload is not an in-toto statement whose predicate has a key_id and a "
                             "sequence") from exc
    if key_id != verified.key_id:
        raise SignatureError(f"record names key {str(key_id)[:16]} but is signed by key {verified.key_id[:16]}")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise SignatureError("record sequence is not a positive integer")
    if not isinstance(predicate_type, str):
        raise SignatureError("record predicateType is not a string")
    return predicate_type, predicate, verified.key_id, sequence


def record_identity(envelope: bytes, keyring: Keyring) -> tuple[str, int]:
    """Verify ``envelope`` and return only (signing key id, sequence): the fast path of ``audit verify``.

    It checks what log integrity rests on: a trusted signature over the exact bytes, an
    in-toto statement, and that the record names the key that signed it. The full hop
    schema is validated where records are read for review (``read_record``); skipping it
    here saves about a third of the per-entry cost of verifying a large log.
    """
    _, _, key_id, sequence = _statement(open_envelope(envelope, keyring, payload_type=STATEMENT_MEDIA_TYPE))
    return key_id, sequence


def read_record(envelope: bytes, keyring: Keyring) -> RecordView:
    """Verify ``envelope`` with ``keyring``, then read the fields the log needs.

    Raises ``SignatureError`` for an untrusted key, a bad signature or a malformed record.
    """
    verified = open_envelope(envelope, keyring, payload_type=STATEMENT_MEDIA_TYPE)
    predicate_type, predicate, key_id, sequence = _statement(verified)
    if predicate_type != HOP_PREDICATE:
        return _other(envelope, verified, predicate_type, predicate, sequence)
    record = Record.from_verified(envelope, verified)
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


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _other(envelope: bytes, verified: Verified, predicate_type: str, predicate: dict[str, Any],
           sequence: int) -> RecordView:
    when = predicate.get("time")
    parents = predicate.get("parents")
    return RecordView(
        digest=record_digest(envelope),
        key_id=verified.key_id,
        sequence=sequence,
        conversation_id=_text(predicate.get("conversation_id"), "-"),
        sender=verified.owner or verified.key_id[:16],
        recipient="",
        direction=_text(predicate.get("event"), _kind_of(predicate_type)),
        outcome="",
        rule_ids=(),
        entity_types=(),
        time=when if isinstance(when, int) and not isinstance(when, bool) else 0,
        parents=tuple(p for p in parents if isinstance(p, str)) if isinstance(parents, list) else (),
        predicate_type=predicate_type,
    )


def _kind_of(predicate_type: str) -> str:
    """The kind named in a predicate type URI (``.../rotation/v1`` -> ``rotation``); the whole value otherwise."""
    parts = predicate_type.rstrip("/").rsplit("/", 2)
    return parts[-2] if len(parts) > 2 else predicate_type or "-"
