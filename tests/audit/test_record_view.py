"""Reading hop records for the log: verify first, then the fields; the fast identity path agrees."""

from __future__ import annotations

import base64
import json

import pytest
from audit_recordkit import RecordSigner, keyring

from trustlayer.audit.record_view import read_record, record_identity
from trustlayer.errors import SignatureError
from trustlayer.provenance import _json
from trustlayer.provenance.dsse import sign_envelope


def test_identity_matches_the_full_record(signer: RecordSigner) -> None:
    ring = keyring(signer)
    env = signer.envelope(conversation="c", entity_counts={"PERSON": 2}, rule_ids=("r1",), outcome="transform")
    view = read_record(env, ring)
    assert record_identity(env, ring) == (view.key_id, view.sequence) == (signer.key.key_id, 1)
    assert (view.conversation_id, view.entity_types, view.rule_ids, view.outcome) == ("c", ("PERSON",), ("r1",),
                                                                                      "transform")


def test_a_record_naming_another_key_is_rejected(signer: RecordSigner) -> None:
    other = RecordSigner(endpoint="other")
    ring = keyring(signer, other)
    statement = json.loads(base64.b64decode(json.loads(other.envelope())["payload"]))
    # Signed by `signer`, but the record claims to be by `other` (a borrowed sequence space).
    env = sign_envelope(_json.dumps(statement), _json.STATEMENT_MEDIA_TYPE, signer.key)
    with pytest.raises(SignatureError, match="names key .* but is signed by key"):
        record_identity(env, ring)
    with pytest.raises(SignatureError, match="names key .* but is signed by key"):
        read_record(env, ring)


def test_a_signed_payload_that_is_not_a_hop_record_is_rejected(signer: RecordSigner) -> None:
    env = sign_envelope(b'{"predicateType": "https://example.com/other"}', _json.STATEMENT_MEDIA_TYPE, signer.key)
    with pytest.raises(SignatureError, match="not a hop record"):
        record_identity(env, keyring(signer))
    with pytest.raises(SignatureError, match="unexpected payload type"):
        record_identity(sign_envelope(b"{}", "text/plain", signer.key), keyring(signer))
