"""The one shape every endpoint client has, and the factory that picks one for an ``Endpoint``.

    >>> from trustlayer.endpoints import client_for
    >>> from trustlayer.types import Endpoint
    >>> cloud = Endpoint(id="gpt", kind="cloud", jurisdiction="US",
    ...                  url="http://127.0.0.1:8000/v1", model="gpt-4o-mini")
    >>> client = client_for(cloud)                                      # doctest: +SKIP
    >>> client.complete([{"role": "user", "content": "hi"}])["choices"][0]["message"]  # doctest: +SKIP

Clients are plain: they send what they are given. Putting the gate in front of them is
the caller's job (``TrustLayer``, the decorators, the proxy).

Results are OpenAI JSON as plain dicts: ``complete`` returns a ``chat.completion``,
``stream`` yields ``chat.completion.chunk`` objects, ``complete_text`` / ``stream_text``
the ``text_completion`` equivalents, whatever the endpoint behind them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from trustlayer.errors import ConfigError
from trustlayer.types import Box, Endpoint, Kind

__all__ = ["ChatEndpoint", "client_for"]

ChatMessages = Sequence[Mapping[str, Any]]


@runtime_checkable
class ChatEndpoint(Protocol):
    """An LLM endpoint that speaks OpenAI chat and text completions (sync, async, streaming)."""

    endpoint: Endpoint

    def complete(self, messages: ChatMessages, **params: Any) -> dict[str, Any]:
        """One chat completion for ``messages``; ``params`` are OpenAI request fields."""
        ...

    def stream(self, messages: ChatMessages, **params: Any) -> Iterator[dict[str, Any]]:
        """A streamed chat completion: yields ``chat.completion.chunk`` dicts."""
        ...

    def complete_text(self, prompt: str, **params: Any) -> dict[str, Any]:
        """One text completion of ``prompt``."""
        ...

    def stream_text(self, prompt: str, **params: Any) -> Iterator[dict[str, Any]]:
        """A streamed text completion: yields ``text_completion`` chunk dicts."""
        ...

    async def complete_async(self, messages: ChatMessages, **params: Any) -> dict[str, Any]:
        """Async twin of ``complete``."""
        ...

    def stream_async(self, messages: ChatMessages, **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Async twin of ``stream``."""
        ...

    async def complete_text_async(self, prompt: str, **params: Any) -> dict[str, Any]:
        """Async twin of ``complete_text``."""
        ...

    def stream_text_async(self, prompt: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Async twin of ``stream_text``."""
        ...

    def close(self) -> None:
        """Release connections (the local model stays loaded for the process)."""
        ...

    async def aclose(self) -> None:
        """Async twin of ``close``."""
        ...


def client_for(endpoint: Endpoint) -> ChatEndpoint:
    """The client for ``endpoint``: HTTP when it has a ``url``, the local llama.cpp model otherwise.

    An endpoint without a ``url`` must be on the device or white-box (its weights are
    here); anything else is a config error, because there is no way to reach it.
    """
    if endpoint.url is not None:
        from trustlayer.endpoints.openai_client import OpenAIClient

        return OpenAIClient(endpoint)
    if endpoint.kind is Kind.DEVICE or endpoint.box is Box.WHITE:
        from trustlayer.endpoints.local import LocalEndpoint  # imports llama_cpp lazily

        return LocalEndpoint(endpoint)
    raise ConfigError(
        f"endpoint {endpoint.id!r} ({endpoint.kind.value}, {endpoint.box.value}-box) has no 'url'; "
        "only device or white-box endpoints run locally without one",
        field="endpoints.url",
    )
