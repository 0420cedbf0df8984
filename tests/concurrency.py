"""Running a test's workers in threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


def run_in_threads(targets: Iterable[Callable[[], object]], *, timeout: float | None = None) -> None:
    """Start one thread per target, then wait for all of them (each for at most ``timeout`` seconds)."""
    threads = [threading.Thread(target=target) for target in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
