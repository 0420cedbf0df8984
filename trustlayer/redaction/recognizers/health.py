"""Health conditions, medications and procedures stated about a person (``HEALTH_CONDITION``).

"I was diagnosed with diabetes", "my daughter has epilepsy", "I'm on metformin" and
"he is HIV positive" are data concerning health (GDPR Art. 9(1), Art. 4(15); PHI under
HIPAA when tied to an individual). "What causes diabetes?" and "explain how insulin
works" are not, and must pass unaltered. So a term of the curated list
(:mod:`~trustlayer.redaction.recognizers.health_terms`, one precompiled trie regex, whole
words) is a finding only in personal context, read from the clause it stands in:

- a possessive: "my (son's) (chronic) asthma", "his insulin", "the patient's diabetes";
- a person followed by verbs and particles of having, taking, diagnosis and treatment:
  "I have", "my daughter was diagnosed with", "she's been on", "I tested positive for",
  "Anna had a", "54-year-old male with"; a bare "I am" only before a term that describes
  a person ("I'm diabetic", "he is HIV positive"), never "I'm a diabetes nurse";
- a clause that opens with a diagnosis cue ("Diagnosed with T2D in 2019");
- someone describing themselves: "as someone with Crohn's";
- a record field: "Dx:", "diagnosis:", "medications:", "allergies:", "reason:";
- a list continuing one of these ("I have asthma, eczema and take cetirizine"), also one
  item per line (bullets, a JSON array in tool-call arguments).

Not personal: questions and hypotheticals ("do I have ...?", "can I take ...", "if my
son has ..."), generic subjects ("people with ...", "a patient with ..."), topics ("my
essay on epilepsy", "I'm reading about cancer"), and a term followed by a topic noun
("diabetes research", "cancer awareness", "lithium battery").

Negation is deliberately not an exit: "I don't have diabetes" and "I tested negative
for HIV" are findings. A statement about one's own health status, and any test
result, is data concerning health (GDPR Recital 35: "information derived from the
testing or examination of a body part or bodily substance"), and a negation detector
would leak on "I don't have my diabetes under control". The span is the term itself,
without its modifiers ("type 2 diabetes", not "my severe type 2 diabetes")::

    >>> [text[s.start:s.end] for text in ("My son has type 1 diabetes.", "What causes type 1 diabetes?")
    ...  for s in RULE.find(text)]
    ['type 1 diabetes']
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from trustlayer.redaction.recognizers.base import Rule, Span
from trustlayer.redaction.recognizers.health_terms import CASE_SENSITIVE, PERSON_TERMS, TERMS
from trustlayer.redaction.recognizers.names import STOPWORDS

__all__ = ["LEXICON", "RULE", "RULES", "Terms", "personal", "terms", "verdicts"]

_Trie = dict[str, "_Trie"]
_SPACE = r"(?:[ \t]+|-)"  # a space in a term also matches a hyphen ("type-2 diabetes")


def _trie_pattern(words: Iterable[str]) -> str:
    """One regular expression for all ``words``, factored by common prefixes (linear to match)."""
    trie: _Trie = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _emit(trie)


def _emit(node: _Trie) -> str:
    branches = []
    for ch in sorted(k for k in node if k):
        atom = _SPACE if ch == " " else "['’]?" if ch == "'" else re.escape(ch)
        branches.append(atom + _emit(node[ch]))
    if not branches:
        return ""
    if "" in node:  # a word ends here: the longer continuations are optional (greedy: longest wins)
        return "(?:" + "|".join(branches) + ")?"
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


_WHOLE = r"(?<![\w-])(?:{})(?!\w|-\w)"
_LOWER = re.compile(_WHOLE.format(_trie_pattern(TERMS)))
"""The case-insensitive terms, searched in the lower-cased text (three times faster than ``re.IGNORECASE``)."""
_CASED = re.compile(_WHOLE.format(_trie_pattern(CASE_SENSITIVE)))
LEXICON = re.compile(_WHOLE.format("(?i:" + _trie_pattern(TERMS) + ")|" + _trie_pattern(CASE_SENSITIVE)))
"""Every term of the list as a whole word (case-insensitive but for the capital abbreviations)."""

# -- the vocabulary of personal context ----------------------------------------------------------------------
_WORDS = re.compile(r"[\w']+(?:[-/.][\w']+)*")
_CLAUSE_END = re.compile(r"[!?;\n]|\.(?=\s)")
_WINDOW = 160

_PRONOUNS = frozenset("i i'm im i've ive i'd he she he's she's".split())
_PRONOUNS_BE = frozenset("i'm im he's she's".split())
_PRONOUNS_HAVE = frozenset("i've ive i'd".split())
_POSITIVE = re.compile(r"[\s-]*(?:positive|negative|\+)", re.I)
_POSSESSIVES = frozenset("my his her their our".split())
_PEOPLE = frozenset("""
son sons daughter daughters mom mum mother dad father parent parents brother brothers sister sisters sibling
siblings husband wife partner boyfriend girlfriend bf gf fiance fiancé fiancee fiancée spouse child children kid
kids baby toddler teen teenager grandma grandmother granny nan grandpa grandfather grandparents grandson
granddaughter aunt uncle cousin nephew niece friend friends roommate flatmate housemate colleague coworker
co-worker boss manager neighbor neighbour patient client student pupil twin twins stepson stepdaughter stepmom
stepdad stepmother stepfather mother-in-law father-in-law sister-in-law brother-in-law in-laws ex family doctor
gp psychiatrist cardiologist oncologist neurologist endocrinologist therapist physician specialist dermatologist
rheumatologist gynecologist gynaecologist obgyn ob-gyn nurse dentist consultant surgeon boys girls
""".split())
"""Who "my ..." can be when it is the subject of having a condition."""
_PEOPLE_MODIFIERS = frozenset("little older younger elderly teenage baby oldest youngest eldest best late step "
                              "adult grown two three year old year-old".split())
_BE = frozenset("am is are was were be been being 'm 's 're".split())
_LINK = _BE | frozenset("""
have has had having 've 'd do does did don't doesn't didn't dont doesnt didnt not never no longer still also just
recently newly finally officially formally now currently already again always ever both too sadly unfortunately
apparently probably possibly likely maybe definitely actually really since who that and then got get gets getting
gotten diagnosed dx'd dx with suffer suffers suffered suffering from live lives lived living struggle struggles
struggled struggling deal deals dealt dealing battle battles battled battling fight fights fought fighting cope
copes coping manage manages managing take takes took taken taking start starts started starting stop stops
stopped stopping quit on off use uses used using need needs needed prescribed put gave given me him them tested
positive negative for treated treatment recovering recovered survived beat developed develops developing caught
contracted allergic intolerant to scheduled booked undergo underwent undergoing undergone going through in became
become becomes might may must could told says said found out confirmed years year months month weeks week days
ago last remission after all over
""".split())
"""Words between a person and a term: having, taking, diagnosis, treatment, time and negation."""
_STRONG = frozenset("diagnosed dx'd dx prescribed tested suffering recovering currently".split())
"""Cues that make a clause personal without a subject ("Diagnosed with T2D in 2019")."""
_FILL = frozenset("""
a an the some mild severe chronic acute bad terrible serious early late stage advanced metastatic aggressive rare
recurring recurrent persistent frequent occasional constant borderline clinical major minor diagnosed undiagnosed
suspected possible grade low-grade high-grade terminal full-blown childhood adult-onset late-onset early-onset
juvenile lifelong long-term ongoing current recent active controlled uncontrolled untreated history hx of case
bout touch form episode episodes flare flare-up flare-ups course dose doses daily low high moderate slight
really very pretty quite own left right treatment-resistant drug-resistant
""".split())
"""Words between the cue and the term: articles, severity, stage, "history of", "a course of"."""
_DOSE = re.compile(r"\d+(?:[.,]\d+)?(?:mg|mcg|µg|g|ml|iu|units?)?$")
_VISIT = frozenset("follow-up followup check-up checkup review post-op post pre-op".split())
"""Words of a visit's reason before a term in a record field ("reason: follow-up after knee surgery")."""
_BULLET = re.compile(r"[ \t]*(?:[-*•]|\d{1,2}[.)])?[ \t]*")
_NEXT_ITEM = re.compile(r"[ \t,;]*\n" + _BULLET.pattern)
_LIST = frozenset("and or plus as well along also with but both then too & + /".split())
_HYPOTHETICAL = frozenset("""
if whether unless suppose supposing assuming imagine pretend say can could should would will shall may might must
do does did can't cannot won't wouldn't shouldn't couldn't a an any every each no
""".split())
"""Words before a subject that make the statement a question, a hypothesis or generic."""
_NOT_NAMES = STOPWORDS | frozenset("nobody somebody anybody children kids women men people patients adults doctors "
                                   "many most diabetics someone".split())
_NAME_VERBS = frozenset("has had is was takes took suffers suffered struggles lives got gets developed uses needs "
                        "started stopped tested survived beat underwent became".split())
_NAME = re.compile(r"[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ']+(?:-[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ']+)*")
_AGE = re.compile(r"\d{1,3}(?:-?(?:year|yr)s?-?old|yo|y/o|y\.o|[mf])$")
_SEXES = frozenset("male female man woman boy girl m f gentleman lady".split())
_LABEL = re.compile(
    r"(?:^|[^\w])(?:dx|hx|pmh|diagnos[ie]s|conditions?|medical (?:history|conditions?)|medications?|meds|rx|"
    r"allerg(?:y|ies)|problem list|chief complaint|prescriptions?|procedures?|treatments?|reason(?: for visit)?|"
    r"indication|presenting complaint)[\"']?\s*[:=]", re.I)
_TOPIC_AFTER = re.compile(
    r"[ \t]*(?:research\w*|stud(?:y|ies)|trials?|clinics?|cent(?:er|re)s?|wards?|units?|departments?|foundations?|"
    r"charit(?:y|ies)|associations?|societ(?:y|ies)|awareness|campaigns?|conferences?|programm?e?s?|projects?|"
    r"courses?|lectures?|class(?:es)?|modules?|exams?|articles?|papers?|essays?|books?|podcasts?|blogs?|forums?|"
    r"communit(?:y|ies)|websites?|epidemic|pandemic|crisis|rates?|statistics|prevalence|batter(?:y|ies)|ion|"
    r"horoscope|zodiac|fundrais\w*|guidelines?|industry|market|sector|compan(?:y|ies)|"
    r"of (?:luck|genius|insight|brilliance))\b", re.I)
"""A term followed by one of these is a topic, not a condition ("diabetes research", "lithium battery")."""


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower().replace("’", "'"))


def _skip(words: list[str], end: int, allowed: frozenset[str], limit: int) -> int:
    """Index after which only ``allowed`` words (or doses) follow, walking back at most ``limit`` words."""
    i = end
    while i > 0 and end - i < limit and (words[i - 1] in allowed or _DOSE.match(words[i - 1])):
        i -= 1
    return i


def _hypothetical(words: list[str], subject: int) -> bool:
    """Whether the words before the subject make it a question, a hypothesis or a generic person."""
    before = [w for w in words[max(0, subject - 3):subject] if w not in ("the", "and", "but", "so")]
    if not before:
        return False
    last = before[-1]
    if last in ("do", "does", "did") and len(before) > 1 and before[-2] == "why":
        return False  # "why do I have migraines?" says I have them
    return last in _HYPOTHETICAL or (len(before) > 1 and before[-2] in ("if", "whether", "unless"))


def _subject(words: list[str], originals: list[str], i: int) -> tuple[int, str] | None:
    """Where the person ending at word ``i - 1`` starts and what kind of person it is, if it is one."""
    if i <= 0:
        return None
    w = words[i - 1]
    if w in _PRONOUNS:
        return i - 1, "pronoun"
    if w in _PEOPLE:
        j = i - 1
        while j > 0 and (words[j - 1] in _PEOPLE_MODIFIERS or _AGE.match(words[j - 1])):
            j -= 1
        if j > 0 and words[j - 1] in _POSSESSIVES:
            return j - 1, "relation"
        if w in ("patient", "client") and (j == 0 or words[j - 1] == "the"):
            return max(j - 1, 0), "patient"
        return None
    if w in ("someone", "somebody", "person", "woman", "man", "mother", "mum", "mom", "parent", "father", "dad") \
            and i > 1 and (words[i - 2] == "as" or (words[i - 2] in ("a", "an") and i > 2 and words[i - 3] == "as")):
        return i - 2 if words[i - 2] == "as" else i - 3, "self"  # "as someone with Crohn's"
    if w == "pt" or _AGE.match(w):
        return i - 1, "patient"
    if w in _SEXES and i > 1 and (_AGE.match(words[i - 2]) or words[i - 2] == "old"):
        return i - 1, "patient"
    if w == "old" and i > 2 and words[i - 2] in ("year", "years", "yr") and words[i - 3].isdigit():
        return i - 3, "patient"
    if _NAME.fullmatch(originals[i - 1]) and w not in _NOT_NAMES:
        return i - 1, "name"
    return None


def _personal_clause(before: str, term: str, after: str) -> bool:
    """Whether the clause text ``before`` a term makes it a statement about a person."""
    originals = _WORDS.findall(before.replace("’", "'"))
    words = [w.lower() for w in originals]
    end = _skip(words, len(words), _FILL, 5)
    if end > 0:
        w = words[end - 1]
        if w in _POSSESSIVES:
            return True
        if w.endswith("'s") and (w[:-2] in ("patient", "client")
                                 or (w[:-2] in _PEOPLE and end > 1 and words[end - 2] in _POSSESSIVES)):
            return True
    start = _skip(words, end, _LINK, 10)
    if start == end:
        if end > 0 and words[end - 1] in _PRONOUNS_BE and not _hypothetical(words, end - 1):
            return _describes_person(term, after)  # "I'm diabetic", "she's pregnant"
        return False
    link = words[start:end]
    if start == 0:
        return any(w in _STRONG for w in link)
    found = _subject(words, originals, start)
    if found is None or _hypothetical(words, found[0]):
        return False
    if found[1] == "name" and link[0] not in _NAME_VERBS:
        return False  # a capitalized word is a person only as the subject of a singular verb ("Anna has")
    if all(w in _BE for w in link) and words[start - 1] not in _PRONOUNS_HAVE:
        return _describes_person(term, after)
    return True


def _describes_person(term: str, after: str) -> bool:
    """After a bare "I am", only a term that describes a person counts: "I'm diabetic", not "I'm a diabetes nurse"."""
    spelled = re.sub(r"[\s-]+", " ", term.lower().replace("’", "'"))
    return spelled in PERSON_TERMS or _POSITIVE.match(after) is not None


def _clause_start(text: str, start: int) -> int:
    lo = max(0, start - _WINDOW)
    ends = list(_CLAUSE_END.finditer(text, lo, start))
    return ends[-1].end() if ends else lo


class Terms(NamedTuple):
    """Where the terms of one text are: starts and ends in text order, never overlapping."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def covering(self, start: int, end: int) -> tuple[int, int] | None:
        """The term ``start:end`` lies inside, if any (NER reads "Crohn" in "Crohn's disease" as a name)."""
        i = bisect.bisect_right(self.starts, start) - 1
        return (self.starts[i], self.ends[i]) if i >= 0 and self.ends[i] >= end else None


def terms(text: str) -> Terms:
    """Every term of the list in ``text``, the longer one where two overlap (one scan of the text)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer ("İ"): offsets would shift
        spans = [m.span() for m in LEXICON.finditer(text)]
    else:
        spans = [m.span() for m in _LOWER.finditer(lowered)]
        cased = [m.span() for m in _CASED.finditer(text)] if lowered != text else []
        if cased:
            kept: list[tuple[int, int]] = []
            for span in sorted(spans + cased, key=lambda s: (s[0], -s[1])):
                if not kept or span[0] >= kept[-1][1]:
                    kept.append(span)
            spans = kept
    return Terms(tuple(s for s, _ in spans), tuple(e for _, e in spans))


def verdicts(text: str, found: Terms) -> tuple[bool, ...]:
    """For each term found in ``text``, in order, whether it is stated about a person.

    One pass, left to right: a term that continues a list ("I have asthma, eczema and ...")
    takes the verdict of the term before it, so a list of any length costs one check per term.
    """
    out: list[bool] = []
    for i, (start, end) in enumerate(zip(found.starts, found.ends, strict=True)):
        if _TOPIC_AFTER.match(text, end, end + 40):
            out.append(False)  # "diabetes research", "lithium battery"
        else:
            out.append(_own_context(text, start, end)
                       or (i > 0 and out[i - 1] and _continues(text, found.ends[i - 1], start)))
    return tuple(out)


def personal(text: str, start: int, end: int) -> bool:
    """Whether the term at ``text[start:end]`` is stated about a person (see the module docstring)."""
    found = terms(text)
    i = bisect.bisect_left(found.starts, start)
    return i < len(found.starts) and (found.starts[i], found.ends[i]) == (start, end) and verdicts(text, found)[i]


def _own_context(text: str, start: int, end: int) -> bool:
    """Whether the term's own clause, or the record field it is the value of, makes it personal."""
    if _personal_clause(text[_clause_start(text, start):start], text[start:end], text[end:end + 40]):
        return True
    line_start = text.rfind("\n", 0, start) + 1
    if line_start and _BULLET.fullmatch(text, line_start, start):
        line_start = text.rfind("\n", 0, line_start - 1) + 1  # "Medications:\n- metformin": the label line
    line = text[max(line_start, start - _WINDOW):start]
    if ":" in line or "=" in line:
        labels = list(_LABEL.finditer(line))
        if labels and all(w in _FILL or w in _LINK or w in _VISIT or _DOSE.match(w)
                          for w in _words(line[labels[-1].end():])):
            return True
    return False


def _continues(text: str, previous_end: int, start: int) -> bool:
    """Whether a term continues, in the same clause, the list of the term ending at ``previous_end``."""
    if previous_end < _clause_start(text, start):
        # The next item of a list written one per line (bullets, a JSON array in tool-call arguments).
        return _NEXT_ITEM.fullmatch(text, previous_end, start) is not None
    return all(w in _LIST or w in _LINK or w in _FILL or _DOSE.match(w) for w in _words(text[previous_end:start]))


@dataclass(frozen=True, slots=True)
class _LexiconRule(Rule):
    """A :class:`Rule` over the term list: one scan, each term kept only in personal context."""

    def find(self, text: str) -> Iterator[Span]:
        """Yield the terms of ``text`` that are stated about a person."""
        found = terms(text)
        for start, end, kept in zip(found.starts, found.ends, verdicts(text, found), strict=True):
            if kept:
                yield Span(self.entity_type, start, end, self.score, self.detector)


RULE = _LexiconRule("HEALTH_CONDITION", LEXICON, score=0.85, name="trustlayer:health_condition")
"""The term list, gated by personal context."""

RULES: tuple[Rule, ...] = (RULE,)
