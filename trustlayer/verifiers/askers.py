"""How consensus asks one endpoint: the ``Asker`` protocol and its adapter over the endpoint clients.

    >>> import asyncio
    >>> from trustlayer.types import Endpoint, Message
    >>> ep = Endpoint(id="m1", kind="cloud", jurisdiction="US", url="http://127.0.0.1:8001/v1", model="m")
    >>> asyncio.run(EndpointAsker().ask(ep, Message.from_text("2+2?", conversation_id="c"), 5.0))  # doctest: +SKIP
    '4'

An asker sends a message that has already been through the gate for that endpoint; it
never transforms content itself.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from trustlayer.endpoints.base import ChatEndpoint, client_for
from trustlayer.errors import EndpointError, EndpointTimeout
from trustlayer.types import Endpoint, Message

__all__ = ["Asker", "EndpointAsker", "answer_text"]


@runtime_checkable
class Asker(Protocol):
    """Asks one endpoint one question and returns the answer text."""

    async def ask(self, endpoint: Endpoint, message: Message, deadline: float) -> str:
        """Return the answer of ``endpoint`` to ``message`` within ``deadline`` seconds.

        Raises ``EndpointTimeout`` when the deadline passes and ``EndpointError`` for any
        other failure.
        """
        ...


def answer_text(completion: Mapping[str, Any], endpoint_id: str) -> str:
    """The assistant text of an OpenAI chat completion; ``EndpointError`` naming what is missing."""
    try:
        choice = completion["choices"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise EndpointError(f"endpoint {endpoint_id!r} answered without 'choices[0]'",
                            endpoint=endpoint_id) from exc
    message = choice.get("message") if isinstance(choice, Mapping) else None
    content = message.get("content") if isinstance(message, Mapping) else None
    if content is None and isinstance(choice, Mapping):
        content = choice.get("text")  # the legacy completions shape
    if not isinstance(content, str):
        raise EndpointError(f"endpoint {endpoint_id!r} answered without text in 'choices[0].message.content'",
                            endpoint=endpoint_id)
    return content


class EndpointAsker:
    """Asks endpoints through their ``trustlayer.endpoints`` client (``client_for``), within the deadline.

    ``params`` are extra OpenAI request fields (default ``temperature=0``: greedy decoding,
    so an endpoint's answer does not vary between asks). ``factory`` makes the client for
    an endpoint (default ``trustlayer.endpoints.base.client_for``: HTTP when the endpoint has
    a ``url``, the local llama.cpp model otherwise). Clients are kept per event loop and
    endpoint, because an async connection pool belongs to the loop that opened it; making a
    client per ask would pay connection and TLS setup on every fan-out.
    """

    def __init__(self, *, params: Mapping[str, Any] | None = None,
                 factory: Callable[[Endpoint], ChatEndpoint] | None = None) -> None:
        self._params = dict(params if params is not None else {"temperature": 0})
        self._factory = factory or client_for
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, ChatEndpoint]] = (
            weakref.WeakKeyDictionary())

    def _client(self, endpoint: Endpoint) -> ChatEndpoint:
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._clients.setdefault(loop, {})
            client = clients.get(endpoint.id)
            if client is None or client.endpoint != endpoint:
                client = clients[endpoint.id] = self._factory(endpoint)
        return client

    async def ask(self, endpoint: Endpoint, message: Message, deadline: float) -> str:
        """Send ``message`` as a chat completion and return the assistant text."""
        client = self._client(endpoint)
        try:
            async with asyncio.timeout(deadline):
                completion = await client.complete_async(message.to_openai(), **self._params)
        except TimeoutError as exc:
            raise EndpointTimeout(f"endpoint {endpoint.id!r} did not answer within {deadline:g} s",
                                  endpoint=endpoint.id) from exc
        return answer_text(completion, endpoint.id)

    async def aclose(self) -> None:
        """Close the clients opened on the running event loop."""
        with self._lock:
            clients = self._clients.pop(asyncio.get_running_loop(), {})
        for client in clients.values():
            await client.aclose()
