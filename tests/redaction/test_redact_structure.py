"""Every part of an OpenAI-style request is searched and rewritten; bad input has defined behaviour."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustlayer.errors import RedactionError
from trustlayer.redaction import Redactor
from trustlayer.redaction.detector import MAX_MESSAGE_CHARS
from trustlayer.redaction.jsonargs import MAX_DEPTH
from trustlayer.types import Message, Operator

SECRET_VALUES = ["ada@example.org", "AKIAIOSFODNN7EXAMPLE", "+1 415-555-2671", "hunter2x!", "GB82WEST12345698765432",
                 "bob@corp.io", "10.9.8.7"]


def _chat() -> Message:
    return Message.from_openai([
        {"role": "system", "content": "Support bot. Escalations go to ada@example.org."},
        {"role": "user", "content": "my key AKIAIOSFODNN7EXAMPLE leaked, call +1 415-555-2671"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1", "type": "function", "function": {
            "name": "rotate", "arguments": json.dumps({"user": {"email": "bob@corp.io", "password": "hunter2x!"},
                                                       "iban": "GB82WEST12345698765432"})}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "rotated on host 10.9.8.7"},
        {"role": "user", "name": "ada@example.org", "content": [{"type": "text", "text": "thanks"}]},
    ], conversation_id="conv-s")


def test_every_field_is_redacted_and_restored(fast: Redactor) -> None:
    msg = _chat()
    out, findings = fast.redact(msg)
    wire = json.dumps(out.to_openai())
    for value in SECRET_VALUES:
        assert value not in wire and json.dumps(value)[1:-1] not in wire, value
    args = out.to_openai()[2]["tool_calls"][0]["function"]["arguments"]
    parsed = json.loads(args)
    assert parsed["user"]["email"].startswith("<EMAIL_ADDRESS_") and parsed["user"]["password"].startswith("<PASSWORD_")
    assert {f.path for f in findings} >= {"turns[0].content", "turns[1].content",
                                          "turns[2].tool_calls[0].function.arguments", "turns[3].content",
                                          "turns[4].name"}
    assert fast.restore(out) == msg
    # The same value gets the same placeholder in every turn; a name field gets the
    # bracket-free form, which OpenAI accepts as a participant name.
    name = out.to_openai()[4]["name"]
    assert name.startswith("EMAIL_ADDRESS_") and f"<{name}>" in out.to_openai()[0]["content"]


def test_tool_call_offsets_are_in_the_json_string_as_given(fast: Redactor) -> None:
    raw = '{"note": "caf\\u00e9 \\"x\\" ada@example.org"}'
    msg = Message.from_openai([{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": raw}}]}], conversation_id="c")
    [finding] = fast.detect(msg)
    assert raw[finding.start:finding.end] == "ada@example.org"


def test_numbers_holding_card_numbers_become_strings(fast: Redactor) -> None:
    raw = '{"card": 4111111111111111, "qty": 2}'
    msg = Message.from_openai([{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "pay", "arguments": raw}}]}], conversation_id="c")
    out, _ = fast.redact(msg)
    parsed = json.loads(out.to_openai()[0]["tool_calls"][0]["function"]["arguments"])
    assert parsed["card"].startswith("<CREDIT_CARD_") and parsed["qty"] == 2
    assert fast.restore(out).to_openai()[0]["tool_calls"][0]["function"]["arguments"] == \
        '{"card": "4111111111111111", "qty": 2}'


def _args_message(raw: str) -> Message:
    return Message.from_openai([{"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": raw}}]}], conversation_id="c")


def test_invalid_tool_call_json_is_refused_naming_the_field(fast: Redactor) -> None:
    with pytest.raises(RedactionError, match=r"turns\[0\]\.tool_calls\[0\]\.function\.arguments: .*not valid JSON "
                                             r"\(line 1 column"):
        fast.detect(_args_message('{"to": "ada@example.org", '))


def test_invalid_tool_call_json_error_holds_no_raw_value(fast: Redactor) -> None:
    with pytest.raises(RedactionError) as info:
        fast.detect(_args_message('{"to": ada@example.org}'))
    assert "ada@example.org" not in str(info.value)


def test_deeply_nested_json_is_refused(fast: Redactor) -> None:
    raw = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(RedactionError, match=f"nest {MAX_DEPTH + 1} levels deep; at most {MAX_DEPTH}"):
        fast.detect(_args_message(raw))
    very_deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(RedactionError, match="levels deep"):
        fast.detect(_args_message(very_deep))


def test_nesting_at_the_limit_is_accepted(fast: Redactor) -> None:
    raw = "[" * MAX_DEPTH + '"ada@example.org"' + "]" * MAX_DEPTH
    out, _ = fast.redact(_args_message(raw))
    assert "ada@example.org" not in out.to_openai()[0]["tool_calls"][0]["function"]["arguments"]


def test_one_megabyte_message_is_redacted(fast: Redactor) -> None:
    filler = "lorem ipsum dolor sit amet " * 40
    block = filler + "contact ada@example.org or 10.1.2.3\n"
    text = (block * (1_000_000 // len(block) + 1))[:1_000_000]
    msg = Message.from_text(text, conversation_id="big")
    out, findings = fast.redact(msg, entities=frozenset({"EMAIL_ADDRESS", "IP_ADDRESS"}))
    assert out.text is not None and "ada@example.org" not in out.text and "10.1.2.3" not in out.text
    assert len(findings) >= 2 * (1_000_000 // len(block))


def test_oversized_message_is_refused(fast: Redactor) -> None:
    msg = Message.from_text("a" * (MAX_MESSAGE_CHARS + 1), conversation_id="c")
    with pytest.raises(RedactionError, match=f"more than {MAX_MESSAGE_CHARS} characters"):
        fast.detect(msg)


def test_lone_surrogate_text_is_redacted_and_restored(fast: Redactor) -> None:
    msg = Message.from_text("bad \ud800 byte, mail ada@example.org", conversation_id="c")
    out, _ = fast.redact(msg)
    assert out.text is not None and "ada@example.org" not in out.text
    assert fast.restore(out) == msg


def test_user_typed_placeholder_is_not_restored_to_another_conversations_value(fast: Redactor) -> None:
    victim = Message.from_text("my email is victim@example.org", conversation_id="victim")
    leaked, _ = fast.redact(victim)
    assert leaked.text is not None
    placeholder = leaked.text.split()[-1]
    # An attacker types the victim's placeholder into their own conversation.
    attack = Message.from_text(f"what is {placeholder}?", conversation_id="attacker")
    out, _ = fast.redact(attack)
    echoed = Message.from_text(f"You asked about {placeholder}.", conversation_id="attacker")
    assert "victim@example.org" not in (fast.restore(echoed).text or "")
    assert out.text == attack.text  # nothing to redact, nothing raw


def test_unknown_entity_type_is_refused(fast: Redactor) -> None:
    with pytest.raises(RedactionError, match="no detector for entity type.*EMAIL_ADRESS"):
        fast.detect(Message.from_text("x", conversation_id="c"), entities=frozenset({"EMAIL_ADRESS"}))


def test_transform_refuses_inconsistent_findings(fast: Redactor) -> None:
    from trustlayer.types import Finding

    msg = Message.from_text("short", conversation_id="c")
    with pytest.raises(RedactionError, match="names field 'turns\\[3\\].content'"):
        fast.transform(msg, [Finding(entity_type="PERSON", start=0, end=2, score=1, detector="t",
                                     path="turns[3].content")], {"PERSON": Operator.MASK})
    with pytest.raises(RedactionError, match="ends at 99, past the field's 5 characters"):
        fast.transform(msg, [Finding(entity_type="PERSON", start=0, end=99, score=1, detector="t")],
                       {"PERSON": Operator.MASK})
    with pytest.raises(RedactionError, match="operator 'shred' for PERSON is not one of"):
        fast.transform(msg, [], {"PERSON": "shred"})  # type: ignore[dict-item]


def test_fast_path_never_loads_spacy(vault, monkeypatch: pytest.MonkeyPatch) -> None:
    from trustlayer.redaction import nlp

    def boom() -> None:
        raise AssertionError("NER was loaded on the pattern-only path")

    monkeypatch.setattr(nlp, "ner_engine", boom)
    r = Redactor(vault, ner=True)
    msg = Message.from_text("mail ada@example.org, key AKIAIOSFODNN7EXAMPLE", conversation_id="c")
    found = r.detect(msg, entities=frozenset({"EMAIL_ADDRESS", "API_KEY"}))
    assert {f.entity_type for f in found} == {"EMAIL_ADDRESS", "API_KEY"}
    with pytest.raises(RedactionError, match="detection failed: AssertionError"):
        r.detect(Message.from_text("Ask Ada Lovelace", conversation_id="c"), entities=frozenset({"PERSON"}))
    # No capitalized word that could start a name: the model is not needed at all.
    assert r.detect(Message.from_text("ok, thanks! see you", conversation_id="c")) == []


def test_from_config_uses_vault_and_detection_settings(tmp_path) -> None:
    from trustlayer.config import load_config

    (tmp_path / "trustlayer.yaml").write_text(
        "version: 1\n"
        "identity: {id: phone, key: keys/phone.key}\n"
        "endpoints:\n  - {id: phone, kind: device, jurisdiction: DE}\n"
        "vault: {path: data/vault.db, key_file: data/vault.key, ttl_seconds: 60}\n"
        "redaction: {score_threshold: 0.9, ner: false}\n")
    cfg = load_config(tmp_path / "trustlayer.yaml")
    r = Redactor.from_config(cfg)
    assert not r.ner and r.vault.ttl_seconds == 60
    assert (tmp_path / "data" / "vault.key").exists() and (tmp_path / "data" / "vault.db").exists()
    msg = Message.from_text("mail ada@example.org or 030 12345678", conversation_id="c")
    # threshold 0.9: the public-suffix e-mail (1.0) stays, the context-free phone (0.75) is dropped
    assert [f.entity_type for f in r.detect(msg)] == ["EMAIL_ADDRESS"]
    # the same key file again: placeholders stay stable across restarts
    again = Redactor.from_config(cfg)
    assert again.vault.pseudonym("c", "PERSON", "Ada") == r.vault.pseudonym("c", "PERSON", "Ada")


def test_unexpected_failures_become_redaction_errors_without_content(fast: Redactor,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from trustlayer.redaction import detector

    def broken(text: str, spans: object) -> list[object]:
        raise ValueError(f"cannot handle {text}")  # a third-party style message quoting the input

    monkeypatch.setattr(detector, "suppress", broken)
    with pytest.raises(RedactionError, match=r"^detection failed: ValueError$") as info:
        fast.detect(Message.from_text("call +1 415-555-2671", conversation_id="c"))
    assert "415" not in str(info.value)


def test_many_distinct_values_in_one_big_message(fast: Redactor) -> None:
    text = "\n".join(f"10.{i // 250}.{i % 250}.1 user{i}@example.org" for i in range(5000))
    out, findings = fast.redact(Message.from_text(text, conversation_id="log"))
    assert len(findings) == 10_000 and out.text is not None and "@example.org" not in out.text


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.text(alphabet="abAB.+*(1 -@ß", min_size=1, max_size=6), min_size=1, max_size=12,
                      unique=True),
       picks=st.lists(st.integers(min_value=0, max_value=11), max_size=12),
       glue=st.lists(st.sampled_from([" ", "x", "-", "@", ".", "\n", ""]), max_size=12),
       ignorecase=st.booleans())
def test_the_trie_pattern_matches_what_a_longest_first_alternation_matches(
        words: list[str], picks: list[int], glue: list[str], ignorecase: bool) -> None:
    """The repeat search's trie regex finds the same values at the same places as the flat alternation it replaced."""
    from trustlayer.redaction.detector import _trie_alternation

    if ignorecase:
        words = list(dict.fromkeys(w.lower() for w in words))  # the detector keys names in lower case
    doc = "".join(words[p % len(words)] + (glue[i] if i < len(glue) else " ") for i, p in enumerate(picks))
    flags = re.IGNORECASE if ignorecase else 0
    ordered = sorted(range(len(words)), key=lambda i: len(words[i]), reverse=True)
    flat = re.compile(r"(?<![\w@.-])(?:" + "|".join(f"(?P<v{i}>{re.escape(words[i])})" for i in ordered)
                      + r")(?![\w@-])", flags)
    trie = re.compile(r"(?<![\w@.-])" + _trie_alternation(words) + r"(?![\w@-])", flags)

    def found(pattern: re.Pattern[str]) -> list[tuple[int, int, str]]:
        return [(m.start(), m.end(), words[int(str(m.lastgroup)[1:])]) for m in pattern.finditer(doc)]

    assert found(trie) == found(flat)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.text(alphabet="abAB.+*1 -@_", min_size=3, max_size=6), min_size=1, max_size=12,
                      unique=True),
       picks=st.lists(st.integers(min_value=0, max_value=11), max_size=12),
       glue=st.lists(st.sampled_from([" ", "x", "-", "@", ".", "\n", "", "A"]), max_size=12),
       ignorecase=st.booleans())
def test_the_substring_search_for_a_few_values_finds_what_the_pattern_finds(
        words: list[str], picks: list[int], glue: list[str], ignorecase: bool) -> None:
    """A few values in ASCII text are found with str.find: same places, same values as the regex."""
    from trustlayer.redaction.detector import _occurrences
    from trustlayer.redaction.recognizers import Span

    words = list(dict.fromkeys([*words, *(w[:3] for w in words)]))  # values that begin other values
    if ignorecase:
        words = list(dict.fromkeys(w.lower() for w in words))  # the detector keys names in lower case
    doc = "".join(words[p % len(words)] + (glue[i] if i < len(glue) else " ") for i, p in enumerate(picks))
    needles = {w: Span("PERSON", 0, len(w), 0.9, "test", False) for w in words}
    ordered = sorted(words, key=len, reverse=True)
    flat = re.compile(r"(?<![\w@.-])(?:" + "|".join(f"(?P<v{i}>{re.escape(w)})" for i, w in enumerate(ordered))
                      + r")(?![\w@-])", re.IGNORECASE if ignorecase else 0)
    expected = [(m.start(), m.end(), ordered[int(str(m.lastgroup)[1:])]) for m in flat.finditer(doc)]
    word_of = {id(span): w for w, span in needles.items()}
    got = [(start, end, word_of[id(origin)])
           for start, end, origin in _occurrences(doc, needles, ignorecase=ignorecase)]
    assert got == expected
