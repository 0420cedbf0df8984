"""The signed model card: saved next to the weights, checked on load, tampering refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustlayer.errors import RouterError
from trustlayer.provenance.dsse import sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.routing.card import CARD_PAYLOAD_TYPE, CardRejected
from trustlayer.routing.examples import RoutingExample
from trustlayer.routing.router import CARD_FILE, ENVELOPE_FILE, PrivateRouter


@pytest.fixture
def saved(trained: PrivateRouter, tmp_path: Path) -> Path:
    return trained.save(tmp_path / "router")


def _ring(key: SigningKey) -> Keyring:
    ring = Keyring()
    ring.add(key.public, owner="trainer")
    return ring


def test_round_trip_keeps_card_and_predictions(saved: Path, trained: PrivateRouter, trainer_key: SigningKey,
                                               held_out: list[RoutingExample]) -> None:
    loaded = PrivateRouter.load(saved, trainer_key.public)
    assert loaded.card == trained.card
    assert loaded.card.privacy.epsilon == trained.card.privacy.epsilon
    features = [ex.features for ex in held_out[:40]]
    assert loaded.probabilities(features) == trained.probabilities(features)
    assert sorted(p.name for p in saved.iterdir()) == sorted([CARD_FILE, ENVELOPE_FILE, "router.pt"])


def test_card_file_is_the_signed_payload_and_has_no_floats(saved: Path) -> None:
    payload = (saved / CARD_FILE).read_bytes()
    signed = json.loads((saved / ENVELOPE_FILE).read_bytes())
    assert signed["payloadType"] == CARD_PAYLOAD_TYPE

    def refuse(text: str) -> float:
        raise AssertionError(f"float {text} in signed card")

    card = json.loads(payload, parse_float=refuse)
    assert set(card["privacy"]) >= {"epsilon", "delta", "n_examples", "max_grad_norm", "noise_multiplier", "epochs"}
    assert isinstance(card["privacy"]["epsilon"], str)


def test_edited_card_file_is_refused(saved: Path, trainer_key: SigningKey) -> None:
    card = json.loads((saved / CARD_FILE).read_bytes())
    card["privacy"]["epsilon"] = "0.1"  # claim a stronger guarantee than was trained
    (saved / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    with pytest.raises(CardRejected, match="model_card.json differs from the signed card"):
        PrivateRouter.load(saved, trainer_key.public)


def test_card_re_signed_by_an_untrusted_key_is_refused(saved: Path, trainer_key: SigningKey) -> None:
    card = json.loads((saved / CARD_FILE).read_bytes())
    card["privacy"]["epsilon"] = "0.1"
    payload = (json.dumps(card, indent=2, sort_keys=True) + "\n").encode()
    (saved / CARD_FILE).write_bytes(payload)
    (saved / ENVELOPE_FILE).write_bytes(sign_envelope(payload, CARD_PAYLOAD_TYPE, SigningKey.generate()))
    with pytest.raises(CardRejected, match="signed card does not verify .*unknown key"):
        PrivateRouter.load(saved, _ring(trainer_key))


def test_flipped_signature_byte_is_refused(saved: Path, trainer_key: SigningKey) -> None:
    envelope = json.loads((saved / ENVELOPE_FILE).read_bytes())
    sig = bytearray(envelope["signatures"][0]["sig"].encode())
    sig[10] = ord("A") if sig[10] != ord("A") else ord("B")
    envelope["signatures"][0]["sig"] = sig.decode()
    (saved / ENVELOPE_FILE).write_bytes(json.dumps(envelope, separators=(",", ":")).encode())
    with pytest.raises(CardRejected, match="signed card does not verify"):
        PrivateRouter.load(saved, trainer_key.public)


def test_changed_weights_are_refused(saved: Path, trainer_key: SigningKey) -> None:
    weights = bytearray((saved / "router.pt").read_bytes())
    weights[-100] ^= 0x01
    (saved / "router.pt").write_bytes(bytes(weights))
    with pytest.raises(CardRejected, match=r"router.pt has SHA-256 .* the signed card says .* weights were changed"):
        PrivateRouter.load(saved, trainer_key.public)


def test_weights_of_another_router_are_refused(saved: Path, trainer_key: SigningKey) -> None:
    import io

    import torch

    state = torch.load(io.BytesIO((saved / "router.pt").read_bytes()), weights_only=True)
    state = {k: torch.zeros_like(v) for k, v in state.items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (saved / "router.pt").write_bytes(buffer.getvalue())
    with pytest.raises(CardRejected, match="weights were changed"):
        PrivateRouter.load(saved, trainer_key.public)


def test_untrusted_trainer_is_refused(saved: Path) -> None:
    with pytest.raises(CardRejected, match="unknown key"):
        PrivateRouter.load(saved, SigningKey.generate().public)


def test_missing_file_is_an_error_not_tampering(saved: Path, trainer_key: SigningKey) -> None:
    (saved / ENVELOPE_FILE).unlink()
    with pytest.raises(RouterError, match=r"has no signed model card \(model_card.dsse.json\)") as info:
        PrivateRouter.load(saved, trainer_key.public)
    assert not isinstance(info.value, CardRejected)


def test_save_refuses_to_overwrite(saved: Path, trained: PrivateRouter) -> None:
    with pytest.raises(RouterError, match="already holds .*refusing to overwrite"):
        trained.save(saved)
    assert trained.save(saved, overwrite=True) == saved
