"""How consensus asks one endpoint: the ``Asker`` protocol and an OpenAI-compatible asker.

    >>> import asyncio
    >>> from trustlayer.types import Endpoint, Message
    >>> ep = Endpoint(id="m1", kind="cloud", jurisdiction="US", url="http://127.0.0.1:8001/v1", model="m")
    >>> asyncio.run(HttpAsker().ask(ep, Message.from_text("2+2?", conversation_id="c"), 5.0))  # doctest: +SKIP
    '4'

An asker sends a message that has already been through the gate for that endpoint; it
never transforms content itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import httpx

from trustlayer.errors import EndpointError, EndpointTimeout
from trustlayer.types import Endpoint, Message

__all__ = ["Asker", "HttpAsker", "answer_text"]


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


class HttpAsker:
    """Asks OpenAI-compatible ``/chat/completions`` endpoints over httpx (greedy decoding by default).

    ``params`` are extra request fields (default ``temperature=0``). The bearer key is read
    from the environment variable the endpoint names in ``api_key_env``.
    """

    def __init__(self, *, params: Mapping[str, Any] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._params = dict(params if params is not None else {"temperature": 0})
        self._transport = transport

    async def ask(self, endpoint: Endpoint, message: Message, deadline: float) -> str:
        """POST the message to ``{endpoint.url}/chat/completions`` and return the answer text."""
        if not endpoint.url:
            raise EndpointError(f"endpoint {endpoint.id!r} has no url to ask", endpoint=endpoint.id)
        headers = {}
        if endpoint.api_key_env:
            key = os.environ.get(endpoint.api_key_env)
            if not key:
                raise EndpointError(f"endpoint {endpoint.id!r}: environment variable "
                                    f"{endpoint.api_key_env!r} holds no API key", endpoint=endpoint.id)
            headers["Authorization"] = f"Bearer {key}"
        body = {"model": endpoint.model or endpoint.id, "messages": message.to_openai(), **self._params}
        timeout = min(deadline, endpoint.timeout)
        url = endpoint.url.rstrip("/") + "/chat/completions"
        try:
            async with asyncio.timeout(timeout):
                async with httpx.AsyncClient(timeout=timeout, transport=self._transport) as client:
                    response = await client.post(url, json=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise EndpointTimeout(f"endpoint {endpoint.id!r} did not answer within {timeout:g} s",
                                  endpoint=endpoint.id) from exc
        except httpx.HTTPError as exc:
            raise EndpointError(f"endpoint {endpoint.id!r} could not be reached: {type(exc).__name__}",
                                endpoint=endpoint.id) from exc
        if response.status_code != 200:
            raise EndpointError(f"endpoint {endpoint.id!r} answered HTTP {response.status_code}",
                                endpoint=endpoint.id, status=response.status_code)
        try:
            completion = response.json()
        except ValueError as exc:
            raise EndpointError(f"endpoint {endpoint.id!r} answered with a body that is not JSON",
                                endpoint=endpoint.id) from exc
        return answer_text(completion, endpoint.id)
