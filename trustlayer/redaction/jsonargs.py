"""Tool-call arguments: find the JSON string and number tokens, map offsets, rewrite values.

Detection reads a tool call's ``arguments`` as lines of ``key: value`` so that a value
keeps the context of its key (``"password": "..."``); findings are reported with
offsets into the JSON string as given. Rewriting replaces inside the decoded value
and re-encodes it, so the result is always valid JSON. Keys are scanned and
rewritten like values (a key can be an e-mail address); a number that holds
personal data (a card number written as a JSON number) becomes a JSON string.

    >>> toks = tokens('{"to": "a@b.io", "n": 4}')
    >>> [(t.text, t.is_key) for t in toks]
    [('to', True), ('a@b.io', False), ('n', True), ('4', False)]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from trustlayer.errors import RedactionError

__all__ = ["MAX_DEPTH", "Token", "parse_checked", "render", "rewrite", "tokens"]

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in tool-call arguments."""


@dataclass(frozen=True, slots=True)
class Token:
    """A string or number token of a JSON text.

    ``raw_start``/``raw_end`` delimit the token in the JSON text (quotes included for
    strings); ``offsets[i]`` is the raw index of decoded character ``i`` and
    ``offsets[len(text)]`` the raw index just after the last one.
    """

    raw_start: int
    raw_end: int
    text: str
    offsets: tuple[int, ...]
    is_key: bool
    is_string: bool


def parse_checked(raw: str, where: str) -> object:
    """Parse ``raw`` as JSON, rejecting invalid text and nesting deeper than :data:`MAX_DEPTH`."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise RedactionError(f"{where}: tool-call arguments nest {deepest} levels deep; at most {MAX_DEPTH} "
                             "are accepted")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = f"line {exc.lineno} column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else ""
        raise RedactionError(f"{where}: tool-call arguments are not valid JSON ({detail})") from None


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _decode(raw: str, start: int, end: int) -> tuple[str, tuple[int, ...]]:
    """Decode the JSON string token ``raw[start:end]`` (quotes included), with offsets (RFC 8259 7)."""
    chars: list[str] = []
    offsets: list[int] = []
    i = start + 1
    stop = end - 1
    while i < stop:
        ch = raw[i]
        if ch != "\\":
            chars.append(ch)
            offsets.append(i)
            i += 1
            continue
        kind = raw[i + 1]
        if kind != "u":
            chars.append(_ESCAPES[kind])
            offsets.append(i)
            i += 2
            continue
        code = int(raw[i + 2:i + 6], 16)
        width = 6
        # RFC 8259 7: a character outside the BMP is a UTF-16 surrogate pair of escapes.
        if 0xD800 <= code < 0xDC00 and raw[i + 6:i + 8] == "\\u":
            low = int(raw[i + 8:i + 12], 16)
            if 0xDC00 <= low < 0xE000:
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                width = 12
        chars.append(chr(code))
        offsets.append(i)
        i += width
    offsets.append(stop)
    return "".join(chars), tuple(offsets)


def tokens(raw: str) -> list[Token]:
    """The string and number tokens of the valid JSON text ``raw``, in order."""
    found: list[Token] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == '"':
            j = i + 1
            while raw[j] != '"':
                j += 2 if raw[j] == "\\" else 1
            end = j + 1
            text, offsets = _decode(raw, i, end)
            k = end
            while k < n and raw[k] in " \t\r\n":
                k += 1
            found.append(Token(i, end, text, offsets, k < n and raw[k] == ":", True))
            i = end
        elif ch == "-" or ch.isdigit():
            j = i
            while j < n and raw[j] in "+-0123456789.eE":
                j += 1
            found.append(Token(i, j, raw[i:j], tuple(range(i, j + 1)), False, False))
            i = j
        else:
            i += 1
    return found


def render(toks: Sequence[Token]) -> tuple[str, list[int]]:
    """The tokens as ``key: value`` lines, and where each token's text starts in that rendering."""
    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    for tok in toks:
        starts.append(pos)
        sep = ": " if tok.is_key else "\n"
        parts.append(tok.text + sep)
        pos += len(tok.text) + len(sep)
    return "".join(parts), starts


def rewrite(raw: str, toks: Sequence[Token], edits: Sequence[tuple[int, int, str]], where: str) -> str:
    """Apply ``(raw_start, raw_end, replacement)`` edits inside tokens and re-encode them as JSON.

    Each edit must lie within one token's decoded text; the result is checked to be valid JSON.
    """
    by_token: dict[int, list[tuple[int, int, str]]] = {}
    for start, end, replacement in edits:
        for idx, tok in enumerate(toks):
            if tok.raw_start <= start and end <= tok.raw_end:
                inverse = {raw_i: d for d, raw_i in enumerate(tok.offsets)}
                if start not in inverse or end not in inverse:
                    raise RedactionError(f"{where}: a finding does not align with the JSON string it is in")
                by_token.setdefault(idx, []).append((inverse[start], inverse[end], replacement))
                break
        else:
            raise RedactionError(f"{where}: a finding lies outside every JSON string and number")
    out: list[str] = []
    cursor = 0
    for idx in sorted(by_token):
        tok = toks[idx]
        text = tok.text
        for d_start, d_end, replacement in sorted(by_token[idx], reverse=True):
            text = text[:d_start] + replacement + text[d_end:]
        out.append(raw[cursor:tok.raw_start])
        out.append(json.dumps(text, ensure_ascii=False))
        cursor = tok.raw_end
    out.append(raw[cursor:])
    result = "".join(out)
    try:
        json.loads(result)
    except json.JSONDecodeError as exc:
        raise RedactionError(f"{where}: rewritten tool-call arguments are not valid JSON") from exc
    return result
