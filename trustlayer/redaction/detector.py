"""Detection over a whole message: every text field, tool-call arguments as JSON, one NER pass.

All text fields of a message are laid out in one document (tool-call arguments as
``key: value`` lines), searched once by the pattern recognizers and, when a
requested type needs it, once by spaCy NER; candidates are suppressed, arbitrated
and mapped back to ``Finding`` objects on each field::

    >>> from trustlayer.types import Message
    >>> d = PiiDetector(ner=False)
    >>> msg = Message.from_text("mail anna@example.org", conversation_id="c1")
    >>> [(f.entity_type, f.start, f.end) for f in d.detect(msg)]
    [('EMAIL_ADDRESS', 5, 21)]
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trustlayer.errors import RedactionError
from trustlayer.redaction import jsonargs
from trustlayer.redaction._offline import install as install_offline
from trustlayer.redaction.arbitrate import arbitrate, suppress
from trustlayer.redaction.entities import DEFAULT_ENTITY_TYPES, ENTITY_TYPES, NER_ENTITY_TYPES
from trustlayer.redaction.recognizers import Span, has_context, pattern_recognizers
from trustlayer.redaction.recognizers.financial import cvv_near_cards
from trustlayer.redaction.recognizers.health import Terms, terms
from trustlayer.redaction.recognizers.names import STOPWORDS
from trustlayer.types import Finding, Message

if TYPE_CHECKING:
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

__all__ = ["MAX_MESSAGE_CHARS", "PiiDetector"]

MAX_MESSAGE_CHARS = 2_000_000
"""Largest total text (all fields) a message may hold; larger messages are refused (blocked)."""

_SEP = "\n\n"
_PERSONAL_PLACE = (
    " i ", "i'm", " my ", " me ", " we ", " our ", " he ", " she ", " his ", " her ", " they ", " their ",
    "live", "living", "based in", "born", "moved", "from", "address", "stay", "home", "reside", "located",
    "wohne", "lebe", "aus ", "habite", "vis ", "vivo", "abito", "woon", "ship to", "deliver", "visit",
    "office in", "work in", "works in", "travel", "flight", "trip", "patient", "customer", "client",
)


@dataclass(frozen=True, slots=True)
class _Segment:
    """One piece of the document: a field, or one JSON token of a tool call's arguments."""

    doc_start: int
    doc_end: int
    path: str
    token: jsonargs.Token | None = None


def _check_entities(entities: frozenset[str] | None) -> frozenset[str]:
    if entities is None:
        return DEFAULT_ENTITY_TYPES
    wanted = frozenset(entities)
    unknown = sorted(wanted - ENTITY_TYPES)
    if unknown:
        # Fail closed: a requested type without a detector must not pass silently.
        raise RedactionError(f"no detector for entity type(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(ENTITY_TYPES))})")
    return wanted


class PiiDetector:
    """Finds personal data and secrets in every text field of a message (the ``Detector`` stage).

    ``ner=False`` never loads spaCy (names then come from context rules only);
    ``score_threshold`` drops weaker candidates.
    """

    keeps_deadline = True
    """Its only waits, for the spaCy pipeline and model (``nlp``), end by the gate stage's deadline."""

    def __init__(self, *, score_threshold: float = 0.5, ner: bool = True) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise RedactionError(f"score_threshold must be within 0..1, got {score_threshold}")
        self.score_threshold = score_threshold
        self.ner = ner
        self._recognizers = pattern_recognizers()
        self._email = _presidio_email()

    # -- layout ----------------------------------------------------------------------
    def _layout(self, message: Message) -> tuple[str, list[_Segment]]:
        parts: list[str] = []
        segments: list[_Segment] = []
        pos = 0
        total = 0
        for path, text in message.texts():
            total += len(text)
            if total > MAX_MESSAGE_CHARS:
                raise RedactionError(f"message holds more than {MAX_MESSAGE_CHARS} characters of text "
                                     f"(at {path}); refusing to process it")
            if path.endswith(".function.arguments") and text.strip():
                jsonargs.parse_checked(text, path)
                toks = jsonargs.tokens(text)
                rendered, starts = jsonargs.render(toks)
                for tok, start in zip(toks, starts, strict=True):
                    segments.append(_Segment(pos + start, pos + start + len(tok.text), path, tok))
                parts.append(rendered)
                pos += len(rendered)
            else:
                segments.append(_Segment(pos, pos + len(text), path))
                parts.append(text)
                pos += len(text)
            parts.append(_SEP)
            pos += len(_SEP)
        return "".join(parts), segments

    # -- candidates ------------------------------------------------------------------
    def _candidates(self, doc: str, wanted: frozenset[str]) -> list[Span]:
        spans: list[Span] = []
        for recognizer in self._recognizers:
            spans.extend(recognizer.spans(doc, wanted))
        if "EMAIL_ADDRESS" in wanted and "@" in doc:
            for result in self._email.analyze(doc, ["EMAIL_ADDRESS"]):
                spans.append(Span("EMAIL_ADDRESS", result.start, result.end, float(result.score),
                                  "presidio:EmailRecognizer"))
        if "CVV" in wanted:
            cards = [s for s in spans if s.entity_type == "CREDIT_CARD"]
            if cards:
                spans.extend(cvv_near_cards(doc, cards))
        if self.ner and _needs_ner(doc, wanted & NER_ENTITY_TYPES):
            from trustlayer.redaction.nlp import ner_engine

            health_terms: Terms | None = None
            for label, start, end, score in ner_engine().entities(doc):
                if label not in wanted:
                    continue
                # A place is personal data when it is tied to a person ("I live in ...");
                # "the capital of France" is not.
                if label == "LOCATION" and not has_context(doc, start, end, _PERSONAL_PLACE, window=40):
                    continue
                if label == "PERSON":
                    trimmed = _trim_name(doc, start, end)
                    if trimmed is None or _eponym(doc, *trimmed):
                        continue
                    if health_terms is None:
                        health_terms = terms(doc)
                    term = health_terms.covering(*trimmed)
                    if term is not None and (term != trimmed or _health_covers(spans, *trimmed)
                                             or _drug_talk(doc, *term)):
                        # An eponym inside a longer term ("Crohn" in "Crohn's disease"), a drug already
                        # found as a stated condition ("I'm on Wegovy"), or one talked about as a drug
                        # ("how Wegovy works", "Compare Humira and mesalamine"); a drug name alone may be
                        # a first name ("Send the invoice to Kyleena"), and stays a person.
                        continue
                    start, end = trimmed
                spans.append(Span(label, start, end, score, f"spacy:{label.lower()}"))
        return [s for s in spans if s.score >= self.score_threshold]

    def detect_spans(self, doc: str, wanted: frozenset[str]) -> list[Span]:
        """Arbitrated spans for one document (exposed for benchmarks and the CLI)."""
        spans = arbitrate(suppress(doc, self._candidates(doc, wanted)))
        spans = [_widen_name(doc, s) if s.entity_type == "PERSON" else s for s in spans]
        return arbitrate([*spans, *_repeats(doc, spans)])

    # -- the stage -------------------------------------------------------------------
    def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
        """Findings for every text field of ``message``; ``entities`` limits the search."""
        wanted = _check_entities(entities)
        doc, segments = self._layout(message)
        spans = self.detect_spans(doc, wanted)
        fields = _credential_fields(segments, wanted)
        if fields:
            spans = arbitrate([*spans, *fields])
        return _to_findings(spans, segments)


_PASSWORD_KEY = re.compile(r"(?:\w*[_.-])?(?:password|passwd|passwort|kennwort|pwd|pass|passphrase)(?:[_.-]\w*)?",
                           re.IGNORECASE)
_SECRET_KEY = re.compile(r"(?:\w*[_.-])?(?:secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
                         r"client[_-]?secret|credentials?|auth)(?:[_.-]\w*)?", re.IGNORECASE)


_WORD = re.compile(r"(?<![\w'’])[^\W\d_][\w'’-]*")


def _may_name(doc: str) -> bool:
    """Whether NER could find anything we keep: a capitalized word that is not a common word.

    NER names without a capitalized word are dropped anyway (``_trim_name``), so a text
    without one skips the model; lower-case names are the context rules' job.
    """
    return any(len(w) > 1 and w[0].isupper() and w[1].islower()
               and w.lower().replace("'", "").replace("’", "") not in STOPWORDS
               for w in (m.group() for m in _WORD.finditer(doc)))


def _needs_ner(doc: str, wanted: frozenset[str]) -> bool:
    """Whether NER could find anything kept here, so the model runs only when it can matter.

    A name needs a capitalized word (``_may_name``); a place is kept only near a personal cue
    ("I live in berlin"), whatever its case; other NER types always run.
    """
    if wanted - {"PERSON", "LOCATION"}:
        return True
    if "PERSON" in wanted and _may_name(doc):
        return True
    if "LOCATION" in wanted:
        lowered = doc.lower()
        return any(cue in lowered for cue in _PERSONAL_PLACE)
    return False


# Words near a drug's name that say it is talked about as a drug, not as a person's name.
_DRUG_TALK = ("dose", "dosage", "side effect", "prescri", "generic", " mg", "interact", "pharmac", "medication",
              " drug", " pill", "tablet", "inject", " vs", "versus", "compare", "insurance", "covered by")
_HOW = re.compile(r"\bhow\s+(?:does\s+|do\s+|did\s+|would\s+|can\s+)?$")


def _drug_talk(doc: str, start: int, end: int) -> bool:
    """Whether the text talks about the drug name at ``start:end`` as a drug ("how Wegovy works", "Humira dose").

    Only words next to the name count: another health term elsewhere does not, or "Kyleena has
    diabetes" would lose its person.
    """
    if has_context(doc, start, end, _DRUG_TALK, window=40):
        return True
    return bool(_HOW.search(doc[max(0, start - 20):start].lower())) and \
        doc[end:end + 6].lower().startswith((" work", " help"))


def _health_covers(spans: Sequence[Span], start: int, end: int) -> bool:
    return any(s.entity_type == "HEALTH_CONDITION" and s.start <= start and end <= s.end for s in spans)


def _credential_fields(segments: Sequence[_Segment], wanted: frozenset[str]) -> list[Span]:
    """The whole string value of a JSON key named like a password or secret (``{"password": "..."}``)."""
    found: list[Span] = []
    for key, value in zip(segments, segments[1:], strict=False):
        if key.token is None or value.token is None or not key.token.is_key or value.token.is_key \
                or not value.token.is_string or key.path != value.path or not value.token.text.strip():
            continue
        name = key.token.text
        if "PASSWORD" in wanted and _PASSWORD_KEY.fullmatch(name):
            found.append(Span("PASSWORD", value.doc_start, value.doc_end, 0.95, "trustlayer:json_password_field"))
        elif "SECRET" in wanted and _SECRET_KEY.fullmatch(name) and len(value.token.text) >= 8 \
                and " " not in value.token.text.strip():
            found.append(Span("SECRET", value.doc_start, value.doc_end, 0.9, "trustlayer:json_secret_field"))
    return found


def _presidio_email() -> EmailRecognizer:
    """Presidio's own e-mail recognizer, with tldextract made offline first."""
    install_offline()
    from presidio_analyzer.predefined_recognizers import EmailRecognizer as Recognizer

    return Recognizer()


def _trim_name(doc: str, start: int, end: int) -> tuple[int, int] | None:
    """Cut common words off the ends of a NER name ("Il mio", "Tengo NIE"); ``None`` if no name is left."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", doc[start:end])]

    def common(w: tuple[int, int]) -> bool:
        text = doc[w[0]:w[1]].strip(",.;:!?\"'()")
        return text.lower().replace("'", "").replace("’", "") in STOPWORDS or not text[:1].isupper()

    while words and common(words[0]):
        words.pop(0)
    while words and common(words[-1]):
        words.pop()
    if not words:
        return None
    return words[0][0], words[-1][1]


# What a surname names when it names a method, not a person: "Fibonacci number", "Dijkstra's algorithm".
# A possessive takes only words no person's belongings are called ("Mary's problem" stays a person).
_EPONYM_NOUN = re.compile(
    r"(?:(?:'s|’s)[ \t]+(?:algorithms?|theorems?|lemmas?|conjectures?|paradox|inequality|constant|"
    r"equations?|identity|criterion)"
    r"|[ \t]+(?:numbers?|sequences?|series|algorithms?|theorems?|lemmas?|methods?|distributions?|transforms?|"
    r"machines?|tests?|equations?|filters?|curves?|conjectures?|principle|constants?|ciphers?|chains?|trees?|"
    r"integrals?|polynomials?|inequality|paradox|spaces?|sort|search|process(?:es)?|criterion|identity))\b",
    re.IGNORECASE)


def _eponym(doc: str, start: int, end: int) -> bool:
    """A one-word NER name followed by the kind of thing named after people ("the Turing test")."""
    return " " not in doc[start:end] and _EPONYM_NOUN.match(doc, end) is not None


_NAME_WORD = re.compile(r"[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'’-]+")


def _widen_name(doc: str, span: Span) -> Span:
    """Take in a capitalized neighbour word NER left out ("Ana" of "Ana Souza")."""
    start, end = span.start, span.end
    left = re.search(r"([A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'’-]+)[ \t]+$", doc[max(0, start - 40):start])
    if left and left.group(1).lower() not in STOPWORDS:
        start -= len(left.group(0))
    right = _NAME_WORD.match(doc, end + 1) if doc[end:end + 1] == " " else None
    if right and right.group().lower() not in STOPWORDS:
        end = right.end()
    if (start, end) == (span.start, span.end):
        return span
    return Span(span.entity_type, start, end, span.score, span.detector, span.validated)


def _repeats(doc: str, spans: Sequence[Span]) -> list[Span]:
    """Other mentions of values already found (a name's parts, the same e-mail in another turn).

    One pass per kind over the document, whatever the number of values: name parts and
    health conditions match in any case ("Bob" ... "bob"), other values exactly.
    """
    exact: dict[str, Span] = {}
    names: dict[str, Span] = {}
    for span in spans:
        value = doc[span.start:span.end]
        if span.entity_type == "HEALTH_CONDITION":
            if len(value) >= 3:
                names.setdefault(value.lower(), span)  # "Diabetes ... diabetes": a condition in any case
        elif len(value) >= 4:
            exact.setdefault(value, span)
        if span.entity_type == "PERSON":
            for word in re.findall(r"[^\W\d_][\w'’-]*", value):
                if len(word) >= 3 and word.lower().replace("'", "").replace("’", "") not in STOPWORDS:
                    names.setdefault(word.lower(), span)
    found: list[Span] = []
    for needles, ignorecase in ((exact, False), (names, True)):
        for start, end, origin in _occurrences(doc, needles, ignorecase=ignorecase):
            found.append(Span(origin.entity_type, start, end, min(origin.score, 0.8), "trustlayer:repeat",
                              origin.validated))
    return found


# A value counts where it stands alone: not inside a word, an address or a dotted/dashed token.
_BEFORE, _AFTER = r"[\w@.-]", r"[\w@-]"  # what may not stand right before / right after a value
# The same two classes as sets of ASCII characters, for the substring search.
_NOT_BEFORE = frozenset(c for c in map(chr, range(128)) if re.fullmatch(_BEFORE, c))
_NOT_AFTER = frozenset(c for c in map(chr, range(128)) if re.fullmatch(_AFTER, c))
_FEW = 64  # up to this many values, plain substring search beats compiling a pattern


def _occurrences(doc: str, needles: dict[str, Span], *, ignorecase: bool) -> list[tuple[int, int, Span]]:
    r"""Where the values stand in ``doc``, leftmost and longest first, without overlaps.

    What ``re.finditer`` over ``(?<!_BEFORE)(?:longest|...|shortest)(?!_AFTER)`` finds. A few
    values in ASCII text are searched with ``str.find`` (compiling a pattern per message took
    longer than the rest of the fast path); many values, or other text, go through one trie regex.
    """
    if not needles:
        return []
    if len(needles) > _FEW or not doc.isascii() or not all(n.isascii() for n in needles):
        # One named group per value: the match says which value it is, whatever case folding matched
        # ("İlkay" for "ilkay" does not lower-case back to the key).
        ordered = list(needles.items())
        pattern = re.compile(f"(?<!{_BEFORE}){_trie_alternation([n for n, _ in ordered])}(?!{_AFTER})",
                             re.IGNORECASE if ignorecase else 0)
        return [(m.start(), m.end(), ordered[int(str(m.lastgroup)[1:])][1]) for m in pattern.finditer(doc)]
    hay = doc.lower() if ignorecase else doc  # ASCII: same length, same offsets
    size = len(hay)
    candidates: list[tuple[int, int, Span]] = []
    for needle, origin in needles.items():
        target = needle.lower() if ignorecase else needle
        i = hay.find(target)
        while i >= 0:
            j = i + len(target)
            if (i == 0 or hay[i - 1] not in _NOT_BEFORE) and (j == size or hay[j] not in _NOT_AFTER):
                candidates.append((i, j, origin))
            i = hay.find(target, i + 1)
    candidates.sort(key=lambda c: (c[0], c[0] - c[1]))  # by start, the longest first
    taken: list[tuple[int, int, Span]] = []
    cursor = 0
    for start, end, origin in candidates:
        if start >= cursor:
            taken.append((start, end, origin))
            cursor = end
    return taken


def _trie_alternation(words: Sequence[str]) -> str:
    """A regex matching any of ``words`` (longest first), with an empty group ``v<i>`` closing where ``words[i]`` ends.

    Written as a trie: values sharing a prefix share its pattern, so at each position of the
    document the engine tries the few distinct first characters instead of every value (a flat
    alternation of 10,000 values took minutes on a 200 KB message). The group a match closes
    last names its value, whatever case folding matched. For a case-insensitive search the words
    must be lower-cased (the detector's name keys are): "a" and "A." would be separate branches, and
    the first that matches wins, not the longest. Two lower-case words that only the regex
    engine's folding equates (long s and s, dotless i and i) have the same limitation.
    """
    end = ""  # the key marking a word's end (no character is empty)
    root: dict[str, Any] = {}
    for i, word in enumerate(words):
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node.setdefault(end, i)
    order: list[dict[str, Any]] = []  # built without recursion: a value may be thousands of characters
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(child for ch, child in node.items() if ch != end)
    pattern: dict[int, str] = {}
    for node in reversed(order):  # children before their parent
        # Longer values first: the characters that continue a value, then the value ending here.
        parts = [re.escape(ch) + pattern.pop(id(child)) for ch, child in node.items() if ch != end]
        if end in node:
            parts.append(f"(?P<v{node[end]}>)")
        pattern[id(node)] = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
    return pattern[id(root)]


def _to_findings(spans: Sequence[Span], segments: Sequence[_Segment]) -> list[Finding]:
    """Map document spans back to fields; a span crossing fields yields one finding per field."""
    findings: list[Finding] = []
    starts = [s.doc_start for s in segments]
    for span in spans:
        i = max(0, bisect.bisect_right(starts, span.start) - 1)
        while i < len(segments) and segments[i].doc_start < span.end:
            seg = segments[i]
            i += 1
            start = max(span.start, seg.doc_start) - seg.doc_start
            end = min(span.end, seg.doc_end) - seg.doc_start
            if end <= start:
                continue  # this part of the span lies in a separator between fields
            if seg.token is not None:
                start, end = seg.token.offsets[start], seg.token.offsets[end]
            findings.append(Finding(entity_type=span.entity_type, start=start, end=end,
                                    score=round(span.score, 4), detector=span.detector, path=seg.path,
                                    validated=span.validated))
    return findings
