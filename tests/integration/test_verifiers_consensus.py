"""Consensus against real OpenAI-compatible servers on 127.0.0.1 (Starlette under uvicorn).

Each server computes its reply from the question it actually received: an honest one
answers "What is A + B?" correctly (in varied formats), a faulty one adds one, one hangs,
one fails with HTTP 500. Nothing here returns a pre-set verdict.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from trustlayer.audit.store import open_store
from trustlayer.errors import Blocked, ConfigError
from trustlayer.provenance.keys import SigningKey
from trustlayer.types import Endpoint, Message, Route, Verdict, VerifyRequirement
from trustlayer.verifiers import Consensus, EndpointAsker, Reputation

QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")


def _sum(body: dict[str, Any]) -> int:
    text = body["messages"][-1]["content"]
    found = QUESTION.search(text)
    if found is None:
        raise ValueError("no question")
    return int(found.group(1)) + int(found.group(2))


HONEST_FORMATS: list[Callable[[int], str]] = [
    lambda n: f"{n}",
    lambda n: f"The answer is {n:,}.",
    lambda n: f"Adding the two numbers gives the total.\n#### {n}.0",
]


def _completion(body: dict[str, Any], reply: str) -> JSONResponse:
    return JSONResponse({"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": reply}}]})


@dataclass
class Server:
    name: str
    behaviour: str  # honest | wrong | hang | fail | echo
    received: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def app(self) -> Starlette:
        async def complete(request: Request) -> Response:
            body = json.loads(await request.body())
            self.received.append(body)
            if self.behaviour == "hang":
                while not self.release.is_set():
                    await asyncio.sleep(0.05)
            if self.behaviour == "fail":
                return JSONResponse({"error": {"message": "boom"}}, status_code=500)
            if self.behaviour == "echo":
                return _completion(body, body["messages"][-1]["content"])
            try:
                n = _sum(body)
            except ValueError:
                reply = "I cannot tell."
            else:
                reply = (HONEST_FORMATS[len(self.received) % 3](n) if self.behaviour == "honest"
                         else f"The answer is {n + 1}.")
            return _completion(body, reply)

        return Starlette(routes=[StarletteRoute("/v1/chat/completions", complete, methods=["POST"])])


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> Iterator[dict[str, Server]]:
    specs: list[tuple[str, str]] = request.param
    running: list[tuple[uvicorn.Server, threading.Thread, Server]] = []
    out: dict[str, Server] = {}
    try:
        for name, behaviour in specs:
            state = Server(name, behaviour)
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
            server = uvicorn.Server(uvicorn.Config(state.app(), log_level="error", lifespan="off",
                                                   timeout_graceful_shutdown=2))
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            running.append((server, thread, state))
            out[name] = state
        deadline = time.monotonic() + 10
        while not all(s.started for s, _, _ in running):
            if time.monotonic() > deadline:
                raise RuntimeError("loopback servers did not start")
            time.sleep(0.02)
        yield out
    finally:
        for server, _, state in running:
            state.release.set()
            server.should_exit = True
        for _, thread, _ in running:
            thread.join(timeout=10)


DEVICE = Endpoint(id="phone", kind="device", jurisdiction="DE", box="white")


def endpoints(servers: dict[str, Server]) -> list[Endpoint]:
    return [Endpoint(id=s.name, kind="cloud", jurisdiction="US", url=s.url, model=f"m-{s.name}")
            for s in servers.values()]


def allow_all(message: Message, route: Route) -> Message:
    return message


def question(a: int, b: int) -> Message:
    return Message.from_openai([{"role": "user", "content": f"What is {a} + {b}?"}], conversation_id="c1")


def answer(text: str) -> Message:
    return Message.from_openai([{"role": "assistant", "content": text}], conversation_id="c1")


THREE = [("a", "honest"), ("b", "wrong"), ("c", "honest")]


def ask(consensus: Consensus, prepare: Callable[[Endpoint], Message | None], **kwargs: Any) -> Verdict:
    """One fan-out on a fresh event loop, closing the connections it opened."""
    async def run() -> Verdict:
        try:
            return await consensus.ask_async(prepare, **kwargs)
        finally:
            await consensus.aclose()
    return asyncio.run(run())


@pytest.mark.parametrize("servers", [THREE], indirect=True)
def test_the_endpoint_that_answers_wrong_is_named(servers: dict[str, Server]) -> None:
    panel = endpoints(servers)
    consensus = Consensus(panel, asker=EndpointAsker(), policy=allow_all)
    verdict = ask(consensus, lambda ep: question(600, 400), quorum=2, deadline=10)
    assert verdict.outcome == "verified"
    assert verdict.dissenting == ("b",)
    assert set(verdict.agreeing) == {"a", "c"}
    assert verdict.answer is not None and "1" in verdict.answer
    assert verdict.agreement == pytest.approx(2 / 3)
    assert all(len(s.received) == 1 for s in servers.values())


@pytest.mark.parametrize("servers", [THREE], indirect=True)
def test_verify_takes_the_primary_answer_without_asking_it_again(servers: dict[str, Server]) -> None:
    panel = endpoints(servers)
    consensus = Consensus(panel, asker=EndpointAsker(), policy=allow_all)
    route = Route.between(DEVICE, panel[1])  # the faulty endpoint is the primary
    requirement = VerifyRequirement(quorum=2, of=3, measure="exact", deadline=10)
    verdict = consensus.verify(question(2, 2), answer("5"), route, requirement)
    consensus.close()
    assert verdict.verified
    assert verdict.dissenting == ("b",)
    assert verdict.answered_by in {"a", "c"}
    assert servers["b"].received == []  # its answer was already in hand


@pytest.mark.parametrize("servers", [[("a", "honest"), ("b", "hang"), ("c", "honest")]], indirect=True)
def test_a_hanging_endpoint_abstains_within_the_deadline(servers: dict[str, Server]) -> None:
    consensus = Consensus(endpoints(servers), asker=EndpointAsker(), policy=allow_all)
    started = time.monotonic()
    verdict = ask(consensus, lambda ep: question(20, 22), quorum=2, deadline=3.0)
    elapsed = time.monotonic() - started
    assert verdict.abstained == {"b": "timeout"}
    assert verdict.verified and set(verdict.agreeing) == {"a", "c"}
    assert elapsed < 15.0, "the hanging server holds its reply until teardown; we must not wait for it"
    assert len(servers["b"].received) == 1


@pytest.mark.parametrize("servers", [[("a", "honest"), ("b", "hang"), ("c", "wrong")]], indirect=True)
def test_quorum_not_met_is_an_explicit_unverified_verdict(servers: dict[str, Server]) -> None:
    consensus = Consensus(endpoints(servers), asker=EndpointAsker(), policy=allow_all)
    verdict = ask(consensus, lambda ep: question(7, 8), quorum=2, deadline=3.0)
    assert verdict.outcome == "unverified"
    assert verdict.answer is None and verdict.answered_by is None
    assert verdict.abstained == {"b": "timeout"}
    assert verdict.evidence["split"] == 1.0  # a says 15, c says 16: one vote each


@pytest.mark.parametrize("servers", [[("a", "honest"), ("b", "fail"), ("c", "honest")]], indirect=True)
def test_an_http_error_is_an_abstention_and_a_strict_quorum_fails(servers: dict[str, Server]) -> None:
    consensus = Consensus(endpoints(servers), asker=EndpointAsker(), policy=allow_all)
    verdict = ask(consensus, lambda ep: question(1, 1), quorum=3, deadline=5)
    assert verdict.abstained == {"b": "error: HTTP 500"}
    assert verdict.outcome == "unverified"
    assert set(verdict.agreeing) == {"a", "c"}


@pytest.mark.parametrize("servers", [THREE], indirect=True)
def test_policy_decides_per_endpoint_what_it_receives(servers: dict[str, Server]) -> None:
    panel = endpoints(servers)

    def policy(message: Message, route: Route) -> Message | None:
        if route.recipient.id == "c":
            raise Blocked("decide", "rule us-only forbids this data on c")
        if route.recipient.id == "b":
            return None
        return message

    consensus = Consensus(panel, asker=EndpointAsker(), policy=policy)
    route = Route.between(DEVICE, panel[0])
    original = Message.from_openai([{"role": "user", "content": "Alice asks: What is 3 + 4?"}],
                                   conversation_id="c1")
    verdict = consensus.verify(original, answer("7"), route, VerifyRequirement(quorum=1, of=3, deadline=5))
    consensus.close()
    assert verdict.abstained == {"b": "policy", "c": "policy"}
    assert servers["b"].received == [] and servers["c"].received == []
    assert verdict.verified and verdict.agreeing == ("a",)


@pytest.mark.parametrize("servers", [THREE], indirect=True)
def test_policy_transform_is_what_the_endpoint_sees(servers: dict[str, Server]) -> None:
    panel = endpoints(servers)

    def policy(message: Message, route: Route) -> Message:
        text = dict(message.texts())["turns[0].content"]
        return message.replace_texts({"turns[0].content": text.replace("Alice", "<PERSON_1>")})

    consensus = Consensus(panel, asker=EndpointAsker(), policy=policy)
    original = Message.from_openai([{"role": "user", "content": "Alice asks: What is 3 + 4?"}],
                                   conversation_id="c1")
    verdict = consensus.verify(original, answer("7"), Route.between(DEVICE, panel[0]),
                               VerifyRequirement(quorum=2, of=3, deadline=5))
    consensus.close()
    assert verdict.verified and verdict.dissenting == ("b",)
    for name in ("b", "c"):
        seen = json.dumps(servers[name].received)
        assert "Alice" not in seen and "<PERSON_1>" in seen


@pytest.mark.parametrize("servers", [[("a", "honest"), ("b", "wrong"), ("c", "honest"), ("d", "honest")]],
                         indirect=True)
def test_reputation_flags_the_faulty_endpoint_and_policy_can_exclude_it(
        servers: dict[str, Server], tmp_path: Any) -> None:
    panel = endpoints(servers)
    store = open_store(f"sqlite:///{tmp_path}/audit.db", log_key=SigningKey.generate())
    try:
        reputation = Reputation(store)
        consensus = Consensus(panel[:3], asker=EndpointAsker(), policy=allow_all, reputation=reputation)
        for i in range(6):
            ask(consensus, lambda ep, i=i: question(i, 10), quorum=2, deadline=5)
        assert reputation.flagged(0.5) == ("b",)
        rows = {r.endpoint: r for r in store.reputation()}  # the audit store's own table
        assert (rows["b"].agreements, rows["b"].dissents) == (0, 6)
        assert (rows["a"].agreements, rows["a"].dissents) == (6, 0)

        excluding = Consensus(panel, asker=EndpointAsker(), policy=allow_all, reputation=reputation,
                              exclude_above=0.5)
        before = len(servers["b"].received)
        verdict = ask(excluding, lambda ep: question(5, 5), quorum=3, of=3, deadline=5)
        assert len(servers["b"].received) == before
        assert verdict.verified and set(verdict.agreeing) == {"a", "c", "d"}
    finally:
        store.close()


def test_consensus_refuses_an_inconsistent_setup() -> None:
    ep = Endpoint(id="x", kind="cloud", jurisdiction="US", url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="names endpoint\\(s\\) twice: x"):
        Consensus([ep, ep], asker=EndpointAsker(), policy=allow_all)
    with pytest.raises(ConfigError, match="needs at least one endpoint"):
        Consensus([], asker=EndpointAsker(), policy=allow_all)
    with pytest.raises(ConfigError, match="exclude_above needs a reputation store"):
        Consensus([ep], asker=EndpointAsker(), policy=allow_all, exclude_above=0.5)
    consensus = Consensus([ep], asker=EndpointAsker(), policy=allow_all)
    with pytest.raises(ConfigError, match="needs 3 endpoints but the consensus panel offers 2"):
        consensus.verify(question(1, 2), answer("3"), Route.between(DEVICE, Endpoint(
            id="y", kind="cloud", jurisdiction="US")), VerifyRequirement(quorum=2, of=3, deadline=1))
