"""How a refused request is answered: an OpenAI-style error, as a response or as a stream event.

The proxy and the httpx transport both answer with these, so a client sees the same error
whichever way it came in. Messages carry no content: ``TrustError`` messages promise none,
and a foreign exception is named by its type only.
"""

from __future__ import annotations

import json
from typing import Any

from trustlayer.errors import Blocked, EndpointError, EndpointTimeout, TrustError, Unverified

__all__ = ["Refused", "error_event", "refusal"]


class Refused(Exception):
    """A request the proxy answers with an error response (built by ``error_response``)."""

    def __init__(self, status: int, type_: str, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.type, self.code, self.message = status, type_, code, message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The OpenAI-style error object."""
        return {"error": {"message": self.message, "type": self.type, "param": None, "code": self.code,
                          **self.extra}}


def error_event(refused: Refused) -> bytes:
    """The SSE event that ends a stream the gate (or the upstream) stopped."""
    # Once a stream has started the status is already 200; an error event is how OpenAI
    # streams report a failure, and the openai SDK raises on it.
    return b"data: " + json.dumps(refused.body()).encode() + b"\n\n"


def refusal(exc: BaseException) -> Refused:
    """Map an error to the response the client gets; messages carry no content (TrustError promise)."""
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, Unverified):
        return Refused(502, "unverified", "verification_failed", f"the answer could not be verified: {exc.reason}",
                        record_id=exc.record_id)
    if isinstance(exc, Blocked):
        if exc.stage == "parse":
            code = "invalid_json" if "not valid JSON" in exc.reason else "invalid_request"
            return Refused(400, "invalid_request_error", code, exc.reason, record_id=exc.record_id)
        rules = f" (rule {', '.join(exc.rule_ids)})" if exc.rule_ids else ""
        code = "policy_blocked" if exc.rule_ids or exc.stage == "decide" else "gate_blocked"
        return Refused(403, "blocked", code, f"request blocked at {exc.stage}{rules}: {exc.reason}",
                        stage=exc.stage, rule_ids=list(exc.rule_ids), record_id=exc.record_id)
    if isinstance(exc, EndpointTimeout):
        return Refused(504, "upstream_timeout", "upstream_timeout", str(exc))
    if isinstance(exc, EndpointError):
        if exc.status == 429:
            return Refused(429, "rate_limit_error", "upstream_rate_limited", str(exc))
        return Refused(502, "upstream_error", "upstream_error", str(exc))
    if isinstance(exc, TrustError):
        return Refused(500, "server_error", "trustlayer_error", f"{type(exc).__name__}: {exc}")
    # A foreign exception's text may quote content: name its type only.
    return Refused(500, "server_error", "internal_error", f"internal error ({type(exc).__name__})")
