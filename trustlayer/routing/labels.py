"""Labels from the system itself: the audit log's verdicts joined with the device's feature journal.

    >>> from trustlayer.routing.labels import FeatureJournal, examples_from_log   # doctest: +SKIP
    >>> journal = FeatureJournal(".trustlayer/routing-journal.jsonl")           # doctest: +SKIP
    >>> journal.append("conv-1", PromptFeatures(prompt=redacted, signals=s))      # at routing time
    >>> examples = examples_from_log(envelopes_from_store(store), keyring,        # doctest: +SKIP
    ...                              journal.read(), local_id="phone")

A request is labelled by the verifier's verdict on its answer, as signed into its hop
record: the local model *sufficed* when it is among the endpoints that agreed with the
consensus, and did not when it dissented. Requests without a verified consensus, or
whose verdict does not involve the local model, carry no label and are skipped.

The log holds digests and counts only, never the prompt; the device-side features
(the redacted prompt and the local model's uncertainty signals) are kept on the device
in a ``FeatureJournal`` and joined by conversation id: the n-th labelled hop of a
conversation takes the n-th journal entry of that conversation. Every record is
verified against the trusted keys before it is read; one that does not verify stops
the loader (labels from a log that fails verification are not trained on).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from trustlayer.errors import RouterError, SignatureError
from trustlayer.provenance.dsse import open_envelope
from trustlayer.provenance.keys import Keyring
from trustlayer.provenance.records import HOP_PREDICATE, Record, VerdictSummary
from trustlayer.routing.examples import PromptFeatures, RoutingDataError, RoutingExample

if TYPE_CHECKING:
    from trustlayer.audit.store import AuditStore
    from trustlayer.verifiers.whitebox import AnswerScore

__all__ = [
    "FeatureJournal",
    "envelopes_from_export",
    "envelopes_from_store",
    "examples_from_log",
    "label_from_verdict",
    "labelled_conversations",
    "signals_from_score",
]


def signals_from_score(score: AnswerScore) -> dict[str, float]:
    """The router's uncertainty signals from the local model's white-box score of its own answer."""
    return {"mean_logprob": score.mean_logprob, "min_logprob": score.min_logprob,
            "p10_logprob": score.p10_logprob, "mean_entropy": score.mean_entropy}


def label_from_verdict(verdict: VerdictSummary, *, local_id: str) -> bool | None:
    """True if the local answer agreed with a verified consensus, False if it dissented, else None."""
    if verdict.outcome != "verified":
        return None
    if local_id in verdict.agreeing:
        return True
    if local_id in verdict.dissenting:
        return False
    return None


def envelopes_from_store(store: AuditStore) -> Iterator[bytes]:
    """Every envelope in an audit store, in log order."""
    for entry in store.entries():
        yield entry.envelope


def envelopes_from_export(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The entry envelopes of a ``trustlayer audit export`` JSONL file, in order."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutingDataError(f"cannot read audit export {str(p)!r}: {exc}", path=str(p)) from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise RoutingDataError(f"audit export {str(p)!r} line {number}: not valid JSON",
                                   path=str(p), line=number) from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            raise RoutingDataError(f"audit export {str(p)!r} line {number}: expected an object with a 'type'",
                                   path=str(p), line=number)
        if doc["type"] != "entry":
            continue
        envelope = doc.get("envelope")
        if not isinstance(envelope, str):
            raise RoutingDataError(f"audit export {str(p)!r} line {number}: field 'envelope' must be a string",
                                   path=str(p), line=number)
        yield envelope.encode("ascii", errors="replace")


def labelled_conversations(envelopes: Iterable[bytes], keyring: Keyring, *,
                           local_id: str) -> Iterator[tuple[str, bool]]:
    """``(conversation id, local sufficed)`` for each verified hop record with a usable verdict.

    Records of other kinds (router training, key rotation) are skipped; a record that does
    not verify raises ``RouterError`` naming its position in the log.
    """
    for index, envelope in enumerate(envelopes):
        try:
            verified = open_envelope(envelope, keyring)
            doc: Any = json.loads(verified.payload)
            if not isinstance(doc, dict) or doc.get("predicateType") != HOP_PREDICATE:
                continue
            record = Record.from_verified(envelope, verified)
        except (SignatureError, ValueError, ValidationError) as exc:
            raise RouterError(f"audit entry {index} does not verify, so its label cannot be trusted: {exc}") from exc
        verdict = record.predicate.verdict
        if verdict is None:
            continue
        label = label_from_verdict(verdict, local_id=local_id)
        if label is not None:
            yield record.predicate.conversation_id, label


class FeatureJournal:
    """The device's own JSONL journal of what the router saw, by conversation (never leaves the device).

    One line per routed request: ``{"conversation": id, "prompt": redacted, "signals": {...}}``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, conversation_id: str, features: PromptFeatures) -> None:
        """Record the features of one routed request of ``conversation_id``."""
        line = json.dumps({"conversation": conversation_id, "prompt": features.prompt,
                           "signals": dict(features.signals)}, ensure_ascii=False, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def read(self) -> dict[str, list[PromptFeatures]]:
        """Every journal entry, grouped by conversation id, in the order they were appended."""
        out: dict[str, list[PromptFeatures]] = {}
        if not self.path.exists():
            return out
        where = f"feature journal {str(self.path)!r}"
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                conversation = doc.pop("conversation")
                if not isinstance(conversation, str):
                    raise TypeError("conversation must be a string")
                features = PromptFeatures.model_validate(doc, strict=True)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise RoutingDataError(f"{where} line {number}: not a journal entry "
                                       f"({type(exc).__name__})", path=str(self.path), line=number) from exc
            out.setdefault(conversation, []).append(features)
        return out


def examples_from_log(envelopes: Iterable[bytes], keyring: Keyring,
                      journal: Mapping[str, Sequence[PromptFeatures]], *, local_id: str) -> list[RoutingExample]:
    """Labelled routing examples: verdicts from the log joined with the journal's features.

    A labelled conversation turn with no journal entry left is skipped (the device did not
    journal it, e.g. before journaling was switched on).
    """
    used: dict[str, int] = {}
    examples = []
    for conversation, label in labelled_conversations(envelopes, keyring, local_id=local_id):
        position = used.get(conversation, 0)
        entries = journal.get(conversation, ())
        if position >= len(entries):
            continue
        used[conversation] = position + 1
        features = entries[position]
        examples.append(RoutingExample(prompt=features.prompt, signals=features.signals, local_sufficed=label))
    return examples
