"""Learning to route, privately: a device–cloud router trained with DP-SGD (Opacus).

    >>> from trustlayer.routing import TrainConfig, read_jsonl, train_router     # doctest: +SKIP
    >>> router = train_router(read_jsonl("routing.jsonl"), TrainConfig(epsilon=3.0), key=key)  # doctest: +SKIP
    >>> router.save("router/")                                                   # doctest: +SKIP
    >>> router = PrivateRouter.load("router/", trusted_key)   # checks the card  # doctest: +SKIP
    >>> router.choose(features, allowed, local_id="phone", cloud_ids=("gpt",))   # doctest: +SKIP

Modules: ``examples`` (the labelled data format), ``features`` (hashed n-grams plus
uncertainty signals), ``model`` (network and ``TrainConfig``), ``train`` (DP-SGD),
``card`` (the signed model card), ``router`` (``PrivateRouter``), ``record`` (the signed
training record for the audit log), ``labels`` (labels from audit verdicts and the
device's feature journal), ``evaluate``, ``adapter`` (for ``@route``), ``simulate`` (a
seeded simulated set), ``cli`` (``trustlayer router``). Everything that needs torch is
imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trustlayer.routing.examples import PromptFeatures, RoutingDataError, RoutingExample, read_jsonl, write_jsonl

if TYPE_CHECKING:
    from trustlayer.routing.adapter import RouterFunction
    from trustlayer.routing.card import CardRejected, ModelCard, PrivacyReport
    from trustlayer.routing.evaluate import RoutingReport, evaluate_router
    from trustlayer.routing.labels import FeatureJournal, examples_from_log
    from trustlayer.routing.model import TrainConfig
    from trustlayer.routing.record import training_record
    from trustlayer.routing.router import PrivateRouter
    from trustlayer.routing.train import train_router

__all__ = [
    "CardRejected",
    "FeatureJournal",
    "ModelCard",
    "PrivacyReport",
    "PrivateRouter",
    "PromptFeatures",
    "RouterFunction",
    "RoutingDataError",
    "RoutingExample",
    "RoutingReport",
    "TrainConfig",
    "evaluate_router",
    "examples_from_log",
    "read_jsonl",
    "train_router",
    "training_record",
    "write_jsonl",
]

_LAZY = {
    "CardRejected": "trustlayer.routing.card",
    "FeatureJournal": "trustlayer.routing.labels",
    "ModelCard": "trustlayer.routing.card",
    "PrivacyReport": "trustlayer.routing.card",
    "PrivateRouter": "trustlayer.routing.router",
    "RouterFunction": "trustlayer.routing.adapter",
    "RoutingReport": "trustlayer.routing.evaluate",
    "TrainConfig": "trustlayer.routing.model",
    "evaluate_router": "trustlayer.routing.evaluate",
    "examples_from_log": "trustlayer.routing.labels",
    "train_router": "trustlayer.routing.train",
    "training_record": "trustlayer.routing.record",
}


def __getattr__(name: str) -> Any:
    # PEP 562: torch and Opacus load only when a router is trained or used.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trustlayer.routing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
