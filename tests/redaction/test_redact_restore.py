from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustlayer.redaction import Redactor, Vault
from trustlayer.redaction.restore import StreamingRestorer, restore_text
from trustlayer.types import Message, Operator


def test_tolerant_to_llm_rewrites(vault: Vault) -> None:
    p = vault.pseudonym("c", "EMAIL_ADDRESS", "ada@example.org")
    tag = p[len("<EMAIL_ADDRESS_"):-1]
    for written in (p, f"EMAIL_ADDRESS_{tag}", f"email_address_{tag.upper()}", f"Email Address {tag}",
                    f"[EMAIL-ADDRESS-{tag}]", f"< EMAIL_ADDRESS_{tag} >"):
        assert restore_text(vault, "c", f'Write to "{written}".') == 'Write to "ada@example.org".', written


def test_brackets_around_an_exact_placeholder_are_kept(fast: Redactor) -> None:
    msg = Message.from_text("From: Ada <ada@example.org>", conversation_id="c")
    out, _ = fast.redact(msg)
    assert out.text is not None and "<<EMAIL_ADDRESS_" in out.text
    assert fast.restore(out) == msg


def test_other_conversation_and_typed_placeholders_are_not_restored(vault: Vault) -> None:
    p = vault.pseudonym("alice", "PERSON", "Alice Example")
    # Bob's conversation holds no such mapping: the text comes back as written.
    assert restore_text(vault, "bob", f"Hi {p}") == f"Hi {p}"
    assert restore_text(vault, "alice", "Hi <PERSON_000000>") == "Hi <PERSON_000000>"
    assert restore_text(vault, "alice", f"x{p[1:-1]}y") == f"x{p[1:-1]}y"  # glued to other letters


def test_restore_tool_call_arguments_stays_valid_json(fast: Redactor) -> None:
    msg = Message.from_openai([{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {
        "name": "send", "arguments": '{"to": "ada@example.org", "body": "Hi"}'}}]}], conversation_id="c")
    out, _ = fast.redact(msg)
    assert "ada@example.org" not in out.to_openai()[0]["tool_calls"][0]["function"]["arguments"]
    assert fast.restore(out) == msg


def test_stream_restores_a_placeholder_split_anywhere(vault: Vault) -> None:
    p = vault.pseudonym("c", "PERSON", "Grace Hopper")
    text = f"Dear {p}, welcome back {p}!"
    for cut in range(len(text) + 1):
        s = StreamingRestorer(vault, "c")
        assert s.feed(text[:cut]) + s.feed(text[cut:]) + s.flush() == "Dear Grace Hopper, welcome back Grace Hopper!"


def test_stream_holds_back_only_a_possible_placeholder(vault: Vault) -> None:
    vault.pseudonym("c", "PERSON", "Grace")
    s = StreamingRestorer(vault, "c")
    assert s.feed("Hello there, how are you") == "Hello there, how are you"  # nothing held
    assert s.feed(" <PER") == " "
    assert s.feed("SON") == ""
    assert s.flush() == "<PERSON"


_alphabet = st.sampled_from(list("ab <>_[]-PERSONemail 0123456789abcdefEMAIL_ADDRESS\n"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(st.text(_alphabet, max_size=8), st.sampled_from(["P0", "P1", "P1b", "P1c"])),
                      max_size=10),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_stream_equals_whole_restore_for_every_split(vault: Vault, parts: list[str], cuts: list[int]) -> None:
    p0 = vault.pseudonym("c", "PERSON", "Grace")
    p1 = vault.pseudonym("c", "EMAIL_ADDRESS", "g@example.org")
    variants = {"P0": p0, "P1": p1, "P1b": p1[1:-1].lower(), "P1c": p1[1:-1].replace("_", " ")}
    text = "".join(variants.get(x, x) for x in parts)
    bounds = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    s = StreamingRestorer(vault, "c")
    streamed = "".join(s.feed(c) for c in chunks) + s.flush()
    assert streamed == restore_text(vault, "c", text)


def test_operators_mask_drop_hash(fast: Redactor) -> None:
    msg = Message.from_text("card 4111 1111 1111 1111, mail ada@example.org, ip 10.1.2.3", conversation_id="c")
    findings = fast.detect(msg)
    out = fast.transform(msg, findings, {"CREDIT_CARD": Operator.MASK, "EMAIL_ADDRESS": Operator.HASH,
                                         "IP_ADDRESS": Operator.DROP})
    assert out.text is not None
    assert "**** **** **** 1111" in out.text
    assert "ada@example.org" not in out.text and "[EMAIL_ADDRESS:" in out.text
    assert out.text.endswith("ip ")
    again = fast.transform(msg, findings, {"EMAIL_ADDRESS": Operator.HASH})
    assert again.text is not None and out.text.split("mail ")[1].split(",")[0] in again.text  # stable hash


def test_stream_restores_a_bare_placeholder_right_after_non_ascii_letters(vault: Vault) -> None:
    # Chinese and Japanese put no space before a word; whole-text restore matches there, so must the stream.
    bare = vault.pseudonym("c", "PERSON", "Grace")[1:-1]
    for text in (f"你好{bare}，欢迎", f"café{bare} x"):
        whole = restore_text(vault, "c", text)
        assert "Grace" in whole
        for cut in range(len(text) + 1):
            s = StreamingRestorer(vault, "c")
            assert s.feed(text[:cut]) + s.feed(text[cut:]) + s.flush() == whole, cut


def test_stream_holds_a_placeholder_whose_closing_bracket_may_follow_a_space(vault: Vault) -> None:
    p = vault.pseudonym("c", "PERSON", "Grace")
    for text in (f"Hi {p[:-1]} > ok", f"Hi {p[:-1]}\t> ok"):
        assert restore_text(vault, "c", text) == "Hi Grace ok"
        for cut in range(len(text) + 1):
            s = StreamingRestorer(vault, "c")
            assert s.feed(text[:cut]) + s.feed(text[cut:]) + s.flush() == "Hi Grace ok", cut
