"""Per-key sequence numbers that never repeat, across threads, restarts and processes.

    >>> from trustlayer.provenance.sequence import SequenceCounter
    >>> counter = SequenceCounter(key_id, Path(".trustlayer/id.key.seq"))   # doctest: +SKIP
    >>> counter.next()                                                       # doctest: +SKIP
    1

Numbers are handed out from blocks reserved on disk: before the first number of a block
is used, the block's end (the *high-water mark*) is written and fsynced to the state file,
so a crash or restart resumes above it and never reuses a number. The cost is one fsync
per ``block`` numbers. ``close()`` (also run at interpreter exit) gives the unused rest of
the block back, so a clean restart continues without a gap; after a crash (SIGKILL, power
loss) the next process starts above the high-water mark, leaving a gap of at most
``block - 1`` numbers. ``block=1`` makes every number durable before use (no gaps from
crashes, one fsync per record).

Guarantees, for one key:
- within a process: strictly increasing, unique, safe for any number of threads;
- across restarts: strictly increasing (the next process starts above the high-water mark);
- several processes sharing one key *and* one state file: unique (reservation happens
  under an exclusive ``flock`` on ``<state>.lock``), each process increasing, but
  interleaved in the log. Give each process its own key if the log must show one
  increasing sequence per key.

A reader of the log should therefore treat a repeated (key, sequence) pair as a replay or
equivocation. A gap is either a crash of the signer (or a record signed but never
appended, e.g. the process died between sign and append) or a deleted record; the Merkle
tree and checkpoints tell the two apart for entries a checkpoint covers. Even within one
process, concurrent threads may append their records to the log in a different order than
they drew numbers.

The state file is JSON ``{"<key id>": <high-water mark>, ...}``, so one file can serve a
key and its successors after rotation.

In a gate stage with a deadline (``trustlayer.deadline``), ``next()`` waits for the
counter's lock and for another process's ``flock`` no longer than the deadline, then
raises ``DeadlineExceeded``; writing and fsyncing a reservation is disk work, not a wait.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import weakref
from pathlib import Path

from trustlayer import deadline
from trustlayer.errors import ConfigError, DeadlineExceeded

__all__ = ["DEFAULT_BLOCK", "SequenceCounter"]

DEFAULT_BLOCK = 1024

_POLL_MAX = 0.02  # longest pause between tries for a file lock another process holds, under a deadline


class _Block:
    """The numbers of the current reservation: ``next`` up to ``limit`` (exclusive)."""

    __slots__ = ("limit", "next", "reserved")

    def __init__(self, limit: int) -> None:
        self.next = 1
        self.limit = limit
        self.reserved = 0  # the high-water mark this counter wrote last (0: none)


class SequenceCounter:
    """Hands out sequence numbers for one key; ``state_path=None`` keeps them in memory only.

    Without a state file the numbers restart at 1 with every process: use that only with a
    key that lives no longer than the process (tests, throwaway keys).
    """

    def __init__(self, key_id: str, state_path: Path | None, *, block: int = DEFAULT_BLOCK) -> None:
        if block < 1:
            raise ValueError(f"sequence block must be at least 1, got {block}")
        self.key_id = key_id
        self.state_path = Path(state_path) if state_path is not None else None
        self.block = block
        self._lock = threading.Lock()
        self._waits_for = f"the sequence counter of key {key_id[:16]} (another thread holds it)"
        self._block = _Block(1 if self.state_path is not None else 1 << 62)
        self._finalizer = None
        if self.state_path is not None:
            # at interpreter exit (or when collected) give back the unused rest of the block
            self._finalizer = weakref.finalize(self, _release, self._lock, self._block, self.state_path, key_id)

    def next(self) -> int:
        """The next number for this key (reserving a new block on disk when needed)."""
        deadline.acquire(self._lock, self._waits_for)
        try:
            b = self._block
            if b.next >= b.limit:
                self._reserve()
            n = b.next
            b.next += 1
            return n
        finally:
            self._lock.release()

    def close(self) -> None:
        """Give back the unused rest of the reserved block, so a restart continues without a gap."""
        if self._finalizer is not None:
            self._finalizer()

    def _reserve(self) -> None:
        path = self.state_path
        if path is None:
            raise ConfigError("sequence numbers are exhausted for an in-memory counter")
        b = self._block
        try:
            with _FileLock(path):
                state = _read(path)
                high = max(int(state.get(self.key_id, 0)), b.next - 1)
                start, end = high + 1, high + self.block
                state[self.key_id] = end
                _write(path, state)
        except OSError as exc:
            raise ConfigError(f"cannot reserve sequence numbers in {str(path)!r}: {exc.strerror}",
                              path=str(path)) from exc
        b.next, b.limit, b.reserved = start, end + 1, end


class _FileLock:
    """An exclusive ``flock`` on ``<state>.lock`` (released when the file closes).

    Without a deadline it blocks until the lock is free; under one it tries without
    blocking, pausing briefly between tries, until the deadline passes.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path.with_name(path.name + ".lock")

    def __enter__(self) -> None:
        self._fh = open(self._path, "a+b")  # noqa: SIM115 - closed in __exit__
        try:
            if deadline.remaining() is None:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
            else:
                self._poll()
        except BaseException:
            self._fh.close()
            raise

    def _poll(self) -> None:
        pause = 0.001
        while True:
            try:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError as exc:
                left = deadline.remaining()
                if not left:
                    raise DeadlineExceeded(f"gave up waiting for the lock on {str(self._path)!r} (another process "
                                           "holds it): the stage's deadline passed") from exc
                time.sleep(min(pause, left))
                pause = min(2 * pause, _POLL_MAX)

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def _release(lock: threading.Lock, block: _Block, path: Path, key_id: str) -> None:
    with lock:
        if not block.reserved or block.next > block.reserved:
            return
        try:
            with _FileLock(path):
                state = _read(path)
                # only if nobody (another process) reserved after us; else the numbers stay skipped
                if state.get(key_id) == block.reserved:
                    state[key_id] = block.next - 1
                    _write(path, state)
        except (OSError, ConfigError, DeadlineExceeded):
            return  # a gap is harmless; never fail at exit (nor in a stage the collector interrupts)
        block.limit = block.next  # anything further must reserve anew
        block.reserved = 0


def _read(path: Path) -> dict[str, int]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        state = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"sequence state file {str(path)!r} is not valid JSON; refusing to restart "
                          "numbering (restore it or remove it together with the key)", path=str(path)) from exc
    if not isinstance(state, dict) or not all(isinstance(v, int) and not isinstance(v, bool)
                                              for v in state.values()):
        raise ConfigError(f"sequence state file {str(path)!r} must map key ids to integers", path=str(path))
    return state


def _write(path: Path, state: dict[str, int]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(json.dumps(state, sort_keys=True).encode())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    # the rename itself must be durable before numbers from the block are used
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
