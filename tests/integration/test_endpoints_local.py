"""The local llama.cpp endpoint with the real SmolLM2 model (slow: loads the model once per process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from trustlayer.endpoints.base import client_for
from trustlayer.endpoints.local import LocalEndpoint, shared_llama
from trustlayer.endpoints.models import default_model_path
from trustlayer.errors import ConfigError, EndpointError, EndpointTimeout
from trustlayer.types import Endpoint

PHONE = Endpoint(id="phone", kind="device", jurisdiction="DE", box="white")
ASK = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def test_missing_model_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    endpoint = Endpoint(id="phone", kind="device", jurisdiction="DE", model=str(missing))
    with pytest.raises(ConfigError, match=r"local model file '.*nope\.gguf' does not exist"):
        LocalEndpoint(endpoint).complete(ASK)


def test_a_file_that_is_not_gguf_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    endpoint = Endpoint(id="phone", kind="device", jurisdiction="DE", model=str(bad))
    with pytest.raises(ConfigError, match=r"local model file '.*broken\.gguf' could not be loaded"):
        LocalEndpoint(endpoint).complete(ASK)


@pytest.mark.slow
def test_chat_completion_has_the_openai_shape() -> None:
    result = client_for(PHONE).complete(ASK, max_tokens=8, temperature=0)
    assert result["object"] == "chat.completion"
    assert result["model"] == default_model_path().stem
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"].strip()
    assert result["usage"]["completion_tokens"] <= 8


@pytest.mark.slow
def test_stream_matches_the_non_streamed_answer_at_temperature_zero() -> None:
    local = LocalEndpoint(PHONE)
    whole = local.complete(ASK, max_tokens=8, temperature=0, seed=1)["choices"][0]["message"]["content"]
    chunks = list(local.stream(ASK, max_tokens=8, temperature=0, seed=1))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == whole


@pytest.mark.slow
def test_model_loads_once_and_is_shared() -> None:
    a, b = LocalEndpoint(PHONE), LocalEndpoint(PHONE.model_copy(update={"id": "other"}))
    a.complete(ASK, max_tokens=2)
    b.complete(ASK, max_tokens=2)
    assert a._model()[0] is b._model()[0]
    assert shared_llama(default_model_path(), **a._params)[0] is a._model()[0]


@pytest.mark.slow
def test_async_twins_and_text_completion() -> None:
    local = LocalEndpoint(PHONE)

    async def main() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        whole = await local.complete_text_async("The capital of France is", max_tokens=4, temperature=0)
        parts = [c async for c in local.stream_async(ASK, max_tokens=4, temperature=0)]
        return whole, parts

    whole, parts = anyio.run(main)
    assert whole["object"] == "text_completion" and whole["choices"][0]["text"]
    assert parts and parts[-1]["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.slow
def test_unknown_request_field_is_refused_by_name() -> None:
    with pytest.raises(EndpointError, match=r"local endpoint 'phone' does not support the request field 'audio'"):
        LocalEndpoint(PHONE).complete(ASK, audio={"voice": "x"})


@pytest.mark.slow
def test_a_call_while_a_stream_holds_the_model_times_out_instead_of_deadlocking() -> None:
    local = LocalEndpoint(PHONE.model_copy(update={"timeout": 0.5}))
    stream = local.stream(ASK, max_tokens=4)
    next(stream)  # the stream now holds the model
    try:
        with pytest.raises(EndpointTimeout, match=r"local endpoint 'phone' waited 0.5s for the model"):
            local.complete(ASK, max_tokens=2)
    finally:
        stream.close()
    assert local.complete(ASK, max_tokens=2)["object"] == "chat.completion"
