"""SQLiteStore: appends, group commit, checkpoints, proofs, the search index, reputation, errors."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from audit_recordkit import SALT, RecordSigner, keyring
from committerkit import held_committer, inside_first_flush
from concurrency import run_in_threads

from trustlayer.audit._writer import SWEEP_AFTER, GroupCommitter
from trustlayer.audit.checkpoint import open_checkpoint
from trustlayer.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from trustlayer.audit.sqlite_store import SQLiteStore
from trustlayer.audit.store import AuditStore, open_store
from trustlayer.audit.verify import verify_log
from trustlayer.errors import AuditError, ConfigError
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.signer import RecordSigner as ProvenanceSigner
from trustlayer.stages import Recorder


def test_store_implements_the_recorder_stage_and_the_store_protocol(db_path: Path, log_key: SigningKey) -> None:
    with SQLiteStore(db_path, log_key=log_key) as store:
        assert isinstance(store, Recorder)
        assert isinstance(store, AuditStore)


def test_indices_are_sequential_and_proofs_verify(db_path: Path, signer: RecordSigner, log_key: SigningKey) -> None:
    envelopes = [signer.envelope() for _ in range(21)]
    with SQLiteStore(db_path, log_key=log_key, checkpoint_every=5) as store:
        assert [store.record(e) for e in envelopes] == list(range(21))
        tree = MerkleTree(leaf_hash(e) for e in envelopes)
        assert store.root() == tree.root()
        for index in (0, 7, 20):
            verify_inclusion(index, 21, leaf_hash(envelopes[index]), store.inclusion_proof(index), tree.root())
        verify_consistency(5, 21, tree.root(5), tree.root(), store.consistency_proof(5, 21))
        assert store.entry(7).envelope == envelopes[7]
        assert [e.index for e in store.entries(18)] == [18, 19, 20]
    # Checkpoints every 5 entries and one more on close.
    with SQLiteStore(db_path) as store:
        assert [c.size for c in store.checkpoints()] == [5, 10, 15, 20, 21]
        ring = Keyring()
        ring.add(log_key.public)
        for c in store.checkpoints():
            assert open_checkpoint(c.envelope, ring).root == tree.root(c.size)


def test_records_of_the_real_provenance_signer_verify(db_path: Path, log_key: SigningKey) -> None:
    kit = RecordSigner(endpoint="phone")
    real = ProvenanceSigner(kit.key, salt=SALT, state_path=None)
    ring = keyring(kit)
    ring.add(log_key.public)
    with SQLiteStore(db_path, log_key=log_key) as store:
        first = real.sign(kit.hop(conversation="c-real"))
        store.record(first.envelope)
        store.record(real.sign(kit.hop(conversation="c-real", direction="inbound", parents=(first.digest,))).envelope)
        store.record(real.sign(kit.hop(conversation="c-real", direction="block")).envelope)
        assert verify_log(store, record_keys=ring, log_keys=ring).ok
        store.refresh_index(ring)
        found = store.search(conversation="c-real")
        assert [(e.index, e.direction, e.outcome) for e in found] == [(2, "block", "block"), (1, "inbound", "allow"),
                                                                     (0, "outbound", "allow")]
        assert found[1].parents == (first.digest,) and found[2].digest == first.digest


def test_group_commit_from_many_threads(db_path: Path, signer: RecordSigner, log_key: SigningKey) -> None:
    got: list[int] = []
    lock = threading.Lock()
    with SQLiteStore(db_path, log_key=log_key, checkpoint_every=50) as store:
        def work() -> None:
            for _ in range(50):
                index = store.record(signer.envelope())
                with lock:
                    got.append(index)

        run_in_threads([work] * 8)
        assert sorted(got) == list(range(400))
        ring = keyring(signer)
        ring.add(log_key.public)
        assert verify_log(store, record_keys=ring, log_keys=ring).ok


def test_record_async(db_path: Path, signer: RecordSigner, log_key: SigningKey) -> None:
    async def main(store: SQLiteStore) -> list[int]:
        return list(await asyncio.gather(*(store.record_async(signer.envelope()) for _ in range(20))))

    with SQLiteStore(db_path, log_key=log_key) as store:
        assert sorted(asyncio.run(main(store))) == list(range(20))


def test_read_only_and_closed_stores_refuse_appends(filled_log: Path, log_key: SigningKey) -> None:
    with SQLiteStore(filled_log) as reader, pytest.raises(AuditError, match="opened without a log key"):
        reader.record(b"{}")
    store = SQLiteStore(filled_log, log_key=log_key)
    store.close()
    with pytest.raises(AuditError, match="closed"):
        store.record(b"{}")
    with pytest.raises(AuditError, match="non-empty envelope bytes"):
        SQLiteStore(filled_log, log_key=log_key).record("text")  # type: ignore[arg-type]


def test_missing_log_and_bad_url_are_named(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="does not exist"):
        SQLiteStore(tmp_path / "nope.db")
    with pytest.raises(ConfigError, match="scheme 'mysql'") as info:
        open_store("mysql://admin:hunter2@localhost/audit")
    assert "hunter2" not in str(info.value)
    with pytest.raises(AuditError, match="no entry 99"):
        SQLiteStore(tmp_path / "x.db", log_key=SigningKey.generate()).entry(99)


def test_a_failed_batch_fails_every_caller_in_it() -> None:
    def flush(batch: object) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    committer = GroupCommitter(flush)
    waiters = [committer.submit(b"x") for _ in range(3)]
    for w in waiters:
        with pytest.raises(AuditError, match="audit append failed .OperationalError.: disk I/O error"):
            w.wait()
    committer.close()


def test_rolled_back_batch_leaves_the_tree_as_it_was(db_path: Path, log_key: SigningKey) -> None:
    store = SQLiteStore(db_path, log_key=log_key)
    try:
        store.record(b"first")
        root = store.root()
        # Another writer corrupts the log: the next append must fail closed and change nothing.
        conn = sqlite3.connect(db_path)
        conn.execute("INSERT INTO entries VALUES (5, x'00', ?, 0)", (b"\0" * 32,))
        conn.commit()
        conn.close()
        with pytest.raises(AuditError, match="entry 1 is missing"):
            store.record(b"second")
        assert store._tree.size == 1 and store._tree.root() == root
    finally:
        with pytest.raises(AuditError, match="is damaged"):
            store.close()  # no final checkpoint over a damaged log, but the connections are closed


def test_a_catch_up_that_failed_partway_is_done_again_by_the_next_batch(
        db_path: Path, signer: RecordSigner, log_key: SigningKey, trusted: Keyring) -> None:
    one = SQLiteStore(db_path, log_key=log_key)
    two = SQLiteStore(db_path, log_key=log_key)
    sent = [signer.envelope() for _ in range(5)]
    assert one.record(sent[0]) == 0
    assert [two.record(sent[1]), two.record(sent[2])] == [1, 2]
    # Fault injection (as a read error could): one's catch-up with two's two entries fails after
    # the first. Nothing else commits before one's next batch.
    real_append, calls = one._tree.append, []

    def append_then_fail(leaf: bytes) -> int:
        calls.append(leaf)
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return real_append(leaf)

    one._tree.append = append_then_fail  # type: ignore[method-assign]
    with pytest.raises(AuditError, match="disk I/O error"):
        one.record(sent[3])
    assert one._tree.size == 1  # rolled back to what it was before the batch
    assert one.record(sent[4]) == 3  # caught up again: no index collision with two's entries
    one.close()
    two.close()
    with SQLiteStore(db_path) as reader:
        assert [e.envelope for e in reader.entries()] == [*sent[:3], sent[4]]
        assert verify_log(reader, record_keys=trusted, log_keys=trusted).ok


def test_two_writers_on_one_file_take_turns_without_gaps_and_each_sees_the_others_checkpoints(
        db_path: Path, signer: RecordSigner, log_key: SigningKey, trusted: Keyring) -> None:
    # Two stores on one file, as two processes would be: each batch must catch up with the other's
    # entries (its indices continue after them) and with the other's checkpoints (none doubled).
    one = SQLiteStore(db_path, log_key=log_key, checkpoint_every=4)
    two = SQLiteStore(db_path, log_key=log_key, checkpoint_every=4)
    sent = [signer.envelope() for _ in range(12)]
    got = [(one if i % 3 else two).record(envelope) for i, envelope in enumerate(sent)]
    assert got == list(range(12))
    assert [c.size for c in one.checkpoints()] == [4, 8, 12]  # one per boundary, whoever crossed it
    one.close()
    two.close()
    with SQLiteStore(db_path) as reader:
        assert [e.envelope for e in reader.entries()] == sent
        assert verify_log(reader, record_keys=trusted, log_keys=trusted).ok


def test_opening_a_damaged_log_leaves_no_writer_thread_or_connection(db_path: Path, log_key: SigningKey,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with SQLiteStore(db_path, log_key=log_key) as store:
        store.record(b"first")
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO entries VALUES (5, x'00', ?, 0)", (b"\0" * 32,))  # entries 1..4 are missing
    conn.commit()
    conn.close()
    opened: list[sqlite3.Connection] = []
    connect = SQLiteStore._connect

    def tracking_connect(self: SQLiteStore) -> sqlite3.Connection:
        opened.append(connect(self))
        return opened[-1]

    monkeypatch.setattr(SQLiteStore, "_connect", tracking_connect)
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(AuditError, match="is damaged: entry 1 is missing"):
        SQLiteStore(db_path, log_key=log_key)
    assert {t.name for t in threading.enumerate()} - before == set()  # the group-commit thread has ended
    assert len(opened) == 2
    for c in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            c.execute("SELECT 1")


def test_opening_a_file_that_is_no_audit_log_read_only_closes_its_connections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    opened: list[sqlite3.Connection] = []
    connect = SQLiteStore._connect
    monkeypatch.setattr(SQLiteStore, "_connect", lambda self: opened.append(connect(self)) or opened[-1])
    with pytest.raises(AuditError, match="is not a trustlayer audit log"):
        SQLiteStore(other)
    assert len(opened) == 2
    for c in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            c.execute("SELECT 1")


def test_new_logs_use_8k_pages_and_existing_logs_keep_theirs(tmp_path: Path, log_key: SigningKey) -> None:
    with SQLiteStore(tmp_path / "new.db", log_key=log_key) as store:
        store.record(b"first")
    assert sqlite3.connect(tmp_path / "new.db").execute("PRAGMA page_size").fetchone()[0] == 8192
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("CREATE TABLE scratch (x)")  # the file exists with 4 KiB pages
    conn.close()
    with SQLiteStore(old, log_key=log_key) as store:
        assert store.record(b"first") == 0
    assert sqlite3.connect(old).execute("PRAGMA page_size").fetchone()[0] == 4096
    with SQLiteStore(old) as reader:
        assert reader.entry(0).envelope == b"first"


def test_search_index_holds_only_verified_entries(db_path: Path, signer: RecordSigner, log_key: SigningKey,
                                                  trusted: Keyring) -> None:
    stranger = RecordSigner(endpoint="mallory")
    with SQLiteStore(db_path, log_key=log_key, keyring=trusted) as store:
        store.record(signer.envelope(conversation="a", entity_counts={"EMAIL_ADDRESS": 2}, when_ms=1_000_000))
        store.record(signer.envelope(conversation="a", recipient="gpt", outcome="transform",
                                     rule_ids=("eu-only",), when_ms=2_000_000))
        store.record(stranger.envelope(conversation="a"))
        store.record(signer.envelope(conversation="b", direction="block", when_ms=3_000_000))
        assert store.refresh_index() == 4
        assert store.refresh_index() == 0  # incremental
        assert [e.index for e in store.search(conversation="a")] == [1, 0]  # entry 2 did not verify
        assert [e.index for e in store.search(entity_type="EMAIL_ADDRESS")] == [0]
        assert [e.index for e in store.search(entity_type="EMAIL")] == []  # whole values only
        assert [e.index for e in store.search(endpoint="gpt")] == [1]
        assert [e.index for e in store.search(outcome="transform")] == [1]
        assert [e.rule_ids for e in store.search(outcome="transform")] == [("eu-only",)]
        assert [e.index for e in store.search(direction="block")] == [3]
        assert [e.index for e in store.search(since=1_500_000, until=2_500_000)] == [1]


def test_reputation_counts_outcomes(db_path: Path, log_key: SigningKey) -> None:
    with SQLiteStore(db_path, log_key=log_key) as store:
        for outcome in ("agree", "agree", "dissent", "abstain"):
            store.record_agreement("cloud-a", outcome)
        store.record_agreement("cloud-b", "dissent")
        rows = store.reputation()
        assert [(r.endpoint, r.agreements, r.dissents, r.abstentions, r.total) for r in rows] == [
            ("cloud-a", 2, 1, 1, 4), ("cloud-b", 0, 1, 0, 1)]
        with pytest.raises(AuditError, match="'maybe' is not one of agree, dissent, abstain"):
            store.record_agreement("cloud-a", "maybe")  # type: ignore[arg-type]


def test_sequence_gap_inside_checkpointed_prefix_is_a_warning(db_path: Path, signer: RecordSigner,
                                                              log_key: SigningKey, trusted: Keyring) -> None:
    # A signer that crashed skips the rest of its reserved block: a hole, but no deletion.
    with SQLiteStore(db_path, log_key=log_key, checkpoint_every=4) as store:
        for seq in (1, 2, 3, 1025, 1026, 1027, 1028, 1029):
            store.record(signer.envelope(sequence=seq))
        report = verify_log(store, record_keys=trusted, log_keys=trusted)
        assert report.ok, report.problems
        assert any("jumps from sequence 3 (entry 2) to 1025" in w and "signer crash" in w for w in report.warnings)
        # The same hole after the last checkpoint cannot be told from a deletion: it fails.
        store.record(signer.envelope(sequence=2000))
        report = verify_log(store, record_keys=trusted, log_keys=trusted)
        assert [p.kind for p in report.problems] == ["sequence-gap"] and report.problems[0].index == 8


def test_index_is_rebuilt_when_the_trusted_keys_change(db_path: Path, signer: RecordSigner, log_key: SigningKey,
                                                       trusted: Keyring) -> None:
    with SQLiteStore(db_path, log_key=log_key) as store:
        store.record(signer.envelope(conversation="a"))
        store.refresh_index(trusted)
        assert len(store.search(conversation="a")) == 1
        stranger_only = keyring(RecordSigner(endpoint="mallory"))
        store.refresh_index(stranger_only)
        assert store.search(conversation="a") == []  # the signer is no longer trusted: nothing shows


def test_a_reviewer_never_alters_the_file(tmp_path: Path) -> None:
    plain = tmp_path / "other.db"
    conn = sqlite3.connect(plain)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = plain.read_bytes()
    with pytest.raises(AuditError, match="is not a trustlayer audit log"):
        SQLiteStore(plain)
    assert plain.read_bytes() == before


def test_opening_for_writing_checkpoints_an_uncovered_tail(db_path: Path, signer: RecordSigner,
                                                           log_key: SigningKey) -> None:
    crashed = SQLiteStore(db_path, log_key=log_key, checkpoint_every=100)
    for _ in range(3):
        crashed.record(signer.envelope())
    # `crashed` is never closed (as if its process died); the next writer covers its entries.
    with SQLiteStore(db_path, log_key=log_key, checkpoint_every=100) as store:
        assert [c.size for c in store.checkpoints()] == [3]
    crashed.close()


def test_a_failed_batch_fails_async_callers_too() -> None:
    def flush(batch: object) -> int:
        raise sqlite3.OperationalError("database is locked")

    committer = GroupCommitter(flush)

    async def main() -> list[BaseException | int]:
        return list(await asyncio.gather(*(committer.submit_async(b"x") for _ in range(3)), return_exceptions=True))

    results = asyncio.run(main())
    committer.close()
    assert all(isinstance(r, AuditError) and "database is locked" in str(r) for r in results)


def test_record_many_appends_at_consecutive_indices(db_path: Path, signer: RecordSigner, log_key: SigningKey) -> None:
    got: list[list[int]] = []
    lock = threading.Lock()
    with SQLiteStore(db_path, log_key=log_key, checkpoint_every=16, max_batch=10) as store:
        first = store.record(signer.envelope())

        def work() -> None:
            for _ in range(5):
                batch = [signer.envelope() for _ in range(7)]
                indices = store.record_many(batch)
                assert [store.entry(i).envelope for i in indices] == batch
                with lock:
                    got.append(indices)

        run_in_threads([work] * 4)
        assert first == 0
        assert all(ix == list(range(ix[0], ix[0] + 7)) for ix in got)  # never split, never interleaved
        assert sorted(i for ix in got for i in ix) == list(range(1, 141))
        assert asyncio.run(store.record_many_async([signer.envelope(), signer.envelope()])) == [141, 142]
        assert store.record_many([signer.envelope() for _ in range(25)]) == list(range(143, 168))  # > max_batch
        many = [signer.envelope() for _ in range(70)]  # one submission larger than max_batch
        assert store.record_many(many) == list(range(168, 238))
        assert [e.envelope for e in store.entries(168)] == many
        with pytest.raises(AuditError, match="at least one envelope"):
            store.record_many([])
        with pytest.raises(AuditError, match="non-empty envelope bytes"):
            store.record_many([signer.envelope(), b""])
        ring = keyring(signer)
        ring.add(log_key.public)
        assert verify_log(store, record_keys=ring, log_keys=ring).ok


def test_an_abandoned_waiter_still_queued_is_dropped_and_the_chain_wakes_the_rest() -> None:
    committer, release, seen = held_committer()
    head = inside_first_flush(committer, seen)
    waiters = [committer.submit(b"x") for _ in range(3)]
    waiters[1]._abandoned = True  # as if interrupted while queued: it will never call wait() again
    got: list[tuple[int, float]] = []

    def wait_last_two() -> None:
        t0 = time.monotonic()
        got.extend((w.wait(), time.monotonic() - t0) for w in (waiters[0], waiters[2]))

    t = threading.Thread(target=wait_last_two)
    t.start()
    release.set()
    assert head.wait() == 0
    t.join(5)
    committer.close()
    assert [index for index, _ in got] == [1, 2]  # the abandoned entry was not written
    assert got[-1][1] < SWEEP_AFTER  # woken through the chain, not by the writer's sweep


def test_a_waiter_waited_for_out_of_order_is_released_by_the_sweep() -> None:
    committer, release, seen = held_committer()
    inside_first_flush(committer, seen)
    waiters = [committer.submit(b"x") for _ in range(3)]
    release.set()
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(waiters[2].wait()))  # its predecessors never wait
    t0 = time.monotonic()
    t.start()
    t.join(5)
    committer.close()
    assert got == [3]
    assert time.monotonic() - t0 < 5


def test_async_submissions_of_one_loop_iteration_form_one_batch() -> None:
    batches: list[int] = []

    def flush(batch: object) -> int:
        batches.append(len(batch))  # type: ignore[arg-type]
        return sum(batches) - batches[-1]

    committer = GroupCommitter(flush)

    async def one() -> int:
        # releases the GIL: a writer woken by an earlier submission would flush a partial batch now
        time.sleep(0.002)
        return await committer.submit_async(b"x")

    async def main() -> list[int]:
        return list(await asyncio.gather(*(one() for _ in range(20))))

    indices = asyncio.run(main())
    committer.close()
    assert sorted(indices) == list(range(20))
    assert batches == [20]  # one wake-up of the writer per event-loop iteration, not one per record


def test_an_uncontended_append_commits_in_the_calling_thread() -> None:
    threads: list[str] = []

    def flush(batch: object) -> int:
        threads.append(threading.current_thread().name)
        return len(threads) - 1

    committer = GroupCommitter(flush)
    assert [committer.append((b"x",)) for _ in range(5)] == [0, 1, 2, 3, 4]
    committer.close()
    assert set(threads) == {threading.current_thread().name}  # no hand-off to the writer thread


def test_an_append_while_a_batch_is_being_written_is_committed_by_the_next_leader() -> None:
    committer, release, _ = held_committer()
    first: list[int] = []
    leader = threading.Thread(target=lambda: first.append(committer.append((b"h",))))
    leader.start()
    time.sleep(0.1)                                   # the leader is inside its flush, holding the lead
    later: list[int] = []
    followers = [threading.Thread(target=lambda: later.append(committer.append((b"x", b"y"))))
                 for _ in range(3)]
    for t in followers:
        t.start()
    time.sleep(0.1)
    release.set()
    leader.join(5)
    for t in followers:
        t.join(5)
    committer.close()
    assert first == [0]
    assert sorted(later) == [1, 3, 5]                 # each pair at consecutive indices, nothing lost or doubled


def test_a_failed_inline_commit_fails_the_appending_caller() -> None:
    def flush(batch: object) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    committer = GroupCommitter(flush)
    with pytest.raises(AuditError, match="disk I/O error"):
        committer.append((b"x",))
    committer.close()


def test_an_appending_leader_returns_once_its_own_entry_committed_under_steady_load() -> None:
    """The thread that takes the lead must not stay to commit everyone else's entries while the queue refills."""

    def flush(batch: object) -> int:
        time.sleep(0.002)  # a commit that takes a while, so the queue refills meanwhile
        flush.count += len(batch)  # type: ignore[attr-defined, arg-type]
        return flush.count - len(batch)  # type: ignore[attr-defined, arg-type]

    flush.count = 0  # type: ignore[attr-defined]
    committer = GroupCommitter(flush)
    stop = time.monotonic() + 1.5
    worst: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        slowest = 0.0
        while time.monotonic() < stop:
            t0 = time.monotonic()
            committer.append((b"x",))
            slowest = max(slowest, time.monotonic() - t0)
        with lock:
            worst.append(slowest)

    run_in_threads([work] * 8, timeout=10)
    committer.close()
    assert len(worst) == 8
    assert max(worst) < 0.5, worst
