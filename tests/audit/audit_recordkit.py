"""Signed hop records for audit tests, built by trustlayer.provenance with real Ed25519 keys.

``RecordSigner.envelope`` builds the same in-toto statement as the gate's signer
(``trustlayer.provenance.records.build_statement``) but lets a test choose the sequence
number, which tamper tests need (replays, forged inserts) and crash tests use to resume.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

from trustlayer.provenance import _json
from trustlayer.provenance.dsse import sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.records import build_statement
from trustlayer.types import Decision, Endpoint, Hop, Kind, Outcome, Route

SALT = b"audit-tests-salt-0123456789abcdef"
_ENDPOINTS: dict[str, Endpoint] = {}


def endpoint(name: str) -> Endpoint:
    if name not in _ENDPOINTS:
        kind = Kind.CLOUD if name.startswith(("cloud", "gpt")) else Kind.DEVICE
        _ENDPOINTS[name] = Endpoint(id=name, kind=kind, jurisdiction="DE")
    return _ENDPOINTS[name]


class RecordSigner:
    """Signs hop records with one key and a thread-safe per-key sequence counter (from ``start``)."""

    def __init__(self, key: SigningKey | None = None, *, endpoint: str = "phone", start: int = 1) -> None:
        self.key = key or SigningKey.generate()
        self.endpoint = endpoint
        self._seq = itertools.count(max(start, 1))
        self._lock = threading.Lock()

    def next_sequence(self) -> int:
        with self._lock:
            return next(self._seq)

    def hop(self, *, conversation: str = "conv-1", recipient: str = "cloud", direction: str = "outbound",
            outcome: str = "allow", rule_ids: tuple[str, ...] = (), entity_counts: dict[str, int] | None = None,
            parents: tuple[str, ...] = ()) -> Hop:
        route = Route.between(endpoint(self.endpoint), endpoint(recipient))
        decision = None
        if direction != "block":
            ops = {"EMAIL_ADDRESS": "pseudonymize"} if outcome == "transform" else {}
            decision = Decision(id=f"d-{os.urandom(4).hex()}", outcome=Outcome(outcome), endpoint=recipient,
                                rule_ids=rule_ids, operators=ops)
        return Hop(direction=direction, route=route, conversation_id=conversation, content=os.urandom(24),
                   decision=decision, entity_counts=entity_counts or {}, parents=parents,
                   stage="decide" if direction == "block" else None,
                   reason="policy blocks this route" if direction == "block" else None)

    def envelope(self, *, sequence: int | None = None, when_ms: int | None = None, **hop_fields: object) -> bytes:
        seq = self.next_sequence() if sequence is None else sequence
        statement = build_statement(self.hop(**hop_fields), salt=SALT, key_id=self.key.key_id,  # type: ignore[arg-type]
                                    sequence=seq, nonce=os.urandom(16).hex(),
                                    time=int(time.time() * 1000) if when_ms is None else when_ms)
        return sign_envelope(_json.dumps(statement), _json.STATEMENT_MEDIA_TYPE, self.key)


def keyring(*signers: RecordSigner) -> Keyring:
    ring = Keyring()
    for s in signers:
        ring.add(s.key.public, owner=s.endpoint)
    return ring
