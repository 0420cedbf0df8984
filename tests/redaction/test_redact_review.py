"""Regressions found in review: NER skipped for lower-case places, a repeat lookup that failed on
case folding (and quoted the name), and first names dropped because a drug bears them."""

from __future__ import annotations

import pytest

from trustlayer.redaction import Redactor
from trustlayer.types import Message


def found(redactor: Redactor, text: str, entities: frozenset[str] | None = None) -> set[tuple[str, str]]:
    msg = Message.from_text(text, conversation_id="review")
    return {(f.entity_type, text[f.start:f.end]) for f in redactor.detect(msg, entities=entities)}


@pytest.mark.parametrize("text, place", [
    ("i live in berlin now", "berlin"),
    ("i moved to new york last year", "new york"),
])
def test_a_place_written_in_lower_case_still_reaches_ner(full: Redactor, text: str, place: str) -> None:
    assert ("LOCATION", place) in found(full, text)


def test_a_name_with_a_capital_outside_latin_1_still_reaches_ner(full: Redactor) -> None:
    assert any(kind == "PERSON" and "Łukasz" in value
               for kind, value in found(full, "please ask Łukasz about the invoice"))


def test_a_repeated_name_matched_through_case_folding_is_found_not_a_crash(fast: Redactor) -> None:
    text = "My name is Ilkay Demir. İlkay will call."
    spans = found(fast, text)
    assert ("PERSON", "İlkay") in spans or any(v.startswith("İlkay") for _, v in spans)


@pytest.mark.parametrize("text", [
    "Send the invoice to Kyleena by Friday.",
    "Kyleena has diabetes, so ask her first.",
    "Kyleena works at the bank on Main Street.",
])
def test_a_first_name_that_is_also_a_drug_stays_a_person(full: Redactor, text: str) -> None:
    assert ("PERSON", "Kyleena") in found(full, text)


@pytest.mark.parametrize("text", [
    "Explain how Wegovy works, in simple words.",
    "Compare Humira and mesalamine for adults.",
    "What is the usual Wegovy dose?",
])
def test_a_drug_talked_about_as_a_drug_is_not_a_person(full: Redactor, text: str) -> None:
    assert not any(kind == "PERSON" for kind, _ in found(full, text))


def test_a_drug_stated_as_taken_is_a_condition_not_a_person(full: Redactor) -> None:
    spans = found(full, "I'm on Wegovy since March.")
    assert ("HEALTH_CONDITION", "Wegovy") in spans
    assert not any(kind == "PERSON" for kind, _ in spans)


@pytest.mark.parametrize("text", [
    "Write a Python function that returns the 100th Fibonacci number.",
    "Implement Dijkstra's algorithm in Go.",
])
def test_a_surname_naming_a_method_is_not_a_person(full: Redactor, text: str) -> None:
    assert not any(kind == "PERSON" for kind, _ in found(full, text))


@pytest.mark.parametrize(("text", "name"), [
    ("Mary's problem is her knee.", "Mary"),
    ("Send the Fibonacci report to Anna Schmidt.", "Anna Schmidt"),
])
def test_a_person_next_to_such_words_stays_a_person(full: Redactor, text: str, name: str) -> None:
    assert ("PERSON", name) in found(full, text)
