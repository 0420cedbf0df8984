from __future__ import annotations

import random
from typing import Any

import pytest

from trustlayer.errors import RouterError
from trustlayer.policy import (
    PolicyEngine,
    choose,
    from_function,
    from_llmrouter,
    from_routellm,
    router_adapter,
    shipped_policy_path,
)
from trustlayer.types import Decision, Finding, Outcome, Route


class ModelPair:
    def __init__(self, strong: str, weak: str) -> None:
        self.strong, self.weak = strong, weak


class LengthRouter:
    """A RouteLLM-style router: a strong-model win rate from the prompt, compared to the threshold."""

    def calculate_strong_win_rate(self, prompt: str) -> float:
        return min(1.0, len(prompt.split()) / 20)

    def route(self, prompt: str, threshold: float, pair: ModelPair) -> str:
        return pair.strong if self.calculate_strong_win_rate(prompt) >= threshold else pair.weak


class Controller:
    """The shape of routellm 0.2.0 controller.Controller: route(prompt, router, threshold) -> model name.

    RouteLLM and llmrouter-lib download from PyPI but install litellm, transformers, datasets (and
    gradio, torch-geometric for LLMRouter) and upgrade shared packages, and their routers fetch
    checkpoints or call embedding APIs; these classes keep the exact method shapes instead.
    """

    def __init__(self, routers: list[str], strong_model: str, weak_model: str) -> None:
        self.model_pair = ModelPair(strong_model, weak_model)
        self.routers = {name: LengthRouter() for name in routers}

    def route(self, prompt: str, router: str, threshold: float) -> str:
        if router not in self.routers or not 0 <= threshold <= 1:
            raise ValueError(f"Invalid router {router}")
        return self.routers[router].route(prompt, threshold, self.model_pair)


class KeywordRouter:
    """The shape of an LLMRouter (PyPI llmrouter-lib 0.4.0) MetaRouter subclass: route_single(dict) -> dict."""

    def __init__(self, rules: dict[str, str], default: str) -> None:
        self.rules, self.default = rules, default

    def route_single(self, query: dict[str, Any]) -> dict[str, Any]:
        text = query["query"].lower()
        for word, model in self.rules.items():
            if word in text:
                return {"query": query["query"], "model_name": model, "predicted_llm": model}
        return {"query": query["query"], "model_name": self.default, "predicted_llm": self.default}


@pytest.fixture(scope="module")
def gdpr() -> PolicyEngine:
    return PolicyEngine.from_file(shipped_policy_path("eu-gdpr"))


def decide(engine: PolicyEngine, *types: str) -> Decision:
    ep = engine.endpoints
    findings = [Finding(entity_type=t, start=0, end=3, score=1.0, detector="t") for t in types]
    return engine.decide(findings, Route.between(ep["phone"], ep["gpt-us"]),
                         candidates=[ep["gpt-us"], ep["mistral-eu"], ep["local-llm"]])


def user_router(prompt: str) -> str:
    return "gpt-us" if "code" in prompt else "mistral-eu"


def test_allowed_choice_is_kept(gdpr: PolicyEngine) -> None:
    pick = from_function(user_router)
    c = choose(pick("write code"), decide(gdpr, "API_KEY"), fallback="block", local_id="local-llm")
    assert (c.endpoint, c.rerouted, c.blocked) == ("gpt-us", False, False)


def test_forbidden_choice_reroutes_to_local(gdpr: PolicyEngine) -> None:
    pick = from_function(user_router)
    d = decide(gdpr, "MEDICAL_RECORD_NUMBER")
    assert d.allowed == ("local-llm",)
    c = choose(pick("write code"), d, fallback="reroute", local_id="local-llm")
    assert (c.endpoint, c.rerouted, c.blocked) == ("local-llm", True, False)
    assert "'gpt-us'" in c.reason and "health-stays-on-device" in c.reason


def test_forbidden_choice_blocks_with_block_fallback(gdpr: PolicyEngine) -> None:
    c = choose(from_function(user_router)("code"), decide(gdpr, "UK_NHS"), fallback="block", local_id="local-llm")
    assert c.blocked and c.endpoint == "" and "fallback is block" in c.reason


def test_reroute_without_local_uses_an_allowed_endpoint() -> None:
    d = Decision(id="d", outcome=Outcome.ALLOW, endpoint="a", allowed=("b",), rule_ids=("r",))
    c = choose("a", d, fallback="reroute", local_id=None)
    assert (c.endpoint, c.rerouted) == ("b", True)
    nothing = Decision(id="d", outcome=Outcome.ALLOW, endpoint="a", allowed=())
    assert choose("a", nothing, fallback="reroute", local_id="x").blocked


def test_block_decision_blocks_every_choice() -> None:
    d = Decision(id="d", outcome=Outcome.BLOCK, endpoint="a", allowed=(), rule_ids=("r1",))
    assert choose("a", d, fallback="reroute", local_id="a").blocked


def test_routellm_controller_with_model_mapping(gdpr: PolicyEngine) -> None:
    controller = Controller(["length"], strong_model="gpt-4o", weak_model="mistral-small")
    pick = from_routellm(controller, router="length", threshold=0.5,
                         models={"gpt-4o": "gpt-us", "mistral-small": "mistral-eu"})
    long_prompt = " ".join(["word"] * 30)
    assert pick("hi") == "mistral-eu"
    assert pick(long_prompt) == "gpt-us"
    c = choose(pick(long_prompt), decide(gdpr, "UK_NHS"), fallback="reroute", local_id="local-llm")
    assert c.endpoint == "local-llm" and c.rerouted


def test_llmrouter_router(gdpr: PolicyEngine) -> None:
    router = KeywordRouter({"math": "gpt-4o"}, default="local")
    pick = from_llmrouter(router, models={"gpt-4o": "gpt-us", "local": "local-llm"})
    assert pick("a math question") == "gpt-us"
    assert pick("hello") == "local-llm"
    c = choose(pick("a math question"), decide(gdpr, "PERSON"), fallback="block", local_id="local-llm")
    assert c.endpoint == "gpt-us" and not c.blocked  # allowed after pseudonymization


def test_adapter_detects_the_shape() -> None:
    assert router_adapter(KeywordRouter({}, default="x"))("q") == "x"
    assert router_adapter(lambda p: "y")("q") == "y"
    controller = Controller(["length"], "s", "w")
    assert router_adapter(controller, routellm_router="length", threshold=0.0)("q") == "s"
    with pytest.raises(RouterError, match=r"needs 'routellm_router'"):
        router_adapter(controller)
    with pytest.raises(RouterError, match=r"is not a router"):
        router_adapter(42)


def test_router_errors_fail_closed() -> None:
    def broken(prompt: str) -> str:
        raise KeyError(prompt)

    with pytest.raises(RouterError, match=r"router function .*broken' raised KeyError"):
        from_function(broken)("secret prompt text")
    with pytest.raises(RouterError, match=r"chose model 'gpt-5', which the models mapping does not name"):
        from_function(lambda p: "gpt-5", models={"gpt-4o": "gpt-us"})("q")
    with pytest.raises(RouterError, match=r"returned NoneType"):
        from_function(lambda p: None)("q")
    with pytest.raises(RouterError, match=r"RouteLLM router 'nope' raised ValueError"):
        from_routellm(Controller(["length"], "s", "w"), router="nope", threshold=0.5)("q")
    with pytest.raises(RouterError, match=r"expected a mapping with 'model_name'"):
        from_llmrouter(type("R", (), {"route_single": lambda self, q: ["x"]})())("q")


def test_router_error_never_echoes_the_prompt() -> None:
    def broken(prompt: str) -> str:
        raise ValueError(prompt)

    with pytest.raises(RouterError) as info:
        from_function(broken)("anna@example.org")
    assert "anna" not in str(info.value)


def test_random_router_never_escapes_the_allowed_set(gdpr: PolicyEngine) -> None:
    rng = random.Random(7)
    ids = ["gpt-us", "mistral-eu", "local-llm", "edge-nodpa"]
    for types in (("UK_NHS",), ("PERSON",), ()):
        d = decide(gdpr, *types)
        for _ in range(50):
            c = choose(rng.choice(ids), d, fallback="reroute", local_id="local-llm")
            assert c.blocked or c.endpoint in d.allowed
