"""verify_log gives the same report whether signatures are checked here or in worker processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from audit_recordkit import RecordSigner

from trustlayer.audit.merkle import leaf_hash
from trustlayer.audit.sqlite_store import SQLiteStore
from trustlayer.audit.verify import verify_log
from trustlayer.provenance.keys import Keyring


def test_worker_processes_find_the_same_problems(filled_log: Path, trusted: Keyring) -> None:
    stranger = RecordSigner(endpoint="mallory").envelope()
    conn = sqlite3.connect(filled_log)
    with conn:
        conn.execute("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = 30", (stranger, leaf_hash(stranger)))
        conn.execute("DELETE FROM entries WHERE idx = 3")
    conn.close()
    with SQLiteStore(filled_log) as store:
        here = verify_log(store, record_keys=trusted, log_keys=trusted, workers=1)
        spread = verify_log(store, record_keys=trusted, log_keys=trusted, workers=2)
    assert here.problems == spread.problems
    assert {p.kind for p in here.problems} >= {"deleted", "untrusted-key", "root-mismatch"}
    assert here.root == spread.root and here.size == spread.size == 39
