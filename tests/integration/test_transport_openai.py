"""The official openai SDK through TrustTransport against a real recording server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from proxy_upstream import Upstream, create_upstream
from stagekit import DEVICE, Hanging, ListRecorder, Pseudonymizer, RegexDetector, Returning, make_gate

from trustlayer.intercept.proxy_cli import BackgroundServer
from trustlayer.intercept.transport import TrustTransport
from trustlayer.layer import TrustLayer
from trustlayer.types import Endpoint

KEY = "sk-Zx9Yw8Vu7Ts6"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, str]]:
    state = Upstream()
    with BackgroundServer(create_upstream(state)) as server:
        yield state, server.url


def layer_for(url: str, **gate_kw: object) -> tuple[TrustLayer, ListRecorder]:
    rec = ListRecorder()
    cloud = Endpoint(id="cloud", kind="cloud", jurisdiction="US", url=url + "/v1", model="m")
    pseudo = Pseudonymizer()
    gate = make_gate(recorder=rec, transformer=pseudo, restorer=pseudo, endpoints=(DEVICE, cloud), **gate_kw)
    return TrustLayer(gate=gate, me=DEVICE, endpoints=[cloud], secret=b"s" * 32), rec


def sdk(url: str, layer: TrustLayer) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0,
                         http_client=httpx.Client(transport=TrustTransport(layer)))


def test_sdk_non_streaming_sends_transformed_and_returns_restored(upstream: tuple[Upstream, str]) -> None:
    state, url = upstream
    layer, rec = layer_for(url)
    before = len(state.received)
    with sdk(url, layer) as client:
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"rotate {KEY} please"}])
    got = state.received[before:]
    assert len(got) == 1
    assert KEY not in got[0].everything()
    sent = got[0].json()["messages"][0]["content"]
    assert "<SECRET_" in sent                                 # the server received the gate's transform
    assert reply.choices[0].message.content == f"You said: rotate {KEY} please"   # the caller got the restore
    assert rec.directions() == ["outbound", "inbound"]
    assert got[0].json().get("user") is None


def test_sdk_streaming_restores_placeholders_split_across_events(upstream: tuple[Upstream, str]) -> None:
    state, url = upstream
    layer, rec = layer_for(url)
    for size in (1, 3, 5, 11):
        state.chunks = lambda text, n=size: [text[i:i + n] for i in range(0, len(text), n)]
        with sdk(url, layer) as client:
            stream = client.chat.completions.create(
                model="m", stream=True, messages=[{"role": "user", "content": f"keep {KEY} safe"}])
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == f"You said: keep {KEY} safe"
        assert KEY not in state.last().everything()
    state.chunks = Upstream().chunks


def test_async_sdk_streaming_and_not(upstream: tuple[Upstream, str]) -> None:
    state, url = upstream
    layer, _ = layer_for(url)

    async def run() -> tuple[str | None, str]:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0,
                                    http_client=httpx.AsyncClient(transport=TrustTransport(layer)))
        plain = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": KEY}])
        stream = await client.chat.completions.create(model="m", stream=True,
                                                      messages=[{"role": "user", "content": KEY}])
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return plain.choices[0].message.content, "".join(parts)

    plain, streamed = asyncio.run(run())
    assert plain == streamed == f"You said: {KEY}"
    assert KEY not in state.last().everything()


def test_tool_call_arguments_are_transformed_and_restored(upstream: tuple[Upstream, str]) -> None:
    state, url = upstream
    layer, _ = layer_for(url)
    state.tool_call = lambda body: ("login", json.dumps({"token": "<SECRET_1>"}))
    try:
        with sdk(url, layer) as client:
            reply = client.chat.completions.create(model="m", messages=[
                {"role": "user", "content": f"log in with {KEY}"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": json.dumps({"k": KEY})}}]},
                {"role": "tool", "tool_call_id": "a", "content": f"ok {KEY}"},
                {"role": "user", "content": "again"},
            ])
    finally:
        state.tool_call = Upstream().tool_call
    assert KEY not in state.last().everything()
    call = reply.choices[0].message.tool_calls
    assert call is not None and json.loads(call[0].function.arguments) == {"token": KEY}


@pytest.mark.parametrize("fault,match", [
    ("raises", "blocked at detect: RuntimeError raised"),
    ("hangs", "blocked at detect: timed out after 0.3 s"),
    ("invalid", "blocked at detect: .* returned str, expected list or tuple"),
])
def test_faulty_stage_blocks_nothing_reaches_the_server_and_block_is_recorded(
        upstream: tuple[Upstream, str], fault: str, match: str) -> None:
    state, url = upstream
    detector = {"raises": _Exploding(), "hangs": Hanging(3.0, RegexDetector(), "detect"),
                "invalid": Returning("detect", "oops", RegexDetector())}[fault]
    layer, rec = layer_for(url, detector=detector, timeouts={"detect": 0.3})
    before = len(state.received)
    with sdk(url, layer) as client, pytest.raises(openai.PermissionDeniedError, match=match):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": KEY}])
    assert len(state.received) == before
    assert rec.directions() == ["block"]


def test_non_llm_requests_are_refused_unless_passthrough(upstream: tuple[Upstream, str]) -> None:
    state, url = upstream
    layer, rec = layer_for(url)
    before = len(state.received)
    other = url.replace("127.0.0.1", "localhost")  # the same server under a name no endpoint declares
    with httpx.Client(transport=TrustTransport(layer)) as client:
        r = client.post(other + "/v1/embeddings", json={"input": KEY})
        assert r.status_code == 400 and "pass-through is off" in r.json()["error"]["message"]
        r = client.post(url + "/v1/embeddings", json={"input": KEY})
        assert r.status_code == 400 and "refused, pass-through or not" in r.json()["error"]["message"]
        r = client.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}],
                                                            "metadata": {"email": KEY}})
        assert r.status_code == 400 and "'metadata' is not understood" in r.json()["error"]["message"]
        r = client.post(url + "/v1/chat/completions?debug=1", json={"messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 400 and "query parameter 'debug'" in r.json()["error"]["message"]
    assert len(state.received) == before
    assert rec.directions() == ["block"] * 4
    with httpx.Client(transport=TrustTransport(layer, passthrough=True)) as client:
        # to another host: forwarded; Starlette's 404 proves it arrived
        assert client.post(other + "/v1/embeddings", json={"input": "x"}).status_code == 404
        assert client.get(url + "/v1/models").status_code == 404  # nothing for the provider: forwarded
        # a body for the declared endpoint that the gate cannot inspect: refused even with pass-through on
        r = client.post(url + "/v1/embeddings", json={"input": KEY})
        assert r.status_code == 400 and "refused, pass-through or not" in r.json()["error"]["message"]
        assert KEY not in r.text
    assert len(state.received) == before  # the route does not exist upstream: Starlette 404 before recording
    assert rec.directions() == ["block"] * 5


def test_passthrough_never_forwards_an_llm_call_to_an_undeclared_endpoint(upstream: tuple[Upstream, str]) -> None:
    state, url = upstream
    layer, rec = layer_for(url)
    before = len(state.received)
    undeclared = url.replace("127.0.0.1", "localhost")  # the same server, under a URL no endpoint declares
    with httpx.Client(transport=TrustTransport(layer, passthrough=True)) as client:
        r = client.post(undeclared + "/v1/chat/completions",
                        json={"model": "m", "messages": [{"role": "user", "content": f"use {KEY}"}]})
    assert not any(KEY in seen.everything() for seen in state.received[before:]), "the raw value was forwarded"
    assert r.status_code == 400 and "not addressed to a declared endpoint" in r.json()["error"]["message"]
    assert rec.directions() == ["block"]


@pytest.mark.parametrize("body", [b'{"choices": "none"}', b"not json", b"[1, 2]"])
def test_an_endpoint_reply_the_gate_cannot_read_is_blocked_and_the_block_recorded(
        upstream: tuple[Upstream, str], body: bytes) -> None:
    state, url = upstream
    layer, rec = layer_for(url)
    state.fail_first = [(200, {}, body)]
    with httpx.Client(transport=TrustTransport(layer)) as client:
        r = client.post(url + "/v1/chat/completions",
                        json={"model": "m", "messages": [{"role": "user", "content": f"use {KEY}"}]})
    assert r.status_code == 403 and "blocked at restore" in r.json()["error"]["message"]
    assert rec.directions() == ["outbound", "block"]


def test_a_streamed_answer_its_reader_stops_reading_is_recorded_as_its_block(upstream: tuple[Upstream, str]) -> None:
    state, url = upstream
    state.chunks = lambda text: list(text)
    request = {"model": "m", "stream": True, "messages": [{"role": "user", "content": f"keep {KEY} safe"}]}
    layer, rec = layer_for(url)
    with httpx.Client(transport=TrustTransport(layer)) as client:
        with client.stream("POST", url + "/v1/chat/completions", json=request) as r:
            next(r.iter_bytes())  # then leaves
    assert rec.directions() == ["outbound", "block"]

    async def leave_early() -> None:
        async with httpx.AsyncClient(transport=TrustTransport(layer)) as client:
            async with client.stream("POST", url + "/v1/chat/completions", json=request) as r:
                await r.aiter_bytes().__anext__()

    asyncio.run(leave_early())
    assert rec.directions() == ["outbound", "block"] * 2
    with httpx.Client(transport=TrustTransport(layer)) as client:
        with client.stream("POST", url + "/v1/chat/completions", json=request) as r:
            r.read()  # to the end: the inbound record, and nothing else
    assert rec.directions() == ["outbound", "block"] * 2 + ["outbound", "inbound"]
    state.chunks = Upstream().chunks


class _Exploding:
    def detect(self, message: object, *, entities: object = None) -> list[object]:
        raise RuntimeError("detector crashed")
