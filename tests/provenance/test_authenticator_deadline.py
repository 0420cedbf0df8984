"""The authenticator keeps its gate stage deadline: the replay guard's lock and database waits end by it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deadlines import blocked_in_time, held, start, writing
from stagekit import ListRecorder, keeping_gate

from trustlayer.errors import DeadlineExceeded, SignatureError
from trustlayer.provenance.authenticator import RecordAuthenticator
from trustlayer.provenance.keys import Keyring
from trustlayer.provenance.replay import ReplayGuard
from trustlayer.provenance.signer import RecordSigner
from trustlayer.stages import PeerRecord
from trustlayer.types import Message, Route

from .conftest import ALICE, BOB, RAW, agent_hop

BODY = RAW.encode()


@pytest.fixture()
def guard(tmp_path: Path) -> Iterator[ReplayGuard]:
    g = ReplayGuard(tmp_path / "replay.db")
    yield g
    g.close()


@pytest.fixture()
def auth(keyring: Keyring, guard: ReplayGuard) -> RecordAuthenticator:
    return RecordAuthenticator(keyring, audience=BOB.id, replay=guard)


@pytest.fixture()
def writer(guard: ReplayGuard) -> Iterator[sqlite3.Connection]:
    """Another connection to the guard's file, holding its write lock until the test ends."""
    assert guard.path is not None
    with writing(guard.path) as other:
        yield other


def test_the_authenticator_declares_that_it_keeps_its_deadline() -> None:
    assert RecordAuthenticator.keeps_deadline is True


def test_authenticate_gives_up_on_the_replay_file_another_connection_writes(
        auth: RecordAuthenticator, signer: RecordSigner, writer: sqlite3.Connection) -> None:
    envelope = signer.sign(agent_hop()).envelope
    call = start(lambda: auth.authenticate(envelope, audience=BOB.id, content=BODY), seconds=0.3).join()
    assert call.finished, "authenticate waited past its deadline for the replay guard's write lock"
    assert writer.in_transaction  # the other connection still holds the lock
    assert isinstance(call.raised, DeadlineExceeded)
    assert "database lock of the replay guard" in str(call.raised) and RAW not in str(call.raised)
    writer.execute("ROLLBACK")
    # Giving up remembered nothing: the same record is accepted once the lock is free, and only once.
    assert isinstance(auth.authenticate(envelope, audience=BOB.id, content=BODY), PeerRecord)
    with pytest.raises(SignatureError, match="^replayed nonce"):
        auth.authenticate(envelope, audience=BOB.id, content=BODY)


def test_authenticate_without_a_deadline_waits_for_the_replay_file_as_before(
        auth: RecordAuthenticator, signer: RecordSigner, writer: sqlite3.Connection) -> None:
    envelope = signer.sign(agent_hop()).envelope
    assert start(lambda: len(auth.replay), seconds=0.3).join().value == [0]  # a call under a deadline first
    call = start(lambda: auth.authenticate(envelope, audience=BOB.id, content=BODY), seconds=None)
    time.sleep(0.5)
    assert not call.finished  # no deadline: SQLite's normal busy timeout (30 s) applies again
    writer.execute("COMMIT")
    call.join()
    assert call.finished and call.raised is None and isinstance(call.value[0], PeerRecord)


def test_authenticate_gives_up_on_the_replay_guard_lock_another_thread_holds(
        auth: RecordAuthenticator, guard: ReplayGuard, signer: RecordSigner) -> None:
    envelope = signer.sign(agent_hop()).envelope
    lock = held(guard._locked._lock)
    try:
        call = start(lambda: auth.authenticate(envelope, audience=BOB.id, content=BODY), seconds=0.3).join()
        assert call.finished, "authenticate waited past its deadline for the replay guard's lock"
        assert lock.locked()
        assert isinstance(call.raised, DeadlineExceeded) and "lock of the replay guard" in str(call.raised)
    finally:
        lock.release()
    assert isinstance(auth.authenticate(envelope, audience=BOB.id, content=BODY), PeerRecord)


def test_a_gate_blocks_at_authenticate_while_the_replay_file_stays_locked(
        auth: RecordAuthenticator, signer: RecordSigner, writer: sqlite3.Connection) -> None:
    message = Message.from_text("hello from agent a", conversation_id="conv-1")
    envelope = signer.sign(agent_hop(content=message.canonical_bytes())).envelope
    recorder = ListRecorder()
    gate = keeping_gate(authenticator=auth, recorder=recorder, identity=BOB.id, endpoints=(ALICE, BOB),
                        timeouts={"authenticate": 0.3})
    blocked_in_time(lambda: gate.inbound(message, Route.between(ALICE, BOB), envelope=envelope),
                    stage="authenticate", seconds=0.3)
    assert writer.in_transaction
    assert recorder.directions() == ["block"]


def test_a_prune_after_the_commit_does_not_wait_out_the_deadline_of_the_record_it_remembered(
        auth: RecordAuthenticator, guard: ReplayGuard, signer: RecordSigner) -> None:
    from trustlayer.gate import Inbound
    from trustlayer.provenance.replay import _PRUNE_EVERY

    for i in range(_PRUNE_EVERY - 1):  # the gate's record is the insert that prunes
        guard.remember("another-key", f"n{i}", i, expires=int(time.time()) + 600)
    message = Message.from_text("hello from agent a", conversation_id="conv-1")
    envelope = signer.sign(agent_hop(content=message.canonical_bytes())).envelope
    recorder = ListRecorder()
    gate = keeping_gate(authenticator=auth, recorder=recorder, identity=BOB.id, endpoints=(ALICE, BOB),
                        timeouts={"authenticate": 1.0})
    assert guard.path is not None
    other = sqlite3.connect(str(guard.path), isolation_level=None, timeout=0, check_same_thread=False)

    def lock_before_the_prune(sql: str) -> None:
        # Another connection takes the write lock after the record's commit, as the prune starts.
        if sql.startswith("DELETE FROM nonces") and not other.in_transaction:
            other.execute("BEGIN IMMEDIATE")

    guard._db.set_trace_callback(lock_before_the_prune)
    try:
        call = start(lambda: gate.inbound(message, Route.between(ALICE, BOB), envelope=envelope),
                     seconds=None).join()
        assert other.in_transaction  # the prune met the lock
        # The record was remembered and accepted: housekeeping after the commit must not make it late
        # (a blocked record stays remembered, and its retry would be refused as a replay).
        assert call.raised is None, call.raised
        assert isinstance(call.value[0], Inbound)
        assert recorder.directions() == ["inbound"]  # type: ignore[attr-defined]
    finally:
        guard._db.set_trace_callback(None)
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    with pytest.raises(SignatureError, match="^replayed nonce"):
        auth.authenticate(envelope, audience=BOB.id, content=message.canonical_bytes())
    assert guard.prune(now=int(time.time()) + 601) == _PRUNE_EVERY  # without a deadline, pruning works as ever
