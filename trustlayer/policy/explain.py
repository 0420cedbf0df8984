"""Turn a judgement into the explained parts of a decision: rule ids, one reason per rule, citations.

>>> from trustlayer.policy.explain import Judgement
>>> Judgement("allow", 0, 0, 0, {}, False, 0).status
'allow'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trustlayer.policy.compiler import CompiledPolicy, CompiledRule
from trustlayer.policy.reasons import sentence
from trustlayer.types import Endpoint, Operator, Outcome, VerifyRequirement

__all__ = ["Judgement", "Plan", "explain"]


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict for one destination: ``allow``, ``transform`` (with ``ops``) or ``forbidden``.

    ``fired`` are the forbids that fired on the raw data, ``pending`` those the applied
    transform (if any) leaves unsatisfied, ``blocking`` those still firing after every
    transform, ``permits`` the permits firing after it; ``ops`` maps entity types to
    the operator still required.
    """

    status: str
    fired: int
    blocking: int
    permits: int
    ops: Mapping[str, Operator]
    route_local: bool
    classes: int
    pending: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything of a decision except its id and policy digest."""

    outcome: Outcome
    endpoint: str
    allowed: tuple[str, ...]
    rule_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    citations: tuple[str, ...]
    classes: frozenset[str]
    operators: Mapping[str, Operator]
    verify: VerifyRequirement | None


def explain(p: CompiledPolicy, outcome: Outcome, to: Endpoint, j: Judgement, allowed: tuple[str, ...],
            classes: frozenset[str], *, cured: bool = False, insufficient: bool = False,
            target: Endpoint | None = None, target_j: Judgement | None = None,
            no_target: bool = False) -> Plan:
    """The plan for ``outcome`` at ``to``: the deciding rules, a reason each, citations, operators, verify.

    ``cured`` marks a second decision whose transform satisfied the fired forbids,
    ``insufficient`` one whose transform did not; ``target`` is a reroute's destination.
    """
    rules: list[tuple[CompiledRule, str]] = []
    ops: Mapping[str, Operator] = {}
    if outcome is Outcome.ALLOW:
        if cured:
            rules += [(r, "cured") for r in p.rules if r.bit & j.fired]
        rules += [(r, "permit") for r in p.rules if r.bit & j.permits]
    elif outcome is Outcome.TRANSFORM:
        rules += [(r, "transform") for r in p.rules if r.bit & j.fired]
        rules += [(r, "permit") for r in p.rules if r.bit & j.permits]
        ops = j.ops
    elif outcome is Outcome.REROUTE:
        rules += [(r, "reroute") for r in p.rules if r.bit & j.blocking]
        ops = target_j.ops if target_j is not None else {}
    else:
        kind = "insufficient" if insufficient else ("no_target" if no_target else "block")
        rules += [(r, kind) for r in p.rules if r.bit & (j.pending if insufficient else j.blocking)]
    ids = tuple(r.id for r, _ in rules)
    reasons = [sentence(r, how, p.classes_of(r.class_mask & j.classes) or p.classes_of(j.classes), to,
                        ops=j.ops, target=target) for r, how in rules]
    cites = tuple(dict.fromkeys(r.cite for r, _ in rules))
    if not rules:
        ids = ("default",)
        reasons = [sentence(None, "default_permit" if outcome is Outcome.ALLOW else "default_forbid",
                            classes, to)]
    verify = None
    if outcome is not Outcome.BLOCK:
        for r, _ in rules:
            if r.verify is not None and (verify is None or (r.verify.quorum, r.verify.of) >
                                         (verify.quorum, verify.of)):
                verify = r.verify
    endpoint = target.id if target is not None else to.id
    return Plan(outcome, endpoint, allowed, ids, tuple(reasons), cites, classes, ops, verify)
