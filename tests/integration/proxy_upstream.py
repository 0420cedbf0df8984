"""A recording OpenAI-compatible upstream for the endpoint and proxy tests (a real Starlette app).

It records every request exactly as it arrived (method, URL, headers, body bytes) and
answers like an OpenAI server: the assistant's reply is computed from the request
(by default it echoes the last user text, which is what makes placeholders come back
in the answer), streamed in the chunks ``Upstream.chunks`` cuts it into.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Received:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes

    def everything(self) -> str:
        """All the upstream saw, as one string to search for raw values."""
        head = "\n".join(f"{k}: {v}" for k, v in self.headers)
        return f"{self.method} {self.url}\n{head}\n\n{self.body.decode('utf-8', 'replace')}"

    def json(self) -> Any:
        return json.loads(self.body)


def _last_user_text(body: dict[str, Any]) -> str:
    if "prompt" in body:
        prompt = body["prompt"]
        return prompt if isinstance(prompt, str) else " ".join(prompt)
    for turn in reversed(body.get("messages", [])):
        if turn.get("role") == "user":
            content = turn.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content)
            return str(content or "")
    return ""


@dataclass
class Upstream:
    """What the upstream does; change fields between requests."""

    reply: Callable[[dict[str, Any]], str] = field(default=lambda body: "You said: " + _last_user_text(body))
    chunks: Callable[[str], list[str]] = field(default=lambda text: [text[i:i + 7] for i in range(0, len(text), 7)])
    tool_call: Callable[[dict[str, Any]], tuple[str, str] | None] = field(default=lambda body: None)
    fail_first: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    hang: float = 0.0
    chunk_delay: float = 0.0
    fragment: int = 0  # > 0: send the event stream in writes of this many bytes, cutting events anywhere
    trickle: float = 0.0  # > 0: send a non-streamed answer one byte at a time, this many seconds apart
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def last(self) -> Received:
        with self.lock:
            return self.received[-1]

    def reset(self) -> None:
        fresh = Upstream()
        for name in ("reply", "chunks", "tool_call", "fail_first", "hang", "chunk_delay", "fragment", "trickle"):
            setattr(self, name, getattr(fresh, name))
        with self.lock:
            self.received.clear()


async def _trickled(data: bytes, pause: float) -> Any:
    for i in range(len(data)):
        yield data[i:i + 1]
        await asyncio.sleep(pause)


async def _fragmented(events: Any, size: int) -> Any:
    if size <= 0:
        async for event in events:
            yield event
        return
    whole = "".join([event async for event in events]).encode()
    for i in range(0, len(whole), size):
        yield whole[i:i + size]
        await asyncio.sleep(0)  # one write per fragment (TCP_NODELAY), so the proxy sees the cuts


def create_upstream(state: Upstream) -> Starlette:
    async def record(request: Request) -> tuple[dict[str, Any], Response | None]:
        body = await request.body()
        with state.lock:
            state.received.append(Received(request.method, str(request.url), list(request.headers.items()), body))
            failure = state.fail_first.pop(0) if state.fail_first else None
        if state.hang:
            await asyncio.sleep(state.hang)
        if failure is not None:
            status, headers, content = failure
            return {}, Response(content, status_code=status, headers=headers, media_type="application/json")
        return json.loads(body) if body else {}, None

    async def chat(request: Request) -> Response:
        body, failure = await record(request)
        if failure is not None:
            return failure
        text = state.reply(body)
        call = state.tool_call(body)
        model = body.get("model", "upstream-model")
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if call is not None:
                message["tool_calls"] = [{"id": "call_1", "type": "function",
                                          "function": {"name": call[0], "arguments": call[1]}}]
            answer = {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if call else "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            }
            if state.trickle:
                return StreamingResponse(_trickled(json.dumps(answer).encode(), state.trickle),
                                         media_type="application/json")
            return JSONResponse(answer)

        async def events() -> Any:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
                return "data: " + json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }) + "\n\n"

            yield chunk({"role": "assistant", "content": ""})
            for piece in state.chunks(text):
                if state.chunk_delay:
                    await asyncio.sleep(state.chunk_delay)
                yield chunk({"content": piece})
            if call is not None:
                yield chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                             "function": {"name": call[0], "arguments": ""}}]})
                for piece in state.chunks(call[1]):
                    yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            yield chunk({}, "tool_calls" if call else "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(_fragmented(events(), state.fragment), media_type="text/event-stream")

    async def completions(request: Request) -> Response:
        body, failure = await record(request)
        if failure is not None:
            return failure
        text = state.reply(body)
        model = body.get("model", "upstream-model")
        if not body.get("stream"):
            return JSONResponse({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": model,
                                 "choices": [{"index": 0, "text": text, "finish_reason": "stop",
                                              "logprobs": None}]})

        async def events() -> Any:
            for piece in state.chunks(text):
                yield "data: " + json.dumps({"id": "cmpl-1", "object": "text_completion", "created": 1,
                                             "model": model, "choices": [{"index": 0, "text": piece,
                                                                          "finish_reason": None}]}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ])


# -- the proxy in front of it ------------------------------------------------------------

UPSTREAM_KEY_ENV = "TL_TEST_UPSTREAM_KEY"
UPSTREAM_KEY = "sk-upstream-key-0000"
CLIENT_KEY = "client-key-1"


def cloud_endpoint(url: str, *, timeout: float = 5.0) -> Any:
    from trustlayer.types import Endpoint

    return Endpoint(id="cloud", kind="cloud", jurisdiction="US", url=url + "/v1", model="m-upstream",
                    api_key_env=UPSTREAM_KEY_ENV, timeout=timeout)


@contextlib.contextmanager
def proxy_for(gate: Any, upstream_url: str, *, keys: tuple[str, ...] = (CLIENT_KEY,), timeout: float = 5.0,
              sender: Any = None) -> Iterator[Any]:
    """The proxy app for ``gate`` in front of the upstream, served on a loopback port."""
    import os

    from stagekit import DEVICE

    from trustlayer.intercept.proxy import create_app
    from trustlayer.intercept.proxy_cli import BackgroundServer

    os.environ[UPSTREAM_KEY_ENV] = UPSTREAM_KEY
    app = create_app(gate, sender=sender or DEVICE, upstream=cloud_endpoint(upstream_url, timeout=timeout),
                     api_keys=keys)
    with BackgroundServer(app) as server:
        yield server
