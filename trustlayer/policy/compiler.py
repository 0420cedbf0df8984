"""Load a policy file, check its cross-references, and compile it into bitmask lookups.

    >>> from trustlayer.policy.compiler import compile_file
    >>> policy = compile_file("policies/eu-gdpr.yaml")        # doctest: +SKIP
    >>> policy.class_bit["eu_personal"]                       # doctest: +SKIP
    1

Every error names the file, the line and the rule (or field). Rules are numbered by
position; a rule is the bit ``1 << index`` in every rule mask, a data class the bit
``1 << index`` in every class mask, an entity type the bit ``1 << index`` in every
entity mask, so the engine decides with integer operations only.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from trustlayer._yaml import Lines, parse_yaml, validation_error
from trustlayer.errors import ConfigError, PolicyError
from trustlayer.policy.schema import CODE, NAME, AttrMatch, Destination, PolicyFile, Rule
from trustlayer.redaction.entities import ENTITY_TYPES
from trustlayer.types import Endpoint, Operator, VerifyRequirement

__all__ = ["CompiledPolicy", "CompiledRule", "EndpointTest", "compile_file", "compile_text"]

# Strength of an operator: a transform satisfies a demand for an equal or weaker one.
# mask keeps part of the value visible; a pseudonym reveals nothing but can be restored
# on the device; a hash is irreversible; drop removes the value.
STRENGTH: Mapping[Operator, int] = {Operator.MASK: 1, Operator.PSEUDONYMIZE: 2, Operator.HASH: 3, Operator.DROP: 4}

EndpointTest = Callable[[Endpoint], bool]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, with its conditions turned into masks and predicates."""

    index: int
    id: str
    effect: str
    bit: int
    class_mask: int
    match_all: bool
    to: EndpointTest | None
    from_: EndpointTest | None
    channels: frozenset[str] | None
    subject: tuple[frozenset[str], bool] | None
    transforms: Mapping[int, Operator]
    route_local: bool
    verify: VerifyRequirement | None
    cite: str
    reason: str | None
    line: int | None
    source: Rule = field(repr=False)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A validated policy as integer masks and small predicates, ready for the engine."""

    path: Path
    digest: str
    file: PolicyFile
    lines: Lines
    class_names: tuple[str, ...]
    class_bit: Mapping[str, int]
    class_entities: Mapping[int, frozenset[str]]
    class_emask: Mapping[int, int]
    entity_bit: Mapping[str, int]
    entity_names: tuple[str, ...]
    entity_classes: Mapping[int, int]
    groups: Mapping[str, frozenset[str]]
    rules: tuple[CompiledRule, ...]
    forbid_mask: int
    permit_mask: int
    unconditional: int
    rules_by_class: Mapping[int, int]
    all_match: tuple[tuple[int, int], ...]
    default_permit: bool
    endpoints: Mapping[str, Endpoint]

    def classes_of(self, mask: int) -> frozenset[str]:
        """The class names in a class mask."""
        return frozenset(n for n in self.class_names if self.class_bit[n] & mask)

    def class_mask(self, names: Any) -> int:
        """The class mask of some class names; ``PolicyError`` for an undeclared one."""
        m = 0
        for n in names:
            bit = self.class_bit.get(n)
            if bit is None:
                raise PolicyError(f"policy {self.file.name!r}: data class {n!r} is not declared "
                                  f"(declared: {', '.join(self.class_names)})", path=str(self.path))
            m |= bit
        return m

    def rule(self, rule_id: str) -> CompiledRule:
        """The rule with this id."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise PolicyError(f"policy {self.file.name!r} has no rule {rule_id!r}", path=str(self.path))

    def fires(self, class_mask: int) -> int:
        """The rules whose class condition holds for the classes in ``class_mask``."""
        out = self.unconditional
        m = class_mask
        while m:
            low = m & -m
            out |= self.rules_by_class.get(low, 0)
            m ^= low
        for bit, need in self.all_match:
            if class_mask & need == need:
                out |= bit
        return out


def _fail(path: Path, lines: Lines, loc: tuple[str | int, ...], what: str) -> PolicyError:
    line = None
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            line = lines[loc[:n]]
            break
    where = f" line {line}" if line else ""
    return PolicyError(f"policy file {str(path)!r}{where}: {what}", path=str(path), line=line,
                       field=".".join(str(x) for x in loc))


def _duplicate_keys(node: yaml.Node, path: Path) -> None:
    """PyYAML keeps the last of two equal keys silently; a policy must not."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    line = key.start_mark.line + 1
                    raise PolicyError(f"policy file {str(path)!r} line {line}: key {key.value!r} is given twice",
                                      path=str(path), line=line)
                seen.add(key.value)
            _duplicate_keys(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _duplicate_keys(item, path)


def _codes(values: tuple[str, ...], groups: Mapping[str, frozenset[str]], fail: Callable[[str], PolicyError]
           ) -> frozenset[str]:
    out: set[str] = set()
    for v in values:
        if CODE.match(v):
            out.add(v)
        elif v in groups:
            out |= groups[v]
        else:
            raise fail(f"names jurisdiction group {v!r}, which is not declared "
                       f"(declared: {', '.join(sorted(groups)) or 'none'})")
    return frozenset(out)


def _in(code: str, codes: frozenset[str]) -> bool:
    # A subdivision (US-CA) is inside its country (US).
    return code in codes or code.split("-", 1)[0] in codes


def _attr_test(match: AttrMatch, codes: frozenset[str], get: Callable[[Endpoint], str]) -> EndpointTest:
    if match.negated:
        return lambda e: not _in(get(e), codes)
    return lambda e: _in(get(e), codes)


def _destination(dest: Destination, groups: Mapping[str, frozenset[str]],
                 fail: Callable[[str], PolicyError]) -> EndpointTest:
    tests: list[EndpointTest] = []
    if dest.kind is not None:
        kinds = frozenset(dest.kind)
        tests.append(lambda e: e.kind in kinds)
    if dest.jurisdiction is not None:
        tests.append(_attr_test(dest.jurisdiction, _codes(dest.jurisdiction.values, groups, fail),
                                lambda e: e.jurisdiction))
    if dest.region is not None:
        regions = frozenset(dest.region.values)
        neg = dest.region.negated
        tests.append(lambda e: (e.region in regions) != neg)
    if dest.id is not None:
        ids = frozenset(dest.id.values)
        neg_id = dest.id.negated
        tests.append(lambda e: (e.id in ids) != neg_id)
    if dest.box is not None:
        box = dest.box
        tests.append(lambda e: e.box.value == box)
    if dest.has:
        has = frozenset(dest.has)
        tests.append(lambda e: has <= e.attestations)
    if dest.lacks:
        lacks = frozenset(dest.lacks)
        tests.append(lambda e: not lacks <= e.attestations)
    if not tests:
        return lambda e: True
    if len(tests) == 1:
        return tests[0]
    return lambda e: all(t(e) for t in tests)


def _groups(pf: PolicyFile, path: Path, lines: Lines) -> dict[str, frozenset[str]]:
    groups: dict[str, frozenset[str]] = {}
    for name, codes in pf.jurisdictions.items():
        if not NAME.match(name):
            raise _fail(path, lines, ("jurisdictions", name),
                        f"jurisdiction group name {name!r} must be lower case letters, digits and '_'")
        for i, c in enumerate(codes):
            if not CODE.match(c):
                raise _fail(path, lines, ("jurisdictions", name, i),
                            f"jurisdiction group {name!r} lists {c!r}, which is not an ISO 3166 code such as DE")
        groups[name] = frozenset(codes)
    return groups


def _check_classes(names: tuple[str, ...], declared: Mapping[str, int], path: Path, lines: Lines,
                   loc: tuple[str | int, ...], who: str) -> None:
    for i, n in enumerate(names):
        if n not in declared:
            raise _fail(path, lines, (*loc, i), f"{who} names data class {n!r}, which is not declared "
                        f"(declared: {', '.join(declared)})")


def _compile_rule(i: int, rule: Rule, pf: PolicyFile, class_bit: Mapping[str, int],
                  groups: Mapping[str, frozenset[str]], path: Path, lines: Lines) -> CompiledRule:
    loc: tuple[str | int, ...] = ("rules", i)
    who = f"rule {rule.id!r}"

    def fail_at(*sub: str | int) -> Callable[[str], PolicyError]:
        return lambda what: _fail(path, lines, (*loc, *sub), f"{who} {what}")

    _check_classes(rule.when.classes, class_bit, path, lines, (*loc, "when", "classes"), who)
    transforms: dict[int, Operator] = {}
    for op in (Operator.MASK, Operator.PSEUDONYMIZE, Operator.HASH, Operator.DROP):
        names = getattr(rule.obligations, op.value)
        _check_classes(names, class_bit, path, lines, (*loc, "obligations", op.value), who)
        for n in names:
            bit = class_bit[n]
            if bit in transforms and STRENGTH[transforms[bit]] > STRENGTH[op]:
                continue
            transforms[bit] = op
    class_mask = 0
    for n in rule.when.classes:
        class_mask |= class_bit[n]
    subject = None
    if rule.when.subject is not None:
        subject = (_codes(rule.when.subject.values, groups, fail_at("when", "subject")), rule.when.subject.negated)
    return CompiledRule(
        index=i, id=rule.id, effect=rule.effect, bit=1 << i, class_mask=class_mask,
        match_all=rule.when.match == "all" and class_mask != 0,
        to=_destination(rule.when.to, groups, fail_at("when", "to")) if rule.when.to else None,
        from_=_destination(rule.when.from_, groups, fail_at("when", "from")) if rule.when.from_ else None,
        channels=frozenset(c.value for c in rule.when.channel) if rule.when.channel else None,
        subject=subject, transforms=transforms, route_local=rule.obligations.route_local,
        verify=rule.obligations.verify, cite=rule.cite, reason=rule.reason, line=lines.get(loc), source=rule,
    )


def _compile(pf: PolicyFile, path: Path, lines: Lines, digest: str) -> CompiledPolicy:
    groups = _groups(pf, path, lines)
    class_names = tuple(pf.classes)
    class_bit: dict[str, int] = {}
    for i, name in enumerate(class_names):
        if not NAME.match(name):
            raise _fail(path, lines, ("classes", name),
                        f"data class name {name!r} must be lower case letters, digits and '_'")
        class_bit[name] = 1 << i
    entity_names = tuple(sorted({e for spec in pf.classes.values() for e in spec.entities}))
    entity_bit = {e: 1 << i for i, e in enumerate(entity_names)}
    class_entities: dict[int, frozenset[str]] = {}
    class_emask: dict[int, int] = {}
    entity_classes: dict[int, int] = {}
    for name, spec in pf.classes.items():
        for j, e in enumerate(spec.entities):
            if e not in ENTITY_TYPES:
                close = difflib.get_close_matches(e, sorted(ENTITY_TYPES), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise _fail(path, lines, ("classes", name, "entities", j),
                            f"data class {name!r} names entity type {e!r}, which no detector emits "
                            f"({hint}known: {', '.join(sorted(ENTITY_TYPES))})")
        bit = class_bit[name]
        class_entities[bit] = frozenset(spec.entities)
        emask = 0
        for e in spec.entities:
            emask |= entity_bit[e]
            entity_classes[entity_bit[e]] = entity_classes.get(entity_bit[e], 0) | bit
        class_emask[bit] = emask
    seen: dict[str, int] = {}
    rules: list[CompiledRule] = []
    for i, rule in enumerate(pf.rules):
        if rule.id in seen:
            raise _fail(path, lines, ("rules", i, "id"),
                        f"rule id {rule.id!r} is used twice (first at line {lines.get(('rules', seen[rule.id]))})")
        seen[rule.id] = i
        rules.append(_compile_rule(i, rule, pf, class_bit, groups, path, lines))
    forbid = permit = unconditional = 0
    by_class: dict[int, int] = {}
    all_match: list[tuple[int, int]] = []
    for r in rules:
        if r.effect == "forbid":
            forbid |= r.bit
        else:
            permit |= r.bit
        if r.class_mask == 0:
            unconditional |= r.bit
        elif r.match_all:
            all_match.append((r.bit, r.class_mask))
        else:
            m = r.class_mask
            while m:
                low = m & -m
                by_class[low] = by_class.get(low, 0) | r.bit
                m ^= low
    endpoints: dict[str, Endpoint] = {}
    for i, ep in enumerate(pf.endpoints):
        if ep.id in endpoints:
            raise _fail(path, lines, ("endpoints", i, "id"), f"endpoint id {ep.id!r} is declared twice")
        endpoints[ep.id] = ep
    return CompiledPolicy(
        path=path, digest=digest, file=pf, lines=lines, class_names=class_names, class_bit=class_bit,
        class_entities=class_entities, class_emask=class_emask, entity_bit=entity_bit,
        entity_names=entity_names, entity_classes=entity_classes, groups=groups, rules=tuple(rules),
        forbid_mask=forbid, permit_mask=permit, unconditional=unconditional, rules_by_class=by_class,
        all_match=tuple(all_match), default_permit=pf.default == "permit", endpoints=endpoints,
    )


def _parse(data: bytes, path: Path) -> tuple[Any, Lines]:
    """Parse the exact bytes that are digested, so the digest always names what was compiled."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {str(path)!r} is not UTF-8 text", path=str(path)) from exc
    raw, lines, node = parse_yaml(text, path=path, error=PolicyError, what="policy")
    _duplicate_keys(node, path)
    return raw, lines


def compile_text(data: bytes, path: Path) -> CompiledPolicy:
    """Validate and compile policy bytes read from ``path`` (the digest is of these bytes)."""
    digest = hashlib.sha256(data).hexdigest()
    raw, lines = _parse(data, path)
    if not isinstance(raw, dict):
        raise PolicyError(f"policy file {str(path)!r}: expected a mapping at the top level, "
                          f"found {type(raw).__name__}", path=str(path), line=1)
    try:
        pf = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        err = validation_error(exc, path, lines, error=PolicyError, what="policy")
        raise _with_rule(err, raw, exc) from exc
    declared = {n: 0 for n in pf.classes}
    for i, case in enumerate(pf.tests):
        _check_classes(case.taint, declared, path, lines, ("tests", i, "taint"), f"test {case.name!r}")
    return _compile(pf, path, lines, digest)


def _with_rule(err: ConfigError, raw: dict[str, Any], exc: ValidationError) -> PolicyError:
    """Name the rule id in a schema error inside ``rules[i]`` (the line alone is not enough to grep)."""
    loc = exc.errors()[0]["loc"]
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = raw.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            rid = rules[loc[1]].get("id")
            if isinstance(rid, str) and repr(rid) not in str(err):
                return PolicyError(f"{err} (rule {rid!r})", path=err.path, line=err.line, field=err.field)
    return PolicyError(str(err), path=err.path, line=err.line, field=err.field)


def compile_file(path: str | Path) -> CompiledPolicy:
    """Read, validate and compile one policy file; ``PolicyError`` names file, line and rule."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file {str(p)!r} does not exist", path=str(p)) from exc
    except OSError as exc:
        raise PolicyError(f"policy file {str(p)!r} cannot be read: {exc.__class__.__name__}", path=str(p)) from exc
    return compile_text(data, p)
