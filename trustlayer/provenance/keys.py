"""Ed25519 signing keys, public (verify) keys and the keyring of trusted peers.

    >>> from trustlayer.provenance.keys import Keyring, SigningKey
    >>> key = SigningKey.generate()
    >>> sig = key.sign(b"hello")
    >>> key.public.verify(sig, b"hello")      # returns None, raises SignatureError if bad
    >>> ring = Keyring()
    >>> ring.add(key.public, owner="phone")
    >>> ring.get(key.key_id).key_id == key.key_id
    True

Key id: the **full** lowercase hex SHA-256 of the 32-byte raw Ed25519 public key
(64 hex characters). It is derived from the key, so it cannot be chosen or spoofed
independently of the key, and it is the same on every machine.

Private key files are PKCS#8 PEM, encrypted (``BestAvailableEncryption``) when a
passphrase is given, and written atomically with mode 0600. Public key files are
SubjectPublicKeyInfo PEM; a file holding only the base64 raw public key is accepted too.
Problems with key *files* (missing, malformed, wrong passphrase, too open) raise
``ConfigError`` naming the file; failed *verification* raises ``SignatureError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
from nacl.exceptions import CryptoError

from trustlayer.errors import ConfigError, SignatureError

if TYPE_CHECKING:
    from trustlayer.config import Config

__all__ = ["KeyEntry", "Keyring", "SigningKey", "VerifyKey", "key_id_of", "write_private_file"]

_RAW_PUBLIC_LEN = 32
_SIGNATURE_LEN = 64


def key_id_of(raw_public: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key: its full hex SHA-256."""
    return hashlib.sha256(raw_public).hexdigest()


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (created so, never chmod-ed later).

    The bytes go to a temporary file opened with ``O_EXCL`` and mode 0600 in the same
    directory, are fsynced, then renamed over ``path``; no moment exists in which the
    secret is readable by others. Raises ``ConfigError`` if ``path`` exists and
    ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"key file {str(path)!r} already exists; refusing to overwrite it", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create key file {str(path)!r}: {exc.strerror}", path=str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write key file {str(path)!r}: {exc.strerror}", path=str(path)) from exc


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} file {str(path)!r} does not exist", path=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {str(path)!r}: {exc.strerror}", path=str(path)) from exc


def _b64decode(text: str, what: str) -> bytes:
    """Decode standard or URL-safe base64 (RFC 4648 sections 4 and 5), strictly."""
    s = text.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"{what} is not valid base64") from exc


class VerifyKey:
    """A trusted Ed25519 public key; verifies signatures."""

    __slots__ = ("_key", "_raw", "key_id")

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id: str = key_id_of(self._raw)
        """The full hex SHA-256 of the raw public key."""

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyKey:
        """A key from its 32 raw bytes; ``SignatureError`` if they are not an Ed25519 public key."""
        if len(raw) != _RAW_PUBLIC_LEN:
            raise SignatureError(f"an Ed25519 public key is {_RAW_PUBLIC_LEN} bytes, got {len(raw)}")
        try:
            return cls(Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as exc:
            raise SignatureError("the bytes are not a valid Ed25519 public key") from exc

    @classmethod
    def from_base64(cls, text: str) -> VerifyKey:
        """A key from the base64 (standard or URL-safe) of its 32 raw bytes."""
        return cls.from_raw(_b64decode(text, "public key"))

    @classmethod
    def from_file(cls, path: str | Path) -> VerifyKey:
        """Load a public key file: SubjectPublicKeyInfo PEM, or one line of base64 raw key.

        A private key file is accepted too (its public half is used), when unencrypted.
        """
        path = Path(path)
        data = _read(path, "public key")
        try:
            if b"-----BEGIN PUBLIC KEY-----" in data:
                key = serialization.load_pem_public_key(data)
                if not isinstance(key, Ed25519PublicKey):
                    raise ConfigError(f"public key file {str(path)!r} holds a {type(key).__name__}, "
                                      "expected an Ed25519 key", path=str(path))
                return cls(key)
            if b"PRIVATE KEY-----" in data:
                return SigningKey.from_file(path).public
            return cls.from_base64(data.decode("ascii"))
        except (ValueError, UnicodeDecodeError, SignatureError) as exc:
            raise ConfigError(f"public key file {str(path)!r} is neither a PEM public key nor the base64 "
                              "of a raw 32-byte Ed25519 key", path=str(path)) from exc

    def raw(self) -> bytes:
        """The 32 raw bytes of the key."""
        return self._raw

    def to_base64(self) -> str:
        """The standard base64 of the raw key (the form used in config ``public_key``)."""
        return base64.b64encode(self._raw).decode("ascii")

    def to_pem(self) -> bytes:
        """The key as SubjectPublicKeyInfo PEM."""
        return self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write the key as PEM (mode 0644: it is public)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise ConfigError(f"public key file {str(path)!r} already exists; refusing to overwrite it",
                              path=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_pem())

    def verify(self, signature: bytes, data: bytes) -> None:
        """Return if ``signature`` is this key's Ed25519 signature of ``data``; else ``SignatureError``."""
        if len(signature) != _SIGNATURE_LEN:
            raise SignatureError(f"bad signature for key {self.key_id[:16]}: an Ed25519 signature is "
                                 f"{_SIGNATURE_LEN} bytes, got {len(signature)}")
        try:
            self._key.verify(signature, data)
        except InvalidSignature as exc:
            raise SignatureError(f"bad signature: does not verify with key {self.key_id[:16]}") from exc

    def is_valid(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` verifies; never raises."""
        try:
            self.verify(signature, data)
        except SignatureError:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey(key_id={self.key_id[:16]}...)"


class SigningKey:
    """An Ed25519 private key: signs records and checkpoints.

    Signatures are computed by libsodium (PyNaCl), which signs in about 30 us here
    against 45 us for OpenSSL through ``cryptography``: signing is most of the cost of
    every record. RFC 8032 signing is deterministic, so both produce the same bytes (a
    test holds them to that); loading, saving and verification stay with ``cryptography``.
    """

    __slots__ = ("_key", "_sodium_secret", "public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public: VerifyKey = VerifyKey(key.public_key())
        """The matching public key."""
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        public, self._sodium_secret = crypto_sign_seed_keypair(seed)
        if public != self.public.raw():  # fail closed rather than sign with a key nobody can check
            raise SignatureError("libsodium derives a different Ed25519 public key from this private key "
                                 "than OpenSSL does; refusing to sign with it")

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key (from the OS CSPRNG, via OpenSSL)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: str | Path, passphrase: str | bytes | None = None) -> SigningKey:
        """Load a PKCS#8 PEM private key file, decrypting it with ``passphrase`` when given.

        On POSIX the file must not be readable or writable by group or others (as ssh
        requires); a wider mode is a ``ConfigError`` that says how to fix it.
        """
        path = Path(path)
        data = _read(path, "private key")
        if sys.platform != "win32":
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise ConfigError(f"private key file {str(path)!r} has mode {mode:04o}, which lets others "
                                  f"read it; expected 0600 (run: chmod 600 {path})", path=str(path))
        secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
        try:
            key = serialization.load_pem_private_key(data, password=secret)
        except TypeError as exc:
            # cryptography: TypeError when a passphrase is missing or given for a plain file.
            need = "is encrypted and needs a passphrase" if secret is None else "is not encrypted"
            raise ConfigError(f"private key file {str(path)!r} {need}", path=str(path)) from exc
        except ValueError as exc:
            why = "wrong passphrase, or not a PEM private key" if secret is not None else "not a PEM private key"
            raise ConfigError(f"cannot load private key file {str(path)!r}: {why}", path=str(path)) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"private key file {str(path)!r} holds a {type(key).__name__}, "
                              "expected an Ed25519 key", path=str(path))
        return cls(key)

    @property
    def key_id(self) -> str:
        """The key id of the public half (full hex SHA-256 of the raw public key)."""
        return self.public.key_id

    def to_pem(self, passphrase: str | bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted with ``passphrase`` when given."""
        if passphrase:
            secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
            enc: serialization.KeySerializationEncryption = serialization.BestAvailableEncryption(secret)
        else:
            enc = serialization.NoEncryption()
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    def save(self, path: str | Path, passphrase: str | bytes | None = None, *, overwrite: bool = False) -> None:
        """Write the private key (PKCS#8 PEM, mode 0600, atomically); ``ConfigError`` if it exists."""
        write_private_file(Path(path), self.to_pem(passphrase), overwrite=overwrite)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data`` (RFC 8032, deterministic)."""
        if type(data) is not bytes:
            data = bytes(data)  # libsodium's binding takes bytes only (TypeError for a str, as before)
        try:
            # crypto_sign returns signature || message (the "combined" mode)
            return crypto_sign(data, self._sodium_secret)[:_SIGNATURE_LEN]
        except CryptoError as exc:
            raise SignatureError(f"cannot sign with key {self.key_id[:16]}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id[:16]}...)"


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A trusted key and the endpoint (peer, agent, device) it speaks for, if known."""

    key: VerifyKey
    owner: str | None = None


class Keyring:
    """The trusted public keys, by key id and by owner (peer or endpoint id).

    A key is trusted because config lists it, because it was added by hand, or because
    a trusted key announced it in a verified rotation record (``accept_rotation``).
    """

    def __init__(self, entries: Iterable[KeyEntry] = ()) -> None:
        self._by_id: dict[str, KeyEntry] = {}
        self._by_owner: dict[str, list[str]] = {}
        for entry in entries:
            self.add(entry.key, owner=entry.owner)

    @classmethod
    def from_config(cls, cfg: Config, *, identity: bool = True) -> Keyring:
        """The keyring a config declares: every ``peers`` entry and every endpoint with a ``public_key``.

        With ``identity`` the own identity's public key is trusted too (read from
        ``<key>.pub`` when present, else from the private key file, decrypted with
        ``$identity.passphrase_env``), so that this process can verify its own log.
        """
        ring = cls()
        for i, peer in enumerate(cfg.peers):
            try:
                if peer.public_key is not None:
                    key = VerifyKey.from_base64(peer.public_key)
                else:
                    key = VerifyKey.from_file(cfg.resolve(peer.key_file or ""))
            except SignatureError as exc:
                raise ConfigError(f"peers[{i}] ({peer.id!r}): public_key is not a base64 raw Ed25519 key: "
                                  f"{exc}", field=f"peers.{i}.public_key") from exc
            ring.add(key, owner=peer.id)
        for i, endpoint in enumerate(cfg.endpoints):
            if endpoint.public_key is not None:
                try:
                    key = VerifyKey.from_base64(endpoint.public_key)
                except SignatureError as exc:
                    raise ConfigError(f"endpoints[{i}] ({endpoint.id!r}): public_key is not a base64 raw "
                                      f"Ed25519 key: {exc}", field=f"endpoints.{i}.public_key") from exc
                ring.add(key, owner=endpoint.id)
        if identity:
            key_path = cfg.resolve(cfg.identity.key)
            pub_path = key_path.with_name(key_path.name + ".pub")
            if pub_path.exists():
                ring.add(VerifyKey.from_file(pub_path), owner=cfg.identity.id)
            elif key_path.exists():
                env = cfg.identity.passphrase_env
                passphrase = os.environ.get(env) if env else None
                ring.add(SigningKey.from_file(key_path, passphrase).public, owner=cfg.identity.id)
        return ring

    def add(self, key: VerifyKey, *, owner: str | None = None) -> None:
        """Trust ``key`` (for ``owner``). Adding the same key again is a no-op.

        Raises ``SignatureError`` if the key is already trusted for a different owner:
        one key speaks for one endpoint.
        """
        known = self._by_id.get(key.key_id)
        if known is not None:
            if owner is not None and known.owner is not None and known.owner != owner:
                raise SignatureError(f"key {key.key_id[:16]} is already trusted for {known.owner!r}, "
                                     f"cannot also trust it for {owner!r}")
            if owner is None or known.owner == owner:
                return
        self._by_id[key.key_id] = KeyEntry(key, owner)
        if owner is not None:
            self._by_owner.setdefault(owner, []).append(key.key_id)

    def get(self, key_id: str) -> VerifyKey:
        """The trusted key with this id; ``SignatureError`` ("unknown key") if none is trusted."""
        entry = self._by_id.get(key_id)
        if entry is None:
            raise SignatureError(f"unknown key: {key_id[:16] or '(empty)'} is not in the keyring")
        return entry.key

    def owner_of(self, key_id: str) -> str | None:
        """The endpoint a trusted key speaks for (``None`` if unknown or untrusted)."""
        entry = self._by_id.get(key_id)
        return entry.owner if entry else None

    def keys_of(self, owner: str) -> tuple[VerifyKey, ...]:
        """Every trusted key of ``owner``, oldest first (rotation appends)."""
        return tuple(self._by_id[k].key for k in self._by_owner.get(owner, ()))

    def entries(self) -> tuple[KeyEntry, ...]:
        """Every trusted key with its owner."""
        return tuple(self._by_id.values())

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[VerifyKey]:
        return (e.key for e in self._by_id.values())

    def accept_rotation(self, envelope: bytes) -> VerifyKey:
        """Trust the new key a verified rotation record announces (see ``rotation``); return it."""
        from trustlayer.provenance.rotation import verify_rotation  # rotation builds on this module

        announced = verify_rotation(envelope, self)
        self.add(announced.new_key, owner=announced.owner)
        return announced.new_key
