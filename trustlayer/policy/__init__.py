"""Residency policy: declare where each class of data may go, decide per message, explain every decision.

    >>> from trustlayer.policy import PolicyEngine, shipped_policy_path
    >>> engine = PolicyEngine.from_file(shipped_policy_path("eu-gdpr"))
    >>> engine.endpoints["gpt-us"].jurisdiction
    'US'

``PolicyEngine`` implements the gate's ``Decider`` protocol; ``routing`` holds the
pure logic behind ``@route``; ``cli`` the ``trustlayer policy`` commands.
"""

from trustlayer.policy.engine import PolicyEngine
from trustlayer.policy.routing import Choice, choose, from_function, from_llmrouter, from_routellm, router_adapter
from trustlayer.policy.shipped import shipped_policy_names, shipped_policy_path

__all__ = [
    "Choice",
    "PolicyEngine",
    "choose",
    "from_function",
    "from_llmrouter",
    "from_routellm",
    "router_adapter",
    "shipped_policy_names",
    "shipped_policy_path",
]
