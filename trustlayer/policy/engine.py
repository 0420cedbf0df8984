"""The policy engine: findings + route + taint + candidates -> a ``Decision``.

    >>> from trustlayer.policy import PolicyEngine, shipped_policy_path
    >>> from trustlayer.types import Finding, Route
    >>> engine = PolicyEngine.from_file(shipped_policy_path("eu-gdpr"))
    >>> route = Route.between(engine.endpoints["phone"], engine.endpoints["gpt-us"])
    >>> email = Finding(entity_type="EMAIL_ADDRESS", start=0, end=5, score=1.0, detector="t")
    >>> engine.decide([email], route).outcome.value
    'transform'

Semantics, per destination: a rule fires when its conditions hold for the data
classes present (found in this message, or carried as taint) and for the route.
Forbid overrides permit. A firing forbid is *cured* when the transforms it demands
(``pseudonymize``/``mask``/``hash``/``drop`` of classes) remove every class that made
a forbid fire; a forbid that demands ``route_local`` is never cured by a transform
(its trigger is what the data means, not its identifiers), so the message is
rerouted to a device endpoint. When no forbid fires, a permit, or the default,
decides. The second decision (``applied`` given) counts data transformed by an
operator at least as strong as the one demanded as no longer present in raw form;
it answers ``allow`` or ``block``, never a new transform.

An engine never changes after it is built: a policy edit takes effect when a new
engine is built from the file (``reload()``) and swapped in, so no decision ever
sees half of a change.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trustlayer.errors import PolicyError
from trustlayer.policy.compiler import STRENGTH, CompiledPolicy, CompiledRule, compile_file
from trustlayer.policy.explain import Judgement, Plan, explain
from trustlayer.policy.schema import CODE
from trustlayer.types import Channel, Decision, Endpoint, Finding, Kind, Operator, Outcome, Route

__all__ = ["PolicyEngine"]

_CACHE_MAX = 8192
_LEVELS = (Operator.MASK, Operator.PSEUDONYMIZE, Operator.HASH, Operator.DROP)


class PolicyEngine:
    """Residency policy compiled into integer lookups; implements the ``Decider`` protocol."""

    keeps_deadline = True
    """``decide`` and ``entities_for`` never wait: an engine is immutable (``reload()`` builds a new one),
    its caches are plain dicts read and written under the GIL, and it does no I/O after construction."""

    def __init__(self, policy: CompiledPolicy, *, subject_jurisdiction: str | None = None) -> None:
        self.policy = policy
        subject = subject_jurisdiction or policy.file.subject_jurisdiction
        self.subject_jurisdiction = subject.strip().upper() if subject else None
        self._subject: dict[str | None, int] = {}
        self._local_mask = sum(r.bit for r in policy.rules if r.route_local)
        self._levels = {r.bit: self._rule_levels(r) for r in policy.rules}
        self._channel_mask = {c.value: self._mask(lambda r, c=c: r.channels is None or c.value in r.channels)
                              for c in Channel}
        self._to: dict[int, tuple[Endpoint, int]] = {}
        self._from: dict[int, tuple[Endpoint, int]] = {}
        self._channels: dict[tuple[Kind, Kind], str] = {}
        self._subject_mask(self.subject_jurisdiction)  # validate the configured subject now
        self._taint: dict[frozenset[str], int] = {}
        self._cmask: dict[int, int] = {}
        self._judged: dict[tuple[int, int, int, Any], Judgement] = {}
        self._plans: dict[tuple[Any, ...], tuple[Decision, tuple[Any, ...]]] = {}
        self._needed: dict[int, int] = {}
        self._entities: dict[tuple[Any, ...], tuple[frozenset[str], tuple[Endpoint, Endpoint]]] = {}
        self._prefix = secrets.token_hex(8) + "-"
        self._ids = itertools.count(1)

    def _rule_levels(self, rule: CompiledRule) -> tuple[int, int, int, int]:
        """The entity masks a rule's transforms demand, per operator level (mask .. drop)."""
        out = [0, 0, 0, 0]
        for cbit, op in rule.transforms.items():
            out[STRENGTH[op] - 1] |= self.policy.class_emask[cbit]
        return out[0], out[1], out[2], out[3]

    @classmethod
    def from_file(cls, path: str | Path, *, subject_jurisdiction: str | None = None) -> PolicyEngine:
        """Compile the policy file at ``path``; ``PolicyError`` names file, line and rule when it is invalid."""
        return cls(compile_file(path), subject_jurisdiction=subject_jurisdiction)

    def reload(self) -> PolicyEngine:
        """A new engine from the file as it is now (this engine is left unchanged)."""
        return PolicyEngine.from_file(self.path, subject_jurisdiction=self.subject_jurisdiction)

    @property
    def path(self) -> Path:
        """The policy file this engine was compiled from."""
        return self.policy.path

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the policy file's bytes, as compiled."""
        return self.policy.digest

    @property
    def name(self) -> str:
        """The policy's ``name``."""
        return self.policy.file.name

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        """Example endpoints the policy file declares (for its tests, ``explain`` and ``redact --to``)."""
        return self.policy.endpoints

    # ── route -> applicable rules ─────────────────────────────────────────────────────────

    def _mask(self, keep: Any) -> int:
        return sum(r.bit for r in self.policy.rules if keep(r))

    def _endpoint_mask(self, cache: dict[int, tuple[Endpoint, int]], endpoint: Endpoint, side: str) -> int:
        # Keyed by identity (hashing a pydantic model is slow); the entry keeps the endpoint alive.
        found = cache.get(id(endpoint))
        if found is None:
            mask = self._mask(lambda r: (getattr(r, side) is None) or getattr(r, side)(endpoint))
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            found = cache[id(endpoint)] = (endpoint, mask)
        return found[1]

    def side_mask(self, endpoint: Endpoint, side: str) -> int:
        """The rules whose ``to`` (``side="to"``) or ``from`` (``side="from_"``) condition admits ``endpoint``."""
        if side not in ("to", "from_"):
            raise ValueError(f"side must be 'to' or 'from_', got {side!r}")
        return self._endpoint_mask(self._to if side == "to" else self._from, endpoint, side)

    def _subject_mask(self, subject: str | None) -> int:
        found = self._subject.get(subject)
        if found is None:
            if subject is not None and not CODE.match(subject):
                normal = subject.strip().upper()
                if not CODE.match(normal):
                    # Fail closed: a subject we cannot read must not slip past a subject condition.
                    raise PolicyError(f"data subject jurisdiction {subject!r} is not an ISO 3166 code such as DE",
                                      field="subject_jurisdiction")
                return self._subject_mask(normal)
            def keep(r: CompiledRule) -> bool:
                if r.subject is None:
                    return True
                if subject is None:
                    # Unknown subject: assume the worst (forbids apply, permits do not).
                    return r.effect == "forbid"
                codes, negated = r.subject
                inside = subject in codes or subject.split("-", 1)[0] in codes
                return inside != negated
            found = self._mask(keep)
            if len(self._subject) >= _CACHE_MAX:
                self._subject.clear()
            self._subject[subject] = found
        return found

    def applicable(self, sender: Endpoint, recipient: Endpoint, channel: str, subject: str | None) -> int:
        """The mask of rules whose route conditions (to, from, channel, subject) hold."""
        return (self._endpoint_mask(self._to, recipient, "to") & self._endpoint_mask(self._from, sender, "from_")
                & self._channel_mask[channel] & self._subject_mask(subject))

    def _route_mask(self, route: Route) -> int:
        subject = route.subject_jurisdiction or self.subject_jurisdiction
        return self.applicable(route.sender, route.recipient, route.channel.value, subject)

    def _redirected_mask(self, route: Route, recipient: Endpoint) -> int:
        """The applicable rules of ``route.to(recipient)``, without building the Route."""
        kinds = (route.sender.kind, recipient.kind)
        channel = self._channels.get(kinds)
        if channel is None:
            # The channel follows from the two kinds alone (Route.between); ask it once per pair.
            channel = self._channels[kinds] = Route.between(route.sender, recipient).channel.value
        subject = route.subject_jurisdiction or self.subject_jurisdiction
        return self.applicable(route.sender, recipient, channel, subject)

    # ── classes ───────────────────────────────────────────────────────────────────────────

    def class_mask_of_entities(self, emask: int) -> int:
        """The classes made present by the entity types in an entity mask."""
        found = self._cmask.get(emask)
        if found is None:
            found, m = 0, emask
            while m:
                low = m & -m
                found |= self.policy.entity_classes.get(low, 0)
                m ^= low
            self._cmask[emask] = found
        return found

    def taint_mask(self, taint: frozenset[str]) -> int:
        """The class mask of a taint set; ``PolicyError`` for a class the policy does not declare."""
        found = self._taint.get(taint)
        if found is None:
            # Fail closed: a class we cannot evaluate must not be silently ignored.
            found = self.policy.class_mask(sorted(taint))
            if len(self._taint) >= _CACHE_MAX:
                self._taint.clear()
            self._taint[taint] = found
        return found

    # ── one destination ──────────────────────────────────────────────────────────────────

    def judge(self, applicable: int, emask: int, taint: int,
              applied: frozenset[tuple[str, Operator]] | None = None) -> Judgement:
        """Judge one destination (its applicable rule mask) for raw entity and taint masks."""
        key = (applicable, emask, taint, applied)
        found = self._judged.get(key)
        if found is None:
            found = self._judge(applicable, emask, taint, applied)
            if len(self._judged) >= _CACHE_MAX:
                self._judged.clear()
            self._judged[key] = found
        return found

    def _judge(self, applicable: int, emask: int, taint: int,
               applied: frozenset[tuple[str, Operator]] | None) -> Judgement:
        p = self.policy
        present = self.class_mask_of_entities(emask) | taint
        fired = applicable & p.fires(present)
        forbids = fired & p.forbid_mask
        if not forbids:
            permits = fired & p.permit_mask
            status = "allow" if (permits or p.default_permit) else "forbidden"
            return Judgement(status, 0, 0, permits, {}, False, present)
        sticky = forbids & self._local_mask
        # Entity masks demanded per operator level (mask, pseudonymize, hash, drop); the strongest wins.
        lv0 = lv1 = lv2 = lv3 = 0
        m = forbids & ~self._local_mask
        levels = self._levels
        while m:
            low = m & -m
            m ^= low
            a, b, c, d = levels[low]
            lv0 |= a
            lv1 |= b
            lv2 |= c
            lv3 |= d
        lv2 &= ~lv3
        lv1 &= ~(lv3 | lv2)
        lv0 &= ~(lv3 | lv2 | lv1)
        done = 0
        for name, op in applied or ():
            eb = p.entity_bit.get(name, 0)
            required = 4 if eb & lv3 else 3 if eb & lv2 else 2 if eb & lv1 else 1
            if eb and STRENGTH[op] >= required:
                done |= eb
        need = (lv0 & ~done, lv1 & ~done, lv2 & ~done, lv3 & ~done)
        gone = done | need[0] | need[1] | need[2] | need[3]
        ops: dict[str, Operator] = {}
        for level, e in enumerate(need):
            while e:
                eb = e & -e
                e ^= eb
                ops[p.entity_names[eb.bit_length() - 1]] = _LEVELS[level]
        after = self._without(emask, taint, gone)
        fired2 = applicable & p.fires(after)
        blocking = (fired2 & p.forbid_mask & ~self._local_mask) | sticky
        permits = fired2 & p.permit_mask
        pending = forbids
        if applied is not None:
            pending = (applicable & p.fires(self._without(emask, taint, done)) & p.forbid_mask) | sticky
        if not blocking and (permits or p.default_permit):
            return Judgement("transform" if ops else "allow", forbids, 0, permits, ops, False, present, pending)
        return Judgement("forbidden", forbids, blocking, permits, ops, bool(blocking & self._local_mask), present,
                         pending)

    def _without(self, emask: int, taint: int, gone: int) -> int:
        """The classes still present in raw form once the entity types in ``gone`` are transformed."""
        left_taint, t = 0, taint
        while t:
            low = t & -t
            t ^= low
            if self.policy.class_emask[low] & ~gone:
                left_taint |= low
        return self.class_mask_of_entities(emask & ~gone) | left_taint

    # ── the Decider protocol ─────────────────────────────────────────────────────────────

    def entities_for(self, route: Route) -> frozenset[str]:
        """Entity types of every class a rule applicable to this route fires on or transforms.

        A hop to an agent asks for every declared class: the agent may pass the message on,
        and the classes in the signed record become its taint, so they must be complete.
        """
        key = (id(route.sender), id(route.recipient), route.channel, route.subject_jurisdiction)
        found = self._entities.get(key)
        if found is None:
            p = self.policy
            need = self._detected(route, self._route_mask(route))
            types = frozenset(n for n in p.entity_names if p.entity_bit[n] & need)
            if len(self._entities) >= _CACHE_MAX:
                self._entities.clear()
            # The entry keeps both endpoints alive, so their ids in the key stay theirs.
            found = self._entities[key] = (types, (route.sender, route.recipient))
        return found[0]

    def _detected(self, route: Route, applicable: int) -> int:
        """The entity mask ``entities_for(route)`` asks detection for."""
        if route.recipient.kind is Kind.AGENT or route.channel is Channel.AGENT_AGENT:
            return (1 << len(self.policy.entity_names)) - 1
        return self.needed_entities(applicable)

    def needed_entities(self, applicable: int) -> int:
        """The entity mask of every class the rules in ``applicable`` fire on or transform."""
        found = self._needed.get(applicable)
        if found is None:
            p = self.policy
            classes = 0
            for r in p.rules:
                if r.bit & applicable:
                    classes |= r.class_mask
                    for cbit in r.transforms:
                        classes |= cbit
            found = 0
            for cbit, emask in p.class_emask.items():
                if cbit & classes:
                    found |= emask
            if len(self._needed) >= _CACHE_MAX:
                self._needed.clear()
            self._needed[applicable] = found
        return found

    def decide(self, findings: Sequence[Finding], route: Route, *, taint: frozenset[str] = frozenset(),
               applied: Mapping[str, Operator] | None = None, candidates: Sequence[Endpoint] = ()) -> Decision:
        """Decide where the message may go and in what form; see the module docstring for the semantics."""
        bits = self.policy.entity_bit
        emask = 0
        for f in findings:
            emask |= bits.get(f.entity_type, 0)
        tmask = self.taint_mask(taint) if taint else 0
        applied_key = None if applied is None else frozenset((k, Operator(v)) for k, v in applied.items())
        cands = tuple(candidates)
        # Endpoints are frozen and usually long-lived (from config), so key on their identity: hashing
        # a pydantic model costs microseconds. The cached entry keeps the objects alive, so an id in
        # a key can never be reused by another object while the entry exists.
        sender, recipient = route.sender, route.recipient
        key = (id(sender), id(recipient), route.channel, route.subject_jurisdiction,
               tuple(map(id, cands)), emask, tmask, applied_key)
        entry = self._plans.get(key)
        if entry is None:
            plan = self._plan(route, cands, emask, tmask, applied_key)
            if len(self._plans) >= _CACHE_MAX:
                self._plans.clear()
            template = Decision(id="template", outcome=plan.outcome, endpoint=plan.endpoint, allowed=plan.allowed,
                                rule_ids=plan.rule_ids, reasons=plan.reasons, citations=plan.citations,
                                classes=plan.classes, operators=dict(plan.operators), verify=plan.verify,
                                policy_digest=self.digest)
            entry = (template, (sender, recipient, cands))
            self._plans[key] = entry
        template = entry[0]
        # A validated template, copied with a fresh id and its own operators dict (callers may mutate it).
        return template.model_copy(update={"id": f"{self._prefix}{next(self._ids):x}",
                                           "operators": dict(template.operators)})

    # ── building a plan (cache miss) ─────────────────────────────────────────────────────

    def _judge_to(self, route: Route, recipient: Endpoint, emask: int, tmask: int,
                  applied: frozenset[tuple[str, Operator]] | None) -> Judgement:
        return self.judge(self._redirected_mask(route, recipient), emask, tmask, applied)

    def _plan(self, route: Route, candidates: tuple[Endpoint, ...], emask: int, tmask: int,
              applied: frozenset[tuple[str, Operator]] | None) -> Plan:
        mask = self._route_mask(route)
        j = self.judge(mask, emask, tmask, applied)
        seen = self._detected(route, mask)
        allowed = tuple(c.id for c in candidates if self._may_take(route, c, seen, emask, tmask, applied))
        if not candidates and j.status != "forbidden":
            allowed = (route.recipient.id,)
        classes = self.policy.classes_of(j.classes)
        to = route.recipient
        if applied is not None:
            if j.status == "allow":
                return explain(self.policy, Outcome.ALLOW, to, j, allowed, classes, cured=True)
            return explain(self.policy, Outcome.BLOCK, to, j, allowed, classes, insufficient=True)
        if j.status == "allow":
            return explain(self.policy, Outcome.ALLOW, to, j, allowed, classes)
        if j.status == "transform":
            return explain(self.policy, Outcome.TRANSFORM, to, j, allowed, classes)
        target = self._local_target(route, candidates, seen, emask, tmask) if j.route_local else None
        if target is not None:
            tj = self._judge_to(route, target, emask, tmask, None)
            if target.id not in allowed:
                allowed = (*allowed, target.id)
            return explain(self.policy, Outcome.REROUTE, to, j, allowed, classes, target=target, target_j=tj)
        return explain(self.policy, Outcome.BLOCK, to, j, allowed, classes, no_target=j.route_local)

    def _may_take(self, route: Route, endpoint: Endpoint, seen: int, emask: int, tmask: int,
                  applied: frozenset[tuple[str, Operator]] | None) -> bool:
        """True when ``endpoint`` may take the message, judged on findings complete enough for it.

        The gate asks detection only for ``entities_for(route)``; an endpoint whose rules need
        other entity types cannot be judged on those findings, so it is not offered (fail closed).
        """
        mask = self._redirected_mask(route, endpoint)
        if self.needed_entities(mask) & ~seen:
            return False
        return self.judge(mask, emask, tmask, applied).status != "forbidden"

    def _local_target(self, route: Route, candidates: tuple[Endpoint, ...], seen: int, emask: int,
                      tmask: int) -> Endpoint | None:
        """The first device endpoint among the candidates, then the sender, that may take the message."""
        for e in (*candidates, route.sender):
            if e.kind is Kind.DEVICE and e.id != route.recipient.id and self._may_take(route, e, seen, emask,
                                                                                        tmask, None):
                return e
        return None
