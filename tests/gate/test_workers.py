"""The watchdog's shared worker threads: reused between messages, replaced when a stage hangs."""

from __future__ import annotations

import os
import threading

import pytest
from concurrency import run_in_threads
from stagekit import CLOUD, DEVICE, Hanging, ListRecorder, RegexDetector, make_gate

from trustlayer import _workers
from trustlayer.errors import Blocked
from trustlayer.types import Message, Route

ROUTE = Route.between(DEVICE, CLOUD)


def chat(text: str) -> Message:
    return Message.from_openai([{"role": "user", "content": text}], conversation_id="c-workers")


def gate_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "trustlayer-gate")


def test_sequential_messages_reuse_one_worker() -> None:
    gate = make_gate()
    gate.outbound(chat("hello"), ROUTE)
    before = gate_threads()
    for _ in range(200):
        gate.outbound(chat("hello"), ROUTE)
    assert gate_threads() == before


def test_a_hung_stage_costs_its_worker_and_the_next_message_still_passes() -> None:
    release = threading.Event()

    class Stuck(RegexDetector):
        def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list:  # type: ignore[override]
            release.wait(10)
            return super().detect(message, entities=entities)

    rec = ListRecorder()
    hung = make_gate(detector=Stuck(), recorder=rec, timeouts={"detect": 0.1})
    with pytest.raises(Blocked, match="detect: timed out after 0.1 s"):
        hung.outbound(chat("hello"), ROUTE)
    assert rec.directions() == ["block"]
    # The abandoned worker is still inside the hung stage; another gate's message gets another worker.
    assert make_gate().outbound(chat("hello"), ROUTE).message.turns is not None
    release.set()


def test_many_threads_at_once_leave_at_most_max_idle_workers() -> None:
    gate = make_gate()
    start = threading.Barrier(48)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            start.wait()
            for _ in range(20):
                gate.outbound(chat("hello"), ROUTE)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    run_in_threads([one] * 48)
    assert not errors
    assert len(_workers._idle) <= _workers.MAX_IDLE


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_workers() -> None:
    make_gate().outbound(chat("hello"), ROUTE)  # leaves an idle worker in the parent
    pid = os.fork()
    if pid == 0:  # the child: the parent's idle workers do not exist here
        try:
            make_gate(timeouts={"detect": 2.0}).outbound(chat("hello"), ROUTE)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_hanging_stage_fixture_still_blocks() -> None:
    gate = make_gate(detector=Hanging(5.0, RegexDetector(), "detect"), timeouts={"detect": 0.1})
    with pytest.raises(Blocked, match="timed out"):
        gate.outbound(chat("hello"), ROUTE)


def _watchdog_ticking() -> bool:
    from trustlayer import _watchdog

    dog = _watchdog._dog
    return dog is not None and not dog._sleeping


def test_the_deadline_watchdog_sleeps_when_idle_and_wakes_for_the_next_hung_stage() -> None:
    import time

    from trustlayer import _watchdog

    make_gate().outbound(chat("hello"), ROUTE)  # the watchdog thread exists from here on
    deadline = time.monotonic() + 2
    while _watchdog_ticking() and time.monotonic() < deadline:
        time.sleep(_watchdog.EVERY)
    assert not _watchdog_ticking(), "the watchdog kept ticking with nothing to watch"
    gate = make_gate(detector=Hanging(5.0, RegexDetector(), "detect"), timeouts={"detect": 0.2})
    started = time.monotonic()
    with pytest.raises(Blocked, match="detect: timed out after 0.2 s"):
        gate.outbound(chat("hello"), ROUTE)
    # Noticed on the watchdog's next look after the deadline (plus scheduling), not at the 5 s the stage takes.
    assert time.monotonic() - started < 0.2 + 10 * _watchdog.EVERY


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_deadline_watchdog() -> None:
    make_gate(detector=Hanging(0.0, RegexDetector(), "detect"), timeouts={"detect": 1.0}).outbound(
        chat("hello"), ROUTE)  # the parent's watchdog thread exists now
    pid = os.fork()
    if pid == 0:  # the child has no watchdog thread: a hung stage must still time out
        try:
            gate = make_gate(detector=Hanging(30.0, RegexDetector(), "detect"), timeouts={"detect": 0.2})
            gate.outbound(chat("hello"), ROUTE)
            os._exit(2)  # should have been blocked
        except Blocked:
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's hung stage never timed out (no watchdog in the child)")


def test_stages_ending_right_at_their_deadline_either_pass_or_block_never_both() -> None:
    """A path that finishes as the watchdog looks: the caller gets the result or Blocked, and the log agrees."""
    from trustlayer import _watchdog

    for _ in range(30):
        rec = ListRecorder()
        gate = make_gate(detector=Hanging(_watchdog.EVERY, RegexDetector(), "detect"), recorder=rec,
                         timeouts={"detect": _watchdog.EVERY})
        try:
            gate.outbound(chat("hello"), ROUTE)
        except Blocked:
            # The hung path stops before its next stage: no outbound record, only the block.
            assert rec.directions() == ["block"]
        else:
            assert rec.directions() == ["outbound"]
