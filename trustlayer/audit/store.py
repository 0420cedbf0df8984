"""The audit store interface, its value types, and ``open_store`` for a store URL.

    >>> from trustlayer.audit.store import open_store
    >>> from trustlayer.provenance.keys import SigningKey
    >>> with open_store("sqlite:///tmp/audit-doc.db", log_key=SigningKey.generate()) as log:  # doctest: +SKIP
    ...     index = log.record(envelope)          # returns once the entry is durable

Two stores implement it: ``SQLiteStore`` (embedded default: WAL, group commit, many
threads and processes on one file) and ``PostgresStore`` (a fleet writing one log).
Both keep the RFC 9162 tree over the stored envelope bytes, sign a checkpoint with the
log key every ``checkpoint_every`` entries and on close, and serve inclusion and
consistency proofs. Nothing a store keeps besides the envelopes and the signed
checkpoints is trusted by ``trustlayer.audit.verify``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from trustlayer.errors import ConfigError

if TYPE_CHECKING:
    from trustlayer.audit._sql import SQLLogStore
    from trustlayer.provenance.keys import Keyring, SigningKey

__all__ = [
    "AgreementOutcome",
    "AuditStore",
    "Entry",
    "IndexedEntry",
    "Reputation",
    "StoredCheckpoint",
    "StoredKey",
    "open_store",
]

AgreementOutcome = Literal["agree", "dissent", "abstain"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry as stored: its index, the exact envelope bytes, the cached leaf hash.

    ``leaf_hash`` and ``recorded_at`` (microseconds since the epoch) are the store's own
    bookkeeping and are not trusted by verification, which recomputes the leaf hash.
    """

    index: int
    envelope: bytes
    leaf_hash: bytes
    recorded_at: int


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint row as stored (unverified); ``open_checkpoint(envelope, ...)`` verifies it."""

    id: int
    size: int
    root: bytes
    time: int
    key_id: str
    envelope: bytes


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A public key a writer registered in the store (trusted only on first use, with a warning)."""

    key_id: str
    public_key: bytes
    owner: str | None
    role: str


@dataclass(frozen=True, slots=True)
class IndexedEntry:
    """Search columns of one entry, extracted from its record after its signature verified."""

    index: int
    digest: str
    key_id: str
    sequence: int
    conversation_id: str
    sender: str
    recipient: str
    direction: str
    outcome: str
    rule_ids: tuple[str, ...]
    entity_types: tuple[str, ...]
    time: int
    parents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reputation:
    """Per-endpoint agreement history, written by the verifiers."""

    endpoint: str
    agreements: int
    dissents: int
    abstentions: int
    updated_at: int

    @property
    def total(self) -> int:
        """Number of recorded outcomes."""
        return self.agreements + self.dissents + self.abstentions


@runtime_checkable
class AuditStore(Protocol):
    """What both stores offer: the ``Recorder`` stage plus proofs and review reads."""

    @property
    def origin(self) -> str:
        """The log's id, named in every checkpoint."""
        ...

    def record(self, envelope: bytes) -> int:
        """Append and return the entry's index, once it is durable."""
        ...

    async def record_async(self, envelope: bytes) -> int:
        """``record`` for the async gate, without blocking the event loop."""
        ...

    def record_many(self, envelopes: Sequence[bytes]) -> list[int]:
        """Append several envelopes at consecutive indices in one group commit; their indices."""
        ...

    async def record_many_async(self, envelopes: Sequence[bytes]) -> list[int]:
        """``record_many`` without blocking the event loop."""
        ...

    def size(self) -> int:
        """Number of committed entries."""
        ...

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` entries (default: all)."""
        ...

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        ...

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof between two tree sizes."""
        ...

    def entry(self, index: int) -> Entry:
        """One entry; ``AuditError`` if there is none at ``index``."""
        ...

    def entries(self, start: int = 0, stop: int | None = None, *, batch: int = 2000) -> Iterator[Entry]:
        """Entries in index order, read in batches."""
        ...

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, in the order they were written."""
        ...

    def checkpoint(self) -> StoredCheckpoint:
        """Sign a checkpoint of the current tree now (if none covers it yet) and return the latest."""
        ...

    def keys(self) -> list[StoredKey]:
        """Keys registered by writers (for trust on first use only)."""
        ...

    def refresh_index(self, keyring: Keyring | None = None) -> int:
        """Verify not-yet-indexed entries and store their search columns; return how many."""
        ...

    def search(self, *, conversation: str | None = None, endpoint: str | None = None,
               outcome: str | None = None, direction: str | None = None, entity_type: str | None = None,
               since: int | None = None, until: int | None = None, limit: int = 100) -> list[IndexedEntry]:
        """Indexed entries matching every given filter, newest first."""
        ...

    def record_agreement(self, endpoint_id: str, outcome: AgreementOutcome) -> None:
        """Count one verifier outcome for ``endpoint_id`` in ``endpoint_reputation``."""
        ...

    def reputation(self) -> list[Reputation]:
        """Every endpoint's agreement history, most outcomes first."""
        ...

    def close(self) -> None:
        """Commit what is queued, sign a final checkpoint, release the store."""
        ...


def open_store(url: str, *, log_key: SigningKey | None = None, keyring: Keyring | None = None,
               checkpoint_every: int = 256, max_batch: int = 1024) -> SQLLogStore:
    """Open the store at ``url``: ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``postgresql://...``.

    Without ``log_key`` the store is read-only (review and verification); with it,
    ``record`` appends and checkpoints are signed. ``keyring`` verifies entries for the
    search index; its keys are registered in the store.
    """
    if url.startswith("sqlite:///"):
        from trustlayer.audit.sqlite_store import SQLiteStore

        return SQLiteStore(url[len("sqlite:///"):], log_key=log_key, keyring=keyring,
                           checkpoint_every=checkpoint_every, max_batch=max_batch)
    if url.startswith(("postgresql://", "postgres://")):
        from trustlayer.audit.postgres_store import PostgresStore

        return PostgresStore(url, log_key=log_key, keyring=keyring, checkpoint_every=checkpoint_every,
                             max_batch=max_batch)
    scheme = url.split(":", 1)[0] if ":" in url else "(none)"
    shown = re.sub(r"//[^/@]*@", "//***@", url)  # never echo credentials
    raise ConfigError(f"audit store URL {shown!r} has scheme {scheme!r}; expected sqlite:///PATH or "
                      "postgresql://...", field="audit.store")

