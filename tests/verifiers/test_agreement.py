from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustlayer.errors import ConfigError
from trustlayer.verifiers.agreement import (
    ExactMeasure,
    F1Measure,
    exact,
    extract_answer,
    measure_for,
    normalize,
    token_f1,
)


@pytest.mark.parametrize(("a", "b"), [
    ("1,000", "1000"),
    ("1000.0", "1000"),
    ("$1,000.00", "1000"),
    ("0.50", ".5"),
    ("-3", "-3.0"),
    ("The answer is 1,000.", "1000"),
    ("Step 1: 600 + 400 = 1000.\n#### 1,000", "1000.0"),
    ("\\boxed{42}", "42"),
    ("The answer is 1000 apples.", "1,000"),
    ("Answer: $1,200 in total", "1200"),
    ("Final answer: Paris.", "paris"),
    ("The Eiffel Tower", "eiffel tower"),
    ("Yes.", "yes"),
    ("True", "yes"),
    ("No, it is not.", "no"),
    ("(B)", "b"),
    ("B)", "B"),
    ("Option C", "c"),
    ("3 + 4 = 7", "7"),
    ("12 + 30 = 42\n\nThis is a classic example of adding two numbers together.", "42"),
    ("The capital of France is Paris.", "Paris"),
    ("The sky is blue.", "blue"),
    ("Answer: (d)", "D."),
])
def test_equal_answers_match(a: str, b: str) -> None:
    assert exact(a, b) == 1.0


@pytest.mark.parametrize(("a", "b"), [
    ("1000", "1001"),
    ("1,000", "100"),
    ("10.5", "105"),
    ("yes", "no"),
    ("(A)", "(B)"),
    ("Paris", "Berlin"),
    ("The answer is 12.", "The answer is 21."),
    ("The capital of France is Paris.", "Berlin"),
    ("15 + 10 =", "25"),
])
def test_different_answers_do_not_match(a: str, b: str) -> None:
    assert exact(a, b) == 0.0


def test_extract_answer_takes_the_last_marker_and_cuts_the_explanation() -> None:
    reply = "The answer is 5 at first glance. Rechecking, the answer is 7. Because 3 + 4 = 7."
    assert extract_answer(reply) == "7"
    assert extract_answer("She buys 3 apples at $2 and pays with a $10 bill, keeping $4 in change") == "$4"
    assert extract_answer("  42  ") == "42"
    assert extract_answer("") == ""


def test_normalize_squad_style() -> None:
    assert normalize("  The  Beatles! ") == "beatles"
    assert normalize("An apple") == "apple"


def test_token_f1() -> None:
    assert token_f1("the cat sat", "the cat sat") == 1.0
    assert token_f1("cat", "dog") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("red blue", "red green") == pytest.approx(0.5)


@given(st.integers(min_value=-10**9, max_value=10**9))
def test_number_formats_agree_and_neighbours_differ(n: int) -> None:
    assert exact(f"{n:,}", f"{n}.0") == 1.0
    assert exact(f"The answer is {n:,}.", f"#### {n}") == 1.0
    assert exact(str(n), str(n + 1)) == 0.0


@given(st.lists(st.text(max_size=30), min_size=1, max_size=5))
def test_measures_are_symmetric_with_unit_diagonal(answers: list[str]) -> None:
    for measure in (ExactMeasure(), F1Measure()):
        m = measure.matrix(answers)
        for i in range(len(answers)):
            assert m[i][i] == 1.0
            for j in range(len(answers)):
                assert m[i][j] == m[j][i]
                assert 0.0 <= m[i][j] <= 1.0


def test_measure_for_names_the_unknown_measure() -> None:
    assert measure_for("exact").name == "exact"
    assert measure_for("f1") is measure_for("f1")
    with pytest.raises(ConfigError, match="unknown agreement measure 'cosine'; expected one of exact, f1, "
                                          "embedding, auto"):
        measure_for("cosine")


def test_cascade_uses_exact_for_short_answers_and_f1_outside_the_band() -> None:
    from trustlayer.verifiers.agreement import CascadeMeasure

    m = CascadeMeasure(low=0.3, high=0.8).matrix([
        "The answer is 1,000.",
        "#### 1000",
        "the quick brown fox jumps over the lazy dog near the river bank today",
        "the quick brown fox jumps over the lazy dog near the river bank today again",
    ])
    assert m[0][1] == 1.0
    assert m[2][3] >= 0.8  # decided by F1, no model needed
    assert m[0][2] < 0.3
    with pytest.raises(ConfigError, match="cascade band"):
        CascadeMeasure(low=0.9, high=0.1)


def test_long_numbers_are_not_rounded_into_equality() -> None:
    assert normalize("10000000000000000000000000000") == "10000000000000000000000000000"
    assert exact("100000000000000000000000000001", "100000000000000000000000000000") == 0.0
