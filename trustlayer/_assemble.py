"""Build a ``TrustLayer`` with the real stages from a validated ``Config``.

Kept apart from ``layer.py`` so that importing trustlayer stays light: Presidio,
the policy compiler, the audit store and the key files load only here.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import TYPE_CHECKING

from trustlayer.config import Config
from trustlayer.errors import ConfigError
from trustlayer.gate import Gate

if TYPE_CHECKING:
    from trustlayer.layer import TrustLayer

__all__ = ["assemble"]


def assemble(cls: type[TrustLayer], cfg: Config) -> TrustLayer:
    """Load keys, policy, vault, redactor, audit store and verifier, and compose the gate."""
    from trustlayer.audit.store import open_store
    from trustlayer.policy import PolicyEngine
    from trustlayer.provenance import Keyring, RecordAuthenticator, RecordSigner, ReplayGuard, SigningKey, load_salt
    from trustlayer.redaction import Redactor

    state = cfg.resolve(cfg.state_dir)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    passphrase = os.environ.get(cfg.identity.passphrase_env) if cfg.identity.passphrase_env else None
    if cfg.identity.passphrase_env and passphrase is None:
        raise ConfigError(f"identity.passphrase_env names ${cfg.identity.passphrase_env}, which is not set",
                          field="identity.passphrase_env")
    key = SigningKey.from_file(cfg.resolve(cfg.identity.key), passphrase=passphrase)
    log_key = SigningKey.from_file(cfg.resolve(cfg.audit.log_key), passphrase=passphrase) if cfg.audit.log_key \
        else key
    keyring = Keyring.from_config(cfg)
    salt = load_salt(state / "salt", create=True)
    policy = PolicyEngine.from_file(cfg.policy_path(), subject_jurisdiction=cfg.subject_jurisdiction)
    redactor = Redactor.from_config(cfg)
    store_url = cfg.audit.store
    if store_url.startswith("sqlite:///") and not store_url.startswith("sqlite:////"):
        store_url = "sqlite:///" + str(cfg.resolve(store_url[len("sqlite:///"):]))
        cfg.resolve(store_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    store = open_store(store_url, log_key=log_key, keyring=keyring, checkpoint_every=cfg.audit.checkpoint_every)
    signer = RecordSigner(key, salt=salt, state_path=state / f"sequence-{key.key_id[:16]}")
    authenticator = RecordAuthenticator(keyring, audience=cfg.identity.id,
                                        replay=ReplayGuard(state / "replay.db"))
    verifier = None
    if cfg.verify.endpoints:
        from trustlayer.verifiers.setup import consensus_from_config

        verifier = consensus_from_config(cfg, store=store)
    gate = Gate(detector=redactor, decider=policy, transformer=redactor, restorer=redactor, signer=signer,
                recorder=store, authenticator=authenticator, verifier=verifier, identity=cfg.identity.id,
                endpoints=cfg.endpoints, timeouts=cfg.gate.timeouts)
    secret = hmac.new(salt, b"trustlayer conversation ids", hashlib.sha256).digest()
    return cls(gate=gate, me=cfg.me, endpoints=cfg.endpoints, secret=secret, passthrough=cfg.passthrough,
               config=cfg, local_fallback=cfg.router.local, fallback=cfg.router.fallback,
               closers=(store, redactor))
