"""Plug a trained private router into ``@route``: a ``prompt -> endpoint id`` function.

    >>> from trustlayer import route                                               # doctest: +SKIP
    >>> from trustlayer.routing.adapter import RouterFunction                      # doctest: +SKIP
    >>> pick = RouterFunction(PrivateRouter.load("router/", keyring), local_id="phone",
    ...                       cloud_ids=("gpt",), signals=uncertainty, redact=redact)  # doctest: +SKIP
    >>> choose_endpoint = route(pick, layer=tl)                                     # doctest: +SKIP

``@route`` calls the function with the prompt and then keeps its pick inside policy
(reroute or block, audited). Where the caller already knows the policy-allowed set, pass
``allowed`` to ``__call__`` (or use ``PrivateRouter.choose``) and the router only ever
picks inside it. Features are computed on the device: ``redact`` turns the prompt into
the placeholder form the router was trained on, and ``signals`` supplies the local
model's uncertainty signals (e.g. ``labels.signals_from_score`` of a white-box score).
With a ``journal``, each routed request's features are appended for later training;
a journal requires ``redact``, so raw prompts are never written to disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from trustlayer.errors import RouterError
from trustlayer.routing.examples import PromptFeatures
from trustlayer.routing.labels import FeatureJournal
from trustlayer.routing.router import PrivateRouter

__all__ = ["RouterFunction"]


class RouterFunction:
    """A trained ``PrivateRouter`` in the shape ``@route`` calls: ``prompt -> endpoint id``."""

    def __init__(self, router: PrivateRouter, *, local_id: str, cloud_ids: Sequence[str],
                 signals: Callable[[str], Mapping[str, float]], redact: Callable[[str], str] | None = None,
                 journal: FeatureJournal | None = None) -> None:
        if not cloud_ids:
            raise RouterError("a router needs at least one cloud endpoint to choose against the local one")
        if journal is not None and redact is None:
            raise RouterError("a feature journal needs 'redact': the journal must never hold raw prompts")
        self.router = router
        self.local_id = local_id
        self.cloud_ids = tuple(cloud_ids)
        self._signals = signals
        self._redact = redact
        self._journal = journal

    def features(self, prompt: str) -> PromptFeatures:
        """The device-side features of ``prompt`` (redacted text and uncertainty signals)."""
        text = self._redact(prompt) if self._redact is not None else prompt
        return PromptFeatures(prompt=text, signals=dict(self._signals(prompt)))

    def __call__(self, prompt: str, allowed: Sequence[str] | None = None, *,
                 conversation_id: str | None = None) -> str:
        """Pick an endpoint for ``prompt``, among ``allowed`` when given (else among the router's own)."""
        features = self.features(prompt)
        if self._journal is not None and conversation_id is not None:
            self._journal.append(conversation_id, features)
        permitted = allowed if allowed is not None else (self.local_id, *self.cloud_ids)
        return self.router.choose(features, permitted, local_id=self.local_id, cloud_ids=self.cloud_ids)
