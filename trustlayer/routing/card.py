"""The model card of a private router: its privacy guarantee and how to rebuild it, signed.

    >>> from trustlayer.routing.card import ModelCard, sign_card, open_card   # doctest: +SKIP
    >>> envelope = sign_card(card_bytes, key)                                 # doctest: +SKIP
    >>> card = open_card(envelope, card_bytes, keyring)                       # doctest: +SKIP

The card states the accountant's final (ε, δ), the data size N, the clipping norm,
the noise multiplier, the epochs and the SHA-256 of the weights file. It is a DSSE
envelope signed with the trainer's Ed25519 key (``trustlayer.provenance``); the
plain card file next to it must be byte-identical to the signed payload, and the
weights must match the signed digest. Signed JSON holds no floats (DESIGN.md), so
real numbers are written as their shortest round-trip decimal strings.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError

from trustlayer.errors import RouterError, SignatureError
from trustlayer.provenance.dsse import open_envelope, sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.routing.features import FeatureSpec

__all__ = ["CARD_PAYLOAD_TYPE", "CARD_SCHEMA", "CardRejected", "ModelCard", "PrivacyReport", "card_bytes",
           "open_card", "sign_card"]

CARD_SCHEMA = "https://trustlayer.dev/router-card/v1"
"""The ``schema`` value of a version-1 model card."""

CARD_PAYLOAD_TYPE = "application/vnd.trustlayer.router-card+json"
"""The DSSE payloadType of a signed model card."""


class CardRejected(RouterError):
    """A router's signed card, card file or weights do not verify: it was tampered with or forged."""


def _parse_real(value: Any) -> float:
    # Signed JSON carries reals as decimal strings; Python callers may pass floats or ints.
    if isinstance(value, bool):
        raise ValueError("expected a real number, found a boolean")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError as exc:
            raise ValueError("expected a decimal string such as '2.5'") from exc
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("expected a finite real number")
    return float(value)


Real = Annotated[float, BeforeValidator(_parse_real), PlainSerializer(repr, return_type=str)]
"""A float that is written to signed JSON as its shortest round-trip decimal string."""


class PrivacyReport(BaseModel):
    """What DP-SGD spent and with which parameters; ``epsilon`` is the accountant's final value.

    ``secure_rng`` is false because Opacus' ``secure_mode`` needs ``torchcsprng``, which has no
    build for this torch; ``seeded`` is true when ``unsafe_seed`` made the noise and the Poisson
    sampling reproducible, which voids the guarantee against anyone who knows the seed.
    ``unit`` is what one neighbouring dataset differs by: one labelled request (add/remove
    adjacency under Poisson sampling). A person behind k requests is protected at roughly
    k·ε (group privacy), not ε.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mechanism: Literal["dp-sgd"] = "dp-sgd"
    unit: Literal["request"] = "request"
    library: str
    accountant: Literal["rdp"]
    epsilon: Real
    delta: Real
    target_epsilon: Real
    noise_multiplier: Real
    max_grad_norm: Real
    sample_rate: Real
    steps: int = Field(ge=1)
    epochs: int = Field(ge=1)
    expected_batch_size: int = Field(ge=1)
    n_examples: int = Field(ge=1)
    poisson_sampling: bool = True
    secure_rng: bool = False
    seeded: bool = False


class ModelCard(BaseModel):
    """Everything needed to rebuild and trust a trained router, minus the weights themselves."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["https://trustlayer.dev/router-card/v1"] = Field(
        default="https://trustlayer.dev/router-card/v1", alias="schema")
    created: str = Field(description="UTC time of training, RFC 3339")
    trainer_key_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    architecture: Literal["logistic", "mlp"]
    hidden: int = Field(ge=0)
    features: FeatureSpec
    threshold: Real = Field(description="route locally when P(local suffices) >= threshold")
    learning_rate: Real
    privacy: PrivacyReport
    weights_file: str = "router.pt"
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    torch_version: str


def card_bytes(card: ModelCard) -> bytes:
    """The exact bytes that are signed and written as ``model_card.json`` (sorted, indented, no floats)."""
    doc = card.model_dump(mode="json", by_alias=True)
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def sign_card(payload: bytes, key: SigningKey) -> bytes:
    """Sign the card bytes; return the DSSE envelope bytes to store next to them."""
    return sign_envelope(payload, CARD_PAYLOAD_TYPE, key)


def _refuse_float(text: str) -> Any:
    raise ValueError("the model card must not contain JSON floats")


def open_card(envelope: bytes, plain: bytes | None, keyring: Keyring, *, where: str = "model card") -> ModelCard:
    """Verify the signed card against trusted keys and return it.

    ``plain`` is the human-readable card file, when present; it must equal the signed payload.
    Raises ``CardRejected`` saying whether the signature failed, the card file was edited, or
    the card is malformed; the card is parsed only after its signature verified.
    """
    try:
        verified = open_envelope(envelope, keyring, payload_type=CARD_PAYLOAD_TYPE)
    except SignatureError as exc:
        raise CardRejected(f"{where}: refusing to load: the signed card does not verify ({exc})") from exc
    if plain is not None and plain != verified.payload:
        raise CardRejected(f"{where}: refusing to load: model_card.json differs from the signed card "
                          "(it was edited after signing)")
    try:
        doc = json.loads(verified.payload, parse_float=_refuse_float)
        card = ModelCard.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise CardRejected(f"{where}: the signed card is not a valid router card: {field}: {err['msg']}") from exc
    except ValueError as exc:
        raise CardRejected(f"{where}: the signed card is not valid JSON without floats") from exc
    if card.trainer_key_id != verified.key_id:
        raise CardRejected(f"{where}: the card names trainer key {card.trainer_key_id[:16]} but was signed "
                          f"by key {verified.key_id[:16]}")
    return card
