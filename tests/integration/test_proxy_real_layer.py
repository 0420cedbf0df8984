"""`trustlayer serve` as a real process, with the gate built from config (Presidio patterns, policy,
Ed25519 records, SQLite audit log), in front of a recording upstream; then the audit log verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from integration.proxy_upstream import CLIENT_KEY, UPSTREAM_KEY, UPSTREAM_KEY_ENV, Upstream, create_upstream

from trustlayer.intercept.proxy_cli import BackgroundServer
from trustlayer.provenance import SigningKey

TRUSTLAYER = [sys.executable, "-c", "from trustlayer.cli import main; main()"]
RAW = {
    "email": "jane.doe@example.com",
    "phone": "+49 30 901820",
    "iban": "DE89 3704 0044 0532 0130 00",
    "card": "4111 1111 1111 1111",
    "key": "sk-proj-Zq8v2XkL9mN4pR7tY1wB3cD5",
}
ASK = f"Mail {RAW['email']} or call {RAW['phone']}; pay to {RAW['iban']} with card {RAW['card']}."
CONFIG = """\
version: 1
identity: {{id: phone, key: keys/phone.key}}
endpoints:
  - {{id: phone, kind: device, jurisdiction: DE, box: white}}
  - {{id: cloud, kind: cloud, jurisdiction: US, url: "http://127.0.0.1:9/v1", model: m-upstream,
      api_key_env: {key_env}}}
policy: default
subject_jurisdiction: DE
redaction: {{ner: {ner}}}
audit: {{store: "sqlite:///audit.db", checkpoint_every: 4}}
vault: {{path: vault.db, key_file: vault.key}}
proxy: {{upstream: cloud, api_keys: [{client_key}]}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    upstream: Upstream
    url: str
    config: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> tuple[int, bytes]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out + err


@contextlib.contextmanager
def serve_process(tmp: Path, *, ner: bool) -> Iterator[Served]:
    """`trustlayer serve` in its own process, gate from config, in front of a recording upstream."""
    SigningKey.generate().save(tmp / "keys" / "phone.key")
    config = tmp / "trustlayer.yaml"
    config.write_text(CONFIG.format(key_env=UPSTREAM_KEY_ENV, ner=str(ner).lower(), client_key=CLIENT_KEY))
    state = Upstream()
    port = free_port()
    with BackgroundServer(create_upstream(state)) as upstream:
        proc = subprocess.Popen([*TRUSTLAYER, "serve", "--config", str(config), "--upstream", upstream.url + "/v1",
                                 "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, UPSTREAM_KEY_ENV: UPSTREAM_KEY})
        served = Served(state, f"http://127.0.0.1:{port}/v1", config, proc)
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"trustlayer serve exited: {served.stop()[1].decode()[-3000:]}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("trustlayer serve did not come up in 120 s")
                time.sleep(0.1)
            yield served
        finally:
            served.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_process(tmp_path_factory.mktemp("proxy-real"), ner=False) as served:
        yield served


@pytest.fixture()
def upstream(served: Served) -> Upstream:
    served.upstream.reset()
    return served.upstream


def assert_nothing_raw(upstream: Upstream) -> None:
    assert upstream.received
    for seen in upstream.received:
        everything = seen.everything()
        for name, value in RAW.items():
            assert value not in everything, f"the {name} reached the upstream"
            assert value.replace(" ", "") not in everything.replace(" ", ""), f"the {name} reached the upstream"
        assert CLIENT_KEY not in everything
        assert dict(seen.headers)["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_chat_through_the_sdk_is_pseudonymized_and_restored(served: Served,
                                                            upstream: Upstream) -> None:
    with openai.OpenAI(base_url=served.url, api_key=CLIENT_KEY, max_retries=0) as client:
        answer = client.chat.completions.create(model="x", messages=[{"role": "user", "content": ASK}])
    assert answer.choices[0].message.content == f"You said: {ASK}"
    assert_nothing_raw(upstream)


def test_tool_calls_and_earlier_turns_are_gated(served: Served,
                                                upstream: Upstream) -> None:
    def echo_email_placeholder(body: dict[str, Any]) -> tuple[str, str]:
        arguments = body["messages"][1]["tool_calls"][0]["function"]["arguments"]
        return "send_mail", arguments

    upstream.tool_call = echo_email_placeholder
    messages = [
        {"role": "user", "content": f"write to {RAW['email']}, my key is {RAW['key']}"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c0", "type": "function", "function": {
            "name": "send_mail", "arguments": json.dumps({"to": RAW["email"], "token": RAW["key"]})}}]},
        {"role": "tool", "tool_call_id": "c0", "content": f"sent to {RAW['email']}, card {RAW['card']}"},
        {"role": "user", "content": f"now call {RAW['phone']}"},
    ]
    with openai.OpenAI(base_url=served.url, api_key=CLIENT_KEY, max_retries=0) as client:
        answer = client.chat.completions.create(model="x", messages=messages)
    assert_nothing_raw(upstream)
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"to": RAW["email"], "token": RAW["key"]}  # type: ignore[union-attr]


def test_streamed_one_character_events_are_restored(served: Served,
                                                    upstream: Upstream) -> None:
    upstream.chunks = lambda text: list(text)
    with openai.OpenAI(base_url=served.url, api_key=CLIENT_KEY, max_retries=0) as client:
        stream = client.chat.completions.create(model="x", messages=[{"role": "user", "content": ASK}], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == f"You said: {ASK}"
    assert_nothing_raw(upstream)


def test_raw_http_no_query_or_header_leaks(served: Served,
                                           upstream: Upstream) -> None:
    reply = httpx.post(served.url + "/chat/completions", params={"q": RAW["email"]},
                       headers={"Authorization": f"Bearer {CLIENT_KEY}", "X-User": RAW["email"]},
                       json={"model": "x", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert reply.status_code == 200
    assert_nothing_raw(upstream)


@pytest.mark.slow
def test_names_found_by_ner_never_reach_the_upstream(tmp_path: Path) -> None:
    name, city = "Margarethe Vogelsang", "Wuppertal"
    ask = f"Draft a letter from {name} in {city} to {RAW['email']}."
    with serve_process(tmp_path, ner=True) as served, \
            openai.OpenAI(base_url=served.url, api_key=CLIENT_KEY, max_retries=0) as client:
        answer = client.chat.completions.create(model="x", messages=[{"role": "user", "content": ask}])
        seen = served.upstream.last().everything()
    assert answer.choices[0].message.content == f"You said: {ask}"
    for value in (name, "Vogelsang", RAW["email"]):
        assert value not in seen


def test_every_two_chunk_split_of_the_stream_is_restored(served: Served, upstream: Upstream) -> None:
    ask = f"Mail {RAW['email']} now"
    with openai.OpenAI(base_url=served.url, api_key=CLIENT_KEY, max_retries=0) as client:
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": ask}])
        width = len("You said: " + upstream.last().json()["messages"][0]["content"])
        assert RAW["email"] not in upstream.last().everything()
        for cut in range(width + 1):
            upstream.chunks = lambda text, cut=cut: [text[:cut], text[cut:]]
            stream = client.chat.completions.create(model="x", messages=[{"role": "user", "content": ask}],
                                                    stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert text == f"You said: {ask}", f"split at {cut} of {width}"
    assert_nothing_raw(upstream)


def test_concurrent_requests_each_get_their_own_values_back(served: Served, upstream: Upstream) -> None:
    emails = [f"person{i}.name@example{i}.org" for i in range(8)]

    async def one(client: openai.AsyncOpenAI, i: int) -> str:
        messages = [{"role": "user", "content": f"write to {emails[i]} today"}]
        if i % 2:
            stream = await client.chat.completions.create(model="x", messages=messages, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        answer = await client.chat.completions.create(model="x", messages=messages)
        return answer.choices[0].message.content or ""

    async def main() -> list[str]:
        async with openai.AsyncOpenAI(base_url=served.url, api_key=CLIENT_KEY, max_retries=0) as client:
            return list(await asyncio.gather(*(one(client, i) for i in range(len(emails)))))

    answers = asyncio.run(main())
    assert answers == [f"You said: write to {e} today" for e in emails]
    everything = "".join(r.everything() for r in upstream.received)
    assert not any(e in everything for e in emails)


def test_sigterm_stops_cleanly_and_the_audit_log_verifies(served: Served) -> None:
    # The last test of the module: it stops the server the others used.
    code, output = served.stop()
    assert code == 0, output.decode()[-2000:]
    for value in RAW.values():
        assert value.encode() not in output
    verify = subprocess.run([*TRUSTLAYER, "audit", "verify", str(served.config.parent / "audit.db"), "--config",
                             str(served.config)], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert not re.search("|".join(re.escape(v) for v in RAW.values()), verify.stdout + verify.stderr)
