"""Checks the gate applies to stage results before trusting them.

A message may leave only if every field it would carry is one the stages read; a
detector's findings must address real fields and spans; a transform must leave
no value it was told to remove anywhere in the message (a second detector miss,
the same value in another turn, a header-like name field). Messages never
contain the value itself: only its entity type and field path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from trustlayer._safe import shown
from trustlayer.types import Finding, Message, Operator

__all__ = ["check_findings", "check_inspectable", "check_transformed"]

# Shorter values are too common as substrings ("Al" in "Also"), so they are looked for as whole words.
_SUBSTRING_FROM = 4


def check_inspectable(message: Message) -> str | None:
    """Why ``message`` may not leave: a turn holds a non-empty field no stage reads (``Turn.uninspected``)."""
    for i, turn in enumerate(message.turns or ()):
        extra = turn.uninspected()
        if extra is not None:
            where, name = extra
            return f"messages[{i}]{where} field {shown(name)} is not understood by the gate, so it may not cross"
    return None


def check_findings(message: Message, findings: Sequence[Finding]) -> str | None:
    """Return why ``findings`` are invalid for ``message``, or ``None`` when they are sound."""
    if not findings:
        return None
    fields = dict(message.texts())
    for f in findings:
        if not isinstance(f, Finding):
            return f"detector returned a {type(f).__name__} among its findings, expected Finding"
        text = fields.get(f.path)
        if text is None:
            return f"a {f.entity_type} finding names field {f.path!r}, which the message does not have"
        if f.end > len(text):
            return (f"a {f.entity_type} finding in {f.path} ends at {f.end}, past the field's end "
                    f"({len(text)} characters)")
    return None


def check_transformed(before: Message, after: Message, findings: Sequence[Finding],
                      operators: Mapping[str, Operator]) -> str | None:
    """Return a reason when a value that had to be removed is still present after the transform."""
    if before.conversation_id != after.conversation_id:
        return "the transform changed the conversation id"
    fields = dict(before.texts())
    leaving = [text for _, text in after.texts()]
    for f in findings:
        if f.entity_type not in operators:
            continue
        value = fields[f.path][f.start:f.end].strip()
        if len(value) >= _SUBSTRING_FROM:
            present = any(value in text for text in leaving)
        elif len(value) >= 2:
            word = re.compile(r"(?<!\w)" + re.escape(value) + r"(?!\w)")
            present = any(word.search(text) for text in leaving)
        else:
            continue
        if present:
            return f"a {f.entity_type} value found in {f.path} is still present after the transform"
    return None
