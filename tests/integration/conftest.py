"""Fixtures shared by the integration tests that run a whole TrustLayer from the demo's config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_upstream import Upstream, create_upstream

from trustlayer.demo.workspace import Workspace, prepare
from trustlayer.intercept.proxy_cli import BackgroundServer


@pytest.fixture(scope="module")
def cloud() -> Iterator[tuple[Upstream, str]]:
    """A recording OpenAI-compatible server on 127.0.0.1 standing in for the US cloud: its state and URL."""
    state = Upstream()
    with BackgroundServer(create_upstream(state)) as server:
        yield state, server.url


@pytest.fixture()
def ws(tmp_path: Path, cloud: tuple[Upstream, str]) -> Workspace:
    """The demo's workspace (configs, keys, policy) pointed at ``cloud``."""
    return prepare(tmp_path / "demo", cloud[1] + "/v1")
