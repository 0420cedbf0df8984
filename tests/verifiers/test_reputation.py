from __future__ import annotations

from pathlib import Path

import pytest

from trustlayer.errors import AuditError, ConfigError
from trustlayer.types import Verdict
from trustlayer.verifiers.reputation import Reputation, SQLiteAgreementStore


def verdict(outcome: str, agreeing: tuple[str, ...], dissenting: tuple[str, ...],
            abstained: dict[str, str]) -> Verdict:
    return Verdict(outcome=outcome, answer="x" if outcome == "verified" else None, agreement=0.5,  # type: ignore[arg-type]
                   quorum=2, of=4, measure="exact", agreeing=agreeing, dissenting=dissenting,
                   abstained=abstained)


def test_history_survives_reopening_the_file(tmp_path: Path) -> None:
    db = tmp_path / "rep.db"
    rep = Reputation.open(db)
    for _ in range(4):
        rep.record_verdict(verdict("verified", ("a", "b"), ("c",), {"d": "timeout"}))
    again = Reputation.open(db).standing()
    assert again["a"].agree == 4 and again["a"].dissent_rate == 0.0
    assert again["c"].dissent == 4 and again["c"].dissent_rate == 1.0
    assert again["d"].abstain == 4 and again["d"].votes == 0


def test_unverified_verdicts_and_policy_refusals_are_not_held_against_anyone() -> None:
    rep = Reputation.open(":memory:")
    rep.record_verdict(verdict("unverified", ("a",), ("b",), {"c": "policy", "d": "error: HTTP 500"}))
    standing = rep.standing()
    assert set(standing) == {"d"}
    assert standing["d"].abstain == 1


def test_flagged_needs_enough_votes_and_a_high_dissent_rate() -> None:
    rep = Reputation.open(":memory:")
    for i in range(10):
        rep.record("steady", "agree")
        rep.record("liar", "dissent" if i % 2 else "agree")
        rep.record("noisy", "dissent" if i == 0 else "agree")
    rep.record("new", "dissent")
    assert rep.flagged(0.5) == ("liar",)
    assert rep.flagged(0.1) == ("liar", "noisy")
    assert rep.flagged(0.5, min_votes=1) == ("liar", "new")
    assert rep.flagged(0.9) == ()


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    rep = Reputation.open(":memory:")
    with pytest.raises(ConfigError, match="outcome 'maybe' is not one of agree, dissent, abstain"):
        rep.record("a", "maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="within \\[0, 1\\], got 1.5"):
        rep.flagged(1.5)
    with pytest.raises(ConfigError, match="min_votes must be at least 1"):
        rep.flagged(0.5, min_votes=0)
    with pytest.raises(AuditError, match="could not be opened"):
        SQLiteAgreementStore(tmp_path / "missing-dir" / "rep.db")
