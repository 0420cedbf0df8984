"""Translating httpx failures and error bodies into trustlayer errors that never quote content."""

from __future__ import annotations

import json
import re
from types import TracebackType

import httpx

from trustlayer.errors import EndpointError, EndpointTimeout

__all__ = ["Retry", "Translate", "error_detail"]

# Only short identifiers from an error body may be repeated: its free-text message can
# echo the request content back.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)


def error_detail(body: bytes) -> str:
    """`` (type: x, code: y)`` from an OpenAI error body, only when both are plain identifiers."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(error, dict):
        return ""
    parts = [f"{k}: {error[k]}" for k in ("type", "code")
             if isinstance(error.get(k), str) and _SAFE_ID.match(error[k])]
    return f" ({', '.join(parts)})" if parts else ""


class Retry(Exception):
    """Internal: a connection failure that another attempt may cure; carries the error to raise."""

    def __init__(self, error: EndpointError) -> None:
        super().__init__(str(error))
        self.error = error


class Translate:
    """Turns httpx errors into ``EndpointError`` / ``EndpointTimeout`` (or ``Retry``) at the boundary."""

    def __init__(self, endpoint_id: str, origin: str, timeout: float | None, path: str, *, attempts: int,
                 retrying: bool) -> None:
        self._id = endpoint_id
        self._origin = origin
        self._timeout = timeout
        self._path = path
        self._attempts = attempts
        self._retrying = retrying

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None or not isinstance(exc, httpx.HTTPError):
            return
        tries = f" after {self._attempts} attempt{'s' if self._attempts > 1 else ''}"
        error: EndpointError
        if isinstance(exc, httpx.TimeoutException):
            phase = {httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "read", httpx.WriteTimeout: "write",
                     httpx.PoolTimeout: "pool"}.get(type(exc), "request")
            error = EndpointTimeout(f"endpoint {self._id!r} timed out ({phase}, limit {self._timeout}s) on "
                                    f"POST {self._path}{tries if self._retrying else ''}", endpoint=self._id)
        elif isinstance(exc, httpx.ConnectError):
            error = EndpointError(f"endpoint {self._id!r} at {self._origin} could not be reached{tries}",
                                  endpoint=self._id)
        else:
            error = EndpointError(f"endpoint {self._id!r} failed on POST {self._path}: "
                                  f"{type(exc).__name__}", endpoint=self._id)
        error.__cause__ = exc
        if self._retrying and isinstance(exc, _CONNECT_ERRORS):
            raise Retry(error) from exc
        raise error from exc
