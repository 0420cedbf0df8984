"""The one exception tree of trustlayer.

Every error trustlayer raises is a ``TrustError``; third-party errors are
translated at the boundary (``raise ... from exc``) so callers catch ours only::

    TrustError
    ├── ConfigError          a config or policy file is missing, malformed or inconsistent
    │   └── PolicyError      a policy file is invalid, or a policy cannot be evaluated
    ├── Blocked              the gate refused to let a message cross (fail closed)
    │   └── Unverified       verification was required and its quorum was not met
    ├── RedactionError       detection, pseudonymization or the vault failed
    ├── SignatureError       a signature, key, audience, nonce or time window check failed
    ├── AuditError           the audit log could not be written or read
    │   └── TamperedError    the audit log does not verify
    ├── DeadlineExceeded     a stage gave up waiting because the gate's deadline for it passed
    ├── EndpointError        an endpoint could not be reached or answered with an error
    │   └── EndpointTimeout  an endpoint did not answer within its deadline
    └── RouterError          the private router could not be trained, loaded or applied

No message in this tree ever contains raw personal data: it names objects,
stages, rules, files and lines, never the content that crossed.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "Blocked",
    "ConfigError",
    "DeadlineExceeded",
    "EndpointError",
    "EndpointTimeout",
    "PolicyError",
    "RedactionError",
    "RouterError",
    "SignatureError",
    "TamperedError",
    "TrustError",
    "Unverified",
]


class TrustError(Exception):
    """Base class of every error trustlayer raises."""


class ConfigError(TrustError):
    """A config file is missing, malformed or inconsistent.

    The message names the file, the line (when known) and the field.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field


class PolicyError(ConfigError):
    """A policy file is invalid, or a policy cannot be evaluated for a message."""


class Blocked(TrustError):
    """The gate refused to let a message cross.

    ``stage`` names the gate stage that failed or decided to block (``detect``,
    ``decide``, ``transform``, ``sign``, ``record``, ``authenticate``, ``restore``,
    ``verify``, ``send``), ``reason`` says why in one sentence without any raw content,
    and ``rule_ids`` lists the policy rules that decided, when a policy blocked.
    """

    def __init__(self, stage: str, reason: str, *, rule_ids: tuple[str, ...] = (),
                 record_id: str | None = None) -> None:
        super().__init__(f"blocked at {stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.rule_ids = rule_ids
        self.record_id = record_id


class Unverified(Blocked):
    """Verification was required for this hop and the quorum was not met."""

    def __init__(self, reason: str, *, verdict: object = None, record_id: str | None = None) -> None:
        super().__init__("verify", reason, record_id=record_id)
        self.verdict = verdict


class RedactionError(TrustError):
    """Detection, pseudonymization, the vault or restoration failed."""


class SignatureError(TrustError):
    """A signature, key, audience, nonce (replay) or time-window check failed."""


class AuditError(TrustError):
    """The audit log could not be written or read."""


class TamperedError(AuditError):
    """The audit log does not verify; ``index`` names the first bad entry when known."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class EndpointError(TrustError):
    """An endpoint could not be reached or answered with an error status."""

    def __init__(self, message: str, *, endpoint: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class EndpointTimeout(EndpointError):
    """An endpoint did not answer within its deadline."""


class RouterError(TrustError):
    """The private router could not be trained, loaded or applied."""


class DeadlineExceeded(TrustError):
    """A stage gave up waiting because the gate's deadline for it passed (the message names what it waited for)."""
