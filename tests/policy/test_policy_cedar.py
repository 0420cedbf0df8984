"""The Cedar export decides like the engine, on every context the policy can tell apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustlayer.policy import PolicyEngine, shipped_policy_path
from trustlayer.policy.analysis import _class_sets, _contexts
from trustlayer.policy.cedar import cedar_request, to_cedar
from trustlayer.types import Route

cedarpy = pytest.importorskip("cedarpy")

ASSETS = Path(__file__).parent.parent / "assets" / "policy"
FILES = [*(shipped_policy_path(n) for n in ("default", "eu-gdpr", "hipaa", "pci-dss", "device-only-special")),
         ASSETS / "policy_verify_and_permits.yaml", ASSETS / "policy_all_conditions.yaml"]


def allowed(policies: object, route: Route, classes: frozenset[str], carried: frozenset[str],
            subject: str | None) -> bool:
    request, entities = cedar_request(route, classes, carried, subject=subject)
    result = cedarpy.is_authorized(request, policies, entities)
    return bool(result.allowed)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_cedar_export_agrees_with_the_engine(path: Path) -> None:
    engine = PolicyEngine.from_file(path)
    p = engine.policy
    policies = cedarpy.PolicySet.from_str(to_cedar(engine))
    checked = 0
    for applicable, sender, recipient, subject in _contexts(engine):
        route = Route.between(sender, recipient, subject_jurisdiction=subject)
        for present in _class_sets(engine):
            j = engine.judge(applicable, 0, present)
            raw = p.classes_of(present)
            left = frozenset(c for c in raw if not p.class_entities[p.class_bit[c]] <= set(j.ops))
            assert allowed(policies, route, raw, raw, subject) is (j.status == "allow"), (recipient, raw)
            if j.status != "allow":
                assert allowed(policies, route, left, raw, subject) is (j.status == "transform"), (recipient, raw)
            checked += 1
    assert checked > 20
