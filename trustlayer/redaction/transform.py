"""Apply operators to findings: pseudonymize (vault), mask, drop, salted hash.

Each field of the message is rewritten from its findings; tool-call arguments are
rewritten inside their JSON strings and stay valid JSON. Anything inconsistent
(a path the message does not have, a span outside its field, an unknown operator)
raises ``RedactionError``: the gate then blocks the message rather than send it
half-processed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trustlayer.errors import RedactionError
from trustlayer.redaction import jsonargs
from trustlayer.redaction.arbitrate import arbitrate
from trustlayer.redaction.recognizers.base import Span
from trustlayer.redaction.vault import Vault
from trustlayer.types import Finding, Message, Operator

__all__ = ["apply_operators", "mask"]


def mask(entity_type: str, value: str) -> str:
    """``*`` for every character except whitespace; a card keeps its last four digits (PCI DSS 3.4.1)."""
    masked = ["*" if not c.isspace() else c for c in value]
    if entity_type == "CREDIT_CARD":
        digits = [i for i, c in enumerate(value) if c.isdigit()]
        for i in digits[-4:]:
            masked[i] = value[i]
    return "".join(masked)


def _operator(entity_type: str, raw: object) -> Operator:
    try:
        return raw if isinstance(raw, Operator) else Operator(str(raw))
    except ValueError:
        allowed = ", ".join(o.value for o in Operator)
        raise RedactionError(f"operator {raw!r} for {entity_type} is not one of {allowed}") from None


def _replacement(vault: Vault, entity_type: str, op: Operator, value: str,
                 pseudonyms: Mapping[tuple[str, str], str]) -> str:
    if op is Operator.PSEUDONYMIZE:
        return pseudonyms[(entity_type, value)]
    if op is Operator.MASK:
        return mask(entity_type, value)
    if op is Operator.DROP:
        return ""
    return f"[{entity_type}:{vault.digest(entity_type, value)}]"


def apply_operators(vault: Vault, message: Message, findings: Sequence[Finding],
                    operators: Mapping[str, Operator]) -> Message:
    """The message with each finding whose type has an operator replaced as that operator says."""
    ops = {etype: _operator(etype, raw) for etype, raw in operators.items()}
    fields = dict(message.texts())
    by_path: dict[str, list[Finding]] = {}
    for f in findings:
        if f.path not in fields:
            raise RedactionError(f"a {f.entity_type} finding names field {f.path!r}, which the message does not have")
        if f.end > len(fields[f.path]):
            raise RedactionError(f"a {f.entity_type} finding at {f.path} ends at {f.end}, past the field's "
                                 f"{len(fields[f.path])} characters")
        if f.entity_type in ops:
            by_path.setdefault(f.path, []).append(f)
    chosen = {path: arbitrate(Span(f.entity_type, f.start, f.end, f.score, f.detector, f.validated)
                              for f in field_findings) for path, field_findings in by_path.items()}
    wanted = sorted({(s.entity_type, fields[path][s.start:s.end]) for path, spans in chosen.items() for s in spans
                     if ops[s.entity_type] is Operator.PSEUDONYMIZE})
    pseudonyms = dict(zip(wanted, vault.pseudonyms(message.conversation_id, wanted), strict=True))
    updates: dict[str, str] = {}
    for path, spans in chosen.items():
        text = fields[path]
        edits = [(s.start, s.end, _replacement(vault, s.entity_type, ops[s.entity_type], text[s.start:s.end],
                                               pseudonyms)) for s in spans]
        if path.endswith(".name"):
            # OpenAI's participant name allows no whitespace and none of < | \ / >; the
            # bracket-free form of a placeholder is still recognised by restore.
            edits = [(a, b, r.strip("<>").replace(" ", "_")) for a, b, r in edits]
        if path.endswith(".function.arguments") and text.strip():
            jsonargs.parse_checked(text, path)
            updates[path] = jsonargs.rewrite(text, jsonargs.tokens(text), edits, path)
        else:
            out: list[str] = []
            cursor = 0
            for start, end, replacement in edits:
                out.append(text[cursor:start])
                out.append(replacement)
                cursor = end
            out.append(text[cursor:])
            updates[path] = "".join(out)
    return message.replace_texts(updates)
