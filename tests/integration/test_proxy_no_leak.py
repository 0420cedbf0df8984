"""The proxy with a recording upstream: no raw value reaches the upstream, anywhere; answers come back restored.

The gate here is the real ``Gate`` with the small real stages of ``stagekit`` (regex
detection of API keys, reversible placeholders, HMAC records).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from integration.proxy_upstream import CLIENT_KEY, UPSTREAM_KEY, Upstream, create_upstream, proxy_for
from stagekit import ListRecorder, make_gate

from trustlayer.intercept.proxy_cli import BackgroundServer

SECRET = "sk-AbCdEf123456"
OTHER = "sk-ZyXwVu987654"
PLACEHOLDER = re.compile(r"<SECRET_\d+>")


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Upstream, str, ListRecorder]]:
    state = Upstream()
    recorder = ListRecorder()
    with BackgroundServer(create_upstream(state)) as upstream, \
            proxy_for(make_gate(recorder=recorder), upstream.url) as proxy:
        yield state, proxy.url, recorder


@pytest.fixture()
def upstream(stack: tuple[Upstream, str, ListRecorder]) -> Upstream:
    stack[0].reset()
    return stack[0]


def post(url: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}", **kw.pop("headers", {})}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=20, **kw)


def assert_nothing_raw(upstream: Upstream, *raw: str) -> None:
    assert upstream.received, "the upstream received nothing"
    for seen in upstream.received:
        everything = seen.everything()
        for value in (*raw, CLIENT_KEY):
            assert value not in everything, f"{value!r} reached the upstream"
        assert dict(seen.headers)["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_chat_goes_out_pseudonymized_and_comes_back_restored(stack: tuple[Upstream, str, ListRecorder],
                                                             upstream: Upstream) -> None:
    reply = post(stack[1], {"model": "gpt-x", "messages": [
        {"role": "user", "content": f"my key is {SECRET}, keep it"}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == f"You said: my key is {SECRET}, keep it"
    assert_nothing_raw(upstream, SECRET)
    sent = upstream.last().json()
    assert PLACEHOLDER.search(sent["messages"][0]["content"])
    assert sent["model"] == "m-upstream"  # the configured model of the endpoint, not the client's
    assert reply.headers["x-trustlayer-decision"] == "transform"
    assert reply.headers["x-trustlayer-endpoint"] == "cloud"
    assert reply.headers["x-trustlayer-rules"] == "secrets-pseudo"
    assert re.fullmatch(r"[0-9a-f]{64}", reply.headers["x-trustlayer-response-record"])


def test_tool_calls_and_tool_results_are_gated_both_ways(stack: tuple[Upstream, str, ListRecorder],
                                                         upstream: Upstream) -> None:
    def call_with_placeholder(body: dict[str, Any]) -> tuple[str, str]:
        found = PLACEHOLDER.search(json.dumps(body))
        return "save_key", json.dumps({"key": found.group(0) if found else "none"})

    upstream.tool_call = call_with_placeholder
    messages = [
        {"role": "system", "content": "You store keys."},
        {"role": "user", "content": f"store {SECRET} please"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "save_key",
                                                               "arguments": json.dumps({"key": SECRET})}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": f"stored {SECRET} and {OTHER}"},
        {"role": "user", "content": "again please"},
    ]
    tools = [{"type": "function", "function": {"name": "save_key", "parameters": {
        "type": "object", "properties": {"key": {"type": "string"}}}}}]
    reply = post(stack[1], {"model": "gpt-x", "messages": messages, "tools": tools})
    assert reply.status_code == 200, reply.text
    assert_nothing_raw(upstream, SECRET, OTHER)
    call = reply.json()["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"key": SECRET}


def test_multi_turn_earlier_turns_are_gated(stack: tuple[Upstream, str, ListRecorder], upstream: Upstream) -> None:
    messages = [
        {"role": "user", "content": f"remember {SECRET}"},
        {"role": "assistant", "content": f"I will remember {SECRET}."},
        {"role": "user", "content": f"and {OTHER}?"},
    ]
    reply = post(stack[1], {"model": "gpt-x", "messages": messages, "user": SECRET})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == f"You said: and {OTHER}?"
    assert_nothing_raw(upstream, SECRET, OTHER)
    assert upstream.last().json()["user"].startswith("u-")


def test_client_headers_query_and_authorization_never_reach_the_upstream(
        stack: tuple[Upstream, str, ListRecorder], upstream: Upstream) -> None:
    reply = post(stack[1], {"model": "gpt-x", "messages": [{"role": "user", "content": "hello"}]},
                 params={"note": SECRET}, headers={"X-Note": SECRET, "Cookie": f"k={SECRET}",
                                                   "OpenAI-Organization": SECRET})
    assert reply.status_code == 200, reply.text
    assert_nothing_raw(upstream, SECRET)
    seen = upstream.last()
    assert "?" not in seen.url
    assert {k for k, _ in seen.headers} <= {"host", "accept", "accept-encoding", "connection", "user-agent",
                                            "authorization", "content-length", "content-type"}


def test_completions_prompt_is_gated(stack: tuple[Upstream, str, ListRecorder], upstream: Upstream) -> None:
    reply = httpx.post(stack[1] + "/v1/completions", headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                       json={"model": "gpt-x", "prompt": f"key {SECRET} means", "max_tokens": 5}, timeout=20)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["text"] == f"You said: key {SECRET} means"
    assert_nothing_raw(upstream, SECRET)


def test_every_request_is_recorded_outbound_and_inbound(stack: tuple[Upstream, str, ListRecorder],
                                                        upstream: Upstream) -> None:
    recorder = stack[2]
    before = len(recorder.entries)
    assert post(stack[1], {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    assert recorder.directions()[before:] == ["outbound", "inbound"]
    for envelope in recorder.entries:
        assert SECRET.encode() not in envelope


def test_concurrent_conversations_get_only_their_own_values_back(stack: tuple[Upstream, str, ListRecorder],
                                                                 upstream: Upstream) -> None:
    import anyio

    secrets = [f"sk-Conv{i:02d}Secret{i:04d}" for i in range(16)]
    replies: dict[int, str] = {}

    async def one(client: httpx.AsyncClient, i: int) -> None:
        body = {"model": "m", "messages": [{"role": "user", "content": f"conversation {i} uses {secrets[i]}"}],
                "stream": i % 2 == 0}
        response = await client.post(stack[1] + "/v1/chat/completions", json=body,
                                     headers={"Authorization": f"Bearer {CLIENT_KEY}"})
        assert response.status_code == 200, response.text
        replies[i] = response.text

    async def main() -> None:
        async with httpx.AsyncClient(timeout=30) as client, anyio.create_task_group() as tg:
            for i in range(len(secrets)):
                tg.start_soon(one, client, i)

    anyio.run(main)
    assert len(replies) == len(secrets)
    for i, text in replies.items():
        answer = _joined(text) if i % 2 == 0 else json.loads(text)["choices"][0]["message"]["content"]
        assert answer == f"You said: conversation {i} uses {secrets[i]}"
        assert not any(other in text for j, other in enumerate(secrets) if j != i)
    assert_nothing_raw(upstream, *secrets)


def _joined(sse: str) -> str:
    parts = []
    for line in sse.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


def test_without_an_upstream_key_no_authorization_is_sent_at_all(stack: tuple[Upstream, str, ListRecorder]) -> None:
    from stagekit import DEVICE

    from trustlayer.intercept.proxy import create_app
    from trustlayer.types import Endpoint

    state = Upstream()
    with BackgroundServer(create_upstream(state)) as upstream:
        keyless = Endpoint(id="cloud", kind="cloud", jurisdiction="US", url=upstream.url + "/v1")
        with BackgroundServer(create_app(make_gate(), sender=DEVICE, upstream=keyless,
                                         api_keys=(CLIENT_KEY,))) as proxy:
            reply = post(proxy.url, {"model": "gpt-x", "messages": [{"role": "user", "content": f"k {SECRET}"}]})
    assert reply.status_code == 200, reply.text
    headers = dict(state.last().headers)
    assert "authorization" not in headers
    assert CLIENT_KEY not in state.last().everything() and SECRET not in state.last().everything()
    assert state.last().json()["model"] == "gpt-x"  # no configured model: the client's model name goes on


def test_completions_prompt_given_as_a_one_item_list(stack: tuple[Upstream, str, ListRecorder],
                                                     upstream: Upstream) -> None:
    reply = httpx.post(stack[1] + "/v1/completions", headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                       json={"model": "gpt-x", "prompt": [f"key {SECRET}"]}, timeout=20)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["text"] == f"You said: key {SECRET}"
    assert_nothing_raw(upstream, SECRET)


# Fields of a turn the gate does not inspect, each carrying the raw value (as clients send them back).
_UNINSPECTED_TURN_FIELDS = {
    "legacy function_call of an earlier assistant turn": {
        "role": "assistant", "content": None,
        "function_call": {"name": "save_key", "arguments": json.dumps({"key": SECRET})}},
    "refusal of an earlier assistant turn": {"role": "assistant", "content": "no", "refusal": f"not {SECRET}"},
    "reasoning of an earlier assistant turn": {"role": "assistant", "content": "ok", "reasoning_content": SECRET},
    "extra key of a text part": {"role": "user", "content": [{"type": "text", "text": "hi", "note": SECRET}]},
    "extra key of a tool call's function": {"role": "assistant", "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{}", "note": SECRET}}]},
}


@pytest.mark.parametrize("turn", list(_UNINSPECTED_TURN_FIELDS.values()), ids=list(_UNINSPECTED_TURN_FIELDS))
def test_a_turn_field_the_gate_does_not_inspect_never_crosses(stack: tuple[Upstream, str, ListRecorder],
                                                              upstream: Upstream, turn: dict[str, Any]) -> None:
    recorder = stack[2]
    before = len(recorder.entries)
    reply = post(stack[1], {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}, turn,
                                                           {"role": "user", "content": "go on"}]})
    assert not any(SECRET in seen.everything() for seen in upstream.received), "the raw value reached the upstream"
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "invalid_request" and SECRET not in reply.text
    assert recorder.directions()[before:] == ["block"]


def test_empty_fields_of_an_sdk_dumped_assistant_turn_still_cross(stack: tuple[Upstream, str, ListRecorder],
                                                                  upstream: Upstream) -> None:
    # What `response.choices[0].message.model_dump()` of the openai SDK appends to a conversation.
    earlier = {"role": "assistant", "content": f"noted {SECRET}", "refusal": None, "function_call": None,
               "audio": None, "annotations": [], "tool_calls": None}
    reply = post(stack[1], {"model": "gpt-x", "messages": [{"role": "user", "content": f"note {SECRET}"}, earlier,
                                                           {"role": "user", "content": "thanks"}]})
    assert reply.status_code == 200, reply.text
    assert_nothing_raw(upstream, SECRET)


@pytest.mark.parametrize("field", [
    {"suffix_omitted": f"key {SECRET}"},
    {"stream_options": {"include_usage": True, "note": SECRET}},
    {"stream_options": {SECRET: True}},
    {"logit_bias": {SECRET: 1}},
], ids=["made-up suffix_omitted", "stream_options note", "stream_options key", "logit_bias key"])
def test_a_top_level_field_that_could_carry_text_never_crosses(stack: tuple[Upstream, str, ListRecorder],
                                                               upstream: Upstream, field: dict[str, Any]) -> None:
    reply = post(stack[1], {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], **field})
    assert not any(SECRET in seen.everything() for seen in upstream.received), "the raw value reached the upstream"
    assert reply.status_code == 400, reply.text
    assert SECRET not in reply.text


def test_well_formed_stream_options_and_logit_bias_still_cross(stack: tuple[Upstream, str, ListRecorder],
                                                               upstream: Upstream) -> None:
    reply = post(stack[1], {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                            "stream_options": {"include_usage": True}, "logit_bias": {"50256": -100}})
    assert reply.status_code == 200, reply.text
    sent = upstream.last().json()
    assert sent["stream_options"] == {"include_usage": True} and sent["logit_bias"] == {"50256": -100}
