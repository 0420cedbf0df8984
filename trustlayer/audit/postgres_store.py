"""The fleet audit store: one log in PostgreSQL, written by many devices and agents.

    >>> from trustlayer.audit.store import open_store
    >>> log = open_store("postgresql://audit@db.internal/trustlayer", log_key=key)  # doctest: +SKIP

Same interface and schema as the SQLite store. There is one sequencer: every append
takes a transaction-scoped advisory lock (``pg_advisory_xact_lock``) before it reads the
last index, so writers on any number of hosts get gap-free, unique indices; each host
batches its own appends (group commit) to hold the lock once per batch. Needs
``psycopg`` 3 (``pip install "trustlayer[postgres]"``).
"""

from __future__ import annotations

import re
from typing import Any

from trustlayer.audit._sql import SQLLogStore
from trustlayer.errors import AuditError, ConfigError
from trustlayer.provenance.keys import Keyring, SigningKey

__all__ = ["PostgresStore"]

# One fixed advisory lock key for the audit log's sequencer ("tl-audit" as a 63-bit integer).
_LOCK_KEY = int.from_bytes(b"tl-audit", "big") >> 1


class PostgresStore(SQLLogStore):
    """The audit log in PostgreSQL (advisory-lock sequencing, group commit per writer)."""

    blob_type = "BYTEA"
    int_type = "BIGINT"

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
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        except self._psycopg.Error as exc:
            raise AuditError(f"cannot lock audit store {self._describe()} for writing: {exc}") from exc

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _describe(self) -> str:
        # Never print a password that may be in the URL.
        return repr(re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", self.url))
