"""Consensus keeps its gate stage deadline: the sync ``verify`` waits for its panel no longer than the deadline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from deadlines import blocked_in_time, gives_up, held, start, waits
from stagekit import CLOUD, DEVICE, ListRecorder, keeping_gate

from trustlayer.errors import DeadlineExceeded, Unverified
from trustlayer.redaction import Redactor, Vault
from trustlayer.types import Endpoint, Message, Route, Verdict, VerifyRequirement
from trustlayer.verifiers import Consensus
from trustlayer.verifiers import consensus as consensus_module

PANEL = [CLOUD, *(Endpoint(id=f"panel-{i}", kind="cloud", jurisdiction="US", url="http://127.0.0.1:9/v1", model="m")
                  for i in (1, 2))]
ROUTE = Route.between(DEVICE, CLOUD)
REQUIRE = VerifyRequirement(quorum=2, of=3, measure="exact", deadline=30)


class Echo:
    """A panel endpoint that answers at once with the question it was asked."""

    async def ask(self, endpoint: Endpoint, message: Message, deadline: float) -> str:
        return str(message.to_openai()[-1]["content"])


class Silent:
    """A panel endpoint that does not answer within any deadline of these tests."""

    def __init__(self) -> None:
        self.cancelled = 0

    async def ask(self, endpoint: Endpoint, message: Message, deadline: float) -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return "never"


def allow_all(message: Message, route: Route) -> Message:
    return message


def chat(role: str, text: str) -> Message:
    return Message.from_openai([{"role": role, "content": text}], conversation_id="c1")


def test_consensus_declares_that_it_keeps_its_deadline() -> None:
    assert Consensus.keeps_deadline is True


def restoring_through(tmp_path: Path) -> tuple[Consensus, Vault, Message]:
    """Consensus whose panel echoes a request holding a placeholder, restored from the real vault."""
    vault = Vault.open(tmp_path / "vault.db", bytes(32))
    request = chat("user", f"Say hello to {vault.pseudonym('c1', 'PERSON', 'Ada Lovelace')}")
    consensus = Consensus(PANEL, asker=Echo(), policy=allow_all, restore=Redactor(vault, ner=False).restore)
    return consensus, vault, request


def test_verify_gives_up_while_the_answers_wait_for_the_vault(tmp_path: Path) -> None:
    consensus, vault, request = restoring_through(tmp_path)
    # restoring the panel's answers waits for the vault's lock, in a thread of the verifier's loop
    gives_up(lambda: consensus.verify(request, chat("assistant", "Say hello to Ada Lovelace"), ROUTE, REQUIRE),
             held(vault._locked._lock), about="consensus panel's verdict", hidden="Ada")


def test_verify_without_a_deadline_waits_for_the_verdict_as_before(tmp_path: Path) -> None:
    consensus, vault, request = restoring_through(tmp_path)
    call = waits(lambda: consensus.verify(request, chat("assistant", "Say hello to Ada Lovelace"), ROUTE, REQUIRE),
                 held(vault._locked._lock))
    verdict = call.value[0]
    assert isinstance(verdict, Verdict) and verdict.verified and verdict.answer == "Say hello to Ada Lovelace"


def test_verify_under_a_passed_deadline_asks_nobody() -> None:
    silent = Silent()
    consensus = Consensus(PANEL, asker=silent, policy=allow_all)
    call = start(lambda: consensus.verify(chat("user", "What is 2 + 3?"), chat("assistant", "5"), ROUTE, REQUIRE),
                 seconds=-1.0).join()
    assert call.finished and isinstance(call.raised, DeadlineExceeded)
    assert "before asking" in str(call.raised) and silent.cancelled == 0


def test_verify_gives_up_on_the_event_loop_another_thread_is_starting() -> None:
    silent = Silent()
    consensus = Consensus(PANEL, asker=silent, policy=allow_all)
    gives_up(lambda: consensus.verify(chat("user", "What is 2 + 3?"), chat("assistant", "5"), ROUTE, REQUIRE),
             held(consensus_module._loop_lock), about="event loop")
    assert silent.cancelled == 0  # nobody was asked


def test_a_gate_blocks_at_verify_when_the_panel_stays_silent_and_the_asks_are_cancelled() -> None:
    silent = Silent()
    consensus = Consensus(PANEL, asker=silent, policy=allow_all)
    recorder = ListRecorder()
    gate = keeping_gate(recorder=recorder, verifier=consensus, identity=DEVICE.id, endpoints=(DEVICE, *PANEL),
                        timeouts={"verify": 0.3})
    out = gate.outbound(chat("user", "What is 2 + 3?"), ROUTE)
    # the panel's own deadline is 30 s: the gate returns at the stage's
    blocked = blocked_in_time(lambda: gate.inbound(chat("assistant", "5"), out.route, request=out, verify=REQUIRE),
                              stage="verify", seconds=0.3)
    assert isinstance(blocked, Unverified)
    assert recorder.directions() == ["outbound", "block"]
    for _ in range(100):  # the verifier's loop cancels the two asks soon after the caller gave up
        if silent.cancelled == 2:
            break
        time.sleep(0.05)
    assert silent.cancelled == 2


def test_the_wait_for_the_event_loop_counts_against_the_deadline_of_the_verdict() -> None:
    silent = Silent()
    consensus = Consensus(PANEL, asker=silent, policy=allow_all)
    lock = held(consensus_module._loop_lock)
    started = time.monotonic()
    call = start(lambda: consensus.verify(chat("user", "What is 2 + 3?"), chat("assistant", "5"), ROUTE, REQUIRE),
                 seconds=1.0)
    time.sleep(0.8)  # most of the stage's second goes on waiting for the loop
    lock.release()
    assert call.join().finished
    ended = time.monotonic()
    assert isinstance(call.raised, DeadlineExceeded) and "verdict" in str(call.raised)
    # Once the loop is free, only what is left of the second: not a whole second more (it ended at ~1.8 s).
    assert ended - started < 1.5
