"""trustlayer: a trust and privacy gate for every hop between LLMs, devices and agents."""

from trustlayer import deadline as deadline  # the module stage authors use (trustlayer.deadline)
from trustlayer.config import Config, load_config
from trustlayer.errors import (
    AuditError,
    Blocked,
    ConfigError,
    DeadlineExceeded,
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
from trustlayer.gate import Gate, Inbound, Outbound
from trustlayer.intercept.agent import AgentMessage, agent, receive_message, send_message
from trustlayer.intercept.guard import conversation, guard
from trustlayer.intercept.route import route
from trustlayer.intercept.transport import TrustTransport
from trustlayer.layer import TrustLayer
from trustlayer.policy import PolicyEngine
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
    "agent",
    "AgentMessage",
    "AuditError",
    "Blocked",
    "Box",
    "Channel",
    "Config",
    "ConfigError",
    "conversation",
    "DeadlineExceeded",
    "Decision",
    "Endpoint",
    "EndpointError",
    "EndpointTimeout",
    "Finding",
    "Gate",
    "guard",
    "Hop",
    "Inbound",
    "Kind",
    "load_config",
    "Message",
    "Operator",
    "Outbound",
    "Outcome",
    "PolicyEngine",
    "PolicyError",
    "receive_message",
    "RedactionError",
    "Route",
    "route",
    "RouterError",
    "send_message",
    "SignatureError",
    "TamperedError",
    "TrustError",
    "TrustLayer",
    "TrustTransport",
    "Unverified",
    "Verdict",
    "VerifyRequirement",
]
