"""The pure logic behind ``@route``: call the user's router, then keep its choice inside policy.

    >>> from trustlayer.policy.routing import choose, from_function
    >>> from trustlayer.types import Decision, Outcome
    >>> pick = from_function(lambda prompt: "gpt-us")
    >>> decision = Decision(id="d1", outcome=Outcome.REROUTE, endpoint="phone", allowed=("phone",))
    >>> choose(pick("hello"), decision, fallback="reroute", local_id="phone").endpoint
    'phone'

Three router shapes are adapted to one ``Callable[[str], str]`` returning an endpoint id:
a plain function; a RouteLLM ``Controller`` (``controller.route(prompt, router, threshold)``
returns a model name); an LLMRouter router (``router.route_single({"query": prompt})``
returns ``{"model_name": ...}``). A ``models`` mapping turns model names into endpoint ids.
Routers that call a remote service with the prompt (some RouteLLM routers embed it
with the OpenAI API) must be given text that policy already allows off the device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from trustlayer.errors import RouterError
from trustlayer.types import Decision, Outcome

__all__ = ["Choice", "RouterFn", "choose", "from_function", "from_llmrouter", "from_routellm", "router_adapter"]

RouterFn = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Choice:
    """Where the message goes after policy checked the router's pick.

    ``endpoint`` is empty when ``blocked``; ``reason`` is one sentence for the audit record.
    """

    endpoint: str
    rerouted: bool
    blocked: bool
    reason: str


def _endpoint(name: object, models: Mapping[str, str] | None, who: str) -> str:
    if not isinstance(name, str) or not name:
        raise RouterError(f"{who} returned {type(name).__name__} {name!r:.40}, expected a non-empty model name")
    if models is None:
        return name
    found = models.get(name)
    if found is None:
        raise RouterError(f"{who} chose model {name!r}, which the models mapping does not name "
                          f"(mapped: {', '.join(sorted(models))})")
    return found


def from_function(fn: Callable[[str], Any], *, models: Mapping[str, str] | None = None) -> RouterFn:
    """Adapt a function ``prompt -> endpoint id`` (or model name, with ``models``)."""
    who = f"router function {getattr(fn, '__qualname__', type(fn).__name__)!r}"

    def pick(prompt: str) -> str:
        try:
            name = fn(prompt)
        except Exception as exc:  # the router is user code; fail closed with our error
            raise RouterError(f"{who} raised {type(exc).__name__}") from exc
        return _endpoint(name, models, who)

    return pick


def from_routellm(controller: Any, *, router: str, threshold: float,
                  models: Mapping[str, str] | None = None) -> RouterFn:
    """Adapt a RouteLLM ``Controller``: ``controller.route(prompt, router, threshold)`` -> model name."""
    if not callable(getattr(controller, "route", None)):
        raise RouterError(f"{type(controller).__name__} has no route(prompt, router, threshold) method")
    who = f"RouteLLM router {router!r}"

    def pick(prompt: str) -> str:
        try:
            name = controller.route(prompt, router, threshold)
        except Exception as exc:
            raise RouterError(f"{who} raised {type(exc).__name__}") from exc
        return _endpoint(name, models, who)

    return pick


def from_llmrouter(router: Any, *, models: Mapping[str, str] | None = None) -> RouterFn:
    """Adapt an LLMRouter router: ``router.route_single({"query": prompt})`` -> ``{"model_name": ...}``."""
    if not callable(getattr(router, "route_single", None)):
        raise RouterError(f"{type(router).__name__} has no route_single(query) method")
    who = f"LLMRouter router {type(router).__name__!r}"

    def pick(prompt: str) -> str:
        try:
            answer = router.route_single({"query": prompt})
        except Exception as exc:
            raise RouterError(f"{who} raised {type(exc).__name__}") from exc
        if not isinstance(answer, Mapping) or "model_name" not in answer:
            raise RouterError(f"{who} returned {type(answer).__name__}, expected a mapping with 'model_name'")
        return _endpoint(answer["model_name"], models, who)

    return pick


def router_adapter(router: Any, *, models: Mapping[str, str] | None = None, routellm_router: str | None = None,
                   threshold: float | None = None) -> RouterFn:
    """Adapt whichever router shape ``router`` has (LLMRouter, RouteLLM, or a plain callable)."""
    if callable(getattr(router, "route_single", None)):
        return from_llmrouter(router, models=models)
    if routellm_router is not None or (callable(getattr(router, "route", None)) and not callable(router)):
        if routellm_router is None or threshold is None:
            raise RouterError("a RouteLLM controller needs 'routellm_router' (e.g. 'mf') and 'threshold'")
        return from_routellm(router, router=routellm_router, threshold=threshold, models=models)
    if callable(router):
        return from_function(router, models=models)
    raise RouterError(f"{type(router).__name__} is not a router: expected a function, a RouteLLM Controller "
                      "or an LLMRouter router")


def choose(chosen_id: str, decision: Decision, *, fallback: Literal["reroute", "block"],
           local_id: str | None) -> Choice:
    """Keep the router's pick when policy allows it; otherwise apply ``fallback``.

    ``reroute`` goes to ``local_id`` when policy allows it there, else to the decision's
    reroute target, else to the first allowed endpoint; with nothing allowed it blocks.
    """
    if fallback not in ("reroute", "block"):
        raise RouterError(f"fallback must be 'reroute' or 'block', got {fallback!r}")
    rules = ", ".join(decision.rule_ids) or "none"
    if decision.outcome is Outcome.BLOCK:
        return Choice("", False, True, f"policy blocks this message for every endpoint (rules: {rules}).")
    if chosen_id in decision.allowed:
        return Choice(chosen_id, False, False, f"the router chose {chosen_id!r}, which policy allows.")
    refused = f"the router chose {chosen_id!r}, which policy forbids for this message (rules: {rules})"
    if fallback == "block":
        return Choice("", False, True, f"{refused}; the fallback is block.")
    for target in (local_id, decision.endpoint if decision.outcome is Outcome.REROUTE else None,
                   *decision.allowed):
        if target is not None and target in decision.allowed:
            return Choice(target, True, False, f"{refused}; rerouted to {target!r}.")
    return Choice("", False, True, f"{refused}, and no endpoint is allowed to reroute to.")
