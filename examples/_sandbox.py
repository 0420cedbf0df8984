"""A throwaway environment for the examples: keys, configs and a local 'cloud' on 127.0.0.1.

The cloud is llama.cpp's OpenAI-compatible server running SmolLM2 (no API key, nothing
leaves the machine). In your own code, replace ``sandbox()`` with your ``trustlayer.yaml``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trustlayer.demo.cloud import RecordingCloud, start_cloud
from trustlayer.demo.workspace import Workspace, prepare


@contextmanager
def sandbox() -> Iterator[tuple[Workspace, RecordingCloud, str]]:
    """Yield a prepared workspace (phone, planner, reviewer configs), the recording cloud and its URL."""
    server, cloud = start_cloud()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            yield prepare(Path(tmp) / "ws", server.url + "/v1"), cloud, server.url + "/v1"
    finally:
        server.stop()
