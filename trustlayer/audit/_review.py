"""The review side of the SQL log store: the search index and the endpoint reputation table.

The index holds columns extracted from records whose signatures verified with the
reviewer's keys (``refresh_index``); ``trustlayer.audit.verify`` never reads it. The
``endpoint_reputation`` table (endpoint, agreements, dissents, abstentions, updated_at)
is written by the verifiers through ``record_agreement``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from trustlayer.audit.store import AgreementOutcome, Entry, IndexedEntry, Reputation
from trustlayer.errors import AuditError, SignatureError
from trustlayer.provenance.keys import Keyring

__all__ = ["ReviewMixin"]

_OUTCOME_COLUMN = {"agree": "agreements", "dissent": "dissents", "abstain": "abstentions"}


def _joined(values: Sequence[str]) -> str:
    # ",a,b," so that one LIKE '%,a,%' finds a whole value, never a prefix of another.
    return "," + ",".join(values) + "," if values else ""


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(v for v in (text or "").split(",") if v)


def _now_s() -> int:
    import time

    return int(time.time())


class ReviewMixin:
    """Search index and reputation methods; ``SQLLogStore`` provides the I/O primitives below."""

    _keyring: Keyring | None

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _write(self, fn: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    def _exec(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _execmany(self, conn: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def entries(self, start: int = 0, stop: int | None = None, *, batch: int = 2000) -> Iterator[Entry]:
        raise NotImplementedError

    # --- search index -------------------------------------------------------------------------

    def refresh_index(self, keyring: Keyring | None = None) -> int:
        """Verify entries not yet indexed with ``keyring`` and store their search columns.

        Entries whose signature does not verify are indexed as unverified (with the reason)
        and never appear in ``search``. The index remembers which keys it trusted; with
        other keys it is rebuilt, so search never shows what the current keys reject.
        """
        from trustlayer.audit.record_view import read_record

        ring = keyring if keyring is not None else self._keyring
        if ring is None:
            raise AuditError("indexing needs trusted keys: pass a keyring (see 'trustlayer audit --help')")
        trust = hashlib.sha256(",".join(sorted(k.key_id for k in ring)).encode()).hexdigest()
        if self._read("SELECT value FROM meta WHERE name = ?", ("index_trust",)) != [(trust,)]:
            def reset(conn: Any) -> None:
                conn.execute("DELETE FROM entry_index")
                self._exec(conn, "DELETE FROM meta WHERE name = ?", ("index_trust",))
                self._exec(conn, "INSERT INTO meta (name, value) VALUES (?, ?)", ("index_trust", trust))

            self._write(reset)
        row = self._read("SELECT coalesce(max(idx), -1) FROM entry_index")
        done = 0
        for chunk in self._chunks(int(row[0][0]) + 1):
            values: list[tuple[Any, ...]] = []
            for e in chunk:
                try:
                    r = read_record(e.envelope, ring)
                except SignatureError as exc:  # the reason is stored; the entry stays unsearchable
                    values.append((e.index, 0, None, None, None, None, None, None, None, None, None, None,
                                   None, None, f"{type(exc).__name__}: {exc}"[:300]))
                    continue
                values.append((e.index, 1, r.digest, r.key_id, r.sequence, r.conversation_id, r.sender,
                               r.recipient, r.direction, r.outcome, _joined(r.rule_ids), _joined(r.entity_types),
                               r.time, _joined(r.parents), None))
            self._write(functools.partial(self._insert_index, values))
            done += len(values)
        return done

    def _insert_index(self, values: list[tuple[Any, ...]], conn: Any) -> None:
        self._execmany(conn, "INSERT INTO entry_index VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                             "ON CONFLICT DO NOTHING", values)

    def _chunks(self, start: int, n: int = 1000) -> Iterator[list[Entry]]:
        chunk: list[Entry] = []
        for e in self.entries(start):
            chunk.append(e)
            if len(chunk) == n:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def search(self, *, conversation: str | None = None, endpoint: str | None = None,
               outcome: str | None = None, direction: str | None = None, entity_type: str | None = None,
               since: int | None = None, until: int | None = None, limit: int = 100) -> list[IndexedEntry]:
        """Verified, indexed entries matching every given filter, newest first (``since``/``until``: Unix ms)."""
        where: list[str] = ["verified = 1"]
        params: list[Any] = []
        for column, value in (("conversation_id", conversation), ("outcome", outcome), ("direction", direction)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if endpoint is not None:
            where.append("(sender = ? OR recipient = ?)")
            params += [endpoint, endpoint]
        if entity_type is not None:
            where.append("entity_types LIKE ?")
            params.append(f"%,{entity_type},%")
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        if until is not None:
            where.append("time <= ?")
            params.append(until)
        rows = self._read("SELECT idx, digest, key_id, sequence, conversation_id, sender, recipient, direction, "
                          "outcome, rule_ids, entity_types, time, parents FROM entry_index WHERE "
                          + " AND ".join(where) + " ORDER BY idx DESC LIMIT ?", (*params, limit))
        return [IndexedEntry(int(r[0]), r[1], r[2], int(r[3]), r[4], r[5], r[6], r[7], r[8], _split(r[9]),
                             _split(r[10]), int(r[11]), _split(r[12])) for r in rows]

    # --- reputation ---------------------------------------------------------------------------

    def record_agreement(self, endpoint_id: str, outcome: AgreementOutcome) -> None:
        """Count one verifier outcome (agree, dissent, abstain) for ``endpoint_id``."""
        column = _OUTCOME_COLUMN.get(outcome)
        if column is None:
            raise AuditError(f"agreement outcome {outcome!r} is not one of agree, dissent, abstain")
        counts = [int(c == column) for c in ("agreements", "dissents", "abstentions")]
        self._write(lambda conn: self._exec(
            conn, "INSERT INTO endpoint_reputation (endpoint, agreements, dissents, abstentions, updated_at) "
            f"VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint) DO UPDATE SET {column} = "
            f"endpoint_reputation.{column} + 1, updated_at = excluded.updated_at",
            (endpoint_id, *counts, _now_s())))

    def reputation(self) -> list[Reputation]:
        """Every endpoint's agreement history, most outcomes first."""
        rows = self._read("SELECT endpoint, agreements, dissents, abstentions, updated_at FROM endpoint_reputation "
                          "ORDER BY agreements + dissents + abstentions DESC, endpoint")
        return [Reputation(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]

