"""The ``trustlayer.yaml`` schema and its loader.

    >>> from trustlayer import load_config
    >>> cfg = load_config("trustlayer.yaml")          # doctest: +SKIP
    >>> cfg.endpoint(cfg.identity.id).kind            # doctest: +SKIP

Relative paths in the file (key files, policy, stores) are resolved against the
directory of the config file. Every error names the file, the line and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trustlayer._yaml import LocatedError, load_yaml, validation_error
from trustlayer.errors import ConfigError
from trustlayer.types import Endpoint, Operator

__all__ = [
    "AuditConfig",
    "Config",
    "GateConfig",
    "IdentityConfig",
    "PeerConfig",
    "ProxyConfig",
    "RedactionConfig",
    "RouterConfig",
    "VaultConfig",
    "VerifyConfig",
    "load_config",
]

ENV_VAR = "TRUSTLAYER_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentityConfig(_Section):
    """The identity of this process: the endpoint it speaks for and its signing key."""

    id: str
    key: str = Field(description="path of the Ed25519 private key file")
    passphrase_env: str | None = None


class PeerConfig(_Section):
    """A trusted peer key: an agent (or device) whose signed records we accept."""

    id: str
    public_key: str | None = Field(default=None, description="base64 raw Ed25519 public key")
    key_file: str | None = Field(default=None, description="path of a public key file")

    @model_validator(mode="after")
    def _one_key(self) -> PeerConfig:
        if (self.public_key is None) == (self.key_file is None):
            raise ValueError("a peer needs exactly one of 'public_key' and 'key_file'")
        return self


class AuditConfig(_Section):
    """Where the audit log lives and how often checkpoints are signed."""

    store: str = "sqlite:///.trustlayer/audit.db"
    checkpoint_every: int = Field(default=256, ge=1)
    log_key: str | None = Field(default=None, description="key file for checkpoints; default: identity key")


class VaultConfig(_Section):
    """The pseudonym vault: an encrypted SQLite file that never leaves the device."""

    path: str = ".trustlayer/vault.db"
    ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    key_file: str = ".trustlayer/vault.key"


class RedactionConfig(_Section):
    """Detection settings."""

    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    ner: bool = True
    operators: Mapping[str, Operator] = Field(default_factory=dict,
                                              description="default operator per entity type")


class GateConfig(_Section):
    """Per-stage timeouts in seconds (``null`` disables a stage's timeout)."""

    timeouts: Mapping[str, float | None] = Field(default_factory=dict)


class VerifyConfig(_Section):
    """Which endpoints take part in consensus and how agreement is measured."""

    endpoints: tuple[str, ...] = ()
    deadline: float = Field(default=30.0, gt=0)
    measure: Literal["exact", "f1", "embedding"] = "exact"
    dissent_threshold: float = Field(default=0.3, ge=0.0, le=1.0)


class ProxyConfig(_Section):
    """The OpenAI-compatible proxy: which endpoint it forwards to and who may call it."""

    upstream: str | None = Field(default=None, description="endpoint id to forward to")
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    api_keys_env: str | None = Field(default=None, description="env var with comma-separated client keys")
    api_keys: tuple[str, ...] = ()


class RouterConfig(_Section):
    """How ``@route`` reacts when a router picks an endpoint policy forbids."""

    fallback: Literal["reroute", "block"] = "reroute"
    local: str | None = Field(default=None, description="endpoint id to reroute to; default: identity")
    model: str | None = Field(default=None, description="path of a trained private router")


class Config(_Section):
    """The whole ``trustlayer.yaml``."""

    version: Literal[1] = 1
    identity: IdentityConfig
    endpoints: tuple[Endpoint, ...] = Field(min_length=1)
    peers: tuple[PeerConfig, ...] = ()
    policy: str = Field(default="default", description="a policy file, or the name of a shipped policy")
    subject_jurisdiction: str | None = None
    audit: AuditConfig = AuditConfig()
    vault: VaultConfig = VaultConfig()
    redaction: RedactionConfig = RedactionConfig()
    gate: GateConfig = GateConfig()
    verify: VerifyConfig = VerifyConfig()
    proxy: ProxyConfig = ProxyConfig()
    router: RouterConfig = RouterConfig()
    passthrough: bool = Field(default=False, description=(
        "let the transport forward requests that are not chat/completions calls (never one with a body "
        "for a declared endpoint)"))
    base_dir: str = Field(default=".", exclude=True)

    @model_validator(mode="after")
    def _ids(self) -> Config:
        ids = [e.id for e in self.endpoints]
        seen: set[str] = set()
        for i, e in enumerate(ids):
            if e in seen:
                raise LocatedError(("endpoints", i, "id"), f"endpoint id {e!r} is declared twice")
            seen.add(e)
        declared = ", ".join(ids)

        def need(ref: str | None, *loc: str | int) -> None:
            if ref is not None and ref not in seen:
                raise LocatedError(loc, f"names endpoint {ref!r}, which is not declared (declared: {declared})")

        need(self.identity.id, "identity", "id")
        need(self.proxy.upstream, "proxy", "upstream")
        need(self.router.local, "router", "local")
        for i, v in enumerate(self.verify.endpoints):
            need(v, "verify", "endpoints", i)
        for i, p in enumerate(self.peers):
            need(p.id, "peers", i, "id")
        return self

    def endpoint(self, endpoint_id: str) -> Endpoint:
        """The declared endpoint with this id; ``ConfigError`` if there is none."""
        for e in self.endpoints:
            if e.id == endpoint_id:
                return e
        declared = ", ".join(e.id for e in self.endpoints)
        raise ConfigError(f"endpoint {endpoint_id!r} is not declared in the config (declared: {declared})",
                          field="endpoints")

    @property
    def me(self) -> Endpoint:
        """The endpoint this process speaks for."""
        return self.endpoint(self.identity.id)

    def resolve(self, path: str) -> Path:
        """A path from the config, resolved against the config file's directory."""
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else Path(self.base_dir) / p

    def policy_path(self) -> Path:
        """The policy file: a path, or a shipped policy name such as ``eu-gdpr``."""
        from trustlayer.policy import shipped_policy_path  # local import: policy is optional at load

        if self.policy.endswith((".yaml", ".yml")) or "/" in self.policy:
            return self.resolve(self.policy)
        return shipped_policy_path(self.policy)


def _error_path_lines(raw: Any, path: Path) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r}: expected a mapping at the top level, "
                          f"found {type(raw).__name__}", path=str(path), line=1)


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a ``trustlayer.yaml``; ``None`` means ``$TRUSTLAYER_CONFIG``.

    Raises ``ConfigError`` naming the file, line and field of the first problem.
    """
    if path is None:
        env = os.environ.get(ENV_VAR)
        if not env:
            raise ConfigError(f"no config given and ${ENV_VAR} is not set; "
                              "pass a path or run 'trustlayer init' to write one")
        path = env
    p = Path(path)
    data, lines = load_yaml(p, error=ConfigError, what="config")
    _error_path_lines(data, p)
    try:
        return Config.model_validate({**data, "base_dir": str(p.resolve().parent)})
    except ValidationError as exc:
        raise validation_error(exc, p, lines, error=ConfigError, what="config") from exc
