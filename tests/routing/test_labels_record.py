"""Labels from a real audit log of signed hop records, and the signed training record in that log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustlayer.audit.sqlite_store import SQLiteStore
from trustlayer.audit.verify import verify_log
from trustlayer.cli import cli
from trustlayer.errors import RouterError
from trustlayer.provenance.dsse import open_envelope
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.signer import RecordSigner
from trustlayer.routing.examples import PromptFeatures, read_jsonl
from trustlayer.routing.labels import (
    FeatureJournal,
    envelopes_from_export,
    envelopes_from_store,
    examples_from_log,
)
from trustlayer.routing.record import STATEMENT_MEDIA_TYPE, TRAINING_PREDICATE, training_record
from trustlayer.routing.router import PrivateRouter
from trustlayer.types import Endpoint, Hop, Route, Verdict

PHONE = Endpoint(id="phone", kind="device", jurisdiction="DE", box="white")
GPT = Endpoint(id="gpt", kind="cloud", jurisdiction="US")


def _verdict(agreeing: tuple[str, ...], dissenting: tuple[str, ...] = (), *, verified: bool = True) -> Verdict:
    return Verdict(outcome="verified" if verified else "unverified", answer="a" if verified else None,
                   agreement=0.67, quorum=2, of=3, measure="exact", agreeing=agreeing, dissenting=dissenting)


def _inbound(signer: RecordSigner, conversation: str, verdict: Verdict | None) -> bytes:
    hop = Hop(direction="inbound", route=Route.between(GPT, PHONE), conversation_id=conversation,
              content=b"answer", verdict=verdict)
    return signer.sign(hop).envelope


@pytest.fixture
def device_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def signer(device_key: SigningKey, tmp_path: Path) -> RecordSigner:
    return RecordSigner(device_key, salt=bytes(range(32)), state_path=tmp_path / "id.key.seq")


@pytest.fixture
def ring(device_key: SigningKey) -> Keyring:
    ring = Keyring()
    ring.add(device_key.public, owner="phone")
    return ring


@pytest.fixture
def journal(tmp_path: Path) -> FeatureJournal:
    journal = FeatureJournal(tmp_path / "journal.jsonl")
    for conversation, prompt in [("c1", "first <PERSON_1>"), ("c1", "second"), ("c2", "third"), ("c3", "fourth"),
                                 ("c4", "fifth")]:
        journal.append(conversation, PromptFeatures(prompt=prompt, signals={"mean_logprob": -1.0}))
    return journal


def test_labels_follow_the_local_models_place_in_the_verdict(signer: RecordSigner, ring: Keyring,
                                                             journal: FeatureJournal) -> None:
    envelopes = [
        _inbound(signer, "c1", _verdict(("phone", "gpt"), ("claude",))),    # local agreed -> sufficed
        _inbound(signer, "c1", _verdict(("gpt", "claude"), ("phone",))),    # local dissented -> cloud needed
        _inbound(signer, "c2", _verdict(("gpt", "claude"), verified=False)),  # no consensus -> no label
        _inbound(signer, "c3", _verdict(("gpt", "claude"))),               # local not on the panel -> no label
        _inbound(signer, "c4", None),                                     # not verified at all -> no label
    ]
    examples = examples_from_log(envelopes, ring, journal.read(), local_id="phone")
    assert [(ex.prompt, ex.local_sufficed) for ex in examples] == [("first <PERSON_1>", True), ("second", False)]
    assert examples[0].signals == {"mean_logprob": -1.0}


def test_labels_from_a_real_sqlite_log_and_its_export(signer: RecordSigner, ring: Keyring, device_key: SigningKey,
                                                      journal: FeatureJournal, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", log_key=device_key, keyring=ring)
    try:
        store.record(_inbound(signer, "c2", _verdict(("phone", "gpt"))))
        store.record(_inbound(signer, "c3", _verdict(("gpt",), ("phone",))))
        from_store = examples_from_log(envelopes_from_store(store), ring, journal.read(), local_id="phone")
    finally:
        store.close()
    export = tmp_path / "export.jsonl"
    result = CliRunner().invoke(cli, ["audit", "export", str(tmp_path / "audit.db"), "--out", str(export)])
    assert result.exit_code == 0, result.output
    assert [(ex.prompt, ex.local_sufficed) for ex in from_store] == [("third", True), ("fourth", False)]
    assert examples_from_log(envelopes_from_export(export), ring, journal.read(), local_id="phone") == from_store


def test_a_record_that_does_not_verify_stops_the_loader(signer: RecordSigner, journal: FeatureJournal) -> None:
    stranger = Keyring()
    stranger.add(SigningKey.generate().public)
    envelopes = [_inbound(signer, "c1", _verdict(("phone",)))]
    with pytest.raises(RouterError, match="audit entry 0 does not verify.*unknown key"):
        examples_from_log(envelopes, stranger, journal.read(), local_id="phone")


def test_training_record_is_signed_in_the_devices_sequence(trained: PrivateRouter, signer: RecordSigner,
                                                          ring: Keyring) -> None:
    hop = _inbound(signer, "c1", _verdict(("phone",)))
    signed = training_record(trained, key=signer.key, sequence=signer.sequence)
    verified = open_envelope(signed.envelope, ring, payload_type=STATEMENT_MEDIA_TYPE)

    def refuse(text: str) -> float:
        raise AssertionError(f"float {text} in signed record")

    statement = json.loads(verified.payload, parse_float=refuse)
    assert statement["predicateType"] == TRAINING_PREDICATE
    predicate = statement["predicate"]
    assert predicate["sequence"] == json.loads(open_envelope(hop, ring).payload)["predicate"]["sequence"] + 1
    assert float(predicate["privacy"]["epsilon"]) == trained.card.privacy.epsilon
    assert float(predicate["privacy"]["delta"]) == trained.card.privacy.delta
    assert predicate["privacy"]["n_examples"] == trained.card.privacy.n_examples
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}["router.pt"] == trained.card.weights_sha256



def test_training_record_appended_to_the_audit_log_verifies(trained: PrivateRouter, signer: RecordSigner,
                                                            ring: Keyring, device_key: SigningKey,
                                                            tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", log_key=device_key, keyring=ring)
    try:
        store.record(_inbound(signer, "c1", _verdict(("phone",))))
        store.record(training_record(trained, key=signer.key, sequence=signer.sequence).envelope)
        report = verify_log(store, record_keys=ring, log_keys=ring)
        labels = examples_from_log(envelopes_from_store(store), ring,
                                   {"c1": [PromptFeatures(prompt="p", signals={})]}, local_id="phone")
    finally:
        store.close()
    assert [ex.local_sufficed for ex in labels] == [True]  # the label loader skips the training record
    assert report.ok, [p.message for p in report.problems]


def test_router_labels_cli_builds_training_data_from_the_log(signer: RecordSigner, ring: Keyring,
                                                             device_key: SigningKey, journal: FeatureJournal,
                                                             tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", log_key=device_key, keyring=ring)
    try:
        store.record(_inbound(signer, "c1", _verdict(("phone", "gpt"))))
        store.record(_inbound(signer, "c2", _verdict(("gpt", "claude"), ("phone",))))
    finally:
        store.close()
    device_key.public.save(tmp_path / "phone.pub")
    args = ["router", "labels", "--log", str(tmp_path / "audit.db"), "--journal", str(journal.path), "--local",
            "phone", "--out", str(tmp_path / "data.jsonl"), "--trust", str(tmp_path / "phone.pub")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "wrote 2 labelled examples" in result.output
    assert [(ex.prompt, ex.local_sufficed) for ex in read_jsonl(tmp_path / "data.jsonl")] == [
        ("first <PERSON_1>", True), ("third", False)]
    stranger = SigningKey.generate()
    stranger.public.save(tmp_path / "stranger.pub")
    result = CliRunner().invoke(cli, [*args[:-1], str(tmp_path / "stranger.pub")])
    assert result.exit_code == 1
    assert "audit entry 0 does not verify" in result.stderr
