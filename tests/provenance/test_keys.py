import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from trustlayer.config import load_config
from trustlayer.errors import ConfigError, SignatureError
from trustlayer.provenance.keys import Keyring, SigningKey, VerifyKey, key_id_of


def test_sign_verify_round_trip() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"data")
    key.public.verify(sig, b"data")
    with pytest.raises(SignatureError, match="bad signature"):
        key.public.verify(sig, b"datb")
    with pytest.raises(SignatureError, match="64 bytes"):
        key.public.verify(sig[:-1], b"data")


@settings(max_examples=50)
@given(st.binary(max_size=2048), st.binary(min_size=32, max_size=32))
def test_libsodium_signs_the_same_bytes_as_openssl(message: bytes, seed: bytes) -> None:
    # SigningKey signs through libsodium; Ed25519 is deterministic (RFC 8032 5.1.6), so the
    # signature must equal OpenSSL's for the same key and message, and records stay byte-identical.
    openssl = Ed25519PrivateKey.from_private_bytes(seed)
    key = SigningKey(openssl)
    assert key.sign(message) == openssl.sign(message)
    assert key.sign(bytearray(message)) == key.sign(memoryview(message)) == openssl.sign(message)
    key.public.verify(key.sign(message), message)


def test_sign_refuses_text() -> None:
    with pytest.raises(TypeError):
        SigningKey.generate().sign("not bytes")  # type: ignore[arg-type]


def test_key_id_is_full_sha256_of_raw_public_key() -> None:
    key = SigningKey.generate()
    assert key.key_id == key_id_of(key.public.raw())
    assert len(key.key_id) == 64
    assert VerifyKey.from_base64(key.public.to_base64()).key_id == key.key_id
    assert SigningKey.generate().key_id != key.key_id


def test_private_file_mode_0600_and_round_trip(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "sub" / "id.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()
    assert SigningKey.from_file(path).key_id == key.key_id
    assert not list(path.parent.glob(".*tmp"))


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    SigningKey.generate().save(path)
    with pytest.raises(ConfigError, match="already exists"):
        SigningKey.generate().save(path)
    other = SigningKey.generate()
    other.save(path, overwrite=True)
    assert SigningKey.from_file(path).key_id == other.key_id


def test_passphrase_encryption(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "id.key"
    key.save(path, passphrase="correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert SigningKey.from_file(path, "correct horse").key_id == key.key_id
    with pytest.raises(ConfigError, match="needs a passphrase"):
        SigningKey.from_file(path)
    with pytest.raises(ConfigError, match="wrong passphrase"):
        SigningKey.from_file(path, "wrong")


def test_plain_key_with_passphrase_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    SigningKey.generate().save(path)
    with pytest.raises(ConfigError, match="is not encrypted"):
        SigningKey.from_file(path, "x")


def test_too_open_private_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    SigningKey.generate().save(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"mode 0644.*chmod 600"):
        SigningKey.from_file(path)


def test_missing_and_malformed_key_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SigningKey.from_file(tmp_path / "nope.key")
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"not a key")
    bad.chmod(0o600)
    with pytest.raises(ConfigError, match="not a PEM private key"):
        SigningKey.from_file(bad)
    with pytest.raises(ConfigError, match="neither a PEM public key"):
        VerifyKey.from_file(bad)


def test_public_key_files(tmp_path: Path) -> None:
    key = SigningKey.generate()
    pem = tmp_path / "id.pub"
    key.public.save(pem)
    assert VerifyKey.from_file(pem) == key.public
    b64 = tmp_path / "id.b64"
    b64.write_text(key.public.to_base64() + "\n")
    assert VerifyKey.from_file(b64) == key.public


def test_from_base64_rejects_wrong_length_and_garbage() -> None:
    with pytest.raises(SignatureError, match="32 bytes, got 3"):
        VerifyKey.from_base64("AAAA")
    with pytest.raises(SignatureError, match="not valid base64"):
        VerifyKey.from_base64("!!!!")


def test_keyring_by_id_and_owner() -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    ring = Keyring()
    ring.add(a.public, owner="agent-a")
    ring.add(b.public, owner="agent-b")
    ring.add(a.public, owner="agent-a")  # idempotent
    assert len(ring) == 2
    assert ring.get(a.key_id) == a.public
    assert ring.owner_of(b.key_id) == "agent-b"
    assert ring.keys_of("agent-a") == (a.public,)
    with pytest.raises(SignatureError, match="unknown key"):
        ring.get(SigningKey.generate().key_id)
    with pytest.raises(SignatureError, match="already trusted for 'agent-a'"):
        ring.add(a.public, owner="agent-b")


def test_keyring_from_config(tmp_path: Path) -> None:
    me, peer, filed, ep = (SigningKey.generate() for _ in range(4))
    me.save(tmp_path / "me.key")
    filed.public.save(tmp_path / "filed.pub")
    (tmp_path / "trustlayer.yaml").write_text(f"""
identity: {{id: me, key: me.key}}
endpoints:
  - {{id: me, kind: agent, jurisdiction: DE}}
  - {{id: peer, kind: agent, jurisdiction: DE}}
  - {{id: filed, kind: agent, jurisdiction: FR}}
  - {{id: ep, kind: agent, jurisdiction: US, public_key: "{ep.public.to_base64()}"}}
peers:
  - {{id: peer, public_key: "{peer.public.to_base64()}"}}
  - {{id: filed, key_file: filed.pub}}
""")
    ring = Keyring.from_config(load_config(tmp_path / "trustlayer.yaml"))
    assert {e.owner: e.key.key_id for e in ring.entries()} == {
        "me": me.key_id, "peer": peer.key_id, "filed": filed.key_id, "ep": ep.key_id,
    }


def test_keyring_from_config_bad_peer_key(tmp_path: Path) -> None:
    (tmp_path / "trustlayer.yaml").write_text("""
identity: {id: me, key: me.key}
endpoints:
  - {id: me, kind: agent, jurisdiction: DE}
  - {id: peer, kind: agent, jurisdiction: DE}
peers:
  - {id: peer, public_key: "AAAA"}
""")
    with pytest.raises(ConfigError, match=r"peers\[0\] \('peer'\): public_key is not"):
        Keyring.from_config(load_config(tmp_path / "trustlayer.yaml"))
