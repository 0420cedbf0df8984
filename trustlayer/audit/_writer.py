"""Group commit: one writer thread turns appends from many threads into few transactions.

Each caller enqueues its envelope with a waiter and blocks on it; the writer takes
everything queued (up to ``max_batch``), hands the batch to ``flush`` (one transaction,
one fsync) and wakes every waiter with its index, or with the error if the batch
failed. A caller therefore returns only after its entry is durable, and a failed batch
fails every caller in it (fail closed: the gate blocks those messages).

The waiters are bare locks (threads) or the caller's own asyncio future, settled once
per batch and event loop, rather than ``concurrent.futures.Future``: at thousands of
appends per second the per-record cost of the hand-off is what group commit adds.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence

from trustlayer.errors import AuditError

__all__ = ["GroupCommitter", "Waiter"]


class Waiter:
    """One pending append: ``wait()`` blocks until the writer resolved it.

    An async caller's waiter carries its event loop and future instead of a lock; the
    writer settles all of one loop's futures with a single ``call_soon_threadsafe``.
    """

    __slots__ = ("_lock", "error", "future", "index", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 future: asyncio.Future[int] | None = None) -> None:
        self.index = -1
        self.error: BaseException | None = None
        self.loop, self.future = loop, future
        self._lock: threading.Lock | None = None
        if loop is None:
            self._lock = threading.Lock()
            self._lock.acquire()  # released once, by the writer

    def wait(self) -> int:
        """The entry's index once committed; raises the batch's ``AuditError`` if it failed."""
        if self._lock is None:
            raise RuntimeError("an async waiter is awaited through its future")
        with self._lock:
            pass
        if self.error is not None:
            raise self.error
        return self.index


class GroupCommitter:
    """A writer thread that calls ``flush(envelopes) -> first_index`` once per batch."""

    def __init__(self, flush: Callable[[Sequence[bytes]], int], *, max_batch: int = 1024,
                 name: str = "trustlayer-audit-writer") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._flush = flush
        self._max_batch = max_batch
        self._queue: deque[tuple[bytes, Waiter]] = deque()
        # A binary semaphore: released by submitters, taken by the writer when it runs dry.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._state = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, envelope: bytes) -> Waiter:
        """Queue one envelope; the waiter resolves to its log index once committed."""
        return self._enqueue(envelope, Waiter())

    def _enqueue(self, envelope: bytes, waiter: Waiter) -> Waiter:
        with self._state:
            if self._closed:
                raise AuditError("the audit store is closed; nothing more can be recorded")
            self._queue.append((envelope, waiter))
        self._poke()
        return waiter

    async def submit_async(self, envelope: bytes) -> int:
        """``submit`` and wait without blocking the event loop."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        self._enqueue(envelope, Waiter(loop, done))
        return await done

    def _poke(self) -> None:
        try:
            self._wake.release()
        except RuntimeError:
            pass  # already awake

    def _run(self) -> None:
        while True:
            self._wake.acquire()
            while self._queue:
                n = min(len(self._queue), self._max_batch)
                batch = [self._queue.popleft() for _ in range(n)]
                self._commit(batch)
            with self._state:
                if self._closed and not self._queue:
                    return

    def _commit(self, batch: list[tuple[bytes, Waiter]]) -> None:
        error: BaseException | None = None
        first = -1
        try:
            first = self._flush([envelope for envelope, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - every waiter must learn of the failure
            error = exc if isinstance(exc, AuditError) else AuditError(
                f"audit append failed ({type(exc).__name__}): {exc}")
            if error is not exc:
                error.__cause__ = exc
        by_loop: dict[asyncio.AbstractEventLoop, list[Waiter]] = {}
        for offset, (_, waiter) in enumerate(batch):
            waiter.index, waiter.error = (-1, error) if error is not None else (first + offset, None)
            if waiter.loop is not None:
                by_loop.setdefault(waiter.loop, []).append(waiter)
            elif waiter._lock is not None:
                waiter._lock.release()
        for loop, waiters in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, waiters)
            except RuntimeError:
                pass  # that event loop is closed: nobody is waiting any more

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._state:
            self._closed = True
        self._poke()
        self._thread.join()


def _settle(waiters: list[Waiter]) -> None:
    for w in waiters:
        if w.future is None or w.future.done():
            continue
        if w.error is not None:
            w.future.set_exception(w.error)
        else:
            w.future.set_result(w.index)
