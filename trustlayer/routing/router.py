"""The trained private router: scores a request and picks an endpoint among those policy allows.

    >>> from trustlayer.routing.router import PrivateRouter                    # doctest: +SKIP
    >>> router = PrivateRouter.load("router/", keyring)                        # doctest: +SKIP
    >>> router.choose(features, allowed=("phone", "gpt"), local_id="phone",    # doctest: +SKIP
    ...               cloud_ids=("gpt",))
    'phone'

A router directory holds ``router.pt`` (the weights), ``model_card.json`` (the card,
readable) and ``model_card.dsse.json`` (the card signed by the trainer). Loading
verifies the signature against trusted keys, checks that the card file is the
signed one and that the weights hash to the signed digest, and only then reads
the weights (``torch.load(weights_only=True)``); any mismatch is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from trustlayer.errors import RouterError
from trustlayer.provenance.keys import Keyring, VerifyKey
from trustlayer.routing.card import CardRejected, ModelCard, open_card
from trustlayer.routing.examples import PromptFeatures
from trustlayer.routing.features import vectorize_many
from trustlayer.routing.model import build_model

__all__ = ["CARD_FILE", "ENVELOPE_FILE", "PrivateRouter"]

CARD_FILE = "model_card.json"
"""The readable model card, byte-identical to the signed payload."""

ENVELOPE_FILE = "model_card.dsse.json"
"""The DSSE envelope that signs the model card."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise RouterError(f"router directory {str(path.parent)!r} has no {what} ({path.name})") from exc
    except OSError as exc:
        raise RouterError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc


class PrivateRouter:
    """A router trained with DP-SGD, with its signed model card.

    Get one from ``train_router`` or ``PrivateRouter.load``; both guarantee that the card
    describes these exact weights.
    """

    def __init__(self, model: torch.nn.Module, card: ModelCard, *, payload: bytes, envelope: bytes,
                 weights: bytes) -> None:
        if hashlib.sha256(weights).hexdigest() != card.weights_sha256:
            raise RouterError("the weights do not match the model card's weights_sha256")
        self._model = model.eval()
        self._card = card
        self._payload = payload
        self._envelope = envelope
        self._weights = weights

    @property
    def card(self) -> ModelCard:
        """The verified model card."""
        return self._card

    @property
    def card_envelope(self) -> bytes:
        """The signed card (DSSE envelope bytes), to publish with the weights."""
        return self._envelope

    def probabilities(self, items: Sequence[PromptFeatures]) -> list[float]:
        """P(the local model suffices) for each request, in order."""
        if not items:
            return []
        x = torch.tensor(vectorize_many(items, self._card.features), dtype=torch.float32)
        with torch.no_grad():
            return [float(p) for p in torch.sigmoid(self._model(x)).squeeze(1)]

    def probability_local(self, features: PromptFeatures) -> float:
        """P(the local model suffices) for one request."""
        return self.probabilities([features])[0]

    def prefers_local(self, features: PromptFeatures) -> bool:
        """True when the router would keep this request on the device (before policy)."""
        return self.probability_local(features) >= self._card.threshold

    def choose(self, prompt_features: PromptFeatures, allowed: Sequence[str], *, local_id: str,
               cloud_ids: Sequence[str]) -> str:
        """Pick the endpoint for a request, only ever one in ``allowed``.

        The router prefers ``local_id`` when it predicts the local model suffices, else the
        first of ``cloud_ids`` that policy allows. When its preference is not allowed it takes
        the other kind, if allowed. Raises ``RouterError`` when none of ``local_id`` and
        ``cloud_ids`` is in ``allowed`` (the caller then blocks or reroutes per config).
        """
        if local_id in cloud_ids:
            raise RouterError(f"endpoint {local_id!r} is given both as the local endpoint and as a cloud endpoint")
        permitted = set(allowed)
        clouds = [c for c in cloud_ids if c in permitted]
        local = [local_id] if local_id in permitted else []
        if not clouds and not local:
            names = ", ".join([local_id, *cloud_ids])
            raise RouterError(f"policy allows none of the router's endpoints ({names}); "
                              f"allowed: {', '.join(sorted(permitted)) or 'none'}")
        if not clouds or not local:
            return (local or clouds)[0]  # only one kind is allowed: no choice to score
        return local_id if self.prefers_local(prompt_features) else clouds[0]

    def save(self, directory: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write weights, card and signed card into ``directory``; return the directory."""
        out = Path(directory)
        targets = [out / self._card.weights_file, out / CARD_FILE, out / ENVELOPE_FILE]
        existing = [t.name for t in targets if t.exists()]
        if existing and not overwrite:
            raise RouterError(f"router directory {str(out)!r} already holds {', '.join(existing)}; "
                              "refusing to overwrite (pass overwrite=True)")
        out.mkdir(parents=True, exist_ok=True)
        # Envelope last: a save cut short leaves a directory that fails to load, never a
        # card that vouches for half-written weights.
        for target, data in zip(targets, (self._weights, self._payload, self._envelope), strict=True):
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike[str], trusted: Keyring | VerifyKey) -> PrivateRouter:
        """Load a router directory, refusing it unless the card verifies and matches the weights.

        ``trusted`` holds the public keys of the trainers whose routers this device accepts.
        """
        base = Path(directory)
        keyring = trusted if isinstance(trusted, Keyring) else Keyring()
        if isinstance(trusted, VerifyKey):
            keyring.add(trusted)
        where = f"router {str(base)!r}"
        envelope = _read(base / ENVELOPE_FILE, "signed model card")
        payload = _read(base / CARD_FILE, "model card")
        card = open_card(envelope, payload, keyring, where=where)
        if Path(card.weights_file).name != card.weights_file:
            raise CardRejected(f"{where}: the card's weights_file {card.weights_file!r} is not a plain file name")
        weights = _read(base / card.weights_file, "weights file")
        digest = hashlib.sha256(weights).hexdigest()
        if digest != card.weights_sha256:
            raise CardRejected(f"{where}: refusing to load: {card.weights_file} has SHA-256 {digest[:16]}..., "
                              f"the signed card says {card.weights_sha256[:16]}... (the weights were changed)")
        model = build_model(card.features.dim, card.hidden)
        try:
            state = torch.load(io.BytesIO(weights), weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as exc:  # torch raises many types for bad files; one error for the caller
            raise CardRejected(f"{where}: {card.weights_file} does not hold the network the card "
                              f"describes: {type(exc).__name__}") from exc
        return cls(model, card, payload=payload, envelope=envelope, weights=weights)
