"""The demo's stand-in for a cloud API: llama.cpp's OpenAI-compatible server on 127.0.0.1.

It serves the same SmolLM2 model as the device, and a thin ASGI wrapper records every
request body it receives, so the demo can show (and check) exactly what left the device.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from trustlayer.endpoints.models import default_model_path
from trustlayer.intercept.proxy_cli import BackgroundServer

__all__ = ["RecordingCloud", "start_cloud"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RecordingCloud:
    """ASGI middleware that keeps the URL, headers and body of every request."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.received: list[bytes] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, keeping a copy of what arrived."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts: list[bytes] = [scope.get("path", "").encode(), scope.get("query_string", b"")]
        parts += [k + b": " + v for k, v in scope.get("headers", [])]

        async def recording_receive() -> MutableMapping[str, Any]:
            message = await receive()
            if message.get("type") == "http.request":
                parts.append(message.get("body", b""))
                if not message.get("more_body"):
                    with self._lock:
                        self.received.append(b"\n".join(parts))
            return message

        await self.app(scope, recording_receive, send)

    def everything(self) -> bytes:
        """All requests received so far, concatenated."""
        with self._lock:
            return b"\n\n".join(self.received)


def start_cloud() -> tuple[BackgroundServer, RecordingCloud]:
    """Start ``llama_cpp.server`` with SmolLM2 on a free loopback port."""
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    model = ModelSettings(model=str(default_model_path()), model_alias="smollm2", n_ctx=2048, verbose=False,
                          n_threads=2)
    app = RecordingCloud(create_app(server_settings=ServerSettings(host="127.0.0.1", port=0),
                                    model_settings=[model]))
    server = BackgroundServer(app)
    server.start(timeout=60.0)
    return server, app
