"""Static analysis of a compiled policy: rules that can never decide, and every path a class can take.

>>> from trustlayer.policy import PolicyEngine, shipped_policy_path
>>> from trustlayer.policy.analysis import prove
>>> engine = PolicyEngine.from_file(shipped_policy_path("default"))
>>> any(p.form == "raw" and p.cls == "secrets" and p.kind == "cloud" for p in prove(engine))
False

Both enumerate the finite space the policy can tell apart: endpoint *profiles*
(every kind x one jurisdiction per group-membership pattern x mentioned regions x
box x every subset of the mentioned attestations), data subjects (one per pattern,
plus unknown) and sets of data classes (all subsets up to 10 classes, else up to 3
at a time). Rule firing is monotone in the classes present, so a rule that never
decides on its smallest firing sets never decides at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from trustlayer.policy.compiler import STRENGTH
from trustlayer.policy.engine import PolicyEngine
from trustlayer.policy.explain import Judgement
from trustlayer.policy.schema import CODE, Destination
from trustlayer.types import Box, Endpoint, Kind, Operator, Route

__all__ = ["Path", "Warning_", "prove", "profiles", "shadowed"]

_OTHER = "ZZ"  # ISO 3166 user-assigned code: "a jurisdiction no rule names"
_MAX_FULL = 10
_FORM = {Operator.PSEUDONYMIZE: "pseudonymized", Operator.MASK: "masked", Operator.HASH: "hashed",
         Operator.DROP: "dropped"}


@dataclass(frozen=True, slots=True)
class Warning_:
    """A rule that can never decide a message, and why."""

    rule: str
    line: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Path:
    """One way class ``cls`` reaches an endpoint: ``form`` is raw, pseudonymized, masked, hashed or dropped."""

    cls: str
    endpoint: str
    kind: str
    form: str
    with_classes: tuple[str, ...]
    subject: str | None
    rule_ids: tuple[str, ...]


def _destinations(engine: PolicyEngine) -> Iterator[Destination]:
    for r in engine.policy.file.rules:
        for d in (r.when.to, r.when.from_):
            if d is not None:
                yield d


def _jurisdiction_reps(engine: PolicyEngine) -> list[str]:
    p = engine.policy
    sets: list[frozenset[str]] = []
    for d in _destinations(engine):
        if d.jurisdiction is not None:
            sets.append(frozenset(c for v in d.jurisdiction.values
                                  for c in (p.groups.get(v, frozenset({v})) if not CODE.match(v) else {v})))
    codes = {c for s in sets for c in s} | {e.jurisdiction for e in p.endpoints.values()} | {_OTHER}
    reps: dict[tuple[bool, ...], str] = {}
    for c in sorted(codes):
        reps.setdefault(tuple(c in s or c.split("-", 1)[0] in s for s in sets), c)
    return sorted(reps.values())


def _subject_reps(engine: PolicyEngine) -> list[str | None]:
    sets = [r.subject[0] for r in engine.policy.rules if r.subject is not None]
    if not sets:
        return [engine.subject_jurisdiction]
    codes = {c for s in sets for c in s} | {_OTHER}
    if engine.subject_jurisdiction:
        codes.add(engine.subject_jurisdiction)
    reps: dict[tuple[bool, ...], str] = {}
    for c in sorted(codes):
        reps.setdefault(tuple(c in s for s in sets), c)
    return [*sorted(reps.values()), None]


def profiles(engine: PolicyEngine) -> list[Endpoint]:
    """Endpoint profiles covering every combination of attributes the policy's rules can distinguish."""
    dests = list(_destinations(engine))
    atts = sorted({a for d in dests for a in (*d.has, *d.lacks)})
    regions = sorted({v for d in dests if d.region is not None for v in d.region.values}) + [""]
    ids = sorted({v for d in dests if d.id is not None for v in d.id.values}) + ["profile"]
    out: list[Endpoint] = []
    n = 0
    for kind, code, region, box, ident in itertools.product(Kind, _jurisdiction_reps(engine), regions, Box, ids):
        for k in range(len(atts) + 1):
            for chosen in itertools.combinations(atts, k):
                n += 1
                eid = ident if ident != "profile" else f"{kind.value}-{code}-{n}"
                out.append(Endpoint(id=eid, kind=kind, jurisdiction=code, region=region, box=box,
                                    attestations=frozenset(chosen)))
    return out


def _distinct(engine: PolicyEngine, endpoints: list[Endpoint], side: str) -> list[Endpoint]:
    """One endpoint per (rules its ``side`` condition admits, kind): the rest decide alike.

    The kind stays in the key because the channel of a route follows from the two kinds.
    """
    out: dict[tuple[int, Kind, str], Endpoint] = {}
    for e in endpoints:
        label = e.id if e.id in engine.endpoints else ""
        out.setdefault((engine.side_mask(e, side), e.kind, label), e)
    return list(out.values())


def _senders(engine: PolicyEngine, everything: list[Endpoint]) -> list[Endpoint]:
    if any(r.from_ is not None for r in engine.policy.rules):
        return _distinct(engine, everything, "from_")
    device = next((e for e in engine.endpoints.values() if e.kind is Kind.DEVICE), None)
    return [device or Endpoint(id="device", kind=Kind.DEVICE, jurisdiction=engine.subject_jurisdiction or "EU")]


def _contexts(engine: PolicyEngine) -> list[tuple[int, Endpoint, Endpoint, str | None]]:
    """(applicable-rule mask, example sender, recipient, subject), one per distinct mask and recipient label.

    A declared endpoint is labelled by its id, a profile by ``any <kind>``.
    """
    everything = profiles(engine)
    recipients = _distinct(engine, [*engine.endpoints.values(), *everything], "to")
    seen: dict[tuple[int, str], tuple[int, Endpoint, Endpoint, str | None]] = {}
    for sender in _senders(engine, everything):
        for recipient in recipients:
            label = recipient.id if recipient.id in engine.endpoints else f"any {recipient.kind.value}"
            channel = Route.between(sender, recipient).channel.value
            for subject in _subject_reps(engine):
                mask = engine.applicable(sender, recipient, channel, subject)
                seen.setdefault((mask, label), (mask, sender, recipient, subject))
    return list(seen.values())


def _minimal_sets(engine: PolicyEngine, bit: int) -> list[int]:
    r = engine.policy.rules[bit.bit_length() - 1]
    if r.class_mask == 0:
        return [0]
    if r.match_all:
        return [r.class_mask]
    return [1 << i for i in range(r.class_mask.bit_length()) if r.class_mask >> i & 1]


def shadowed(engine: PolicyEngine) -> list[Warning_]:
    """Rules that can never decide: they apply to no endpoint, or a forbid that no transform cures always fires too."""
    p = engine.policy
    contexts = _contexts(engine)
    warnings: list[Warning_] = []
    for r in p.rules:
        uncurable = r.effect == "forbid" and (r.route_local or not r.transforms)
        live, blockers, applies = False, -1, False
        for applicable, _, _, _ in contexts:
            if not applicable & r.bit:
                continue
            applies = True
            if uncurable:
                live = True
                break
            for s0 in _minimal_sets(engine, r.bit):
                j = engine.judge(applicable, 0, s0)
                if j.status != "forbidden":
                    live = True
                    break
                blockers &= j.blocking
            if live:
                break
        if not applies:
            warnings.append(Warning_(r.id, r.line, f"rule {r.id!r} can never fire: its conditions on the route "
                                     "match no endpoint, sender and data subject"))
        elif not live and blockers != -1 and blockers & r.bit:
            warnings.append(Warning_(r.id, r.line, f"rule {r.id!r} always blocks: its transform does not remove "
                                     "every class that makes it fire (add them to the obligation, or drop it)"))
        elif not live:
            names = [x.id for x in p.rules if x.bit & blockers and blockers != -1] or ["the default (forbid)"]
            warnings.append(Warning_(r.id, r.line, f"rule {r.id!r} can never decide: whenever it fires, "
                                     f"{', '.join(repr(n) for n in names)} forbids first and no transform cures it"))
    return warnings


def _class_sets(engine: PolicyEngine) -> Iterator[int]:
    n = len(engine.policy.class_names)
    limit = n if n <= _MAX_FULL else 3
    for k in range(1, limit + 1):
        for combo in itertools.combinations(range(n), k):
            yield sum(1 << i for i in combo)


def _form(engine: PolicyEngine, cbit: int, j: Judgement) -> str | None:
    if j.status == "forbidden":
        return None
    p = engine.policy
    ops = [j.ops.get(e) for e in p.class_entities[cbit]]
    done = [o for o in ops if o is not None]
    if len(done) < len(ops):
        return "raw"  # some entity type of the class leaves untransformed
    return _FORM[min(done, key=STRENGTH.__getitem__)]


def prove(engine: PolicyEngine) -> list[Path]:
    """Every (class, endpoint, form) by which a data class can reach an endpoint, one example each.

    Endpoints are the policy's declared endpoints (by id) and every abstract profile
    (by kind); the class may arrive together with any other classes, as findings or taint.
    """
    p = engine.policy
    paths: dict[tuple[str, str, str], Path] = {}
    for applicable, _, recipient, subject in _contexts(engine):
        label = recipient.id if recipient.id in engine.endpoints else f"any {recipient.kind.value}"
        for present in _class_sets(engine):
            j = engine.judge(applicable, 0, present)
            if j.status == "forbidden":
                continue
            rules = tuple(r.id for r in p.rules if r.bit & (j.fired | j.permits)) or ("default",)
            for name in p.classes_of(present):
                form = _form(engine, p.class_bit[name], j)
                if form is None:
                    continue
                key = (name, label, form)
                if key not in paths:
                    paths[key] = Path(name, label, recipient.kind.value, form,
                                      tuple(sorted(p.classes_of(present))), subject, rules)
    return sorted(paths.values(), key=lambda x: (x.cls, x.kind, x.endpoint, x.form))
