from __future__ import annotations

from typing import Any

import pytest

from trustlayer.errors import ConfigError, EndpointError
from trustlayer.types import Message
from trustlayer.verifiers.askers import answer_text
from trustlayer.verifiers.consensus import response_text


def test_answer_text_reads_chat_and_legacy_shapes() -> None:
    assert answer_text({"choices": [{"message": {"role": "assistant", "content": "42"}}]}, "e") == "42"
    assert answer_text({"choices": [{"text": "41"}]}, "e") == "41"


@pytest.mark.parametrize(("completion", "message"), [
    ({}, "endpoint 'e' answered without 'choices\\[0\\]'"),
    ({"choices": []}, "without 'choices\\[0\\]'"),
    ({"choices": [{"message": {"role": "assistant", "content": None}}]}, "without text in"),
    ({"choices": [{"message": {"tool_calls": []}}]}, "without text in"),
])
def test_answer_text_names_what_is_missing(completion: dict[str, Any], message: str) -> None:
    with pytest.raises(EndpointError, match=message):
        answer_text(completion, "e")


def test_response_text_takes_the_last_assistant_turn() -> None:
    chat = Message.from_openai([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a1"},
                                {"role": "assistant", "content": [{"type": "text", "text": "a"},
                                                                  {"type": "text", "text": "2"}]}],
                               conversation_id="c")
    assert response_text(chat) == "a2"
    assert response_text(Message.from_text("plain", conversation_id="c")) == "plain"
    with pytest.raises(ConfigError, match="no assistant turn with content"):
        response_text(Message.from_openai([{"role": "user", "content": "q"}], conversation_id="c"))
