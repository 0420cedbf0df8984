"""Run a policy file's embedded test cases (``policy test``, like ``opa test``).

>>> from trustlayer.policy import PolicyEngine, shipped_policy_path
>>> from trustlayer.policy.cases import run_cases
>>> results = run_cases(PolicyEngine.from_file(shipped_policy_path("eu-gdpr")))
>>> all(r.passed for r in results)
True

A case gives entity types as ``findings`` (no detector needed) or ``text``, which is
run through a ``Detector`` the caller passes (the CLI uses trustlayer's redaction
engine). Only the fields named under ``expect`` are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trustlayer.errors import PolicyError
from trustlayer.policy.engine import PolicyEngine
from trustlayer.policy.schema import PolicyCase
from trustlayer.stages import Detector
from trustlayer.types import Decision, Endpoint, Finding, Kind, Message, Outcome, Route

__all__ = ["CaseResult", "decide_case", "resolve_endpoint", "run_cases"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one case: ``problems`` is empty when it passed."""

    name: str
    line: int | None
    decision: Decision | None
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when every expectation held."""
        return not self.problems


def resolve_endpoint(engine: PolicyEngine, endpoint_id: str, extra: Mapping[str, Endpoint] | None = None) -> Endpoint:
    """An endpoint the policy file (or ``extra``, e.g. a config's endpoints) declares."""
    known = {**engine.endpoints, **(extra or {})}
    found = known.get(endpoint_id)
    if found is None:
        raise PolicyError(f"policy {engine.name!r}: endpoint {endpoint_id!r} is not declared "
                          f"(declared: {', '.join(sorted(known)) or 'none'})", path=str(engine.path))
    return found


def _sender(engine: PolicyEngine, case: PolicyCase) -> Endpoint:
    if case.from_ is not None:
        return resolve_endpoint(engine, case.from_)
    for e in engine.endpoints.values():
        if e.kind is Kind.DEVICE:
            return e
    return Endpoint(id="device", kind=Kind.DEVICE, jurisdiction=engine.subject_jurisdiction or "EU")


def decide_case(engine: PolicyEngine, case: PolicyCase, *, detector: Detector | None = None,
                ) -> tuple[Decision, Decision | None]:
    """The decision for a case, and the second decision after its transform (when there is one)."""
    to = resolve_endpoint(engine, case.to)
    route = Route.between(_sender(engine, case), to, subject_jurisdiction=case.subject)
    if case.findings is not None:
        findings: tuple[Finding, ...] = tuple(
            Finding(entity_type=t, start=0, end=1, score=1.0, detector="case") for t in case.findings)
    else:
        if detector is None:
            raise PolicyError(f"test {case.name!r} gives 'text', which needs a detector "
                              "(run it through 'trustlayer policy test', or give 'findings')")
        message = Message.from_text(case.text or "", conversation_id="policy-test")
        # Detect exactly what the gate would ask for on this route.
        findings = tuple(detector.detect(message, entities=engine.entities_for(route)))
    candidates = tuple(resolve_endpoint(engine, c) for c in case.candidates)
    taint = frozenset(case.taint)
    first = engine.decide(findings, route, taint=taint, candidates=candidates)
    second = None
    if first.operators and first.outcome is Outcome.TRANSFORM:
        second = engine.decide(findings, route, taint=taint | first.classes, applied=first.operators,
                               candidates=candidates)
    return first, second


def _check(case: PolicyCase, first: Decision, second: Decision | None) -> list[str]:
    x = case.expect
    problems: list[str] = []
    if first.outcome is not x.outcome:
        problems.append(f"outcome: expected {x.outcome.value}, got {first.outcome.value}")
    if x.endpoint is not None and first.endpoint != x.endpoint:
        problems.append(f"endpoint: expected {x.endpoint!r}, got {first.endpoint!r}")
    if x.rules is not None:
        missing = [r for r in x.rules if r not in first.rule_ids]
        if missing:
            problems.append(f"rules: expected {', '.join(missing)} among the deciding rules, "
                            f"got {', '.join(first.rule_ids) or 'none'}")
    if x.operators is not None:
        for entity, op in x.operators.items():
            if first.operators.get(entity) != op:
                got = first.operators.get(entity)
                problems.append(f"operators: expected {entity} -> {op.value}, got {got.value if got else 'none'}")
        if not x.operators and first.operators:
            problems.append(f"operators: expected none, got {len(first.operators)}")
    if x.allowed is not None and set(first.allowed) != set(x.allowed):
        problems.append(f"allowed: expected {', '.join(sorted(x.allowed))}, got {', '.join(sorted(first.allowed))}")
    if x.classes is not None and first.classes != frozenset(x.classes):
        problems.append(f"classes: expected {', '.join(sorted(x.classes))}, got {', '.join(sorted(first.classes))}")
    if x.after_transform is not None:
        got2 = second.outcome.value if second is not None else "no second decision (no transform)"
        if second is None or second.outcome is not x.after_transform:
            problems.append(f"after_transform: expected {x.after_transform.value}, got {got2}")
    return problems


def run_cases(engine: PolicyEngine, *, detector: Detector | None = None) -> list[CaseResult]:
    """Run every embedded case of the engine's policy file; errors in a case become its problems."""
    results: list[CaseResult] = []
    for i, case in enumerate(engine.policy.file.tests):
        line = engine.policy.lines.get(("tests", i))
        try:
            first, second = decide_case(engine, case, detector=detector)
        except PolicyError as exc:
            results.append(CaseResult(case.name, line, None, (str(exc),)))
            continue
        results.append(CaseResult(case.name, line, first, tuple(_check(case, first, second))))
    return results
