"""How the reviewer learns which keys to trust when verifying a log.

In order of preference:

1. ``--config trustlayer.yaml``: record signers are the identity key and every peer and
   endpoint key the config declares (``Keyring.from_config``); the log key is
   ``audit.log_key`` when set, else the identity key.
2. ``--trust KEYFILE`` (repeatable): each public key file is trusted to sign records
   and checkpoints. Combined with ``--config`` it adds keys.
3. Neither: the keys the writers registered inside the log itself. Anyone who can edit
   the file can replace those too, so this is trust on first use and the CLI says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trustlayer.audit.store import AuditStore
from trustlayer.errors import ConfigError, SignatureError
from trustlayer.provenance.keys import Keyring, VerifyKey

__all__ = ["TOFU_WARNING", "Trust", "resolve_trust"]

TOFU_WARNING = ("warning: no --config or --trust given; trusting the keys stored inside the log itself "
                "(trust on first use). Someone who can rewrite the log can rewrite those keys too: pass "
                "--config or --trust to verify against keys you hold.")


@dataclass(frozen=True, slots=True)
class Trust:
    """Trusted record signers, trusted log (checkpoint) keys, and where they came from."""

    records: Keyring
    log: Keyring
    source: str
    tofu: bool


def _add(ring: Keyring, key: VerifyKey, owner: str | None) -> None:
    try:
        ring.add(key, owner=owner)
    except SignatureError:
        # Already trusted under another owner name: trusting it once is enough.
        ring.add(key)


def _config_log_key(config: Path) -> tuple[Keyring, Keyring]:
    from trustlayer.config import load_config

    cfg = load_config(config)
    records = Keyring.from_config(cfg)
    log = Keyring()
    if cfg.audit.log_key is not None:
        path = cfg.resolve(cfg.audit.log_key)
        pub = path.with_name(path.name + ".pub")
        key = VerifyKey.from_file(pub if pub.exists() else path)
        _add(log, key, "log")
    else:
        for key in records.keys_of(cfg.identity.id):
            _add(log, key, cfg.identity.id)
    if not len(log):
        raise ConfigError(f"config {str(config)!r}: cannot find the log key (identity key file and its .pub "
                          "are missing)", path=str(config), field="identity.key")
    return records, log


def resolve_trust(store: AuditStore, *, config: Path | None = None, trust_files: Sequence[Path] = ()) -> Trust:
    """The keys to verify ``store`` with, from ``config``, ``trust_files``, or trust on first use."""
    records, log = Keyring(), Keyring()
    sources = []
    if config is not None:
        records, log = _config_log_key(config)
        sources.append(f"config {str(config)!r}")
    for path in trust_files:
        key = VerifyKey.from_file(path)
        _add(records, key, None)
        _add(log, key, None)
        sources.append(f"key file {str(path)!r}")
    if sources:
        return Trust(records, log, ", ".join(sources), tofu=False)
    for stored in store.keys():
        try:
            key = VerifyKey.from_raw(stored.public_key)
        except SignatureError:
            continue  # a damaged key row only means fewer trusted keys: verification then fails closed
        _add(records, key, stored.owner)
        if stored.role == "log":  # only keys a writer registered as its log key sign checkpoints
            _add(log, key, None)
    return Trust(records, log, "keys stored in the log (trust on first use)", tofu=True)

