from __future__ import annotations

from pathlib import Path

import pytest

from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.signer import RecordSigner
from trustlayer.types import Decision, Endpoint, Hop, Operator, Outcome, Route, Verdict

ALICE = Endpoint(id="agent-a", kind="agent", jurisdiction="DE")
BOB = Endpoint(id="agent-b", kind="agent", jurisdiction="FR")
PHONE = Endpoint(id="phone", kind="device", jurisdiction="DE", box="white")
CLOUD = Endpoint(id="gpt", kind="cloud", jurisdiction="US")

# A distinctive value that must never appear in a record.
RAW = "Jorinde Vandersloot, IBAN DE44500105175407324931"
SALT = bytes(range(32))


def agent_hop(content: bytes = RAW.encode(), **kw: object) -> Hop:
    fields: dict[str, object] = {
        "direction": "outbound",
        "route": Route.between(ALICE, BOB),
        "conversation_id": "conv-1",
        "content": content,
        "decision": Decision(id="d-1", outcome=Outcome.TRANSFORM, endpoint="agent-b", rule_ids=("eu-only",),
                             classes=frozenset({"eu_personal", "financial"}),
                             operators={"IBAN_CODE": Operator.PSEUDONYMIZE}, policy_digest="ab" * 32),
        "entity_counts": {"PERSON": 1, "IBAN_CODE": 1},
    }
    fields.update(kw)
    return Hop(**fields)  # type: ignore[arg-type]


def cloud_hop(**kw: object) -> Hop:
    fields: dict[str, object] = {
        "direction": "outbound", "route": Route.between(PHONE, CLOUD), "conversation_id": "conv-2",
        "content": RAW.encode(), "model": "gpt-4o-mini", "entity_counts": {"PERSON": 1},
        "verdict": Verdict(outcome="verified", answer="x", agreement=2 / 3, quorum=2, of=3, measure="f1",
                           agreeing=("gpt", "phone"), dissenting=("other",), evidence={"logprob": -1.25}),
    }
    fields.update(kw)
    return Hop(**fields)  # type: ignore[arg-type]


@pytest.fixture()
def alice_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture()
def keyring(alice_key: SigningKey) -> Keyring:
    ring = Keyring()
    ring.add(alice_key.public, owner=ALICE.id)
    return ring


@pytest.fixture()
def signer(alice_key: SigningKey, tmp_path: Path) -> RecordSigner:
    return RecordSigner(alice_key, salt=SALT, state_path=tmp_path / "alice.seq")
