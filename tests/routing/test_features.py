"""The device-side feature vector: stable hashed n-grams plus clipped uncertainty signals."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from pydantic import ValidationError

from trustlayer.errors import RouterError
from trustlayer.routing.examples import PromptFeatures
from trustlayer.routing.features import FeatureSpec, hashed_ngrams, vectorize

SPEC = FeatureSpec(n_features=128, signal_names=("mean_entropy", "mean_logprob"), signal_clip=5)


def test_vector_layout_and_norm() -> None:
    vec = vectorize(PromptFeatures(prompt="what is the capital of France",
                                   signals={"mean_entropy": 2.5, "mean_logprob": -1.0}), SPEC)
    assert len(vec) == SPEC.dim == 130
    assert math.isclose(math.sqrt(sum(v * v for v in vec[:128])), 1.0)
    assert vec[128:] == [0.5, -0.2]


def test_signals_are_clipped_to_a_fixed_bound() -> None:
    vec = vectorize(PromptFeatures(prompt="x", signals={"mean_entropy": 1e9, "mean_logprob": -1e9}), SPEC)
    assert vec[128:] == [1.0, -1.0]


def test_extra_signals_are_ignored_missing_ones_named() -> None:
    extra = PromptFeatures(prompt="x", signals={"mean_entropy": 1.0, "mean_logprob": 1.0, "tokens": 9.0})
    assert len(vectorize(extra, SPEC)) == SPEC.dim
    with pytest.raises(RouterError, match="needs uncertainty signal 'mean_logprob'"):
        vectorize(PromptFeatures(prompt="x", signals={"mean_entropy": 1.0}), SPEC)


def test_placeholder_numbers_and_case_do_not_change_the_vector() -> None:
    a = hashed_ngrams("Call <PERSON_1> about the Lease", SPEC)
    b = hashed_ngrams("call <PERSON_27> about the lease", SPEC)
    assert a == b
    assert a != hashed_ngrams("call <LOCATION_1> about the lease", SPEC)


def test_word_order_matters_through_bigrams() -> None:
    assert hashed_ngrams("dog bites man", SPEC) != hashed_ngrams("man bites dog", SPEC)
    unigrams = SPEC.model_copy(update={"ngram_max": 1})
    assert hashed_ngrams("dog bites man", unigrams) == hashed_ngrams("man bites dog", unigrams)


def test_empty_prompt_is_the_zero_vector() -> None:
    assert hashed_ngrams("", SPEC) == [0.0] * 128


def test_hashing_is_the_same_in_another_process() -> None:
    # Python's own hash() is salted per process; a router trained on one device must see the
    # same vector on another.
    code = ("from trustlayer.routing.features import FeatureSpec, hashed_ngrams;"
            "print(hashed_ngrams('renew the lease for <PERSON_1>', FeatureSpec(n_features=128)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""}).stdout
    assert out.strip() == str(hashed_ngrams("renew the lease for <PERSON_1>", FeatureSpec(n_features=128)))


@pytest.mark.parametrize(("names", "problem"), [
    (("b", "a"), "must be sorted"),
    (("a", "a"), "must be unique"),
])
def test_spec_signal_names_are_canonical(names: tuple[str, ...], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        FeatureSpec(signal_names=names)
