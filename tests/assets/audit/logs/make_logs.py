"""Regenerate the known-bad audit logs in this folder (run from the repository root).

    python tests/assets/audit/logs/make_logs.py

Each ``log_*.db`` is a 12-entry log (checkpoints every 4 entries) signed with the keys
whose public halves are ``signer.pub`` and ``log.pub``, then damaged as its name says.
The private keys are thrown away. ``expected.json`` lists what ``audit verify`` must say.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[2] / "audit"))

from audit_recordkit import RecordSigner  # noqa: E402

from trustlayer.audit.checkpoint import sign_checkpoint  # noqa: E402
from trustlayer.audit.merkle import MerkleTree, leaf_hash  # noqa: E402
from trustlayer.audit.sqlite_store import SQLiteStore  # noqa: E402
from trustlayer.provenance.keys import SigningKey  # noqa: E402


def build(path: Path, signer: RecordSigner, log_key: SigningKey) -> None:
    path.unlink(missing_ok=True)
    with SQLiteStore(path, log_key=log_key, checkpoint_every=4) as store:
        for i in range(12):
            store.record(signer.envelope(conversation=f"conv-{i % 2}", sequence=i + 1, when_ms=1_767_225_600_000 + i))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    conn.execute("PRAGMA page_size = 1024")  # small pages keep the asset small
    conn.execute("VACUUM")
    conn.close()


def origin_of(path: Path) -> str:
    conn = sqlite3.connect(path)
    (origin,) = conn.execute("SELECT value FROM meta WHERE name = 'origin'").fetchone()
    conn.close()
    return str(origin)


def damage(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.execute("VACUUM")
    conn.close()


def main() -> None:
    signer, log_key = RecordSigner(endpoint="phone"), SigningKey.generate()
    (HERE / "signer.pub").write_bytes(signer.key.public.to_pem())
    (HERE / "log.pub").write_bytes(log_key.public.to_pem())
    build(HERE / "log_intact.db", signer, log_key)
    for name in ("byte_changed", "entry_deleted", "truncated", "swapped", "forged_insert", "checkpoint_replaced",
                 "forked", "replayed", "untrusted_signer"):
        build(HERE / f"log_{name}.db", signer, log_key)
    conn = sqlite3.connect(HERE / "log_intact.db")
    envs = {i: bytes(e) for i, e in conn.execute("SELECT idx, envelope FROM entries")}
    conn.close()
    changed = bytearray(envs[5])
    at = changed.index(b'"sig":"') + 20  # one byte inside the base64 signature
    changed[at] = ord("A") if changed[at] != ord("A") else ord("B")
    damage(HERE / "log_byte_changed.db", ("UPDATE entries SET envelope = ? WHERE idx = 5", (bytes(changed),)))
    damage(HERE / "log_entry_deleted.db", ("DELETE FROM entries WHERE idx = 6", ()))
    damage(HERE / "log_truncated.db", ("DELETE FROM entries WHERE idx >= 10", ()))
    damage(HERE / "log_swapped.db",
           ("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = 2", (envs[3], leaf_hash(envs[3]))),
           ("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = 3", (envs[2], leaf_hash(envs[2]))))
    forged = RecordSigner(endpoint="phone").envelope(sequence=8)
    damage(HERE / "log_forged_insert.db", ("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = 7",
                                           (forged, leaf_hash(forged))))
    other_root = MerkleTree([leaf_hash(b"x")] * 8).root()
    fake = sign_checkpoint(origin_of(HERE / "log_checkpoint_replaced.db"), 8, other_root, SigningKey.generate())
    damage(HERE / "log_checkpoint_replaced.db", ("UPDATE checkpoints SET root = ?, key_id = ?, envelope = ? "
                                                 "WHERE size = 8", (fake.root, fake.key_id, fake.envelope)))
    fork = sign_checkpoint(origin_of(HERE / "log_forked.db"), 8, MerkleTree([leaf_hash(b"y")] * 8).root(), log_key)
    damage(HERE / "log_forked.db", ("INSERT INTO checkpoints VALUES (99, 8, ?, ?, ?, ?)",
                                    (fork.root, fork.time, fork.key_id, fork.envelope)))
    damage(HERE / "log_replayed.db", ("INSERT INTO entries VALUES (12, ?, ?, 0)", (envs[4], leaf_hash(envs[4]))))
    stranger = RecordSigner(endpoint="mallory").envelope(sequence=13)
    damage(HERE / "log_untrusted_signer.db", ("INSERT INTO entries VALUES (12, ?, ?, 0)",
                                              (stranger, leaf_hash(stranger))))
    expected = {
        "log_intact.db": [],
        "log_byte_changed.db": ["entry 5: envelope does not verify"],
        "log_entry_deleted.db": ["entries 6..6 are missing"],
        "log_truncated.db": ["signs 12 entries but the log holds 10; entries 10..11 were removed (truncated)"],
        "log_swapped.db": ["an entry in 0..3 was modified, reordered, inserted or deleted (first suspicious entry: 2)"],
        "log_forged_insert.db": ["entry 7: signed by a key that is not trusted"],
        "log_checkpoint_replaced.db": ["(size 8): does not verify with the trusted log keys"],
        "log_forked.db": ["both sign tree size 8 with different roots"],
        "log_replayed.db": ["entry 12: replays sequence 5 of key", "first recorded at entry 4"],
        "log_untrusted_signer.db": ["entry 12: signed by a key that is not trusted"],
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
