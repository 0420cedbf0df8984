"""The official ``openai`` SDK pointed at the proxy works unchanged, streaming and not."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import openai
import pytest
from integration.proxy_upstream import CLIENT_KEY, Upstream, create_upstream, proxy_for
from stagekit import BlockAll, make_gate

from trustlayer.intercept.proxy_cli import BackgroundServer

SECRET = "sk-AbCdEf123456"
ASK = f"my key is {SECRET}"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Upstream, str]]:
    state = Upstream()
    with BackgroundServer(create_upstream(state)) as upstream, proxy_for(make_gate(), upstream.url) as proxy:
        yield state, proxy.url + "/v1"


def test_sdk_chat_non_streaming(stack: tuple[Upstream, str]) -> None:
    state, base = stack
    with openai.OpenAI(base_url=base, api_key=CLIENT_KEY, max_retries=0) as client:
        answer = client.chat.completions.create(model="anything", messages=[{"role": "user", "content": ASK}])
    assert answer.choices[0].message.content == f"You said: {ASK}"
    assert SECRET not in state.last().everything()


def test_sdk_chat_streaming(stack: tuple[Upstream, str]) -> None:
    state, _ = stack
    state.chunks = lambda text: list(text)
    try:
        with openai.OpenAI(base_url=stack[1], api_key=CLIENT_KEY, max_retries=0) as client:
            parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
                model="anything", messages=[{"role": "user", "content": ASK}], stream=True) if c.choices]
        assert SECRET not in state.last().everything()
    finally:
        state.reset()
    assert "".join(parts) == f"You said: {ASK}"


def test_sdk_async_streaming_and_text_completion(stack: tuple[Upstream, str]) -> None:
    async def main() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=stack[1], api_key=CLIENT_KEY, max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": ASK}], stream=True)
            chat = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            text = await client.completions.create(model="x", prompt=ASK)
        return chat, text.choices[0].text

    assert anyio.run(main) == (f"You said: {ASK}", f"You said: {ASK}")


def test_sdk_sees_a_block_as_permission_denied(stack: tuple[Upstream, str]) -> None:
    with BackgroundServer(create_upstream(Upstream())) as upstream, \
            proxy_for(make_gate(decider=BlockAll()), upstream.url) as proxy, \
            openai.OpenAI(base_url=proxy.url + "/v1", api_key=CLIENT_KEY, max_retries=0) as client, \
            pytest.raises(openai.PermissionDeniedError, match="no-way") as info:
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": ASK}])
    assert SECRET not in str(info.value)


def test_sdk_with_a_wrong_key_is_authentication_error(stack: tuple[Upstream, str]) -> None:
    with openai.OpenAI(base_url=stack[1], api_key="wrong", max_retries=0) as client, \
            pytest.raises(openai.AuthenticationError):
        client.models.list()
    with openai.OpenAI(base_url=stack[1], api_key=CLIENT_KEY, max_retries=0) as client:
        assert [m.id for m in client.models.list()] == ["m-upstream"]
