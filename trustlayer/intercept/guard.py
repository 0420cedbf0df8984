"""``@guard``: put the gate around a function that calls an LLM.

    >>> from trustlayer import guard
    >>> @guard(to="cloud")                                          # doctest: +SKIP
    ... def ask(prompt: str) -> str:
    ...     return my_llm(prompt)

The function's prompt (a string) or ``messages`` (OpenAI chat turns) goes through
the outbound path; the function is called with what may leave; its result — a
string, a chat completion dict or SDK object, or an (async) iterator of chunks —
goes through the inbound path and comes back restored. When policy reroutes the
request, a function with an ``endpoint`` parameter is told where to send it;
otherwise the rerouted endpoint's own client (e.g. the device's local model)
answers. Signatures and type hints are preserved.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, ParamSpec, TypeVar, overload

import anyio
from pydantic import BaseModel

from trustlayer.errors import Blocked, ConfigError
from trustlayer.gate import Outbound
from trustlayer.intercept.openai_wire import (
    apply_response,
    chat_message,
    conversation_id_for,
    refused_request,
    response_message,
    unreadable_answer,
)
from trustlayer.intercept.sse import STOPPED, ChunkRewriter, abandon_quietly
from trustlayer.layer import TrustLayer
from trustlayer.types import Message, VerifyRequirement

__all__ = ["conversation", "current_conversation", "guard"]

P = ParamSpec("P")
R = TypeVar("R")

_PROMPT_NAMES = ("messages", "prompt", "text", "message", "query", "input")
_conversation: ContextVar[str | None] = ContextVar("trustlayer_conversation", default=None)


@contextmanager
def conversation(conversation_id: str) -> Iterator[str]:
    """Run guarded calls inside one named conversation (placeholders and taint are per conversation)."""
    token = _conversation.set(conversation_id)
    try:
        yield conversation_id
    finally:
        _conversation.reset(token)


def current_conversation() -> str | None:
    """The conversation set by :func:`conversation`, if any."""
    return _conversation.get()


Shape = Literal["text", "messages"]
Answer = Literal["text", "completion", "stream"]


class _Spec:
    """What ``@guard`` learned about the function once, at decoration time."""

    def __init__(self, func: Callable[..., Any], arg: str | None) -> None:
        self.sig = inspect.signature(func)
        params = list(self.sig.parameters)
        if arg is not None:
            if arg not in params:
                raise ConfigError(f"@guard(arg={arg!r}): {func.__qualname__} has no parameter {arg!r} "
                                  f"(parameters: {', '.join(params)})")
            self.param = arg
        else:
            named = [p for p in _PROMPT_NAMES if p in params]
            if named:
                self.param = named[0]
            elif params:
                self.param = params[0]
            else:
                raise ConfigError(f"@guard: {func.__qualname__} takes no parameter to carry the prompt")
        self.endpoint_param = "endpoint" in params
        self.answer = _answer_shape(func)
        kinds = [p.kind for p in self.sig.parameters.values()]
        # Where each positional parameter sits in a call's positional arguments (after binding, all do).
        self.at = {name: i for i, (name, kind) in enumerate(zip(params, kinds, strict=True))
                   if kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
        # A call passing every positional parameter positionally needs no binding (the common case).
        self.arity = len(self.at) if inspect.Parameter.VAR_POSITIONAL not in kinds and not any(
            p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
            for p in self.sig.parameters.values()) else -1


class _Args:
    """One call's arguments, readable and replaceable by parameter name."""

    __slots__ = ("args", "kwargs", "_at")

    def __init__(self, args: list[Any], kwargs: dict[str, Any], at: Mapping[str, int]) -> None:
        self.args = args
        self.kwargs = kwargs
        self._at = at

    def __getitem__(self, name: str) -> Any:
        i = self._at.get(name)
        return self.kwargs[name] if i is None else self.args[i]

    def __setitem__(self, name: str, value: Any) -> None:
        i = self._at.get(name)
        if i is None:
            self.kwargs[name] = value
        else:
            self.args[i] = value


def _answer_shape(func: Callable[..., Any]) -> Answer:
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        return "stream"
    try:
        hint = typing.get_type_hints(func).get("return")
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the raw annotation
        hint = inspect.signature(func).return_annotation
    if hint is str or hint == "str":
        return "text"
    origin = typing.get_origin(hint)
    if origin is not None and isinstance(origin, type) and issubclass(origin, (Iterator, AsyncIterator)):
        return "stream"
    return "completion"


def _to_message(value: Any, layer: TrustLayer) -> tuple[Message, Shape]:
    try:
        return _parsed(value, layer)
    except Blocked as blocked:
        raise refused_request(layer.gate, layer.route_to(layer.me.id), blocked) from None


def _parsed(value: Any, layer: TrustLayer) -> tuple[Message, Shape]:
    cid = current_conversation()
    if isinstance(value, str):
        return Message.from_text(value, conversation_id=cid or conversation_id_for({"prompt": value}, layer.secret)), \
            "text"
    if isinstance(value, list | tuple) and all(isinstance(m, Mapping) for m in value):
        turns = [dict(m) for m in value]
        cid = cid or conversation_id_for({"messages": turns}, layer.secret)
        return chat_message(turns, conversation_id=cid), "messages"
    raise Blocked("parse", f"the guarded argument is a {type(value).__name__}; expected a prompt string or "
                  "a list of OpenAI chat messages")


def _from_message(message: Message, shape: Shape) -> Any:
    return message.text if shape == "text" else message.to_openai()


class _Guard:
    """The state shared by the sync and async wrappers of one guarded function."""

    def __init__(self, func: Callable[..., Any], *, to: str | None, layer: TrustLayer | None, arg: str | None,
                 verify: VerifyRequirement | None) -> None:
        self.func = func
        self.spec = _Spec(func, arg)
        self.to = to
        self._layer = layer
        self.verify = verify

    def layer(self) -> TrustLayer:
        return self._layer if self._layer is not None else TrustLayer.default()

    def destination(self, layer: TrustLayer) -> str:
        if self.to is not None:
            return self.to
        cfg = layer.config
        if cfg is not None and cfg.proxy.upstream:
            return cfg.proxy.upstream
        raise ConfigError(f"@guard on {self.func.__qualname__} needs to='endpoint-id' "
                          "(or proxy.upstream in the config)")

    def bind(self, layer: TrustLayer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[
            _Args, Message, Shape, str]:
        """Bind the call; return its arguments, the message, its shape and the requested endpoint id.

        A caller that passes ``endpoint=`` explicitly (e.g. what ``@route`` chose) requests that endpoint.
        """
        spec = self.spec
        if not kwargs and len(args) == spec.arity:
            bound = _Args(list(args), {}, spec.at)
            explicit = bound["endpoint"] if spec.endpoint_param and "endpoint" in spec.at else None
        else:
            full = spec.sig.bind(*args, **kwargs)  # a TypeError here names the bad argument, before anything leaves
            explicit = full.arguments.get("endpoint") if spec.endpoint_param else None
            full.apply_defaults()
            bound = _Args(list(full.args), dict(full.kwargs), spec.at)
        message, shape = _to_message(bound[spec.param], layer)
        requested = explicit if isinstance(explicit, str) else self.destination(layer)
        return bound, message, shape, requested

    def redirect(self, bound: _Args, out: Outbound, shape: Shape, requested: str) -> bool:
        """Put the transformed prompt in place; True when the function itself may be called."""
        bound[self.spec.param] = _from_message(out.message, shape)
        if self.spec.endpoint_param:
            bound["endpoint"] = out.route.recipient.id
            return True
        return out.route.recipient.id == requested

    def local_answer(self, layer: TrustLayer, out: Outbound) -> Any:
        """Answer a rerouted request with the target endpoint's own client."""
        client = layer.client(out.route.recipient.id)
        messages = out.message.to_openai()
        if self.spec.answer == "stream":
            return client.stream(messages)
        data = client.complete(messages)
        if self.spec.answer == "text":
            return data["choices"][0]["message"].get("content") or ""
        return data

    # ── inbound, by result type ──────────────────────────────────────────────────────────

    def restore(self, layer: TrustLayer, out: Outbound, result: Any) -> Any:
        cid = out.message.conversation_id
        gate = layer.gate
        if result is None:
            return None
        if isinstance(result, str):
            back = gate.inbound(Message.from_text(result, conversation_id=cid), out.route, request=out,
                                verify=self.verify)
            return back.message.text
        if isinstance(result, Mapping) or isinstance(result, BaseModel):
            data = result.model_dump() if isinstance(result, BaseModel) else dict(result)
            kind = _kind(data)
            try:
                reply = response_message(data, kind, conversation_id=cid)
            except Blocked as unreadable:
                raise unreadable_answer(gate, out, unreadable) from None
            back = gate.inbound(reply, out.route, request=out, verify=self.verify)
            restored = apply_response(data, kind, back.message)
            return type(result).model_validate(restored) if isinstance(result, BaseModel) else restored
        if isinstance(result, Iterable):
            return self.restore_stream(layer, out, iter(result))
        raise unreadable_answer(gate, out, Blocked(
            "restore", f"the guarded function returned a {type(result).__name__}; expected a string, "
            "a chat completion, or an iterator of chunks"))

    def restore_stream(self, layer: TrustLayer, out: Outbound, chunks: Iterator[Any]) -> Iterator[Any]:
        restorer = _Chunks(layer, out)
        try:
            for chunk in chunks:
                yield from restorer.feed(chunk)
            yield from restorer.finish()
        finally:
            if not restorer.ended:
                abandon_quietly(restorer.abandon, STOPPED)

    async def restore_async(self, layer: TrustLayer, out: Outbound, result: Any) -> Any:
        if isinstance(result, AsyncIterator):
            return self.restore_async_stream(layer, out, result)
        cid = out.message.conversation_id
        if isinstance(result, str):
            back = await layer.gate.inbound_async(Message.from_text(result, conversation_id=cid), out.route,
                                                  request=out, verify=self.verify)
            return back.message.text
        return await layer.gate.offload(lambda: self.restore(layer, out, result))

    async def restore_async_stream(self, layer: TrustLayer, out: Outbound,
                                   chunks: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        restorer = _Chunks(layer, out)
        try:
            async for chunk in chunks:
                for item in restorer.feed(chunk):
                    yield item
            # finish() signs and records: off the event loop.
            for item in await layer.gate.offload(restorer.finish):
                yield item
        finally:
            if not restorer.ended:
                with anyio.CancelScope(shield=True):
                    await layer.gate.offload(functools.partial(abandon_quietly, restorer.abandon, STOPPED))
                    close = getattr(chunks, "aclose", None)  # the function's own generator, and what it holds open
                    if close is not None:
                        await close()


class _Chunks:
    """Restores a stream of text pieces, chunk dicts or SDK chunk objects, whichever the function yields."""

    def __init__(self, layer: TrustLayer, out: Outbound) -> None:
        self._stream = layer.gate.stream_inbound(out.route, request=out)
        self.abandon = self._stream.abandon
        self._rewriter: ChunkRewriter | None = None
        self._model: type[BaseModel] | None = None

    @property
    def ended(self) -> bool:
        """True once the answer's end is recorded (``InboundStream.ended``)."""
        return self._stream.ended

    def _typed(self, items: list[dict[str, Any]]) -> list[Any]:
        model = self._model
        return [model.model_validate(item) for item in items] if model is not None else list(items)

    def feed(self, chunk: Any) -> list[Any]:
        if isinstance(chunk, str):
            text = self._stream.feed(chunk)
            return [text] if text else []
        if self._rewriter is None:
            self._model = type(chunk) if isinstance(chunk, BaseModel) else None
            self._rewriter = ChunkRewriter(self._stream, "chat")
        data = chunk.model_dump() if isinstance(chunk, BaseModel) else dict(chunk)
        return self._typed(self._rewriter.feed(data))

    def finish(self) -> list[Any]:
        if self._rewriter is None:
            tail = self._stream.finish().get("content", "")
            return [tail] if tail else []
        return self._typed(self._rewriter.finish())


def _kind(data: Mapping[str, Any]) -> Literal["chat", "completions"]:
    choices = data.get("choices") or [{}]
    return "completions" if "text" in choices[0] and "message" not in choices[0] else "chat"


def _wrap(g: _Guard) -> Callable[..., Any]:
    func = g.func
    if inspect.isasyncgenfunction(func):
        async def agen(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            layer = g.layer()
            bound, message, shape, requested = g.bind(layer, args, kwargs)
            out = await layer.gate.outbound_async(message, layer.route_to(requested), candidates=layer.candidates())
            if not g.redirect(bound, out, shape, requested):
                raise Blocked("send", f"policy rerouted to {out.route.recipient.id!r}, and an async generator "
                              "cannot be redirected (give it an 'endpoint' parameter)")
            # aclosing: a caller that leaves early closes the restoring stream now (it records that), not
            # whenever the event loop finalizes it.
            restoring = g.restore_async_stream(layer, out, func(*bound.args, **bound.kwargs))
            async with contextlib.aclosing(restoring) as items:
                async for item in items:
                    yield item
        return functools.wraps(func)(agen)

    if inspect.iscoroutinefunction(func):
        async def coro(*args: Any, **kwargs: Any) -> Any:
            layer = g.layer()
            bound, message, shape, requested = g.bind(layer, args, kwargs)
            out = await layer.gate.outbound_async(message, layer.route_to(requested), candidates=layer.candidates())
            if g.redirect(bound, out, shape, requested):
                result = await func(*bound.args, **bound.kwargs)
            else:
                result = await anyio.to_thread.run_sync(lambda: g.local_answer(layer, out))
            return await g.restore_async(layer, out, result)
        return functools.wraps(func)(coro)

    def sync(*args: Any, **kwargs: Any) -> Any:
        layer = g.layer()
        bound, message, shape, requested = g.bind(layer, args, kwargs)
        out = layer.gate.outbound(message, layer.route_to(requested), candidates=layer.candidates())
        if g.redirect(bound, out, shape, requested):
            result = func(*bound.args, **bound.kwargs)
        else:
            result = g.local_answer(layer, out)
        return g.restore(layer, out, result)
    return functools.wraps(func)(sync)


@overload
def guard(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def guard(*, to: str | None = None, layer: TrustLayer | None = None, arg: str | None = None,
          verify: VerifyRequirement | Mapping[str, Any] | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    ...


def guard(fn: Callable[P, R] | None = None, /, *, to: str | None = None, layer: TrustLayer | None = None,
          arg: str | None = None, verify: VerifyRequirement | Mapping[str, Any] | None = None) -> Any:
    """Gate a function that calls an LLM: its prompt goes out through policy, its answer comes back restored.

    Args:
        fn: the function, when used bare as ``@guard``.
        to: the endpoint id the function sends to (default: ``proxy.upstream`` of the config).
        layer: the TrustLayer (default: one built from ``$TRUSTLAYER_CONFIG`` on first call).
        arg: the parameter holding the prompt or messages (default: ``messages``/``prompt``/... or the first).
        verify: require consensus verification of the answer (e.g. ``{"quorum": 2, "of": 3}``).
    """
    requirement = VerifyRequirement.model_validate(verify) if isinstance(verify, Mapping) else verify

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        return typing.cast(Callable[P, R], _wrap(_Guard(func, to=to, layer=layer, arg=arg, verify=requirement)))

    if fn is not None:
        return decorate(fn)
    return decorate

