"""A group committer whose writer can be held inside a flush, for tests of what queues behind it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from trustlayer.audit._writer import GroupCommitter, Waiter


def held_committer() -> tuple[GroupCommitter, threading.Event, list[list[bytes]]]:
    """A committer whose every flush waits for the event (set: they all go through), and the batches seen.

    Indices are numbered in flush order, as a store numbers them.
    """
    held = threading.Event()
    seen: list[list[bytes]] = []

    def flush(batch: Sequence[bytes]) -> int:
        seen.append(list(batch))
        held.wait(10)
        return sum(map(len, seen)) - len(batch)

    return GroupCommitter(flush), held, seen


def inside_first_flush(committer: GroupCommitter, seen: list[list[bytes]], envelope: bytes = b"h") -> Waiter:
    """Submit ``envelope`` and return once the writer is flushing it (alone): what is submitted next queues."""
    head = committer.submit(envelope)
    while not seen:
        time.sleep(0.005)
    return head
