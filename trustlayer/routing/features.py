"""Device-side features: hashed n-grams of the redacted prompt plus the uncertainty signals.

    >>> from trustlayer.routing.features import FeatureSpec, vectorize
    >>> from trustlayer.routing.examples import PromptFeatures
    >>> spec = FeatureSpec(n_features=64, signal_names=("entropy",))
    >>> len(vectorize(PromptFeatures(prompt="how are you", signals={"entropy": 0.5}), spec))
    65

The vectorizer is a fixed-size signed hashing trick (Weinberger et al. 2009): no
vocabulary is learnt, so nothing about the training prompts is stored with the
model. Every transform here is data-independent (per-example L2 normalization,
a fixed clip of each signal): statistics of the private data such as means or
variances would be a release outside the DP accountant, so none are computed.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trustlayer.errors import RouterError
from trustlayer.routing.examples import PromptFeatures

__all__ = ["FeatureSpec", "hashed_ngrams", "vectorize", "vectorize_many"]

_TOKEN = re.compile(r"<[A-Za-z]+(?:_[A-Za-z]+)*(?:_\d+)?>|\w+")
_PLACEHOLDER_NUMBER = re.compile(r"_\d+>$")


class FeatureSpec(BaseModel):
    """How a request becomes a vector; saved in the model card so every device computes the same one.

    ``ngram_max`` is the longest word n-gram hashed; ``signal_clip`` bounds each signal to
    ``[-signal_clip, signal_clip]`` before it is scaled to ``[-1, 1]``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_features: int = Field(default=1024, ge=8, le=1 << 20)
    ngram_max: int = Field(default=2, ge=1, le=4)
    signal_names: tuple[str, ...] = ()
    signal_clip: int = Field(default=10, ge=1, le=1_000_000)

    @field_validator("signal_names")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("signal names must be unique")
        return value

    @model_validator(mode="after")
    def _sorted(self) -> FeatureSpec:
        if list(self.signal_names) != sorted(self.signal_names):
            raise ValueError("signal names must be sorted, so the vector layout is canonical")
        return self

    @property
    def dim(self) -> int:
        """The length of a feature vector."""
        return self.n_features + len(self.signal_names)


def _tokens(text: str) -> list[str]:
    # Placeholders such as <PERSON_1> become one token without their number: the number
    # only tells people apart within one conversation and carries nothing to learn from.
    return [_PLACEHOLDER_NUMBER.sub(">", tok).lower() for tok in _TOKEN.findall(text)]


@functools.lru_cache(maxsize=1 << 16)
def _bucket(gram: str, n_features: int) -> tuple[int, float]:
    # blake2b is stable across processes and platforms (Python's hash() is salted per process).
    h = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "little")
    return (h >> 1) % n_features, (1.0 if h & 1 else -1.0)


def hashed_ngrams(text: str, spec: FeatureSpec) -> list[float]:
    """The L2-normalized signed hashed word n-grams of ``text`` (length ``spec.n_features``)."""
    tokens = _tokens(text)
    vec = [0.0] * spec.n_features
    for n in range(1, spec.ngram_max + 1):
        for i in range(len(tokens) - n + 1):
            index, sign = _bucket(" ".join(tokens[i:i + n]), spec.n_features)
            vec[index] += sign
    norm = math.sqrt(sum(v * v for v in vec))
    if norm > 0:
        vec = [v / norm for v in vec]
    return vec


def vectorize(features: PromptFeatures, spec: FeatureSpec) -> list[float]:
    """The feature vector of one request: hashed n-grams, then each named signal clipped and scaled.

    Raises ``RouterError`` naming the first signal the spec needs that ``features`` lacks;
    signals the spec does not name are ignored.
    """
    missing = [name for name in spec.signal_names if name not in features.signals]
    if missing:
        have = ", ".join(sorted(features.signals)) or "none"
        raise RouterError(f"the router needs uncertainty signal {missing[0]!r}, which the request does not "
                          f"carry (signals given: {have})")
    clip = float(spec.signal_clip)
    tail = [max(-clip, min(clip, features.signals[name])) / clip for name in spec.signal_names]
    return hashed_ngrams(features.prompt, spec) + tail


def vectorize_many(items: Sequence[PromptFeatures], spec: FeatureSpec) -> list[list[float]]:
    """``vectorize`` for many requests, in order."""
    return [vectorize(f, spec) for f in items]
