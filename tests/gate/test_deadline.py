"""Stages that keep their deadlines: paths run in the caller's thread, and a late stage still blocks."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from deadlines import start
from stagekit import (
    CLOUD,
    DEVICE,
    HmacSigner,
    ListRecorder,
    Pseudonymizer,
    RegexDetector,
    SimplePolicy,
    chat,
    keeping_gate,
    make_gate,
)

from trustlayer import deadline
from trustlayer.errors import Blocked, DeadlineExceeded
from trustlayer.gate import Gate
from trustlayer.types import Finding, Message, Route

KEY = "sk-AbCdEf123456"
ROUTE = Route.between(DEVICE, CLOUD)


class Where(RegexDetector):
    """Remembers which thread detected and what deadline it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []
        self.left: list[float | None] = []

    def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
        self.threads.append(threading.get_ident())
        self.left.append(deadline.remaining())
        return super().detect(message, entities=entities)


class Late(RegexDetector):
    """Computes (no wait it could bound) past its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
        time.sleep(self.seconds)
        return super().detect(message, entities=entities)


class Waits(RegexDetector):
    """Waits on a lock someone else holds, bounded by its deadline."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__()
        self.lock = lock

    def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
        deadline.acquire(self.lock, "the test's lock")
        self.lock.release()
        return super().detect(message, entities=entities)


def test_a_gate_of_stages_that_keep_deadlines_runs_paths_in_the_callers_thread() -> None:
    where = Where()
    gate = keeping_gate(detector=where, timeouts={"detect": 3.0})
    assert gate._keeps
    out = gate.outbound(chat(f"my key {KEY}"), ROUTE)
    assert KEY not in out.message.canonical_bytes().decode()
    assert where.threads == [threading.get_ident()]
    left = where.left[0]
    assert left is not None and 0.0 < left <= 3.0  # the stage saw its own timeout as its deadline
    assert deadline.remaining() is None  # and it is gone once the stage returned


def test_one_stage_that_does_not_keep_its_deadline_puts_the_path_on_a_worker() -> None:
    where = Where()
    gate = keeping_gate(detector=where)
    del where.keeps_deadline  # type: ignore[attr-defined]
    gate = Gate(detector=where, decider=gate._decider, transformer=gate._transformer, signer=gate._signer,
                recorder=gate._recorder, restorer=gate._restorer, endpoints=(DEVICE, CLOUD))
    assert not gate._keeps
    gate.outbound(chat("hello"), ROUTE)
    assert where.threads and where.threads[0] != threading.get_ident()


def test_only_a_literal_true_counts_as_keeping_the_deadline() -> None:
    where = Where()
    where.keeps_deadline = "yes"  # type: ignore[attr-defined]
    gate = keeping_gate()
    gate = Gate(detector=where, decider=gate._decider, transformer=gate._transformer, signer=gate._signer,
                recorder=gate._recorder, restorer=gate._restorer, endpoints=(DEVICE, CLOUD))
    assert not gate._keeps


def test_a_stage_that_returns_after_its_deadline_blocks_and_the_block_is_recorded() -> None:
    rec = ListRecorder()
    gate = keeping_gate(detector=Late(0.3), recorder=rec, timeouts={"detect": 0.1})
    with pytest.raises(Blocked, match="timed out after 0.1 s") as info:
        gate.outbound(chat(f"key {KEY}"), ROUTE)
    assert info.value.stage == "detect"
    assert rec.directions() == ["block"]
    assert all(KEY.encode() not in e for e in rec.entries)


def test_a_wait_bounded_by_the_deadline_gives_up_while_the_holder_still_holds() -> None:
    lock = threading.Lock()
    lock.acquire()
    rec = ListRecorder()
    gate = keeping_gate(detector=Waits(lock), recorder=rec, timeouts={"detect": 0.2})
    call = start(lambda: gate.outbound(chat("hello"), ROUTE), seconds=None).join()
    try:
        assert call.finished, "the stage waited past its deadline for a lock that is still held"
        assert lock.locked()
        assert isinstance(call.raised, Blocked)
        assert call.raised.stage == "detect" and "timed out after 0.2 s" in str(call.raised)
        assert rec.directions() == ["block"]
    finally:
        lock.release()


def test_without_a_deadline_the_same_wait_lasts_until_the_holder_lets_go() -> None:
    lock = threading.Lock()
    lock.acquire()
    done = threading.Event()

    def holder() -> None:
        time.sleep(0.3)
        lock.release()
        done.set()

    threading.Thread(target=holder).start()
    deadline.acquire(lock, "the test's lock")  # no stage running: no deadline, an unbounded wait
    assert done.is_set()
    lock.release()


def test_deadline_acquire_raises_naming_what_it_waited_for() -> None:
    lock = threading.Lock()
    lock.acquire()
    previous, _ = deadline._enter(time.monotonic() + 0.05)
    try:
        with pytest.raises(DeadlineExceeded, match="the vault's lock"):
            deadline.acquire(lock, "the vault's lock")
        assert deadline.remaining() == 0.0
        assert deadline.busy_timeout_ms(30_000) == 1
    finally:
        deadline._leave(previous)
        lock.release()
    assert deadline.remaining() is None and deadline.busy_timeout_ms(30_000) == 30_000


def test_a_stage_error_before_the_deadline_keeps_its_own_reason() -> None:
    class Broken(RegexDetector):
        def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
            raise ValueError("no")

    with pytest.raises(Blocked, match="detect: ValueError raised"):
        keeping_gate(detector=Broken(), timeouts={"detect": 5.0}).outbound(chat("x"), ROUTE)


def test_a_nested_path_restores_the_outer_stages_deadline() -> None:
    inner = keeping_gate(timeouts={"detect": 0.5})
    seen: list[float | None] = []

    class Nesting(RegexDetector):
        def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
            inner.outbound(chat("inner"), ROUTE)
            seen.append(deadline.remaining())
            return super().detect(message, entities=entities)

    keeping_gate(detector=Nesting(), timeouts={"detect": 30.0}).outbound(chat("outer"), ROUTE)
    assert seen and seen[0] is not None and seen[0] > 1.0  # the outer 30 s, not the inner 0.5 s


def test_a_nested_path_never_waits_past_the_outer_stages_deadline() -> None:
    lock = threading.Lock()
    lock.acquire()
    inner = keeping_gate(detector=Waits(lock), timeouts={"detect": 10.0})  # the inner stage alone may wait 10 s

    class Nesting(RegexDetector):
        def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
            inner.outbound(chat("inner"), ROUTE)
            return super().detect(message, entities=entities)

    rec = ListRecorder()
    gate = keeping_gate(detector=Nesting(), recorder=rec, timeouts={"detect": 0.3})
    call = start(lambda: gate.outbound(chat("outer"), ROUTE), seconds=None).join(timeout=5)
    try:
        assert call.finished, "a nested path waited past the outer stage's deadline"
        assert lock.locked()
        assert isinstance(call.raised, Blocked), call.raised
        assert call.raised.stage == "detect" and "timed out after 0.3 s" in str(call.raised)
        assert rec.directions() == ["block"]
    finally:
        lock.release()
        call.join(timeout=15)


def test_the_async_gate_runs_keeping_stages_in_one_thread_and_still_blocks_late_ones() -> None:
    where = Where()
    out = asyncio.run(keeping_gate(detector=where, timeouts={"detect": 3.0}).outbound_async(chat(f"k {KEY}"), ROUTE))
    assert KEY not in out.message.canonical_bytes().decode()
    assert where.threads and where.threads[0] != threading.get_ident()
    rec = ListRecorder()
    with pytest.raises(Blocked, match="timed out after 0.1 s"):
        asyncio.run(keeping_gate(detector=Late(0.3), recorder=rec, timeouts={"detect": 0.1})
                    .outbound_async(chat("x"), ROUTE))
    assert rec.directions() == ["block"]


def test_the_real_stage_kit_without_declarations_still_uses_the_worker() -> None:
    gate = make_gate(detector=RegexDetector(), decider=SimplePolicy(), transformer=Pseudonymizer(),
                     signer=HmacSigner())
    assert not gate._keeps


def test_a_stage_that_gives_up_at_its_deadline_is_reported_as_timed_out() -> None:
    class GivesUp(RegexDetector):  # e.g. a database busy wait that ended a millisecond early
        def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
            raise DeadlineExceeded("gave up waiting for the test's database")

    rec = ListRecorder()
    with pytest.raises(Blocked, match="detect: timed out after 5.0 s"):
        keeping_gate(detector=GivesUp(), recorder=rec, timeouts={"detect": 5.0}).outbound(chat("x"), ROUTE)
    assert rec.directions() == ["block"]


def test_a_gate_says_which_stages_put_its_paths_on_a_worker(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="trustlayer.gate")
    keeping_gate()
    assert not [r for r in caplog.records if "keeps_deadline" in r.getMessage()]
    make_gate()
    said = [r.getMessage() for r in caplog.records if "keeps_deadline" in r.getMessage()]
    assert len(said) == 1 and "RegexDetector" in said[0] and "HmacSigner" in said[0]
