"""@guard on real functions that call a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from proxy_upstream import Upstream
from stagekit import DEVICE, ListRecorder, make_gate

from trustlayer.errors import Blocked
from trustlayer.intercept.guard import conversation, guard
from trustlayer.layer import TrustLayer
from trustlayer.types import Endpoint

KEY = "sk-Qq1Ww2Ee3Rr4"


def make_layer(url: str) -> tuple[TrustLayer, ListRecorder]:
    rec = ListRecorder()
    cloud = Endpoint(id="cloud", kind="cloud", jurisdiction="US", url=url + "/v1", model="m")
    gate = make_gate(recorder=rec, endpoints=(DEVICE, cloud))
    return TrustLayer(gate=gate, me=DEVICE, endpoints=[cloud], secret=b"g" * 32), rec


def test_prompt_string_function(cloud: tuple[Upstream, str]) -> None:
    state, url = cloud
    layer, rec = make_layer(url)

    @guard(to="cloud", layer=layer)
    def ask(prompt: str, *, temperature: float = 0.0) -> str:
        """Ask the model."""
        r = httpx.post(url + "/v1/completions", json={"model": "m", "prompt": prompt, "temperature": temperature})
        return str(r.json()["choices"][0]["text"])

    assert ask.__doc__ == "Ask the model." and ask.__name__ == "ask"
    assert list(inspect.signature(ask).parameters) == ["prompt", "temperature"]
    assert ask(f"my key {KEY}") == f"You said: my key {KEY}"
    assert KEY not in state.last().everything() and "<SECRET_1>" in state.last().json()["prompt"]
    assert rec.directions() == ["outbound", "inbound"]


def test_messages_function_returning_chat_completion_dict(cloud: tuple[Upstream, str]) -> None:
    state, url = cloud
    layer, _ = make_layer(url)

    @guard(to="cloud", layer=layer)
    def chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
        r = httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": messages})
        data: dict[str, Any] = r.json()
        return data

    reply = chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": f"use {KEY}"}])
    assert reply["choices"][0]["message"]["content"] == f"You said: use {KEY}"
    assert KEY not in state.last().everything()


def test_streaming_generator_of_chunks(cloud: tuple[Upstream, str]) -> None:
    state, url = cloud
    layer, rec = make_layer(url)
    state.chunks = lambda text: [text[i:i + 2] for i in range(0, len(text), 2)]

    @guard(to="cloud", layer=layer)
    def stream(messages: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        with httpx.stream("POST", url + "/v1/chat/completions",
                          json={"model": "m", "messages": messages, "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield json.loads(line[6:])

    try:
        chunks = list(stream([{"role": "user", "content": f"x {KEY} y"}]))
    finally:
        state.chunks = Upstream().chunks
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == f"You said: x {KEY} y"
    assert KEY not in state.last().everything()
    assert rec.directions() == ["outbound", "inbound"]


def test_a_stream_its_caller_leaves_early_is_recorded_as_its_block(cloud: tuple[Upstream, str]) -> None:
    _, url = cloud
    layer, rec = make_layer(url)

    @guard(to="cloud", layer=layer)
    def stream(prompt: str) -> Iterator[str]:
        yield from ("one ", "two ", "three")

    @guard(to="cloud", layer=layer)
    async def astream(prompt: str) -> AsyncIterator[str]:
        for piece in ("one ", "two ", "three"):
            yield piece

    words = stream(f"count {KEY}")
    assert next(words) == "one "
    words.close()  # the caller leaves after the first piece

    async def leave_early() -> None:
        pieces = astream(f"count {KEY}")
        assert await pieces.__anext__() == "one "
        await pieces.aclose()

    asyncio.run(leave_early())
    assert "".join(stream(f"count {KEY}")) == "one two three"  # read to the end: recorded as inbound
    assert rec.directions() == ["outbound", "block"] * 2 + ["outbound", "inbound"]


def test_async_function_and_async_generator(cloud: tuple[Upstream, str]) -> None:
    state, url = cloud
    layer, _ = make_layer(url)

    @guard(to="cloud", layer=layer)
    async def ask(prompt: str) -> str:
        async with httpx.AsyncClient() as c:
            r = await c.post(url + "/v1/completions", json={"model": "m", "prompt": prompt})
            return str(r.json()["choices"][0]["text"])

    @guard(to="cloud", layer=layer)
    async def words(prompt: str) -> AsyncIterator[str]:
        async with httpx.AsyncClient() as c:
            r = await c.post(url + "/v1/completions", json={"model": "m", "prompt": prompt})
            text = r.json()["choices"][0]["text"]
        for i in range(0, len(text), 3):
            yield text[i:i + 3]

    async def run() -> tuple[str, str]:
        one = await ask(f"a {KEY}")
        two = "".join([w async for w in words(f"b {KEY}")])
        return one, two

    assert inspect.iscoroutinefunction(ask) and inspect.isasyncgenfunction(words)
    one, two = asyncio.run(run())
    assert one == f"You said: a {KEY}" and two == f"You said: b {KEY}"
    assert KEY not in state.last().everything()


def test_reroute_tells_a_function_with_an_endpoint_parameter(cloud: tuple[Upstream, str]) -> None:
    state, url = cloud
    layer, _ = make_layer(url)
    seen: list[str] = []

    @guard(to="cloud", layer=layer)
    def ask(prompt: str, endpoint: str = "cloud") -> str:
        seen.append(endpoint)
        return "local answer" if endpoint == "phone" else "cloud answer"

    before = len(state.received)
    with conversation("patient-1"):
        assert ask("I have diabetes") == "local answer"
        assert ask("and what about lunch?") == "local answer"     # sticky taint keeps it local
    assert seen == ["phone", "phone"] and len(state.received) == before


def test_blocked_call_never_runs_the_function(cloud: tuple[Upstream, str]) -> None:
    _, url = cloud
    layer, rec = make_layer(url)
    ran: list[str] = []

    @guard(layer=layer, to="cloud", arg="q")
    def ask(q: list[int]) -> str:
        ran.append("yes")
        return ""

    with pytest.raises(Blocked, match="expected a prompt string"):
        ask([1, 2])
    assert ran == []


def test_a_turn_the_gate_cannot_inspect_is_refused_without_quoting_it(cloud: tuple[Upstream, str]) -> None:
    _, url = cloud
    layer, rec = make_layer(url)
    sent: list[Any] = []

    @guard(to="cloud", layer=layer)
    def chat(messages: list[dict[str, Any]]) -> str:
        sent.append(messages)
        return "ok"

    legacy_call = {"role": "assistant", "content": None,
                   "function_call": {"name": "save_key", "arguments": json.dumps({"key": KEY})}}
    with pytest.raises(Blocked, match="messages\\[1\\] field 'function_call' is not understood") as legacy:
        chat([{"role": "user", "content": "hi"}, legacy_call])
    with pytest.raises(Blocked, match="not valid") as invalid:
        chat([{"role": "user", "content": [{"type": "input_text", "text": f"my key {KEY}"}]}])
    assert sent == []
    assert KEY not in str(legacy.value) and KEY not in str(invalid.value)
    assert rec.directions() == ["block", "block"]  # refused before the gate proper, and still recorded
    assert all(KEY.encode() not in entry for entry in rec.entries)


@pytest.mark.parametrize("answer", [{"choices": "none"}, 42])
def test_an_answer_the_gate_cannot_read_is_blocked_and_the_block_recorded(cloud: tuple[Upstream, str],
                                                                         answer: object) -> None:
    _, url = cloud
    layer, rec = make_layer(url)

    @guard(to="cloud", layer=layer)
    def chat(messages: list[dict[str, Any]]) -> object:
        return answer

    with pytest.raises(Blocked) as blocked:
        chat([{"role": "user", "content": f"use {KEY}"}])
    assert blocked.value.stage == "restore" and blocked.value.record_id
    assert rec.directions() == ["outbound", "block"]


def test_guard_needs_a_destination() -> None:
    from trustlayer.errors import ConfigError

    layer, _ = make_layer("http://127.0.0.1:9")

    @guard(layer=layer)
    def ask(prompt: str) -> str:
        return prompt

    with pytest.raises(ConfigError, match="needs to='endpoint-id'"):
        ask("hi")
    with pytest.raises(ConfigError, match="has no parameter 'nope'"):
        guard(arg="nope")(lambda prompt: prompt)
