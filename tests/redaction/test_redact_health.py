"""HEALTH_CONDITION through the real detector: personal statements are found, general medical questions are not."""

from __future__ import annotations

import re
import time

import pytest

from trustlayer.redaction import DEFAULT_ENTITY_TYPES, ENTITY_TYPES, PATTERN_ENTITY_TYPES, Redactor
from trustlayer.redaction.recognizers.health import LEXICON, RULE, personal
from trustlayer.redaction.recognizers.health_terms import CASE_SENSITIVE, TERMS, expand
from trustlayer.types import Message

# (text, the condition terms it must yield, in order)
PERSONAL = [
    ("I was diagnosed with diabetes last year, what should I eat?", ["diabetes"]),
    ("my daughter has epilepsy and starts school soon", ["epilepsy"]),
    ("I'm on metformin and feel dizzy in the mornings", ["metformin"]),
    ("He is HIV positive.", ["HIV positive"]),
    ("I'm HIV-positive and moving to Berlin", ["HIV-positive"]),
    ("my depression is getting worse", ["depression"]),
    ("I have type 2 diabetes and take metformin 500mg twice a day", ["type 2 diabetes", "metformin"]),
    ("My son, who has autism, hates loud noises", ["autism"]),
    ("Diagnosed with T2D in 2019, now on Ozempic.", ["T2D", "Ozempic"]),
    ("Patient is a 54-year-old male with hypertension and CKD.", ["hypertension", "CKD"]),
    ("Dx: type 2 diabetes mellitus", ["type 2 diabetes mellitus"]),
    ("Meds: lisinopril 10mg, atorvastatin 20 mg", ["lisinopril", "atorvastatin"]),
    ("I'm pregnant, is coffee ok?", ["pregnant"]),
    ("My grandmother had a stroke last month.", ["stroke"]),
    ("Anna has breast cancer and needs time off.", ["breast cancer"]),
    ("I've been taking sertraline for two years", ["sertraline"]),
    ("I had a hysterectomy in March", ["hysterectomy"]),
    ("I suffer from migraines", ["migraines"]),
    ("my mum's Alzheimer’s is progressing", ["Alzheimer’s"]),
    ("I'm allergic to penicillin", ["penicillin"]),
    ("I have asthma, eczema and hay fever", ["asthma", "eczema", "hay fever"]),
    ("Why do I have migraines every morning?", ["migraines"]),
    ("She was prescribed Xanax by her GP", ["Xanax"]),
    ("I'm bipolar and my lithium levels are off", ["bipolar", "lithium"]),
    ("my PrEP prescription ran out", ["PrEP"]),
    ("I think I might have ADHD", ["ADHD"]),
    ("I'm in rehab for alcohol addiction", ["rehab", "alcohol addiction"]),
    ("my severe type-2 diabetes is under control now", ["type-2 diabetes"]),
    ("I have a history of depression and anxiety", ["depression", "anxiety"]),
    ("My husband was recently diagnosed with multiple sclerosis.", ["multiple sclerosis"]),
]

# Decided: a negated or doubtful statement about one's own health is still data concerning health
# (GDPR Recital 35: results of tests and examinations; a condition's absence is a health status).
NEGATED = [
    ("I don't have diabetes but my father does", ["diabetes"]),
    ("I tested negative for HIV last week", ["HIV"]),
    ("I was not diagnosed with cancer after all", ["cancer"]),
]

GENERAL = [
    "What causes diabetes?",
    "explain how insulin works",
    "Is metformin safe during pregnancy?",
    "What are the symptoms of depression?",
    "How is HIV transmitted?",
    "Write a blog post about epilepsy awareness",
    "Summarize the latest research on Alzheimer's disease",
    "Can you take ibuprofen with paracetamol?",
    "What's the difference between type 1 and type 2 diabetes?",
    "How do people with ADHD focus better?",
    "My essay on schizophrenia needs a conclusion",
    "I'm writing a paper about cancer treatment",
    "I'm a diabetes nurse at the local hospital",
    "Should I take ibuprofen or paracetamol for a fever?",
    "Do I have diabetes if my fasting glucose is 105?",
    "If my son has epilepsy, can he swim?",
    "Can a patient with diabetes fly?",
    "My lithium battery is swelling",
    "I work in cancer research",
    "We have a diabetes clinic on the 3rd floor",
    "Children have asthma more often than adults",
    "I have a question about insulin pricing",
    "I need information on metformin side effects",
    "Hearing aids and visual aids for the classroom",
    "meal prep ideas for the week",
    "I have an MS in computer science",
    "Texas has a diabetes epidemic",
    "I'm a Cancer, what's my horoscope?",
    "History of insulin: who discovered it?",
    "Taking ibuprofen on an empty stomach, is it bad?",
    "What is Crohn's disease?",
    "Tell me about Hashimoto's",
]


def _health(redactor: Redactor, text: str) -> list[str]:
    msg = Message.from_text(text, conversation_id="health")
    return [text[f.start:f.end] for f in sorted(redactor.detect(msg), key=lambda f: f.start)
            if f.entity_type == "HEALTH_CONDITION"]


def test_the_type_is_in_the_catalogue_and_on_the_fast_path() -> None:
    assert "HEALTH_CONDITION" in ENTITY_TYPES
    assert "HEALTH_CONDITION" in PATTERN_ENTITY_TYPES  # no NER needed
    assert "HEALTH_CONDITION" in DEFAULT_ENTITY_TYPES  # searched for without being asked


@pytest.mark.parametrize(("text", "terms"), PERSONAL + NEGATED, ids=[t for t, _ in PERSONAL + NEGATED])
def test_personal_statements_are_found(fast: Redactor, text: str, terms: list[str]) -> None:
    assert _health(fast, text) == terms


@pytest.mark.parametrize("text", GENERAL)
def test_general_questions_are_not(fast: Redactor, text: str) -> None:
    assert _health(fast, text) == []


@pytest.mark.parametrize("text", GENERAL)
def test_general_questions_pass_unaltered_with_ner(full: Redactor, text: str) -> None:
    msg = Message.from_text(text, conversation_id="general")
    out, findings = full.redact(msg)
    assert findings == [] and out == msg


def test_fast_path_alone_finds_it(fast: Redactor) -> None:
    msg = Message.from_text("my son has epilepsy", conversation_id="fp")
    found = fast.detect(msg, entities=frozenset({"HEALTH_CONDITION"}))
    assert [(f.entity_type, f.start, f.end, f.detector) for f in found] == [
        ("HEALTH_CONDITION", 11, 19, "trustlayer:health_condition")]


def test_clauses_do_not_leak_context(fast: Redactor) -> None:
    # The possessive belongs to another clause: the question after it is general.
    assert _health(fast, "My laptop is slow. What causes diabetes?") == []
    assert _health(fast, "I have two kids; what is asthma?") == []


def test_a_name_next_to_a_condition_is_still_found(full: Redactor) -> None:
    msg = Message.from_text("Maria Schmidt was diagnosed with Crohn's disease in May.", conversation_id="n")
    found = {(f.entity_type, msg.text[f.start:f.end]) for f in full.detect(msg)}  # type: ignore[index]
    assert ("HEALTH_CONDITION", "Crohn's disease") in found
    assert any(t == "PERSON" and "Schmidt" in v for t, v in found)


def test_a_condition_is_replaced_wherever_it_recurs_in_any_case(fast: Redactor) -> None:
    text = "I have Diabetes. Is diabetes hereditary? My sister asked about DIABETES too."
    msg = Message.from_text(text, conversation_id="rep")
    out, findings = fast.redact(msg)
    assert len(findings) == 3 and "iabetes" not in (out.text or "").lower()
    assert fast.restore(out) == msg


def test_round_trip_restores_the_condition(fast: Redactor) -> None:
    text = "I was diagnosed with type 1 diabetes and I'm on insulin. Is fasting safe for me?"
    msg = Message.from_text(text, conversation_id="rt")
    out, findings = fast.redact(msg)
    sent = out.text or ""
    assert [f.entity_type for f in findings] == ["HEALTH_CONDITION", "HEALTH_CONDITION"]
    assert "diabetes" not in sent and "insulin" not in sent
    placeholders = re.findall(r"<HEALTH_CONDITION_[0-9a-f]{6}>", sent)
    assert len(placeholders) == 2
    assert fast.restore(out) == msg
    # An answer that quotes the placeholder (rewritten by a model) is restored for the caller.
    reply = Message.from_text(f"With {placeholders[0].strip('<>').lower()} and {placeholders[1]}, ask your doctor.",
                              conversation_id="rt")
    assert fast.restore(reply).text == "With type 1 diabetes and insulin, ask your doctor."


def test_round_trip_in_chat_turns_and_tool_arguments(fast: Redactor) -> None:
    turns = [
        {"role": "user", "content": "My wife has epilepsy."},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "note", "arguments": '{"diagnosis": "epilepsy", "medications": "lamotrigine"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    msg = Message.from_openai(turns, conversation_id="chat")
    out, findings = fast.redact(msg)
    body = out.canonical_bytes().decode()
    assert "epilepsy" not in body and "lamotrigine" not in body
    assert {f.entity_type for f in findings} == {"HEALTH_CONDITION"}
    assert fast.restore(out) == msg


def test_lists_one_item_per_line_continue(fast: Redactor) -> None:
    assert _health(fast, "My conditions:\n- asthma\n- type 1 diabetes\n- coeliac disease") == [
        "asthma", "type 1 diabetes", "coeliac disease"]
    assert _health(fast, "My son has asthma.\nWhat is diabetes?") == ["asthma"]
    turns = [{"role": "assistant", "content": None, "tool_calls": [{
        "id": "c1", "type": "function",
        "function": {"name": "note", "arguments": '{"conditions": ["asthma", "diabetes"], "meds": ["keppra"]}'}}]}]
    msg = Message.from_openai(turns, conversation_id="arr")
    out, findings = fast.redact(msg)
    body = out.canonical_bytes().decode()
    assert len(findings) == 3 and "asthma" not in body and "diabetes" not in body and "keppra" not in body
    assert fast.restore(out) == msg


def test_every_term_of_the_list_matches_as_a_whole_word() -> None:
    for term in TERMS:
        m = LEXICON.fullmatch(term)
        assert m is not None, term
    for term in CASE_SENSITIVE:
        assert LEXICON.fullmatch(term) is not None, term
        if term.lower() != term:
            assert LEXICON.fullmatch(term.lower()) is None, term
    assert LEXICON.search("prediabetic") is not None and LEXICON.search("antidiabetic") is None


def test_the_list_is_a_few_hundred_terms_with_inflections() -> None:
    assert expand("tumo(u)r(s)") == {"tumor", "tumour", "tumors", "tumours"}
    assert expand("generali(z|s)ed") == {"generalized", "generalised"}
    assert 300 <= len(TERMS) <= 2000


def test_a_long_list_costs_one_check_per_term() -> None:
    # A list continues a personal term term by term; it must not recurse (RecursionError) or go quadratic.
    text = "I have " + "asthma, " * 3000
    started = time.perf_counter()
    found = list(RULE.find(text))
    assert len(found) == 3000
    assert time.perf_counter() - started < 10  # ~0.15 s here; quadratic or recursive took 12 s and failed
    assert personal(text, found[-1].start, found[-1].end)
    assert not personal(text, 0, 1)  # not a term
