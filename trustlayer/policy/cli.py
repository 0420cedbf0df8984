"""``trustlayer policy``: check, explain, test, prove and export residency policies.

    trustlayer policy check policies/*.yaml
    trustlayer policy explain eu-gdpr --findings EMAIL_ADDRESS,API_KEY --to gpt-us
    trustlayer policy test policies/*.yaml
    trustlayer policy prove eu-gdpr --never secrets:cloud
    trustlayer policy export eu-gdpr --format cedar

A FILE is a path or the name of a shipped policy. Exit codes: 0 ok; 1 the check found
a problem (invalid policy in ``check``, failing case, violated claim, warnings with
``--strict``); 2 usage or input error (missing or invalid file elsewhere, bad flags).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from trustlayer.errors import ConfigError, PolicyError, TrustError
from trustlayer.policy.analysis import prove, shadowed
from trustlayer.policy.cases import resolve_endpoint, run_cases
from trustlayer.policy.engine import PolicyEngine
from trustlayer.policy.shipped import shipped_policy_path
from trustlayer.stages import Detector
from trustlayer.types import Decision, Endpoint, Finding, Message, Route

__all__ = ["policy"]

EXIT_PROBLEM = 1
EXIT_USAGE = 2


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _path(file: str) -> Path:
    p = Path(file)
    if p.exists() or p.suffix in (".yaml", ".yml") or "/" in file:
        return p
    # Not a file: a shipped policy name, or an error that lists the shipped names.
    return shipped_policy_path(file)


@contextmanager
def _errors(code: int = EXIT_USAGE) -> Iterator[None]:
    """One line, no traceback, for every trustlayer error."""
    try:
        yield
    except ConfigError as exc:
        _fail(str(exc), code)
    except TrustError as exc:
        _fail(str(exc), EXIT_PROBLEM)


def _engine(file: str, subject: str | None = None) -> PolicyEngine:
    return PolicyEngine.from_file(_path(file), subject_jurisdiction=subject)


@click.group("policy", context_settings={"help_option_names": ["-h", "--help"]})
def policy() -> None:
    """Check, explain, test, prove and export residency policies (FILE: a path or a shipped name)."""


@policy.command("check")
@click.argument("files", nargs=-1, required=True)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
def check(files: tuple[str, ...], strict: bool) -> None:
    """Validate policy files; report errors with file, line and rule, and rules that can never decide."""
    bad = warned = 0
    for file in files:
        with _errors():
            path = _path(file)
        try:
            engine = PolicyEngine.from_file(path)
        except PolicyError as exc:
            if exc.path is not None and not Path(exc.path).exists():
                _fail(str(exc))
            click.echo(f"error: {exc}", err=True)
            bad += 1
            continue
        for w in shadowed(engine):
            where = f" line {w.line}" if w.line else ""
            click.echo(f"warning: policy file {str(engine.path)!r}{where}: {w.message}", err=True)
            warned += 1
        p = engine.policy
        click.echo(f"ok: {engine.path} ({engine.name}: {len(p.class_names)} classes, {len(p.rules)} rules, "
                   f"{len(p.file.tests)} tests, sha256 {engine.digest[:16]})")
    if bad or (strict and warned):
        sys.exit(EXIT_PROBLEM)


def _findings(spec: str | None, text: str | None, engine: PolicyEngine, route: Route) -> tuple[Finding, ...]:
    if (spec is None) == (text is None):
        _fail("give exactly one of --text and --findings")
    if spec is not None:
        types = [t.strip() for t in spec.split(",") if t.strip()]
        return tuple(Finding(entity_type=t, start=0, end=1, score=1.0, detector="cli") for t in types)
    detector = _detector()
    message = Message.from_text(text or "", conversation_id="policy-explain")
    return tuple(detector.detect(message, entities=engine.entities_for(route)))


def _detector() -> Detector:
    """The redaction detector (Presidio patterns + spaCy NER), loaded only when text is given."""
    try:
        from trustlayer.redaction.detector import PiiDetector
    except ImportError as exc:
        _fail(f"text needs the redaction engine, which could not be imported ({exc.name}); give findings instead")
    return PiiDetector()


def _extra_endpoints(config: str | None) -> dict[str, Endpoint]:
    if config is None:
        return {}
    from trustlayer.config import load_config

    return {e.id: e for e in load_config(config).endpoints}


def _decision_table(decision: Decision, findings: tuple[Finding, ...]) -> Table:
    t = Table(title=f"decision {decision.id}", show_header=False)
    t.add_row("outcome", decision.outcome.value)
    t.add_row("endpoint", decision.endpoint)
    t.add_row("allowed", ", ".join(decision.allowed) or "-")
    t.add_row("classes", ", ".join(sorted(decision.classes)) or "-")
    found = sorted({f.entity_type for f in findings})
    t.add_row("entity types found", ", ".join(found) or "-")
    ops: dict[str, list[str]] = {}
    for entity, op in decision.operators.items():
        ops.setdefault(op.value, []).append(entity)
    t.add_row("transform", "; ".join(f"{op}: {', '.join(sorted(es))}" for op, es in sorted(ops.items())) or "-")
    t.add_row("rules", ", ".join(decision.rule_ids))
    t.add_row("citations", "; ".join(decision.citations) or "-")
    if decision.verify is not None:
        v = decision.verify
        t.add_row("verify", f"{v.quorum} of {v.of}, measure {v.measure}")
    t.add_row("policy sha256", decision.policy_digest)
    return t


@policy.command("explain")
@click.argument("file")
@click.option("--to", "to", required=True, help="Destination endpoint id.")
@click.option("--from", "from_", default=None, help="Sender endpoint id (default: the first device endpoint).")
@click.option("--text", default=None, help="Text to detect entity types in (needs the redaction engine).")
@click.option("--findings", default=None, help="Comma-separated entity types, instead of --text.")
@click.option("--taint", multiple=True, help="A data class the conversation already carried (repeatable).")
@click.option("--subject", default=None, help="The data subject's jurisdiction, e.g. DE.")
@click.option("--candidates", default=None, help="Comma-separated candidate endpoint ids.")
@click.option("--config", default=None, help="A trustlayer.yaml whose endpoints are also known.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision (and the second one) as JSON.")
def explain(file: str, to: str, from_: str | None, text: str | None, findings: str | None, taint: tuple[str, ...],
            subject: str | None, candidates: str | None, config: str | None, as_json: bool) -> None:
    """Show the decision for a message to an endpoint, the rules that made it, and the decision after its transform."""
    with _errors():
        engine = _engine(file, subject)
        extra = _extra_endpoints(config)
        recipient = resolve_endpoint(engine, to, extra)
        if from_ is not None:
            sender = resolve_endpoint(engine, from_, extra)
        else:
            devices = [e for e in (*engine.endpoints.values(), *extra.values()) if e.kind.value == "device"]
            if not devices:
                _fail("give --from: the policy declares no device endpoint to send from")
            sender = devices[0]
        route = Route.between(sender, recipient, subject_jurisdiction=subject)
        cands = tuple(resolve_endpoint(engine, c.strip(), extra) for c in (candidates or "").split(",") if c.strip())
        found = _findings(findings, text, engine, route)
        first = engine.decide(found, route, taint=frozenset(taint), candidates=cands)
        second = None
        if first.operators and first.outcome.value == "transform":
            second = engine.decide(found, route, taint=frozenset(taint) | first.classes, applied=first.operators,
                                   candidates=cands)
    if as_json:
        out: dict[str, Any] = {"decision": first.model_dump(mode="json")}
        if second is not None:
            out["after_transform"] = second.model_dump(mode="json")
        click.echo(json.dumps(out, indent=2, sort_keys=True, default=sorted))
        return
    console = _out()
    console.print(_decision_table(first, found))
    for reason in first.reasons:
        console.print(f"  - {reason}")
    if second is not None:
        console.print(f"after the transform: {second.outcome.value}")
        for reason in second.reasons:
            console.print(f"  - {reason}")


@policy.command("test")
@click.argument("files", nargs=-1, required=True)
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too.")
def test(files: tuple[str, ...], verbose: bool) -> None:
    """Run the test cases embedded in policy files (like ``opa test``)."""
    failed = total = 0
    detector: Detector | None = None
    for file in files:
        with _errors():
            engine = _engine(file)
            if any(c.text is not None for c in engine.policy.file.tests):
                detector = detector or _detector()
            results = run_cases(engine, detector=detector)
        for r in results:
            total += 1
            where = f"{engine.path}:{r.line}" if r.line else str(engine.path)
            if r.passed:
                if verbose:
                    click.echo(f"PASS {where} {r.name}")
                continue
            failed += 1
            click.echo(f"FAIL {where} {r.name}")
            for problem in r.problems:
                click.echo(f"     {problem}")
    click.echo(f"{total - failed} passed, {failed} failed")
    if failed:
        sys.exit(EXIT_PROBLEM)


@policy.command("prove")
@click.argument("file")
@click.option("--never", "claims", multiple=True, metavar="CLASS:KIND",
              help="Claim CLASS never reaches an endpoint of KIND in raw form (repeatable); exit 1 if it can.")
@click.option("--strict", is_flag=True, help="With --never: not even transformed.")
def prove_cmd(file: str, claims: tuple[str, ...], strict: bool) -> None:
    """List every path by which each data class can reach each endpoint kind (and declared endpoint)."""
    with _errors():
        engine = _engine(file)
        parsed: list[tuple[str, str]] = []
        for claim in claims:
            cls, sep, kind = claim.partition(":")
            if not sep or cls not in engine.policy.class_bit or kind not in ("device", "edge", "cloud", "agent"):
                _fail(f"--never {claim!r}: expected CLASS:KIND with a declared class "
                      f"({', '.join(engine.policy.class_names)}) and a kind (device, edge, cloud, agent)")
            parsed.append((cls, kind))
        paths = prove(engine)
    table = Table(title=f"paths in {engine.name} (sha256 {engine.digest[:16]})")
    for col in ("class", "endpoint", "form", "example: classes present", "subject", "rules"):
        table.add_column(col)
    for p in paths:
        table.add_row(p.cls, p.endpoint, p.form, ", ".join(p.with_classes), p.subject or "unknown",
                      ", ".join(p.rule_ids))
    console = _out()
    console.print(table)
    for cls in engine.policy.class_names:
        forms: dict[str, set[str]] = {}
        for p in paths:
            if p.cls == cls:
                forms.setdefault(p.form, set()).add(p.kind)
        summary = "; ".join(f"{form} to {', '.join(sorted(kinds))}" for form, kinds in sorted(forms.items()))
        console.print(f"{cls}: {summary or 'reaches no endpoint'}")
    violated = 0
    for cls, kind in parsed:
        bad = [p for p in paths if p.cls == cls and p.kind == kind and (strict or p.form == "raw")]
        form = "in any form" if strict else "in raw form"
        if bad:
            violated += 1
            b = bad[0]
            click.echo(f"VIOLATED: {cls} can reach {b.endpoint} {form} ({b.form}, with "
                       f"{', '.join(b.with_classes)}, subject {b.subject or 'unknown'}, rules {', '.join(b.rule_ids)})")
        else:
            click.echo(f"PROVED: {cls} never reaches a {kind} endpoint {form}")
    if violated:
        sys.exit(EXIT_PROBLEM)


@policy.command("export")
@click.argument("file")
@click.option("--format", "fmt", type=click.Choice(["cedar"]), default="cedar", show_default=True)
def export(file: str, fmt: str) -> None:
    """Print the policy in another policy language (Cedar)."""
    from trustlayer.policy.cedar import to_cedar

    with _errors():
        engine = _engine(file)
    click.echo(to_cedar(engine), nl=False)
