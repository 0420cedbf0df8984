"""One thread that checks the deadlines of callers waiting for a gate path, so they need no timed wait.

A caller that hands a path to a worker could wait with ``Lock.acquire(timeout=...)`` and
look at the deadline whenever it wakes; but a timed wait arms a kernel timer, which on
this kind of VM costs more than the rest of the hand-off's bookkeeping (about 3 µs of the
~35 µs a watched path takes). Here the caller waits without a timeout, and this one thread
looks at every watched path every ``EVERY`` seconds; at a passed deadline the path's
``check`` itself wakes its caller. It ticks only while something is watched.

    watch(item)      # item.check() is called from the watchdog thread until it returns True
    forget(item)     # the caller's wait ended: stop watching
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

__all__ = ["EVERY", "Watched", "forget", "watch"]

_log = logging.getLogger("trustlayer.gate")

#: Seconds between two looks at the watched paths: how late past its deadline a timeout is noticed, at most.
EVERY = 0.05


class Watched(Protocol):
    def check(self) -> bool:
        """Look at the deadline; True when this no longer needs watching (its caller has been woken)."""
        ...


class _Dog:
    def __init__(self) -> None:
        self._active: dict[Watched, None] = {}  # insertion-ordered set; dict set/pop are atomic
        self._mutex = threading.Lock()  # guards only the sleeping <-> ticking transition
        self._sleeping = False
        self._wake = threading.Lock()
        self._wake.acquire()
        threading.Thread(target=self._loop, name="trustlayer-watchdog", daemon=True).start()

    def watch(self, item: Watched) -> None:
        self._active[item] = None
        if self._sleeping:  # the thread went idle; the flag is read again under the mutex
            with self._mutex:
                if self._sleeping:
                    self._sleeping = False
                    self._wake.release()

    def forget(self, item: Watched) -> None:
        self._active.pop(item, None)

    def _loop(self) -> None:
        while True:
            with self._mutex:
                # Idle only if nothing is watched *after* the flag is up: a watch() in between sees the flag.
                self._sleeping = True
                if self._active:
                    self._sleeping = False
                idle = self._sleeping
            if idle:
                self._wake.acquire()
            time.sleep(EVERY)
            for item in list(self._active):
                try:
                    if item.check():
                        self._active.pop(item, None)
                except Exception:  # noqa: BLE001 - the watchdog must outlive any one check
                    _log.exception("gate watchdog: a deadline check raised; it stays watched")


_dog: _Dog | None = None
_start = threading.Lock()


def watch(item: Watched) -> None:
    """Have ``item.check()`` called about every ``EVERY`` seconds until it returns True or is forgotten."""
    dog = _dog
    if dog is None:
        dog = _started()
    dog.watch(item)


def forget(item: Watched) -> None:
    """Stop watching ``item`` (nothing happens if it is not watched)."""
    dog = _dog
    if dog is not None:
        dog.forget(item)


def _started() -> _Dog:
    global _dog
    with _start:
        if _dog is None:
            _dog = _Dog()
        return _dog


def _forget_after_fork() -> None:
    # A forked child has no watchdog thread; a new one starts with the child's first watched path.
    global _dog, _start
    _dog = None
    _start = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
