"""Streamed answers through the proxy: placeholders restored at every split, every SSE event valid."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from integration.proxy_upstream import CLIENT_KEY, Upstream, create_upstream, proxy_for
from stagekit import make_gate

from trustlayer.intercept.proxy_cli import BackgroundServer

SECRET = "sk-AbCdEf123456"
OTHER = "sk-ZyXwVu987654"
ASK = f"use {SECRET} then {OTHER}."
EXPECTED = "You said: " + ASK
PLACEHOLDER = re.compile(r"<SECRET_\d+>")


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Upstream, str]]:
    state = Upstream()
    with BackgroundServer(create_upstream(state)) as upstream, proxy_for(make_gate(), upstream.url) as proxy:
        yield state, proxy.url


@pytest.fixture()
def upstream(stack: tuple[Upstream, str]) -> Upstream:
    stack[0].reset()
    return stack[0]


def stream_events(url: str, path: str, body: dict[str, Any], client: httpx.Client | None = None) -> list[Any]:
    """POST a streamed request; return every event's data, checking each event is complete and valid."""
    with (client or httpx.Client()) as http, \
            http.stream("POST", url + path, json={**body, "stream": True}, timeout=20,
                        headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert raw.endswith("\n\n")
    events: list[Any] = []
    for block in raw.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert all(line.startswith("data: ") for line in lines), block
        data = "\n".join(line[6:] for line in lines)
        events.append(data if data == "[DONE]" else json.loads(data))
    assert events[-1] == "[DONE]"
    return events[:-1]


def content(events: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])


def test_placeholders_restored_at_every_chunk_boundary(stack: tuple[Upstream, str], upstream: Upstream) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": ASK}]}
    stream_events(stack[1], "/v1/chat/completions", body)
    width = len("You said: " + upstream.last().json()["messages"][0]["content"])
    for cut in range(width + 1):
        upstream.chunks = lambda text, cut=cut: [text[:cut], text[cut:]]
        assert content(stream_events(stack[1], "/v1/chat/completions", body)) == EXPECTED, f"split at {cut}"
        sent = upstream.last().json()["messages"][0]["content"]
        assert SECRET not in sent and len(PLACEHOLDER.findall(sent)) == 2
        assert len("You said: " + sent) == width  # the same placeholders each time: every cut was tried


def test_one_character_events_and_finish_reason_survive(stack: tuple[Upstream, str], upstream: Upstream) -> None:
    upstream.chunks = lambda text: list(text)
    events = stream_events(stack[1], "/v1/chat/completions",
                           {"model": "m", "messages": [{"role": "user", "content": ASK}]})
    assert content(events) == EXPECTED
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(e["object"] == "chat.completion.chunk" for e in events)


def test_streamed_tool_call_arguments_are_restored(stack: tuple[Upstream, str], upstream: Upstream) -> None:
    def call(body: dict[str, Any]) -> tuple[str, str]:
        found = PLACEHOLDER.search(json.dumps(body))
        return "save", json.dumps({"key": found.group(0) if found else "none"})

    upstream.tool_call = call
    upstream.chunks = lambda text: [text[i:i + 3] for i in range(0, len(text), 3)]
    events = stream_events(stack[1], "/v1/chat/completions",
                           {"model": "m", "messages": [{"role": "user", "content": f"save {SECRET}"}]})
    arguments = "".join(tc["function"].get("arguments") or ""
                        for e in events for ch in e["choices"] for tc in ch["delta"].get("tool_calls") or [])
    assert json.loads(arguments) == {"key": SECRET}


def test_streamed_text_completion_is_restored(stack: tuple[Upstream, str], upstream: Upstream) -> None:
    upstream.chunks = lambda text: list(text)
    events = stream_events(stack[1], "/v1/completions", {"model": "m", "prompt": ASK})
    assert "".join(e["choices"][0]["text"] for e in events if e["choices"]) == EXPECTED


def test_events_cut_mid_line_by_the_network_are_reassembled(stack: tuple[Upstream, str], upstream: Upstream) -> None:
    upstream.chunks = lambda text: [text[i:i + 4] for i in range(0, len(text), 4)]
    for size in (2, 7, 50):
        upstream.fragment = size
        events = stream_events(stack[1], "/v1/chat/completions",
                               {"model": "m", "messages": [{"role": "user", "content": ASK}]})
        assert content(events) == EXPECTED, f"fragments of {size} bytes"
