"""Span arbitration and false-positive suppression.

Overlapping candidates are resolved deterministically: a validated span (checksum or
strict format) or a credential wins, then the longer span, then the higher score,
then the earlier start and the entity type name (so ties never depend on order).
The winner is kept whole, so a phone number is never cut into a date and a
licence number.

Known look-alikes are suppressed before arbitration: version numbers, sums of money,
ISO 8601 timestamps, order/ticket/invoice numbers, UUIDs and hex digests, and
NER names that are really code identifiers (``get_user``, ``parseHTML``)::

    >>> from trustlayer.redaction.recognizers.base import Span
    >>> a = Span("PHONE_NUMBER", 0, 12, 0.75, "x", validated=True)
    >>> b = Span("DATE_TIME", 0, 5, 0.85, "y")
    >>> [s.entity_type for s in arbitrate([a, b])]
    ['PHONE_NUMBER']
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

from trustlayer.redaction.entities import CREDENTIAL_ENTITY_TYPES
from trustlayer.redaction.recognizers.base import Span

__all__ = ["arbitrate", "protected_spans", "suppress"]

# Entity types never suppressed by a look-alike: strong formats and credentials.
_NEVER_SUPPRESSED = CREDENTIAL_ENTITY_TYPES | {"CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "PRIVATE_KEY",
                                               "STREET_ADDRESS", "DATE_OF_BIRTH", "MEDICAL_RECORD_NUMBER", "CVV"}

_LOOKALIKES = re.compile(
    "|".join((
        # semantic versions and dotted release numbers (SemVer 2.0.0), with a version word or a "v"
        r"(?i:\b(?:v|version|release|rel|ver|python|node|java|go|rust|ubuntu|debian|kernel|build|release-)"
        r"[ :=-]?\s*v?\d+(?:\.\d+){1,3}(?:[-+][\w.]+)?)",
        r"\bv\d+(?:\.\d+){1,3}\b",
        r"\b\d+\.\d+\.\d+(?:\.\d+)?(?:-[A-Za-z][\w.]*)\b",
        # ISO 8601 timestamps with a time part
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
        # sums of money
        r"(?:[$€£¥₹]|\b(?:USD|EUR|GBP|CHF|JPY)\b)\s?-?\d[\d,.' ]*\d",
        r"\b\d[\d,.' ]*\d\s?(?:[$€£¥₹]|(?:USD|EUR|GBP|CHF|JPY|dollars?|euros?|pounds?)\b)",
        # order, invoice, ticket, tracking ... numbers
        r"(?i:\b(?:order|invoice|ticket|tracking|transaction|txn|confirmation|booking|reservation|shipment|"
        r"parcel|po|sku|item|part|model|serial|issue|bug|pr|pull request|build|job|run|commit|ref|reference|"
        r"bestellung|bestellnummer|rechnung|auftrag|commande|facture|pedido|factura|ordine|fattura|bestelling)\b"
        r"(?:\s*(?:no\.?|nr\.?|number|num|id|#))?\s*[:#]?\s*#?(?=[A-Z-]*\d)[A-Z0-9][A-Z0-9-]{3,})",
        # UUIDs (RFC 9562) and hex digests (git SHAs, SHA-256)
        r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
        r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,64}\b",
    ))
)

_IDENTIFIER = re.compile(r"[_$#@/\\<>{}()\[\]=]|\d|[a-z][A-Z]|^[A-Z0-9_]{2,}$|\.\w")
_NAME_TYPES = frozenset({"PERSON", "LOCATION", "NRP"})


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Spans of ``text`` that look like versions, sums, timestamps, order numbers or digests."""
    return [m.span() for m in _LOOKALIKES.finditer(text)]


def suppress(text: str, spans: Iterable[Span]) -> list[Span]:
    """Drop candidates that lie inside a look-alike, and NER names that are code identifiers."""
    spans = list(spans)
    protected = protected_spans(text) if any(s.entity_type not in _NEVER_SUPPRESSED for s in spans) else []
    starts = [p[0] for p in protected]
    kept: list[Span] = []
    for span in spans:
        if span.entity_type in _NAME_TYPES and span.detector.startswith("spacy") \
                and _IDENTIFIER.search(text[span.start:span.end]):
            continue
        if span.entity_type not in _NEVER_SUPPRESSED:
            i = bisect.bisect_right(starts, span.start) - 1
            if i >= 0 and protected[i][0] <= span.start and span.end <= protected[i][1]:
                continue
        kept.append(span)
    return kept


def _priority(span: Span) -> tuple[bool, int, float, int, str]:
    strong = span.validated or span.entity_type in CREDENTIAL_ENTITY_TYPES
    return (strong, span.end - span.start, span.score, -span.start, span.entity_type)


def arbitrate(spans: Iterable[Span]) -> list[Span]:
    """Resolve overlaps: keep the highest-priority span of each overlapping group, in text order."""
    chosen_starts: list[int] = []
    chosen: list[Span] = []
    for span in sorted(spans, key=_priority, reverse=True):
        i = bisect.bisect_left(chosen_starts, span.start)
        if i > 0 and chosen[i - 1].end > span.start:
            continue
        if i < len(chosen) and chosen[i].start < span.end:
            continue
        chosen_starts.insert(i, span.start)
        chosen.insert(i, span)
    return chosen
