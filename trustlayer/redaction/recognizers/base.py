r"""Pattern rules and the Presidio recognizer that runs them.

A :class:`Rule` is one regular expression for one entity type, with an optional
validator (checksum or format check) and optional context words. Rules are grouped
into a Presidio ``EntityRecognizer`` (:class:`RuleRecognizer`) so they can be used
inside Presidio's ``AnalyzerEngine`` as well as by trustlayer's own detector::

    >>> import re
    >>> rule = Rule("JWT", re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+"), score=0.9)
    >>> [(s.entity_type, s.start) for s in rule.find("t=eyJhbGc.eyJzdWI.sig1")]
    [('JWT', 2)]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult

__all__ = ["Rule", "RuleRecognizer", "Span", "has_context"]

CONTEXT_WINDOW = 48
"""How many characters before (and half as many after) a match context words are looked for."""


@dataclass(frozen=True, slots=True)
class Span:
    """A candidate finding inside one text: offsets, type, score and where it came from."""

    entity_type: str
    start: int
    end: int
    score: float
    detector: str
    validated: bool = False


def has_context(text: str, start: int, end: int, words: Sequence[str], window: int = CONTEXT_WINDOW) -> bool:
    """True when one of ``words`` (lower case) occurs near ``text[start:end]``."""
    before = text[max(0, start - window):start].lower()
    after = text[end:end + window // 2].lower()
    return any(w in before or w in after for w in words)


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern for one entity type.

    ``group`` selects the part of the match that is the value (e.g. the password in
    ``password=...``). ``validate`` must accept the value or the match is dropped;
    with ``checksum=True`` a passing value is marked ``validated``. With ``context``,
    a match near one of the words scores ``context_score``; with ``context_required``
    a match without context is dropped. ``hint`` is a lower-case substring the text
    must contain for the rule to run at all, ``min_digits`` how many digits it must
    hold (cheap prefilters). ``refine`` may cut
    the value to the length it returns (``None`` drops it), for formats whose end a
    regular expression cannot see (a card number followed by its CVV).
    """

    entity_type: str
    pattern: re.Pattern[str]
    score: float = 0.85
    group: int | str = 0
    validate: Callable[[str], bool] | None = None
    checksum: bool = False
    context: tuple[str, ...] = ()
    context_score: float = 0.95
    context_required: bool = False
    hint: str | tuple[str, ...] | None = None
    name: str = ""
    refine: Callable[[str], int | None] | None = None
    min_digits: int = 0

    @property
    def detector(self) -> str:
        """The detector name recorded in findings."""
        return self.name or f"trustlayer:{self.entity_type.lower()}"

    def applies(self, lowered: str, digits: int = 1 << 30) -> bool:
        """Whether the prefilters let this rule run on a text (given in lower case, with its digit count)."""
        if digits < self.min_digits:
            return False
        if self.hint is None:
            return True
        hints = (self.hint,) if isinstance(self.hint, str) else self.hint
        return any(h in lowered for h in hints)

    def find(self, text: str) -> Iterator[Span]:
        """Yield the spans this rule finds in ``text``."""
        for match in self.pattern.finditer(text):
            start, end = match.span(self.group)
            if start < 0 or end <= start:
                continue
            if self.refine is not None:
                length = self.refine(text[start:end])
                if length is None:
                    continue
                end = start + length
            value = text[start:end]
            validated = False
            if self.validate is not None:
                if not self.validate(value):
                    continue
                validated = self.checksum
            score = self.score
            if self.context:
                if has_context(text, match.start(), match.end(), self.context):
                    score = max(score, self.context_score)
                elif self.context_required:
                    continue
            yield Span(self.entity_type, start, end, score, self.detector, validated)


class RuleRecognizer(EntityRecognizer):
    """A Presidio recognizer that runs a list of trustlayer :class:`Rule` objects."""

    def __init__(self, name: str, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self.label: str = name
        entities = sorted({r.entity_type for r in self.rules})
        super().__init__(supported_entities=entities, name=name, supported_language="en")

    def load(self) -> None:
        """Nothing to load: the patterns are compiled at import."""

    def spans(self, text: str, entities: frozenset[str] | None = None) -> list[Span]:
        """Spans for the requested entity types (all when ``None``)."""
        lowered = text.lower()
        digits = sum(map(str.isdigit, text)) if len(text) < 4096 else 1 << 30
        found: list[Span] = []
        for rule in self.rules:
            if entities is not None and rule.entity_type not in entities:
                continue
            if rule.applies(lowered, digits):
                found.extend(rule.find(text))
        return found

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        """Presidio's recognizer interface: the spans as ``RecognizerResult`` objects."""
        wanted = frozenset(entities) if entities else None
        name = self.label
        return [
            RecognizerResult(
                s.entity_type, s.start, s.end, s.score,
                analysis_explanation=AnalysisExplanation(name, s.score, pattern_name=s.detector),
                recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: name,
                                      RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                                      "validated": s.validated, "detector": s.detector},
            )
            for s in self.spans(text, wanted)
        ]
