from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from concurrency import run_in_threads

from trustlayer.errors import SignatureError
from trustlayer.provenance import _json
from trustlayer.provenance.authenticator import RecordAuthenticator
from trustlayer.provenance.dsse import sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.records import build_statement, to_millis
from trustlayer.provenance.replay import ReplayGuard
from trustlayer.provenance.signer import RecordSigner
from trustlayer.stages import Authenticator, PeerRecord
from trustlayer.types import Route

from .conftest import ALICE, BOB, CLOUD, PHONE, RAW, SALT, agent_hop

BODY = RAW.encode()


@pytest.fixture()
def guard(tmp_path: Path) -> ReplayGuard:
    return ReplayGuard(tmp_path / "replay.db")


@pytest.fixture()
def auth(keyring: Keyring, guard: ReplayGuard) -> RecordAuthenticator:
    return RecordAuthenticator(keyring, audience=BOB.id, replay=guard)


def test_implements_the_protocol(auth: RecordAuthenticator) -> None:
    assert isinstance(auth, Authenticator)


def test_accepts_a_genuine_message(auth: RecordAuthenticator, signer: RecordSigner) -> None:
    signed = signer.sign(agent_hop())
    peer = auth.authenticate(signed.envelope, audience=BOB.id, content=BODY)
    assert peer == PeerRecord(sender=ALICE.id, key_id=signer.key_id, conversation_id="conv-1",
                              digest=signed.digest, sequence=1, classes=frozenset({"eu_personal", "financial"}))


def test_unknown_key(guard: ReplayGuard, signer: RecordSigner) -> None:
    stranger = Keyring()
    stranger.add(SigningKey.generate().public, owner=ALICE.id)
    auth = RecordAuthenticator(stranger, audience=BOB.id, replay=guard)
    with pytest.raises(SignatureError, match="^unknown key"):
        auth.authenticate(signer.sign(agent_hop()).envelope, audience=BOB.id, content=BODY)


def test_bad_signature(auth: RecordAuthenticator, signer: RecordSigner) -> None:
    envelope = bytearray(signer.sign(agent_hop()).envelope)
    i = envelope.index(b'"payload":"') + 40
    envelope[i] = ord("A") if envelope[i] != ord("A") else ord("B")
    with pytest.raises(SignatureError, match="^bad signature"):
        auth.authenticate(bytes(envelope), audience=BOB.id, content=BODY)


def test_bad_envelope(auth: RecordAuthenticator) -> None:
    with pytest.raises(SignatureError, match="^bad envelope: not valid JSON"):
        auth.authenticate(b"{oops", audience=BOB.id, content=BODY)


def test_wrong_audience(auth: RecordAuthenticator, signer: RecordSigner) -> None:
    to_someone_else = agent_hop(route=Route.between(ALICE, ALICE.model_copy(update={"id": "agent-c"})))
    with pytest.raises(SignatureError, match="^wrong audience: the record is addressed to 'agent-c'"):
        auth.authenticate(signer.sign(to_someone_else).envelope, audience=BOB.id, content=BODY)
    with pytest.raises(SignatureError, match="^wrong audience: 'agent-c' is not served here"):
        auth.authenticate(signer.sign(to_someone_else).envelope, audience="agent-c", content=BODY)


def test_wrong_sender(keyring: Keyring, guard: ReplayGuard, signer: RecordSigner) -> None:
    # alice's key signs a record claiming to come from the phone
    hop = agent_hop(route=Route(sender=PHONE, recipient=BOB, channel="agent_agent"))
    auth = RecordAuthenticator(keyring, audience=BOB.id, replay=guard)
    with pytest.raises(SignatureError, match="^wrong sender: the record claims sender 'phone'"):
        auth.authenticate(signer.sign(hop).envelope, audience=BOB.id, content=BODY)


def test_wrong_direction(auth: RecordAuthenticator, signer: RecordSigner) -> None:
    with pytest.raises(SignatureError, match="^wrong direction"):
        auth.authenticate(signer.sign(agent_hop(direction="inbound")).envelope, audience=BOB.id, content=BODY)


def test_replayed_nonce_also_after_restart(keyring: Keyring, signer: RecordSigner, tmp_path: Path) -> None:
    envelope = signer.sign(agent_hop()).envelope
    first = RecordAuthenticator(keyring, audience=BOB.id, replay=ReplayGuard(tmp_path / "r.db"))
    first.authenticate(envelope, audience=BOB.id, content=BODY)
    with pytest.raises(SignatureError, match="^replayed nonce"):
        first.authenticate(envelope, audience=BOB.id, content=BODY)
    first.replay.close()
    restarted = RecordAuthenticator(keyring, audience=BOB.id, replay=ReplayGuard(tmp_path / "r.db"))
    with pytest.raises(SignatureError, match="^replayed nonce"):
        restarted.authenticate(envelope, audience=BOB.id, content=BODY)


def test_reused_sequence_with_a_fresh_nonce(auth: RecordAuthenticator, alice_key: SigningKey) -> None:
    now = to_millis(datetime.now(UTC))

    def envelope(nonce: str) -> bytes:
        doc = build_statement(agent_hop(), salt=SALT, key_id=alice_key.key_id, sequence=7, nonce=nonce, time=now)
        return sign_envelope(_json.dumps(doc), _json.STATEMENT_MEDIA_TYPE, alice_key)

    auth.authenticate(envelope("01" * 16), audience=BOB.id, content=BODY)
    with pytest.raises(SignatureError, match="^reused sequence: .* already sent sequence 7"):
        auth.authenticate(envelope("02" * 16), audience=BOB.id, content=BODY)


def test_concurrent_replays_admit_exactly_one(auth: RecordAuthenticator, signer: RecordSigner) -> None:
    envelope = signer.sign(agent_hop()).envelope
    results: list[str] = []

    def deliver() -> None:
        try:
            auth.authenticate(envelope, audience=BOB.id, content=BODY)
            results.append("ok")
        except SignatureError as exc:
            results.append(str(exc))

    run_in_threads([deliver] * 8)
    assert results.count("ok") == 1
    assert all(r.startswith("replayed nonce") for r in results if r != "ok")


@pytest.mark.parametrize(("skew", "reason"), [(-301, "^stale time"), (301, "^future time")])
def test_time_window(keyring: Keyring, guard: ReplayGuard, alice_key: SigningKey, skew: int, reason: str) -> None:
    then = datetime.now(UTC) + timedelta(seconds=skew)
    signer = RecordSigner(alice_key, salt=SALT, state_path=None, clock=lambda: then)
    auth = RecordAuthenticator(keyring, audience=BOB.id, replay=guard, window_seconds=300)
    with pytest.raises(SignatureError, match=reason):
        auth.authenticate(signer.sign(agent_hop()).envelope, audience=BOB.id, content=BODY)


def test_inside_the_window_is_accepted(keyring: Keyring, guard: ReplayGuard, alice_key: SigningKey) -> None:
    then = datetime.now(UTC) - timedelta(seconds=250)
    signer = RecordSigner(alice_key, salt=SALT, state_path=None, clock=lambda: then)
    auth = RecordAuthenticator(keyring, audience=BOB.id, replay=guard, window_seconds=300)
    assert auth.authenticate(signer.sign(agent_hop()).envelope, audience=BOB.id, content=BODY).sequence == 1


def test_content_mismatch(auth: RecordAuthenticator, signer: RecordSigner) -> None:
    envelope = signer.sign(agent_hop()).envelope
    with pytest.raises(SignatureError, match="^content mismatch: the content received is not"):
        auth.authenticate(envelope, audience=BOB.id, content=BODY + b"!")
    # a failed check does not burn the nonce: the genuine delivery still passes
    auth.authenticate(envelope, audience=BOB.id, content=BODY)


def test_content_mismatch_when_no_transmitted_digest(keyring: Keyring, guard: ReplayGuard,
                                                     signer: RecordSigner) -> None:
    # a device->cloud record carries no receiver-checkable digest; it cannot authenticate a message
    bob_as_cloud = CLOUD.model_copy(update={"id": BOB.id})
    hop = agent_hop(route=Route(sender=ALICE, recipient=bob_as_cloud, channel="device_cloud"))
    auth = RecordAuthenticator(keyring, audience=BOB.id, replay=guard)
    with pytest.raises(SignatureError, match="^content mismatch: the record carries no 'transmitted' digest"):
        auth.authenticate(signer.sign(hop).envelope, audience=BOB.id, content=BODY)


def test_not_a_hop_record_is_a_bad_record(auth: RecordAuthenticator, alice_key: SigningKey) -> None:
    envelope = sign_envelope(_json.dumps({"_type": "x"}), _json.STATEMENT_MEDIA_TYPE, alice_key)
    with pytest.raises(SignatureError, match="^bad record: not a hop record"):
        auth.authenticate(envelope, audience=BOB.id, content=BODY)


def test_guard_prunes_expired_entries(tmp_path: Path) -> None:
    guard = ReplayGuard(tmp_path / "r.db")
    guard.remember("k", "n1", 1, expires=100)
    guard.remember("k", "n2", 2, expires=10**12)
    assert guard.prune(now=1000) == 1
    assert len(guard) == 1


def test_a_failed_prune_after_the_commit_does_not_refuse_the_remembered_record(tmp_path: Path) -> None:
    import sqlite3

    from trustlayer.provenance import replay

    guard = ReplayGuard(tmp_path / "r.db")
    other = sqlite3.connect(tmp_path / "r.db")
    # A real failure of the real database: deleting nonces aborts (e.g. a trigger another tool left behind).
    other.execute("CREATE TRIGGER keep BEFORE DELETE ON nonces BEGIN SELECT RAISE(ABORT, 'kept'); END")
    other.commit()
    for i in range(replay._PRUNE_EVERY):  # the last insert prunes, and the prune fails
        guard.remember("k", f"n{i}", i, expires=1)
    assert len(guard) == replay._PRUNE_EVERY  # every pair was remembered and accepted
    with pytest.raises(SignatureError, match="replayed nonce"):  # and the last one still counts as seen
        guard.remember("k", f"n{replay._PRUNE_EVERY - 1}", 10**6, expires=1)
    other.execute("DROP TRIGGER keep")
    other.commit()
    other.close()
    assert guard.prune() == replay._PRUNE_EVERY  # the next prune works again
