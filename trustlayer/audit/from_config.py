"""Build the audit store (the gate's ``Recorder``) a ``trustlayer.yaml`` describes.

    >>> from trustlayer import load_config
    >>> from trustlayer.audit.from_config import store_from_config
    >>> store = store_from_config(load_config("trustlayer.yaml"))   # doctest: +SKIP

``audit.store`` is a URL; a relative ``sqlite:///`` path is resolved against the
config file's directory. Checkpoints are signed with ``audit.log_key`` when set, else
with the identity key; every key the config trusts is registered in the store (so a
reviewer without the config can at least verify on first use, with a warning).
"""

from __future__ import annotations

import os

from trustlayer.audit._sql import SQLLogStore
from trustlayer.audit.store import open_store
from trustlayer.config import Config
from trustlayer.errors import ConfigError
from trustlayer.provenance.from_config import identity_key
from trustlayer.provenance.keys import Keyring, SigningKey

__all__ = ["log_key_from_config", "store_from_config"]


def log_key_from_config(cfg: Config) -> SigningKey:
    """The key that signs checkpoints: ``audit.log_key`` when set, else the identity key.

    A separate log key file is decrypted with the identity's passphrase, when it has one.
    """
    if cfg.audit.log_key is None:
        return identity_key(cfg)
    env = cfg.identity.passphrase_env
    passphrase = os.environ.get(env) if env else None
    return SigningKey.from_file(cfg.resolve(cfg.audit.log_key), passphrase)


def store_from_config(cfg: Config, *, log_key: SigningKey | None = None) -> SQLLogStore:
    """Open the configured audit store for appending (the ``Recorder`` stage)."""
    url = cfg.audit.store
    if url.startswith("sqlite:///"):
        path = cfg.resolve(url[len("sqlite:///"):])
        url = f"sqlite:///{path}"
    elif not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"audit.store {url!r} must be sqlite:///PATH or postgresql://...", field="audit.store")
    key = log_key if log_key is not None else log_key_from_config(cfg)
    return open_store(url, log_key=key, keyring=Keyring.from_config(cfg),
                      checkpoint_every=cfg.audit.checkpoint_every)
