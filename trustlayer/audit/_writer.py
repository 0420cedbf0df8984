"""Group commit: one writer thread turns appends from many threads into few transactions.

Each caller enqueues its envelope with a waiter and blocks on it; the writer takes
everything queued (up to ``max_batch``), hands the batch to ``flush`` (one transaction,
one fsync) and wakes every waiter with its index, or with the error if the batch
failed. A caller therefore returns only after its entry is durable, and a failed batch
fails every caller in it (fail closed: the gate blocks those messages).

The waiters are bare locks (threads) or the caller's own asyncio future, settled once
per batch and event loop, rather than ``concurrent.futures.Future``: at thousands of
appends per second the per-record cost of the hand-off is what group commit adds.
Async submissions wake the writer once per event-loop iteration, not once per record.

Thread waiters of a batch are woken as a chain: the writer releases the first, and each
woken waiter releases the next before it returns. Waking all of them from the writer
made each one wake up while the writer still held the GIL, go back to sleep waiting
for it, and wake again (three context switches per record instead of about one). A
waiter interrupted while it waits (``KeyboardInterrupt`` in the main thread) marks
itself abandoned, and whoever wakes it passes the wake-up on. As a last resort (a waiter
that is never waited for, an interruption at an unlucky instruction), the writer releases
whatever a chain has not reached after ``SWEEP_AFTER`` seconds, so no caller waits forever.

A thread that appends and waits (``append``) does not always need the writer: when no
batch is being written it takes the lead and commits the queue itself, its own entry
included, so an uncontended append costs no thread hand-off at all (each hand-off is a
context switch, and on a busy host a wait for a core). Whoever holds the lead (the
writer thread or an appending thread) is the only one committing; an append that finds
the lead taken pokes the writer, which commits whatever the current leader left.

Deadlines (``trustlayer.deadline``): when ``append`` runs in a gate stage with a deadline,
every wait in it ends by that deadline and raises ``DeadlineExceeded``. A waiter that
gives up is abandoned as an interrupted one is (the chain passes over it); an appending
leader that cannot get the store's write lock in time puts its batch back at the head of
the queue for the writer and gives up too. The writer drops the entries of callers that
gave up (out of time, interrupted, or an async caller cancelled) when it takes them from
the queue, so the log does not claim a hop the gate then blocked. An entry already in a
batch being written when its caller gives up is committed all the same (a transaction
under way is not unpicked): the gate blocks that message too and records the block, and
the log holds both. Other callers' entries are never failed by one caller's deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from trustlayer import deadline
from trustlayer.errors import AuditError, DeadlineExceeded

__all__ = ["SWEEP_AFTER", "GroupCommitter", "Waiter"]


def _commit_of(store: str) -> str:
    """What a waiter waits for, as ``DeadlineExceeded`` names it."""
    return f"{store} to commit the entry (it is dropped unless its batch is already being written)"


_COMMIT = _commit_of("the audit store")

SWEEP_AFTER = 0.25
"""Seconds after which the writer releases thread waiters that their batch's chain has not reached."""


class Waiter:
    """One pending append: ``wait()`` blocks until the writer resolved it.

    An async caller's waiter carries its event loop and future instead of a lock; the
    writer settles all of one loop's futures with a single ``call_soon_threadsafe``.
    """

    __slots__ = ("_abandoned", "_lock", "_next", "_released", "error", "future", "index", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 future: asyncio.Future[int] | None = None) -> None:
        self.index = -1
        self.error: BaseException | None = None
        self.loop, self.future = loop, future
        self._lock: threading.Lock | None = None
        self._next: Waiter | None = None  # the next thread waiter of the same batch
        self._abandoned = False
        self._released = False
        if loop is None:
            self._lock = threading.Lock()
            self._lock.acquire()  # released once, by the writer

    def wait(self, what: str = _COMMIT) -> int:
        """The entry's index once committed; raises the batch's ``AuditError`` if it failed.

        In a gate stage with a deadline, gives up when it passes and raises ``DeadlineExceeded``
        naming ``what`` it waited for; the entry is then dropped, unless its batch is already being
        written.
        """
        lock = self._lock
        if lock is None:
            raise RuntimeError("an async waiter is awaited through its future")
        try:
            deadline.acquire(lock, what)
        except BaseException:
            self._abandon()
            raise
        _wake(self._next)
        if self.error is not None:
            raise self.error
        return self.index

    def _abandon(self) -> None:
        """Stop waiting (interrupted, out of time): the chain passes over this waiter from now on."""
        # Whoever releases us from now on passes the wake-up on; if that already happened,
        # pass it on ourselves. (Both may: a double release is harmless.)
        self._abandoned = True
        if self._released:
            _wake(self._next)


class GroupCommitter:
    """A writer thread that calls ``flush(envelopes) -> first_index`` once per batch."""

    def __init__(self, flush: Callable[[Sequence[bytes]], int], *, max_batch: int = 1024,
                 name: str = "trustlayer-audit-writer", what: str = "the audit store") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._flush = flush
        self._waits_for = _commit_of(what)  # for DeadlineExceeded: built once, not per append
        self._max_batch = max_batch
        self._queue: deque[tuple[tuple[bytes, ...], Waiter]] = deque()
        # A binary semaphore: released by submitters, taken by the writer when it runs dry.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._state = threading.Lock()
        self._lead = threading.Lock()  # held by whoever is committing: the writer, or an appending thread
        self._closed = False
        self._poke_scheduled: set[asyncio.AbstractEventLoop] = set()  # loops with a _poke_from pending
        # (commit time, thread waiters) of batches whose wake-up chain may not have finished
        self._chains: deque[tuple[float, list[Waiter]]] = deque()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def append(self, envelopes: tuple[bytes, ...]) -> int:
        """Queue envelopes, commit them (in this thread when nobody else is committing), return the first index.

        Raises the batch's ``AuditError`` when the commit failed, and ``DeadlineExceeded`` when
        the gate stage's deadline passed first (see the module docstring).
        """
        if not envelopes:
            raise ValueError("append needs at least one envelope")
        waiter = self._enqueue(envelopes, Waiter(), poke=False)
        if self._lead.acquire(blocking=False):
            out_of_time: DeadlineExceeded | None = None
            try:
                self._drain(inline=waiter)
            except DeadlineExceeded as exc:
                # Our batch is back in the queue, for the writer. Given up before the lead is released,
                # so the writer cannot take our entry before it knows to drop it.
                out_of_time = exc
                waiter._abandon()
            finally:
                self._lead.release()
            if self._queue:
                self._poke()  # appended while we committed (or given back): the writer takes those
            if out_of_time is not None:
                raise out_of_time
        else:
            self._poke()  # a batch is being written; the writer commits what it leaves behind
        return waiter.wait(self._waits_for)

    def submit(self, envelope: bytes) -> Waiter:
        """Queue one envelope; the waiter resolves to its log index once committed."""
        return self._enqueue((envelope,), Waiter())

    def _enqueue(self, envelopes: tuple[bytes, ...], waiter: Waiter, *, poke: bool = True) -> Waiter:
        with self._state:
            if self._closed:
                raise AuditError("the audit store is closed; nothing more can be recorded")
            self._queue.append((envelopes, waiter))
        if poke:
            self._poke()
        return waiter

    async def submit_async(self, envelope: bytes) -> int:
        """``submit`` and wait without blocking the event loop."""
        return await self._submit_async((envelope,))

    async def submit_many_async(self, envelopes: tuple[bytes, ...]) -> int:
        """Queue envelopes at consecutive indices and wait without blocking the event loop; the first index."""
        if not envelopes:
            raise ValueError("submit_many needs at least one envelope")
        return await self._submit_async(envelopes)

    def _submit_async(self, envelopes: tuple[bytes, ...]) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        self._enqueue(envelopes, Waiter(loop, done), poke=False)
        # One wake-up per event-loop iteration, after every task of the iteration has queued
        # its records: poking per record woke the writer thread, which preempted the loop
        # only to find the GIL taken (two context switches per record, batches of ~3).
        if loop not in self._poke_scheduled:
            self._poke_scheduled.add(loop)
            loop.call_soon(self._poke_from, loop)
        return done

    def _poke_from(self, loop: asyncio.AbstractEventLoop) -> None:
        self._poke_scheduled.discard(loop)
        self._poke()

    def _poke(self) -> None:
        wake = self._wake
        if wake.locked():  # unlocked: a wake-up is pending already (most submissions under load)
            try:
                wake.release()
            except RuntimeError:
                pass  # another submitter released it in between

    def _run(self) -> None:
        while True:
            if not self._chains:
                self._wake.acquire()
            elif not self._wake.acquire(timeout=SWEEP_AFTER):
                self._sweep()
                continue
            with self._lead:
                self._drain()
                self._sweep()
            with self._state:
                if self._closed and not self._queue:
                    with self._lead:
                        self._sweep(force=True)
                    return

    def _drain(self, inline: Waiter | None = None) -> None:
        """Commit what is queued, in batches (the caller holds the lead).

        An appending leader (``inline``) stops once its own entry committed: under steady load
        the queue never runs dry, and the rest is the writer's (``append`` pokes it).
        """
        queue = self._queue
        while queue:
            # whole submissions, up to max_batch envelopes (a larger single one goes alone), less
            # those whose callers gave up while they were queued
            batch = [queue.popleft()]
            count = len(batch[0][0])
            while queue and count + len(queue[0][0]) <= self._max_batch:
                item = queue.popleft()
                batch.append(item)
                count += len(item[0])
            batch = [item for item in batch if not _gave_up(item[1])]
            if not batch:
                continue
            try:
                self._commit(batch, inline)
            except BaseException as exc:
                if isinstance(exc, DeadlineExceeded) and self._give_back(batch):
                    raise
                # Interrupted (an appending main thread got KeyboardInterrupt), or out of time while the
                # store closes: nobody in this batch may wait forever; an entry that did not commit fails,
                # one that did returns.
                by_loop: dict[asyncio.AbstractEventLoop, list[Waiter]] = {}
                for _, waiter in batch:
                    if waiter.index < 0 and waiter.error is None:
                        waiter.error = AuditError("the append was interrupted before its batch committed")
                    if waiter.loop is not None:  # an async caller learns it through its future
                        by_loop.setdefault(waiter.loop, []).append(waiter)
                    elif not waiter._released:
                        _release(waiter)
                _settle_soon(by_loop)
                raise
            if inline is not None and any(waiter is inline for _, waiter in batch):
                return

    def _give_back(self, batch: list[tuple[tuple[bytes, ...], Waiter]]) -> bool:
        """Put a batch an appending leader had no time to write back at the head of the queue, unless closing.

        Under ``_state``, as the writer's last look at the queue before it stops is, so a batch
        given back is never left behind by a writer that has stopped.
        """
        with self._state:
            if self._closed:
                return False
            self._queue.extendleft(reversed(batch))
            return True

    def _sweep(self, *, force: bool = False) -> None:
        """Forget finished chains; release the waiters of chains older than ``SWEEP_AFTER``."""
        now = time.monotonic()
        while self._chains:
            started, waiters = self._chains[0]
            # a chain releases in order: when its last waiter is released, all are
            if not waiters[-1]._released:
                if not force and now - started < SWEEP_AFTER:
                    return
                for waiter in waiters:
                    if not waiter._released:
                        _release(waiter)
            self._chains.popleft()

    def _commit(self, batch: list[tuple[tuple[bytes, ...], Waiter]], inline: Waiter | None = None) -> None:
        error: BaseException | None = None
        first = -1
        try:
            first = self._flush([envelope for envelopes, _ in batch for envelope in envelopes])
        except BaseException as exc:  # noqa: BLE001 - every waiter must learn of the failure
            if isinstance(exc, DeadlineExceeded) and inline is not None:
                raise  # an appending leader's deadline: nothing was written, _drain gives the batch back
            error = exc if isinstance(exc, AuditError) else AuditError(
                f"audit append failed ({type(exc).__name__}): {exc}")
            if error is not exc:
                error.__cause__ = exc
        by_loop: dict[asyncio.AbstractEventLoop, list[Waiter]] = {}
        chain: list[Waiter] = []
        index = first
        for envelopes, waiter in batch:
            waiter.index, waiter.error = (-1, error) if error is not None else (index, None)
            index += len(envelopes)
            if waiter.loop is not None:
                by_loop.setdefault(waiter.loop, []).append(waiter)
            else:
                if chain:
                    chain[-1]._next = waiter
                chain.append(waiter)
        if chain:
            if chain != [inline]:  # a leader's own entry alone needs no sweep: the leader is running
                self._chains.append((time.monotonic(), chain))
                if inline is not None:
                    self._poke()  # let the writer sweep this chain should a waiter never pass it on
            _wake(chain[0])  # the rest of the chain follows (see the module docstring)
        _settle_soon(by_loop)

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._state:
            self._closed = True
        self._poke()
        self._thread.join()


def _gave_up(waiter: Waiter) -> bool:
    """Nobody waits for this entry any more: its thread gave up, or its async caller was cancelled."""
    return waiter._abandoned or (waiter.future is not None and waiter.future.cancelled())


def _release(waiter: Waiter) -> None:
    waiter._released = True  # set before the release, read after _abandoned (see Waiter.wait)
    if waiter._lock is not None:
        try:
            waiter._lock.release()
        except RuntimeError:
            pass  # released twice (a chain and the sweep, or a waiter and its waker): harmless


def _wake(waiter: Waiter | None) -> None:
    """Release ``waiter``, and the ones after it for as long as they were abandoned."""
    while waiter is not None:
        _release(waiter)
        if not waiter._abandoned:
            return
        waiter = waiter._next


def _settle_soon(by_loop: dict[asyncio.AbstractEventLoop, list[Waiter]]) -> None:
    """Settle async waiters' futures on their own event loops: one callback per loop and batch."""
    for loop, waiters in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, waiters)
        except RuntimeError:
            pass  # that event loop is closed: nobody is waiting any more


def _settle(waiters: list[Waiter]) -> None:
    for w in waiters:
        if w.future is None or w.future.done():
            continue
        if w.error is not None:
            w.future.set_exception(w.error)
        else:
            w.future.set_result(w.index)
