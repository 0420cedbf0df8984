"""The running gate stage's deadline, for stages that bound their own waits.

The gate gives each stage a deadline (``gate.timeouts``). A sync caller cannot be
freed from a stage that hangs in its own thread, so by default the gate runs each path
on a worker thread and abandons it at a passed deadline, which costs a thread hand-off
per path. A stage that *keeps its deadline* makes that unnecessary: it declares
``keeps_deadline = True`` and promises never to wait without bound on another thread,
process or host; every such wait (a lock, a queue, a database busy wait, a socket)
gives up by ``remaining()`` and raises. When every stage of a gate keeps its deadline,
paths run in the caller's thread; a stage that returns after its deadline (it computed
or wrote to disk for too long) is treated as timed out and the message is blocked::

    from trustlayer import deadline

    class Store:
        keeps_deadline = True

        def record(self, envelope: bytes) -> int:
            deadline.acquire(self._lock, "the store's lock")   # DeadlineExceeded when it passes
            try:
                ...
            finally:
                self._lock.release()

Outside a gate stage there is no deadline: ``remaining()`` is ``None`` and waits are unbounded.
"""

from __future__ import annotations

import math
import threading
import time
from typing import overload

from trustlayer.errors import DeadlineExceeded

__all__ = ["DeadlineExceeded", "acquire", "busy_timeout_ms", "remaining"]


class _Local(threading.local):
    at: float | None = None  # a class default: reading it unset costs no AttributeError


_local = _Local()
_monotonic = time.monotonic


def remaining() -> float | None:
    """Seconds left for the stage running in this thread (0.0 once passed), or ``None`` without a deadline."""
    at = _local.at
    return None if at is None else max(0.0, at - _monotonic())


def acquire(lock: threading.Lock | threading.RLock, what: str) -> None:
    """Take ``lock``, waiting no longer than the running stage's deadline; raise ``DeadlineExceeded`` if it passes."""
    left = remaining()
    if left is None:
        lock.acquire()
    # A free lock is taken without a timed wait (that arms a timer: ~1 us even when nobody holds it).
    elif not lock.acquire(False) and not lock.acquire(timeout=left):
        raise DeadlineExceeded(f"gave up waiting for {what}: the stage's deadline passed")


def busy_timeout_ms(default_ms: int) -> int:
    """A database busy timeout (milliseconds) that ends at the deadline: ``default_ms`` or less, at least 1.

    Rounded up, so that a busy wait does not give up before the deadline has passed.
    """
    left = remaining()
    if left is None:
        return default_ms
    return max(1, min(default_ms, math.ceil(left * 1000)))


@overload
def _enter(at: float) -> tuple[float | None, float]: ...
@overload
def _enter(at: None) -> tuple[float | None, float | None]: ...


def _enter(at: float | None) -> tuple[float | None, float | None]:
    """Set this thread's deadline (a ``time.monotonic()`` value) for a stage.

    Returns the deadline it replaces (for ``_leave``) and the one now in force: never later
    than the one already running, so a stage that runs a nested gate path keeps its own
    deadline through the nested stages, whatever their timeouts.
    """
    previous = _local.at
    if previous is None or (at is not None and at < previous):
        _local.at = at
    return previous, _local.at


def _leave(previous: float | None) -> None:
    """Put back the deadline ``_enter`` replaced (a stage may run a nested gate path)."""
    _local.at = previous
