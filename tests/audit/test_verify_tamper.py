"""Every tamper case of issue 5 is found by `audit verify`, which names the entry (exit 1)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from audit_recordkit import RecordSigner
from click.testing import CliRunner, Result

from trustlayer.audit.checkpoint import sign_checkpoint
from trustlayer.audit.cli import audit
from trustlayer.audit.merkle import MerkleTree, leaf_hash
from trustlayer.audit.sqlite_store import SQLiteStore
from trustlayer.provenance.keys import SigningKey


@pytest.fixture
def trust_args(tmp_path: Path, signer: RecordSigner, log_key: SigningKey) -> list[str]:
    signer.key.public.save(tmp_path / "phone.pub")
    log_key.public.save(tmp_path / "log.pub")
    return ["--trust", str(tmp_path / "phone.pub"), "--trust", str(tmp_path / "log.pub")]


def _verify(db: Path, trust_args: list[str], *extra: str) -> Result:
    return CliRunner().invoke(audit, ["verify", str(db), *trust_args, *extra])


def _sql(db: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for statement, params in statements:
            conn.execute(statement, params)
    conn.close()


def _envelope(db: Path, index: int) -> bytes:
    conn = sqlite3.connect(db)
    (env,) = conn.execute("SELECT envelope FROM entries WHERE idx = ?", (index,)).fetchone()
    conn.close()
    return bytes(env)


def test_intact_log_verifies(filled_log: Path, trust_args: list[str]) -> None:
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 0, result.output
    assert "intact: 40 entries" in result.output
    assert "5 valid checkpoint(s)" in result.output


def test_one_byte_changed(filled_log: Path, trust_args: list[str]) -> None:
    env = bytearray(_envelope(filled_log, 13))
    pos = env.index(b'"sig":"') + 12  # inside the base64 signature: still valid JSON and base64
    env[pos] = ord("A") if env[pos] != ord("A") else ord("B")
    _sql(filled_log, ("UPDATE entries SET envelope = ? WHERE idx = 13", (bytes(env),)))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "entry 13: envelope does not verify" in result.output
    assert "entry 13: the envelope does not match the leaf hash" in result.output


def test_one_byte_changed_with_leaf_hash_rewritten(filled_log: Path, trust_args: list[str]) -> None:
    env = _envelope(filled_log, 13).replace(b'"payload":"ey', b'"payload":"eX', 1)
    _sql(filled_log, ("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = 13", (env, leaf_hash(env))))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "entry 13: envelope does not verify" in result.output
    assert "first suspicious entry: 13" in result.output


def test_deleted_entry(filled_log: Path, trust_args: list[str]) -> None:
    _sql(filled_log, ("DELETE FROM entries WHERE idx = 20", ()))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "entries 20..20 are missing" in result.output


def test_deleted_entry_with_indices_renumbered(filled_log: Path, trust_args: list[str]) -> None:
    _sql(filled_log, ("DELETE FROM entries WHERE idx = 20", ()),
         ("UPDATE entries SET idx = idx - 1 WHERE idx > 20", ()))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "entry 20: key" in result.output and "record(s) 21 are missing (deleted" in result.output
    assert "signs 40 entries but the log holds 39" in result.output


def test_truncated_tail(filled_log: Path, trust_args: list[str]) -> None:
    _sql(filled_log, ("DELETE FROM entries WHERE idx >= 35", ()))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "signs 40 entries but the log holds 35; entries 35..39 were removed (truncated)" in result.output


def test_truncated_tail_and_checkpoints_caught_by_saved_checkpoint(filled_log: Path, trust_args: list[str],
                                                                    tmp_path: Path) -> None:
    saved = tmp_path / "witness.json"
    assert CliRunner().invoke(audit, ["checkpoint", str(filled_log), "--out", str(saved)]).exit_code == 0
    _sql(filled_log, ("DELETE FROM entries WHERE idx >= 32", ()), ("DELETE FROM checkpoints WHERE size > 32", ()))
    assert _verify(filled_log, trust_args).exit_code == 0  # nothing inside the log betrays it...
    result = _verify(filled_log, trust_args, "--checkpoint", str(saved))
    assert result.exit_code == 1  # ...but the witness copy does
    assert "saved checkpoint 1 (size 40): signs 40 entries but the log holds 32" in result.output


def test_swapped_entries(filled_log: Path, trust_args: list[str]) -> None:
    a, b = _envelope(filled_log, 5), _envelope(filled_log, 6)
    _sql(filled_log, ("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = 5", (b, leaf_hash(b))),
         ("UPDATE entries SET envelope = ?, leaf_hash = ? WHERE idx = 6", (a, leaf_hash(a))))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "an entry in 0..7 was modified, reordered, inserted or deleted (first suspicious entry: 5)" in result.output


def test_forged_insert_by_untrusted_key(filled_log: Path, trust_args: list[str]) -> None:
    forged = RecordSigner(endpoint="phone").envelope(sequence=10)
    _sql(filled_log, ("UPDATE entries SET idx = -idx - 1 WHERE idx >= 10", ()),
         ("UPDATE entries SET idx = -idx WHERE idx < 0", ()),
         ("INSERT INTO entries VALUES (10, ?, ?, 0)", (forged, leaf_hash(forged))))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "entry 10: signed by a key that is not trusted" in result.output
    assert "first suspicious entry: 10" in result.output


def test_forged_insert_by_trusted_key(filled_log: Path, trust_args: list[str], signer: RecordSigner) -> None:
    # An insider holding the signing key: the signature is fine, the sequence is a replay
    # and the checkpoints no longer match.
    forged = signer.envelope(sequence=12, outcome="allow")  # entry 11 holds sequence 12
    _sql(filled_log, ("UPDATE entries SET idx = -idx - 1 WHERE idx >= 12", ()),
         ("UPDATE entries SET idx = -idx WHERE idx < 0", ()),
         ("INSERT INTO entries VALUES (12, ?, ?, 0)", (forged, leaf_hash(forged))))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "entry 12: replays sequence 12" in result.output
    assert "first suspicious entry: 12" in result.output


def test_replaced_checkpoint(filled_log: Path, trust_args: list[str]) -> None:
    attacker = SigningKey.generate()
    tree = MerkleTree(leaf_hash(b"other") for _ in range(24))
    with SQLiteStore(filled_log) as store:
        origin = store.origin
    cp = sign_checkpoint(origin, 24, tree.root(), attacker)
    _sql(filled_log, ("UPDATE checkpoints SET root = ?, key_id = ?, envelope = ? WHERE size = 24",
                      (cp.root, cp.key_id, cp.envelope)))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "(size 24): does not verify with the trusted log keys; it was replaced or forged" in result.output


def test_checkpoint_row_edited(filled_log: Path, trust_args: list[str]) -> None:
    _sql(filled_log, ("UPDATE checkpoints SET root = ? WHERE size = 16", (b"\x00" * 32,)))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "(size 16): the stored size or root differs from what the checkpoint signs" in result.output


def test_fork_two_checkpoints_of_one_size(filled_log: Path, trust_args: list[str], log_key: SigningKey) -> None:
    # The log key itself equivocates: a second checkpoint of size 16 over different entries.
    with SQLiteStore(filled_log) as store:
        origin = store.origin
    other = sign_checkpoint(origin, 16, MerkleTree(leaf_hash(b"x%d" % i) for i in range(16)).root(), log_key)
    _sql(filled_log, ("INSERT INTO checkpoints VALUES (99, 16, ?, ?, ?, ?)",
                      (other.root, other.time, other.key_id, other.envelope)))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "fork:" in result.output and "both sign tree size 16 with different roots" in result.output


def test_fork_against_saved_checkpoint(filled_log: Path, trust_args: list[str], tmp_path: Path,
                                       signer: RecordSigner, log_key: SigningKey) -> None:
    # Two copies of one log grow apart; a checkpoint saved from one exposes the other.
    twin = tmp_path / "twin.db"
    shutil.copy(filled_log, twin)
    fork_signer = RecordSigner(signer.key, endpoint="phone", start=41)
    with SQLiteStore(twin, log_key=log_key, checkpoint_every=8) as store:
        for _ in range(8):
            store.record(fork_signer.envelope(conversation="twin"))
    with SQLiteStore(filled_log, log_key=log_key, checkpoint_every=8) as store:
        for _ in range(8):
            store.record(signer.envelope(conversation="main"))
    saved = tmp_path / "twin-checkpoint.json"
    assert CliRunner().invoke(audit, ["checkpoint", str(twin), "--out", str(saved)]).exit_code == 0
    result = _verify(filled_log, trust_args, "--checkpoint", str(saved))
    assert result.exit_code == 1
    assert "both sign tree size 48 with different roots" in result.output


def test_replayed_key_sequence(filled_log: Path, trust_args: list[str]) -> None:
    env = _envelope(filled_log, 7)
    _sql(filled_log, ("INSERT INTO entries VALUES (40, ?, ?, 0)", (env, leaf_hash(env))))
    result = _verify(filled_log, trust_args)
    assert result.exit_code == 1
    assert "entry 40: replays sequence 8 of key" in result.output
    assert "first recorded at entry 7" in result.output


def test_record_signed_by_untrusted_key(db_path: Path, trust_args: list[str], signer: RecordSigner,
                                        log_key: SigningKey) -> None:
    stranger = RecordSigner(endpoint="mallory")
    with SQLiteStore(db_path, log_key=log_key, checkpoint_every=4) as store:
        for i in range(10):
            store.record((stranger if i == 6 else signer).envelope())
    result = _verify(db_path, trust_args)
    assert result.exit_code == 1
    assert "entry 6: signed by a key that is not trusted" in result.output


def test_without_trust_options_warns_trust_on_first_use(filled_log: Path) -> None:
    result = CliRunner().invoke(audit, ["verify", str(filled_log)])
    assert result.exit_code == 0, result.output
    assert "trust on first use" in result.output
