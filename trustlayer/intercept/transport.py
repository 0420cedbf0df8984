"""``TrustTransport``: an httpx transport that puts the gate in front of every LLM call.

    >>> import httpx, openai
    >>> from trustlayer import TrustLayer, TrustTransport
    >>> tl = TrustLayer.from_config("trustlayer.yaml")                               # doctest: +SKIP
    >>> client = openai.OpenAI(base_url=..., http_client=httpx.Client(transport=TrustTransport(tl)))  # doctest: +SKIP

It parses OpenAI-compatible ``/chat/completions`` and ``/completions`` requests
(streaming SSE responses too), runs the outbound path, forwards the transformed
request through the wrapped transport, and runs the inbound path on the reply.
Any other request is refused unless the config allows pass-through, and a request
with a body for a declared endpoint (embeddings, the Responses API, a file upload) is
refused even then: its body would reach the provider uninspected. A refused request
gets an OpenAI-style error response naming the stage and rule, so SDKs raise a clear
error and do not retry.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx

from trustlayer._safe import shown
from trustlayer.errors import Blocked, TrustError
from trustlayer.gate import Outbound
from trustlayer.intercept.openai_wire import (
    WireRequest,
    apply_response,
    conversation_id_for,
    is_llm_path,
    parse_request,
    rebuild_request,
    refused_request,
    response_message,
    unreadable_answer,
)
from trustlayer.intercept.refusal import error_event, refusal
from trustlayer.intercept.sse import STOPPED, SseRewriter, abandon_quietly
from trustlayer.layer import TrustLayer
from trustlayer.types import Endpoint

__all__ = ["TrustTransport", "blocked_response"]

# Request headers an LLM call needs; anything else could carry data the gate does not inspect.
_FORWARD_HEADERS = frozenset({
    "authorization", "api-key", "content-type", "accept", "user-agent", "openai-organization", "openai-project",
    "openai-beta", "x-request-id",
})
_FORWARD_PREFIXES = ("x-stainless-",)
_SAFE_QUERY = frozenset({"api-version"})


def blocked_response(exc: BaseException, request: httpx.Request | None = None) -> httpx.Response:
    """The OpenAI-style error a refused request receives: the same one the proxy answers with."""
    refused = refusal(exc)
    return httpx.Response(refused.status, json=refused.body(), request=request)


class _Prepared:
    """One LLM request after the outbound path: where it goes and what it carries."""

    def __init__(self, wire: WireRequest, out: Outbound, endpoint: Endpoint, request: httpx.Request) -> None:
        self.wire = wire
        self.out = out
        self.endpoint = endpoint
        self.request = request


class TrustTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Gate every OpenAI-compatible request made through an httpx client (sync or async).

    ``to`` fixes the endpoint id; otherwise the endpoint is the declared one whose
    ``url`` prefixes the request URL. ``transport`` / ``async_transport`` are the
    wrapped transports (httpx's defaults when omitted).
    """

    def __init__(self, layer: TrustLayer | None = None, *, to: str | None = None,
                 transport: httpx.BaseTransport | None = None,
                 async_transport: httpx.AsyncBaseTransport | None = None,
                 passthrough: bool | None = None) -> None:
        self._layer = layer
        self._to = to
        self._transport = transport
        self._async_transport = async_transport
        self._passthrough = passthrough

    @property
    def layer(self) -> TrustLayer:
        """The layer in use (``TrustLayer.default()`` when none was given)."""
        if self._layer is None:
            self._layer = TrustLayer.default()
        return self._layer

    # ── shared, I/O-free steps ───────────────────────────────────────────────────────────

    def _endpoint(self, request: httpx.Request) -> Endpoint | None:
        if self._to is not None:
            return self.layer.endpoint(self._to)
        return self.layer.endpoint_for_url(str(request.url))

    def _passthrough_allowed(self) -> bool:
        return self.layer.passthrough if self._passthrough is None else self._passthrough

    def _parse(self, request: httpx.Request, body: bytes) -> tuple[WireRequest, Endpoint] | None:
        kind = is_llm_path(request.url.path) if request.method == "POST" else None
        endpoint = self._endpoint(request) if kind else None
        if kind is None:
            provider = self.layer.endpoint_for_url(str(request.url)) if body else None
            if provider is not None:
                # Pass-through is for requests that carry nothing to an LLM provider (a model list) or that go
                # elsewhere: a body for a declared endpoint (embeddings, the Responses API, a file) would reach
                # the provider uninspected.
                raise self._refuse("parse", f"the {request.method} request to endpoint {shown(provider.id)} is not "
                                   "an OpenAI chat/completions call the gate can inspect; its body would reach "
                                   "the provider uninspected, so it is refused, pass-through or not (send it "
                                   "with a client without TrustTransport if that is what you mean)")
            if self._passthrough_allowed():
                return None
            raise self._refuse("parse", f"the {request.method} request is not an OpenAI chat/completions call, "
                               "and pass-through is off")
        if endpoint is None:
            # Pass-through is for non-LLM requests: an LLM call the gate cannot route is never sent ungated.
            raise self._refuse("parse", "the LLM request is not addressed to a declared endpoint")
        for name in request.url.params:
            if name not in _SAFE_QUERY:
                raise self._refuse("parse", f"query parameter {shown(name)} is not understood by the gate")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._refuse("parse", "the request body is not valid JSON") from None
        cid = conversation_id_for(data, self.layer.secret) if isinstance(data, dict) else "unparsed"
        try:
            return parse_request(request.url.path, data, conversation_id=cid, user_key=self.layer.secret), endpoint
        except Blocked as blocked:
            raise self._refuse("parse", blocked.reason) from None

    def _refuse(self, stage: str, reason: str) -> Blocked:
        return refused_request(self.layer.gate, self.layer.route_to(self.layer.me.id), Blocked(stage, reason))

    def _forward(self, request: httpx.Request, wire: WireRequest, out: Outbound, requested: Endpoint) -> httpx.Request:
        url = request.url
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in _FORWARD_HEADERS or k.lower().startswith(_FORWARD_PREFIXES)}
        target = out.route.recipient
        if target.id != requested.id:
            # Rerouted: the caller's credentials belong to the endpoint it asked for, never to this one.
            headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "api-key")}
            if target.url:
                tail = "/chat/completions" if wire.kind == "chat" else "/completions"
                url = httpx.URL(target.url.rstrip("/") + tail)
            if target.api_key_env and os.environ.get(target.api_key_env):
                headers["authorization"] = f"Bearer {os.environ[target.api_key_env]}"
        headers["accept-encoding"] = "identity"
        content = json.dumps(rebuild_request(wire, out.message), ensure_ascii=False).encode()
        return httpx.Request(request.method, url, headers=headers, content=content, extensions=request.extensions)

    def _prepare(self, request: httpx.Request, wire: WireRequest, endpoint: Endpoint, out: Outbound) -> _Prepared:
        return _Prepared(wire, out, out.route.recipient, self._forward(request, wire, out, endpoint))

    def _restore_json(self, prep: _Prepared, response: httpx.Response, body: bytes) -> httpx.Response:
        headers = _response_headers(response)
        if response.status_code >= 400:
            return httpx.Response(response.status_code, headers=headers, content=body, request=prep.request)
        try:
            try:
                data = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise Blocked("restore", "the endpoint's response is not valid JSON") from None
            if not isinstance(data, dict):
                raise Blocked("restore", "the endpoint's response is not a JSON object")
            reply = response_message(data, prep.wire.kind, conversation_id=prep.out.message.conversation_id)
        except Blocked as unreadable:
            raise unreadable_answer(self.layer.gate, prep.out, unreadable) from None
        back = self.layer.gate.inbound(reply, prep.out.route, request=prep.out)
        restored = apply_response(data, prep.wire.kind, back.message)
        return httpx.Response(response.status_code, headers=headers, json=restored, request=prep.request)

    def _local(self, prep: _Prepared) -> httpx.Response:
        """Answer a request policy rerouted to an endpoint without a URL (the device's own model)."""
        client = self.layer.client(prep.endpoint.id)
        body = rebuild_request(prep.wire, prep.out.message)
        params = {k: v for k, v in body.items() if k in ("max_tokens", "temperature", "top_p", "stop", "seed")}
        if prep.wire.stream:
            def events() -> Iterator[bytes]:
                for chunk in client.stream(body.get("messages") or prep.out.message.to_openai(), **params):
                    yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  stream=_IterStream(events()), request=prep.request)
        data = client.complete(body.get("messages") or prep.out.message.to_openai(), **params)
        return httpx.Response(200, json=data, request=prep.request)

    # ── sync ─────────────────────────────────────────────────────────────────────────────

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Gate one request (sync)."""
        inner = self._transport or httpx.HTTPTransport()
        self._transport = inner
        body = request.read()
        try:
            parsed = self._parse(request, body)
            if parsed is None:
                return inner.handle_request(request)
            wire, endpoint = parsed
            out = self.layer.gate.outbound(wire.message, self.layer.route_to(endpoint.id),
                                           candidates=self.layer.candidates())
            prep = self._prepare(request, wire, endpoint, out)
            if prep.endpoint.url is None:
                response = self._local(prep)
            else:
                response = inner.handle_request(prep.request)
            if _is_sse(response):
                return self._stream_sync(prep, response)
            return self._restore_json(prep, response, response.read())
        except TrustError as exc:
            return blocked_response(exc, request)

    def _stream_sync(self, prep: _Prepared, response: httpx.Response) -> httpx.Response:
        rewriter = SseRewriter(self.layer.gate.stream_inbound(prep.out.route, request=prep.out), prep.wire.kind)

        def events() -> Iterator[bytes]:
            why = STOPPED  # if the answer has not ended when this generator closes
            try:
                for data in response.iter_bytes():
                    out = rewriter.feed(data)
                    if out:
                        yield out
                yield rewriter.finish()
            except TrustError as exc:
                why = f"the stream failed ({refusal(exc).code})"
                yield error_event(refusal(exc))
            finally:
                response.close()
                if not rewriter.ended:
                    abandon_quietly(rewriter.abandon, why)

        return httpx.Response(response.status_code, headers=_response_headers(response),
                              stream=_IterStream(events()), request=prep.request)

    # ── async ────────────────────────────────────────────────────────────────────────────

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Gate one request (async)."""
        inner = self._async_transport or httpx.AsyncHTTPTransport()
        self._async_transport = inner
        body = await request.aread()
        try:
            parsed = self._parse(request, body)
            if parsed is None:
                return await inner.handle_async_request(request)
            wire, endpoint = parsed
            out = await self.layer.gate.outbound_async(wire.message, self.layer.route_to(endpoint.id),
                                                       candidates=self.layer.candidates())
            prep = self._prepare(request, wire, endpoint, out)
            if prep.endpoint.url is None:
                response = await anyio.to_thread.run_sync(self._local, prep)
                if _is_sse(response):
                    return self._stream_sync(prep, response)
                return self._restore_json(prep, response, response.read())
            response = await inner.handle_async_request(prep.request)
            if _is_sse(response):
                return self._stream_async(prep, response)
            payload = await response.aread()
            # The inbound path signs and records: in a worker thread, not on the event loop.
            return await self.layer.gate.offload(lambda: self._restore_json(prep, response, payload))
        except TrustError as exc:
            return blocked_response(exc, request)

    def _stream_async(self, prep: _Prepared, response: httpx.Response) -> httpx.Response:
        rewriter = SseRewriter(self.layer.gate.stream_inbound(prep.out.route, request=prep.out), prep.wire.kind)

        offload = self.layer.gate.offload

        async def events() -> AsyncIterator[bytes]:
            why = STOPPED  # if the answer has not ended when this generator closes
            try:
                async for data in response.aiter_bytes():
                    out = await rewriter.feed_async(data, offload)
                    if out:
                        yield out
                yield await offload(rewriter.finish)
            except TrustError as exc:
                why = f"the stream failed ({refusal(exc).code})"
                yield error_event(refusal(exc))
            finally:
                with anyio.CancelScope(shield=True):  # a cancelled reader still gets its answer's end recorded
                    await response.aclose()
                    if not rewriter.ended:
                        await offload(functools.partial(abandon_quietly, rewriter.abandon, why))

        return httpx.Response(response.status_code, headers=_response_headers(response),
                              stream=_AsyncIterStream(events()), request=prep.request)

    def close(self) -> None:
        """Close the wrapped sync transport."""
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        """Close the wrapped async transport."""
        if self._async_transport is not None:
            await self._async_transport.aclose()


def _is_sse(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


def _response_headers(response: httpx.Response) -> dict[str, str]:
    drop = {"content-length", "content-encoding", "transfer-encoding"}
    return {k: v for k, v in response.headers.items() if k.lower() not in drop}


class _IterStream(httpx.SyncByteStream):
    def __init__(self, it: Iterator[bytes]) -> None:
        self._it = it

    def __iter__(self) -> Iterator[bytes]:
        yield from self._it

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()


class _AsyncIterStream(httpx.AsyncByteStream):
    def __init__(self, it: AsyncIterator[bytes]) -> None:
        self._it = it

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._it:
            yield chunk

    async def aclose(self) -> None:
        close = getattr(self._it, "aclose", None)
        if close is not None:
            await close()
