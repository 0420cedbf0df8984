"""Build the consensus verifier a config asks for (``verify.endpoints``).

The panel receives each request as the gate's outbound path transforms it for that
endpoint (an endpoint policy refuses abstains); agreement history goes into the audit
store, so ``trustlayer audit reputation`` shows it and dissenting endpoints can be excluded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trustlayer.config import Config
from trustlayer.types import Message, Route

if TYPE_CHECKING:
    from trustlayer.gate import Gate
    from trustlayer.verifiers import Consensus

__all__ = ["consensus_from_config"]


def consensus_from_config(cfg: Config, *, store: object, gate: Callable[[], Gate]) -> Consensus:
    """The ``Consensus`` verifier over ``cfg.verify.endpoints``; ``gate`` returns the gate once it exists."""
    from trustlayer.verifiers import Consensus, EndpointAsker, Reputation

    def prepare(message: Message, route: Route) -> Message:
        return gate().outbound(message, route).message

    reputation = Reputation(store) if hasattr(store, "record_agreement") else None  # type: ignore[arg-type]
    return Consensus([cfg.endpoint(e) for e in cfg.verify.endpoints], asker=EndpointAsker(), policy=prepare,
                     reputation=reputation, exclude_above=cfg.verify.dissent_threshold)
