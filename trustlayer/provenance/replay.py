"""The replay guard: remembers every (key, nonce) and (key, sequence) seen, in SQLite.

    >>> from trustlayer.provenance.replay import ReplayGuard
    >>> guard = ReplayGuard(Path(".trustlayer/replay.db"))     # doctest: +SKIP
    >>> guard.remember(key_id, nonce, sequence, expires=t)     # doctest: +SKIP

The guard is persisted, so a restart does not reopen the replay window. An entry is
kept until its record's time has left the authenticator's acceptance window (after
which the time check alone rejects the record), then pruned. Commits are synchronous
(``synchronous=FULL``): a nonce accepted before a power loss stays remembered.
Several processes may share one file (WAL, busy timeout); the unique keys make the
check-and-insert atomic. In a gate stage with a deadline (``trustlayer.deadline``) the
guard waits for its lock and for another connection's write lock no longer than the
deadline, then raises ``DeadlineExceeded``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from trustlayer._sqlite_wait import GuardedConnection
from trustlayer.errors import AuditError, DeadlineExceeded, SignatureError

__all__ = ["ReplayGuard"]

_log = logging.getLogger("trustlayer.provenance")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (key_id TEXT NOT NULL, nonce TEXT NOT NULL, expires INTEGER NOT NULL,
                                   PRIMARY KEY (key_id, nonce)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sequences (key_id TEXT NOT NULL, sequence INTEGER NOT NULL, expires INTEGER NOT NULL,
                                      PRIMARY KEY (key_id, sequence)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
CREATE INDEX IF NOT EXISTS sequences_expires ON sequences (expires);
"""

_PRUNE_EVERY = 256
_BUSY_MS = 30_000  # how long a statement waits for another connection's lock, outside a deadline


class ReplayGuard:
    """Rejects a (key, nonce) or (key, sequence) pair seen before; ``path=None`` is in memory."""

    def __init__(self, path: Path | str | None) -> None:
        self.path = None if path is None else Path(path)
        target = ":memory:" if self.path is None else str(self.path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(target, timeout=_BUSY_MS / 1000, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open replay guard database {target!r}: {exc}") from exc
        self._where = f"replay guard {target!r}"
        # Every statement runs inside ``with self._locked``: the connection's lock, and its busy
        # timeout for the caller's deadline (both waits end by a gate stage's deadline).
        self._locked = GuardedConnection(self._db, busy_ms=_BUSY_MS, what=f"the {self._where}")
        self._inserts = 0

    def remember(self, key_id: str, nonce: str, sequence: int, *, expires: int) -> None:
        """Record the pair, or raise ``SignatureError`` ("replayed nonce" / "reused sequence").

        ``expires`` is the Unix time after which the entry may be forgotten. The check and
        the insert are one transaction: of two concurrent deliveries, exactly one passes.
        """
        with self._locked:
            try:
                self._locked.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute("INSERT INTO nonces VALUES (?, ?, ?)", (key_id, nonce, expires))
                except sqlite3.IntegrityError as exc:
                    self._db.execute("ROLLBACK")
                    raise SignatureError(f"replayed nonce: a record of key {key_id[:16]} with this nonce "
                                         "was already accepted") from exc
                try:
                    self._db.execute("INSERT INTO sequences VALUES (?, ?, ?)", (key_id, sequence, expires))
                except sqlite3.IntegrityError as exc:
                    self._db.execute("ROLLBACK")
                    raise SignatureError(f"reused sequence: key {key_id[:16]} already sent sequence {sequence} "
                                         "with another nonce (replay or equivocation)") from exc
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                # fail closed: if we cannot remember it, we cannot accept it
                raise SignatureError(f"replay guard unavailable ({type(exc).__name__}); record refused") from exc
            self._inserts += 1
            if self._inserts % _PRUNE_EVERY == 0:
                self._prune_quietly()

    def _prune_quietly(self) -> None:
        # Housekeeping after a committed insert: the pair is remembered, so a failed prune must not
        # refuse the record (its retry would then be refused as a replay); the next one tries again.
        # Under a deadline it does not wait for another connection's lock: a record returned late is blocked.
        try:
            self._prune(int(time.time()), wait=False)
        except (sqlite3.Error, DeadlineExceeded) as exc:
            _log.warning("%s: pruning expired entries failed (%s); will retry", self._where, type(exc).__name__)

    def prune(self, now: int | None = None) -> int:
        """Forget entries whose expiry has passed; return how many nonces were removed."""
        with self._locked:
            return self._prune(int(time.time()) if now is None else now)

    def _prune(self, cutoff: int, *, wait: bool = True) -> int:
        cur = self._locked.execute("DELETE FROM nonces WHERE expires < ?", (cutoff,), wait=wait)
        self._locked.execute("DELETE FROM sequences WHERE expires < ?", (cutoff,), wait=wait)
        return cur.rowcount

    def __len__(self) -> int:
        with self._locked:
            row = self._db.execute("SELECT count(*) FROM nonces").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database."""
        self._locked.close()
