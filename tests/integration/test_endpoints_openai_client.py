"""The OpenAI-compatible client against a real loopback server (uvicorn + Starlette)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import anyio
import pytest
from integration.proxy_upstream import Upstream

from trustlayer.endpoints._retry import RetryPolicy
from trustlayer.endpoints.openai_client import OpenAIClient
from trustlayer.errors import ConfigError, EndpointError, EndpointTimeout
from trustlayer.types import Endpoint

FAST = RetryPolicy(retries=2, backoff=0.01, max_backoff=0.02)
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture()
def upstream(cloud: tuple[Upstream, str]) -> Iterator[tuple[Upstream, Endpoint]]:
    state, url = cloud
    fresh = Upstream()
    for name in ("reply", "chunks", "tool_call", "fail_first", "hang"):
        setattr(state, name, getattr(fresh, name))
    state.received.clear()
    yield state, Endpoint(id="cloud-us", kind="cloud", jurisdiction="US", url=url + "/v1", model="m-1",
                          api_key_env="TL_TEST_UPSTREAM_KEY", timeout=5)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_TEST_UPSTREAM_KEY", "sk-upstream-123")


def test_complete_sends_model_key_and_messages(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    with OpenAIClient(endpoint, retry=FAST) as client:
        result = client.complete(HELLO, temperature=0)
    assert result["object"] == "chat.completion"
    assert result["choices"][0]["message"]["content"] == "You said: hello there"
    seen = state.last()
    body = seen.json()
    assert body == {"model": "m-1", "temperature": 0, "messages": HELLO, "stream": False}
    assert dict(seen.headers)["authorization"] == "Bearer sk-upstream-123"
    assert seen.url.endswith("/v1/chat/completions")


def test_stream_yields_chunks_in_order(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    with OpenAIClient(endpoint, retry=FAST) as client:
        chunks = list(client.stream(HELLO))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "You said: hello there"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert state.last().json()["stream"] is True
    assert dict(state.last().headers)["accept"] == "text/event-stream"


def test_text_completion_sync_and_stream(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    with OpenAIClient(endpoint, retry=FAST) as client:
        assert client.complete_text("abc def")["choices"][0]["text"] == "You said: abc def"
        streamed = "".join(c["choices"][0]["text"] for c in client.stream_text("abc def"))
    assert streamed == "You said: abc def"
    assert state.last().url.endswith("/v1/completions")


def test_async_twins(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream

    async def main() -> tuple[str, str]:
        async with OpenAIClient(endpoint, retry=FAST) as client:
            whole = await client.complete_async(HELLO)
            parts = [c["choices"][0]["delta"].get("content") or "" async for c in client.stream_async(HELLO)]
        return whole["choices"][0]["message"]["content"], "".join(parts)

    assert anyio.run(main) == ("You said: hello there", "You said: hello there")
    assert len(state.received) == 2


def test_retries_503_then_succeeds_honouring_retry_after(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    state.fail_first = [(503, {"Retry-After": "0"}, b"{}"), (429, {"Retry-After": "0"}, b"{}")]
    with OpenAIClient(endpoint, retry=FAST) as client:
        result = client.complete(HELLO)
    assert result["choices"][0]["message"]["content"] == "You said: hello there"
    assert len(state.received) == 3


def test_retries_exhausted_names_endpoint_and_status(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    state.fail_first = [(500, {}, b"{}")] * 3
    with OpenAIClient(endpoint, retry=FAST) as client, \
            pytest.raises(EndpointError, match=r"endpoint 'cloud-us' answered HTTP 500") as info:
        client.complete(HELLO)
    assert info.value.status == 500
    assert len(state.received) == 3


def test_retry_after_longer_than_allowed_gives_up_at_once(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    state.fail_first = [(429, {"Retry-After": "120"}, b"{}")]
    started = time.monotonic()
    with OpenAIClient(endpoint, retry=FAST) as client, pytest.raises(EndpointError, match="HTTP 429"):
        client.complete(HELLO)
    assert time.monotonic() - started < 5
    assert len(state.received) == 1


def test_4xx_is_not_retried_and_does_not_echo_content(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    echo = b'{"error": {"message": "bad input: hello there Jane Roe", "type": "invalid_request_error",'
    echo += b' "code": "context_length_exceeded"}}'
    state.fail_first = [(400, {}, echo)]
    with OpenAIClient(endpoint, retry=FAST) as client, pytest.raises(EndpointError) as info:
        client.complete(HELLO)
    message = str(info.value)
    assert "answered HTTP 400" in message and "context_length_exceeded" in message
    assert "Jane" not in message and "hello" not in message
    assert len(state.received) == 1


def test_async_stream_retries_before_first_event(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    state.fail_first = [(502, {}, b"")]

    async def main() -> str:
        async with OpenAIClient(endpoint, retry=FAST) as client:
            return "".join([c["choices"][0]["delta"].get("content") or "" async for c in client.stream_async(HELLO)])

    assert anyio.run(main) == "You said: hello there"
    assert len(state.received) == 2


def test_hung_server_times_out(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    state.hang = 3.0
    started = time.monotonic()
    with OpenAIClient(endpoint, retry=FAST, timeout=0.3) as client, \
            pytest.raises(EndpointTimeout, match=r"endpoint 'cloud-us' timed out \(read, limit 0.3s\)"):
        client.complete(HELLO)
    assert time.monotonic() - started < 2.5


def test_async_hung_stream_times_out(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    state.hang = 3.0

    async def main() -> None:
        async with OpenAIClient(endpoint, retry=FAST, timeout=0.3) as client:
            async for _ in client.stream_async(HELLO):
                pass

    with pytest.raises(EndpointTimeout, match="timed out"):
        anyio.run(main)


def test_unreachable_endpoint_is_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = Endpoint(id="gone", kind="cloud", jurisdiction="US", url=f"http://127.0.0.1:{port}/v1")
    with OpenAIClient(endpoint, retry=FAST) as client, \
            pytest.raises(EndpointError, match=r"endpoint 'gone' at http://127.0.0.1:\d+/v1 could not be reached "
                                               r"after 3 attempts"):
        client.complete(HELLO)


def test_error_event_inside_stream_is_an_error(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    # A server that fails after it has already said 200 can only say so with an error event.
    state.fail_first = [(200, {"content-type": "text/event-stream"},
                         b'data: {"error": {"type": "server_error", "message": "oops Jane"}}\n\n')]
    with OpenAIClient(endpoint, retry=FAST) as client, \
            pytest.raises(EndpointError, match=r"sent an error event .*\(type: server_error\)") as info:
        list(client.stream(HELLO))
    assert "Jane" not in str(info.value)


def test_missing_key_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch,
                                                 upstream: tuple[Upstream, Endpoint]) -> None:
    _, endpoint = upstream
    monkeypatch.delenv("TL_TEST_UPSTREAM_KEY")
    with pytest.raises(ConfigError, match=r"endpoint 'cloud-us' takes its API key from \$TL_TEST_UPSTREAM_KEY"):
        OpenAIClient(endpoint)


def test_key_never_in_repr(upstream: tuple[Upstream, Endpoint]) -> None:
    _, endpoint = upstream
    assert "sk-upstream-123" not in repr(OpenAIClient(endpoint))


def test_a_stream_answered_with_json_is_an_error(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    state.fail_first = [(200, {}, b'{"id": "x", "choices": []}')]

    async def main() -> None:
        async with OpenAIClient(endpoint, retry=FAST) as client:
            async for _ in client.post_stream_bytes_async("/chat/completions", {"messages": HELLO}):
                pass

    with pytest.raises(EndpointError, match=r"answered a streamed POST /chat/completions with application/json, "
                                            r"not text/event-stream"):
        anyio.run(main)


def test_one_client_serves_many_event_loops(upstream: tuple[Upstream, Endpoint]) -> None:
    import asyncio
    import gc

    state, endpoint = upstream
    client = OpenAIClient(endpoint, retry=FAST)  # e.g. cached by TrustLayer and called from several asyncio.run()s
    for _ in range(3):
        answer = asyncio.run(client.complete_async(HELLO))
        assert answer["choices"][0]["message"]["content"] == "You said: hello there"
        parts = anyio.run(lambda: _collect(client))
        assert "".join(parts) == "You said: hello there"
    gc.collect()  # a pool left open on a closed loop would warn here (warnings are errors)
    assert len(state.received) == 6


async def _collect(client: OpenAIClient) -> list[str]:
    return [c["choices"][0]["delta"].get("content") or "" async for c in client.stream_async(HELLO)]


def test_an_answer_trickling_forever_times_out_as_a_whole(upstream: tuple[Upstream, Endpoint]) -> None:
    state, endpoint = upstream
    state.trickle = 0.05  # each byte arrives well within the read timeout; the whole answer never does
    for call in (lambda c: c.complete(HELLO), lambda c: anyio.run(lambda: c.complete_async(HELLO))):
        started = time.monotonic()
        with OpenAIClient(endpoint, retry=FAST, timeout=0.5) as client, \
                pytest.raises(EndpointTimeout, match=r"answer not complete within 0.5s"):
            call(client)
        assert time.monotonic() - started < 3
