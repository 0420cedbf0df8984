"""The policy file format (version 1), as pydantic models with ``extra="forbid"``.

A policy declares data classes (named sets of entity types), jurisdiction groups,
rules that forbid or permit a destination when classes are present, and embedded
test cases::

    version: 1
    name: eu-gdpr
    default: permit
    jurisdictions: {eea: [EU, DE, FR], adequacy: [CH, GB, JP]}
    classes:
      eu_personal: {entities: [PERSON, EMAIL_ADDRESS], cite: "GDPR Art. 4(1)"}
    rules:
      - id: eu-transfer
        effect: forbid
        when:
          classes: [eu_personal]
          subject: {in: [eea]}
          to: {jurisdiction: {not_in: [eea, adequacy]}}
        obligations: {pseudonymize: [eu_personal]}
        cite: "GDPR Art. 44"

Reference:

- ``default``: ``permit`` or ``forbid``, the effect when no rule fires.
- ``subject_jurisdiction``: the data subject's jurisdiction when neither the config
  nor the request gives one. An unknown subject makes ``subject`` conditions hold for
  forbids and fail for permits (fail closed).
- ``jurisdictions``: named groups of ISO 3166 codes; a subdivision (``US-CA``) is
  inside its country (``US``). Quote ``"NO"`` (YAML reads a bare NO as false).
- ``classes``: ``name: {entities: [...], cite, description}``; entity types must be
  ones a detector emits (``trustlayer.redaction.entities.ENTITY_TYPES``).
- ``rules[]``: ``id``, ``effect`` (permit / forbid), ``cite``, optional ``reason``, and
  ``when``: ``classes`` (any of them present; ``match: all`` for every one), ``to`` and
  ``from`` (``kind``, ``jurisdiction`` / ``region`` / ``id`` as a list or
  ``{in: [...]}`` / ``{not_in: [...]}``, ``box``, ``has`` = holds all these
  attestations, ``lacks`` = misses at least one), ``channel``, ``subject``.
  ``obligations`` (forbid only, except ``verify``): ``pseudonymize`` / ``mask`` /
  ``hash`` / ``drop`` (lists of classes; the transform cures the forbid), or
  ``route_local: true`` (never cured by a transform: reroute to a device endpoint);
  ``verify: {quorum, of, measure}`` demands consensus verification of the answer.
  Forbid overrides permit.
- ``endpoints``: example endpoints for the embedded tests and ``policy explain``.
- ``tests[]``: ``name``, ``findings`` (entity types) or ``text``, ``to``, optional
  ``from``, ``candidates``, ``taint``, ``subject``, and ``expect`` (``outcome`` and any
  of ``endpoint``, ``rules``, ``operators``, ``allowed``, ``classes``,
  ``after_transform``).

Cross-references (undeclared classes, unknown entity types, duplicate rule ids) are
checked by the compiler, which knows the lines they are on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trustlayer._yaml import LocatedError
from trustlayer.types import Channel, Endpoint, Kind, Operator, Outcome, VerifyRequirement

__all__ = [
    "AttrMatch",
    "CaseExpect",
    "ClassSpec",
    "Conditions",
    "Destination",
    "Obligations",
    "PolicyCase",
    "PolicyFile",
    "Rule",
]

NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
CODE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
RESERVED_RULE_IDS = frozenset({"default"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_bools(values: Any, *loc: str | int) -> Any:
    """YAML 1.1 reads bare NO, no, off, yes as booleans; say so instead of 'expected a string'."""
    if isinstance(values, list | tuple):
        for i, v in enumerate(values):
            if isinstance(v, bool):
                raise LocatedError((*loc, i), f"found the boolean {v}: YAML reads a bare NO/no/off/yes/on as a "
                                   "boolean; quote the code, e.g. \"NO\" for Norway")
    return values


class AttrMatch(_Model):
    """A set test on one attribute: the value is ``in`` the list, or ``not_in`` it.

    In a file it may also be written as a bare list (``in``) or a single value.
    """

    in_: tuple[str, ...] | None = Field(default=None, alias="in")
    not_in: tuple[str, ...] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"in": [data]}
        if isinstance(data, list | tuple):
            return {"in": list(_no_bools(data))}
        if isinstance(data, dict):
            for key in ("in", "not_in"):
                _no_bools(data.get(key), key)
        return data

    @model_validator(mode="after")
    def _one(self) -> AttrMatch:
        if (self.in_ is None) == (self.not_in is None):
            raise ValueError("give exactly one of 'in' and 'not_in'")
        if not (self.in_ or self.not_in):
            raise ValueError("the list of values is empty")
        return self

    @property
    def values(self) -> tuple[str, ...]:
        """The listed values, whichever test they belong to."""
        return self.in_ if self.in_ is not None else (self.not_in or ())

    @property
    def negated(self) -> bool:
        """True for a ``not_in`` test."""
        return self.not_in is not None


class Destination(_Model):
    """Conditions on an endpoint's attributes (all must hold)."""

    kind: tuple[Kind, ...] | None = None
    jurisdiction: AttrMatch | None = None
    region: AttrMatch | None = None
    box: Literal["white", "black"] | None = None
    has: tuple[str, ...] = Field(default=(), description="attestations the endpoint must all hold")
    lacks: tuple[str, ...] = Field(default=(), description="attestations of which at least one is missing")
    id: AttrMatch | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("jurisdiction", mode="after")
    @classmethod
    def _codes(cls, value: AttrMatch | None) -> AttrMatch | None:
        if value is not None:
            for v in value.values:
                if not (CODE.match(v) or NAME.match(v)):
                    raise ValueError(f"jurisdiction {v!r} must be an ISO 3166 code such as DE or US-CA, "
                                     "or the name of a jurisdiction group (lower case)")
        return value


class Conditions(_Model):
    """When a rule fires: every given condition must hold."""

    classes: tuple[str, ...] = Field(default=(), description="data classes, any of which is present")
    match: Literal["any", "all"] = "any"
    to: Destination | None = None
    from_: Destination | None = Field(default=None, alias="from")
    channel: tuple[Channel, ...] | None = None
    subject: AttrMatch | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("channel", mode="before")
    @classmethod
    def _channel_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Obligations(_Model):
    """What a firing rule demands: transforms per class, a reroute to the device, verification."""

    pseudonymize: tuple[str, ...] = ()
    mask: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    route_local: bool = False
    verify: VerifyRequirement | None = None

    def transforms(self) -> dict[str, Operator]:
        """Class name -> operator this obligation asks for."""
        out: dict[str, Operator] = {}
        for op in (Operator.MASK, Operator.PSEUDONYMIZE, Operator.HASH, Operator.DROP):
            for cls in getattr(self, op.value):
                out[cls] = op
        return out


class Rule(_Model):
    """One rule: an id, an effect, conditions, obligations and the text it cites."""

    id: str
    effect: Literal["permit", "forbid"]
    when: Conditions = Conditions()
    obligations: Obligations = Obligations()
    cite: str = Field(min_length=1)
    reason: str | None = Field(default=None, description="the sentence that explains the rule")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError(f"rule id {value!r} must be lower case letters, digits, '.', '_' or '-'")
        if value in RESERVED_RULE_IDS:
            raise ValueError(f"rule id {value!r} is reserved for the policy's default effect")
        return value

    @model_validator(mode="after")
    def _obligations_fit(self) -> Rule:
        ob = self.obligations
        if self.effect == "permit" and (ob.transforms() or ob.route_local):
            raise LocatedError(("obligations",), f"rule {self.id!r} is a permit; only a forbid can demand a "
                               "transform or 'route_local' (a permit may only demand 'verify')")
        if ob.route_local and ob.transforms():
            raise LocatedError(("obligations",), f"rule {self.id!r} demands both 'route_local' and a transform; "
                               "a rerouted message stays raw on the device, so give one or the other")
        return self


class ClassSpec(_Model):
    """A data class: the entity types it is made of, and what defines it."""

    entities: tuple[str, ...] = Field(min_length=1)
    cite: str | None = None
    description: str | None = None


class CaseExpect(_Model):
    """What an embedded test case expects of the decision (only given fields are checked)."""

    outcome: Outcome
    endpoint: str | None = None
    rules: tuple[str, ...] | None = Field(default=None, description="rule ids that must be among the deciding")
    operators: Mapping[str, Operator] | None = None
    allowed: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    after_transform: Outcome | None = Field(default=None,
                                            description="outcome of the second decision, with the transform applied")


class PolicyCase(_Model):
    """An embedded test: entity types found (or text to detect), a destination, the expected outcome."""

    name: str = Field(min_length=1)
    findings: tuple[str, ...] | None = None
    text: str | None = None
    to: str
    from_: str | None = Field(default=None, alias="from")
    candidates: tuple[str, ...] = ()
    taint: tuple[str, ...] = ()
    subject: str | None = None
    expect: CaseExpect

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _input(self) -> PolicyCase:
        if (self.findings is None) == (self.text is None):
            raise LocatedError((), "a test case gives exactly one of 'findings' (entity types) and 'text'")
        return self


class PolicyFile(_Model):
    """A whole policy file."""

    version: Literal[1]
    name: str = Field(min_length=1)
    description: str | None = None
    default: Literal["permit", "forbid"]
    subject_jurisdiction: str | None = None
    jurisdictions: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)
    classes: Mapping[str, ClassSpec] = Field(min_length=1)
    endpoints: tuple[Endpoint, ...] = ()
    rules: tuple[Rule, ...] = ()
    tests: tuple[PolicyCase, ...] = ()

    @field_validator("jurisdictions", mode="before")
    @classmethod
    def _group_bools(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, codes in value.items():
                _no_bools(codes, name)
        return value

    @field_validator("subject_jurisdiction")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        if value is not None and not CODE.match(value):
            raise ValueError(f"subject_jurisdiction {value!r} must be an ISO 3166 code such as DE")
        return value
