"""One sentence per deciding rule, naming classes, endpoints and citations, never content.

>>> from trustlayer.policy.reasons import sentence
>>> from trustlayer.types import Endpoint
>>> sentence(None, "default_permit", frozenset(), Endpoint(id="gpt", kind="cloud", jurisdiction="US"))
"no rule forbids this message at 'gpt' (cloud, US); the policy's default is permit."
"""

from __future__ import annotations

from collections.abc import Mapping

from trustlayer.policy.compiler import CompiledRule
from trustlayer.types import Endpoint, Operator

__all__ = ["sentence"]

_VERB = {Operator.PSEUDONYMIZE: "pseudonymized", Operator.MASK: "masked", Operator.HASH: "hashed",
         Operator.DROP: "dropped"}


def _where(e: Endpoint) -> str:
    return f"{e.id!r} ({e.kind.value}, {e.jurisdiction})"


def _what(classes: frozenset[str]) -> str:
    return ", ".join(sorted(classes)) + " data" if classes else "this message"


def _ops(ops: Mapping[str, Operator]) -> str:
    verbs = sorted({_VERB[o] for o in ops.values()})
    return " or ".join(verbs) or "transformed"


def sentence(rule: CompiledRule | None, how: str, classes: frozenset[str], to: Endpoint, *,
             ops: Mapping[str, Operator] | None = None, target: Endpoint | None = None) -> str:
    """The reason a rule (or the default, ``rule=None``) gave for a decision about ``to``.

    ``how`` is one of ``permit``, ``transform``, ``cured``, ``reroute``, ``block``,
    ``no_target``, ``insufficient``, ``default_permit``, ``default_forbid``.
    """
    what, where = _what(classes), _where(to)
    if rule is None:
        if how == "default_permit":
            return f"no rule forbids {what} at {where}; the policy's default is permit."
        return f"no rule permits {what} at {where}; the policy's default is forbid."
    why = f"{rule.reason.rstrip('.')}; {rule.cite}" if rule.reason else rule.cite
    rid = f"rule {rule.id!r}"
    if how == "permit":
        return f"{rid} permits {what} at {where} ({why})."
    if how == "transform":
        return f"{rid}: {what} may reach {where} only {_ops(ops or {})} ({why})."
    if how == "cured":
        return f"{rid} is satisfied: {what} was transformed before reaching {where} ({why})."
    if how == "reroute":
        dest = _where(target) if target is not None else "the device"
        return f"{rid}: {what} may not reach {where} and is rerouted to {dest} ({why})."
    if how == "no_target":
        return (f"{rid}: {what} may not reach {where}, and no device endpoint is available to reroute to "
                f"({why}).")
    if how == "insufficient":
        return f"{rid}: the transform applied does not satisfy this rule for {what} at {where} ({why})."
    return f"{rid}: {what} may not reach {where} ({why})."
