"""Build a ``TrustLayer`` with the real stages from a validated ``Config``.

Kept apart from ``layer.py`` so that importing trustlayer stays light: Presidio,
the policy compiler, the audit store and the key files load only here.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from trustlayer.config import Config
from trustlayer.gate import Gate
from trustlayer.stages import Signed
from trustlayer.types import Hop

if TYPE_CHECKING:
    from trustlayer.layer import TrustLayer

__all__ = ["assemble"]


def assemble(cls: type[TrustLayer], cfg: Config, *,
             observer: Callable[[Hop, Signed], None] | None = None) -> TrustLayer:
    """Load keys, policy, vault, redactor, audit store and verifier, and compose the gate."""
    from trustlayer.audit.store import open_store
    from trustlayer.policy import PolicyEngine
    from trustlayer.provenance import Keyring, SigningKey, load_salt
    from trustlayer.provenance.from_config import authenticator_from_config, identity_key, signer_from_config
    from trustlayer.redaction import Redactor

    key = identity_key(cfg)
    log_key = key
    if cfg.audit.log_key:
        passphrase = os.environ.get(cfg.identity.passphrase_env) if cfg.identity.passphrase_env else None
        log_key = SigningKey.from_file(cfg.resolve(cfg.audit.log_key), passphrase=passphrase)
    keyring = Keyring.from_config(cfg)
    signer = signer_from_config(cfg, key=key)
    authenticator = authenticator_from_config(cfg)
    policy = PolicyEngine.from_file(cfg.policy_path(), subject_jurisdiction=cfg.subject_jurisdiction)
    redactor = Redactor.from_config(cfg)
    store_url = cfg.audit.store
    if store_url.startswith("sqlite:///") and not store_url.startswith("sqlite:////"):
        db = cfg.resolve(store_url[len("sqlite:///"):])
        db.parent.mkdir(parents=True, exist_ok=True)
        store_url = "sqlite:///" + str(db)
    store = open_store(store_url, log_key=log_key, keyring=keyring, checkpoint_every=cfg.audit.checkpoint_every)
    verifier = None
    if cfg.verify.endpoints:
        from trustlayer.verifiers.setup import consensus_from_config

        verifier = consensus_from_config(cfg, store=store)
    gate = Gate(detector=redactor, decider=policy, transformer=redactor, restorer=redactor, signer=signer,
                recorder=store, authenticator=authenticator, verifier=verifier, identity=cfg.identity.id,
                endpoints=cfg.endpoints, timeouts=cfg.gate.timeouts, observer=observer)
    # Conversation ids are keyed with the record salt: stable per deployment, meaningless outside it.
    salt = load_salt(cfg.resolve(cfg.identity.key).parent / "record.salt")
    secret = hmac.new(salt, b"trustlayer conversation ids", hashlib.sha256).digest()
    layer = cls(gate=gate, me=cfg.me, endpoints=cfg.endpoints, secret=secret, passthrough=cfg.passthrough,
                config=cfg, local_fallback=cfg.router.local, fallback=cfg.router.fallback,
                closers=(store, redactor, *((verifier,) if verifier is not None else ())))
    if verifier is not None:
        from trustlayer.verifiers.setup import gate_policy

        # Each panel endpoint gets the request as the current gate (after any policy reload) transforms
        # it for that endpoint (a reroute is never sent to it), and panel answers are restored before
        # they are compared with the primary's.
        verifier.bind(policy=gate_policy(lambda: layer.gate), restore=redactor.restore)
    return layer
