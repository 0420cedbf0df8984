"""Endpoint reputation: how often each endpoint agreed with verified consensus, and who to distrust.

    >>> rep = Reputation.open(":memory:")
    >>> for outcome in ("agree", "dissent", "dissent"):
    ...     rep.record("cloud-b", outcome)
    >>> rep.standing()["cloud-b"].dissent_rate
    0.6666666666666666
    >>> rep.flagged(0.5, min_votes=3)
    ('cloud-b',)

Outcomes are ``agree`` and ``dissent`` (the endpoint answered a verified verdict, with or
against the consensus) and ``abstain`` (it timed out or failed; a policy refusal is not the
endpoint's fault and is not counted). The history lives in an ``AgreementStore``: normally
the audit store (``trustlayer.audit.store.open_store(...)``: its ``endpoint_reputation``
table, shown by ``trustlayer audit reputation``), so ``Reputation(store)``;
:class:`SQLiteAgreementStore` is a stand-alone file with the same interface for programs
without an audit log (``Reputation.open(path)``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from trustlayer.audit.store import AgreementOutcome
from trustlayer.audit.store import Reputation as AuditReputation
from trustlayer.errors import AuditError, ConfigError
from trustlayer.types import Verdict

__all__ = ["AgreementStore", "Reputation", "SQLiteAgreementStore", "Standing", "VoteOutcome"]

VoteOutcome = AgreementOutcome
_OUTCOMES = ("agree", "dissent", "abstain")


@runtime_checkable
class AgreementStore(Protocol):
    """Where per-endpoint agreement outcomes are kept."""

    def record_agreement(self, endpoint_id: str, outcome: VoteOutcome) -> None:
        """Append one outcome for ``endpoint_id``."""
        ...

    def reputation(self) -> Sequence[AuditReputation]:
        """Every endpoint's counts of agreements, dissents and abstentions."""
        ...


class SQLiteAgreementStore:
    """Agreement outcomes in a SQLite file (one row per vote, WAL journal)."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            if self._path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS endpoint_agreement ("
                " endpoint_id TEXT NOT NULL, outcome TEXT NOT NULL"
                " CHECK (outcome IN ('agree', 'dissent', 'abstain')), at REAL NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise AuditError(f"reputation store {self._path!r} could not be opened: {exc}") from exc

    def record_agreement(self, endpoint_id: str, outcome: VoteOutcome) -> None:
        """Append one outcome (durable when this returns)."""
        if outcome not in _OUTCOMES:
            raise ConfigError(f"agreement outcome {outcome!r} is not one of {', '.join(_OUTCOMES)}")
        try:
            with self._lock:
                self._db.execute("INSERT INTO endpoint_agreement VALUES (?, ?, ?)",
                                 (endpoint_id, outcome, time.time()))
        except sqlite3.Error as exc:
            raise AuditError(f"reputation store {self._path!r} could not be written: {exc}") from exc

    def reputation(self) -> list[AuditReputation]:
        """Every endpoint's counts, in the audit store's row shape."""
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT endpoint_id, SUM(outcome = 'agree'), SUM(outcome = 'dissent'),"
                    " SUM(outcome = 'abstain'), MAX(at) FROM endpoint_agreement GROUP BY 1 ORDER BY 1"
                ).fetchall()
        except sqlite3.Error as exc:
            raise AuditError(f"reputation store {self._path!r} could not be read: {exc}") from exc
        return [AuditReputation(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


@dataclass(frozen=True, slots=True)
class Standing:
    """One endpoint's agreement history."""

    endpoint_id: str
    agree: int
    dissent: int
    abstain: int

    @property
    def votes(self) -> int:
        """Answers that took part in a verified verdict."""
        return self.agree + self.dissent

    @property
    def dissent_rate(self) -> float:
        """Share of its counted answers that went against the consensus (0.0 with no votes)."""
        return self.dissent / self.votes if self.votes else 0.0


class Reputation:
    """Per-endpoint agreement history over an ``AgreementStore``, and the endpoints to flag."""

    def __init__(self, store: AgreementStore) -> None:
        self._store = store

    @classmethod
    def open(cls, path: str | Path) -> Reputation:
        """Reputation kept in the SQLite file at ``path`` (``":memory:"`` for a throwaway one)."""
        return cls(SQLiteAgreementStore(path))

    @property
    def store(self) -> AgreementStore:
        """The store the history lives in."""
        return self._store

    def record(self, endpoint_id: str, outcome: VoteOutcome) -> None:
        """Append one outcome for one endpoint."""
        if outcome not in _OUTCOMES:
            raise ConfigError(f"agreement outcome {outcome!r} is not one of {', '.join(_OUTCOMES)}")
        self._store.record_agreement(endpoint_id, outcome)

    def record_verdict(self, verdict: Verdict) -> None:
        """Count a verdict: agree/dissent only when it was verified, abstain for timeouts and errors.

        An unverified verdict says nothing about who was right, so its answers are not counted.
        """
        if verdict.verified:
            for endpoint_id in verdict.agreeing:
                self.record(endpoint_id, "agree")
            for endpoint_id in verdict.dissenting:
                self.record(endpoint_id, "dissent")
        for endpoint_id, reason in verdict.abstained.items():
            if reason == "timeout" or reason.startswith("error"):
                self.record(endpoint_id, "abstain")

    def standing(self) -> dict[str, Standing]:
        """Every endpoint's history, by endpoint id."""
        rows = sorted(self._store.reputation(), key=lambda r: r.endpoint)
        return {r.endpoint: Standing(r.endpoint, r.agreements, r.dissents, r.abstentions) for r in rows}

    def flagged(self, threshold: float, *, min_votes: int = 5) -> tuple[str, ...]:
        """Endpoints with at least ``min_votes`` counted answers whose dissent rate is at least ``threshold``."""
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"dissent threshold must be within [0, 1], got {threshold}")
        if min_votes < 1:
            raise ConfigError(f"min_votes must be at least 1, got {min_votes}")
        return tuple(s.endpoint_id for s in self.standing().values()
                     if s.votes >= min_votes and s.dissent_rate >= threshold)
