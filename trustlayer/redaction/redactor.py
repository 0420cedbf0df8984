"""The redaction stage object: detect, transform and restore, over one vault.

``Redactor`` implements the gate's ``Detector``, ``Transformer`` and ``Restorer``
Protocols (``trustlayer.stages``)::

    >>> from trustlayer.redaction import Redactor, Vault
    >>> from trustlayer.types import Message, Operator
    >>> r = Redactor(Vault.open(":memory:", key=bytes(32)), ner=False)
    >>> msg = Message.from_text("Mail ada@example.org please", conversation_id="c1")
    >>> out = r.transform(msg, r.detect(msg), {"EMAIL_ADDRESS": Operator.PSEUDONYMIZE})
    >>> out.text.startswith("Mail <EMAIL_ADDRESS_") and r.restore(out) == msg
    True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from trustlayer.errors import RedactionError, TrustError
from trustlayer.redaction.detector import PiiDetector
from trustlayer.redaction.restore import StreamingRestorer, restore_arguments, restore_text
from trustlayer.redaction.transform import apply_operators
from trustlayer.redaction.vault import Vault
from trustlayer.types import Finding, Message, Operator

if TYPE_CHECKING:
    from trustlayer.config import Config

__all__ = ["Redactor"]


@contextmanager
def _stage(name: str) -> Iterator[None]:
    """Translate any non-trustlayer error to ``RedactionError`` naming only its type (fail closed).

    Third-party messages (spaCy, Presidio, SQLite) can quote the text they choked on, so
    they are not copied; the original stays chained as ``__cause__`` for debugging.
    """
    try:
        yield
    except TrustError:
        raise
    except Exception as exc:
        raise RedactionError(f"{name} failed: {type(exc).__name__}") from exc


class Redactor:
    """Finds personal data and secrets, replaces them as policy says, restores responses.

    ``score_threshold`` drops weaker candidates; ``ner=False`` never loads spaCy (names
    then come from context rules only). The spaCy model loads lazily, on the first
    detection that needs a NER entity type, once per process.
    """

    keeps_deadline = True
    """Its waits (the spaCy pipeline's and model's locks, the vault's lock and database lock) end by the
    gate stage's deadline (``trustlayer.deadline``); loading the model and NER itself are compute."""

    def __init__(self, vault: Vault, *, score_threshold: float = 0.5, ner: bool = True) -> None:
        self.vault = vault
        self._detector = PiiDetector(score_threshold=score_threshold, ner=ner)

    @classmethod
    def from_config(cls, cfg: Config) -> Redactor:
        """A redactor over the vault and detection settings of ``cfg``."""
        return cls(Vault.from_config(cfg), score_threshold=cfg.redaction.score_threshold, ner=cfg.redaction.ner)

    @property
    def ner(self) -> bool:
        """Whether spaCy NER is used for names and places."""
        return self._detector.ner

    def warm(self) -> None:
        """Load what detection loads on first use (the NER model when enabled, the public-suffix table).

        Runs one detection on a made-up sentence; nothing is stored in the vault.
        """
        self._detector.detect(Message.from_text("Write to Jane Doe at jane.doe@example.com.",
                                                conversation_id="trustlayer-warm-up"))

    # -- Detector ----------------------------------------------------------------------
    def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
        """Findings in every text field; ``entities`` limits the search (only pattern types = no NER).

        ``None`` searches every type except the opt-in ones (``DATE_TIME``, ``NRP``).
        Raises ``RedactionError`` for unknown entity types, invalid or too deeply nested
        tool-call JSON and messages above ``MAX_MESSAGE_CHARS``.
        """
        with _stage("detection"):
            return self._detector.detect(message, entities=entities)

    # -- Transformer -------------------------------------------------------------------
    def transform(self, message: Message, findings: Sequence[Finding],
                  operators: Mapping[str, Operator]) -> Message:
        """The message as it may leave: each finding whose type has an operator is replaced."""
        with _stage("transform"):
            return apply_operators(self.vault, message, findings, operators)

    # -- Restorer ----------------------------------------------------------------------
    def restore(self, message: Message) -> Message:
        """The response with this conversation's placeholders replaced by their values."""
        updates: dict[str, str] = {}
        with _stage("restore"):
            for path, text in message.texts():
                if path.endswith(".function.arguments"):
                    restored = restore_arguments(self.vault, message.conversation_id, text)
                else:
                    restored = restore_text(self.vault, message.conversation_id, text)
                if restored != text:
                    updates[path] = restored
            return message.replace_texts(updates)

    def restore_text(self, text: str, conversation_id: str) -> str:
        """``text`` with ``conversation_id``'s placeholders replaced by their values."""
        return restore_text(self.vault, conversation_id, text)

    def stream(self, conversation_id: str) -> StreamingRestorer:
        """A restorer for one streamed response of ``conversation_id``."""
        return StreamingRestorer(self.vault, conversation_id)

    def redact(self, message: Message, operators: Mapping[str, Operator] | None = None, *,
               entities: frozenset[str] | None = None) -> tuple[Message, list[Finding]]:
        """Detect and transform in one call; without ``operators`` every finding is pseudonymized."""
        findings = self.detect(message, entities=entities)
        if operators is None:
            operators = {f.entity_type: Operator.PSEUDONYMIZE for f in findings}
        return self.transform(message, findings, operators), findings
