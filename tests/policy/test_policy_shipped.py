from __future__ import annotations

import pytest

from trustlayer.policy import PolicyEngine, shipped_policy_names, shipped_policy_path
from trustlayer.policy.analysis import prove
from trustlayer.policy.cases import run_cases
from trustlayer.types import Finding, Outcome, Route

SHIPPED = ["default", "device-only-special", "eu-gdpr", "hipaa", "pci-dss"]


def test_the_five_policies_ship() -> None:
    assert list(shipped_policy_names()) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_embedded_case_passes(name: str) -> None:
    engine = PolicyEngine.from_file(shipped_policy_path(name))
    results = run_cases(engine)
    assert len(results) >= 4
    failed = [(r.name, r.problems) for r in results if not r.passed]
    assert failed == []


@pytest.mark.parametrize("name", SHIPPED)
def test_every_rule_cites_and_every_class_is_used(name: str) -> None:
    engine = PolicyEngine.from_file(shipped_policy_path(name))
    used = set()
    for rule in engine.policy.file.rules:
        assert rule.cite.strip()
        used |= set(rule.when.classes)
    assert used == set(engine.policy.class_names)


def test_case_runner_reports_a_wrong_expectation() -> None:
    from pathlib import Path

    engine = PolicyEngine.from_file(Path(__file__).parent.parent / "assets" / "policy" / "policy_failing_case.yaml")
    results = run_cases(engine)
    assert [r.passed for r in results] == [True, False]
    assert results[1].problems == ("outcome: expected allow, got transform",)
    assert results[1].line == 22


def f(t: str) -> Finding:
    return Finding(entity_type=t, start=0, end=3, score=1.0, detector="t")


def test_eu_gdpr_expresses_the_demo() -> None:
    engine = PolicyEngine.from_file(shipped_policy_path("eu-gdpr"))
    ep = engine.endpoints
    assert ep["gpt-us"].jurisdiction == "US" and ep["local-llm"].kind.value == "device"
    r = Route.between(ep["phone"], ep["gpt-us"])
    cands = [ep["gpt-us"], ep["local-llm"]]
    personal = engine.decide([f("PERSON"), f("EMAIL_ADDRESS"), f("API_KEY")], r, candidates=cands)
    assert personal.outcome is Outcome.TRANSFORM and personal.endpoint == "gpt-us"
    assert {personal.operators[t].value for t in ("PERSON", "EMAIL_ADDRESS", "API_KEY")} == {"pseudonymize"}
    health = engine.decide([f("MEDICAL_RECORD_NUMBER")], r, candidates=cands)
    assert health.outcome is Outcome.REROUTE and health.endpoint == "local-llm"


@pytest.mark.parametrize(("name", "cls"), [("default", "secrets"), ("default", "personal"), ("eu-gdpr", "secrets"),
                                           ("hipaa", "secrets"), ("pci-dss", "pci_sensitive_auth")])
def test_prove_class_never_reaches_cloud_raw(name: str, cls: str) -> None:
    paths = prove(PolicyEngine.from_file(shipped_policy_path(name)))
    cloud = [p for p in paths if p.cls == cls and p.kind == "cloud"]
    assert cloud and all(p.form != "raw" for p in cloud)


@pytest.mark.parametrize(("name", "cls"), [("default", "health"), ("eu-gdpr", "special_category"),
                                           ("device-only-special", "health"),
                                           ("device-only-special", "special_category")])
def test_prove_special_data_never_leaves_the_device(name: str, cls: str) -> None:
    paths = prove(PolicyEngine.from_file(shipped_policy_path(name)))
    assert {p.kind for p in paths if p.cls == cls} == {"device"}


def test_prove_finds_the_raw_path_that_exists() -> None:
    # Under eu-gdpr, personal data reaches an EU cloud with a DPA in raw form, and prove says so.
    paths = prove(PolicyEngine.from_file(shipped_policy_path("eu-gdpr")))
    assert any(p.cls == "eu_personal" and p.endpoint == "mistral-eu" and p.form == "raw" for p in paths)
    assert not any(p.cls == "eu_personal" and p.endpoint == "gpt-us" and p.form == "raw" and p.subject == "DE"
                   for p in paths)
