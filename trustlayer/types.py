"""The core vocabulary: endpoints, messages, routes, findings, decisions, verdicts.

Every stage of the gate speaks in these types::

    >>> from trustlayer.types import Endpoint, Message, Route
    >>> device = Endpoint(id="phone", kind="device", jurisdiction="DE", box="white")
    >>> cloud = Endpoint(id="gpt", kind="cloud", jurisdiction="US")
    >>> msg = Message.from_openai([{"role": "user", "content": "hi"}], conversation_id="c1")
    >>> Route.between(device, cloud).channel
    <Channel.DEVICE_CLOUD: 'device_cloud'>

A ``Message`` addresses each text it holds by a *path* such as ``turns[0].content``,
``turns[2].tool_calls[0].function.arguments`` or ``text``; findings carry the path of
the field they were found in, and ``Message.replace_texts`` swaps field values by path.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Box",
    "Channel",
    "ContentPart",
    "Decision",
    "Endpoint",
    "Finding",
    "FunctionCall",
    "Hop",
    "Kind",
    "Message",
    "Operator",
    "Outcome",
    "Route",
    "ToolCall",
    "Turn",
    "Verdict",
    "VerifyRequirement",
]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


class Kind(StrEnum):
    """Where an endpoint runs."""

    DEVICE = "device"
    EDGE = "edge"
    CLOUD = "cloud"
    AGENT = "agent"


class Box(StrEnum):
    """What an endpoint exposes: ``white`` = local weights and log-probs, ``black`` = text only."""

    WHITE = "white"
    BLACK = "black"


class Channel(StrEnum):
    """The kind of boundary a route crosses."""

    DEVICE_CLOUD = "device_cloud"
    CLOUD_DEVICE = "cloud_device"
    AGENT_AGENT = "agent_agent"


class Endpoint(BaseModel):
    """A place an LLM (or an agent) runs, with the attributes residency policy matches on.

    ``url`` and ``model`` say how to reach an OpenAI-compatible endpoint; ``api_key_env``
    names the environment variable holding its key (the key itself is never stored here).
    ``public_key`` is the base64 raw Ed25519 public key of an agent peer.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: Kind
    jurisdiction: str = Field(description="ISO 3166-1 alpha-2 code, e.g. DE, US; or EU")
    region: str = ""
    attestations: frozenset[str] = frozenset()
    box: Box = Box.BLACK
    url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    public_key: str | None = None
    timeout: float = Field(default=60.0, gt=0)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                f"endpoint id {value!r} must start with a letter or digit and use only "
                "letters, digits and . _ : @ - (at most 128 characters)"
            )
        return value

    @field_validator("jurisdiction")
    @classmethod
    def _upper(cls, value: str) -> str:
        value = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}(-[A-Z0-9]{1,3})?", value):
            raise ValueError(f"jurisdiction {value!r} must be an ISO 3166 code such as DE, US or EU")
        return value

    @property
    def is_local(self) -> bool:
        """True for endpoints on the device itself."""
        return self.kind is Kind.DEVICE


class FunctionCall(BaseModel):
    """The function part of an assistant tool call; ``arguments`` is a JSON string."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str
    arguments: str = ""


class ToolCall(BaseModel):
    """One tool call made by the assistant (OpenAI chat format)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(BaseModel):
    """A text part of multi-part content; any non-text part is rejected (fail closed)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: Literal["text"]
    text: str


class Turn(BaseModel):
    """One chat turn: system, developer, user, assistant (with tool calls) or tool result."""

    model_config = ConfigDict(frozen=True, extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | tuple[ContentPart, ...] | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """The turn as an OpenAI chat message dict, without unset fields."""
        return self.model_dump(mode="json", exclude_none=True)

    def uninspected(self) -> tuple[str, str] | None:
        """The first non-empty field of this turn that no stage reads, as ``(where, name)``; else None.

        ``where`` is ``""`` for the turn itself, or ``.content[j]``, ``.tool_calls[j]`` or
        ``.tool_calls[j].function``. Such a field (a legacy ``function_call``, a ``refusal``,
        reasoning text, an extra key of a part or a tool call) is kept and sent on by
        ``to_openai`` but never inspected, so a caller sending the turn on must refuse it.
        Empty values (``None``, ``""``, ``[]``, ``{}``), as the openai SDK's dumps leave them, pass.
        ``name`` may be free text: show it with ``trustlayer._safe.shown``.
        """
        if not self.model_extra and not self.tool_calls and not isinstance(self.content, tuple):
            return None  # the common turn: nothing else to look at
        models: list[tuple[str, BaseModel]] = [("", self)]
        if isinstance(self.content, tuple):
            models += [(f".content[{j}]", part) for j, part in enumerate(self.content)]
        for j, call in enumerate(self.tool_calls or ()):
            models += [(f".tool_calls[{j}]", call), (f".tool_calls[{j}].function", call.function)]
        for where, model in models:
            for name, value in (model.model_extra or {}).items():
                if value not in (None, "", [], {}):
                    return where, name
        return None


# Built once: json.dumps with non-default options would build a new encoder per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Message(BaseModel):
    """What crosses a boundary: chat turns or plain text, within one conversation.

    Exactly one of ``turns`` and ``text`` is set.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: str = Field(min_length=1, max_length=256)
    turns: tuple[Turn, ...] | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Message:
        if (self.turns is None) == (self.text is None):
            raise ValueError("a message holds exactly one of 'turns' (chat) and 'text' (plain)")
        return self

    @classmethod
    def from_openai(cls, messages: Sequence[Mapping[str, Any]], *, conversation_id: str) -> Message:
        """Build a chat message from OpenAI-style ``messages``."""
        return cls(conversation_id=conversation_id, turns=tuple(Turn.model_validate(m) for m in messages))

    @classmethod
    def from_text(cls, text: str, *, conversation_id: str) -> Message:
        """Build a plain-text message (a completion prompt or an agent payload)."""
        return cls(conversation_id=conversation_id, text=text)

    def to_openai(self) -> list[dict[str, Any]]:
        """The turns as OpenAI chat messages (a plain-text message becomes one user turn)."""
        if self.turns is None:
            return [{"role": "user", "content": self.text}]
        return [t.to_openai() for t in self.turns]

    def texts(self) -> Iterator[tuple[str, str]]:
        """Yield ``(path, value)`` for every text field a stage must inspect.

        Covers plain text, every turn's content (and text parts), ``name`` fields and
        tool-call ``arguments`` (the JSON string as a whole; redaction parses it).
        """
        if self.turns is None:
            yield "text", self.text or ""
            return
        for i, turn in enumerate(self.turns):
            base = f"turns[{i}]"
            if isinstance(turn.content, str):
                yield f"{base}.content", turn.content
            elif turn.content is not None:
                for j, part in enumerate(turn.content):
                    yield f"{base}.content[{j}].text", part.text
            if turn.name is not None:
                yield f"{base}.name", turn.name
            for j, call in enumerate(turn.tool_calls or ()):
                yield f"{base}.tool_calls[{j}].function.arguments", call.function.arguments

    def replace_texts(self, values: Mapping[str, str]) -> Message:
        """Return a copy with the fields at the given paths replaced.

        Raises ``KeyError`` naming the path when a path does not address a text field.
        """
        if not values:
            return self
        known = dict(self.texts())
        for path in values:
            if path not in known:
                raise KeyError(f"message has no text field at {path!r}")
        if self.turns is None:
            return self.model_copy(update={"text": values["text"]})
        turns = list(self.turns)
        for i, turn in enumerate(turns):
            base = f"turns[{i}]"
            update: dict[str, Any] = {}
            if isinstance(turn.content, str) and f"{base}.content" in values:
                update["content"] = values[f"{base}.content"]
            elif isinstance(turn.content, tuple):
                parts = tuple(
                    p.model_copy(update={"text": values[f"{base}.content[{j}].text"]})
                    if f"{base}.content[{j}].text" in values else p
                    for j, p in enumerate(turn.content)
                )
                if parts != turn.content:
                    update["content"] = parts
            if f"{base}.name" in values:
                update["name"] = values[f"{base}.name"]
            if turn.tool_calls:
                calls = []
                for j, call in enumerate(turn.tool_calls):
                    key = f"{base}.tool_calls[{j}].function.arguments"
                    if key in values:
                        call = call.model_copy(update={
                            "function": call.function.model_copy(update={"arguments": values[key]})
                        })
                    calls.append(call)
                update["tool_calls"] = tuple(calls)
            if update:
                turns[i] = turn.model_copy(update=update)
        return self.model_copy(update={"turns": tuple(turns)})

    def canonical_bytes(self) -> bytes:
        """A deterministic serialization of the content, for digests (never logged)."""
        body: Any = self.text if self.turns is None else self.to_openai()
        return _CANONICAL.encode(body).encode()

    def digest(self, salt: bytes = b"") -> str:
        """A hex SHA-256 of the salted canonical content."""
        return hashlib.sha256(salt + self.canonical_bytes()).hexdigest()


class Route(BaseModel):
    """Sender endpoint → recipient endpoint over a channel.

    ``subject_jurisdiction`` is the data subject's jurisdiction for this request, when
    known (overrides the config default for cross-border transfer rules).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sender: Endpoint
    recipient: Endpoint
    channel: Channel
    subject_jurisdiction: str | None = None

    @classmethod
    def between(cls, sender: Endpoint, recipient: Endpoint, *,
                subject_jurisdiction: str | None = None) -> Route:
        """A route whose channel follows from the two endpoints' kinds."""
        if sender.kind is Kind.AGENT and recipient.kind is Kind.AGENT:
            channel = Channel.AGENT_AGENT
        elif sender.kind in (Kind.CLOUD, Kind.EDGE) and recipient.kind is Kind.DEVICE:
            channel = Channel.CLOUD_DEVICE
        elif recipient.kind is Kind.AGENT or sender.kind is Kind.AGENT:
            channel = Channel.AGENT_AGENT
        else:
            channel = Channel.DEVICE_CLOUD
        return cls(sender=sender, recipient=recipient, channel=channel,
                   subject_jurisdiction=subject_jurisdiction)

    def to(self, recipient: Endpoint) -> Route:
        """The same route redirected to another recipient (a reroute)."""
        return Route.between(self.sender, recipient, subject_jurisdiction=self.subject_jurisdiction)


class Finding(BaseModel):
    """One detected span of personal data or a secret, inside the field at ``path``.

    ``validated`` is true when a checksum or format validator confirmed it (Luhn,
    IBAN mod-97, NHS mod-11, ...). A finding never holds the value itself.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    entity_type: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: float = Field(ge=0.0, le=1.0)
    detector: str
    path: str = "text"
    validated: bool = False

    @model_validator(mode="after")
    def _span(self) -> Finding:
        if self.end <= self.start:
            raise ValueError(f"finding span end {self.end} must be after start {self.start}")
        return self


class Outcome(StrEnum):
    """The outcome of a policy decision."""

    ALLOW = "allow"
    TRANSFORM = "transform"
    REROUTE = "reroute"
    BLOCK = "block"


class Operator(StrEnum):
    """What to do with a detected value before it leaves."""

    PSEUDONYMIZE = "pseudonymize"
    MASK = "mask"
    DROP = "drop"
    HASH = "hash"


class VerifyRequirement(BaseModel):
    """Policy's demand that an answer be verified by consensus: ``quorum`` of ``of`` agree."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quorum: int = Field(ge=1)
    of: int = Field(ge=1)
    measure: Literal["exact", "f1", "embedding"] = "exact"
    threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    deadline: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _k_of_n(self) -> VerifyRequirement:
        if self.quorum > self.of:
            raise ValueError(f"verify quorum {self.quorum} is larger than the number of endpoints {self.of}")
        return self


class Decision(BaseModel):
    """The policy outcome for one message on one route.

    ``operators`` maps entity types to what must be done to them before the message
    may go to ``endpoint`` (the recipient, or the reroute target). ``allowed`` lists
    every candidate endpoint the message may go to (after its transform).
    ``reasons`` holds one sentence per deciding rule, without any raw content.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    outcome: Outcome
    endpoint: str
    allowed: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    citations: tuple[str, ...] = ()
    classes: frozenset[str] = frozenset()
    operators: Mapping[str, Operator] = Field(default_factory=dict)
    verify: VerifyRequirement | None = None
    policy_digest: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if self.outcome is Outcome.TRANSFORM and not self.operators:
            raise ValueError("a 'transform' decision must name at least one operator")
        return self


class Verdict(BaseModel):
    """A verifier's outcome for one answer.

    ``outcome`` is ``verified`` when ``quorum`` endpoints agreed, else ``unverified``
    (never a silent pick). ``abstained`` maps endpoint ids to why they gave no answer.
    ``evidence`` holds measure-specific numbers such as white-box log-prob scores.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Literal["verified", "unverified"]
    answer: str | None
    agreement: float = Field(ge=0.0, le=1.0)
    quorum: int = Field(ge=0)
    of: int = Field(ge=0)
    measure: str
    agreeing: tuple[str, ...] = ()
    dissenting: tuple[str, ...] = ()
    abstained: Mapping[str, str] = Field(default_factory=dict)
    answered_by: str | None = None
    evidence: Mapping[str, float] = Field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """True when the quorum was met."""
        return self.outcome == "verified"


_HopDirection = Literal["outbound", "inbound", "block"]
_DIRECTIONS: tuple[str, ...] = get_args(_HopDirection)


@dataclass(slots=True, kw_only=True)
class Hop:
    """What the gate hands the signer for one hop: outbound, inbound or block.

    ``content`` is the canonical bytes of what crossed (or was refused); the signer puts
    only a salted digest of it into the record. It is excluded from ``repr``.

    A plain slotted class rather than a pydantic model: the gate builds two per message
    from parts that are already validated, and validation cost four times the rest of
    the construction. The signer still refuses wrong types and floats when it signs.
    """

    direction: _HopDirection
    route: Route
    conversation_id: str
    content: bytes = field(repr=False)
    decision: Decision | None = None
    entity_counts: Mapping[str, int] = field(default_factory=dict)
    verdict: Verdict | None = None
    parents: tuple[str, ...] = ()
    stage: str | None = None
    reason: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"hop direction must be one of {', '.join(_DIRECTIONS)}, got {self.direction!r}")

