"""Policy decision latency: p50/p99 of PolicyEngine.decide for a 50-rule policy and 5 candidate endpoints.

Three regimes: steady state (the combinations of destination, entity types and taint recur, as in
real traffic), a random stream where most combinations are new, and cold (empty caches each call).

Reference: the target p50 <= 20 us (issue 4), and Cedar (cedarpy, Rust) deciding the same policy,
exported with `trustlayer policy export --format cedar`, once per candidate (what `allowed` needs).

    python benchmarks/policy_speed.py
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from trustlayer.policy import PolicyEngine
from trustlayer.types import Endpoint, Finding, Route

TARGET_P50_US = 20.0
CLASSES = {
    "personal": ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "STREET_ADDRESS"],
    "national_id": ["US_SSN", "DE_TAX_ID", "FR_NIR", "UK_NINO"],
    "finance": ["IBAN_CODE", "CREDIT_CARD"],
    "card_auth": ["CVV"],
    "health": ["MEDICAL_RECORD_NUMBER", "UK_NHS"],
    "network": ["IP_ADDRESS", "MAC_ADDRESS", "URL"],
    "secrets": ["API_KEY", "SECRET", "PASSWORD", "PRIVATE_KEY", "JWT"],
    "birth": ["DATE_OF_BIRTH"],
}
KINDS = ["cloud", "edge", "agent"]
ATTESTATIONS = ["dpa", "baa", "scc", "zero_retention", "pci_dss"]
OPS = ["pseudonymize", "mask", "hash", "drop"]


def make_policy(rng: random.Random, n_rules: int = 50) -> dict[str, object]:
    rules: list[dict[str, object]] = []
    names = list(CLASSES)
    for i in range(n_rules):
        cls = rng.sample(names, rng.choice([1, 1, 2]))
        when: dict[str, object] = {"classes": cls, "to": {"kind": rng.sample(KINDS, rng.choice([1, 2, 3]))}}
        to = when["to"]
        assert isinstance(to, dict)
        if rng.random() < 0.5:
            to["jurisdiction"] = {"not_in" if rng.random() < 0.6 else "in": [rng.choice(["eea", "adequacy", "US"])]}
        if rng.random() < 0.5:
            to["lacks" if rng.random() < 0.7 else "has"] = [rng.choice(ATTESTATIONS)]
        if rng.random() < 0.2:
            when["subject"] = {"in": ["eea"]}
        rule: dict[str, object] = {"id": f"rule-{i:02d}", "when": when, "cite": f"Example Regulation Art. {i + 1}"}
        roll = rng.random()
        if roll < 0.15:
            rule["effect"] = "permit"
        elif roll < 0.25:
            rule["effect"] = "forbid"
            rule["obligations"] = {"route_local": True}
        else:
            rule["effect"] = "forbid"
            rule["obligations"] = {rng.choice(OPS): cls}
        rules.append(rule)
    return {
        "version": 1, "name": "bench-50", "default": "permit", "subject_jurisdiction": "DE",
        "jurisdictions": {"eea": ["EU", "DE", "FR", "IT", "ES", "NL", "PL", "SE"], "adequacy": ["CH", "GB", "JP"]},
        "classes": {n: {"entities": e} for n, e in CLASSES.items()},
        "rules": rules,
    }


def endpoints() -> tuple[Endpoint, list[Endpoint]]:
    device = Endpoint(id="phone", kind="device", jurisdiction="DE", box="white")
    cands = [
        Endpoint(id="local-llm", kind="device", jurisdiction="DE", box="white"),
        Endpoint(id="gpt-us", kind="cloud", jurisdiction="US", attestations=frozenset({"dpa", "scc"})),
        Endpoint(id="mistral-eu", kind="cloud", jurisdiction="FR", attestations=frozenset({"dpa", "zero_retention"})),
        Endpoint(id="edge-de", kind="edge", jurisdiction="DE"),
        Endpoint(id="agent-jp", kind="agent", jurisdiction="JP", attestations=frozenset({"dpa", "baa"})),
    ]
    return device, cands


def workload(rng: random.Random, n: int, device: Endpoint, cands: list[Endpoint]
             ) -> list[tuple[list[Finding], Route, frozenset[str]]]:
    """Messages with 0-4 findings of random entity types, to a random cloud/edge/agent candidate."""
    types = [t for ts in CLASSES.values() for t in ts] + ["LOCATION"]
    out = []
    for _ in range(n):
        found = [Finding(entity_type=rng.choice(types), start=0, end=5, score=0.9, detector="bench")
                 for _ in range(rng.choice([0, 1, 2, 2, 3, 4]))]
        taint = frozenset(rng.sample(list(CLASSES), 1)) if rng.random() < 0.2 else frozenset()
        out.append((found, Route.between(device, rng.choice(cands[1:])), taint))
    return out


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    s = sorted(samples_ns)
    return s[len(s) // 2] / 1000, s[int(len(s) * 0.99)] / 1000


def measure(engine: PolicyEngine, work: list[tuple[list[Finding], Route, frozenset[str]]],
            cands: list[Endpoint], *, cold: bool) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for findings, route, taint in work:
        if cold:
            engine = PolicyEngine(engine.policy)  # empty caches: every lookup is built again
        t0 = clock()
        engine.decide(findings, route, taint=taint, candidates=cands)
        samples.append(clock() - t0)
    return samples


def cedar_reference(engine: PolicyEngine, work: list[tuple[list[Finding], Route, frozenset[str]]],
                    cands: list[Endpoint]) -> list[int] | None:
    try:
        import cedarpy
    except ImportError:
        return None
    from trustlayer.policy.cedar import cedar_request, to_cedar

    policies = cedarpy.PolicySet.from_str(to_cedar(engine))
    p = engine.policy
    samples = []
    for findings, route, taint in work:
        classes = frozenset(c for f in findings for c in p.classes_of(p.entity_classes.get(
            p.entity_bit.get(f.entity_type, 0), 0))) | taint
        requests = [cedar_request(route.to(c), classes, classes) for c in cands]
        t0 = time.perf_counter_ns()
        for request, entities in requests:
            cedarpy.is_authorized(request, policies, entities)
        samples.append(time.perf_counter_ns() - t0)
    return samples


def main() -> None:
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-50.yaml"
        path.write_text(yaml.safe_dump(make_policy(rng), sort_keys=False))
        engine = PolicyEngine.from_file(path)
    device, cands = endpoints()
    # Steady state: a conversation mix whose (destination, entity types, taint) combinations recur.
    recurring = workload(rng, 500, device, cands)
    measure(engine, recurring, cands, cold=False)  # first sight of each combination builds its plan
    steady = measure(engine, recurring * 40, cands, cold=False)
    # First sight: every combination is new to the engine (the plan is built, lower-level caches help).
    fresh = workload(rng, 20_000, device, cands)
    first = measure(PolicyEngine(engine.policy), fresh, cands, cold=False)
    cold = measure(engine, fresh[:500], cands, cold=True)
    s50, s99 = percentiles(steady)
    f50, f99 = percentiles(first)
    c50, c99 = percentiles(cold)
    print(f"policy_speed: {len(engine.policy.rules)} rules, {len(engine.policy.class_names)} classes, "
          f"{len(cands)} candidate endpoints; python {platform.python_version()} on {platform.machine()}, "
          f"{sys.platform}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared host)")
    print(f"decide, steady state ({len(steady)} decisions over 500 recurring messages)   "
          f"p50 {s50:8.2f} us   p99 {s99:8.2f} us")
    print(f"  target p50 <= {TARGET_P50_US:.0f} us: ratio {s50 / TARGET_P50_US:.2f} "
          f"({'met' if s50 <= TARGET_P50_US else 'MISSED'})")
    print(f"decide, random stream ({len(first)} decisions, {len(set(map(_key, fresh)))} distinct combinations)"
          f"   p50 {f50:8.2f} us   p99 {f99:8.2f} us   ratio to target {f50 / TARGET_P50_US:.2f}")
    print(f"decide, cold (empty caches each call)   p50 {c50:8.2f} us   p99 {c99:8.2f} us   "
          f"ratio to target {c50 / TARGET_P50_US:.2f}")
    ref = cedar_reference(engine, recurring, cands)
    if ref is None:
        print("reference cedarpy: not installed")
    else:
        r50, r99 = percentiles(ref)
        print(f"reference: cedarpy {_cedar_version()} is_authorized x {len(cands)} candidates (same policy exported)"
              f"   p50 {r50:8.2f} us   p99 {r99:8.2f} us")
        print(f"  ratio trustlayer/cedarpy p50: steady {s50 / r50:.3f}, random stream {f50 / r50:.3f}, "
              f"cold {c50 / r50:.3f}")
    print(f"mean steady {statistics.fmean(steady) / 1000:.2f} us")


def _key(item: tuple[list[Finding], Route, frozenset[str]]) -> tuple[object, ...]:
    findings, route, taint = item
    return (route.recipient.id, frozenset(f.entity_type for f in findings), taint)


def _cedar_version() -> str:
    from importlib.metadata import version

    return version("cedarpy")


if __name__ == "__main__":
    main()
