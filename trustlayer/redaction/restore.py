"""Put original values back in place of a conversation's placeholders, whole or streamed.

Only placeholders the vault issued for *this* conversation are restored; anything
else that looks like one (another conversation's, or typed by a user) is left as
written. The streaming restorer holds back only a tail that could still become a
placeholder (at most :data:`~trustlayer.redaction.placeholders.MAX_LENGTH`
characters), so a placeholder split across SSE chunks is restored and the first
token is not delayed::

    >>> from trustlayer.redaction.vault import Vault
    >>> vault = Vault.open(":memory:", key=bytes(32))
    >>> p = vault.pseudonym("c1", "PERSON", "Grace")
    >>> s = StreamingRestorer(vault, "c1")
    >>> s.feed("Hi " + p[:5]) + s.feed(p[5:] + "!") + s.flush()
    'Hi Grace!'
"""

from __future__ import annotations

import json

from trustlayer.errors import RedactionError
from trustlayer.redaction import jsonargs, placeholders
from trustlayer.redaction.vault import Vault

__all__ = ["StreamingRestorer", "restore_arguments", "restore_text"]


def _substitute(vault: Vault, conversation_id: str, text: str, start: int, end: int,
                prefix: str = "") -> tuple[str, int]:
    """Restore matches in ``(prefix + text)[len(prefix)+start : len(prefix)+end]``.

    ``prefix`` is already-emitted context, so a match is judged exactly as it would be
    in the whole text. Returns the restored piece and how many characters of ``text``
    were consumed.
    """
    full = prefix + text
    offset = len(prefix)
    out: list[str] = []
    cursor = offset + start
    for match in placeholders.PATTERN.finditer(full, offset + start, offset + end):
        canon = placeholders.canonical(match)
        value = vault.lookup(conversation_id, canon)
        if value is None:
            continue
        # Written exactly as issued: replace just that, keeping brackets around it
        # ("<<EMAIL_ADDRESS_x>>" came from "<ada@example.org>"); rewritten: the whole match.
        exact = full.find(canon, match.start(), match.end())
        left, right = (exact, exact + len(canon)) if exact >= 0 else match.span()
        out.append(full[cursor:left])
        out.append(value)
        cursor = right
    out.append(full[cursor:offset + end])
    return "".join(out), end


def restore_text(vault: Vault, conversation_id: str, text: str) -> str:
    """``text`` with this conversation's placeholders replaced by their values."""
    if not text:
        return text
    return _substitute(vault, conversation_id, text, 0, len(text))[0]


def restore_arguments(vault: Vault, conversation_id: str, raw: str) -> str:
    """Restore inside tool-call arguments: JSON strings are restored and re-encoded (stays valid JSON)."""
    try:
        json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return restore_text(vault, conversation_id, raw)
    toks = jsonargs.tokens(raw)
    out: list[str] = []
    cursor = 0
    for tok in toks:
        if not tok.is_string:
            continue
        restored = restore_text(vault, conversation_id, tok.text)
        if restored != tok.text:
            out.append(raw[cursor:tok.raw_start])
            out.append(json.dumps(restored, ensure_ascii=False))
            cursor = tok.raw_end
    out.append(raw[cursor:])
    return "".join(out)


class StreamingRestorer:
    """Restores one streamed response of a conversation, chunk by chunk (``StreamRestorer``)."""

    def __init__(self, vault: Vault, conversation_id: str) -> None:
        self._vault = vault
        self._conversation_id = conversation_id
        self._buffer = ""
        self._context = ""  # the last emitted characters, for the pattern's look-behind
        self._closed = False

    def _hold_from(self) -> int:
        """Index in the buffer from which text must be held back."""
        buf = self._buffer
        n = len(buf)
        hold = n
        # A complete match touching the end may still grow (a closing bracket, more hex), also
        # across the one space or tab the pattern allows before a closing bracket.
        full = self._context + buf
        for match in placeholders.PATTERN.finditer(full, len(self._context)):
            tail = full[match.end():]
            if not tail or tail in (" ", "\t") and full[match.end() - 1] not in ">]}":
                hold = min(hold, match.start() - len(self._context))
        for i in range(max(0, n - placeholders.MAX_LENGTH), n):
            ch = buf[i]
            before = buf[i - 1] if i > 0 else self._context[-1:]
            # The pattern's look-behind is ASCII: a placeholder can follow "你好" or "café" directly.
            boundary = not (before.isascii() and before.isalnum())
            if (ch in "<[{" or ch.isalpha() and boundary) and placeholders.could_start(buf[i:]):
                hold = min(hold, i)
                break
        return max(hold, 0)

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the text that is safe to emit now."""
        if self._closed:
            raise RedactionError("stream restorer was already flushed")
        self._buffer += chunk
        hold = self._hold_from()
        if hold == 0:
            return ""
        out, _ = _substitute(self._vault, self._conversation_id, self._buffer, 0, hold, self._context)
        self._context = (self._context + self._buffer[:hold])[-placeholders.MAX_LENGTH:]
        self._buffer = self._buffer[hold:]
        return out

    def flush(self) -> str:
        """Return whatever was held back, restored, at the end of the stream."""
        self._closed = True
        out, _ = _substitute(self._vault, self._conversation_id, self._buffer, 0, len(self._buffer), self._context)
        self._buffer = ""
        return out

