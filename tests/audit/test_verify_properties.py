"""Properties: any single-byte change, any deletion and any swap of a stored log fails verification."""

from __future__ import annotations

import functools
import sqlite3
import tempfile
from pathlib import Path

from audit_recordkit import RecordSigner, keyring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustlayer.audit.merkle import leaf_hash
from trustlayer.audit.sqlite_store import SQLiteStore
from trustlayer.audit.verify import VerifyReport, verify_log
from trustlayer.provenance.keys import Keyring, SigningKey

SIZE = 16


@functools.cache
def _pristine() -> tuple[bytes, Keyring]:
    """One closed 16-entry log (checkpoints every 4), as file bytes, and its trusted keys."""
    signer, log_key = RecordSigner(endpoint="phone"), SigningKey.generate()
    ring = keyring(signer)
    ring.add(log_key.public, owner="log")
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "audit.db"
        with SQLiteStore(db, log_key=log_key, checkpoint_every=4) as store:
            for i in range(SIZE):
                store.record(signer.envelope(conversation=f"c{i % 3}"))
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.close()
        return db.read_bytes(), ring


def _verify_after(*statements: tuple[str, tuple[object, ...]]) -> VerifyReport:
    data, ring = _pristine()
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "audit.db"
        db.write_bytes(data)
        conn = sqlite3.connect(db)
        with conn:
            for sql, params in statements:
                conn.execute(sql, params)
        conn.close()
        with SQLiteStore(db) as store:
            return verify_log(store, record_keys=ring, log_keys=ring, workers=1)


def _envelope(index: int) -> bytes:
    data, _ = _pristine()
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "audit.db"
        db.write_bytes(data)
        conn = sqlite3.connect(db)
        (env,) = conn.execute("SELECT envelope FROM entries WHERE idx = ?", (index,)).fetchone()
        conn.close()
        return bytes(env)


def test_pristine_log_verifies() -> None:
    assert _verify_after().ok


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, SIZE - 1), st.data(), st.booleans())
def test_any_byte_change_names_the_entry(index: int, data: st.DataObject, rehash: bool) -> None:
    env = bytearray(_envelope(index))
    pos = data.draw(st.integers(0, len(env) - 1))
    env[pos] = data.draw(st.integers(0, 255).filter(lambda b: b != env[pos]))
    # With rehash, the attacker also rewrites the cached leaf hash, leaving only the signature to catch it.
    lh = leaf_hash(bytes(env)) if rehash else leaf_hash(_envelope(index))
    report = _verify_after(("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = ?", (bytes(env), lh, index)))
    assert not report.ok
    assert index in {p.index for p in report.problems}, report.problems


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, SIZE - 1), st.booleans())
def test_any_deletion_fails(index: int, renumber: bool) -> None:
    statements: list[tuple[str, tuple[object, ...]]] = [("DELETE FROM entries WHERE idx = ?", (index,))]
    if renumber:
        statements.append(("UPDATE entries SET idx = idx - 1 WHERE idx > ?", (index,)))
    report = _verify_after(*statements)
    assert not report.ok
    assert any(p.index is not None and p.index <= max(index, 0) + 1 for p in report.problems), report.problems


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, SIZE - 1), min_size=2, max_size=2, unique=True))
def test_any_swap_fails(pair: list[int]) -> None:
    a, b = sorted(pair)
    ea, eb = _envelope(a), _envelope(b)
    report = _verify_after(("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = ?", (eb, leaf_hash(eb), a)),
                           ("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = ?", (ea, leaf_hash(ea), b)))
    assert not report.ok
    assert a in {p.index for p in report.problems}, report.problems
