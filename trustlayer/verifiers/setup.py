"""Building the consensus verifier from ``trustlayer.yaml`` and wiring it to the gate.

    >>> from trustlayer.verifiers.setup import consensus_from_config, gate_policy
    >>> consensus = consensus_from_config(cfg, store=audit_store)           # doctest: +SKIP
    >>> gate = Gate(..., verifier=consensus)                                # doctest: +SKIP
    >>> consensus.bind(policy=gate_policy(gate), restore=redactor.restore)  # doctest: +SKIP

The gate needs its verifier when it is built, and consensus needs the gate's outbound path
to prepare the request for each panel endpoint, so the policy is bound afterwards; until
then verification raises (and the gate blocks).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Protocol

from trustlayer.config import Config
from trustlayer.errors import ConfigError
from trustlayer.types import Endpoint, Message, Route
from trustlayer.verifiers.askers import Asker, EndpointAsker
from trustlayer.verifiers.consensus import Consensus, Policy, Prepared, Restore, Scorer
from trustlayer.verifiers.reputation import AgreementStore, Reputation

__all__ = ["OutboundGate", "consensus_from_config", "gate_policy"]


class OutboundGate(Protocol):
    """The part of ``trustlayer.gate.Gate`` consensus uses: the async outbound path."""

    async def outbound_async(self, message: Message, route: Route, *,
                             candidates: tuple[Endpoint, ...] = ()) -> Prepared:
        """Detect, decide, transform, sign and record ``message`` for ``route``; raise ``Blocked``."""
        ...


def gate_policy(gate: OutboundGate | Callable[[], OutboundGate]) -> Policy:
    """A consensus ``Policy`` that sends the request through the gate's outbound path for each endpoint.

    Every panel request is therefore redacted for its endpoint, signed and recorded like any
    other hop. The gate's ``Outbound`` is handed to consensus whole, so a decision that
    reroutes the request elsewhere means the endpoint is not asked (``policy: rerouted``).
    ``gate`` may be a function returning the current gate (``lambda: layer.gate``), so that
    panel requests follow a policy reload.
    """
    if hasattr(gate, "outbound_async"):
        fixed = typing.cast(OutboundGate, gate)

        def current() -> OutboundGate:
            return fixed
    else:
        current = gate

    async def prepare(message: Message, route: Route) -> Prepared:
        return await current().outbound_async(message, route)

    return prepare


def consensus_from_config(
    cfg: Config,
    *,
    store: AgreementStore | None = None,
    policy: Policy | None = None,
    restore: Restore | None = None,
    asker: Asker | None = None,
    scorer: Scorer | None = None,
) -> Consensus:
    """The consensus verifier of ``cfg.verify``: its panel, and reputation kept in ``store``.

    With a ``store`` (normally the audit store), agreement history is recorded and endpoints
    whose dissent rate reaches ``verify.dissent_threshold`` are left out while others remain.
    Raises ``ConfigError`` naming ``verify.endpoints`` when the panel is empty or names an
    undeclared endpoint.
    """
    if not cfg.verify.endpoints:
        raise ConfigError("verify.endpoints is empty: consensus needs at least one endpoint to ask",
                          field="verify.endpoints")
    panel = []
    for i, endpoint_id in enumerate(cfg.verify.endpoints):
        try:
            panel.append(cfg.endpoint(endpoint_id))
        except ConfigError as exc:
            raise ConfigError(f"verify.endpoints[{i}]: {exc}", field=f"verify.endpoints[{i}]") from exc
    reputation = Reputation(store) if store is not None else None
    return Consensus(
        panel,
        asker=asker or EndpointAsker(),
        policy=policy,
        restore=restore,
        reputation=reputation,
        exclude_above=cfg.verify.dissent_threshold if reputation is not None else None,
        scorer=scorer,
    )
