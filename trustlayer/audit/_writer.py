"""Group commit: one writer thread turns appends from many threads into few transactions.

Each caller enqueues its envelope with a waiter and blocks on it; the writer takes
everything queued (up to ``max_batch``), hands the batch to ``flush`` (one transaction,
one fsync) and wakes every waiter with its index, or with the error if the batch
failed. A caller therefore returns only after its entry is durable, and a failed batch
fails every caller in it (fail closed: the gate blocks those messages).

The waiters are bare locks rather than ``concurrent.futures.Future``: at thousands of
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
    """One pending append: ``wait()`` blocks until the writer resolved it."""

    __slots__ = ("_callback", "_lock", "error", "index")

    def __init__(self, callback: Callable[[Waiter], None] | None = None) -> None:
        self.index = -1
        self.error: BaseException | None = None
        self._callback = callback
        self._lock = threading.Lock()
        self._lock.acquire()  # released once, by the writer

    def _resolve(self, index: int, error: BaseException | None) -> None:
        self.index, self.error = index, error
        try:
            if self._callback is not None:
                self._callback(self)
        except RuntimeError:
            pass  # the caller's event loop is gone: nobody is waiting any more
        finally:
            self._lock.release()

    def wait(self) -> int:
        """The entry's index once committed; raises the batch's ``AuditError`` if it failed."""
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

    def submit(self, envelope: bytes, callback: Callable[[Waiter], None] | None = None) -> Waiter:
        """Queue one envelope; the waiter resolves to its log index once committed."""
        waiter = Waiter(callback)
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

        def resolve(w: Waiter) -> None:
            loop.call_soon_threadsafe(_settle, done, w)

        self.submit(envelope, resolve)
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
        try:
            first = self._flush([envelope for envelope, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - every waiter must learn of the failure
            error = exc if isinstance(exc, AuditError) else AuditError(
                f"audit append failed ({type(exc).__name__}): {exc}")
            if error is not exc:
                error.__cause__ = exc
            for _, waiter in batch:
                waiter._resolve(-1, error)
            return
        for offset, (_, waiter) in enumerate(batch):
            waiter._resolve(first + offset, None)

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._state:
            self._closed = True
        self._poke()
        self._thread.join()


def _settle(done: asyncio.Future[int], waiter: Waiter) -> None:
    if done.cancelled():
        return
    if waiter.error is not None:
        done.set_exception(waiter.error)
    else:
        done.set_result(waiter.index)
