"""The signed provenance record of one hop: an in-toto Statement v1 in a DSSE envelope.

    >>> from trustlayer.provenance.records import Record
    >>> record = Record.from_envelope(envelope_bytes, keyring)    # doctest: +SKIP
    >>> record.predicate.route.recipient, record.predicate.sequence    # doctest: +SKIP
    ('gpt', 17)

A ``Record`` exists only for an envelope whose signature verified with a trusted key
and whose payload then parsed against the schema below: valid by construction.

The statement (payloadType ``application/vnd.in-toto+json``)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "content", "digest": {"sha256": SHA-256(salt || content)}},
                 {"name": "transmitted", "digest": {"sha256": SHA-256(nonce || content)}}],
     "predicateType": "https://trustlayer.dev/hop/v1",
     "predicate": {"direction", "route": {"sender", "recipient", "channel"}, "model",
                   "decision": {"id", "outcome", "endpoint", "rule_ids", "policy_digest",
                                "classes", "operators"},
                   "entity_counts": {ENTITY_TYPE: count}, "verdict": {..., "agreement_permille"},
                   "parents": [record digests], "conversation_id", "key_id", "sequence",
                   "nonce", "time", "block": {"stage", "reason"}}}

**Digests, never values.** ``content`` is salted with the deployment's secret salt
(``trustlayer.provenance.salt``), so a reader of the log cannot confirm a guess of the
content. The ``transmitted`` subject is only present on ``agent_agent`` hops that crossed
(not on blocks): it lets the *receiving* agent, which holds no salt, check that the content
it received is the content the sender signed. It is keyed with the record's nonce, so no
table of precomputed hashes applies across records, and it covers what crossed, which the
gate has already transformed (placeholders instead of personal data) and which the
recipient sees anyway. The conversation id, endpoint ids, rule ids, entity types and
counts appear in clear: they must not themselves be personal data.

**No floats.** Agreement is signed as an integer per-mille; verifier evidence is omitted.
``time`` is an integer: Unix time in **milliseconds** (UTC).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import index
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trustlayer.errors import SignatureError
from trustlayer.provenance import _json
from trustlayer.provenance.dsse import Verified, open_envelope
from trustlayer.provenance.keys import Keyring
from trustlayer.types import Channel, Decision, Hop, Verdict

__all__ = [
    "HOP_PREDICATE",
    "BlockSummary",
    "DecisionSummary",
    "HopPredicate",
    "Record",
    "RouteSummary",
    "Statement",
    "Subject",
    "VerdictSummary",
    "build_statement",
    "from_millis",
    "to_millis",
    "transmitted_digest",
]

HOP_PREDICATE = "https://trustlayer.dev/hop/v1"
"""The predicateType of a hop record."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_millis(when: datetime) -> int:
    """An aware datetime as integer Unix milliseconds: the time format of records."""
    return (when.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def from_millis(millis: int) -> datetime:
    """Integer Unix milliseconds as an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=millis)


def transmitted_digest(nonce: str, content: bytes) -> str:
    """SHA-256 of the nonce bytes followed by the content: the receiver-checkable digest."""
    h = hashlib.sha256(bytes.fromhex(nonce))
    h.update(content)
    return h.hexdigest()


class _Strict(BaseModel):
    # strict: no coercion of "5" to 5 or true to 1 in signed data; forbid: no unknown fields.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Subject(_Strict):
    """An in-toto ResourceDescriptor: a name and a digest set (here ``sha256`` only)."""

    name: str = Field(min_length=1, max_length=256)
    digest: Mapping[str, str]

    @field_validator("digest")
    @classmethod
    def _sha256(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        if set(value) != {"sha256"} or not _HEX64.match(value["sha256"]):
            raise ValueError("digest must be {'sha256': <64 lowercase hex>}")
        return value


class RouteSummary(_Strict):
    """Who sent to whom, over which kind of boundary."""

    sender: str
    recipient: str
    channel: Literal["device_cloud", "cloud_device", "agent_agent"]


class DecisionSummary(_Strict):
    """The policy decision of the hop, without reasons text or findings."""

    id: str
    outcome: Literal["allow", "transform", "reroute", "block"]
    endpoint: str
    rule_ids: tuple[str, ...] = ()
    policy_digest: str = ""
    classes: tuple[str, ...] = ()
    operators: Mapping[str, str] = Field(default_factory=dict)


class VerdictSummary(_Strict):
    """The verifier's verdict, with agreement as an integer per-mille (no floats)."""

    outcome: Literal["verified", "unverified"]
    agreement_permille: int = Field(ge=0, le=1000)
    quorum: int = Field(ge=0)
    of: int = Field(ge=0)
    measure: str
    agreeing: tuple[str, ...] = ()
    dissenting: tuple[str, ...] = ()
    abstained: tuple[str, ...] = ()
    answered_by: str | None = None


class BlockSummary(_Strict):
    """Where and why the gate blocked (a sentence without raw content)."""

    stage: str
    reason: str


class HopPredicate(_Strict):
    """The trustlayer hop predicate (``https://trustlayer.dev/hop/v1``)."""

    direction: Literal["outbound", "inbound", "block"]
    route: RouteSummary
    model: str | None = None
    decision: DecisionSummary | None = None
    entity_counts: Mapping[str, int] = Field(default_factory=dict)
    verdict: VerdictSummary | None = None
    parents: tuple[str, ...] = ()
    conversation_id: str = Field(min_length=1)
    key_id: str
    sequence: int = Field(ge=1)
    nonce: str
    time: int = Field(ge=0, description="Unix time in milliseconds")
    block: BlockSummary | None = None

    @field_validator("parents")
    @classmethod
    def _parents(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for p in value:
            if not _HEX64.match(p):
                raise ValueError("each parent must be a record digest (64 lowercase hex)")
        return value

    @field_validator("entity_counts")
    @classmethod
    def _counts(cls, value: Mapping[str, int]) -> Mapping[str, int]:
        if any(n < 0 for n in value.values()):
            raise ValueError("entity counts must not be negative")
        return value

    @field_validator("key_id")
    @classmethod
    def _key_id(cls, value: str) -> str:
        if not _HEX64.match(value):
            raise ValueError("key_id must be 64 lowercase hex")
        return value

    @field_validator("nonce")
    @classmethod
    def _nonce(cls, value: str) -> str:
        if not _HEX32.match(value):
            raise ValueError("nonce must be 32 lowercase hex (16 random bytes)")
        return value

    @model_validator(mode="after")
    def _block(self) -> HopPredicate:
        if (self.direction == "block") != (self.block is not None):
            raise ValueError("'block' is required exactly when direction is 'block'")
        return self


class Statement(_Strict):
    """An in-toto Statement v1 whose predicate is a trustlayer hop."""

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: tuple[Subject, ...] = Field(min_length=1)
    predicate_type: Literal["https://trustlayer.dev/hop/v1"] = Field(alias="predicateType")
    predicate: HopPredicate

    def subject_digest(self, name: str) -> str | None:
        """The sha256 of the subject called ``name`` (``content`` or ``transmitted``), if present."""
        for s in self.subject:
            if s.name == name:
                return s.digest["sha256"]
        return None


# No floats by construction: build_statement copies only fields that the (validated, frozen)
# pydantic models type as str, StrEnum (a str subclass, encoded as its value), tuples/sets
# of str, or int; ints pass through
# operator.index, which raises TypeError for a float instead of truncating it; the one
# float (agreement) becomes an integer per-mille. tests/provenance asserts the result.


def _decision(d: Decision | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "id": d.id, "outcome": d.outcome, "endpoint": d.endpoint, "rule_ids": list(d.rule_ids),
        "policy_digest": d.policy_digest, "classes": sorted(d.classes),
        "operators": dict(sorted(d.operators.items())),
    }


def _verdict(v: Verdict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {
        "outcome": v.outcome, "agreement_permille": round(v.agreement * 1000), "quorum": index(v.quorum),
        "of": index(v.of), "measure": v.measure, "agreeing": list(v.agreeing), "dissenting": list(v.dissenting),
        "abstained": sorted(v.abstained), "answered_by": v.answered_by,
    }


def build_statement(hop: Hop, *, salt: bytes, key_id: str, sequence: int, nonce: str,
                    time: int) -> dict[str, Any]:
    """The statement for ``hop`` as a JSON-ready dict; only digests of ``hop.content`` enter it."""
    salted = hashlib.sha256(salt)
    salted.update(hop.content)
    subject = [{"name": "content", "digest": {"sha256": salted.hexdigest()}}]
    if hop.route.channel is Channel.AGENT_AGENT and hop.direction != "block":
        subject.append({"name": "transmitted", "digest": {"sha256": transmitted_digest(nonce, hop.content)}})
    route = hop.route
    predicate: dict[str, Any] = {
        "direction": hop.direction,
        "route": {"sender": route.sender.id, "recipient": route.recipient.id, "channel": route.channel},
        "model": hop.model,
        "decision": _decision(hop.decision),
        "entity_counts": {k: index(n) for k, n in sorted(hop.entity_counts.items())},
        "verdict": _verdict(hop.verdict),
        "parents": list(hop.parents),
        "conversation_id": hop.conversation_id,
        "key_id": key_id,
        "sequence": index(sequence),
        "nonce": nonce,
        "time": index(time),
        "block": None,
    }
    if hop.direction == "block":
        predicate["block"] = {"stage": hop.stage or "unknown", "reason": hop.reason or ""}
    return {"_type": _json.STATEMENT_TYPE, "subject": subject, "predicateType": HOP_PREDICATE,
            "predicate": predicate}


def _validation_reason(exc: ValidationError) -> str:
    # Name the field and the rule only: pydantic's str() would echo the (signed) input value.
    err = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{where}: {err['msg']}"


@dataclass(frozen=True, slots=True)
class Record:
    """A verified hop record: the statement, the exact envelope bytes, their digest and the signer."""

    statement: Statement
    envelope: bytes
    digest: str
    key_id: str
    owner: str | None

    @property
    def predicate(self) -> HopPredicate:
        """The hop predicate."""
        return self.statement.predicate

    @property
    def time(self) -> datetime:
        """The signed time as an aware UTC datetime."""
        return from_millis(self.predicate.time)

    @classmethod
    def from_envelope(cls, envelope: bytes, keyring: Keyring) -> Record:
        """Verify ``envelope`` with ``keyring``, then parse it; ``SignatureError`` saying why not."""
        return cls.from_verified(envelope, open_envelope(envelope, keyring, payload_type=_json.STATEMENT_MEDIA_TYPE))

    @classmethod
    def from_verified(cls, envelope: bytes, verified: Verified) -> Record:
        """Parse the payload of an envelope that ``open_envelope`` already verified."""
        doc = _json.loads(verified.payload, "record statement")
        if doc.get("predicateType") != HOP_PREDICATE:
            raise SignatureError(f"not a hop record: predicateType is {str(doc.get('predicateType'))[:80]!r}")
        try:
            # JSON-mode validation: strict types, arrays as tuples (loads above refused floats).
            statement = Statement.model_validate_json(verified.payload)
        except ValidationError as exc:
            raise SignatureError(f"record statement is invalid at {_validation_reason(exc)}") from exc
        if statement.predicate.key_id != verified.key_id:
            raise SignatureError(f"record names key {statement.predicate.key_id[:16]} but is signed by "
                                 f"key {verified.key_id[:16]}")
        return cls(statement, bytes(envelope), hashlib.sha256(envelope).hexdigest(), verified.key_id,
                   verified.owner)
