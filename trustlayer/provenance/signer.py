"""The gate's sign stage: one hop in, one signed record (DSSE envelope bytes) out.

    >>> from trustlayer.provenance.signer import RecordSigner
    >>> signer = RecordSigner(key, salt=salt, state_path=Path(".trustlayer/id.key.seq"))  # doctest: +SKIP
    >>> signed = signer.sign(hop)                                                          # doctest: +SKIP
    >>> signed.digest      # hex SHA-256 of signed.envelope: the record id, a parent of later hops

Each record gets the next per-key sequence number (``sequence.SequenceCounter``: never
repeated across threads and restarts), 16 random bytes of nonce, and the current time.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from trustlayer.errors import SignatureError
from trustlayer.provenance import _json
from trustlayer.provenance._statement_json import StatementWriter
from trustlayer.provenance.dsse import EnvelopeSigner
from trustlayer.provenance.keys import SigningKey
from trustlayer.provenance.records import to_millis
from trustlayer.provenance.salt import SALT_BYTES
from trustlayer.provenance.sequence import DEFAULT_BLOCK, SequenceCounter
from trustlayer.stages import Signed
from trustlayer.types import Hop

__all__ = ["RecordSigner"]


class RecordSigner:
    """Signs hop records with ``key``; implements the ``Signer`` stage.

    ``salt`` is the deployment's secret content salt (``salt.load_salt``). ``state_path``
    persists the sequence high-water mark (``None``: in memory, for throwaway keys only).
    ``clock``, when given, returns the current aware datetime (for tests of the time window);
    by default the time is read with ``time.time_ns``.
    """

    keeps_deadline = True
    """``sign`` waits only for the sequence counter (its lock, another process's file lock), and no longer
    than the gate stage's deadline (``trustlayer.deadline``); signing and fsyncing a reservation are work."""

    def __init__(self, key: SigningKey, *, salt: bytes, state_path: Path | None,
                 sequence_block: int = DEFAULT_BLOCK, clock: Callable[[], datetime] | None = None) -> None:
        if len(salt) < 16:
            raise SignatureError(f"the content salt must be at least 16 bytes (use {SALT_BYTES}), got {len(salt)}")
        self._clock = clock
        # the one key of this signer: the envelope signs with it and the statement names it
        self._envelope = EnvelopeSigner(key, _json.STATEMENT_MEDIA_TYPE)
        self._key_id = key.key_id
        self._statement = StatementWriter(salt=salt, key_id=key.key_id)
        self.sequence = SequenceCounter(key.key_id, state_path, block=sequence_block)

    @property
    def key(self) -> SigningKey:
        """The signing key."""
        return self._envelope.key

    @property
    def key_id(self) -> str:
        """The id of the signing key."""
        return self._key_id

    def sign(self, hop: Hop) -> Signed:
        """Build the hop's in-toto statement, sign it, and return the envelope bytes and digest."""
        try:
            # The same bytes as _json.dumps(records.build_statement(...)), written directly
            # (see _statement_json; a property test compares the two).
            payload = self._statement.write(
                hop, sequence=self.sequence.next(), nonce=os.urandom(16).hex(),
                time=time.time_ns() // 1_000_000 if self._clock is None else to_millis(self._clock()),
            )
        except TypeError as exc:  # operator.index met a float, or a string field holds something else
            raise SignatureError(f"cannot sign the hop: a count or number is not an integer, or a text "
                                 f"field is not a string ({exc})") from exc
        envelope = self._envelope.sign(payload)
        return Signed(envelope, hashlib.sha256(envelope).hexdigest())

    def close(self) -> None:
        """Give back unused reserved sequence numbers (also done at interpreter exit)."""
        self.sequence.close()

    def __repr__(self) -> str:
        return f"RecordSigner(key_id={self._key_id[:16]}...)"
