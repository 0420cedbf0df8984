"""Routing quality on labelled examples: accuracy, cloud-call rate and the two kinds of mistake.

    >>> from trustlayer.routing.evaluate import score_routing
    >>> r = score_routing([0.9, 0.2, 0.7], [True, False, False], threshold=0.5)
    >>> r.accuracy, r.cloud_rate, r.kept_local_wrongly
    (0.6666666666666666, 0.3333333333333333, 1)

A request goes to the device when P(local suffices) >= threshold, else to the cloud.
*Accuracy* counts requests routed where their label says they belonged; the *cloud-call
rate* is the share sent to the cloud. Keeping a request local that needed the cloud
(``kept_local_wrongly``) costs answer quality; sending one the device could answer
(``sent_to_cloud_needlessly``) costs a cloud call and exposure of the redacted prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trustlayer.errors import RouterError
from trustlayer.routing.examples import RoutingExample
from trustlayer.routing.router import PrivateRouter

__all__ = ["RoutingReport", "evaluate_router", "score_routing"]


@dataclass(frozen=True, slots=True)
class RoutingReport:
    """Routing quality on ``n`` labelled requests."""

    n: int
    accuracy: float
    cloud_rate: float
    kept_local_wrongly: int
    sent_to_cloud_needlessly: int
    local_sufficed_rate: float

    @property
    def answered_well(self) -> float:
        """Share of requests that got a good answer, counting every cloud answer as good."""
        return 1.0 - self.kept_local_wrongly / self.n


def score_routing(probabilities: Sequence[float], labels: Sequence[bool], *, threshold: float) -> RoutingReport:
    """Score routing decisions made from ``probabilities`` against the ``labels`` (local sufficed)."""
    if len(probabilities) != len(labels):
        raise RouterError(f"{len(probabilities)} predictions for {len(labels)} labels")
    if not labels:
        raise RouterError("cannot evaluate a router on zero examples")
    local = [p >= threshold for p in probabilities]
    correct = sum(choice == label for choice, label in zip(local, labels, strict=True))
    wrong_local = sum(choice and not label for choice, label in zip(local, labels, strict=True))
    needless = sum(label and not choice for choice, label in zip(local, labels, strict=True))
    n = len(labels)
    return RoutingReport(n=n, accuracy=correct / n, cloud_rate=local.count(False) / n,
                         kept_local_wrongly=wrong_local, sent_to_cloud_needlessly=needless,
                         local_sufficed_rate=sum(labels) / n)


def evaluate_router(router: PrivateRouter, examples: Sequence[RoutingExample]) -> RoutingReport:
    """Score a trained router on labelled examples (at the threshold its card states)."""
    probabilities = router.probabilities([ex.features for ex in examples])
    return score_routing(probabilities, [ex.local_sufficed for ex in examples], threshold=router.card.threshold)
