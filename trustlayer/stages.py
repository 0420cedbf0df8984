"""The small Protocols the gate composes, one per stage of the path.

The gate never knows which implementation it holds; the real ones live in
``trustlayer.redaction`` (detect, transform, restore), ``trustlayer.policy`` (decide),
``trustlayer.provenance`` (sign, authenticate), ``trustlayer.audit`` (record) and
``trustlayer.verifiers`` (verify). Tests define their own small stages.

A stage may also offer an ``<method>_async`` twin (for example ``record_async``);
the async gate awaits it when present and otherwise runs the sync method in a
worker thread.

A stage that bounds every wait it makes by the gate's deadline for it (see
``trustlayer.deadline``) declares ``keeps_deadline = True``. When all of a gate's
stages do (the built-in ones do), sync paths run in the caller's thread; otherwise
each path runs on a worker thread that the caller abandons when a stage hangs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from trustlayer.types import Decision, Endpoint, Finding, Hop, Message, Operator, Route, Verdict, VerifyRequirement

__all__ = [
    "Authenticator",
    "Decider",
    "Detector",
    "PeerRecord",
    "Recorder",
    "Restorer",
    "Signed",
    "Signer",
    "StreamRestorer",
    "Transformer",
    "Verifier",
]


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed record: the exact DSSE envelope bytes and the record's digest (its id)."""

    envelope: bytes = field(repr=False)
    digest: str


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """What authenticating a peer's signed record established.

    ``classes`` are the data classes the peer's message carried (for sticky taint);
    ``digest`` is the peer record's digest, which becomes a parent of ours.
    """

    sender: str
    key_id: str
    conversation_id: str
    digest: str
    sequence: int
    classes: frozenset[str] = frozenset()


@runtime_checkable
class Detector(Protocol):
    """Finds personal data and secrets in every text field of a message."""

    def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> Sequence[Finding]:
        """Return findings; ``entities`` limits the search (``None`` = every entity type)."""
        ...


@runtime_checkable
class Decider(Protocol):
    """Residency policy: decides where a message may go and in what form."""

    def entities_for(self, route: Route) -> frozenset[str] | None:
        """Entity types policy cares about on this route (``None`` = all), for detection's fast path."""
        ...

    def decide(
        self,
        findings: Sequence[Finding],
        route: Route,
        *,
        taint: frozenset[str] = frozenset(),
        applied: Mapping[str, Operator] | None = None,
        candidates: Sequence[Endpoint] = (),
    ) -> Decision:
        """Decide for ``route``; ``applied`` is the transform already applied (the second decision)."""
        ...


@runtime_checkable
class Transformer(Protocol):
    """Applies a decision's operators (pseudonymize, mask, drop, hash) to a message."""

    def transform(self, message: Message, findings: Sequence[Finding],
                  operators: Mapping[str, Operator]) -> Message:
        """Return the message as it may leave."""
        ...


@runtime_checkable
class StreamRestorer(Protocol):
    """Restores placeholders in a streamed response, chunk by chunk."""

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the text that is safe to emit now."""
        ...

    def flush(self) -> str:
        """Return whatever was held back, at the end of the stream."""
        ...


@runtime_checkable
class Restorer(Protocol):
    """Puts original values back in place of this conversation's placeholders."""

    def restore(self, message: Message) -> Message:
        """Restore a whole response."""
        ...

    def stream(self, conversation_id: str) -> StreamRestorer:
        """A restorer for one streamed response of ``conversation_id``."""
        ...


@runtime_checkable
class Signer(Protocol):
    """Turns a hop into a signed provenance record (in-toto Statement in a DSSE envelope)."""

    def sign(self, hop: Hop) -> Signed:
        """Sign the record of ``hop``."""
        ...


@runtime_checkable
class Recorder(Protocol):
    """Appends signed envelopes to the tamper-evident audit log."""

    def record(self, envelope: bytes) -> int:
        """Append and return the entry's index in the log, once it is durable."""
        ...


@runtime_checkable
class Authenticator(Protocol):
    """Checks a peer's signed record before its content is used."""

    def authenticate(self, envelope: bytes, *, audience: str, content: bytes) -> PeerRecord:
        """Verify signature, trusted key, audience, content digest, nonce and time; raise SignatureError."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """Checks an answer, e.g. by consensus across endpoints."""

    def verify(self, request: Message, response: Message, route: Route,
               requirement: VerifyRequirement) -> Verdict:
        """Return the verdict for ``response`` to ``request``."""
        ...
