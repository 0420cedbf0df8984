"""What clients get when something is wrong: OpenAI-style errors, no content, no hangs."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from integration.proxy_upstream import (
    CLIENT_KEY,
    UPSTREAM_KEY,
    UPSTREAM_KEY_ENV,
    Upstream,
    cloud_endpoint,
    create_upstream,
    proxy_for,
)
from stagekit import (
    DEVICE,
    BlockAll,
    FixedVerifier,
    Hanging,
    HmacSigner,
    ListRecorder,
    Pseudonymizer,
    RegexDetector,
    SimplePolicy,
    make_gate,
)

from trustlayer.endpoints import client_for
from trustlayer.intercept.proxy import MAX_BODY_BYTES, create_app
from trustlayer.intercept.proxy_cli import BackgroundServer
from trustlayer.types import VerifyRequirement

SECRET = "sk-AbCdEf123456"
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}
HELLO = {"model": "m", "messages": [{"role": "user", "content": f"hello {SECRET}"}]}


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[tuple[Upstream, str]]:
    state = Upstream()
    with BackgroundServer(create_upstream(state)) as server:
        yield state, server.url


RECORDER = ListRecorder()


@pytest.fixture(scope="module")
def proxy(upstream_server: tuple[Upstream, str]) -> Iterator[str]:
    with proxy_for(make_gate(recorder=RECORDER), upstream_server[1], timeout=0.5) as server:
        yield server.url


@pytest.fixture()
def upstream(upstream_server: tuple[Upstream, str]) -> Upstream:
    upstream_server[0].reset()
    return upstream_server[0]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert SECRET not in response.text
    error: dict[str, Any] = body["error"]
    return error


def test_missing_or_wrong_key_is_401(proxy: str, upstream: Upstream) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {CLIENT_KEY}"}):
        reply = httpx.post(proxy + "/v1/chat/completions", json=HELLO, headers=headers)
        assert reply.status_code == 401
        assert error_of(reply)["code"] == "invalid_api_key"
    assert httpx.get(proxy + "/v1/models").status_code == 401
    assert upstream.received == []


def test_health_needs_no_key_and_models_lists_the_upstream(proxy: str) -> None:
    assert httpx.get(proxy + "/healthz").json() == {"status": "ok"}
    models = httpx.get(proxy + "/v1/models", headers=AUTH).json()
    assert models["object"] == "list" and models["data"][0]["id"] == "m-upstream"


def test_blocked_request_is_403_naming_the_rule_and_nothing_is_sent(upstream_server: tuple[Upstream, str],
                                                                    upstream: Upstream) -> None:
    recorder = ListRecorder()
    with proxy_for(make_gate(decider=BlockAll(), recorder=recorder), upstream_server[1]) as server:
        reply = httpx.post(server.url + "/v1/chat/completions", json=HELLO, headers=AUTH)
    assert reply.status_code == 403
    error = error_of(reply)
    assert error["type"] == "blocked" and error["code"] == "policy_blocked"
    assert "rule no-way" in error["message"] and error["rule_ids"] == ["no-way"]
    assert upstream.received == []
    assert recorder.directions() == ["block"]


def test_hung_upstream_is_a_504_not_a_hang(proxy: str, upstream: Upstream) -> None:
    upstream.hang = 5.0
    for body in (HELLO, {**HELLO, "stream": True}):
        started = time.monotonic()
        reply = httpx.post(proxy + "/v1/chat/completions", json=body, headers=AUTH, timeout=10)
        assert time.monotonic() - started < 3
        assert reply.status_code == 504
        assert error_of(reply)["code"] == "upstream_timeout"


@pytest.mark.parametrize("stream", [False, True])
def test_a_hung_outbound_stage_blocks_in_time_and_nothing_is_sent(upstream_server: tuple[Upstream, str],
                                                                  upstream: Upstream, stream: bool) -> None:
    # The gate runs in a worker thread (with the upstream call, when not streamed): its stage deadlines must hold.
    recorder = ListRecorder()
    gate = make_gate(detector=Hanging(5.0, RegexDetector(), "detect"), recorder=recorder, timeouts={"detect": 0.3})
    with proxy_for(gate, upstream_server[1]) as server:
        started = time.monotonic()
        reply = httpx.post(server.url + "/v1/chat/completions", json={**HELLO, "stream": stream}, headers=AUTH,
                           timeout=10)
        elapsed = time.monotonic() - started
    assert elapsed < 3
    assert reply.status_code == 403
    error = error_of(reply)
    assert error["stage"] == "detect" and "timed out after 0.3 s" in error["message"]
    assert upstream.received == []
    assert recorder.directions() == ["block"]


def test_a_hung_inbound_stage_blocks_the_answer_in_time(upstream_server: tuple[Upstream, str],
                                                        upstream: Upstream) -> None:
    recorder = ListRecorder()
    pseudo = Pseudonymizer()
    gate = make_gate(transformer=pseudo, restorer=Hanging(5.0, pseudo, "restore"), recorder=recorder,
                     timeouts={"restore": 0.3})
    with proxy_for(gate, upstream_server[1]) as server:
        started = time.monotonic()
        reply = httpx.post(server.url + "/v1/chat/completions", json=HELLO, headers=AUTH, timeout=10)
        elapsed = time.monotonic() - started
    assert elapsed < 3
    assert reply.status_code == 403
    error = error_of(reply)
    assert error["stage"] == "restore" and "timed out after 0.3 s" in error["message"]
    assert len(upstream.received) == 1 and SECRET not in upstream.received[0].everything()
    assert recorder.directions() == ["outbound", "block"]


def test_trickling_upstream_is_a_504_too(proxy: str, upstream: Upstream) -> None:
    upstream.trickle = 0.05
    started = time.monotonic()
    reply = httpx.post(proxy + "/v1/chat/completions", json=HELLO, headers=AUTH, timeout=30)
    assert time.monotonic() - started < 3
    assert reply.status_code == 504 and "answer not complete within 0.5s" in error_of(reply)["message"]


def test_upstream_stalling_mid_stream_ends_with_an_error_event(proxy: str, upstream: Upstream) -> None:
    upstream.chunk_delay = 2.0
    with httpx.stream("POST", proxy + "/v1/chat/completions", json={**HELLO, "stream": True}, headers=AUTH,
                      timeout=10) as reply:
        assert reply.status_code == 200
        text = reply.read().decode()
    assert '"code": "upstream_timeout"' in text and "[DONE]" not in text
    assert SECRET not in text


def test_upstream_error_is_502_without_its_content(proxy: str, upstream: Upstream) -> None:
    upstream.fail_first = [(400, {}, b'{"error": {"message": "you said <SECRET_1>", "type": "invalid_request_error"}}')]
    reply = httpx.post(proxy + "/v1/chat/completions", json=HELLO, headers=AUTH)
    assert reply.status_code == 502
    error = error_of(reply)
    assert error["code"] == "upstream_error" and "answered HTTP 400" in error["message"]
    assert "SECRET" not in error["message"]


def test_upstream_rate_limit_is_passed_on_as_429(proxy: str, upstream: Upstream) -> None:
    upstream.fail_first = [(429, {"Retry-After": "600"}, b"{}")]
    reply = httpx.post(proxy + "/v1/chat/completions", json=HELLO, headers=AUTH)
    assert reply.status_code == 429 and error_of(reply)["code"] == "upstream_rate_limited"


def test_a_field_the_gate_cannot_inspect_is_refused_by_name_and_recorded(proxy: str, upstream: Upstream) -> None:
    before = len(RECORDER.entries)
    reply = httpx.post(proxy + "/v1/chat/completions", json={**HELLO, "prediction": {"content": SECRET}},
                       headers=AUTH)
    assert reply.status_code == 400
    error = error_of(reply)
    assert "'prediction'" in error["message"] and error["record_id"]
    assert upstream.received == []
    assert RECORDER.directions()[before:] == ["block"]
    assert SECRET.encode() not in RECORDER.entries[-1]


def test_an_upstream_reply_the_gate_cannot_read_is_blocked_and_the_block_recorded(
        upstream_server: tuple[Upstream, str]) -> None:
    state, url = upstream_server
    state.reset()
    signer, recorder = HmacSigner(), ListRecorder()
    with proxy_for(make_gate(signer=signer, recorder=recorder), url) as server:
        state.fail_first = [(200, {}, b'{"choices": "none"}')]  # a 200 that is no chat completion
        reply = httpx.post(server.url + "/v1/chat/completions", json=HELLO, headers=AUTH)
    error = error_of(reply)
    assert reply.status_code == 403 and "blocked at restore" in error["message"] and error["record_id"]
    assert recorder.directions() == ["outbound", "block"]  # every block is recorded, this one too
    outbound, block = signer.hops
    assert block.stage == "restore" and block.parents == (hashlib.sha256(recorder.entries[0]).hexdigest(),)


def test_bad_json_unknown_path_and_huge_body(proxy: str) -> None:
    bad = httpx.post(proxy + "/v1/chat/completions", content=b"{not json " + SECRET.encode(), headers=AUTH)
    assert bad.status_code == 400 and error_of(bad)["code"] == "invalid_json"
    missing = httpx.post(proxy + f"/v1/embeddings/{SECRET}", json={"input": SECRET}, headers=AUTH)
    assert missing.status_code == 404 and "this POST path is not served" in error_of(missing)["message"]
    huge = httpx.post(proxy + "/v1/chat/completions", content=b"x" * (MAX_BODY_BYTES + 1), headers=AUTH)
    assert huge.status_code == 413 and error_of(huge)["code"] == "request_too_large"


def test_client_leaving_mid_stream_does_not_hurt_the_proxy(proxy: str, upstream: Upstream) -> None:
    upstream.chunk_delay = 0.05
    upstream.chunks = lambda text: list(text)
    with httpx.stream("POST", proxy + "/v1/chat/completions", json={**HELLO, "stream": True}, headers=AUTH,
                      timeout=10) as reply:
        assert reply.status_code == 200
        next(reply.iter_bytes())
    upstream.reset()
    again = httpx.post(proxy + "/v1/chat/completions", json=HELLO, headers=AUTH)
    assert again.status_code == 200 and SECRET in again.text


@pytest.mark.parametrize("ending", ["client leaves", "upstream stalls"])
def test_an_answer_that_ends_before_it_is_complete_is_recorded_as_its_block(
        upstream_server: tuple[Upstream, str], ending: str) -> None:
    state, url = upstream_server
    state.reset()
    signer, recorder = HmacSigner(), ListRecorder()
    with proxy_for(make_gate(signer=signer, recorder=recorder), url, timeout=0.5) as server:
        state.chunks = lambda text: list(text)
        state.chunk_delay = 0.05 if ending == "client leaves" else 2.0
        with httpx.stream("POST", server.url + "/v1/chat/completions", json={**HELLO, "stream": True},
                          headers=AUTH, timeout=10) as reply:
            assert reply.status_code == 200
            if ending == "client leaves":
                next(reply.iter_bytes())
            else:
                assert '"code": "upstream_timeout"' in reply.read().decode()
        deadline = time.monotonic() + 5
        while len(recorder.entries) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # the proxy notices a client that left on its next write
    assert recorder.directions() == ["outbound", "block"]
    block = signer.hops[-1]
    assert block.stage == "restore" and block.parents == (hashlib.sha256(recorder.entries[0]).hexdigest(),)
    assert block.reason is not None and "before it was complete" in block.reason
    state.reset()


def test_logs_never_carry_content(proxy: str, upstream: Upstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    httpx.post(proxy + "/v1/chat/completions", json=HELLO, headers=AUTH)
    upstream.fail_first = [(500, {}, b"{}")] * 5
    httpx.post(proxy + "/v1/chat/completions", json=HELLO, headers=AUTH)
    httpx.post(proxy + "/v1/chat/completions", json={**HELLO, "bogus": SECRET}, headers=AUTH)
    httpx.post(proxy + "/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {SECRET}"})
    assert "request refused" in caplog.text
    assert SECRET not in caplog.text and CLIENT_KEY not in caplog.text


class _VerifyPolicy(SimplePolicy):
    def decide(self, findings: Any, route: Any, **kw: Any) -> Any:
        return super().decide(findings, route, **kw).model_copy(update={"verify": VerifyRequirement(quorum=2, of=3)})


@pytest.mark.parametrize("agree", [True, False])
def test_answers_policy_wants_verified_are_held_until_verified(upstream_server: tuple[Upstream, str],
                                                               upstream: Upstream, agree: bool) -> None:
    upstream.chunks = lambda text: list(text)
    gate = make_gate(decider=_VerifyPolicy(), verifier=FixedVerifier(agree))
    with proxy_for(gate, upstream_server[1]) as server:
        whole = httpx.post(server.url + "/v1/chat/completions", json=HELLO, headers=AUTH, timeout=20)
        streamed = httpx.post(server.url + "/v1/chat/completions", json={**HELLO, "stream": True}, headers=AUTH,
                              timeout=20)
    assert SECRET not in str(upstream.received[0].everything())
    if agree:
        assert whole.status_code == 200
        assert whole.json()["choices"][0]["message"]["content"] == f"You said: {HELLO['messages'][0]['content']}"
        texts = [json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                 for line in streamed.text.splitlines() if line.startswith("data: {")]
        assert "".join(texts) == f"You said: {HELLO['messages'][0]['content']}"
        assert streamed.text.rstrip().endswith("data: [DONE]")
    else:
        assert whole.status_code == 502 and error_of(whole)["code"] == "verification_failed"
        assert "quorum 2 of 3 not met" in error_of(whole)["message"]
        # Nothing of the unverified answer was streamed before the verdict: only the error event.
        assert streamed.status_code == 200
        assert "You said" not in streamed.text and '"verification_failed"' in streamed.text


def test_concurrent_first_requests_make_one_upstream_client(upstream_server: tuple[Upstream, str],
                                                            upstream: Upstream) -> None:
    # Non-streamed exchanges pick their client in worker threads: the first ones, all at once, must share one.
    made: list[Any] = []

    def counting(endpoint: Any) -> Any:
        time.sleep(0.05)  # widen the window in which a second thread could make another
        made.append(client_for(endpoint))
        return made[-1]

    os.environ[UPSTREAM_KEY_ENV] = UPSTREAM_KEY
    app = create_app(make_gate(), sender=DEVICE, upstream=cloud_endpoint(upstream_server[1]), api_keys=(CLIENT_KEY,),
                     clients=counting)
    with BackgroundServer(app) as server, ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: httpx.post(server.url + "/v1/chat/completions", json=HELLO,
                                                     headers=AUTH, timeout=20), range(8)))
    assert [r.status_code for r in replies] == [200] * 8
    assert all(SECRET in r.json()["choices"][0]["message"]["content"] for r in replies)
    assert len(made) == 1
