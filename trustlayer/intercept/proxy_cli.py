"""``trustlayer serve``: run the OpenAI-compatible proxy under uvicorn.

    $ trustlayer serve --config trustlayer.yaml --upstream http://127.0.0.1:8000/v1 --port 8787
    $ OPENAI_BASE_URL=http://127.0.0.1:8787/v1 python my_unmodified_app.py

``BackgroundServer`` runs any ASGI app (the proxy, a local upstream) on a loopback port
in a thread, for tests, benchmarks and the demo::

    with BackgroundServer(app) as server:
        httpx.get(server.url + "/healthz")
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
from types import TracebackType
from typing import Any

import click

from trustlayer.errors import ConfigError

__all__ = ["BackgroundServer", "is_loopback", "serve"]

EXIT_USAGE = 2
_GRACE_SECONDS = 10


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BackgroundServer:
    """An ASGI app served by uvicorn in a daemon thread on ``host`` (port 0 = any free port).

    ``start`` returns once the server accepts connections (or raises ``RuntimeError``
    if it could not start); ``stop`` shuts it down gracefully, waiting for open
    requests up to ``grace`` seconds.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, grace: float = 5.0) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=max(1, int(grace)))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:43121``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> str:
        """Start serving; return the base URL."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} stopped during startup (see its log)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start within {timeout}s")
            time.sleep(0.01)
        return self.url

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down gracefully and wait for the thread to end."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@click.command("serve")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="trustlayer.yaml to build the gate from.")
@click.option("--upstream", default=None, metavar="URL",
              help="Base URL of the upstream (overrides the url of the proxy.upstream endpoint).")
@click.option("--host", default=None, help="Address to bind (default: proxy.host, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default: proxy.port).")
def serve(config_path: str, upstream: str | None, host: str | None, port: int | None) -> None:
    """Run the OpenAI-compatible proxy: every request goes through the gate to the upstream.

    Clients must send one of the configured API keys (proxy.api_keys, or the comma-separated
    list in $proxy.api_keys_env); binding anything but loopback without keys is refused.
    """
    import uvicorn

    from trustlayer.intercept.proxy import ProxySettings, create_app_from_config

    try:
        settings = ProxySettings.from_config(config_path, upstream=upstream, host=host, port=port,
                                             environ=os.environ)
        app = create_app_from_config(settings)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"trustlayer proxy on http://{settings.host}:{settings.port}/v1 -> endpoint "
               f"{settings.upstream.id!r} ({len(settings.api_keys)} client key(s))", err=True)
    # The access log would print query strings, which may hold a client's raw data.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                lifespan="on", timeout_graceful_shutdown=_GRACE_SECONDS)
