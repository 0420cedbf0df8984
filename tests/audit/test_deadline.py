"""The audit stores keep the gate's deadline: ``record`` gives up by it while the log is locked elsewhere.

Real SQLite files and real threads: another connection holds the file's write lock
(``BEGIN IMMEDIATE``) so no commit can proceed, and the tests check that a caller with
a deadline returns while it is still held, that one without keeps waiting and then
succeeds, and that after the release the log verifies with every returned index
pointing at its caller's entry, once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from audit_recordkit import SALT, RecordSigner, keyring
from committerkit import held_committer, inside_first_flush
from deadlines import start
from stagekit import CLOUD, DEVICE, Pseudonymizer, RegexDetector, SimplePolicy

from trustlayer import deadline
from trustlayer.audit._writer import SWEEP_AFTER, GroupCommitter, Waiter
from trustlayer.audit.sqlite_store import SQLiteStore
from trustlayer.audit.verify import verify_log
from trustlayer.errors import Blocked, DeadlineExceeded
from trustlayer.gate import Gate
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.signer import RecordSigner as ProvenanceSigner
from trustlayer.stages import Signed
from trustlayer.types import Hop, Message, Route

SECONDS = 0.3


@contextmanager
def write_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold the SQLite file's write lock from another connection (as another process would)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def check_log(path: Path, ring: Keyring, returned: dict[int, bytes], sent: Sequence[bytes]) -> list[bytes]:
    """The log verifies, each returned index holds its caller's envelope, and no envelope is there twice.

    Returns the stored envelopes, in order.
    """
    with SQLiteStore(path) as reader:
        report = verify_log(reader, record_keys=ring, log_keys=ring)
        assert report.ok, report.problems
        stored = [e.envelope for e in reader.entries()]
    for index, envelope in returned.items():
        assert stored[index] == envelope
    assert len(set(stored)) == len(stored)
    assert set(stored) <= set(sent)
    return stored


@pytest.fixture
def ring(signer: RecordSigner, log_key: SigningKey) -> Keyring:
    ring = keyring(signer)
    ring.add(log_key.public, owner="log")
    return ring


def test_both_stores_declare_that_they_keep_their_deadline() -> None:
    from trustlayer.audit.postgres_store import PostgresStore

    assert SQLiteStore.keeps_deadline is True and PostgresStore.keeps_deadline is True


def test_record_gives_up_by_its_deadline_while_another_connection_holds_the_write_lock(
        db_path: Path, signer: RecordSigner, log_key: SigningKey, ring: Keyring) -> None:
    store = SQLiteStore(db_path, log_key=log_key)
    early = signer.envelope()
    returned = {store.record(early): early}
    late = signer.envelope()
    ended: list[float] = []

    def record_late() -> int:
        try:
            return store.record(late)
        finally:
            ended.append(time.monotonic())

    with write_locked(db_path) as holder:
        # Nobody is committing: the caller takes the lead and waits in SQLite's busy handler.
        started = time.monotonic()
        call = start(record_late, seconds=SECONDS)
        assert call.join().finished, "record did not return by its deadline"
        assert holder.in_transaction
    assert ended[0] > started + SECONDS  # and not before its deadline either
    assert isinstance(call.raised, DeadlineExceeded)
    assert "gave up waiting for the write lock of audit log" in str(call.raised)
    store.close()  # the writer takes the given-back batch now, and drops the entry whose caller gave up
    assert check_log(db_path, ring, returned, [early, late]) == [early]


def test_record_gives_up_by_its_deadline_while_another_thread_holds_the_lead(
        db_path: Path, signer: RecordSigner, log_key: SigningKey, ring: Keyring) -> None:
    store = SQLiteStore(db_path, log_key=log_key)
    first, second = signer.envelope(), signer.envelope()
    with write_locked(db_path) as holder:
        leader = start(lambda: store.record(first), seconds=None)  # leads, and waits in the busy handler
        assert store._committer is not None
        while not store._committer._lead.locked():
            time.sleep(0.005)
        call = start(lambda: store.record(second), seconds=SECONDS)
        assert call.join().finished, "record did not return by its deadline"
        assert holder.in_transaction and not leader.finished
    assert isinstance(call.raised, DeadlineExceeded)
    assert "gave up waiting for audit store" in str(call.raised) and "to commit the entry" in str(call.raised)
    assert leader.join().value == [0]
    store.close()
    assert check_log(db_path, ring, {0: first}, [first, second]) == [first]  # second was still queued: dropped


def test_record_gives_up_by_its_deadline_while_a_checkpoint_holds_the_store(
        db_path: Path, signer: RecordSigner, log_key: SigningKey, ring: Keyring) -> None:
    store = SQLiteStore(db_path, log_key=log_key)
    store.record(first := signer.envelope())
    second = signer.envelope()
    with write_locked(db_path) as holder:
        # A checkpoint (no deadline) holds the store's tree and writer locks while it waits for the file.
        checkpoint = start(store.checkpoint, seconds=None)
        while not store._tree_lock.locked():
            time.sleep(0.005)
        call = start(lambda: store.record(second), seconds=SECONDS)
        assert call.join().finished, "record did not return by its deadline"
        assert holder.in_transaction and not checkpoint.finished
    assert isinstance(call.raised, DeadlineExceeded)
    assert "gave up waiting for audit store" in str(call.raised)
    assert checkpoint.join().finished and checkpoint.raised is None
    store.close()
    check_log(db_path, ring, {0: first}, [first, second])


@pytest.mark.parametrize("seconds", [10 * SECONDS, None], ids=["deadline-after-the-release", "no-deadline"])
def test_record_waits_for_a_write_lock_released_before_its_deadline_or_without_one(
        db_path: Path, signer: RecordSigner, log_key: SigningKey, ring: Keyring, seconds: float | None) -> None:
    store = SQLiteStore(db_path, log_key=log_key)
    envelope = signer.envelope()
    with write_locked(db_path):
        call = start(lambda: store.record(envelope), seconds=seconds)
        assert not call.join(2 * SECONDS).finished  # still waiting, well past the deadline the others had
    assert call.join().value == [0]
    store.close()
    check_log(db_path, ring, {0: envelope}, [envelope])


def test_callers_with_and_without_deadlines_lose_and_double_nothing(
        db_path: Path, signer: RecordSigner, log_key: SigningKey, ring: Keyring) -> None:
    store = SQLiteStore(db_path, log_key=log_key)
    envelopes = [signer.envelope() for _ in range(24)]
    # Odd callers have a deadline, even ones none: they share batches and leads while the file is locked.
    with write_locked(db_path):
        calls = [start(lambda e=e: store.record(e), seconds=SECONDS if i % 2 else None)
                 for i, e in enumerate(envelopes)]
        for call in calls[1::2]:
            assert call.join().finished, "a caller with a deadline did not return by it"
            assert isinstance(call.raised, DeadlineExceeded)
    assert all(call.join().finished for call in calls)
    returned = {index: e for call, e in zip(calls, envelopes, strict=True) for index in call.value
                if isinstance(index, int)}
    assert len(returned) == 12  # every caller without a deadline got its index
    store.close()
    check_log(db_path, ring, returned, envelopes)


class Keeping:
    """The small test stages, declaring that they keep their deadlines (they wait on nothing)."""

    keeps_deadline = True


class KeepingDetector(Keeping, RegexDetector):
    pass


class KeepingPolicy(Keeping, SimplePolicy):
    pass


class KeepingPseudonymizer(Keeping, Pseudonymizer):
    pass


class KeepingSigner(Keeping, ProvenanceSigner):
    """The real Ed25519 signer (so the log verifies); remembers what it signed, and in which thread."""

    def __init__(self, key: SigningKey) -> None:
        super().__init__(key, salt=SALT, state_path=None)
        self.signed: list[tuple[int, bytes]] = []

    def sign(self, hop: Hop) -> Signed:
        signed = super().sign(hop)
        self.signed.append((threading.get_ident(), signed.envelope))
        return signed


def test_the_gate_blocks_at_record_when_the_store_cannot_commit_in_time(
        db_path: Path, signer: RecordSigner, log_key: SigningKey, ring: Keyring) -> None:
    store = SQLiteStore(db_path, log_key=log_key)
    sign = KeepingSigner(signer.key)
    pseudo = KeepingPseudonymizer()
    gate = Gate(detector=KeepingDetector(), decider=KeepingPolicy(), transformer=pseudo, signer=sign,
                recorder=store, restorer=pseudo, identity="phone", endpoints=(DEVICE, CLOUD),
                timeouts={"record": SECONDS})
    message = Message.from_openai([{"role": "user", "content": "hello"}], conversation_id="c1")
    route = Route.between(DEVICE, CLOUD)
    crossed = gate.outbound(message, route)  # unlocked: it crosses, and is recorded
    caller: list[int] = []

    def send() -> object:
        caller.append(threading.get_ident())
        return gate.outbound(message, route)

    with write_locked(db_path) as holder:
        call = start(send, seconds=None)  # the gate gives each stage its deadline
        assert call.join().finished, "the gate did not return by the record stage's deadline"
        assert holder.in_transaction
    blocked = call.raised
    assert isinstance(blocked, Blocked) and blocked.stage == "record"
    assert blocked.reason.startswith(f"timed out after {SECONDS} s")
    # the hop and then its block signed in the caller's thread: the gate ran the path inline
    assert [thread for thread, _ in sign.signed[1:]] == caller * 2
    store.close()
    # The log holds what the callers were told: the hop that crossed, and neither the blocked hop's
    # entry nor its block's (both callers gave up while their entries were queued).
    assert "the block itself could not be recorded (record: timed out" in blocked.reason
    assert check_log(db_path, ring, {crossed.index: crossed.record.envelope},
                     [envelope for _, envelope in sign.signed]) == [crossed.record.envelope]


def test_a_waiter_that_gave_up_while_queued_is_dropped_and_the_others_keep_consecutive_indices() -> None:
    committer, held, seen = held_committer()
    head = inside_first_flush(committer, seen)  # the writer flushes it until `held` is set
    waiters = [committer.submit(x) for x in (b"a", b"b", b"c")]
    gave_up = start(waiters[1].wait, seconds=0.1).join()
    assert isinstance(gave_up.raised, DeadlineExceeded)
    assert "gave up waiting for the audit store to commit the entry" in str(gave_up.raised)
    assert "dropped unless its batch is already being written" in str(gave_up.raised)
    held.set()
    assert [head.wait(), waiters[0].wait(), waiters[2].wait()] == [0, 1, 2]
    committer.close()
    assert seen == [[b"h"], [b"a", b"c"]]  # b's caller was told it timed out: its entry is not written


def test_a_waiter_that_gave_up_once_its_batch_was_taken_is_committed_and_passed_over_by_the_chain() -> None:
    committer, held, seen = held_committer()
    waiters = [committer._enqueue((x,), Waiter(), poke=False) for x in (b"h", b"a", b"b", b"c")]
    committer._poke()  # the writer takes all four into one batch, and holds in its flush
    while not seen:
        time.sleep(0.005)
    gave_up = start(waiters[2].wait, seconds=0.1).join()
    assert isinstance(gave_up.raised, DeadlineExceeded)
    held.set()
    # b never waits again: the wake-up chain h -> a -> (b) -> c passes over it
    assert [waiters[0].wait(), waiters[1].wait()] == [0, 1]
    t0 = time.monotonic()
    assert waiters[3].wait() == 3
    assert time.monotonic() - t0 < SWEEP_AFTER  # woken through the chain, not by the writer's sweep
    committer.close()
    assert seen == [[b"h", b"a", b"b", b"c"]]


def test_the_entry_of_an_async_caller_cancelled_while_it_was_queued_is_dropped() -> None:
    import asyncio

    committer, held, seen = held_committer()
    head = inside_first_flush(committer, seen)  # the writer flushes it until `held` is set

    async def main() -> tuple[int, int]:
        cancelled = asyncio.ensure_future(committer.submit_async(b"cancelled"))
        kept = asyncio.ensure_future(committer.submit_async(b"kept"))
        await asyncio.sleep(0.05)  # both are queued behind the held batch
        cancelled.cancel()
        held.set()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        return await asyncio.to_thread(head.wait), await kept

    assert asyncio.run(main()) == (0, 1)
    committer.close()
    assert seen == [[b"h"], [b"kept"]]


def test_a_leader_out_of_time_gives_its_batch_back_without_failing_the_others_in_it() -> None:
    seen: list[list[bytes]] = []

    def flush(batch: Sequence[bytes]) -> int:
        seen.append(list(batch))
        left = deadline.remaining()
        if left is not None:  # the appending leader: the store's lock stays taken past its deadline
            time.sleep(left)
            raise DeadlineExceeded("gave up waiting for the store's lock: the stage's deadline passed")
        return 0

    committer = GroupCommitter(flush)
    other = committer._enqueue((b"other",), Waiter(), poke=False)  # queued, nobody poked the writer yet
    mine = start(lambda: committer.append((b"mine",)), seconds=0.1).join()
    assert isinstance(mine.raised, DeadlineExceeded)
    assert "gave up waiting for the store's lock" in str(mine.raised)
    assert other.wait() == 0 and other.error is None  # committed by the writer, not failed
    committer.close()
    assert seen == [[b"other", b"mine"], [b"other"]]  # the writer drops the entry of the leader that gave up


def test_a_leader_out_of_time_while_the_store_closes_fails_an_async_caller_in_its_batch() -> None:
    import asyncio

    from trustlayer.errors import AuditError

    in_flush = threading.Event()
    committer: GroupCommitter

    def flush(batch: Sequence[bytes]) -> int:
        if deadline.remaining() is None:
            return 0
        in_flush.set()  # the appending leader, holding the lead
        while not committer._closed:  # close() runs in another thread
            time.sleep(0.001)
        raise DeadlineExceeded("gave up waiting for the store's lock: the stage's deadline passed")

    committer = GroupCommitter(flush)
    loop = asyncio.new_event_loop()
    running = threading.Thread(target=loop.run_forever, daemon=True)
    running.start()
    try:
        future: asyncio.Future[int] = loop.create_future()
        committer._enqueue((b"async",), Waiter(loop, future), poke=False)  # queued, nobody poked the writer yet
        mine = start(lambda: committer.append((b"mine",)), seconds=5.0)
        assert in_flush.wait(10)
        closer = threading.Thread(target=committer.close, daemon=True)
        closer.start()  # the batch cannot be given back to a writer that is stopping
        assert isinstance(mine.join().raised, DeadlineExceeded)
        closer.join(10)
        assert not closer.is_alive()

        async def outcome() -> int:
            return await future

        with pytest.raises(AuditError, match="before its batch committed"):
            asyncio.run_coroutine_threadsafe(outcome(), loop).result(timeout=5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        running.join(10)
        loop.close()
