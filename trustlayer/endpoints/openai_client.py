"""An OpenAI-compatible chat client over httpx: sync, async and streaming, with retries.

    >>> from trustlayer.endpoints.openai_client import OpenAIClient
    >>> from trustlayer.types import Endpoint
    >>> cloud = Endpoint(id="gpt", kind="cloud", jurisdiction="US", url="https://api.openai.com/v1",
    ...                  model="gpt-4o-mini", api_key_env="OPENAI_API_KEY")
    >>> with OpenAIClient(cloud) as client:                              # doctest: +SKIP
    ...     for chunk in client.stream([{"role": "user", "content": "hi"}]):
    ...         print(chunk["choices"][0]["delta"].get("content", ""), end="")

It is a plain client: it sends what it is given. The gate is applied by the caller.
Errors are ``EndpointError`` (naming the endpoint and the HTTP status, never the
content) and ``EndpointTimeout``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import anyio
import httpx

from trustlayer.endpoints._http_errors import Retry, Translate, error_detail
from trustlayer.endpoints._retry import RetryPolicy
from trustlayer.endpoints._sse import EventDecoder
from trustlayer.errors import ConfigError, EndpointError, EndpointTimeout
from trustlayer.types import Endpoint

__all__ = ["OpenAIClient", "resolve_api_key"]

_CHAT = "/chat/completions"
_TEXT = "/completions"
_USER_AGENT = "trustlayer/0.1"


def resolve_api_key(endpoint: Endpoint) -> str | None:
    """The endpoint's API key from the environment variable it names; ``None`` if it names none.

    Raises ``ConfigError`` when the variable is named but not set (never guessing a key).
    """
    if endpoint.api_key_env is None:
        return None
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise ConfigError(
            f"endpoint {endpoint.id!r} takes its API key from ${endpoint.api_key_env}, which is not set",
            field="endpoints.api_key_env",
        )
    return key


class OpenAIClient:
    """A client for one OpenAI-compatible endpoint (``endpoint.url`` is its base URL, e.g. ``.../v1``).

    ``api_key`` defaults to the value of ``$endpoint.api_key_env``; ``timeout`` (seconds)
    defaults to ``endpoint.timeout``: it bounds each connect, read and write, and a whole
    non-streamed answer once its headers arrived. One connection pool for sync calls and
    one per event loop for async calls; close them with ``close`` / ``aclose`` or ``with``.
    """

    def __init__(self, endpoint: Endpoint, *, api_key: str | None = None, retry: RetryPolicy | None = None,
                 timeout: float | None = None) -> None:
        if endpoint.url is None:
            raise ConfigError(f"endpoint {endpoint.id!r} has no 'url' to send requests to",
                              field="endpoints.url")
        self.endpoint = endpoint
        self.retry = retry or RetryPolicy()
        self._base = endpoint.url.rstrip("/")
        self._limit = timeout if timeout is not None else endpoint.timeout
        self._timeout = httpx.Timeout(self._limit)
        key = api_key if api_key is not None else resolve_api_key(endpoint)
        self._headers = {"User-Agent": _USER_AGENT}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        # One async pool per event loop: an httpx pool cannot outlive the loop it was
        # used on, and a client cached by TrustLayer is called from many asyncio.run()s.
        self._async: weakref.WeakKeyDictionary[object, httpx.AsyncClient] = weakref.WeakKeyDictionary()
        self._keepers: weakref.WeakKeyDictionary[object, AsyncGenerator[None, None]] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"OpenAIClient(endpoint={self.endpoint.id!r}, url={self._base!r})"

    # -- the OpenAI operations ------------------------------------------------

    def complete(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> dict[str, Any]:
        """One chat completion (``chat.completion`` JSON)."""
        return self.post(_CHAT, self._body(params, messages=list(messages)))

    def stream(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Iterator[dict[str, Any]]:
        """A streamed chat completion: yields ``chat.completion.chunk`` dicts."""
        return self.post_stream(_CHAT, self._body(params, messages=list(messages)))

    def complete_text(self, prompt: str, **params: Any) -> dict[str, Any]:
        """One text completion (``text_completion`` JSON)."""
        return self.post(_TEXT, self._body(params, prompt=prompt))

    def stream_text(self, prompt: str, **params: Any) -> Iterator[dict[str, Any]]:
        """A streamed text completion."""
        return self.post_stream(_TEXT, self._body(params, prompt=prompt))

    async def complete_async(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> dict[str, Any]:
        """Async twin of ``complete``."""
        return await self.post_async(_CHAT, self._body(params, messages=list(messages)))

    def stream_async(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Async twin of ``stream``."""
        return self.post_stream_async(_CHAT, self._body(params, messages=list(messages)))

    async def complete_text_async(self, prompt: str, **params: Any) -> dict[str, Any]:
        """Async twin of ``complete_text``."""
        return await self.post_async(_TEXT, self._body(params, prompt=prompt))

    def stream_text_async(self, prompt: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Async twin of ``stream_text``."""
        return self.post_stream_async(_TEXT, self._body(params, prompt=prompt))

    def _body(self, params: Mapping[str, Any], **content: Any) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.endpoint.model is not None:
            body["model"] = self.endpoint.model
        body.update(params)
        body.update(content)
        return body

    # -- raw POSTs (the proxy forwards whole bodies through these) -------------

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON to ``path`` under the base URL; return the JSON answer."""
        response = self._send(path, {**body, "stream": False})
        deadline = time.monotonic() + self._limit
        chunks: list[bytes] = []
        try:
            with self._translated(path):
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    self._check_deadline(deadline, path)
        finally:
            response.close()
        return self._json(b"".join(chunks), path)

    def post_stream(self, path: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """POST with ``stream: true``; yield each server-sent event's JSON until ``[DONE]``."""
        response = self._send(path, {**body, "stream": True})
        decoder = EventDecoder()
        try:
            with self._translated(path):
                for line in response.iter_lines():
                    for data in decoder.feed_line(line):
                        if data.strip() == "[DONE]":
                            return
                        yield self._event(data, path)
            for data in decoder.end():
                if data.strip() != "[DONE]":
                    yield self._event(data, path)
        finally:
            response.close()

    async def post_async(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Async twin of ``post``."""
        response = await self._send_async(path, {**body, "stream": False})
        deadline = time.monotonic() + self._limit
        chunks: list[bytes] = []
        try:
            with self._translated(path):
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    self._check_deadline(deadline, path)
        finally:
            await response.aclose()
        return self._json(b"".join(chunks), path)

    def _check_deadline(self, deadline: float, path: str) -> None:
        # The read timeout bounds each wait; this bounds the whole answer, so a server
        # that trickles a byte at a time cannot hold the caller forever.
        if time.monotonic() > deadline:
            raise EndpointTimeout(f"endpoint {self.endpoint.id!r} timed out (answer not complete within "
                                  f"{self._limit}s) on POST {path}", endpoint=self.endpoint.id)

    async def post_stream_async(self, path: str, body: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Async twin of ``post_stream``."""
        response = await self._send_async(path, {**body, "stream": True})
        decoder = EventDecoder()
        try:
            with self._translated(path):
                async for line in response.aiter_lines():
                    for data in decoder.feed_line(line):
                        if data.strip() == "[DONE]":
                            return
                        yield self._event(data, path)
            for data in decoder.end():
                if data.strip() != "[DONE]":
                    yield self._event(data, path)
        finally:
            await response.aclose()

    async def post_stream_bytes_async(self, path: str, body: Mapping[str, Any]) -> AsyncIterator[bytes]:
        """POST with ``stream: true``; yield the raw ``text/event-stream`` bytes as they arrive.

        For relays that rewrite the stream themselves (the proxy); retries and errors as
        in ``post_stream_async``. An answer that is not an event stream is an ``EndpointError``.
        """
        response = await self._send_async(path, {**body, "stream": True})
        try:
            media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "text/event-stream":
                raise EndpointError(f"endpoint {self.endpoint.id!r} answered a streamed POST {path} with "
                                    f"{media or 'no content type'}, not text/event-stream", endpoint=self.endpoint.id)
            with self._translated(path):
                async for data in response.aiter_bytes():
                    yield data
        finally:
            await response.aclose()

    # -- sending with retries ---------------------------------------------------

    def _request(self, client: httpx.Client | httpx.AsyncClient, path: str,
                 body: Mapping[str, Any]) -> httpx.Request:
        accept = "text/event-stream" if body.get("stream") else "application/json"
        return client.build_request("POST", self._base + path, json=body,
                                    headers={**self._headers, "Accept": accept})

    def _send(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        with self._lock:
            if self._sync is None:
                self._sync = httpx.Client(timeout=self._timeout, trust_env=False)
            client = self._sync
        request = self._request(client, path, body)
        attempt = 0
        while True:
            try:
                with self._translated(path, attempts=attempt + 1, retrying=True):
                    response = client.send(request, stream=True)
            except Retry as again:
                delay = self.retry.delay(attempt)
                if delay is None:
                    raise again.error from again.error.__cause__
                time.sleep(delay)
                attempt += 1
                continue
            delay = self._status_delay(response, attempt)
            if delay is None:
                if response.status_code >= 400:
                    with self._translated(path):
                        content = response.read()
                    response.close()
                    raise self._status_error(response.status_code, content, path)
                return response
            response.close()
            time.sleep(delay)
            attempt += 1

    async def _async_client(self) -> httpx.AsyncClient:
        loop = _running_loop()
        with self._lock:
            client = self._async.get(loop)
            if client is not None:
                return client
            client = self._async[loop] = httpx.AsyncClient(timeout=self._timeout, trust_env=False)
        if loop is not _OTHER_RUNTIME:
            # PEP 525: asyncio.run() / anyio.run() close a loop's live async generators
            # before the loop closes; this one closes the pool while its loop still runs.
            keeper = _close_with_loop(client)
            await keeper.__anext__()
            self._keepers[loop] = keeper
        return client

    async def _send_async(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        client = await self._async_client()
        request = self._request(client, path, body)
        attempt = 0
        while True:
            try:
                with self._translated(path, attempts=attempt + 1, retrying=True):
                    response = await client.send(request, stream=True)
            except Retry as again:
                delay = self.retry.delay(attempt)
                if delay is None:
                    raise again.error from again.error.__cause__
                await anyio.sleep(delay)
                attempt += 1
                continue
            delay = self._status_delay(response, attempt)
            if delay is None:
                if response.status_code >= 400:
                    with self._translated(path):
                        content = await response.aread()
                    await response.aclose()
                    raise self._status_error(response.status_code, content, path)
                return response
            await response.aclose()
            await anyio.sleep(delay)
            attempt += 1

    def _status_delay(self, response: httpx.Response, attempt: int) -> float | None:
        if not self.retry.retryable_status(response.status_code):
            return None
        return self.retry.delay(attempt, retry_after=response.headers.get("retry-after"),
                                retry_after_ms=response.headers.get("retry-after-ms"))

    def _translated(self, path: str, *, attempts: int = 1, retrying: bool = False) -> Translate:
        return Translate(self.endpoint.id, self._base, self._timeout.read, path, attempts=attempts,
                         retrying=retrying)

    # -- decoding ---------------------------------------------------------------

    def _status_error(self, status: int, content: bytes, path: str) -> EndpointError:
        return EndpointError(
            f"endpoint {self.endpoint.id!r} answered HTTP {status} to POST {path}{error_detail(content)}",
            endpoint=self.endpoint.id, status=status,
        )

    def _json(self, content: bytes, path: str) -> dict[str, Any]:
        try:
            value = json.loads(content)
        except ValueError as exc:
            raise EndpointError(f"endpoint {self.endpoint.id!r} answered POST {path} with a body that is "
                                "not JSON", endpoint=self.endpoint.id) from exc
        if not isinstance(value, dict):
            raise EndpointError(f"endpoint {self.endpoint.id!r} answered POST {path} with JSON that is not "
                                f"an object (found {type(value).__name__})", endpoint=self.endpoint.id)
        return value

    def _event(self, data: str, path: str) -> dict[str, Any]:
        event = self._json(data.encode(), path)
        if "error" in event:
            # An error event mid-stream: the status was already 200, so this is the
            # only way the server can still say it failed.
            raise EndpointError(f"endpoint {self.endpoint.id!r} sent an error event in the stream of POST "
                                f"{path}{error_detail(data.encode())}", endpoint=self.endpoint.id)
        return event

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Close the sync connection pool."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the sync pool and this event loop's async pool (others close with their loops)."""
        loop = _running_loop()
        with self._lock:
            client = self._async.pop(loop, None)
            keeper = self._keepers.pop(loop, None)
        if keeper is not None:
            await keeper.aclose()
        elif client is not None:
            await client.aclose()
        self.close()

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class _OtherRuntime:
    """The key of the async pool when no asyncio loop runs (e.g. anyio on trio)."""


_OTHER_RUNTIME = _OtherRuntime()


def _running_loop() -> object:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return _OTHER_RUNTIME


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()
