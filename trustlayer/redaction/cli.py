"""``trustlayer redact``: redact text or JSONL read from stdin.

    echo "I'm Ada, ada@example.org" | trustlayer redact
    trustlayer redact --jsonl < prompts.jsonl > redacted.jsonl
    trustlayer redact --policy eu-gdpr --to gpt-us < prompt.txt

Text mode prints the redacted text on stdout and a findings table on stderr. With
``--jsonl`` each input line is a JSON object with ``"text"`` (a string) or
``"messages"`` (OpenAI chat messages) and any other fields; it is written back on
one line with those fields redacted and a ``"findings"`` list (entity type, path,
offsets, score, detector; never the value). Without ``--policy``/``--to`` the
shipped default policy for a cloud destination decides. Exit codes: 0 ok; 1 a
message may not go to the destination at all (policy blocks or reroutes it; its
output is fully pseudonymized); 2 usage or input error.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from trustlayer._safe import shown
from trustlayer.errors import ConfigError, RedactionError, TrustError
from trustlayer.redaction.redactor import Redactor
from trustlayer.redaction.vault import Vault
from trustlayer.types import Finding, Kind, Message, Operator, Outcome, Route, Turn

__all__ = ["redact"]

EXIT_PROBLEM = 1
EXIT_USAGE = 2
DEFAULT_DESTINATION = "cloud-llm"
"""The cloud endpoint of the shipped default policy used when no ``--to`` is given."""


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Policy:
    """The policy engine and route that decide the operators for each message."""

    def __init__(self, policy: str | None, to: str | None, sender: str | None) -> None:
        from trustlayer.policy import PolicyEngine, shipped_policy_names, shipped_policy_path

        if policy is None:
            path = shipped_policy_path("default")
        elif not Path(policy).exists() and policy in shipped_policy_names():
            path = shipped_policy_path(policy)
        else:
            path = Path(policy)
        try:
            self.engine = PolicyEngine.from_file(path)
        except ConfigError as exc:
            _fail(str(exc))
        endpoints = self.engine.endpoints
        declared = ", ".join(sorted(endpoints))
        to = to or DEFAULT_DESTINATION
        if to not in endpoints:
            _fail(f"--to {to!r} is not an endpoint of policy {path.name} (declared: {declared})")
        if sender is None:
            sender = next((e for e, ep in endpoints.items() if ep.kind is Kind.DEVICE), None)
            if sender is None:
                _fail(f"policy {path.name} declares no device endpoint; name the sender with --from")
        elif sender not in endpoints:
            _fail(f"--from {sender!r} is not an endpoint of policy {path.name} (declared: {declared})")
        self.route = Route.between(endpoints[sender], endpoints[to])
        self.destination = to

    def operators(self, findings: list[Finding]) -> tuple[Mapping[str, Operator], dict[str, Any] | None]:
        """Operators to apply, and a description of the decision when the message may not go."""
        decision = self.engine.decide(findings, self.route)
        if decision.outcome in (Outcome.ALLOW, Outcome.TRANSFORM) and decision.endpoint == self.destination:
            return decision.operators, None
        refused = {"outcome": decision.outcome.value, "endpoint": decision.endpoint,
                   "rules": list(decision.rule_ids)}
        # Fail closed: a message that may not go is shown with every finding pseudonymized.
        return {f.entity_type: Operator.PSEUDONYMIZE for f in findings}, refused


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        _fail(f"stdin is not valid UTF-8: line {line}, byte offset {exc.start}")


def _finding_json(f: Finding, *, field: str | None = None) -> dict[str, Any]:
    return {"entity_type": f.entity_type, "path": field or f.path, "start": f.start, "end": f.end,
            "score": f.score, "detector": f.detector, "validated": f.validated}


def _table(findings: list[Finding]) -> Table:
    table = Table(title=f"{len(findings)} finding(s)", title_justify="left")
    for column in ("entity type", "path", "span", "score", "detector"):
        table.add_column(column)
    for f in findings:
        table.add_row(f.entity_type, f.path, f"{f.start}-{f.end}", f"{f.score:.2f}", f.detector)
    return table


def _message(obj: Mapping[str, Any], lineno: int, conversation_id: str) -> Message:
    text, messages = obj.get("text"), obj.get("messages")
    if (text is None) == (messages is None):
        _fail(f"stdin line {lineno}: expected exactly one of the fields 'text' and 'messages'")
    if text is not None:
        if not isinstance(text, str):
            _fail(f"stdin line {lineno}: field 'text' must be a string, found {type(text).__name__}")
        return Message.from_text(text, conversation_id=conversation_id)
    if not isinstance(messages, list):
        _fail(f"stdin line {lineno}: field 'messages' must be a list, found {type(messages).__name__}")
    turns = []
    for i, raw in enumerate(messages):
        try:
            turns.append(Turn.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
            # The pydantic message names the field and the expectation, never the input value.
            _fail(f"stdin line {lineno}: messages[{i}]{where}: {first['msg']}")
        extra = turns[-1].uninspected()
        if extra is not None:
            _fail(f"stdin line {lineno}: messages[{i}]{extra[0]}.{shown(extra[1])} is a field redaction does not "
                  "inspect; it would be written back in clear, so it may only be empty")
    return Message(conversation_id=conversation_id, turns=tuple(turns))


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield i, line


@click.command("redact")
@click.option("--jsonl", is_flag=True, help="Read one JSON object per line ('text' or 'messages').")
@click.option("--policy", "policy", metavar="FILE", help="Policy file or shipped policy name (default: default).")
@click.option("--to", "to", metavar="ENDPOINT", help=f"Destination endpoint in the policy (default: "
              f"{DEFAULT_DESTINATION}).")
@click.option("--from", "sender", metavar="ENDPOINT", help="Sending endpoint (default: the policy's first device).")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="trustlayer.yaml: use its vault "
              "and detection settings (default: a throw-away in-memory vault).")
@click.option("--conversation", default=None, help="Conversation id for consistent placeholders.")
@click.option("--no-ner", is_flag=True, help="Do not load spaCy (names from context rules only).")
def redact(jsonl: bool, policy: str | None, to: str | None, sender: str | None, config: str | None,
           conversation: str | None, no_ner: bool) -> None:
    """Redact text or JSONL read from stdin; findings never show the values."""
    decider = _Policy(policy, to, sender)
    try:
        if config is not None:
            from trustlayer.config import load_config

            cfg = load_config(config)
            redactor = Redactor.from_config(cfg)
            if no_ner:
                redactor = Redactor(redactor.vault, score_threshold=cfg.redaction.score_threshold, ner=False)
        else:
            redactor = Redactor(Vault.open(":memory:", secrets.token_bytes(32)), ner=not no_ner)
    except ConfigError as exc:
        _fail(str(exc))
    except RedactionError as exc:
        _fail(str(exc))
    conversation_id = conversation or f"cli-{secrets.token_hex(8)}"
    data = _read_stdin()
    refused_any = False
    try:
        if jsonl:
            refused_any = _run_jsonl(redactor, decider, data, conversation_id)
        else:
            refused_any = _run_text(redactor, decider, data, conversation_id)
    except TrustError as exc:
        _fail(str(exc))
    if refused_any:
        sys.exit(EXIT_PROBLEM)


def _run_text(redactor: Redactor, decider: _Policy, data: str, conversation_id: str) -> bool:
    message = Message.from_text(data, conversation_id=conversation_id)
    findings = redactor.detect(message)
    operators, refused = decider.operators(findings)
    out = redactor.transform(message, findings, operators)
    click.echo(out.text or "", nl=not (out.text or "").endswith("\n"))
    err = Console(stderr=True, highlight=False)
    err.print(_table(findings))
    if refused is not None:
        err.print(f"policy: {refused['outcome']} to {refused['endpoint']} (rules: {', '.join(refused['rules'])}); "
                  f"this message may not go to {decider.destination}")
    return refused is not None


def _run_jsonl(redactor: Redactor, decider: _Policy, data: str, conversation_id: str) -> bool:
    refused_any = False
    lines = list(_lines(data))
    progress = Progress(SpinnerColumn(), TextColumn("redacting"), BarColumn(), MofNCompleteColumn(),
                        console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty())
    with progress:
        task = progress.add_task("redact", total=len(lines))
        for lineno, line in lines:
            refused_any = _jsonl_line(redactor, decider, lineno, line, conversation_id) or refused_any
            progress.advance(task)
    return refused_any


def _jsonl_line(redactor: Redactor, decider: _Policy, lineno: int, line: str, conversation_id: str) -> bool:
    """Redact one JSONL line and write it out; True when policy refuses the destination."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        _fail(f"stdin line {lineno}: not valid JSON (column {exc.colno}: {exc.msg})")
    if not isinstance(obj, dict):
        _fail(f"stdin line {lineno}: expected a JSON object, found {type(obj).__name__}")
    message = _message(obj, lineno, conversation_id)
    try:
        findings = redactor.detect(message)
        operators, refused = decider.operators(findings)
        out = redactor.transform(message, findings, operators)
    except RedactionError as exc:
        _fail(f"stdin line {lineno}: {exc}")
    result = dict(obj)
    if "text" in obj:
        result["text"] = out.text
    else:
        result["messages"] = out.to_openai()
    result["findings"] = [_finding_json(f) for f in findings]
    if refused is not None:
        result["refused"] = refused
    click.echo(json.dumps(result, ensure_ascii=False))
    return refused is not None
