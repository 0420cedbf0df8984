"""When to try an HTTP request again, and how long to wait first (no I/O here).

The sync and async clients drive the same policy: a request is retried on 429 and
5xx answers and on connection failures, waiting an exponentially growing, jittered
delay, or the delay the server asked for in ``Retry-After``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "retry_after_seconds"]

# RFC 9110 15.5.20 / 15.6: 429 and server errors are worth another try; 501 (the
# server cannot do this at all) and 505 (wrong HTTP version) never get better.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507, 508, 509, 520, 521, 522, 523, 524, 529})


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """The delay a ``Retry-After`` header asks for, in seconds; ``None`` if absent or unreadable.

    RFC 9110 10.2.3: the value is either a number of seconds or an HTTP-date.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _milliseconds(value: str | None) -> float | None:
    try:
        ms = float(value) if value is not None else None
    except ValueError:
        return None
    return ms / 1000 if ms is not None and 0 <= ms < float("inf") else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and after how long a failed request is tried again.

    ``retries`` extra attempts follow the first; the n-th waits a random time in
    ``[0, min(max_backoff, backoff * 2**n)]`` ("full jitter"), unless the server sent
    ``Retry-After``, which is honoured up to ``max_retry_after`` seconds (a longer wait
    gives up instead of hanging the caller).
    """

    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("backoff, max_backoff and max_retry_after must be >= 0")

    @staticmethod
    def retryable_status(status: int) -> bool:
        """True for statuses another attempt may cure (429 and transient 5xx)."""
        return status in _RETRY_STATUSES

    def delay(self, attempt: int, *, retry_after: str | None = None,
              retry_after_ms: str | None = None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` (0-based ``attempt`` just failed).

        ``retry_after_ms`` is the millisecond variant some APIs (OpenAI) send beside
        ``Retry-After``; it wins when readable. ``None`` means do not retry: attempts are
        used up, or the server asked for a longer pause than ``max_retry_after``.
        """
        if attempt >= self.retries:
            return None
        asked = _milliseconds(retry_after_ms)
        if asked is None:
            asked = retry_after_seconds(retry_after)
        if asked is not None:
            return asked if asked <= self.max_retry_after else None
        return random.uniform(0.0, min(self.max_backoff, self.backoff * (2 ** attempt)))
