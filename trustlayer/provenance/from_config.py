"""Build the provenance stages a ``trustlayer.yaml`` describes.

    >>> from trustlayer import load_config
    >>> from trustlayer.provenance.from_config import authenticator_from_config, signer_from_config
    >>> cfg = load_config("trustlayer.yaml")                  # doctest: +SKIP
    >>> signer = signer_from_config(cfg)                     # doctest: +SKIP
    >>> auth = authenticator_from_config(cfg)                # doctest: +SKIP

Files, all next to the identity key (``identity.key``, e.g. ``.trustlayer/id.key``):
``record.salt`` (the secret content salt, created on first use, mode 0600),
``<key file>.seq`` (the sequence high-water mark) and ``replay.db`` (the replay guard).
The key's passphrase, when it has one, is read from ``$identity.passphrase_env``.
"""

from __future__ import annotations

import os

from trustlayer.config import Config
from trustlayer.errors import ConfigError
from trustlayer.provenance.authenticator import RecordAuthenticator
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.replay import ReplayGuard
from trustlayer.provenance.salt import load_salt
from trustlayer.provenance.signer import RecordSigner

__all__ = ["authenticator_from_config", "identity_key", "signer_from_config"]


def identity_key(cfg: Config) -> SigningKey:
    """Load the identity's private key, decrypting it with ``$identity.passphrase_env`` when set."""
    env = cfg.identity.passphrase_env
    passphrase = None
    if env is not None:
        passphrase = os.environ.get(env)
        if not passphrase:
            raise ConfigError(f"identity.passphrase_env names ${env}, which is not set or empty",
                              field="identity.passphrase_env")
    return SigningKey.from_file(cfg.resolve(cfg.identity.key), passphrase)


def signer_from_config(cfg: Config, *, key: SigningKey | None = None) -> RecordSigner:
    """The ``Signer`` stage for this identity (salt and sequence files next to the key)."""
    key_path = cfg.resolve(cfg.identity.key)
    key = key if key is not None else identity_key(cfg)
    salt = load_salt(key_path.parent / "record.salt", create=True)
    return RecordSigner(key, salt=salt, state_path=key_path.with_name(key_path.name + ".seq"))


def authenticator_from_config(cfg: Config, *, window_seconds: int = 300) -> RecordAuthenticator:
    """The ``Authenticator`` stage: the config's keyring, this identity as audience, a persisted guard."""
    key_path = cfg.resolve(cfg.identity.key)
    return RecordAuthenticator(Keyring.from_config(cfg), audience=cfg.identity.id, window_seconds=window_seconds,
                               replay=ReplayGuard(key_path.parent / "replay.db"))
