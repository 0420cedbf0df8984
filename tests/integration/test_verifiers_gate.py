# ruff: noqa: F811  (the servers fixture is imported from test_verifiers_consensus)
"""Consensus as the gate's verifier: each panel request goes through the real outbound path.

The gate is composed of the small real stages of ``tests/stagekit.py`` (regex detection,
reversible placeholders, HMAC signing, an in-memory log); the panel endpoints are the
loopback servers of ``test_verifiers_consensus``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence

import pytest
from stagekit import DEVICE, ListRecorder, Pseudonymizer, SimplePolicy, make_gate
from test_verifiers_consensus import Server, endpoints, servers  # noqa: F401 - servers is a fixture

from trustlayer.errors import ConfigError, Unverified
from trustlayer.types import Decision, Endpoint, Finding, Message, Operator, Route, VerifyRequirement
from trustlayer.verifiers import Consensus, EndpointAsker
from trustlayer.verifiers.setup import gate_policy

SECRET = "sk-Abc123XYZ789"
REQUIRE = VerifyRequirement(quorum=2, of=3, measure="exact", deadline=10)


class VerifyingPolicy(SimplePolicy):
    """SimplePolicy, and every decision requires verification."""

    def __init__(self, requirement: VerifyRequirement) -> None:
        super().__init__()
        self.requirement = requirement

    def decide(self, findings: Sequence[Finding], route: Route, *, taint: frozenset[str] = frozenset(),
               applied: Mapping[str, Operator] | None = None, candidates: Sequence[Endpoint] = ()) -> Decision:
        decision = super().decide(findings, route, taint=taint, applied=applied, candidates=candidates)
        return decision.model_copy(update={"verify": self.requirement, "id": uuid.uuid4().hex})


def build(panel: list[Endpoint], requirement: VerifyRequirement = REQUIRE,
          ) -> tuple[Consensus, object, ListRecorder]:
    pseudo = Pseudonymizer()
    consensus = Consensus(panel, asker=EndpointAsker(), policy=None)
    recorder = ListRecorder()
    gate = make_gate(decider=VerifyingPolicy(requirement), transformer=pseudo, restorer=pseudo, recorder=recorder,
                     verifier=consensus, endpoints=(DEVICE, *panel))
    consensus.bind(policy=gate_policy(gate), restore=pseudo.restore)
    return consensus, gate, recorder


def roundtrip(gate: object, consensus: Consensus, panel: list[Endpoint], text: str) -> tuple[str, object]:
    """Send through the gate to the primary, ask it for real, and pass its answer inbound."""
    import asyncio

    request = Message.from_openai([{"role": "user", "content": text}], conversation_id="conv-1")
    out = gate.outbound(request, Route.between(DEVICE, panel[0]))  # type: ignore[attr-defined]
    async def ask_primary() -> str:
        asker = EndpointAsker()
        try:
            return await asker.ask(out.route.recipient, out.message, 10)
        finally:
            await asker.aclose()

    answer = asyncio.run(ask_primary())
    response = Message.from_openai([{"role": "assistant", "content": answer}], conversation_id="conv-1")
    try:
        inbound = gate.inbound(response, out.route, request=out)  # type: ignore[attr-defined]
    finally:
        consensus.close()
    return answer, inbound


@pytest.mark.parametrize("servers", [[("a", "honest"), ("b", "wrong"), ("c", "honest")]], indirect=True)
def test_panel_requests_are_redacted_signed_and_the_verdict_names_the_dissenter(
        servers: dict[str, Server]) -> None:
    panel = endpoints(servers)
    consensus, gate, recorder = build(panel)
    _, inbound = roundtrip(gate, consensus, panel, f"My key is {SECRET}. What is 30 + 12?")
    verdict = inbound.verdict  # type: ignore[attr-defined]
    assert verdict.verified and verdict.dissenting == ("b",) and set(verdict.agreeing) == {"a", "c"}
    for server in servers.values():
        seen = json.dumps(server.received)
        assert SECRET not in seen and "<SECRET_1>" in seen
    # outbound to a, outbound to b and c (the panel, through the gate), inbound from a
    assert recorder.directions().count("outbound") == 3
    assert recorder.directions()[-1] == "inbound"


@pytest.mark.parametrize("servers", [[("a", "honest"), ("b", "wrong"), ("c", "fail")]], indirect=True)
def test_an_unmet_quorum_blocks_the_answer_at_the_gate(servers: dict[str, Server]) -> None:
    panel = endpoints(servers)
    consensus, gate, recorder = build(panel)
    with pytest.raises(Unverified, match="quorum 2 of 3 not met") as caught:
        roundtrip(gate, consensus, panel, "What is 2 + 2?")
    verdict = caught.value.verdict
    assert verdict is not None and verdict.outcome == "unverified" and verdict.answer is None
    assert recorder.directions()[-1] == "block"


@pytest.mark.parametrize("servers", [[("a", "echo"), ("b", "echo"), ("c", "echo")]], indirect=True)
def test_panel_answers_are_restored_before_they_are_compared(servers: dict[str, Server]) -> None:
    panel = endpoints(servers)
    strict = VerifyRequirement(quorum=3, of=3, measure="f1", threshold=1.0, deadline=10)
    consensus, gate, _ = build(panel, strict)
    answer, inbound = roundtrip(gate, consensus, panel, f"Repeat {SECRET} please")
    assert "<SECRET_1>" in answer  # what the endpoints saw and echoed
    verdict = inbound.verdict  # type: ignore[attr-defined]
    assert verdict.verified and set(verdict.agreeing) == {"a", "b", "c"}
    assert SECRET in (verdict.answer or "")


def test_without_a_bound_policy_verification_fails_closed() -> None:
    ep = Endpoint(id="x", kind="cloud", jurisdiction="US", url="http://127.0.0.1:9/v1")
    consensus = Consensus([ep], asker=EndpointAsker(), policy=None)
    request = Message.from_text("hi", conversation_id="c")
    with pytest.raises(ConfigError, match="no policy to prepare messages with"):
        consensus.verify(request, request, Route.between(DEVICE, ep), VerifyRequirement(quorum=1, of=1))
    consensus.bind(policy=lambda m, r: m)
    with pytest.raises(ConfigError, match="already has a policy"):
        consensus.bind(policy=lambda m, r: m)


@pytest.mark.parametrize("servers", [[("a", "honest"), ("b", "honest"), ("c", "honest")]], indirect=True)
def test_a_rerouted_panel_request_is_never_sent_to_the_endpoint(servers: dict[str, Server]) -> None:
    """Health data is rerouted to the device by policy: the gate's Outbound says so, nobody is asked."""
    import asyncio

    panel = endpoints(servers)
    _, gate, _ = build(panel)
    request = Message.from_openai([{"role": "user", "content": "I have diabetes. What is 2 + 2?"}],
                                  conversation_id="conv-2")
    lead_style = Consensus(panel, asker=EndpointAsker(),
                           policy=lambda m, r: gate.outbound(m, r))  # type: ignore[attr-defined]

    async def run() -> object:
        try:
            return await lead_style.ask_async(
                lambda ep: gate.outbound(request, Route.between(DEVICE, ep)),  # type: ignore[attr-defined]
                quorum=2, deadline=5)
        finally:
            await lead_style.aclose()

    verdict = asyncio.run(run())
    assert verdict.abstained == {"a": "policy: rerouted", "b": "policy: rerouted",  # type: ignore[attr-defined]
                                 "c": "policy: rerouted"}
    assert all(server.received == [] for server in servers.values())


def test_a_gate_policy_given_a_function_follows_the_current_gate() -> None:
    """After a policy reload the layer has a new gate; panel requests must go through it, not the old one."""
    import asyncio

    from stagekit import CLOUD, BlockAll

    from trustlayer.errors import Blocked

    permissive, blocking = make_gate(), make_gate(decider=BlockAll())
    holder = {"gate": permissive}
    prepare = gate_policy(lambda: holder["gate"])
    message = Message.from_openai([{"role": "user", "content": "hello"}], conversation_id="conv-reload")
    route = Route.between(DEVICE, CLOUD)
    assert asyncio.run(prepare(message, route)).route.recipient == CLOUD  # type: ignore[attr-defined]
    holder["gate"] = blocking
    with pytest.raises(Blocked):
        asyncio.run(prepare(message, route))
