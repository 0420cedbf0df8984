"""The redactor keeps its gate stage deadline: every wait on another thread or connection ends by it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest
from deadlines import blocked_in_time, gives_up, held, start, waits, writing
from stagekit import ListRecorder, chat, keeping_gate

from trustlayer.errors import DeadlineExceeded
from trustlayer.policy import PolicyEngine, shipped_policy_path
from trustlayer.redaction import Redactor, Vault, nlp
from trustlayer.redaction.detector import PiiDetector
from trustlayer.types import Finding, Message, Operator, Route

EMAIL = "ada.lovelace@example.org"
PSEUDO = {"EMAIL_ADDRESS": Operator.PSEUDONYMIZE}


def email_in(message: Message) -> list[Finding]:
    text = message.turns[0].content if message.turns else ""
    assert isinstance(text, str)
    start_at = text.index(EMAIL)
    return [Finding(entity_type="EMAIL_ADDRESS", start=start_at, end=start_at + len(EMAIL), score=1.0,
                    detector="test", path="turns[0].content")]


@pytest.fixture
def writer(vault: Vault) -> Iterator[sqlite3.Connection]:
    """Another connection to the vault's file, holding its write lock until the test ends."""
    with writing(vault.where) as other:
        yield other


def test_the_redaction_stages_declare_that_they_keep_their_deadlines() -> None:
    assert Redactor.keeps_deadline is True
    assert PiiDetector.keeps_deadline is True


def test_transform_gives_up_on_the_vault_file_another_connection_writes(fast: Redactor,
                                                                       writer: sqlite3.Connection) -> None:
    message = chat(f"write to {EMAIL}")
    call = start(lambda: fast.transform(message, email_in(message), PSEUDO), seconds=0.3).join()
    assert call.finished, "transform waited past its deadline for the vault's database lock"
    assert writer.in_transaction  # the other connection still holds the lock
    assert isinstance(call.raised, DeadlineExceeded)
    assert "database lock of vault" in str(call.raised) and "another connection" in str(call.raised)
    assert EMAIL not in str(call.raised)


def test_transform_without_a_deadline_waits_for_the_vault_file_as_before(fast: Redactor,
                                                                        writer: sqlite3.Connection) -> None:
    message = chat(f"write to {EMAIL}")
    assert start(lambda: fast.vault.count("c1"), seconds=0.3).join().value == [0]  # a call under a deadline first
    call = start(lambda: fast.transform(message, email_in(message), PSEUDO), seconds=None)
    time.sleep(0.5)
    assert not call.finished  # no deadline: SQLite's normal busy timeout (30 s) applies again
    writer.execute("COMMIT")
    call.join()
    assert call.finished and call.raised is None
    out = call.value[0]
    assert isinstance(out, Message) and EMAIL not in out.canonical_bytes().decode()


def test_a_gate_blocks_at_transform_when_the_vault_file_stays_locked(fast: Redactor,
                                                                    writer: sqlite3.Connection) -> None:
    engine = PolicyEngine.from_file(shipped_policy_path("eu-gdpr"))
    recorder = ListRecorder()
    gate = keeping_gate(detector=fast, decider=engine, transformer=fast, recorder=recorder, restorer=fast,
                        endpoints=tuple(engine.endpoints.values()), timeouts={"transform": 0.3})
    route = Route.between(engine.endpoints["phone"], engine.endpoints["gpt-us"])
    blocked = blocked_in_time(lambda: gate.outbound(chat(f"please mail {EMAIL}"), route), stage="transform",
                              seconds=0.3)
    assert writer.in_transaction
    assert EMAIL not in str(blocked)
    assert recorder.directions() == ["block"]
    assert all(EMAIL.encode() not in entry for entry in recorder.entries)


def test_transform_and_restore_give_up_on_the_vault_lock_another_thread_holds(fast: Redactor) -> None:
    message = chat(f"write to {EMAIL}")
    out = fast.transform(message, email_in(message), PSEUDO)
    for stage in (lambda: fast.transform(message, email_in(message), PSEUDO), lambda: fast.restore(out)):
        gives_up(stage, held(fast.vault._locked._lock), about="lock of vault", hidden=EMAIL)
    assert fast.restore(out) == message


def test_restore_without_a_deadline_waits_for_the_vault_lock_as_before(fast: Redactor) -> None:
    message = chat(f"write to {EMAIL}")
    out = fast.transform(message, email_in(message), PSEUDO)
    call = waits(lambda: fast.restore(out), held(fast.vault._locked._lock))
    assert call.value == [message]


NAMED = chat("My name is Anna Schmidt and I moved to Berlin last year.")


def test_detect_gives_up_on_the_spacy_pipeline_another_thread_runs(full: Redactor) -> None:
    full.warm()  # the model is loaded: what remains to wait for is the pipeline's lock
    gives_up(lambda: full.detect(NAMED), held(nlp.ner_engine()._engine._lock), about="spaCy pipeline",
             hidden="Anna")


def test_detect_without_a_deadline_waits_for_the_spacy_pipeline_as_before(full: Redactor) -> None:
    full.warm()
    call = waits(lambda: full.detect(NAMED), held(nlp.ner_engine()._engine._lock))
    findings = call.value[0]
    assert isinstance(findings, list) and "PERSON" in {f.entity_type for f in findings}


def test_detect_gives_up_on_the_spacy_model_another_thread_is_loading(vault: Vault,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # As in a fresh process whose first NER detection is still loading the model in another thread.
    monkeypatch.setattr(nlp, "_engine", None)
    gives_up(lambda: Redactor(vault, ner=True).detect(NAMED), held(nlp._engine_lock), about="spaCy model")
    assert nlp._engine is None  # it gave up; it did not load a model of its own
