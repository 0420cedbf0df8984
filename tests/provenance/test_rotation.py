import json

import pytest

from trustlayer.errors import SignatureError
from trustlayer.provenance import _json
from trustlayer.provenance.dsse import parse_envelope, sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.records import Record
from trustlayer.provenance.rotation import ROTATION_PREDICATE, announce_rotation, verify_rotation
from trustlayer.provenance.signer import RecordSigner

from .conftest import SALT, agent_hop


def test_rotation_is_accepted_from_a_trusted_old_key(alice_key: SigningKey, keyring: Keyring) -> None:
    new = SigningKey.generate()
    assert new.key_id not in keyring
    accepted = keyring.accept_rotation(announce_rotation(alice_key, new))
    assert accepted.key_id == new.key_id
    assert keyring.owner_of(new.key_id) == "agent-a"  # inherited from the keyring, not the payload
    assert keyring.keys_of("agent-a") == (alice_key.public, new.public)
    # records signed with the new key now verify, and so do old ones
    fresh = RecordSigner(new, salt=SALT, state_path=None).sign(agent_hop())
    assert Record.from_envelope(fresh.envelope, keyring).key_id == new.key_id


def test_rotation_from_an_untrusted_key_is_refused(keyring: Keyring) -> None:
    stranger, new = SigningKey.generate(), SigningKey.generate()
    with pytest.raises(SignatureError, match="unknown key"):
        keyring.accept_rotation(announce_rotation(stranger, new))
    assert new.key_id not in keyring


def test_rotation_needs_proof_of_possession_of_the_new_key(alice_key: SigningKey, keyring: Keyring) -> None:
    new = SigningKey.generate()
    env = parse_envelope(announce_rotation(alice_key, new))
    # the same statement signed by the old key only: someone announcing a key they do not hold
    only_old = sign_envelope(env.payload, env.payload_type, alice_key)
    with pytest.raises(SignatureError, match="lacks a valid signature by the new key"):
        verify_rotation(only_old, keyring)


def test_rotation_with_mismatched_key_id(alice_key: SigningKey, keyring: Keyring) -> None:
    new, other = SigningKey.generate(), SigningKey.generate()
    doc = json.loads(parse_envelope(announce_rotation(alice_key, new)).payload)
    doc["predicate"]["new_key_id"] = other.key_id
    forged = sign_envelope(_json.dumps(doc), _json.STATEMENT_MEDIA_TYPE, alice_key, cosigners=(new,))
    with pytest.raises(SignatureError, match="does not match the key id of new_public_key"):
        verify_rotation(forged, keyring)


def test_rotation_signed_by_a_key_other_than_the_named_old_key(alice_key: SigningKey, keyring: Keyring) -> None:
    bob, new = SigningKey.generate(), SigningKey.generate()
    keyring.add(bob.public, owner="agent-b")
    doc = json.loads(parse_envelope(announce_rotation(alice_key, new)).payload)
    # bob (trusted, but for agent-b) signs a rotation of alice's key
    forged = sign_envelope(_json.dumps(doc), _json.STATEMENT_MEDIA_TYPE, bob, cosigners=(new,))
    with pytest.raises(SignatureError, match="names old key .* but is signed by"):
        verify_rotation(forged, keyring)


def test_a_hop_record_is_not_a_rotation(signer: RecordSigner, keyring: Keyring) -> None:
    with pytest.raises(SignatureError, match="not a key rotation record"):
        verify_rotation(signer.sign(agent_hop()).envelope, keyring)


def test_rotation_statement_shape(alice_key: SigningKey) -> None:
    new = SigningKey.generate()
    env = parse_envelope(announce_rotation(alice_key, new, reason="device replaced"))
    doc = json.loads(env.payload)
    assert doc["predicateType"] == ROTATION_PREDICATE
    assert doc["subject"] == [{"name": f"key:{new.key_id}", "digest": {"sha256": new.key_id}}]
    assert doc["predicate"]["new_public_key"] == new.public.to_base64()
    assert [k for k, _ in env.signatures] == [alice_key.key_id, new.key_id]


def test_cannot_rotate_to_itself(alice_key: SigningKey) -> None:
    with pytest.raises(SignatureError, match="rotated to itself"):
        announce_rotation(alice_key, alice_key)
