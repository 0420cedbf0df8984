"""Signed hop records for audit tests: in-toto Statements in DSSE envelopes, real Ed25519 keys.

Until ``trustlayer.provenance.records`` lands, records are built here with the fields of
DESIGN.md (conversation id, per-key sequence, nonce, route, decision, counts, parents).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
import time

from trustlayer.provenance.dsse import sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://trustlayer.dev/provenance/hop/v1"


class RecordSigner:
    """Signs hop records with one key and a thread-safe per-key sequence counter."""

    def __init__(self, key: SigningKey | None = None, *, endpoint: str = "phone", start: int = 0) -> None:
        self.key = key or SigningKey.generate()
        self.endpoint = endpoint
        self._seq = itertools.count(start)
        self._lock = threading.Lock()

    def next_sequence(self) -> int:
        with self._lock:
            return next(self._seq)

    def envelope(self, *, conversation: str = "conv-1", recipient: str = "cloud", direction: str = "outbound",
                 outcome: str = "allow", rule_ids: tuple[str, ...] = (), entity_counts: dict[str, int] | None = None,
                 parents: tuple[str, ...] = (), sequence: int | None = None, when: int | None = None) -> bytes:
        seq = self.next_sequence() if sequence is None else sequence
        content = f"{conversation}:{seq}".encode()
        statement = {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": "content", "digest": {"sha256": hashlib.sha256(content).hexdigest()}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "conversation_id": conversation,
                "key_id": self.key.key_id,
                "sequence": seq,
                "nonce": secrets.token_hex(16),
                "direction": direction,
                "route": {"sender": self.endpoint, "recipient": recipient, "channel": "device_cloud"},
                "decision": {"outcome": outcome, "rule_ids": list(rule_ids)},
                "entity_counts": entity_counts or {},
                "parents": list(parents),
                "time": int(time.time()) if when is None else when,
            },
        }
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        return sign_envelope(payload, PAYLOAD_TYPE, self.key)


def keyring(*signers: RecordSigner) -> Keyring:
    ring = Keyring()
    for s in signers:
        ring.add(s.key.public, owner=s.endpoint)
    return ring
