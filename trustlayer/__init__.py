"""trustlayer: a trust and privacy gate for every hop between LLMs, devices and agents."""

from trustlayer.config import Config, load_config
from trustlayer.errors import (
    AuditError,
    Blocked,
    ConfigError,
    EndpointError,
    EndpointTimeout,
    PolicyError,
    RedactionError,
    RouterError,
    SignatureError,
    TamperedError,
    TrustError,
    Unverified,
)
from trustlayer.types import (
    Box,
    Channel,
    Decision,
    Endpoint,
    Finding,
    Hop,
    Kind,
    Message,
    Operator,
    Outcome,
    Route,
    Verdict,
    VerifyRequirement,
)

__version__ = "0.1.0"

__all__ = [
    "AuditError",
    "Blocked",
    "Box",
    "Channel",
    "Config",
    "ConfigError",
    "Decision",
    "Endpoint",
    "EndpointError",
    "EndpointTimeout",
    "Finding",
    "Hop",
    "Kind",
    "Message",
    "Operator",
    "Outcome",
    "PolicyError",
    "RedactionError",
    "Route",
    "RouterError",
    "SignatureError",
    "TamperedError",
    "TrustError",
    "Unverified",
    "Verdict",
    "VerifyRequirement",
    "load_config",
]
