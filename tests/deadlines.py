"""Calling a stage as the gate would under a stage deadline, in a thread the test can stop waiting for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from trustlayer import deadline


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
        previous = deadline._enter(None if seconds is None else time.monotonic() + seconds)
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
