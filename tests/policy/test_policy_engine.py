from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest

from trustlayer.errors import PolicyError
from trustlayer.policy import PolicyEngine, shipped_policy_path
from trustlayer.taint import TaintStore
from trustlayer.types import Endpoint, Finding, Operator, Outcome, Route

ASSETS = Path(__file__).parent.parent / "assets" / "policy"


def found(*types: str) -> list[Finding]:
    return [Finding(entity_type=t, start=0, end=4, score=0.9, detector="test") for t in types]


@pytest.fixture(scope="module")
def gdpr() -> PolicyEngine:
    return PolicyEngine.from_file(shipped_policy_path("eu-gdpr"))


@pytest.fixture(scope="module")
def mixed() -> PolicyEngine:
    return PolicyEngine.from_file(ASSETS / "policy_verify_and_permits.yaml")


def route(engine: PolicyEngine, a: str, b: str, subject: str | None = None) -> Route:
    return Route.between(engine.endpoints[a], engine.endpoints[b], subject_jurisdiction=subject)


def test_transform_then_second_decision_allows(gdpr: PolicyEngine) -> None:
    r = route(gdpr, "phone", "gpt-us")
    first = gdpr.decide(found("EMAIL_ADDRESS", "API_KEY"), r)
    assert first.outcome is Outcome.TRANSFORM
    assert first.operators["EMAIL_ADDRESS"] is Operator.PSEUDONYMIZE
    assert first.operators["API_KEY"] is Operator.PSEUDONYMIZE
    assert "MEDICAL_RECORD_NUMBER" not in first.operators
    second = gdpr.decide(found("EMAIL_ADDRESS", "API_KEY"), r, taint=first.classes, applied=first.operators)
    assert second.outcome is Outcome.ALLOW
    assert set(second.rule_ids) == set(first.rule_ids)
    assert all("satisfied" in reason for reason in second.reasons)


def test_second_decision_blocks_when_transform_is_partial(gdpr: PolicyEngine) -> None:
    r = route(gdpr, "phone", "gpt-us")
    first = gdpr.decide(found("EMAIL_ADDRESS", "API_KEY"), r)
    partial = {k: v for k, v in first.operators.items() if k != "API_KEY"}
    second = gdpr.decide(found("EMAIL_ADDRESS", "API_KEY"), r, taint=first.classes, applied=partial)
    assert second.outcome is Outcome.BLOCK
    assert second.rule_ids == ("secrets-never-leave-raw",)
    assert "does not satisfy" in second.reasons[0]


def test_weaker_operator_than_demanded_does_not_count(tmp_path: Path) -> None:
    pci = PolicyEngine.from_file(shipped_policy_path("pci-dss"))
    r = route(pci, "pos-terminal", "support-llm")
    first = pci.decide(found("CVV"), r)
    assert first.operators == {"CVV": Operator.DROP}
    masked = pci.decide(found("CVV"), r, taint=first.classes, applied={"CVV": Operator.MASK})
    assert masked.outcome is Outcome.BLOCK
    dropped = pci.decide(found("CVV"), r, taint=first.classes, applied={"CVV": Operator.DROP})
    assert dropped.outcome is Outcome.ALLOW


def test_forbid_overrides_permit(mixed: PolicyEngine) -> None:
    # dpa-clouds permits us-cloud; the CCPA forbid fires for a US subject and wins.
    r = route(mixed, "phone", "us-cloud", subject="US")
    d = mixed.decide(found("PERSON"), r)
    assert d.outcome is Outcome.TRANSFORM
    assert d.rule_ids[0] == "us-california-subjects"
    assert d.operators["PERSON"] is Operator.HASH
    # Without the forbid the permit decides.
    d2 = mixed.decide(found("PERSON"), route(mixed, "phone", "us-cloud", subject="DE"))
    assert d2.outcome is Outcome.ALLOW and d2.rule_ids == ("dpa-clouds",)


def test_default_forbid_needs_a_permit(mixed: PolicyEngine) -> None:
    no_dpa = Endpoint(id="no-dpa", kind="cloud", jurisdiction="FR")
    d = mixed.decide([], Route.between(mixed.endpoints["phone"], no_dpa))
    assert d.outcome is Outcome.BLOCK
    assert d.rule_ids == ("default",)
    assert "default is forbid" in d.reasons[0]


def test_subdivision_matches_its_country_and_unknown_subject_fails_closed(mixed: PolicyEngine) -> None:
    # us-cloud is US-CA; the rule names US. With no subject known, the forbid assumes the worst.
    unknown = mixed.decide(found("EMAIL_ADDRESS"), route(mixed, "phone", "us-cloud"))
    assert unknown.outcome is Outcome.TRANSFORM
    assert "us-california-subjects" in unknown.rule_ids


def test_match_all_fires_only_with_every_class(mixed: PolicyEngine) -> None:
    r = route(mixed, "phone", "eu-cloud", subject="DE")
    assert mixed.decide(found("IBAN_CODE"), r).outcome is Outcome.ALLOW
    both = mixed.decide(found("IBAN_CODE", "EMAIL_ADDRESS"), r)
    assert both.outcome is Outcome.TRANSFORM
    assert both.operators == {"IBAN_CODE": Operator.PSEUDONYMIZE}


def test_channel_and_sender_conditions(mixed: PolicyEngine) -> None:
    between_agents = mixed.decide([], route(mixed, "agent-a", "agent-b"))
    assert between_agents.outcome is Outcome.ALLOW
    assert between_agents.rule_ids == ("agents-among-themselves",)
    phone_to_agent = mixed.decide([], route(mixed, "phone", "agent-a"))
    assert phone_to_agent.outcome is Outcome.BLOCK


def test_verify_requirement_comes_from_the_deciding_rule(mixed: PolicyEngine) -> None:
    d = mixed.decide([], route(mixed, "phone", "eu-cloud", subject="DE"))
    assert d.verify is not None and (d.verify.quorum, d.verify.of, d.verify.measure) == (2, 3, "exact")
    assert mixed.decide([], route(mixed, "phone", "phone")).verify is None


def test_taint_is_sticky_across_turns(gdpr: PolicyEngine) -> None:
    store = TaintStore()
    r = route(gdpr, "phone", "gpt-us")
    cands = [gdpr.endpoints["gpt-us"], gdpr.endpoints["local-llm"]]
    turn1 = gdpr.decide(found("MEDICAL_RECORD_NUMBER"), r, taint=store.get("c1"), candidates=cands)
    store.add("c1", turn1.classes)
    assert turn1.outcome is Outcome.REROUTE
    turn2 = gdpr.decide([], r, taint=store.get("c1"), candidates=cands)
    assert turn2.outcome is Outcome.REROUTE and turn2.endpoint == "local-llm"
    assert "special_category" in turn2.classes
    # Another conversation is not tainted.
    assert gdpr.decide([], r, taint=store.get("c2"), candidates=cands).outcome is Outcome.ALLOW


def test_taint_of_a_curable_class_demands_the_transform(gdpr: PolicyEngine) -> None:
    r = route(gdpr, "phone", "gpt-us")
    d = gdpr.decide([], r, taint=frozenset({"eu_personal"}))
    assert d.outcome is Outcome.TRANSFORM
    again = gdpr.decide([], r, taint=frozenset({"eu_personal"}), applied=d.operators)
    assert again.outcome is Outcome.ALLOW


def test_route_local_is_not_cured_by_another_rules_transform(gdpr: PolicyEngine) -> None:
    r = route(gdpr, "phone", "gpt-us")
    applied = {t: Operator.PSEUDONYMIZE for t in ("MEDICAL_RECORD_NUMBER", "UK_NHS", "PERSON")}
    d = gdpr.decide(found("MEDICAL_RECORD_NUMBER"), r, taint=frozenset({"special_category"}), applied=applied)
    assert d.outcome is Outcome.BLOCK
    assert d.rule_ids == ("health-stays-on-device",)


def test_reroute_prefers_candidates_then_sender_else_blocks(gdpr: PolicyEngine) -> None:
    r = route(gdpr, "phone", "gpt-us")
    via_candidate = gdpr.decide(found("UK_NHS"), r, candidates=[gdpr.endpoints["local-llm"]])
    assert via_candidate.endpoint == "local-llm"
    via_sender = gdpr.decide(found("UK_NHS"), r)
    assert via_sender.outcome is Outcome.REROUTE and via_sender.endpoint == "phone"
    assert via_sender.allowed == ("phone",)
    from_agent = gdpr.decide(found("UK_NHS"), route(gdpr, "agent-eu", "gpt-us"))
    assert from_agent.outcome is Outcome.BLOCK
    assert "no device endpoint" in from_agent.reasons[0]


def test_unknown_taint_class_fails_closed(gdpr: PolicyEngine) -> None:
    with pytest.raises(PolicyError, match=r"data class 'phi' is not declared \(declared: eu_personal"):
        gdpr.decide([], route(gdpr, "phone", "gpt-us"), taint=frozenset({"phi"}))


def test_entities_for_names_only_what_the_destination_needs(gdpr: PolicyEngine) -> None:
    to_cloud = gdpr.entities_for(route(gdpr, "phone", "gpt-us"))
    assert {"PERSON", "API_KEY", "MEDICAL_RECORD_NUMBER"} <= to_cloud
    assert gdpr.entities_for(route(gdpr, "phone", "local-llm")) == frozenset()
    pci = PolicyEngine.from_file(shipped_policy_path("pci-dss"))
    from trustlayer.redaction.entities import NER_ENTITY_TYPES

    # Only pattern types matter under PCI DSS, so detection can skip NER.
    assert not pci.entities_for(route(pci, "pos-terminal", "support-llm")) & NER_ENTITY_TYPES


def test_decision_ids_unique_and_digest_is_of_the_file(gdpr: PolicyEngine) -> None:
    r = route(gdpr, "phone", "gpt-us")
    ids = {gdpr.decide([], r).id for _ in range(100)}
    assert len(ids) == 100
    digest = hashlib.sha256(shipped_policy_path("eu-gdpr").read_bytes()).hexdigest()
    assert gdpr.digest == digest == gdpr.decide([], r).policy_digest


def test_reasons_never_carry_content(gdpr: PolicyEngine) -> None:
    f = [Finding(entity_type="EMAIL_ADDRESS", start=0, end=20, score=1.0, detector="t")]
    d = gdpr.decide(f, route(gdpr, "phone", "gpt-us"))
    text = " ".join(d.reasons)
    assert "EMAIL_ADDRESS" not in text and "@" not in text
    assert "eu_personal" in text and "'gpt-us'" in text


def test_decision_operators_are_not_shared_between_decisions(gdpr: PolicyEngine) -> None:
    r = route(gdpr, "phone", "gpt-us")
    a = gdpr.decide(found("API_KEY"), r)
    a.operators.clear()  # type: ignore[attr-defined]
    assert gdpr.decide(found("API_KEY"), r).operators


def _policy_text(default: str) -> str:
    return (ASSETS / "policy_failing_case.yaml").read_text().replace("default: permit", f"default: {default}")


def test_change_is_picked_up_only_on_reload(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(_policy_text("permit"))
    engine = PolicyEngine.from_file(f)
    r = Route.between(engine.endpoints["phone"], engine.endpoints["cloud"])
    assert engine.decide([], r).outcome is Outcome.ALLOW
    f.write_text(_policy_text("forbid"))
    assert engine.decide([], r).outcome is Outcome.ALLOW  # the running engine is unchanged
    reloaded = engine.reload()
    assert reloaded.decide([], r).outcome is Outcome.BLOCK
    assert reloaded.digest == hashlib.sha256(f.read_bytes()).hexdigest() != engine.digest


def test_reload_during_rewrites_is_never_half_applied(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    texts = {d: _policy_text(d) for d in ("permit", "forbid")}
    digests = {hashlib.sha256(t.encode()).hexdigest(): d for d, t in texts.items()}
    f.write_text(texts["permit"])
    stop = threading.Event()

    def rewrite() -> None:
        i = 0
        while not stop.is_set():
            tmp = tmp_path / f"new{i % 2}.yaml"
            tmp.write_text(texts["forbid" if i % 2 else "permit"])
            shutil.move(tmp, f)  # atomic rename, as an editor or deploy would do
            i += 1

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        seen = set()
        for _ in range(60):
            engine = PolicyEngine.from_file(f)
            r = Route.between(engine.endpoints["phone"], engine.endpoints["cloud"])
            outcome = engine.decide([], r).outcome
            expected = Outcome.ALLOW if digests[engine.digest] == "permit" else Outcome.BLOCK
            assert outcome is expected
            seen.add(outcome)
    finally:
        stop.set()
        writer.join()
    assert seen  # at least one decision was checked against its digest


def test_allowed_never_offers_an_endpoint_the_findings_are_too_narrow_for(gdpr: PolicyEngine) -> None:
    # Deciding for the device, the gate asks detection for no entity type at all, so those
    # findings say nothing about what the US cloud would receive: it is not offered.
    ep = gdpr.endpoints
    cands = [ep["gpt-us"], ep["local-llm"]]
    to_device = Route.between(ep["phone"], ep["local-llm"])
    assert gdpr.entities_for(to_device) == frozenset()
    assert gdpr.decide([], to_device, candidates=cands).allowed == ("local-llm",)
    to_cloud = Route.between(ep["phone"], ep["gpt-us"])
    assert gdpr.decide([], to_cloud, candidates=cands).allowed == ("gpt-us", "local-llm")


def test_unconditional_forbid_and_verify_on_a_cured_forbid(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("""
version: 1
name: unconditional
default: permit
classes:
  personal: {entities: [PERSON]}
endpoints:
  - {id: phone, kind: device, jurisdiction: DE}
  - {id: rogue, kind: agent, jurisdiction: DE}
  - {id: cloud, kind: cloud, jurisdiction: US}
rules:
  - id: no-unvetted-agents
    effect: forbid
    when: {to: {kind: agent, lacks: [dpa]}}
    cite: "vendor management policy 4.2"
  - id: personal-checked
    effect: forbid
    when: {classes: [personal], to: {kind: cloud}}
    obligations: {pseudonymize: [personal], verify: {quorum: 2, of: 3, measure: f1}}
    cite: "GDPR Art. 5(1)(d)"
""")
    engine = PolicyEngine.from_file(f)
    ep = engine.endpoints
    clean = engine.decide([], Route.between(ep["phone"], ep["rogue"]))
    assert clean.outcome is Outcome.BLOCK and clean.rule_ids == ("no-unvetted-agents",)
    r = Route.between(ep["phone"], ep["cloud"])
    first = engine.decide(found("PERSON"), r)
    assert first.outcome is Outcome.TRANSFORM and first.verify is not None and first.verify.measure == "f1"
    second = engine.decide(found("PERSON"), r, taint=first.classes, applied=first.operators)
    assert second.outcome is Outcome.ALLOW and second.verify == first.verify


def test_subject_jurisdiction_is_normalized_or_refused(gdpr: PolicyEngine) -> None:
    r = Route.between(gdpr.endpoints["phone"], gdpr.endpoints["gpt-us"], subject_jurisdiction="de")
    assert gdpr.decide(found("EMAIL_ADDRESS"), r).outcome is Outcome.TRANSFORM  # 'de' is DE, inside the EEA
    bad = Route.between(gdpr.endpoints["phone"], gdpr.endpoints["gpt-us"], subject_jurisdiction="Germany")
    with pytest.raises(PolicyError, match=r"data subject jurisdiction 'Germany' is not an ISO 3166 code"):
        gdpr.decide(found("EMAIL_ADDRESS"), bad)
    with pytest.raises(PolicyError, match=r"'EUROPE' is not an ISO 3166 code"):
        PolicyEngine.from_file(shipped_policy_path("eu-gdpr"), subject_jurisdiction="europe")
    assert PolicyEngine.from_file(shipped_policy_path("eu-gdpr"), subject_jurisdiction=" fr ").subject_jurisdiction \
        == "FR"


def test_a_hop_to_an_agent_detects_every_class_so_taint_travels_complete(gdpr: PolicyEngine) -> None:
    ep = gdpr.endpoints
    to_agent = Route.between(ep["phone"], ep["agent-eu"])
    assert gdpr.entities_for(to_agent) == frozenset(gdpr.policy.entity_names)
    d = gdpr.decide(found("PERSON"), to_agent)
    assert d.outcome is Outcome.ALLOW and d.classes == frozenset({"eu_personal"})
    # To an EU cloud with a DPA, personal data does not matter, so it is not even looked for.
    assert "PERSON" not in gdpr.entities_for(Route.between(ep["phone"], ep["mistral-eu"]))
