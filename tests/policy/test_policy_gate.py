"""The real gate driving the real policy engine: second decision, reroute, taint across turns and agents."""

from __future__ import annotations

import json
import re

import pytest
from stagekit import HmacSigner, ListRecorder, Pseudonymizer, TrustAll

from trustlayer.errors import Blocked
from trustlayer.gate import Gate
from trustlayer.policy import PolicyEngine, shipped_policy_path
from trustlayer.types import Endpoint, Finding, Message, Outcome, Route

PATTERNS = {
    "API_KEY": re.compile(r"\bsk-[A-Za-z0-9]{8,}\b"),
    "EMAIL_ADDRESS": re.compile(r"\b[\w.]+@[\w-]+\.[a-z]{2,}\b"),
    "MEDICAL_RECORD_NUMBER": re.compile(r"(?<=MRN )\d{6,10}\b"),
}
KEY = "sk-AbCdEf123456"
EMAIL = "anna.schmidt@example.de"


class PatternDetector:
    """A small real detector over the entity types the policies use (no NER)."""

    def __init__(self) -> None:
        self.asked: list[frozenset[str] | None] = []

    def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
        self.asked.append(entities)
        out = []
        for path, text in message.texts():
            for entity, pattern in PATTERNS.items():
                if entities is not None and entity not in entities:
                    continue
                for m in pattern.finditer(text):
                    out.append(Finding(entity_type=entity, start=m.start(), end=m.end(), score=1.0,
                                       detector="pattern", path=path))
        return out


def make(policy: str, identity: str) -> tuple[Gate, PolicyEngine, HmacSigner, PatternDetector]:
    engine = PolicyEngine.from_file(shipped_policy_path(policy))
    pseudo, signer, detector = Pseudonymizer(), HmacSigner(), PatternDetector()
    gate = Gate(detector=detector, decider=engine, transformer=pseudo, restorer=pseudo, signer=signer,
                recorder=ListRecorder(), authenticator=TrustAll(), identity=identity,
                endpoints=tuple(engine.endpoints.values()))
    return gate, engine, signer, detector


def chat(text: str, cid: str) -> Message:
    return Message.from_openai([{"role": "user", "content": text}], conversation_id=cid)


def test_personal_data_and_key_leave_pseudonymized_under_eu_gdpr() -> None:
    gate, engine, signer, _ = make("eu-gdpr", "phone")
    ep = engine.endpoints
    out = gate.outbound(chat(f"Mail {EMAIL} my key {KEY}", "c1"), Route.between(ep["phone"], ep["gpt-us"]),
                        candidates=(ep["gpt-us"], ep["local-llm"]))
    leaving = out.message.canonical_bytes().decode()
    assert EMAIL not in leaving and KEY not in leaving
    assert out.decision.outcome is Outcome.TRANSFORM and out.route.recipient.id == "gpt-us"
    hop = signer.hops[-1]
    assert hop.decision is not None and hop.decision.policy_digest == engine.digest
    assert {"secrets-never-leave-raw", "eu-transfer-pseudonymized"} <= set(hop.decision.rule_ids)


def test_health_is_rerouted_to_the_local_model_raw() -> None:
    gate, engine, _, _ = make("eu-gdpr", "phone")
    ep = engine.endpoints
    msg = chat("Patient MRN 12345678 has a rash, what now?", "c2")
    out = gate.outbound(msg, Route.between(ep["phone"], ep["gpt-us"]), candidates=(ep["gpt-us"], ep["local-llm"]))
    assert out.route.recipient.id == "local-llm"
    assert out.decision.outcome is Outcome.REROUTE
    assert out.message == msg  # on the device the question stays as asked


def test_taint_keeps_later_turns_on_the_device() -> None:
    gate, engine, _, _ = make("eu-gdpr", "phone")
    ep = engine.endpoints
    route, cands = Route.between(ep["phone"], ep["gpt-us"]), (ep["gpt-us"], ep["local-llm"])
    gate.outbound(chat("MRN 12345678: rash", "c3"), route, candidates=cands)
    later = gate.outbound(chat("and what about sunscreen?", "c3"), route, candidates=cands)
    assert later.route.recipient.id == "local-llm"
    other = gate.outbound(chat("and what about sunscreen?", "c4"), route, candidates=cands)
    assert other.route.recipient.id == "gpt-us" and other.decision.outcome is Outcome.ALLOW


def test_taint_from_a_peer_agent_is_sticky() -> None:
    gate, engine, _, _ = make("default", "phone")
    ep = engine.endpoints
    peer = Endpoint(id="agent-b", kind="agent", jurisdiction="DE")
    reply = Message.from_text("done, see notes", conversation_id="c5")
    gate.inbound(reply, Route.between(peer, ep["phone"]), envelope=b"ok:c5")  # peer record carries 'health'
    assert "health" in gate.taint.get("c5")
    out = gate.outbound(chat("summarize the notes", "c5"), Route.between(ep["phone"], ep["cloud-llm"]),
                        candidates=(ep["cloud-llm"], ep["local-llm"]))
    assert out.route.recipient.id == "local-llm"
    assert "health-stays-on-device" in out.decision.rule_ids


def test_block_without_a_device_is_signed_and_raised() -> None:
    gate, engine, signer, _ = make("device-only-special", "peer-agent")
    ep = engine.endpoints
    with pytest.raises(Blocked) as info:
        gate.outbound(chat("MRN 1234567", "c6"), Route.between(ep["peer-agent"], ep["eu-cloud"]))
    assert info.value.rule_ids == ("special-stays-on-device",)
    assert signer.hops[-1].direction == "block"
    assert "1234567" not in json.dumps([str(info.value), signer.hops[-1].reason])


def test_detection_is_limited_to_what_policy_needs() -> None:
    gate, engine, _, detector = make("pci-dss", "pos-terminal")
    ep = engine.endpoints
    gate.outbound(chat(f"key {KEY}", "c7"), Route.between(ep["pos-terminal"], ep["support-llm"]))
    asked = detector.asked[0]
    assert asked is not None and "API_KEY" in asked and "PERSON" not in asked
