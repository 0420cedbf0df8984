"""The embedded audit store: one SQLite file in WAL mode, safe for many threads and processes.

    >>> from trustlayer.audit.sqlite_store import SQLiteStore
    >>> from trustlayer.provenance.keys import SigningKey
    >>> with SQLiteStore("/tmp/audit-doc.db", log_key=SigningKey.generate()) as log:  # doctest: +SKIP
    ...     log.record(envelope)

Durability: ``synchronous=FULL``, so a commit is on disk when ``record`` returns; group
commit makes that one fsync per batch instead of per entry. Sequencing: every append
runs under ``BEGIN IMMEDIATE`` (SQLite's single writer lock), which serializes threads
of this process (through the writer thread) and other processes on the same file.

Deadlines: ``record`` keeps the gate's deadline (``keeps_deadline``). The one wait on
another process, for the file's write lock, is SQLite's busy wait; in a gate stage it
ends by the deadline: there, ``BEGIN IMMEDIATE`` is tried without a busy wait first, and
only when the lock is taken, retried with a busy timeout of the time left.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from trustlayer import deadline
from trustlayer._sqlite_wait import is_busy
from trustlayer.audit._sql import SQLLogStore
from trustlayer.errors import AuditError, DeadlineExceeded
from trustlayer.provenance.keys import Keyring, SigningKey

__all__ = ["SQLiteStore"]

_BUSY_TIMEOUT_MS = 60_000
_PAGE_SIZE = 8192


class SQLiteStore(SQLLogStore):
    """The audit log in one SQLite file (WAL, group commit, ``BEGIN IMMEDIATE`` sequencing)."""

    keeps_deadline = True
    """``record`` waits for nothing longer than the gate stage's deadline (``trustlayer.deadline``)."""

    def __init__(self, path: str | Path, *, log_key: SigningKey | None = None, keyring: Keyring | None = None,
                 checkpoint_every: int = 256, max_batch: int = 1024) -> None:
        self.path = Path(path)
        self._writable = log_key is not None
        if not self._writable and not self.path.exists():
            raise AuditError(f"audit log {str(self.path)!r} does not exist")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_ms = _BUSY_TIMEOUT_MS  # the writer connection's busy timeout now
        self._data_version: int | None = None  # the writer connection's PRAGMA data_version in its last write
        super().__init__(log_key=log_key, keyring=keyring, checkpoint_every=checkpoint_every,
                         max_batch=max_batch)

    def _connect(self) -> Any:
        try:
            # Autocommit mode (isolation_level=None): transactions are begun explicitly.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=_BUSY_TIMEOUT_MS / 1000)
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if self._writable:  # a reviewer leaves the file's journal mode alone
                # Takes effect only when this connection creates the file (an existing log keeps its
                # page size): 8 KiB pages hold five ~1.4 KB envelopes, and halve the WAL frames and
                # checkpoint copies per entry against the 4 KiB default (about 10% of the append cost).
                conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open audit log {str(self.path)!r}: {exc}") from exc
        return conn

    def _begin_exclusive(self, conn: Any) -> None:
        # Only the writer connection begins transactions (under the store's write lock).
        try:
            if deadline.remaining() is None:
                self._busy_timeout(conn, _BUSY_TIMEOUT_MS)  # as it always is outside a gate stage
                conn.execute("BEGIN IMMEDIATE")
                return
            # In a gate stage: first without waiting, then, only if another connection holds the
            # lock, waiting up to the deadline. A PRAGMA costs about as much as the BEGIN itself
            # (~5 us): an uncontended batch sets none, once the connection is at 0.
            self._busy_timeout(conn, 0)
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
            self._busy_timeout(conn, deadline.busy_timeout_ms(_BUSY_TIMEOUT_MS))
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if is_busy(exc) and self._busy_ms < _BUSY_TIMEOUT_MS:
                raise DeadlineExceeded(f"gave up waiting for the write lock of audit log {str(self.path)!r} "
                                       f"(another connection holds it): the stage's deadline passed") from exc
            raise AuditError(f"cannot lock audit log {str(self.path)!r} for writing: {exc}") from exc

    def _changed_by_others(self, conn: Any) -> bool:
        # PRAGMA data_version changes when another connection (thread or process) commits, never
        # for this one's own commits; one statement instead of the two reads it saves (~3 us a batch).
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        changed: bool = version != self._data_version
        self._data_version = version
        return changed

    def _busy_timeout(self, conn: Any, ms: int) -> None:
        if ms != self._busy_ms:
            conn.execute(f"PRAGMA busy_timeout = {ms}")
            self._busy_ms = ms

    def _sql(self, statement: str) -> str:
        return statement

    def _describe(self) -> str:
        return repr(str(self.path))
