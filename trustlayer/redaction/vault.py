"""The pseudonym vault: placeholder <-> value per conversation, AES-GCM encrypted at rest.

A SQLite file (WAL mode) that never leaves the device; safe across threads (one
connection behind a lock) and processes (SQLite locking, ``BEGIN IMMEDIATE``). In a
gate stage with a deadline (``trustlayer.deadline``) the vault waits for its lock and
for another connection's database lock no longer than the deadline, then raises
``DeadlineExceeded``::

    >>> vault = Vault.open(":memory:", key=bytes(range(32)))
    >>> p = vault.pseudonym("conv-1", "PERSON", "Ada Lovelace")
    >>> p == vault.pseudonym("conv-1", "PERSON", "Ada Lovelace")
    True
    >>> vault.lookup("conv-1", p)
    'Ada Lovelace'
    >>> vault.lookup("conv-2", p) is None
    True

Row layout: the conversation id and the value appear only as HMAC-SHA256 digests;
the value itself is AES-256-GCM encrypted with the conversation digest and the
placeholder as associated data, so a row cannot be moved to another conversation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from trustlayer._sqlite_wait import GuardedConnection
from trustlayer.errors import RedactionError
from trustlayer.redaction import placeholders

if TYPE_CHECKING:
    from trustlayer.config import Config

__all__ = ["DEFAULT_TTL", "KEY_BYTES", "Vault", "load_or_create_key"]

KEY_BYTES = 32
"""The vault key is 256 bits (AES-256-GCM, HMAC-SHA256 subkeys)."""

DEFAULT_TTL = 7 * 24 * 3600
"""How long a mapping lives after its last use, in seconds, unless configured."""

_BUSY_MS = 30_000  # how long a statement waits for another connection's lock, outside a deadline

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    conv BLOB NOT NULL,
    placeholder TEXT NOT NULL,
    value_mac BLOB NOT NULL,
    entity_type TEXT NOT NULL,
    sealed BLOB NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (conv, placeholder),
    UNIQUE (conv, value_mac)
);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires);
"""


def _subkey(key: bytes, purpose: bytes) -> bytes:
    # RFC 5869: one master key, independent subkeys per purpose.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"trustlayer vault v1 " + purpose).derive(key)


def _encode(value: str) -> bytes:
    # surrogatepass: a lone surrogate from JSON "\ud800" must round-trip, not crash the stage.
    return value.encode("utf-8", "surrogatepass")


class Vault:
    """Placeholder <-> value mappings per conversation; use :meth:`open` or :meth:`from_config`."""

    def __init__(self, connection: sqlite3.Connection, key: bytes, *, ttl_seconds: int, where: str) -> None:
        self._db = connection
        # Every statement runs inside ``with self._locked``: the connection's lock, and its busy
        # timeout for the caller's deadline (both waits end by a gate stage's deadline).
        self._locked = GuardedConnection(connection, busy_ms=_BUSY_MS, what=f"vault {where!r}")
        self._aead = AESGCM(_subkey(key, b"aead"))
        self._mac_key = _subkey(key, b"mac")
        self._tag_key = _subkey(key, b"placeholder")
        self._hash_key = _subkey(key, b"hash operator")
        self.ttl_seconds = ttl_seconds
        self.where = where
        self._check_key(key)

    # -- construction ----------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], key: bytes, *, ttl_seconds: int = DEFAULT_TTL) -> Vault:
        """Open (or create) the vault file at ``path`` with a 32-byte ``key``; ``":memory:"`` for tests."""
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            raise RedactionError(f"vault key must be {KEY_BYTES} bytes, got "
                                 f"{len(key) if isinstance(key, bytes | bytearray) else type(key).__name__}")
        if ttl_seconds < 1:
            raise RedactionError(f"vault ttl_seconds must be at least 1, got {ttl_seconds}")
        where = str(path)
        try:
            if where != ":memory:":
                Path(where).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(where, timeout=_BUSY_MS / 1000, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: commits are atomic and durable across process crashes.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise RedactionError(f"vault {where!r} could not be opened: {exc}") from exc
        return cls(db, bytes(key), ttl_seconds=ttl_seconds, where=where)

    @classmethod
    def from_config(cls, cfg: Config) -> Vault:
        """The vault named by ``cfg.vault``; its key file is created (mode 0600) if missing."""
        key_path = cfg.resolve(cfg.vault.key_file)
        return cls.open(cfg.resolve(cfg.vault.path), load_or_create_key(key_path), ttl_seconds=cfg.vault.ttl_seconds)

    def _check_key(self, key: bytes) -> None:
        check = hmac.new(self._mac_key, b"key check", hashlib.sha256).digest()
        with self._locked, self._tx():
            row = self._db.execute("SELECT value FROM meta WHERE name='key_check'").fetchone()
            if row is None:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('key_check', ?)", (check,))
            elif not hmac.compare_digest(row[0], check):
                raise RedactionError(f"vault {self.where!r} was created with a different key")

    def _tx(self) -> _Transaction:
        return _Transaction(self)

    # -- digests ---------------------------------------------------------------------
    def _conv(self, conversation_id: str) -> bytes:
        return hmac.new(self._mac_key, b"conv\x00" + _encode(conversation_id), hashlib.sha256).digest()[:16]

    def _value_mac(self, conv: bytes, entity_type: str, value: str) -> bytes:
        msg = conv + b"\x00" + entity_type.encode() + b"\x00" + _encode(value)
        return hmac.new(self._mac_key, msg, hashlib.sha256).digest()

    def digest(self, entity_type: str, value: str) -> str:
        """A salted (keyed) hash of ``value``, stable across conversations, for the ``hash`` operator."""
        msg = entity_type.encode() + b"\x00" + _encode(value)
        return hmac.new(self._hash_key, msg, hashlib.sha256).hexdigest()[:16]

    # -- mappings --------------------------------------------------------------------
    def pseudonym(self, conversation_id: str, entity_type: str, value: str) -> str:
        """The placeholder for ``value`` in this conversation: the same value always gets the same one."""
        return self.pseudonyms(conversation_id, [(entity_type, value)])[0]

    def pseudonyms(self, conversation_id: str, items: Sequence[tuple[str, str]]) -> list[str]:
        """Placeholders for ``(entity_type, value)`` pairs of one conversation, in one transaction at most.

        Known values are read without writing; new values (and mappings past half their
        TTL, whose expiry is extended) are written in a single ``BEGIN IMMEDIATE``.
        """
        if not items:
            return []
        conv = self._conv(conversation_id)
        macs = [self._value_mac(conv, etype, value) for etype, value in items]
        now = time.time()
        found: dict[bytes, str] = {}
        with self._locked:
            try:
                for vmac in set(macs):
                    row = self._locked.execute(
                        "SELECT placeholder, expires FROM entries WHERE conv=? AND value_mac=? AND expires>?",
                        (conv, vmac, now)).fetchone()
                    if row is not None and row[1] - now > self.ttl_seconds / 2:
                        found[vmac] = str(row[0])
            except sqlite3.Error as exc:
                raise RedactionError(f"vault {self.where!r} could not be read: {exc}") from exc
            missing = [(vmac, etype, value) for vmac, (etype, value) in zip(macs, items, strict=True)
                       if vmac not in found]
            if missing:
                with self._tx():
                    self._db.execute("DELETE FROM entries WHERE conv=? AND expires<=?", (conv, now))
                    for vmac, etype, value in missing:
                        if vmac not in found:
                            found[vmac] = self._insert(conv, vmac, etype, value, now)
        return [found[vmac] for vmac in macs]

    def _insert(self, conv: bytes, vmac: bytes, entity_type: str, value: str, now: float) -> str:
        """Inside a write transaction: the existing placeholder (expiry extended) or a new one."""
        expires = now + self.ttl_seconds
        row = self._db.execute("SELECT placeholder FROM entries WHERE conv=? AND value_mac=?", (conv, vmac)).fetchone()
        if row is not None:
            self._db.execute("UPDATE entries SET expires=? WHERE conv=? AND value_mac=?", (expires, conv, vmac))
            return str(row[0])
        for attempt in range(1 << 16):
            tag = hmac.new(self._tag_key, vmac + attempt.to_bytes(4, "big"), hashlib.sha256).hexdigest()
            placeholder = placeholders.make(entity_type, tag[:placeholders.TAG_LENGTH])
            sealed = self._seal(conv, placeholder, value)
            cur = self._db.execute("INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                                   (conv, placeholder, vmac, entity_type, sealed, expires))
            if cur.rowcount == 1:
                return placeholder
            # Another value of this conversation holds this tag: try the next one, so two
            # values never share a placeholder.
        raise RedactionError("vault could not find a free placeholder")  # pragma: no cover

    def lookup(self, conversation_id: str, placeholder: str) -> str | None:
        """The value behind ``placeholder`` in this conversation, or ``None`` (unknown or expired)."""
        conv = self._conv(conversation_id)
        with self._locked:
            try:
                row = self._locked.execute("SELECT sealed FROM entries WHERE conv=? AND placeholder=? AND expires>?",
                                           (conv, placeholder, time.time())).fetchone()
            except sqlite3.Error as exc:
                raise RedactionError(f"vault {self.where!r} could not be read: {exc}") from exc
        if row is None:
            return None
        return self._open(conv, placeholder, row[0])

    def erase(self, conversation_id: str) -> int:
        """Forget every mapping of a conversation; returns how many were removed."""
        with self._locked, self._tx():
            return int(self._db.execute("DELETE FROM entries WHERE conv=?", (self._conv(conversation_id),)).rowcount)

    def purge(self) -> int:
        """Remove expired mappings of every conversation; returns how many were removed."""
        with self._locked, self._tx():
            return int(self._db.execute("DELETE FROM entries WHERE expires<=?", (time.time(),)).rowcount)

    def count(self, conversation_id: str) -> int:
        """How many live mappings a conversation has."""
        with self._locked:
            row = self._locked.execute("SELECT COUNT(*) FROM entries WHERE conv=? AND expires>?",
                                       (self._conv(conversation_id), time.time())).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database connection."""
        self._locked.close()

    # -- sealing ---------------------------------------------------------------------
    def _seal(self, conv: bytes, placeholder: str, value: str) -> bytes:
        nonce = os.urandom(12)  # NIST SP 800-38D 8.2.2: random 96-bit IVs
        return nonce + self._aead.encrypt(nonce, _encode(value), conv + placeholder.encode())

    def _open(self, conv: bytes, placeholder: str, sealed: bytes) -> str:
        try:
            plain = self._aead.decrypt(sealed[:12], sealed[12:], conv + placeholder.encode())
        except InvalidTag as exc:
            raise RedactionError(f"vault {self.where!r}: an entry failed authentication (tampered?)") from exc
        return plain.decode("utf-8", "surrogatepass")


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error), translating SQLite errors."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._db = vault._db
        self._where = vault.where

    def __enter__(self) -> None:
        try:
            self._vault._locked.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise RedactionError(f"vault {self._where!r} could not be written: {exc}") from exc

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        except sqlite3.Error as err:
            raise RedactionError(f"vault {self._where!r} could not be written: {err}") from err
        if isinstance(exc, sqlite3.Error):
            raise RedactionError(f"vault {self._where!r} could not be written: {exc}") from exc


def load_or_create_key(path: Path) -> bytes:
    """Read a base64 vault key file, creating one with a fresh random key (mode 0600) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = os.urandom(KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(key).decode() + "\n")
        return key
    try:
        key = base64.b64decode(path.read_text().strip(), validate=True)
    except (ValueError, OSError) as exc:
        raise RedactionError(f"vault key file {str(path)!r} is not a base64 key: {type(exc).__name__}") from exc
    if len(key) != KEY_BYTES:
        raise RedactionError(f"vault key file {str(path)!r} holds {len(key)} bytes; expected {KEY_BYTES}")
    return key

