"""Long-lived worker threads with a cheap hand-off, for the gate's per-stage timeouts.

A Python thread cannot be interrupted, so a path whose stages have deadlines runs on
a worker while the caller waits with a timeout; a hung stage is abandoned there. A
``ThreadPoolExecutor`` hand-off (queue, future, condition) costs several times more
than the path itself; here an idle worker is taken from a stack and woken through
one lock, and it goes back on the stack when its job is done. Workers are shared by
every gate in the process; at most ``MAX_IDLE`` wait idle, the rest end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["MAX_IDLE", "start"]

MAX_IDLE = 32

_idle: list[_Worker] = []


class _Worker:
    __slots__ = ("_go", "_job")

    def __init__(self) -> None:
        self._go = threading.Lock()
        self._go.acquire()
        self._job: Callable[[], None] | None = None
        threading.Thread(target=self._loop, name="trustlayer-gate", daemon=True).start()

    def run(self, job: Callable[[], None]) -> None:
        self._job = job
        self._go.release()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            job, self._job = self._job, None
            if job is None:
                return
            job()  # jobs catch their own errors and signal their caller themselves
            if len(_idle) >= MAX_IDLE:
                return
            _idle.append(self)  # list.append/pop are atomic: no lock needed


def start(job: Callable[[], None]) -> None:
    """Run ``job`` on an idle worker thread, or on a new one when none is idle.

    ``job`` must not raise: it reports its outcome to whoever waits for it.
    """
    try:
        worker = _idle.pop()
    except IndexError:
        worker = _Worker()
    worker.run(job)


def _forget_after_fork() -> None:
    # A forked child has none of its parent's threads: idle entries would never wake.
    _idle.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
