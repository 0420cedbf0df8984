"""One SQLite connection shared by threads, whose two waits end by a gate stage's deadline.

The vault and the replay guard each keep one connection behind a thread lock, and share
their file with other processes through SQLite's file lock (a busy wait). In a gate stage
with a deadline (``trustlayer.deadline``) both waits end by it; outside one they wait as
long as they always did::

    conn = GuardedConnection(sqlite3.connect(path, ...), busy_ms=30_000, what=f"vault {path!r}")
    with conn:                              # the thread lock: DeadlineExceeded once the deadline passes
        conn.execute("BEGIN IMMEDIATE")     # SQLite's busy wait ends at the deadline: DeadlineExceeded
        conn.db.execute("INSERT ...")       # statements that wait for nothing go to the connection itself
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

from trustlayer import deadline
from trustlayer.errors import DeadlineExceeded

__all__ = ["GuardedConnection", "is_busy"]


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite giving up on another connection's lock (``SQLITE_BUSY``, any extended code)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


class GuardedConnection:
    """``db`` behind a lock; ``with`` takes the lock and sets the busy timeout for the caller's deadline."""

    __slots__ = ("_busy_ms", "_lock", "_normal_ms", "_waits_for", "_what", "db")

    def __init__(self, db: sqlite3.Connection, *, busy_ms: int, what: str) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._normal_ms = busy_ms  # the busy timeout outside a deadline (the connection is opened with it)
        self._busy_ms = busy_ms  # the connection's busy timeout now
        self._what = what
        self._waits_for = f"the lock of {what} (another thread holds it)"

    def __enter__(self) -> sqlite3.Connection:
        # Without a stage deadline both are as ever: an unbounded lock wait, the normal busy timeout.
        deadline.acquire(self._lock, self._waits_for)
        try:
            ms = deadline.busy_timeout_ms(self._normal_ms)
            # A PRAGMA costs about a statement: issued only when the timeout changes (under a
            # deadline, and once after one to set the normal timeout back).
            if ms != self._busy_ms:
                self.db.execute(f"PRAGMA busy_timeout={ms}")
                self._busy_ms = ms
        except BaseException:
            self._lock.release()
            raise
        return self.db

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def execute(self, sql: str, params: Sequence[object] = (), *, wait: bool = True) -> sqlite3.Cursor:
        """Run a statement that may wait for another connection's lock (inside ``with``).

        Raises ``sqlite3.Error``, or ``DeadlineExceeded`` when SQLite gave up waiting at a stage's deadline.
        ``wait=False`` is for housekeeping that may be skipped: under a deadline it does not wait at all.
        """
        if not wait and self._busy_ms != 0 and deadline.remaining() is not None:
            self.db.execute("PRAGMA busy_timeout=0")  # the next ``with`` sets it back
            self._busy_ms = 0
        try:
            return self.db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            # Under a deadline the busy timeout ends at it (``__enter__``), rounded up to whole milliseconds.
            if is_busy(exc) and deadline.remaining() is not None:
                raise DeadlineExceeded(f"gave up waiting for the database lock of {self._what} (another "
                                       "connection holds it): the stage's deadline passed") from exc
            raise

    def close(self) -> None:
        """Close the connection (after whoever holds the lock is done)."""
        with self._lock:
            self.db.close()
