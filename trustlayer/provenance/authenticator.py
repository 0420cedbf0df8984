"""Agent-to-agent authentication: check a peer's signed record before its content is used.

    >>> from trustlayer.provenance.authenticator import RecordAuthenticator
    >>> auth = RecordAuthenticator(keyring, audience="agent-b", replay=ReplayGuard(path))  # doctest: +SKIP
    >>> peer = auth.authenticate(envelope, audience="agent-b", content=body)              # doctest: +SKIP
    >>> peer.classes        # the data classes the sender's decision carried (sticky taint)

Checks, in this order, each failure a ``SignatureError`` whose message starts with the reason:

1. ``bad envelope`` / ``unknown key`` / ``bad signature`` — DSSE verification with the
   keyring, before the payload is parsed (``dsse.open_envelope``);
2. ``bad record`` — the verified payload is not a hop record;
3. ``wrong sender`` — the signing key is not a key of the endpoint the record names as sender;
4. ``wrong direction`` — only ``outbound`` records from the peer authenticate a message;
5. ``wrong audience`` — the record's recipient is not the audience we were asked about, or
   that audience is not one this authenticator serves;
6. ``stale time`` / ``future time`` — the signed time is outside ``window_seconds`` of now;
7. ``content mismatch`` — the record's ``transmitted`` digest (SHA-256 of nonce || content,
   see ``records``) differs from the digest of the content received, or is missing;
8. ``replayed nonce`` / ``reused sequence`` — the (key, nonce) or (key, sequence) pair was
   accepted before (``replay.ReplayGuard``, persisted in SQLite).

The nonce is remembered only when every other check passed, so a rejected message does
not burn the nonce of a genuine one.

``content`` must be the bytes the sender signed as ``Hop.content``: the canonical bytes
(``Message.canonical_bytes()``) of the message as it crossed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from trustlayer.errors import SignatureError
from trustlayer.provenance import _json
from trustlayer.provenance.dsse import open_envelope
from trustlayer.provenance.keys import Keyring
from trustlayer.provenance.records import Record, transmitted_digest
from trustlayer.provenance.replay import ReplayGuard
from trustlayer.stages import PeerRecord

__all__ = ["RecordAuthenticator"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RecordAuthenticator:
    """Implements the ``Authenticator`` stage for messages between ``@agent``s.

    ``audience`` is the endpoint id (or ids) this process receives for; a call naming any
    other audience is refused. ``window_seconds`` bounds the clock difference accepted in
    either direction.
    """

    keeps_deadline = True
    """``authenticate`` waits only in the replay guard (its lock, the database's write lock), and no longer
    than the gate stage's deadline (``trustlayer.deadline``); verifying signatures is compute."""

    def __init__(self, keyring: Keyring, *, audience: str | Collection[str], window_seconds: int = 300,
                 replay: ReplayGuard, clock: Callable[[], datetime] = _utcnow) -> None:
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds}")
        self.keyring = keyring
        self.audiences = frozenset({audience} if isinstance(audience, str) else audience)
        if not self.audiences:
            raise ValueError("an authenticator needs at least one audience")
        self.window = timedelta(seconds=window_seconds)
        self.replay = replay
        self._clock = clock

    def authenticate(self, envelope: bytes, *, audience: str, content: bytes) -> PeerRecord:
        """Verify the peer's record for ``content`` sent to ``audience``; ``SignatureError`` if not."""
        verified = open_envelope(envelope, self.keyring, payload_type=_json.STATEMENT_MEDIA_TYPE)
        try:
            record = Record.from_verified(envelope, verified)
        except SignatureError as exc:
            raise SignatureError(f"bad record: {exc}") from exc
        pred = record.predicate
        sender = pred.route.sender
        if record.owner != sender:
            raise SignatureError(f"wrong sender: the record claims sender {sender!r} but key "
                                 f"{record.key_id[:16]} belongs to {record.owner!r}")
        if pred.direction != "outbound":
            raise SignatureError(f"wrong direction: a peer message needs an 'outbound' record, "
                                 f"got {pred.direction!r}")
        if audience not in self.audiences:
            raise SignatureError(f"wrong audience: {audience!r} is not served here "
                                 f"(serving: {', '.join(sorted(self.audiences))})")
        if pred.route.recipient != audience:
            raise SignatureError(f"wrong audience: the record is addressed to {pred.route.recipient!r}, "
                                 f"not {audience!r}")
        now = self._clock()
        signed_at = record.time
        if signed_at < now - self.window:
            raise SignatureError(f"stale time: the record was signed {int((now - signed_at).total_seconds())} s "
                                 f"ago, beyond the {int(self.window.total_seconds())} s window")
        if signed_at > now + self.window:
            raise SignatureError(f"future time: the record is dated {int((signed_at - now).total_seconds())} s "
                                 f"ahead, beyond the {int(self.window.total_seconds())} s window")
        expected = record.statement.subject_digest("transmitted")
        if expected is None:
            raise SignatureError("content mismatch: the record carries no 'transmitted' digest to check the "
                                 "content against")
        if not hmac.compare_digest(expected, transmitted_digest(pred.nonce, content)):
            raise SignatureError("content mismatch: the content received is not the content the sender signed")
        expires = int((signed_at + self.window).timestamp()) + 1
        self.replay.remember(record.key_id, pred.nonce, pred.sequence, expires=expires)
        classes = frozenset(pred.decision.classes) if pred.decision else frozenset()
        return PeerRecord(sender=sender, key_id=record.key_id, conversation_id=pred.conversation_id,
                          digest=record.digest, sequence=pred.sequence, classes=classes)
