"""Interleavings of the deadline watchers, forced deterministically (each failed before its fix)."""

from __future__ import annotations

import dis
import threading
import time

import anyio
import pytest
from stagekit import CLOUD, DEVICE, Hanging, ListRecorder, RegexDetector, SimplePolicy, make_gate

import trustlayer.gate as gate_module
from trustlayer import _watchdog
from trustlayer.errors import Blocked
from trustlayer.types import Message, Route

ROUTE = Route.between(DEVICE, CLOUD)


def test_a_stage_ending_between_the_watchers_two_deadline_reads_does_not_disable_later_timeouts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """_drive clears _deadline without the lock; expired() reads it twice: `monotonic() > None` -> TypeError,
    which kills _LoopWatchers' timer, so the next hung stage is never timed out and its result is used."""
    go, started = threading.Event(), threading.Event()

    class SlowPolicy(SimplePolicy):
        def entities_for(self, route: Route) -> frozenset[str] | None:
            started.set()
            go.wait(5)
            return super().entities_for(route)

    real, fired, loop_thread = gate_module._monotonic, [False], []

    def monotonic() -> float:
        # A GIL switch inside expired(), after `self._deadline is not None`: the worker's stage ends and it
        # stores `_deadline = None` (then waits for the lock the watcher holds).
        if loop_thread and threading.current_thread() is loop_thread[0] and started.is_set() and not fired[0]:
            fired[0] = True
            go.set()
            time.sleep(0.1)
        return real()

    monkeypatch.setattr(gate_module, "_monotonic", monotonic)
    rec = ListRecorder()
    gate = make_gate(decider=SlowPolicy(), detector=Hanging(1.5, RegexDetector(), "detect"), recorder=rec,
                     timeouts={"detect": 0.2})

    async def main() -> object:
        loop_thread.append(threading.current_thread())
        return await gate.offload(lambda: gate.outbound(Message.from_text("hi", conversation_id="c"), ROUTE))

    with pytest.raises(Blocked, match="detect: timed out after 0.2 s"):
        anyio.run(main)
    assert rec.directions() == ["block"]


def test_a_path_watched_as_the_watchdog_goes_idle_is_still_checked() -> None:
    """_loop computes `not self._active` before raising _sleeping: a watch() in between skips the wake-up."""
    code = _watchdog._Dog._loop.__code__
    stores = {i.offset for i in dis.get_instructions(code) if i.opname == "STORE_ATTR" and i.argval == "_sleeping"}
    paused, resume, once = threading.Event(), threading.Event(), [True]

    def local(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "opcode" and once[0] and frame.f_lasti in stores:
            once[0] = False
            paused.set()
            resume.wait(5)  # a thread switch before the loop's (first) store of _sleeping
        return local

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code is code:
            frame.f_trace_opcodes = True
            return local
        return None

    threading.settrace(tracer)
    try:
        dog = _watchdog._Dog()  # a private watchdog with nothing watched: about to go idle
    finally:
        threading.settrace(None)  # type: ignore[arg-type]
    assert paused.wait(5)
    checked = threading.Event()

    class Item:
        def check(self) -> bool:
            checked.set()
            return True

    dog.watch(Item())
    resume.set()
    assert checked.wait(1.0), "the watchdog went idle with a path watched: its caller would wait forever"


def test_a_deadline_check_that_raises_stops_the_path_it_was_watching(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event loop's timer treats a failing check as a timeout: the abandoned path must not carry on."""
    def broken(self: object) -> bool:
        raise RuntimeError("check failed")

    monkeypatch.setattr(gate_module._Watched, "expired", broken)
    rec = ListRecorder()
    gate = make_gate(detector=Hanging(0.3, RegexDetector(), "detect"), recorder=rec, timeouts={"detect": 5.0})

    async def main() -> object:
        return await gate.offload(lambda: gate.outbound(Message.from_text("hi", conversation_id="c"), ROUTE))

    with pytest.raises(Blocked):
        anyio.run(main)
    time.sleep(0.6)  # the abandoned worker's detect returns meanwhile
    assert rec.directions() == ["block"], "the abandoned path went on and recorded its hop"
