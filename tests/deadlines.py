"""Calling a stage as the gate would under a stage deadline, in a thread the test can stop waiting for."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from trustlayer import deadline
from trustlayer.errors import Blocked, DeadlineExceeded


@dataclass
class Call:
    """A call running in its own thread; ``join`` waits for it (at most ``timeout`` seconds)."""

    thread: threading.Thread
    value: list[object] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    def join(self, timeout: float = 10.0) -> Call:
        self.thread.join(timeout)
        return self

    @property
    def finished(self) -> bool:
        return not self.thread.is_alive()

    @property
    def raised(self) -> BaseException | None:
        return self.error[0] if self.error else None


def start(fn: Callable[[], object], *, seconds: float | None) -> Call:
    """Run ``fn`` in a new thread, with a stage deadline ``seconds`` from its start (``None``: no deadline)."""
    value: list[object] = []
    error: list[BaseException] = []

    def run() -> None:
        previous, _ = deadline._enter(None if seconds is None else time.monotonic() + seconds)
        try:
            value.append(fn())
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            error.append(exc)
        finally:
            deadline._leave(previous)

    call = Call(threading.Thread(target=run, daemon=True), value, error)  # daemon: a failed test never hangs the run
    call.thread.start()
    return call


def held(lock: threading.Lock) -> threading.Lock:
    """``lock``, taken from another thread (a real holder: not this test's own thread)."""
    taken = threading.Event()

    def take() -> None:
        lock.acquire()
        taken.set()

    threading.Thread(target=take, daemon=True).start()
    if not taken.wait(10):
        raise RuntimeError("could not take the lock for the test")
    return lock


def gives_up(fn: Callable[[], object], lock: threading.Lock, *, about: str, hidden: str = "") -> Call:
    """Under a 0.3 s deadline ``fn`` gives up on ``lock`` (held elsewhere), naming ``about``; the lock is let go after.

    ``hidden`` (a raw value the call handled) must not appear in the error.
    """
    try:
        call = start(fn, seconds=0.3).join()
        assert call.finished, f"waited past its deadline for {about}"
        assert lock.locked()  # it gave up while the holder still held
        assert isinstance(call.raised, DeadlineExceeded), call.raised
        assert about in str(call.raised)
        assert not hidden or hidden not in str(call.raised)
    finally:
        lock.release()
    return call


def waits(fn: Callable[[], object], lock: threading.Lock) -> Call:
    """Without a deadline ``fn`` waits for ``lock`` (held elsewhere) until it is let go, then succeeds."""
    call = start(fn, seconds=None)
    time.sleep(0.5)
    assert not call.finished
    lock.release()
    call.join()
    assert call.finished and call.raised is None, call.raised
    return call


@contextmanager
def writing(path: str | Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the SQLite file ``path``, holding its write lock (``BEGIN IMMEDIATE``) until the end."""
    other = sqlite3.connect(str(path), isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


def blocked_in_time(fn: Callable[[], object], *, stage: str, seconds: float) -> Blocked:
    """``fn`` (a gate path, with no deadline of its own) returns Blocked at ``stage``, "timed out after ``seconds``".

    The caller checks that what the stage waited for is still held: it gave up, it did not get through.
    """
    call = start(fn, seconds=None).join()
    assert call.finished, f"the gate waited past the {stage} stage's deadline"
    blocked = call.raised
    assert isinstance(blocked, Blocked) and blocked.stage == stage, blocked
    assert blocked.reason.startswith(f"timed out after {seconds} s"), blocked.reason
    return blocked
