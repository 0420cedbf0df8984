"""Properties over the shipped policies, random destinations, findings and taint (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustlayer.policy import PolicyEngine, shipped_policy_path
from trustlayer.policy.analysis import profiles
from trustlayer.types import Endpoint, Finding, Outcome, Route

NAMES = ["default", "eu-gdpr", "hipaa", "pci-dss", "device-only-special"]
ENGINES = {n: PolicyEngine.from_file(shipped_policy_path(n)) for n in NAMES}
PROFILES = {n: profiles(e) + list(e.endpoints.values()) for n, e in ENGINES.items()}
DEVICE = Endpoint(id="me", kind="device", jurisdiction="DE", box="white")


@st.composite
def situations(draw: st.DrawFn) -> tuple[PolicyEngine, Route, list[Finding], frozenset[str]]:
    name = draw(st.sampled_from(NAMES))
    engine = ENGINES[name]
    recipient = draw(st.sampled_from(PROFILES[name]))
    subject = draw(st.sampled_from([None, "DE", "US", "BR", "FR"]))
    types = draw(st.lists(st.sampled_from(sorted(engine.policy.entity_names) + ["NRP", "URL"]), max_size=5))
    taint = frozenset(draw(st.lists(st.sampled_from(engine.policy.class_names), max_size=2)))
    findings = [Finding(entity_type=t, start=0, end=4, score=0.9, detector="h") for t in types]
    return engine, Route.between(DEVICE, recipient, subject_jurisdiction=subject), findings, taint


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(situations())
def test_the_demanded_transform_always_satisfies_the_second_decision(
        s: tuple[PolicyEngine, Route, list[Finding], frozenset[str]]) -> None:
    engine, route, findings, taint = s
    first = engine.decide(findings, route, taint=taint)
    if first.outcome is Outcome.TRANSFORM:
        second = engine.decide(findings, route, taint=taint | first.classes, applied=first.operators)
        assert second.outcome is Outcome.ALLOW, second.reasons
        assert second.operators == {}


@SETTINGS
@given(situations())
def test_no_raw_class_reaches_a_destination_whose_rules_forbid_it(
        s: tuple[PolicyEngine, Route, list[Finding], frozenset[str]]) -> None:
    engine, route, findings, taint = s
    d = engine.decide(findings, route, taint=taint)
    if d.outcome not in (Outcome.ALLOW, Outcome.TRANSFORM):
        return
    p = engine.policy
    raw = {f.entity_type for f in findings if f.entity_type not in d.operators}
    # Whatever stays raw must not make any forbid rule fire at this destination.
    left = 0
    for t in raw:
        left |= p.entity_classes.get(p.entity_bit.get(t, 0), 0)
    for c in taint | d.classes:
        if not p.class_entities[p.class_bit[c]] <= set(d.operators):
            left |= p.class_bit[c]
    mask = engine.applicable(route.sender, route.recipient, route.channel.value,
                             route.subject_jurisdiction or engine.subject_jurisdiction)
    assert not (mask & p.fires(left) & p.forbid_mask), d.rule_ids


@SETTINGS
@given(situations(), st.sampled_from(["PERSON", "MEDICAL_RECORD_NUMBER", "API_KEY", "CVV", "NRP", "UK_NHS"]))
def test_more_data_never_opens_a_closed_destination(
        s: tuple[PolicyEngine, Route, list[Finding], frozenset[str]], extra: str) -> None:
    engine, route, findings, taint = s
    before = engine.decide(findings, route, taint=taint)
    more = [*findings, Finding(entity_type=extra, start=0, end=4, score=0.9, detector="h")]
    after = engine.decide(more, route, taint=taint)
    if before.outcome in (Outcome.BLOCK, Outcome.REROUTE):
        assert after.outcome in (Outcome.BLOCK, Outcome.REROUTE)
    if before.outcome is Outcome.TRANSFORM and after.outcome is Outcome.TRANSFORM:
        assert set(before.operators) <= set(after.operators)


@pytest.mark.parametrize("name", NAMES)
def test_engine_is_a_decider(name: str) -> None:
    from trustlayer.stages import Decider

    assert isinstance(ENGINES[name], Decider)
