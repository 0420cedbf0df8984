"""Group commit: one writer thread turns appends from many threads into few transactions.

Each caller enqueues its envelope and waits on a future; the writer takes everything
queued (up to ``max_batch``), hands the batch to ``flush`` (one transaction, one fsync)
and resolves every future with its index, or with the error if the batch failed.
A caller therefore returns only after its entry is durable, and a failed batch fails
every caller in it (fail closed: the gate blocks those messages).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from trustlayer.errors import AuditError

__all__ = ["GroupCommitter"]


class GroupCommitter:
    """A writer thread that calls ``flush(envelopes) -> first_index`` once per batch."""

    def __init__(self, flush: Callable[[Sequence[bytes]], int], *, max_batch: int = 1024,
                 name: str = "trustlayer-audit-writer") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._flush = flush
        self._max_batch = max_batch
        self._queue: deque[tuple[bytes, Future[int]]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, envelope: bytes) -> Future[int]:
        """Queue one envelope; the future resolves to its log index once committed."""
        future: Future[int] = Future()
        with self._cond:
            if self._closed:
                raise AuditError("the audit store is closed; nothing more can be recorded")
            self._queue.append((envelope, future))
            self._cond.notify()
        return future

    def _take(self) -> list[tuple[bytes, Future[int]]] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            n = min(len(self._queue), self._max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                first = self._flush([envelope for envelope, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter must learn of the failure
                error = exc if isinstance(exc, AuditError) else AuditError(
                    f"audit append failed ({type(exc).__name__}): {exc}")
                if error is not exc:
                    error.__cause__ = exc
                for _, future in batch:
                    future.set_exception(error)
                continue
            for offset, (_, future) in enumerate(batch):
                future.set_result(first + offset)

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
