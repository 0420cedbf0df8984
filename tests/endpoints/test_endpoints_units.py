"""The pure parts of the endpoint clients: retry policy, Retry-After, SSE decoding, client choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from trustlayer.endpoints._http_errors import error_detail as _error_detail
from trustlayer.endpoints._retry import RetryPolicy, retry_after_seconds
from trustlayer.endpoints._sse import EventDecoder
from trustlayer.endpoints.base import ChatEndpoint, client_for
from trustlayer.endpoints.local import LocalEndpoint
from trustlayer.endpoints.openai_client import OpenAIClient
from trustlayer.errors import ConfigError
from trustlayer.types import Endpoint


def test_retry_after_in_seconds_and_as_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_backoff_is_jittered_within_an_exponential_cap() -> None:
    policy = RetryPolicy(retries=5, backoff=0.5, max_backoff=3.0)
    for attempt, cap in enumerate([0.5, 1.0, 2.0, 3.0, 3.0]):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(d is not None and 0.0 <= d <= cap for d in delays)
        assert len(set(delays)) > 100  # jitter, not a fixed delay
    assert policy.delay(5) is None


def test_retry_after_is_honoured_up_to_its_limit() -> None:
    policy = RetryPolicy(retries=3, max_retry_after=10)
    assert policy.delay(0, retry_after="4") == 4.0
    assert policy.delay(0, retry_after="11") is None
    assert policy.delay(0, retry_after="9", retry_after_ms="250") == 0.25
    assert policy.delay(0, retry_after="2", retry_after_ms="soon") == 2.0


def test_only_transient_statuses_are_retried() -> None:
    assert RetryPolicy.retryable_status(429) and RetryPolicy.retryable_status(503)
    assert not RetryPolicy.retryable_status(400) and not RetryPolicy.retryable_status(501)


def test_bad_policy_values_are_refused() -> None:
    with pytest.raises(ValueError, match="retries must be >= 0, got -1"):
        RetryPolicy(retries=-1)


def test_sse_decoder_joins_data_lines_and_skips_comments() -> None:
    decoder = EventDecoder()
    lines = [": keep-alive", "event: message", "data: {\"a\":", "data:1}", "", "", "data: [DONE]\r", ""]
    events = [e for line in lines for e in decoder.feed_line(line)]
    assert events == ['{"a":\n1}', "[DONE]"]
    assert decoder.feed_line("data: tail") == [] and decoder.end() == ["tail"]
    assert decoder.end() == []


def test_error_detail_repeats_identifiers_only() -> None:
    body = b'{"error": {"message": "Jane Roe is not allowed", "type": "invalid_request_error", "code": "x y"}}'
    assert _error_detail(body) == " (type: invalid_request_error)"
    assert _error_detail(b"<html>") == ""


def test_client_for_picks_http_or_local() -> None:
    cloud = Endpoint(id="c", kind="cloud", jurisdiction="US", url="http://127.0.0.1:1/v1")
    phone = Endpoint(id="p", kind="device", jurisdiction="DE", box="white")
    assert isinstance(client_for(cloud), OpenAIClient)
    assert isinstance(client_for(phone), LocalEndpoint)
    assert isinstance(client_for(cloud), ChatEndpoint) and isinstance(client_for(phone), ChatEndpoint)


def test_client_for_a_cloud_endpoint_without_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"endpoint 'c' \(cloud, black-box\) has no 'url'"):
        client_for(Endpoint(id="c", kind="cloud", jurisdiction="US"))
