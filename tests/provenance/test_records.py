import base64
import dataclasses
import hashlib
import json

import pytest

from trustlayer.errors import SignatureError
from trustlayer.provenance import _json
from trustlayer.provenance.dsse import sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.records import HOP_PREDICATE, Record, build_statement, transmitted_digest
from trustlayer.provenance.signer import RecordSigner

from .conftest import RAW, SALT, agent_hop, cloud_hop


def payload_of(envelope: bytes) -> dict[str, object]:
    return json.loads(base64.b64decode(json.loads(envelope)["payload"]))


def test_statement_shape(signer: RecordSigner, keyring: Keyring, alice_key: SigningKey) -> None:
    hop = agent_hop(parents=("cd" * 32,))
    signed = signer.sign(hop)
    assert signed.digest == hashlib.sha256(signed.envelope).hexdigest()
    doc = payload_of(signed.envelope)
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == HOP_PREDICATE
    assert doc["subject"] == [
        {"name": "content", "digest": {"sha256": hashlib.sha256(SALT + hop.content).hexdigest()}},
        {"name": "transmitted", "digest": {"sha256": transmitted_digest(doc["predicate"]["nonce"], hop.content)}},
    ]
    record = Record.from_envelope(signed.envelope, keyring)
    p = record.predicate
    assert (p.direction, p.route.sender, p.route.recipient, p.route.channel) == (
        "outbound", "agent-a", "agent-b", "agent_agent")
    assert p.decision is not None and p.decision.classes == ("eu_personal", "financial")
    assert p.decision.operators == {"IBAN_CODE": "pseudonymize"}
    assert p.entity_counts == {"IBAN_CODE": 1, "PERSON": 1}
    assert p.parents == ("cd" * 32,)
    assert (p.conversation_id, p.key_id, p.sequence) == ("conv-1", alice_key.key_id, 1)
    assert record.digest == signed.digest and record.owner == "agent-a"


def test_no_raw_content_in_the_envelope(signer: RecordSigner) -> None:
    for hop in (agent_hop(), cloud_hop(), agent_hop(direction="block", stage="decide", reason="policy refused")):
        envelope = signer.sign(hop).envelope
        decoded = base64.b64decode(json.loads(envelope)["payload"])
        for blob in (envelope, decoded):
            assert b"Vandersloot" not in blob
            assert b"DE44500105175407324931" not in blob
            assert RAW.encode() not in blob
        # nor an unsalted digest of it (that would let a reader confirm a guess)
        assert hashlib.sha256(RAW.encode()).hexdigest().encode() not in decoded


def test_no_floats_in_signed_json(signer: RecordSigner, keyring: Keyring) -> None:
    signed = signer.sign(cloud_hop())
    decoded = base64.b64decode(json.loads(signed.envelope)["payload"])
    json.loads(decoded, parse_float=lambda s: pytest.fail(f"float {s} in signed JSON"))
    record = Record.from_envelope(signed.envelope, keyring)
    assert record.predicate.verdict is not None
    assert record.predicate.verdict.agreement_permille == 667
    assert b"logprob" not in decoded  # float evidence is left out
    assert "transmitted" not in [s.name for s in record.statement.subject]  # not an agent hop


def test_dumps_refuses_floats_and_names_the_path() -> None:
    with pytest.raises(SignatureError, match=r"floats; found one at \$\.predicate\.score"):
        _json.dumps({"predicate": {"score": 0.5}})
    with pytest.raises(SignatureError, match="floats"):
        _json.loads(b'{"a": 1.0}')
    with pytest.raises(SignatureError, match="NaN"):
        _json.loads(b'{"a": NaN}')


def test_block_record(signer: RecordSigner, keyring: Keyring) -> None:
    signed = signer.sign(agent_hop(direction="block", stage="decide", reason="rule eu-only refused"))
    record = Record.from_envelope(signed.envelope, keyring)
    assert record.predicate.block is not None
    assert (record.predicate.block.stage, record.predicate.block.reason) == ("decide", "rule eu-only refused")
    assert record.statement.subject_digest("transmitted") is None  # nothing crossed


def _sign_doc(doc: dict[str, object], key: SigningKey) -> bytes:
    return sign_envelope(_json.dumps(doc), _json.STATEMENT_MEDIA_TYPE, key)


def _valid_doc(key: SigningKey) -> dict[str, object]:
    return build_statement(agent_hop(), salt=SALT, key_id=key.key_id, sequence=3, nonce="0f" * 16,
                           time=1_767_323_045_678)


def test_valid_by_construction_rejects_schema_violations(alice_key: SigningKey, keyring: Keyring) -> None:
    assert Record.from_envelope(_sign_doc(_valid_doc(alice_key), alice_key), keyring).predicate.sequence == 3

    def broken(**changes: object) -> bytes:
        doc = _valid_doc(alice_key)
        pred = dict(doc["predicate"])  # type: ignore[call-overload]
        pred.update(changes)
        doc["predicate"] = pred
        return _sign_doc(doc, alice_key)

    cases = {
        "predicate.sequence": broken(sequence="3"),
        "predicate.nonce": broken(nonce="short"),
        "predicate.time": broken(time="yesterday"),
        "predicate.conversation_id": broken(conversation_id=""),
        "predicate.parents": broken(parents=["not-a-digest"]),
        "predicate.surprise": broken(surprise=1),
        "predicate": broken(block={"stage": "x", "reason": "y"}),
        "predicate.route.channel": broken(route={"sender": "a", "recipient": "b", "channel": "carrier_pigeon"}),
    }
    for where, envelope in cases.items():
        with pytest.raises(SignatureError, match=f"invalid at {where}"):
            Record.from_envelope(envelope, keyring)


def test_validation_errors_do_not_echo_values(alice_key: SigningKey, keyring: Keyring) -> None:
    doc = _valid_doc(alice_key)
    doc["predicate"]["conversation_id"] = 12345  # type: ignore[index]
    doc["predicate"]["model"] = RAW  # type: ignore[index]
    doc["predicate"]["sequence"] = RAW  # type: ignore[index]
    with pytest.raises(SignatureError) as info:
        Record.from_envelope(_sign_doc(doc, alice_key), keyring)
    assert "Vandersloot" not in str(info.value)


def test_record_must_name_its_signing_key(alice_key: SigningKey, keyring: Keyring) -> None:
    doc = _valid_doc(alice_key)
    doc["predicate"]["key_id"] = "ab" * 32  # type: ignore[index]
    with pytest.raises(SignatureError, match="record names key abababababababab but is signed by"):
        Record.from_envelope(_sign_doc(doc, alice_key), keyring)


def test_not_a_hop_record(alice_key: SigningKey, keyring: Keyring) -> None:
    doc = _valid_doc(alice_key)
    doc["predicateType"] = "https://slsa.dev/provenance/v1"
    with pytest.raises(SignatureError, match="not a hop record"):
        Record.from_envelope(_sign_doc(doc, alice_key), keyring)


def test_record_is_verified_before_parsing(alice_key: SigningKey, keyring: Keyring) -> None:
    # garbage payload with a bad signature: the error is about the signature, not the JSON
    envelope = json.dumps({"payload": base64.b64encode(b"{not json").decode(),
                           "payloadType": _json.STATEMENT_MEDIA_TYPE,
                           "signatures": [{"keyid": alice_key.key_id,
                                           "sig": base64.b64encode(b"\0" * 64).decode()}]},
                          separators=(",", ":")).encode()
    with pytest.raises(SignatureError, match="bad signature"):
        Record.from_envelope(envelope, keyring)


def test_a_float_smuggled_past_validation_is_refused(signer: RecordSigner) -> None:
    hop = agent_hop()
    smuggled = dataclasses.replace(hop, entity_counts={"PERSON": 1.5})
    with pytest.raises(SignatureError, match="not an integer"):
        signer.sign(smuggled)
