"""Real spaCy NER through Presidio: offline, NER-only pipeline, names in context, clean text untouched."""

from __future__ import annotations

import socket

import pytest

from trustlayer.redaction import Redactor, Vault
from trustlayer.types import Message


@pytest.fixture(scope="module")
def redactor(tmp_path_factory: pytest.TempPathFactory) -> Redactor:
    return Redactor(Vault.open(tmp_path_factory.mktemp("v") / "v.db", bytes(32)))


def _found(r: Redactor, text: str) -> set[tuple[str, str]]:
    return {(f.entity_type, text[f.start:f.end]) for f in r.detect(Message.from_text(text, conversation_id="c"))}


def test_detection_runs_with_sockets_disabled(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from trustlayer.redaction import _offline
    from trustlayer.redaction.nlp import NerEngine

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    _offline.extractor.cache_clear()  # build the suffix list again, now without a network
    engine = NerEngine()  # a fresh load of the spaCy model, offline
    assert [label for label, *_ in engine.entities("Angela Merkel visited Paris.")] == ["PERSON", "LOCATION"]
    r = Redactor(Vault.open(tmp_path / "v.db", bytes(32)))
    found = _found(r, "Mail Angela Merkel at angela.merkel@example.co.uk")
    assert ("EMAIL_ADDRESS", "angela.merkel@example.co.uk") in found
    assert ("PERSON", "Angela Merkel") in found


def test_pipeline_has_only_ner() -> None:
    from trustlayer.redaction.nlp import load_spacy

    assert load_spacy().pipe_names == ["ner"]


@pytest.mark.parametrize(("text", "name"), [
    ("Can you draft a reply to Priya Raman about the contract?", "Priya Raman"),
    ("Ich habe gestern mit Jürgen Weiß telefoniert.", "Jürgen Weiß"),
    ("hi, my name is oluwaseun adeyemi and I need a refund", "oluwaseun adeyemi"),
    ("Hello Mireille,\nthe files are attached.", "Mireille"),
    ("Please ask Dr. Nakamura to sign it.", "Nakamura"),
])
def test_names(redactor: Redactor, text: str, name: str) -> None:
    assert ("PERSON", name) in _found(redactor, text)


def test_repeated_mentions_are_all_found(redactor: Redactor) -> None:
    text = "Ana Souza called. Later ana said Souza would pay."
    found = _found(redactor, text)
    assert {("PERSON", "ana"), ("PERSON", "Souza")} <= found


@pytest.mark.parametrize("text", [
    "Summarize the changes between version 2.4.1 and 2.5.0 released on 2024-03-01.",
    "The quarterly revenue grew 12% to $4.2 million; costs were EUR 1.1 million.",
    "Refactor getUserById and parse_config_file to use async IO.",
    "Write a Python function that sorts a list of tuples by the second element.",
])
def test_clean_text_comes_through_unchanged(redactor: Redactor, text: str) -> None:
    msg = Message.from_text(text, conversation_id="clean")
    out, findings = redactor.redact(msg)
    assert findings == [] and out == msg


def test_date_time_only_when_asked(redactor: Redactor) -> None:
    text = "The release is planned for March 3rd."
    assert _found(redactor, text) == set()
    assert ("DATE_TIME", "March 3rd") in {
        (f.entity_type, text[f.start:f.end])
        for f in redactor.detect(Message.from_text(text, conversation_id="c"), entities=frozenset({"DATE_TIME"}))}


def test_threads_share_one_engine_and_agree(redactor: Redactor) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"Hi, I'm Priya Raman. Ticket {i}: mail priya{i}@example.org" for i in range(12)]

    def run(text: str) -> list[tuple[str, int, int]]:
        return [(f.entity_type, f.start, f.end) for f in redactor.detect(Message.from_text(text, conversation_id="t"))]

    sequential = [run(t) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(run, texts)) == sequential


@pytest.mark.slow
def test_one_megabyte_message_with_ner(redactor: Redactor) -> None:
    block = "Please ask Priya Raman to mail ada@example.org about the report.\n"
    text = (block * (1_000_000 // len(block) + 1))[:1_000_000]
    out, findings = redactor.redact(Message.from_text(text, conversation_id="big"))
    assert out.text is not None and "ada@example.org" not in out.text and "Priya Raman" not in out.text


def test_presidio_analyzer_engine_runs_trustlayer_recognizers() -> None:
    from trustlayer.redaction.nlp import analyzer_engine

    text = "Mail Angela Merkel at angela@example.org, key AKIAIOSFODNN7EXAMPLE, IBAN DE89 3704 0044 0532 0130 00"
    found = {(r.entity_type, text[r.start:r.end]) for r in analyzer_engine().analyze(text, language="en")}
    assert {("PERSON", "Angela Merkel"), ("EMAIL_ADDRESS", "angela@example.org"),
            ("API_KEY", "AKIAIOSFODNN7EXAMPLE"), ("IBAN_CODE", "DE89 3704 0044 0532 0130 00")} <= found


def test_presidio_analyzer_engine_shares_the_detectors_lock_on_the_spacy_pipeline() -> None:
    """Presidio's own API and our detector run one spaCy pipeline; neither may run it while the other does."""
    import threading

    from trustlayer.redaction.nlp import analyzer_engine, ner_engine

    engine = analyzer_engine()
    shared = ner_engine()._engine
    assert engine.nlp_engine is shared
    done = threading.Event()
    results: list[object] = []

    def analyze() -> None:
        results.extend(engine.analyze("Ask Angela Merkel about Berlin.", language="en"))
        done.set()

    with shared._lock:  # what the detector holds while it runs the pipeline
        worker = threading.Thread(target=analyze)
        worker.start()
        assert not done.wait(0.5), "Presidio's AnalyzerEngine ran the pipeline while the detector held it"
    worker.join(timeout=30)
    assert done.is_set() and results
    batch = list(shared.process_batch(["Angela Merkel lives in Berlin."], "en"))
    assert [e.label_ for e in batch[0][1].entities] == ["PERSON", "LOCATION"]
