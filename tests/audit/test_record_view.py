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


def test_a_signed_payload_that_is_not_an_in_toto_statement_is_rejected(signer: RecordSigner) -> None:
    env = sign_envelope(b'{"predicateType": "https://example.com/other"}', _json.STATEMENT_MEDIA_TYPE, signer.key)
    with pytest.raises(SignatureError, match="not an in-toto statement"):
        record_identity(env, keyring(signer))
    with pytest.raises(SignatureError, match="unexpected payload type"):
        record_identity(sign_envelope(b"{}", "text/plain", signer.key), keyring(signer))


def _other_statement(signer: RecordSigner, **predicate: object) -> bytes:
    statement = {"_type": _json.STATEMENT_TYPE, "subject": [{"name": "weights", "digest": {"sha256": "ab" * 32}}],
                 "predicateType": "https://trustlayer.dev/router-training/v1", "predicate": predicate}
    return sign_envelope(_json.dumps(statement), _json.STATEMENT_MEDIA_TYPE, signer.key)


def test_other_trustlayer_statements_are_read_by_their_identity(signer: RecordSigner) -> None:
    ring = keyring(signer)
    env = _other_statement(signer, event="router-training", conversation_id="router-training-ab12",
                           key_id=signer.key.key_id, sequence=7, nonce="00" * 16, time=1_767_225_600_000)
    assert record_identity(env, ring) == (signer.key.key_id, 7)
    view = read_record(env, ring)
    assert (view.direction, view.conversation_id, view.sender, view.sequence, view.time) == (
        "router-training", "router-training-ab12", "phone", 7, 1_767_225_600_000)
    assert view.predicate_type == "https://trustlayer.dev/router-training/v1"
    missing = _other_statement(signer, event="router-training", key_id=signer.key.key_id)
    with pytest.raises(SignatureError, match="predicate has a key_id and a sequence"):
        record_identity(missing, ring)


def test_kind_of_a_predicate_type_without_a_path_is_the_value_itself() -> None:
    from trustlayer.audit.record_view import _kind_of

    assert _kind_of("https://trustlayer.dev/rotation/v1") == "rotation"
    assert _kind_of("foo") == "foo"       # raised IndexError and stopped indexing the whole log
    assert _kind_of("") == "-"
