"""The fleet audit store: one log in PostgreSQL, written by many devices and agents.

    >>> from trustlayer.audit.store import open_store
    >>> log = open_store("postgresql://audit@db.internal/trustlayer", log_key=key)  # doctest: +SKIP

Same interface and schema as the SQLite store. There is one sequencer: every append
takes a transaction-scoped advisory lock (``pg_advisory_xact_lock``) before it reads the
last index, so writers on any number of hosts get gap-free, unique indices; each host
batches its own appends (group commit) to hold the lock once per batch. Needs
``psycopg`` 3 (``pip install "trustlayer[postgres]"``).

Deadlines: ``record`` keeps the gate's deadline (``keeps_deadline``) as far as the server
can bound its waits. In a gate stage, the write transaction sets ``lock_timeout`` (the
wait for the sequencer's advisory lock) and ``statement_timeout`` (every statement of
the batch) to the time left. Not bounded: a server or network that stops answering
mid-statement (a dead TCP peer: the socket read waits for the kernel to give up, unless
the URL sets ``tcp_user_timeout`` / keepalives), and a ``COMMIT`` waiting for a
synchronous standby (PostgreSQL cancels that wait at the statement timeout but keeps
the commit, which then returns late and the gate counts it as timed out). Connections
are opened with the store, never inside a gate stage.
"""

from __future__ import annotations

import re
from typing import Any

from trustlayer import deadline
from trustlayer.audit._sql import SQLLogStore
from trustlayer.errors import AuditError, ConfigError, DeadlineExceeded
from trustlayer.provenance.keys import Keyring, SigningKey

__all__ = ["PostgresStore"]

# One fixed advisory lock key for the audit log's sequencer ("tl-audit" as a 63-bit integer).
_LOCK_KEY = int.from_bytes(b"tl-audit", "big") >> 1
_MAX_TIMEOUT_MS = 2**31 - 1  # lock_timeout and statement_timeout are int milliseconds


class PostgresStore(SQLLogStore):
    """The audit log in PostgreSQL (advisory-lock sequencing, group commit per writer)."""

    blob_type = "BYTEA"
    int_type = "BIGINT"
    keeps_deadline = True
    """``record`` bounds its waits on the server by the gate stage's deadline (see the module docstring)."""

    def __init__(self, url: str, *, log_key: SigningKey | None = None, keyring: Keyring | None = None,
                 checkpoint_every: int = 256, max_batch: int = 1024) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError("the PostgreSQL audit store needs psycopg 3: pip install \"psycopg[binary]\"",
                              field="audit.store") from exc
        self._psycopg = psycopg
        self.url = url
        super().__init__(log_key=log_key, keyring=keyring, checkpoint_every=checkpoint_every,
                         max_batch=max_batch)

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=True)
        except self._psycopg.Error as exc:
            raise AuditError(f"cannot connect to audit store {self._describe()}: {exc}") from exc

    def _begin_exclusive(self, conn: Any) -> None:
        try:
            if deadline.remaining() is None:
                conn.execute("BEGIN")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            else:
                # One round trip (no parameters: the simple protocol runs several statements); the
                # timeouts last until the transaction ends.
                ms = deadline.busy_timeout_ms(_MAX_TIMEOUT_MS)  # rounded up: gives up at the deadline, not before
                conn.execute(f"BEGIN; SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = {ms}; "
                             f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        except self._psycopg.Error as exc:
            self._rollback(conn)  # a failed BEGIN...lock leaves an aborted transaction behind
            if self._timed_out(exc):
                raise DeadlineExceeded(f"gave up waiting for the write lock of audit store {self._describe()}: "
                                       "the stage's deadline passed") from exc
            raise AuditError(f"cannot lock audit store {self._describe()} for writing: {exc}") from exc

    def _rollback(self, conn: Any) -> None:
        try:
            conn.execute("ROLLBACK")
        except self._psycopg.Error:
            pass  # the connection is broken: the original error says more

    def _timed_out(self, exc: BaseException) -> bool:
        errors = self._psycopg.errors
        return deadline.remaining() is not None and isinstance(exc, (errors.LockNotAvailable, errors.QueryCanceled))

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _describe(self) -> str:
        # Never print a password that may be in the URL.
        return repr(re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", self.url))
