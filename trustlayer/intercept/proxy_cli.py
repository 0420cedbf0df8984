"""``trustlayer serve``: run the OpenAI-compatible proxy under uvicorn.

    $ trustlayer serve --config trustlayer.yaml --upstream http://127.0.0.1:8000/v1 --port 8787
    $ OPENAI_BASE_URL=http://127.0.0.1:8787/v1 python my_unmodified_app.py

``BackgroundServer`` runs any ASGI app (the proxy, a local upstream) on a loopback port
in a thread, for tests, benchmarks and the demo::

    with BackgroundServer(app) as server:
        httpx.get(server.url + "/healthz")
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import click

from trustlayer.config import Config, load_config
from trustlayer.errors import ConfigError
from trustlayer.types import Endpoint

__all__ = ["BackgroundServer", "ProxySettings", "create_app_from_config", "is_loopback", "serve"]

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


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Everything ``trustlayer serve`` needs, resolved and checked before anything binds a port.

    ``api_keys`` are never printed; ``repr`` shows only how many there are.
    """

    config: Config
    config_path: Path
    upstream: Endpoint
    host: str
    port: int
    api_keys: tuple[str, ...]

    def __repr__(self) -> str:
        return (f"ProxySettings(config={str(self.config_path)!r}, upstream={self.upstream.id!r}, "
                f"host={self.host!r}, port={self.port}, api_keys=<{len(self.api_keys)}>)")

    @classmethod
    def from_config(cls, path: str | Path, *, upstream: str | None = None, host: str | None = None,
                    port: int | None = None, environ: Mapping[str, str] = os.environ) -> ProxySettings:
        """Resolve the upstream endpoint, address and client keys; ``ConfigError`` naming the problem.

        The upstream is the ``proxy.upstream`` endpoint (or the only declared endpoint other
        than the identity); ``upstream`` overrides its URL. Client keys come from
        ``proxy.api_keys`` and the comma-separated ``$proxy.api_keys_env``. Binding anything
        but loopback without client keys is refused.
        """
        config = load_config(path)

        def problem(field: str, message: str) -> ConfigError:
            return ConfigError(f"config {str(path)!r}, {field}: {message}", path=str(path), field=field)

        target = _upstream_endpoint(config, problem, upstream)
        if upstream is not None:
            parts = urlsplit(upstream)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise ConfigError(f"--upstream {upstream!r} must be an http(s) base URL such as "
                                  "http://127.0.0.1:8000/v1 (no query or fragment)", field="--upstream")
            target = target.model_copy(update={"url": upstream.rstrip("/")})
        if target.url is None:
            raise problem("endpoints.url", f"the proxy's upstream endpoint {target.id!r} has no 'url'; set it "
                          "or pass --upstream URL")
        keys = list(config.proxy.api_keys)
        if config.proxy.api_keys_env is not None:
            raw = environ.get(config.proxy.api_keys_env)
            if raw is None:
                raise problem("proxy.api_keys_env", f"names ${config.proxy.api_keys_env}, which is not set")
            keys.extend(k.strip() for k in raw.split(",") if k.strip())
        bind = host if host is not None else config.proxy.host
        if not keys and not is_loopback(bind):
            raise problem("proxy.api_keys", f"refusing to listen on {bind!r} without client API keys: anything "
                          "but loopback needs proxy.api_keys or proxy.api_keys_env")
        if target.api_key_env is not None and not environ.get(target.api_key_env):
            raise problem("endpoints.api_key_env", f"upstream endpoint {target.id!r} takes its API key from "
                          f"${target.api_key_env}, which is not set")
        return cls(config=config, config_path=Path(path), upstream=target, host=bind,
                   port=port if port is not None else config.proxy.port, api_keys=tuple(keys))


def _upstream_endpoint(config: Config, problem: Callable[[str, str], ConfigError], url: str | None) -> Endpoint:
    if config.proxy.upstream is not None:
        return config.endpoint(config.proxy.upstream)  # declared: the config loader checked it
    others = [e for e in config.endpoints if e.id != config.identity.id]
    if url is not None:
        # --upstream names a declared endpoint's URL: that endpoint (and its jurisdiction) it is.
        same = [e for e in others if e.url is not None and e.url.rstrip("/") == url.rstrip("/")]
        if len(same) == 1:
            return same[0]
    if len(others) == 1:
        return others[0]
    raise problem("proxy.upstream", "must name the proxy's upstream endpoint (declared: "
                  f"{', '.join(e.id for e in config.endpoints)})")


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn; ``ConfigError`` naming the address when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, and without it small responses wait for the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="--port") from exc
    return sock


def create_app_from_config(settings: ProxySettings) -> Any:
    """The proxy app with the gate ``TrustLayer.from_config`` builds (real stages, audit, keys)."""
    from trustlayer.endpoints import client_for
    from trustlayer.intercept.proxy import create_app
    from trustlayer.layer import TrustLayer

    layer = TrustLayer.from_config(settings.config_path)
    return create_app(layer.gate, sender=settings.config.me, upstream=settings.upstream,
                      api_keys=settings.api_keys, subject_jurisdiction=settings.config.subject_jurisdiction,
                      clients=lambda e: layer.client(e.id) if e.id != settings.upstream.id else client_for(e),
                      candidates=layer.candidates(), on_shutdown=(layer.close,))


class BackgroundServer:
    """An ASGI app served by uvicorn in a daemon thread on ``host`` (port 0 = any free port).

    ``start`` returns once the server accepts connections (or raises ``RuntimeError``
    if it could not start); ``stop`` shuts it down gracefully, waiting for open
    requests up to ``grace`` seconds.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, grace: float = 5.0) -> None:
        import uvicorn

        self._sock = listen_socket(host, port)
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

    try:
        settings = ProxySettings.from_config(config_path, upstream=upstream, host=host, port=port,
                                             environ=os.environ)
        # Bind before the gate loads, so a busy port fails fast and clearly.
        sock = listen_socket(settings.host, settings.port)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    with sock:
        try:
            app = create_app_from_config(settings)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        # Models and tables load now, not on the first client's request; if they cannot, every
        # request would be blocked, so the proxy does not start.
        try:
            app.state.proxy.gate.warm()
        except Exception as exc:  # noqa: BLE001 - reported, then exit
            click.echo(f"error: the gate's stages could not load ({type(exc).__name__}: {exc})", err=True)
            sys.exit(1)
        shown = f"[{settings.host}]" if ":" in settings.host else settings.host
        click.echo(f"trustlayer proxy on http://{shown}:{sock.getsockname()[1]}/v1 -> endpoint "
                   f"{settings.upstream.id!r} ({len(settings.api_keys)} client key(s))", err=True)
        # The access log would print query strings, which may hold a client's raw data.
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=_GRACE_SECONDS)
        _graceful_server_class()(config).run(sockets=[sock])
    click.echo("trustlayer proxy stopped", err=True)


def _graceful_server_class() -> type[Any]:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's server, but a SIGTERM/SIGINT ends it with exit status 0 after the graceful shutdown.

        (uvicorn re-raises the signal after shutting down, so the process would die of it.)
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer
