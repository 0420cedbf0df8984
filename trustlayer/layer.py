"""``TrustLayer``: the gate plus what the ways in need (endpoints, identity, clients).

    >>> from trustlayer import TrustLayer
    >>> tl = TrustLayer.from_config("trustlayer.yaml")          # doctest: +SKIP
    >>> out = tl.gate.outbound(message, tl.route_to("cloud"))    # doctest: +SKIP

Decorators, the httpx transport and the proxy all hold a ``TrustLayer`` and pass
every message through ``layer.gate``. ``TrustLayer.default()`` builds one lazily
from ``$TRUSTLAYER_CONFIG`` for decorators used without an explicit layer.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from trustlayer.config import ENV_VAR, Config, load_config
from trustlayer.errors import ConfigError
from trustlayer.gate import Gate
from trustlayer.stages import Signed
from trustlayer.types import Endpoint, Hop, Route

if TYPE_CHECKING:
    from trustlayer.endpoints.base import ChatEndpoint

__all__ = ["TrustLayer"]

_default_lock = threading.Lock()
_default: TrustLayer | None = None


class TrustLayer:
    """The gate and this process's view of the endpoints it talks to.

    Build it with :meth:`from_config`; the plain constructor is for composing your
    own stages (tests, embedding). ``secret`` keys derived conversation ids.
    """

    def __init__(self, *, gate: Gate, me: Endpoint, endpoints: Iterable[Endpoint], secret: bytes,
                 passthrough: bool = False, config: Config | None = None,
                 clients: Mapping[str, ChatEndpoint] | None = None, local_fallback: str | None = None,
                 fallback: str = "reroute", closers: Sequence[Any] = ()) -> None:
        if len(secret) < 16:
            raise ValueError("the layer secret must be at least 16 bytes")
        self.gate = gate
        self.me = me
        self.endpoints: dict[str, Endpoint] = {e.id: e for e in endpoints}
        self.endpoints.setdefault(me.id, me)
        self.secret = secret
        self.passthrough = passthrough
        self.config = config
        self.fallback = fallback
        self.local_id = local_fallback or me.id
        self._clients: dict[str, ChatEndpoint] = dict(clients or {})
        self._closers = list(closers)
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str | None], Route] = {}

    # ── construction ─────────────────────────────────────────────────────────────────────

    @classmethod
    def from_config(cls, config: str | Path | Config | None = None, *,
                    observer: Callable[[Hop, Signed], None] | None = None) -> TrustLayer:
        """Build the layer, with the real stages, from a ``trustlayer.yaml`` (or ``$TRUSTLAYER_CONFIG``).

        ``observer`` is called with every recorded hop (for displays and metrics).
        """
        from trustlayer._assemble import assemble  # the heavy parts load only when a layer is built

        cfg = config if isinstance(config, Config) else load_config(config)
        return assemble(cls, cfg, observer=observer)

    @classmethod
    def default(cls) -> TrustLayer:
        """The process-wide layer built from ``$TRUSTLAYER_CONFIG`` (once, on first use)."""
        global _default
        with _default_lock:
            if _default is None:
                if not os.environ.get(ENV_VAR):
                    raise ConfigError(f"no TrustLayer was given and ${ENV_VAR} is not set; pass layer=... "
                                      "or point the variable at a trustlayer.yaml")
                _default = cls.from_config(None)
            return _default

    # ── endpoints ────────────────────────────────────────────────────────────────────────

    def endpoint(self, endpoint_id: str) -> Endpoint:
        """The declared endpoint with this id."""
        try:
            return self.endpoints[endpoint_id]
        except KeyError:
            declared = ", ".join(sorted(self.endpoints))
            raise ConfigError(f"endpoint {endpoint_id!r} is not declared (declared: {declared})") from None

    def route_to(self, endpoint_id: str, *, subject_jurisdiction: str | None = None) -> Route:
        """The route from this process's endpoint to ``endpoint_id``."""
        key = (endpoint_id, subject_jurisdiction)
        found = self._routes.get(key)
        if found is None:
            found = Route.between(self.me, self.endpoint(endpoint_id), subject_jurisdiction=subject_jurisdiction)
            self._routes[key] = found
        return found

    def endpoint_for_url(self, url: str) -> Endpoint | None:
        """The declared endpoint ``url`` is addressed to: same scheme, host and port, under its path.

        Compared part by part, not as text: ``https://eu.example`` does not cover
        ``https://eu.example.evil.test/...`` or ``https://eu.example@evil.test/...``, nor ``/v1``
        cover ``/v10``. Of several that match, the one with the longest path wins.
        """
        target = _url_parts(url)
        if target is None:
            return None
        best: Endpoint | None = None
        best_path = ""
        for e in self.endpoints.values():
            declared = _url_parts(e.url) if e.url else None
            if declared is None or declared[:3] != target[:3]:
                continue
            path = declared[3]
            if (target[3] == path or target[3].startswith(path + "/")) and (best is None or len(path) > len(best_path)):
                best, best_path = e, path
        return best

    def client(self, endpoint_id: str) -> ChatEndpoint:
        """The chat client for an endpoint (a local llama.cpp model or an OpenAI-compatible API)."""
        with self._lock:
            found = self._clients.get(endpoint_id)
            if found is None:
                from trustlayer.endpoints import client_for

                found = self._clients[endpoint_id] = client_for(self.endpoint(endpoint_id))
            return found

    def candidates(self, ids: Iterable[str] | None = None) -> tuple[Endpoint, ...]:
        """Endpoints a router may choose among (all declared ones by default)."""
        if ids is None:
            return tuple(self.endpoints.values())
        return tuple(self.endpoint(i) for i in ids)

    def warm(self) -> None:
        """Load now what the stages would load on the first message (the NER model, lookup tables).

        ``trustlayer serve`` does this before it accepts requests; call it at startup so that
        a service's first guarded call is not the slow one.
        """
        self.gate.warm()

    def reload_policy(self) -> None:
        """Re-read the policy file; later messages use the new policy, messages in flight finish on the old one.

        Raises ``PolicyError`` (and keeps the current policy) when the file no longer validates.
        """
        reload = getattr(self.gate.decider, "reload", None)
        if not callable(reload):
            raise ConfigError(f"the policy stage {type(self.gate.decider).__name__} cannot be reloaded")
        # The old gate is left to messages in flight; its idle threads go when it is collected.
        self.gate = self.gate.with_decider(reload())

    def close(self) -> None:
        """Close the gate, clients and stores."""
        self.gate.close()
        for c in [*self._clients.values(), *self._closers]:
            close = getattr(c, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> TrustLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.lru_cache(maxsize=1024)  # the declared URLs, and the few a client calls, parsed once each
def _url_parts(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path without a trailing slash) of an http(s) URL; None when it has no such parts."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an invalid port, or a malformed IPv6 host
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS[scheme], parts.path.rstrip("/")


_DEFAULT_PORTS = {"http": 80, "https": 443}
