"""Sticky taint: the data classes a conversation has carried, kept for its later turns and hops."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["TaintStore"]


class TaintStore:
    """Per-conversation sets of data classes; only ever grows for a conversation.

    In-process and bounded (least recently used conversations are forgotten first,
    after ``max_conversations``); peers' classes arrive through signed records.
    """

    def __init__(self, *, max_conversations: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._classes: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._max = max_conversations

    def get(self, conversation_id: str) -> frozenset[str]:
        """The classes this conversation has carried so far."""
        with self._lock:
            found = self._classes.get(conversation_id)
            if found is not None:
                self._classes.move_to_end(conversation_id)
            return found or frozenset()

    def add(self, conversation_id: str, classes: Iterable[str]) -> frozenset[str]:
        """Add classes to a conversation's taint; return the new taint."""
        new = frozenset(classes)
        with self._lock:
            merged = self._classes.get(conversation_id, frozenset()) | new
            if new or conversation_id in self._classes:
                self._classes[conversation_id] = merged
                self._classes.move_to_end(conversation_id)
                while len(self._classes) > self._max:
                    self._classes.popitem(last=False)
            return merged
