import base64
import json

import pytest

from trustlayer.errors import SignatureError
from trustlayer.provenance.dsse import open_envelope, pae, parse_envelope, sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey

TYPE = "application/vnd.in-toto+json"


@pytest.fixture()
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture()
def ring(key: SigningKey) -> Keyring:
    ring = Keyring()
    ring.add(key.public, owner="me")
    return ring


def test_pae_matches_the_spec_test_vector() -> None:
    # secure-systems-lab/dsse protocol.md "Test Vectors"
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_pae_counts_utf8_bytes_not_characters() -> None:
    assert pae("t\u00e9", b"x").startswith(b"DSSEv1 3 t\xc3\xa9 1 x")


def test_round_trip(key: SigningKey, ring: Keyring) -> None:
    env = sign_envelope(b'{"a":1}', TYPE, key)
    doc = json.loads(env)
    assert doc["payloadType"] == TYPE
    assert base64.b64decode(doc["payload"]) == b'{"a":1}'
    assert doc["signatures"][0]["keyid"] == key.key_id
    v = open_envelope(env, ring)
    assert (v.payload, v.payload_type, v.key_id, v.owner) == (b'{"a":1}', TYPE, key.key_id, "me")


def test_signature_covers_pae_of_type_and_payload(key: SigningKey) -> None:
    env = json.loads(sign_envelope(b"body", TYPE, key))
    sig = base64.b64decode(env["signatures"][0]["sig"])
    key.public.verify(sig, pae(TYPE, b"body"))


def test_every_single_byte_change_is_rejected(key: SigningKey, ring: Keyring) -> None:
    env = sign_envelope(b'{"predicate":{"n":42}}', TYPE, key)
    for i in range(len(env)):
        for delta in (1, 0x20):
            tampered = bytearray(env)
            tampered[i] ^= delta
            with pytest.raises(SignatureError):
                open_envelope(bytes(tampered), ring)


def test_unknown_key(key: SigningKey) -> None:
    env = sign_envelope(b"x", TYPE, key)
    other = Keyring()
    other.add(SigningKey.generate().public, owner="someone")
    with pytest.raises(SignatureError, match="unknown key"):
        open_envelope(env, other)


def test_bad_signature_from_a_trusted_keyid(key: SigningKey, ring: Keyring) -> None:
    forger = SigningKey.generate()
    doc = json.loads(sign_envelope(b"x", TYPE, forger))
    doc["signatures"][0]["keyid"] = key.key_id
    forged = json.dumps(doc, separators=(",", ":")).encode()
    with pytest.raises(SignatureError, match="bad signature"):
        open_envelope(forged, ring)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"payloadType":"t","signatures":[]}', "'payload' is missing"),
        (b'{"payload":"","payloadType":"t","signatures":[]}', "non-empty list"),
        (b'{"payload":"!!","payloadType":"t","signatures":[{"sig":"AA=="}]}', "payload is not valid base64"),
        (b'{"payload":"","payload":"","payloadType":"t","signatures":[]}', "'payload' appears twice"),
        (b'{"payload":"","payloadType":"","signatures":[{"sig":""}]}', "payloadType must be"),
        (b'{"payload":"","payloadType":"t","signatures":["x"]}', "signatures\\[0\\] must be an object"),
    ],
)
def test_malformed_envelopes(raw: bytes, reason: str, ring: Keyring) -> None:
    with pytest.raises(SignatureError, match=reason):
        open_envelope(raw, ring)


def test_non_canonical_form_is_rejected_in_strict_mode(key: SigningKey, ring: Keyring) -> None:
    env = sign_envelope(b"payload?>", TYPE, key)
    doc = json.loads(env)
    spaced = json.dumps(doc).encode()  # same content, with whitespace
    with pytest.raises(SignatureError, match="canonical form"):
        open_envelope(spaced, ring)
    assert open_envelope(spaced, ring, strict=False).payload == b"payload?>"
    urlsafe = dict(doc, payload=base64.urlsafe_b64encode(b"payload?>").decode().rstrip("="))
    urlsafe_bytes = json.dumps(urlsafe).encode()
    with pytest.raises(SignatureError, match="payload is not valid base64"):
        open_envelope(urlsafe_bytes, ring)
    # DSSE: verifiers MUST accept URL-safe base64 (non-strict interop mode)
    assert open_envelope(urlsafe_bytes, ring, strict=False).payload == b"payload?>"


def test_missing_keyid_tries_all_trusted_keys_in_interop_mode(key: SigningKey, ring: Keyring) -> None:
    doc = json.loads(sign_envelope(b"x", TYPE, key))
    del doc["signatures"][0]["keyid"]
    assert open_envelope(json.dumps(doc).encode(), ring, strict=False).key_id == key.key_id


def test_payload_type_is_checked_after_the_signature(key: SigningKey, ring: Keyring) -> None:
    env = sign_envelope(b"x", "application/other", key)
    with pytest.raises(SignatureError, match="unexpected payload type"):
        open_envelope(env, ring, payload_type=TYPE)


def test_oversized_envelope_is_rejected_before_parsing(ring: Keyring) -> None:
    with pytest.raises(SignatureError, match="exceeds the limit"):
        open_envelope(b" " * (2 << 20), ring)


def test_cosigned_envelope(key: SigningKey) -> None:
    other = SigningKey.generate()
    env = sign_envelope(b"x", TYPE, key, cosigners=(other,))
    parsed = parse_envelope(env)
    assert [k for k, _ in parsed.signatures] == [key.key_id, other.key_id]
    assert parsed.signed_by(other.public) and parsed.signed_by(key.public)
    assert not parsed.signed_by(SigningKey.generate().public)


def test_non_zero_base64_pad_bits_are_rejected(key: SigningKey, ring: Keyring) -> None:
    env = sign_envelope(b"x", TYPE, key)
    assert b'"payload":"eA=="' in env
    # "eB==" decodes to the same byte b"x": one record, two byte strings, unless refused
    assert base64.b64decode("eB==") == b"x"
    with pytest.raises(SignatureError, match="canonical standard base64"):
        open_envelope(env.replace(b'"eA=="', b'"eB=="'), ring)


@pytest.mark.parametrize("payload_type", [TYPE, 'we"ird\\type\u00e9\n'])
def test_canonical_form_is_plain_compact_json(key: SigningKey, payload_type: str) -> None:
    env = sign_envelope(b"\x00\xffbody", payload_type, key, cosigners=(SigningKey.generate(),))
    assert env == json.dumps(json.loads(env), separators=(",", ":"), ensure_ascii=True).encode()
    ring = Keyring()
    ring.add(key.public)
    assert open_envelope(env, ring).payload_type == payload_type
