"""Which declared endpoint a request URL is addressed to: the residency policy applied depends on it."""

from __future__ import annotations

import pytest
from stagekit import DEVICE, make_gate

from trustlayer.layer import TrustLayer
from trustlayer.types import Endpoint


def layer(*urls: str) -> TrustLayer:
    endpoints = [Endpoint(id=f"e{i}", kind="cloud", jurisdiction="DE", url=url, model="m")
                 for i, url in enumerate(urls)]
    return TrustLayer(gate=make_gate(endpoints=(DEVICE, *endpoints)), me=DEVICE, endpoints=endpoints,
                      secret=b"s" * 32)


@pytest.mark.parametrize("url", [
    "https://eu.example/v1/chat/completions",
    "https://eu.example/v1/",
    "https://EU.Example/v1/chat/completions",        # host names are case-insensitive
    "HTTPS://eu.example:443/v1/chat/completions",    # the scheme's default port, spelled out
])
def test_a_url_under_the_declared_one_is_that_endpoint(url: str) -> None:
    found = layer("https://eu.example/v1").endpoint_for_url(url)
    assert found is not None and found.id == "e0"


_LOOK_ALIKES = [
    "https://eu.example.evil.test/v1/chat/completions",  # another host that starts with the same letters
    "https://eu.example@evil.test/v1/chat/completions",  # user info: the host is evil.test
    "http://eu.example/v1/chat/completions",             # not TLS
    "https://eu.example:8443/v1/chat/completions",       # another port
    "https://eu.example:99999/v1/chat/completions",      # no valid port at all
    "/v1/chat/completions",                              # no host
]


@pytest.mark.parametrize(("declared", "url"), [
    *((declared, url) for declared in ("https://eu.example/v1", "https://eu.example", "https://eu.example/")
      for url in _LOOK_ALIKES),
    ("https://eu.example/v1", "https://eu.example/v10/chat/completions"),  # a path that starts the same
])
def test_a_url_that_only_starts_with_the_same_text_is_no_endpoint(declared: str, url: str) -> None:
    assert layer(declared).endpoint_for_url(url) is None


def test_a_port_that_only_starts_with_the_declared_digits_is_another_server() -> None:
    assert layer("http://127.0.0.1:80/v1").endpoint_for_url("http://127.0.0.1:8080/v1/chat/completions") is None


def test_the_longest_declared_path_wins() -> None:
    both = layer("https://api.example/v1", "https://api.example/v1/deployments/eu")
    found = both.endpoint_for_url("https://api.example/v1/deployments/eu/chat/completions")
    assert found is not None and found.id == "e1"
    found = both.endpoint_for_url("https://api.example/v1/chat/completions")
    assert found is not None and found.id == "e0"
