"""The SQL log store shared by SQLite and PostgreSQL: schema, group-commit append, proofs, reads.

A subclass supplies connections, the dialect (placeholders, column types) and how to
take the log's write lock; the sequencing rule is the same for both: under the write
lock, catch the in-memory tree up with rows other writers committed, number the batch
after the last committed index, insert it, sign a checkpoint if one is due, commit.

In a gate stage with a deadline (``trustlayer.deadline``), an append that commits in the
caller's thread waits for the store's locks (this process's and the database's write
lock) no longer than the deadline, and gives up with ``DeadlineExceeded`` before it has
written anything; the dialect bounds the database's own waits (``_begin_exclusive``).
"""

from __future__ import annotations

import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Self, TypeVar

from trustlayer import deadline
from trustlayer.audit._review import ReviewMixin
from trustlayer.audit._writer import GroupCommitter
from trustlayer.audit.checkpoint import sign_checkpoint
from trustlayer.audit.merkle import MerkleTree, leaf_hash
from trustlayer.audit.store import (
    Entry,
    StoredCheckpoint,
    StoredKey,
)
from trustlayer.errors import AuditError, DeadlineExceeded, TrustError
from trustlayer.provenance.keys import Keyring, SigningKey, VerifyKey

__all__ = ["SQLLogStore"]

T = TypeVar("T")


# {blob} and {int} are filled in per dialect.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS entries (idx {int} PRIMARY KEY, envelope {blob} NOT NULL, "
    "leaf_hash {blob} NOT NULL, recorded_at {int} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkpoints (id {int} PRIMARY KEY, size {int} NOT NULL, root {blob} NOT NULL, "
    "time {int} NOT NULL, key_id TEXT NOT NULL, envelope {blob} NOT NULL)",
    "CREATE INDEX IF NOT EXISTS checkpoints_size ON checkpoints (size)",
    "CREATE TABLE IF NOT EXISTS keys (key_id TEXT PRIMARY KEY, public_key {blob} NOT NULL, owner TEXT, "
    "role TEXT NOT NULL, added_at {int} NOT NULL)",
    # Derived search columns: filled only from records whose signature verified; never read by verify.
    "CREATE TABLE IF NOT EXISTS entry_index (idx {int} PRIMARY KEY, verified {int} NOT NULL, digest TEXT, "
    "key_id TEXT, sequence {int}, conversation_id TEXT, sender TEXT, recipient TEXT, direction TEXT, "
    "outcome TEXT, rule_ids TEXT, entity_types TEXT, time {int}, parents TEXT, problem TEXT)",
    "CREATE INDEX IF NOT EXISTS entry_index_conversation ON entry_index (conversation_id)",
    "CREATE INDEX IF NOT EXISTS entry_index_time ON entry_index (time)",
    # Written by trustlayer.verifiers through record_agreement; shown by `audit reputation`.
    "CREATE TABLE IF NOT EXISTS endpoint_reputation (endpoint TEXT PRIMARY KEY, agreements {int} NOT NULL, "
    "dissents {int} NOT NULL, abstentions {int} NOT NULL, updated_at {int} NOT NULL)",
)


def _now_us() -> int:
    return time.time_ns() // 1000


class SQLLogStore(ReviewMixin, ABC):
    """The audit log over a SQL database; see ``trustlayer.audit.store`` for the interface."""

    blob_type = "BLOB"
    int_type = "INTEGER"

    def __init__(self, *, log_key: SigningKey | None, keyring: Keyring | None, checkpoint_every: int,
                 max_batch: int) -> None:
        if checkpoint_every < 1:
            raise AuditError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
        self._log_key = log_key
        self._keyring = keyring
        self._checkpoint_every = checkpoint_every
        self._what = f"audit store {self._describe()}"  # for DeadlineExceeded
        self._checkpointed: int | None = None  # size of the latest checkpoint, when known for certain
        self._resync = False  # the next batch catches the tree up even if no other writer committed since
        self._tree = MerkleTree()
        self._tree_lock = threading.Lock()
        self._read_lock = threading.Lock()
        # One writer connection shared by the group-commit thread and maintenance calls.
        self._write_lock = threading.RLock()
        self._closed = False
        self._committer: GroupCommitter | None = None
        self._wconn = self._connect()
        try:
            self._rconn = self._connect()
        except BaseException:
            self._wconn.close()
            raise
        try:
            self._open(log_key, keyring, max_batch)
        except BaseException:
            # e.g. a damaged log: leave no writer thread or connection behind
            self._closed = True
            if self._committer is not None:
                self._committer.close()
            self._wconn.close()
            self._rconn.close()
            raise

    def _open(self, log_key: SigningKey | None, keyring: Keyring | None, max_batch: int) -> None:
        if log_key is None:
            # A reviewer: never create or alter anything, and refuse what is not an audit log.
            self._origin = self._existing_origin()
            return
        self._origin = self._init_schema()
        self._register_key(log_key.public, "log", None)
        if keyring is not None:
            for entry in keyring.entries():
                self._register_key(entry.key, "signer", entry.owner)
        self._committer = GroupCommitter(self._flush, max_batch=max_batch, what=self._what)
        # Cover what an earlier writer appended but never checkpointed (it crashed or was not
        # closed), so the unprotected tail of the log stays as short as possible.
        self._sign_checkpoint(empty_too=False)

    # --- dialect hooks -------------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """A new autocommit connection."""

    @abstractmethod
    def _begin_exclusive(self, conn: Any) -> None:
        """Begin a transaction holding the log's single write lock (the sequencer).

        Under a deadline, the wait for the lock ends by it (``DeadlineExceeded``, no
        transaction left open), and so do the transaction's later statements where the
        database can bound them (``_timed_out`` recognises their error).
        """

    def _changed_by_others(self, conn: Any) -> bool:
        """Whether another connection may have committed since this one's last write transaction began.

        Asked under the write lock. A dialect that cannot tell says ``True`` (the batch then reads
        what others appended and the latest checkpoint size, two statements).
        """
        return True

    def _timed_out(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised in a write transaction, is the database giving up at the deadline."""
        return False

    @abstractmethod
    def _sql(self, statement: str) -> str:
        """``statement`` (written with ``?`` placeholders) in this dialect."""

    @abstractmethod
    def _describe(self) -> str:
        """The store's location for messages (no credentials)."""

    def _exec(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(statement), tuple(params))

    def _execmany(self, conn: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        conn.cursor().executemany(self._sql(statement), rows)

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            try:
                return list(self._exec(self._rconn, statement, params).fetchall())
            except Exception as exc:
                raise AuditError(f"cannot read audit store {self._describe()}: {exc}") from exc

    def _write(self, fn: Any) -> Any:
        """Run ``fn(conn)`` in one exclusive transaction on the writer connection."""
        with self._write_lock:
            conn = self._wconn
            self._begin_exclusive(conn)
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, Exception) and not isinstance(exc, TrustError):
                    raise AuditError(f"cannot write audit store {self._describe()}: {exc}") from exc
                raise
            return result

    # --- schema and keys ----------------------------------------------------------------------

    def _existing_origin(self) -> str:
        try:
            rows = self._read("SELECT value FROM meta WHERE name = ?", ("origin",))
            self._read("SELECT count(*) FROM entries WHERE idx < 0")
        except AuditError as exc:
            raise AuditError(f"{self._describe()} is not a trustlayer audit log ({exc.__cause__})") from exc
        if not rows:
            raise AuditError(f"{self._describe()} is not a trustlayer audit log (it has no log origin)")
        return str(rows[0][0])

    def _init_schema(self) -> str:
        def create(conn: Any) -> str:
            for statement in _SCHEMA:
                conn.execute(statement.format(blob=self.blob_type, int=self.int_type))
            self._exec(conn, "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                       ("origin", f"trustlayer-log-{secrets.token_hex(8)}"))
            self._exec(conn, "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                       ("schema", "1"))
            row = self._exec(conn, "SELECT value FROM meta WHERE name = ?", ("origin",)).fetchone()
            return str(row[0])

        try:
            return str(self._write(create))
        except AuditError:
            raise
        except Exception as exc:
            raise AuditError(f"cannot open audit store {self._describe()}: {exc}") from exc

    def _register_key(self, key: VerifyKey, role: str, owner: str | None) -> None:
        self._write(lambda conn: self._exec(
            conn, "INSERT INTO keys (key_id, public_key, owner, role, added_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING", (key.key_id, key.raw(), owner, role, _now_us())))

    @property
    def origin(self) -> str:
        """The log's id, named in every checkpoint."""
        return self._origin

    def keys(self) -> list[StoredKey]:
        """Keys registered by writers (for trust on first use only)."""
        rows = self._read("SELECT key_id, public_key, owner, role FROM keys ORDER BY added_at, key_id")
        return [StoredKey(r[0], bytes(r[1]), r[2], r[3]) for r in rows]

    # --- append -------------------------------------------------------------------------------

    def _sync_tree(self, conn: Any) -> None:
        """Extend the in-memory tree with entries committed since it was last read (caller holds _tree_lock)."""
        start = self._tree.size
        rows = self._exec(conn, "SELECT idx, leaf_hash FROM entries WHERE idx >= ? ORDER BY idx",
                          (start,)).fetchall()
        for expected, (idx, lh) in enumerate(rows, start):
            if idx != expected:
                raise AuditError(f"audit store {self._describe()} is damaged: entry {expected} is missing "
                                 f"(next stored index is {idx}); run 'trustlayer audit verify'")
            self._tree.append(bytes(lh))

    def _flush(self, envelopes: Sequence[bytes]) -> int:
        """Commit one batch; ``DeadlineExceeded`` (under a deadline) only when nothing of it was written."""
        key = self._log_key
        if key is None:  # GroupCommitter only exists with a log key
            raise AuditError("the audit store was opened without a log key and is read-only")
        # Maintenance calls (checkpoint, index refresh, proofs) hold these locks, for as long as
        # their own database waits last: an appending caller with a deadline waits no longer than it.
        deadline.acquire(self._tree_lock, self._what)
        try:
            deadline.acquire(self._write_lock, self._what)
            try:
                return self._flush_locked(key, envelopes)
            finally:
                self._write_lock.release()
        finally:
            self._tree_lock.release()

    def _flush_locked(self, key: SigningKey, envelopes: Sequence[bytes]) -> int:
        conn = self._wconn
        self._begin_exclusive(conn)
        first = self._tree.size
        committing = False
        try:
            # _changed_by_others first, in every batch: it notes what this batch saw for the next one
            if self._changed_by_others(conn) or self._resync:
                self._sync_tree(conn)  # their entries come before ours
                self._checkpointed = None
                self._resync = False
            first = self._tree.size
            now = _now_us()
            leaves = [leaf_hash(envelope) for envelope in envelopes]
            self._tree.extend(leaves)
            rows = [(first + i, e, lh, now) for i, (e, lh) in enumerate(zip(envelopes, leaves, strict=True))]
            self._execmany(conn, "INSERT INTO entries (idx, envelope, leaf_hash, recorded_at) "
                                 "VALUES (?, ?, ?, ?)", rows)
            last = self._checkpointed
            if last is None:
                last = self._last_checkpoint_size(conn)
            size = self._tree.size
            if size // self._checkpoint_every > last // self._checkpoint_every:
                self._insert_checkpoint(conn, key, size)
                last = size
            committing = True
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            self._tree.truncate(first)
            self._checkpointed = None
            # A catch-up that failed partway was rolled back with the rest: the next batch must read
            # the others' entries again, though the database will not say they changed (they did not).
            self._resync = True
            # Rolled back before COMMIT: nothing was written, the batch may be tried again. A failed
            # COMMIT stays an error of the batch (whether it took effect is not always known).
            if not committing and self._timed_out(exc):
                raise DeadlineExceeded(f"gave up writing to {self._what}: the stage's deadline passed") from exc
            raise
        self._checkpointed = last
        return first

    def _last_checkpoint_size(self, conn: Any) -> int:
        row = self._exec(conn, "SELECT max(size) FROM checkpoints").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _insert_checkpoint(self, conn: Any, key: SigningKey, size: int) -> None:
        cp = sign_checkpoint(self._origin, size, self._tree.root(size), key)
        row = self._exec(conn, "SELECT coalesce(max(id), -1) + 1 FROM checkpoints").fetchone()
        self._exec(conn, "INSERT INTO checkpoints (id, size, root, time, key_id, envelope) VALUES (?, ?, ?, ?, ?, ?)",
                   (int(row[0]), cp.size, cp.root, cp.time, cp.key_id, cp.envelope))

    def record(self, envelope: bytes) -> int:
        """Append ``envelope`` (exact bytes) and return its index once the batch committed."""
        return self._committer_for(envelope).append((envelope,))

    async def record_async(self, envelope: bytes) -> int:
        """``record`` for the async gate: awaits the group commit without blocking the loop."""
        return await self._committer_for(envelope).submit_async(envelope)

    def record_many(self, envelopes: Sequence[bytes]) -> list[int]:
        """Append several envelopes at consecutive indices in one group commit; their indices, once durable.

        For a caller that has several records at hand (one submission and one wake-up
        instead of one per record); each envelope is still its own entry.
        """
        batch = self._checked_batch(envelopes)
        first = self._committer_for(batch[0]).append(batch)
        return list(range(first, first + len(batch)))

    async def record_many_async(self, envelopes: Sequence[bytes]) -> list[int]:
        """``record_many`` for async callers, without blocking the event loop."""
        batch = self._checked_batch(envelopes)
        first = await self._committer_for(batch[0]).submit_many_async(batch)
        return list(range(first, first + len(batch)))

    def _checked_batch(self, envelopes: Sequence[bytes]) -> tuple[bytes, ...]:
        batch = tuple(envelopes)
        if not batch:
            raise AuditError("record_many needs at least one envelope")
        for envelope in batch:
            if not isinstance(envelope, bytes) or not envelope:
                raise AuditError(f"an audit entry must be non-empty envelope bytes, got {type(envelope).__name__}")
        return batch

    def _committer_for(self, envelope: bytes) -> GroupCommitter:
        if self._committer is None:
            raise AuditError(f"audit store {self._describe()} was opened without a log key and is read-only")
        if not isinstance(envelope, bytes) or not envelope:
            raise AuditError(f"an audit entry must be non-empty envelope bytes, got {type(envelope).__name__}")
        return self._committer

    def checkpoint(self) -> StoredCheckpoint:
        """Sign a checkpoint of the whole log now unless the latest already covers it; return the latest."""
        self._sign_checkpoint(empty_too=True)
        stored = self.checkpoints()
        if not stored:
            raise AuditError(f"audit store {self._describe()} has no checkpoint yet")
        return max(stored, key=lambda c: (c.size, c.id))

    def _sign_checkpoint(self, *, empty_too: bool) -> None:
        key = self._log_key
        if key is None:
            return

        def sign(conn: Any) -> None:
            self._sync_tree(conn)
            if self._tree.size > self._last_checkpoint_size(conn) or (empty_too and not self._has_checkpoint(conn)):
                self._insert_checkpoint(conn, key, self._tree.size)

        with self._tree_lock:
            self._checkpointed = None  # whatever happens in there, the next batch reads it again
            self._write(sign)

    def _has_checkpoint(self, conn: Any) -> bool:
        return int(self._exec(conn, "SELECT count(*) FROM checkpoints").fetchone()[0]) > 0

    def close(self) -> None:
        """Commit what is queued, sign a final checkpoint, close the connections.

        Raises ``AuditError`` (after closing) when the final checkpoint cannot be signed,
        e.g. because the log was damaged underneath this store.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._committer is not None:
                self._committer.close()
                self.checkpoint()
        finally:
            self._wconn.close()
            self._rconn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- proofs -------------------------------------------------------------------------------

    def _synced_tree(self) -> MerkleTree:
        with self._tree_lock, self._read_lock:
            try:
                self._sync_tree(self._rconn)
            except TrustError:
                raise
            except Exception as exc:
                raise AuditError(f"cannot read audit store {self._describe()}: {exc}") from exc
        return self._tree

    def size(self) -> int:
        """Number of committed entries."""
        return int(self._read("SELECT count(*) FROM entries")[0][0])

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` entries (default: all), from the stored leaf hashes."""
        tree = self._synced_tree()
        with self._tree_lock:
            return self._checked(lambda: tree.root(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.3.1 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        tree = self._synced_tree()
        with self._tree_lock:
            return self._checked(lambda: tree.inclusion_proof(index, size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.4.1 consistency proof from ``old_size`` to ``new_size`` (default: all)."""
        tree = self._synced_tree()
        with self._tree_lock:
            return self._checked(lambda: tree.consistency_proof(old_size, new_size))

    @staticmethod
    def _checked(fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ValueError as exc:
            raise AuditError(str(exc)) from exc

    # --- review reads -------------------------------------------------------------------------

    def entry(self, index: int) -> Entry:
        """The entry at ``index``; ``AuditError`` if there is none."""
        rows = self._read("SELECT idx, envelope, leaf_hash, recorded_at FROM entries WHERE idx = ?", (index,))
        if not rows:
            raise AuditError(f"audit store {self._describe()} has no entry {index} (size {self.size()})")
        r = rows[0]
        return Entry(int(r[0]), bytes(r[1]), bytes(r[2]), int(r[3]))

    def entries(self, start: int = 0, stop: int | None = None, *, batch: int = 2000) -> Iterator[Entry]:
        """Entries with ``start <= index < stop`` in index order, read ``batch`` rows at a time."""
        after = start - 1
        while True:
            rows = self._read("SELECT idx, envelope, leaf_hash, recorded_at FROM entries WHERE idx > ? "
                              "ORDER BY idx LIMIT ?", (after, batch))
            for r in rows:
                if stop is not None and r[0] >= stop:
                    return
                yield Entry(int(r[0]), bytes(r[1]), bytes(r[2]), int(r[3]))
            if len(rows) < batch:
                return
            after = int(rows[-1][0])

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, in the order written."""
        rows = self._read("SELECT id, size, root, time, key_id, envelope FROM checkpoints ORDER BY id")
        return [StoredCheckpoint(int(r[0]), int(r[1]), bytes(r[2]), int(r[3]), r[4], bytes(r[5])) for r in rows]
