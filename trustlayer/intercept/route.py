"""``@route``: let the router you already have choose only among endpoints policy allows.

    >>> from trustlayer import route
    >>> @route(layer=tl)                                     # doctest: +SKIP
    ... def pick(prompt: str) -> str:
    ...     return "cloud" if len(prompt) > 200 else "phone"
    >>> pick("I was diagnosed with diabetes ...")            # doctest: +SKIP
    'phone'

Works on a plain function returning an endpoint id (or a model name, with
``models``), and — called as ``route(obj, ...)`` — on a RouteLLM ``Controller`` or an
LLMRouter router. The message is detected and decided before the answer is used; a
forbidden pick is rerouted (``fallback="reroute"``, to ``local``) or blocked, and either
event is signed into the audit log. Never a silent send.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal, ParamSpec, cast, overload

from trustlayer.errors import ConfigError, RouterError
from trustlayer.intercept.guard import _to_message
from trustlayer.layer import TrustLayer
from trustlayer.policy.routing import RouterFn, choose, from_function, router_adapter
from trustlayer.types import Message

__all__ = ["route"]

P = ParamSpec("P")
Fallback = Literal["reroute", "block"]


class _Router:
    def __init__(self, pick: RouterFn | None, *, layer: TrustLayer | None, candidates: tuple[str, ...] | None,
                 fallback: Fallback | None, local: str | None) -> None:
        self.pick = pick
        self._layer = layer
        self.candidates = candidates
        self.fallback = fallback
        self.local = local

    def layer(self) -> TrustLayer:
        return self._layer if self._layer is not None else TrustLayer.default()

    def decide(self, value: Any, pick: RouterFn | None = None) -> str:
        pick = pick or self.pick
        if pick is None:
            raise RouterError("no router to call")
        layer = self.layer()
        message, _ = _to_message(value, layer)
        prompt = value if isinstance(value, str) else _last_user_text(message)
        candidates = layer.candidates(self.candidates)
        ids = {c.id for c in candidates}
        try:
            chosen = pick(prompt)
        except RouterError as exc:
            raise layer.gate.record_block("route", str(exc), message, layer.route_to(layer.me.id)) from None
        if chosen not in ids:
            raise layer.gate.record_block("route", f"the router chose {chosen!r}, which is not a candidate "
                                          f"(candidates: {', '.join(sorted(ids))})", message,
                                          layer.route_to(layer.me.id))
        route = layer.route_to(chosen)
        _, decision = layer.gate.plan(message, route, candidates=candidates)
        fallback = self.fallback or cast(Fallback, layer.fallback)
        choice = choose(chosen, decision, fallback=fallback, local_id=self.local or layer.local_id)
        if choice.blocked:
            raise layer.gate.record_block("route", choice.reason, message, route, decision)
        if choice.rerouted:
            # The router's pick was refused: that refusal is itself an audited event.
            layer.gate.record_block("route", choice.reason, message, route, decision)
        return choice.endpoint


def _last_user_text(message: Message) -> str:
    for turn in reversed(message.turns or ()):
        if turn.role == "user" and isinstance(turn.content, str):
            return turn.content
    return message.text or ""


@overload
def route(fn: Callable[P, str], /) -> Callable[P, str]: ...


@overload
def route(fn: None = None, /, *, layer: TrustLayer | None = None, candidates: tuple[str, ...] | None = None,
          fallback: Fallback | None = None, local: str | None = None, models: Mapping[str, str] | None = None,
          arg: str | None = None) -> Callable[[Callable[P, str]], Callable[P, str]]: ...


@overload
def route(fn: object, /, *, layer: TrustLayer | None = None, candidates: tuple[str, ...] | None = None,
          fallback: Fallback | None = None, local: str | None = None, models: Mapping[str, str] | None = None,
          routellm_router: str | None = None, threshold: float | None = None) -> Callable[[Any], str]: ...


def route(fn: Any = None, /, *, layer: TrustLayer | None = None, candidates: tuple[str, ...] | None = None,
          fallback: Fallback | None = None, local: str | None = None, models: Mapping[str, str] | None = None,
          arg: str | None = None, routellm_router: str | None = None, threshold: float | None = None) -> Any:
    """Keep a router's choice inside policy; reroute or block (and record) when it picks a forbidden endpoint.

    Args:
        fn: the router function (bare ``@route``), or a RouteLLM / LLMRouter router object.
        layer: the TrustLayer (default: built from ``$TRUSTLAYER_CONFIG``).
        candidates: endpoint ids the router may choose among (default: all declared).
        fallback: ``reroute`` or ``block`` (default: ``router.fallback`` of the config).
        local: where to reroute (default: ``router.local`` of the config, else this device).
        models: model name -> endpoint id, for routers that answer with model names.
        arg: the parameter holding the prompt or messages (default: the first).
        routellm_router: the RouteLLM router name (e.g. ``mf``); with ``threshold``.
        threshold: the RouteLLM cost threshold.
    """
    def wrap_function(func: Callable[..., Any]) -> Callable[..., str]:
        sig = inspect.signature(func)
        params = list(sig.parameters)
        name = arg if arg is not None else (params[0] if params else None)
        if name is None or name not in params:
            raise ConfigError(f"@route: {func.__qualname__} has no parameter {name!r} to carry the prompt")
        router = _Router(None, layer=layer, candidates=candidates, fallback=fallback, local=local)
        who = getattr(func, "__qualname__", "router")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> str:
            bound = sig.bind(*args, **kwargs)

            def call(_prompt: str) -> Any:
                return func(*args, **kwargs)

            call.__qualname__ = who
            return router.decide(bound.arguments[name], from_function(call, models=models))

        return wrapper

    if fn is not None and not inspect.isfunction(fn) and not inspect.ismethod(fn):
        adapter = router_adapter(fn, models=models, routellm_router=routellm_router, threshold=threshold)
        router = _Router(adapter, layer=layer, candidates=candidates, fallback=fallback, local=local)
        return router.decide
    if fn is not None:
        return wrap_function(fn)
    return wrap_function

