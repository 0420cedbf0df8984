"""``Gate.offload``: gate paths run inline in one worker thread while the event loop watches their deadlines."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from stagekit import CLOUD, DEVICE, Hanging, ListRecorder, Pseudonymizer, RegexDetector, make_gate

from trustlayer.errors import Blocked
from trustlayer.gate import Outbound
from trustlayer.types import Message, Route

KEY = "sk-AbCdEf123456"
ROUTE = Route.between(DEVICE, CLOUD)


def chat(text: str) -> Message:
    return Message.from_openai([{"role": "user", "content": text}], conversation_id="c-offload")


def test_both_paths_and_the_call_between_run_in_one_worker_thread() -> None:
    rec = ListRecorder()
    gate = make_gate(recorder=rec)
    threads: set[str] = set()
    sent: list[str] = []

    class Where(RegexDetector):
        def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list:  # type: ignore[override]
            threads.add(threading.current_thread().name)
            return super().detect(message, entities=entities)

    gate = make_gate(recorder=rec, detector=Where())

    def exchange() -> str:
        out = gate.outbound(chat(f"my key is {KEY}"), ROUTE)
        threads.add(threading.current_thread().name)
        sent.append(out.message.canonical_bytes().decode())
        reply = Message.from_openai([{"role": "assistant", "content": "noted " + out.message.turns[0].content}],
                                    conversation_id="c-offload")
        back = gate.inbound(reply, out.route, request=out)
        return str(back.message.turns[0].content)

    answer = anyio.run(gate.offload, exchange)
    assert KEY in answer and KEY not in sent[0]          # restored for the caller, pseudonymized on the wire
    assert len(threads) == 1 and threading.current_thread().name not in threads
    assert rec.directions() == ["outbound", "inbound"]


@pytest.mark.parametrize("stage", ["detect", "transform"])
def test_a_hung_stage_blocks_in_time_and_nothing_is_sent(stage: str) -> None:
    rec = ListRecorder()
    over: dict[str, object] = {"recorder": rec, "timeouts": {stage: 0.2}}
    if stage == "detect":
        over["detector"] = Hanging(3.0, RegexDetector(), "detect")
    else:
        over["transformer"] = Hanging(3.0, Pseudonymizer(), "transform")
    gate = make_gate(**over)
    sent: list[Outbound] = []

    def exchange() -> None:
        sent.append(gate.outbound(chat(f"my key is {KEY}"), ROUTE))

    start = time.monotonic()
    with pytest.raises(Blocked, match=f"{stage}: timed out after 0.2 s") as info:
        anyio.run(gate.offload, exchange)
    assert time.monotonic() - start < 2.0
    assert info.value.stage == stage
    assert rec.directions() == ["block"]
    time.sleep(3.2)                                      # the abandoned thread's stage returns ...
    assert sent == []                                    # ... and its path still refuses to hand anything on
    assert rec.directions() == ["block"]


def test_a_late_last_stage_does_not_let_the_result_out() -> None:
    """The recorder is the last stage: when it returns after its deadline, the path must not return a result."""
    rec = ListRecorder()

    class SlowRecorder(ListRecorder):
        def record(self, envelope: bytes) -> int:
            if b"outbound" in envelope:
                time.sleep(1.0)
            return rec.record(envelope)

    gate = make_gate(recorder=SlowRecorder(), timeouts={"record": 0.2})
    sent: list[Outbound] = []
    with pytest.raises(Blocked, match="record: timed out"):
        anyio.run(gate.offload, lambda: sent.append(gate.outbound(chat("hello"), ROUTE)))
    time.sleep(1.2)
    assert sent == []


def test_errors_inside_come_out_unchanged() -> None:
    gate = make_gate()

    def broken() -> None:
        raise LookupError("not a gate error")

    with pytest.raises(LookupError, match="not a gate error"):
        anyio.run(gate.offload, broken)


def test_without_timeouts_offload_is_a_plain_thread_call() -> None:
    gate = make_gate(timeouts={k: None for k in ("detect", "decide", "transform", "sign", "record",
                                                   "authenticate", "restore", "verify")})
    out = anyio.run(gate.offload, lambda: gate.outbound(chat(f"key {KEY}"), ROUTE))
    assert KEY not in out.message.canonical_bytes().decode()


def test_another_gate_called_inside_uses_its_own_watchdog() -> None:
    first, second = make_gate(), make_gate(detector=Hanging(3.0, RegexDetector(), "detect"),
                                           timeouts={"detect": 0.2})
    with pytest.raises(Blocked, match="detect: timed out"):
        anyio.run(first.offload, lambda: second.outbound(chat("hello"), ROUTE))


def test_many_offloads_on_one_loop_only_the_hung_one_blocks() -> None:
    """One event loop, one deadline timer: a hung path among quick ones blocks alone, the rest pass."""
    from trustlayer.gate import _LoopWatchers

    quick = make_gate()
    stuck = make_gate(detector=Hanging(2.0, RegexDetector(), "detect"), timeouts={"detect": 0.2})

    async def main() -> tuple[list[object], int]:
        results: list[object] = []

        async def one(gate: object, i: int) -> None:
            try:
                out = await gate.offload(  # type: ignore[attr-defined]
                    lambda: gate.outbound(chat(f"call {i}"), ROUTE))  # type: ignore[attr-defined]
                results.append(out.route.recipient.id)
            except Blocked as blocked:
                results.append(blocked.stage)

        async with anyio.create_task_group() as tasks:
            for i in range(12):
                tasks.start_soon(one, stuck if i == 5 else quick, i)
        import asyncio

        return results, len(_LoopWatchers.of(asyncio.get_running_loop())._active)

    results, still_watched = anyio.run(main)
    assert sorted(map(str, results)) == sorted([CLOUD.id] * 11 + ["detect"])
    assert still_watched == 0


def test_on_trio_a_hung_stage_blocks_in_time_too() -> None:
    rec = ListRecorder()
    gate = make_gate(detector=Hanging(3.0, RegexDetector(), "detect"), recorder=rec, timeouts={"detect": 0.2})
    start = time.monotonic()
    with pytest.raises(Blocked, match="detect: timed out after 0.2 s"):
        anyio.run(gate.offload, lambda: gate.outbound(chat("hello"), ROUTE), backend="trio")
    assert time.monotonic() - start < 2.0
    assert rec.directions() == ["block"]
    quick = make_gate()
    out = anyio.run(quick.offload, lambda: quick.outbound(chat(f"key {KEY}"), ROUTE), backend="trio")
    assert KEY not in out.message.canonical_bytes().decode()
