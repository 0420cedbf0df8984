"""Endpoint clients: OpenAI-compatible HTTP APIs and the local llama.cpp model, behind one shape.

    >>> from trustlayer.endpoints import client_for
    >>> client = client_for(endpoint)                          # doctest: +SKIP
    >>> client.complete([{"role": "user", "content": "hi"}])  # doctest: +SKIP

Clients are plain; the gate is applied by their callers.
"""

from trustlayer.endpoints._retry import RetryPolicy
from trustlayer.endpoints.base import ChatEndpoint, client_for
from trustlayer.endpoints.local import LocalEndpoint, shared_llama
from trustlayer.endpoints.models import default_model_path
from trustlayer.endpoints.openai_client import OpenAIClient, resolve_api_key

__all__ = [
    "ChatEndpoint",
    "LocalEndpoint",
    "OpenAIClient",
    "RetryPolicy",
    "client_for",
    "default_model_path",
    "resolve_api_key",
    "shared_llama",
]
