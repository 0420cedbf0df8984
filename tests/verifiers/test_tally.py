from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustlayer.errors import ConfigError
from trustlayer.verifiers.agreement import ExactMeasure, F1Measure, extract_answer, normalize
from trustlayer.verifiers.tally import tally

EXACT = ExactMeasure()


def test_majority_wins_and_the_minority_dissents() -> None:
    v = tally({"a": "7", "b": "8", "c": "The answer is 7.", "d": "7.0", "e": "9"},
              panel=("a", "b", "c", "d", "e"), measure=EXACT, quorum=3)
    assert v.verified and v.answer == "7" and v.answered_by == "a"
    assert v.agreeing == ("a", "c", "d")
    assert v.dissenting == ("b", "e")
    assert v.agreement == pytest.approx(0.6)
    assert v.evidence["support"] == 3.0


def test_quorum_not_met_gives_no_answer() -> None:
    v = tally({"a": "7", "b": "7", "c": "8"}, panel=("a", "b", "c"), measure=EXACT, quorum=3)
    assert v.outcome == "unverified"
    assert v.answer is None and v.answered_by is None
    assert v.agreeing == ("a", "b") and v.dissenting == ("c",)


def test_a_split_panel_is_unverified_even_when_each_side_meets_the_quorum() -> None:
    v = tally({"a": "7", "b": "7", "c": "8", "d": "8"}, panel=("a", "b", "c", "d"), measure=EXACT, quorum=2)
    assert v.outcome == "unverified"
    assert v.evidence["split"] == 1.0


def test_missing_endpoints_abstain_and_count_against_the_quorum() -> None:
    v = tally({"a": "7"}, panel=("a", "b", "c"), measure=EXACT, quorum=2,
              abstained={"b": "timeout"})
    assert v.abstained == {"b": "timeout", "c": "missing"}
    assert v.outcome == "unverified"
    assert v.agreement == pytest.approx(1 / 3)


def test_nobody_answered() -> None:
    v = tally({}, panel=("a", "b"), measure=EXACT, quorum=1, abstained={"a": "policy", "b": "timeout"})
    assert v.outcome == "unverified" and v.agreement == 0.0 and v.answer is None


def test_primary_breaks_ties_between_equal_answers() -> None:
    v = tally({"a": "7", "b": "7.0"}, panel=("a", "b"), measure=EXACT, quorum=2, primary="b")
    assert v.answered_by == "b" and v.answer == "7.0"


def test_f1_threshold_decides_who_agrees() -> None:
    answers = {"a": "Paris is the capital of France",
               "b": "The capital of France is Paris",
               "c": "Berlin is the capital of Germany"}
    v = tally(answers, panel=("a", "b", "c"), measure=F1Measure(), quorum=2, threshold=0.8)
    assert v.verified and set(v.agreeing) == {"a", "b"} and v.dissenting == ("c",)
    loose = tally(answers, panel=("a", "b", "c"), measure=F1Measure(), quorum=3, threshold=0.3)
    assert loose.verified and set(loose.agreeing) == {"a", "b", "c"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"panel": ()}, "at least one endpoint"),
    ({"quorum": 4}, "quorum 4 must be between 1 and the panel size 3"),
    ({"quorum": 0}, "quorum 0 must be between 1"),
    ({"answers": {"z": "1"}}, "outside the panel: z"),
    ({"abstained": {"a": "timeout"}}, "both answered and abstained: a"),
])
def test_inconsistent_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"answers": {"a": "1"}, "panel": ("a", "b", "c"), "measure": EXACT, "quorum": 2}
    args.update(kwargs)
    answers = args.pop("answers")
    with pytest.raises(ConfigError, match=message):
        tally(answers, **args)  # type: ignore[arg-type]


@given(answers=st.lists(st.sampled_from(["7", "7.0", "8", "9", "The answer is 7."]), min_size=1, max_size=6),
       quorum=st.integers(min_value=1, max_value=6), abstain=st.integers(min_value=0, max_value=2))
def test_verdict_invariants(answers: list[str], quorum: int, abstain: int) -> None:
    ids = [f"e{i}" for i in range(len(answers) + abstain)]
    quorum = min(quorum, len(ids))
    given_answers = dict(zip(ids, answers, strict=False))
    v = tally(given_answers, panel=tuple(ids), measure=EXACT, quorum=quorum,
              abstained={e: "timeout" for e in ids[len(answers):]})
    assert set(v.agreeing) | set(v.dissenting) == set(given_answers)
    assert not set(v.agreeing) & set(v.dissenting)
    assert set(v.abstained) == set(ids[len(answers):])
    assert v.agreement == pytest.approx(len(v.agreeing) / len(ids))
    if v.verified:
        assert len(v.agreeing) >= quorum and v.answered_by in v.agreeing
        assert v.answer == given_answers[v.answered_by]
        # no rival answer among the dissenters has as much support (else the panel is split)
        rivals = Counter(normalize(extract_answer(given_answers[e])) for e in v.dissenting)
        assert max(rivals.values(), default=0) < len(v.agreeing)
    else:
        assert v.answer is None and v.answered_by is None
