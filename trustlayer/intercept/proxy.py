"""The OpenAI-compatible proxy: an ASGI app that puts the gate in front of any OpenAI client.

    >>> from trustlayer.intercept.proxy import create_app
    >>> app = create_app(gate, sender=me, upstream=cloud, api_keys=("k1",))   # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8787)  (or: trustlayer serve --config ...)

Every ``/v1/chat/completions`` and ``/v1/completions`` request is parsed into a
``Message``, passed through ``gate.outbound`` and sent to the endpoint the gate allows
(the upstream, or the reroute target); the answer passes ``gate.inbound`` (placeholders
restored, also across SSE events) before the client sees it. Nothing the client sent
reaches the upstream except the gated body: client headers, query strings and the
client's ``Authorization`` are never forwarded. Errors are OpenAI-style JSON that
never contain request or response content.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import logging
import secrets
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as HttpRoute
from starlette.types import Receive, Scope, Send

from trustlayer._mac import hmac_sha256
from trustlayer.endpoints.base import ChatEndpoint, client_for
from trustlayer.endpoints.openai_client import OpenAIClient
from trustlayer.errors import Blocked
from trustlayer.gate import Gate, Outbound
from trustlayer.intercept.openai_wire import (
    Kind,
    WireRequest,
    apply_response,
    conversation_id_for,
    parse_request,
    rebuild_request,
    refused_request,
    response_message,
    unreadable_answer,
)
from trustlayer.intercept.refusal import Refused, error_event, refusal
from trustlayer.intercept.sse import SseRewriter, abandon_quietly
from trustlayer.types import Endpoint, Message, Route

__all__ = ["MAX_BODY_BYTES", "MAX_CONCURRENT_EXCHANGES", "create_app", "error_response"]

_log = logging.getLogger("trustlayer.proxy")

#: Requests larger than this are refused before they are read into memory.
MAX_BODY_BYTES = 8 * 1024 * 1024

#: Non-streamed requests in flight at once (each holds a worker thread while the upstream answers).
MAX_CONCURRENT_EXCHANGES = 128


def error_response(status: int, type_: str, code: str, message: str, **extra: Any) -> JSONResponse:
    """An OpenAI-style error response: ``{"error": {"message", "type", "param", "code", ...}}``."""
    return JSONResponse(Refused(status, type_, code, message, **extra).body(), status_code=status)


def _respond(exc: BaseException) -> JSONResponse:
    refused = refusal(exc)
    _log.info("request refused: %s %s", refused.status, refused.code)
    return JSONResponse(refused.body(), status_code=refused.status)


class _Proxy:
    """The request handlers, bound to one gate, one route and one set of client keys."""

    def __init__(self, gate: Gate, *, sender: Endpoint, upstream: Endpoint, api_keys: Sequence[str],
                 subject_jurisdiction: str | None, clients: Callable[[Endpoint], ChatEndpoint],
                 candidates: Sequence[Endpoint]) -> None:
        self.gate = gate
        self.route = Route.between(sender, upstream, subject_jurisdiction=subject_jurisdiction)
        self.candidates = tuple(candidates)
        self._keys = tuple(k.encode() for k in api_keys if k)
        self._make_client = clients
        self._clients: dict[str, ChatEndpoint] = {}
        self._clients_lock = threading.Lock()
        # Conversation ids are keyed per process and per client key, so one client can
        # never land in (and get placeholders restored from) another client's conversation.
        self._conversation_key = secrets.token_bytes(32)
        # A non-streamed request holds a worker thread while the upstream answers; these
        # bound how many do at once (the rest wait), apart from the short gate-only hops.
        self._exchanges = anyio.CapacityLimiter(MAX_CONCURRENT_EXCHANGES)

    # -- plumbing -----------------------------------------------------------------

    def client(self, endpoint: Endpoint) -> ChatEndpoint:
        """The (cached) client for ``endpoint``: the upstream, or a reroute target."""
        found = self._clients.get(endpoint.id)
        if found is None:
            # Worker threads ask too (non-streamed exchanges): make each client once, so none is left unclosed.
            with self._clients_lock:
                found = self._clients.get(endpoint.id)
                if found is None:
                    found = self._clients[endpoint.id] = self._make_client(endpoint)
        return found

    async def aclose(self) -> None:
        """Close every endpoint client."""
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()

    def authenticate(self, request: Request) -> bytes:
        """The client's key (``b""`` when no keys are configured); ``Refused`` (401) otherwise."""
        if not self._keys:
            return b""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip().encode()
        if scheme.lower() == "bearer" and given:
            for key in self._keys:
                if hmac.compare_digest(given, key):
                    return key
        raise Refused(401, "invalid_request_error", "invalid_api_key",
                       "missing or unknown API key (send 'Authorization: Bearer <key>')")

    async def read_json(self, request: Request) -> Any:
        """The request body as JSON, refusing bodies over ``MAX_BODY_BYTES``."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise Refused(413, "invalid_request_error", "request_too_large",
                           f"the request body is larger than {MAX_BODY_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise Refused(413, "invalid_request_error", "request_too_large",
                               f"the request body is larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except ValueError:
            raise Blocked("parse", "the request body is not valid JSON") from None

    # The gate's paths run through `gate.offload`: one worker thread runs the stages
    # inline (they keep their own deadlines, or the event loop watches them), where the async runner would
    # hop threads for every stage and the sync runner would hand each path to a gate
    # worker of its own (measured: about 2.5 ms less per request than the async runner;
    # benchmarks/proxy_overhead.py). A non-streamed request goes further: outbound, the
    # upstream call (the endpoint's sync client) and inbound share one worker thread
    # (`_complete`), and httpx's sync client is faster than its async one (about 1.5 ms less).

    async def outbound(self, message: Message) -> Outbound:
        """``gate.outbound`` for the proxy's route, off the event loop."""
        return await self.gate.offload(lambda: self.gate.outbound(message, self.route, candidates=self.candidates))

    async def refuse_unparsed(self, blocked: Blocked) -> Blocked:
        """Sign and record a request refused before the gate could parse it (every block is audited)."""
        return await anyio.to_thread.run_sync(refused_request, self.gate, self.route, blocked)

    # -- endpoints ----------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """Liveness: answers without touching the gate or the upstream."""
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> Response:
        """``/v1/models``: the upstream's model, answered locally (nothing is forwarded)."""
        try:
            self.authenticate(request)
        except Refused as refused:
            return _respond(refused)
        upstream = self.route.recipient
        return JSONResponse({"object": "list", "data": [{
            "id": upstream.model or upstream.id, "object": "model", "created": 0, "owned_by": upstream.id,
        }]})

    async def llm(self, request: Request) -> Response:
        """``/v1/chat/completions`` and ``/v1/completions``: gate, forward, gate back."""
        try:
            key = self.authenticate(request)
            body = await self.read_json(request)
            scope_key = hmac_sha256(self._conversation_key, key)
            cid = conversation_id_for(body if isinstance(body, dict) else {}, scope_key)
            wire = parse_request(request.url.path, body, conversation_id=cid, user_key=scope_key)
        except Blocked as blocked:
            return _respond(await self.refuse_unparsed(blocked))
        except Exception as exc:  # noqa: BLE001 - auth and size refusals are not audited (anyone could send them)
            return _respond(exc)
        try:
            if wire.stream:
                return await self._stream(wire, await self.outbound(wire.message))
            data, headers = await self.gate.offload(lambda: self._complete(wire), limiter=self._exchanges)
            return JSONResponse(data, headers=headers)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error response, never a leak
            return _respond(exc)

    def _forward(self, wire: WireRequest, out: Outbound) -> tuple[ChatEndpoint, Any, dict[str, Any]]:
        """The client for where the gate sends it, the gated content and the other fields."""
        recipient = out.route.recipient
        body = rebuild_request(wire, out.message)
        body.pop("stream", None)
        if recipient.model is not None:
            # The configured model of the endpoint the gate chose wins: after a reroute
            # the client's model name means nothing to the new recipient.
            body["model"] = recipient.model
        content = body.pop("messages") if wire.kind == "chat" else body.pop("prompt")
        return self.client(recipient), content, body

    def _complete(self, wire: WireRequest) -> tuple[Any, dict[str, str]]:
        """One non-streamed exchange, start to end in one worker thread: gate out, forward, gate back.

        Run through ``gate.offload``: every stage's timeout still holds (watched from the event
        loop), and the endpoint client keeps its own; the answer and the response headers come
        back to the event loop at once.
        """
        out = self.gate.outbound(wire.message, self.route, candidates=self.candidates)
        client, content, params = self._forward(wire, out)
        if wire.kind == "chat":
            data = client.complete(content, **params)
        else:
            data = client.complete_text(_one_prompt(content), **params)
        try:
            reply = response_message(data, wire.kind, conversation_id=out.message.conversation_id)
        except Blocked as unreadable:
            raise unreadable_answer(self.gate, out, unreadable) from None
        inbound = self.gate.inbound(reply, out.route, request=out)
        headers = {**_trace_headers(out), "X-Trustlayer-Response-Record": inbound.record.digest}
        return apply_response(data, wire.kind, inbound.message), headers

    async def _stream(self, wire: WireRequest, out: Outbound) -> Response:
        client, content, params = self._forward(wire, out)
        source = _event_bytes(client, wire.kind, content, params)
        # Wait for the first bytes before answering, so that an upstream error or a
        # timeout before any output is still a proper HTTP error status.
        try:
            first = await source.__anext__()
        except StopAsyncIteration:
            first = b""
        except BaseException:
            await source.aclose()
            raise
        rewriter = SseRewriter(self.gate.stream_inbound(out.route, request=out), wire.kind)
        return StreamingResponse(_relay(first, source, rewriter, self.gate.offload), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                          **_trace_headers(out)})


def _trace_headers(out: Outbound) -> dict[str, str]:
    """What the gate decided, for the client's logs: outcome, endpoint, rules and the record id (no content)."""
    return {
        "X-Trustlayer-Decision": out.decision.outcome.value,
        "X-Trustlayer-Endpoint": out.route.recipient.id,
        "X-Trustlayer-Rules": ",".join(out.decision.rule_ids),
        "X-Trustlayer-Request-Record": out.record.digest,
    }


def _one_prompt(content: Any) -> str:
    return str(content[0]) if isinstance(content, list) else str(content)


async def _event_bytes(client: ChatEndpoint, kind: Kind, content: Any,
                       params: Mapping[str, Any]) -> AsyncGenerator[bytes, None]:
    """The recipient's answer as ``text/event-stream`` bytes (raw from HTTP, encoded from a local model)."""
    if isinstance(client, OpenAIClient):
        path, field = ("/chat/completions", "messages") if kind == "chat" else ("/completions", "prompt")
        async for data in client.post_stream_bytes_async(path, {**params, field: content}):
            yield data
        return
    chunks = (client.stream_async(content, **params) if kind == "chat"
              else client.stream_text_async(_one_prompt(content), **params))
    async for chunk in chunks:
        yield b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


async def _relay(first: bytes, source: AsyncGenerator[bytes, None], rewriter: SseRewriter,
                 offload: Callable[[Callable[[], Any]], Awaitable[Any]]) -> AsyncIterator[bytes]:
    """Rewrite the upstream's events for the client; a failure mid-stream ends it with an error event.

    ``offload`` is the gate's: the end of the stream signs and records in one worker thread.
    """
    why = "the client left"  # if the answer has not ended when this generator closes
    try:
        data = first
        while True:
            out = await rewriter.feed_async(data, offload)
            if out:
                yield out
            try:
                data = await source.__anext__()
            except StopAsyncIteration:
                break
        tail = await offload(rewriter.finish)
        if tail:
            yield tail
    except Exception as exc:  # noqa: BLE001 - the status is already 200: report in-band, never leak
        refused = refusal(exc)
        why = f"the stream failed ({refused.code})"
        _log.info("stream ended with an error: %s", refused.code)
        yield error_event(refused)
    finally:
        # Shielded: when the client went away this task is being cancelled, and the
        # upstream connection must still be closed, and the unfinished answer recorded.
        with anyio.CancelScope(shield=True):
            await source.aclose()
            if not rewriter.ended:
                await offload(functools.partial(abandon_quietly, rewriter.abandon, why))


_LLM_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


class _ProxyApp(Starlette):
    """Starlette, with the two LLM routes dispatched straight to their handler.

    Every request of the hot path would otherwise pass the error and exception
    middleware and the router (measurable at a 5 ms budget); the handler already turns
    every failure into an OpenAI-style error response, so they add nothing there.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in _LLM_PATHS:
            scope["app"] = self
            response = await self.state.proxy.llm(Request(scope, receive))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(gate: Gate, *, sender: Endpoint, upstream: Endpoint, api_keys: Sequence[str] = (),
               subject_jurisdiction: str | None = None,
               clients: Callable[[Endpoint], ChatEndpoint] = client_for,
               candidates: Sequence[Endpoint] = (),
               on_shutdown: Sequence[Callable[[], Any]] = ()) -> Starlette:
    """The proxy as a Starlette app.

    ``sender`` is the endpoint this proxy speaks for (the config's identity), ``upstream``
    the endpoint it forwards to; ``api_keys`` are the keys clients must present (none =
    no client auth, for loopback only; ``trustlayer serve`` enforces that). ``clients``
    makes the endpoint client for the upstream or a reroute target; ``candidates`` are
    the endpoints policy may reroute to; ``on_shutdown`` runs after the clients are
    closed (e.g. closing the gate's audit store).
    """
    proxy = _Proxy(gate, sender=sender, upstream=upstream, api_keys=api_keys,
                   subject_jurisdiction=subject_jurisdiction, clients=clients, candidates=candidates)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        try:
            yield {}
        finally:
            await proxy.aclose()
            for hook in on_shutdown:
                result = hook()
                if hasattr(result, "__await__"):
                    await result

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        code = "method_not_allowed" if status == 405 else "not_found"
        # The path is not repeated: a client may have put data in it.
        return error_response(status, "invalid_request_error", code,
                              f"this {request.method} path is not served by this proxy "
                              "(it serves POST /v1/chat/completions, POST /v1/completions, GET /v1/models, "
                              "GET /healthz)")

    app = _ProxyApp(exception_handlers={HTTPException: not_found}, routes=[
        HttpRoute("/healthz", proxy.healthz, methods=["GET"]),
        HttpRoute("/v1/models", proxy.models, methods=["GET"]),
        *(HttpRoute(path, proxy.llm, methods=["POST"]) for path in sorted(_LLM_PATHS)),
    ], lifespan=lifespan)
    app.state.proxy = proxy
    return app

