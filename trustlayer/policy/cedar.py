"""Export a policy as Cedar policies, for teams that already evaluate Cedar.

>>> from trustlayer.policy import PolicyEngine, shipped_policy_path
>>> from trustlayer.policy.cedar import to_cedar
>>> text = to_cedar(PolicyEngine.from_file(shipped_policy_path("eu-gdpr")))
>>> '@id("health-stays-on-device")' in text
True

The model: action ``Action::"send"``; the resource is the destination
``Endpoint`` (attributes ``kind``, ``jurisdiction``, ``country``, ``region``, ``box``,
``attestations``); the context holds ``classes`` (classes present in raw form after
the transform), ``carried`` (every class the message carries, transformed or not),
``channel``, ``sender`` (a record of the same attributes) and, when known,
``subject``. Cedar denies by default and a forbid overrides a permit, as here. A
forbid with transform obligations names them in ``@obligation`` and stops firing once
the classes are transformed (they leave ``context.classes``); a ``route_local`` forbid
tests ``context.carried``, so no transform cures it.
"""

from __future__ import annotations

import json
from typing import Any

from trustlayer.policy.compiler import CompiledRule
from trustlayer.policy.engine import PolicyEngine
from trustlayer.policy.schema import CODE, AttrMatch, Destination
from trustlayer.types import Endpoint, Route

__all__ = ["cedar_request", "to_cedar"]


def _str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Cedar string literal


def _set(values: Any) -> str:
    return "[" + ", ".join(_str(v) for v in sorted(values)) + "]"


def _codes(engine: PolicyEngine, match: AttrMatch) -> set[str]:
    out: set[str] = set()
    for v in match.values:
        out |= {v} if CODE.match(v) else set(engine.policy.groups[v])
    return out


def _dest(engine: PolicyEngine, d: Destination, who: str) -> list[str]:
    out: list[str] = []
    if d.kind is not None:
        out.append(f"{_set(k.value for k in d.kind)}.contains({who}.kind)")
    if d.jurisdiction is not None:
        s = _set(_codes(engine, d.jurisdiction))
        test = f"({s}.contains({who}.jurisdiction) || {s}.contains({who}.country))"
        out.append(f"!{test}" if d.jurisdiction.negated else test)
    for attr, match in (("region", d.region), ("id", d.id)):
        if match is not None:
            test = f"{_set(match.values)}.contains({who}.{attr})"
            out.append(f"!{test}" if match.negated else test)
    if d.box is not None:
        out.append(f"{who}.box == {_str(d.box)}")
    if d.has:
        out.append(f"{who}.attestations.containsAll({_set(d.has)})")
    if d.lacks:
        out.append(f"!{who}.attestations.containsAll({_set(d.lacks)})")
    return out


def _rule(engine: PolicyEngine, r: CompiledRule) -> str:
    src = r.source
    when: list[str] = []
    if src.when.classes:
        field = "carried" if r.route_local else "classes"
        op = "containsAll" if src.when.match == "all" else "containsAny"
        when.append(f"context.{field}.{op}({_set(src.when.classes)})")
    if src.when.to is not None:
        when += _dest(engine, src.when.to, "resource")
    if src.when.from_ is not None:
        when += _dest(engine, src.when.from_, "context.sender")
    if r.channels is not None:
        when.append(f"{_set(r.channels)}.contains(context.channel)")
    if r.subject is not None:
        s = f"{_set(r.subject[0])}.contains(context.subject)"
        s = f"!{s}" if r.subject[1] else s
        # Unknown subject: a forbid assumes the worst, a permit does not apply.
        when.append(f"(!(context has subject) || {s})" if r.effect == "forbid" else f"(context has subject && {s})")
    notes = [f"@id({_str(r.id)})", f"@cite({_str(r.cite)})"]
    transforms = src.obligations.transforms()
    if transforms:
        notes.append(f"@obligation({_str(', '.join(f'{op.value}:{c}' for c, op in sorted(transforms.items())))})")
    if r.route_local:
        notes.append('@obligation("route_local")')
    body = f"{r.effect} (principal, action == Action::\"send\", resource)"
    if when:
        body += "\nwhen {\n  " + " &&\n  ".join(when) + "\n}"
    return "\n".join(notes) + "\n" + body + ";"


def to_cedar(engine: PolicyEngine) -> str:
    """The policy as Cedar text: one Cedar policy per rule, plus the default when it is permit."""
    parts = [f"// trustlayer policy {engine.name!r}, sha256 {engine.digest}"]
    parts += [_rule(engine, r) for r in engine.policy.rules]
    if engine.policy.default_permit:
        parts.append('@id("default")\npermit (principal, action == Action::"send", resource);')
    return "\n\n".join(parts) + "\n"


def _attrs(e: Endpoint) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind.value, "jurisdiction": e.jurisdiction,
            "country": e.jurisdiction.split("-", 1)[0], "region": e.region, "box": e.box.value,
            "attestations": sorted(e.attestations)}


def cedar_request(route: Route, classes: frozenset[str], carried: frozenset[str], *,
                  subject: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A Cedar request and entity list for sending a message with these classes along ``route``."""
    context: dict[str, Any] = {"classes": sorted(classes), "carried": sorted(carried | classes),
                               "channel": route.channel.value, "sender": _attrs(route.sender)}
    subject = subject or route.subject_jurisdiction
    if subject is not None:
        context["subject"] = subject
    request = {"principal": 'Message::"m"', "action": 'Action::"send"',
               "resource": f'Endpoint::{_str(route.recipient.id)}', "context": context}
    entities = [{"uid": {"type": "Endpoint", "id": route.recipient.id}, "attrs": _attrs(route.recipient),
                 "parents": []},
                {"uid": {"type": "Message", "id": "m"}, "attrs": {}, "parents": []}]
    return request, entities
