"""The signed audit record of a router training run, for the caller to append to the log.

    >>> from trustlayer.routing.record import training_record        # doctest: +SKIP
    >>> signed = training_record(router, key=signer.key, sequence=signer.sequence)  # doctest: +SKIP
    >>> store.record(signed.envelope)                                 # doctest: +SKIP

The record is an in-toto Statement v1 in a DSSE envelope signed with the device key,
like hop records (``trustlayer.provenance.records``). Its subjects are the weights
file and the signed card; its predicate (``https://trustlayer.dev/router-training/v1``)
restates the privacy guarantee: the accountant's ε and δ, N, the clipping norm, the
noise multiplier and the epochs, as decimal strings (no floats in signed JSON). It
takes the next sequence number of the signer's key, so the log sees one unbroken
per-key sequence across hop and training records.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

from trustlayer.provenance.dsse import sign_envelope
from trustlayer.provenance.keys import SigningKey
from trustlayer.provenance.sequence import SequenceCounter
from trustlayer.routing.router import PrivateRouter
from trustlayer.stages import Signed

__all__ = ["STATEMENT_MEDIA_TYPE", "TRAINING_PREDICATE", "training_record", "training_statement"]

TRAINING_PREDICATE = "https://trustlayer.dev/router-training/v1"
"""The predicateType of a router training record."""

STATEMENT_MEDIA_TYPE = "application/vnd.in-toto+json"
"""The DSSE payloadType of an in-toto Statement (in-toto attestation spec v1, envelope layer)."""

_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


def training_statement(router: PrivateRouter, *, key_id: str, sequence: int, nonce: str,
                       time_ms: int) -> dict[str, Any]:
    """The in-toto statement for a trained router, as a JSON-ready dict without floats."""
    card = router.card
    privacy = card.privacy.model_dump(mode="json")
    return {
        "_type": _STATEMENT_TYPE,
        "subject": [
            {"name": card.weights_file, "digest": {"sha256": card.weights_sha256}},
            {"name": "model_card.dsse.json", "digest": {"sha256": hashlib.sha256(router.card_envelope).hexdigest()}},
        ],
        "predicateType": TRAINING_PREDICATE,
        "predicate": {
            "event": "router-training",
            "conversation_id": f"router-training-{card.weights_sha256[:16]}",
            "trainer_key_id": card.trainer_key_id,
            "created": card.created,
            "architecture": card.architecture,
            "privacy": {k: privacy[k] for k in ("mechanism", "unit", "accountant", "epsilon", "delta", "target_epsilon",
                                                "noise_multiplier", "max_grad_norm", "sample_rate", "steps",
                                                "epochs", "n_examples", "secure_rng", "seeded")},
            "key_id": key_id,
            "sequence": sequence,
            "nonce": nonce,
            "time": time_ms,
        },
    }


def training_record(router: PrivateRouter, *, key: SigningKey, sequence: SequenceCounter) -> Signed:
    """Sign the training statement with ``key`` and the next number of its ``sequence``.

    Pass the gate's own counter (``RecordSigner.key`` and ``RecordSigner.sequence``, or a
    ``SequenceCounter`` on the same state file): a second counter for the same key would
    hand out numbers the log already holds, which ``trustlayer audit verify`` reports as a replay.
    """
    statement = training_statement(router, key_id=key.key_id, sequence=sequence.next(),
                                   nonce=os.urandom(16).hex(), time_ms=time.time_ns() // 1_000_000)
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    envelope = sign_envelope(payload, STATEMENT_MEDIA_TYPE, key)
    return Signed(envelope=envelope, digest=hashlib.sha256(envelope).hexdigest())
