"""The review CLI: verify (trust sources, exit codes), show, tail, search, prove, consistency, export, graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from audit_recordkit import RecordSigner
from click.testing import CliRunner, Result

from trustlayer.audit.cli import audit
from trustlayer.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from trustlayer.audit.sqlite_store import SQLiteStore
from trustlayer.provenance.keys import SigningKey


def _run(*args: str) -> Result:
    return CliRunner().invoke(audit, list(args))


@pytest.fixture
def trust(tmp_path: Path, signer: RecordSigner, log_key: SigningKey) -> list[str]:
    signer.key.public.save(tmp_path / "phone.pub")
    log_key.public.save(tmp_path / "log.pub")
    return ["--trust", str(tmp_path / "phone.pub"), "--trust", str(tmp_path / "log.pub")]


@pytest.fixture
def conversation_log(db_path: Path, signer: RecordSigner, log_key: SigningKey) -> Path:
    """conv-x: request (0) -> answer (1) -> follow-up (2) -> answer (3); conv-y: a block (4)."""
    cloud = RecordSigner(endpoint="cloud")
    with SQLiteStore(db_path, log_key=log_key, checkpoint_every=2) as store:
        parent: tuple[str, ...] = ()
        for i in range(4):
            outbound = i % 2 == 0
            s = signer if outbound else cloud
            env = (s.envelope(conversation="conv-x", direction="outbound", recipient="cloud", outcome="transform",
                              rule_ids=("eu-only",), entity_counts={"EMAIL_ADDRESS": 1}, parents=parent)
                   if outbound else s.envelope(conversation="conv-x", direction="inbound", recipient="phone",
                                               parents=parent))
            store.record(env)
            import hashlib

            parent = (hashlib.sha256(env).hexdigest(),)
        store.record(signer.envelope(conversation="conv-y", direction="block"))
        store.record_agreement("cloud", "agree")
    cloud.key.public.save(db_path.parent / "cloud.pub")
    return db_path


def test_verify_exit_codes(filled_log: Path, trust: list[str], tmp_path: Path) -> None:
    assert _run("verify", str(filled_log), *trust).exit_code == 0
    missing = _run("verify", str(tmp_path / "missing.db"), *trust)
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert _run("verify").exit_code == 2  # no DB argument
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    result = _run("verify", str(text), *trust)
    assert result.exit_code == 2 and "is not a SQLite database" in result.output
    bad = tmp_path / "bad-checkpoint.json"
    bad.write_text("not json")
    result = _run("verify", str(filled_log), *trust, "--checkpoint", str(bad))
    assert result.exit_code == 2 and "does not hold a checkpoint envelope" in result.output


def test_verify_json_report(filled_log: Path, trust: list[str]) -> None:
    result = _run("verify", str(filled_log), *trust, "--json")
    report = json.loads(result.output)
    assert report["ok"] is True and report["size"] == 40 and report["checkpoints"] == 5


def test_verify_with_config_trusts_identity_and_peers(tmp_path: Path) -> None:
    me = SigningKey.generate()
    me.save(tmp_path / "phone.key")
    me.public.save(tmp_path / "phone.key.pub")
    peer = RecordSigner(endpoint="agent-b")
    config = tmp_path / "trustlayer.yaml"
    config.write_text(f"""version: 1
identity: {{id: phone, key: phone.key}}
endpoints:
  - {{id: phone, kind: device, jurisdiction: DE}}
  - {{id: agent-b, kind: agent, jurisdiction: DE}}
peers:
  - {{id: agent-b, public_key: {peer.key.public.to_base64()}}}
""")
    db = tmp_path / "audit.db"
    mine = RecordSigner(me, endpoint="phone")
    with SQLiteStore(db, log_key=me) as store:  # the identity key is the log key by default
        store.record(mine.envelope())
        store.record(peer.envelope())
    result = _run("verify", str(db), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "trust on first use" not in result.output
    # A log whose checkpoints were signed by another key fails against this config.
    other = tmp_path / "other.db"
    with SQLiteStore(other, log_key=SigningKey.generate()) as store:
        store.record(mine.envelope())
    result = _run("verify", str(other), "--config", str(config))
    assert result.exit_code == 1 and "does not verify with the trusted log keys" in result.output


_ROOT_CLI = [sys.executable, "-c", "import sys; from trustlayer.cli import main; sys.exit(main())"]


def test_root_cli_runs_audit_verify_in_a_subprocess(filled_log: Path, trust: list[str]) -> None:
    ok = subprocess.run([*_ROOT_CLI, "audit", "verify", str(filled_log), *trust],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "intact: 40 entries" in ok.stdout
    import sqlite3

    conn = sqlite3.connect(filled_log)
    conn.execute("DELETE FROM entries WHERE idx = 3")
    conn.commit()
    conn.close()
    bad = subprocess.run([*_ROOT_CLI, "audit", "verify", str(filled_log), *trust],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "entries 3..3 are missing" in bad.stdout
    assert "Traceback" not in bad.stderr


def test_show_and_tail(conversation_log: Path, trust: list[str]) -> None:
    trust_all = [*trust, "--trust", str(conversation_log.parent / "cloud.pub")]
    shown = _run("show", str(conversation_log), "0", *trust_all)
    assert shown.exit_code == 0, shown.output
    assert "sequence 1" in shown.output and '"conversation_id": "conv-x"' in shown.output
    unverified = _run("show", str(conversation_log), "1", *trust)  # the cloud key is not trusted here
    assert unverified.exit_code == 1 and "UNVERIFIED" in unverified.output
    tail = _run("tail", str(conversation_log), "-n", "2", *trust_all)
    assert tail.exit_code == 0 and "last 2 of 5 entries" in tail.output and "conv-y" in tail.output


def test_search(conversation_log: Path, trust: list[str]) -> None:
    trust_all = [*trust, "--trust", str(conversation_log.parent / "cloud.pub")]
    result = _run("search", str(conversation_log), "--entity", "EMAIL_ADDRESS", *trust_all)
    assert result.exit_code == 0 and "2 matching entries" in result.output and "eu-only" in result.output
    result = _run("search", str(conversation_log), "--decision", "block", *trust_all)
    assert "1 matching entries" in result.output and "conv-y" in result.output
    result = _run("search", str(conversation_log), "--since", "yesterday", *trust_all)
    assert result.exit_code == 2 and "neither unix seconds nor an ISO 8601 time" in result.output


def test_prove_and_consistency(conversation_log: Path, trust: list[str]) -> None:
    result = _run("prove", str(conversation_log), "2", *trust)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output.split("\nentry ")[0])
    assert doc["tree_size"] == 4 and doc["signed_root"] is True
    with SQLiteStore(conversation_log) as store:
        env = store.entry(2).envelope
    verify_inclusion(2, 4, leaf_hash(env), [bytes.fromhex(h) for h in doc["proof"]], bytes.fromhex(doc["root"]))

    result = _run("consistency", str(conversation_log), "2", "5", *trust)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output.split("\ntree size")[0])
    verify_consistency(2, 5, bytes.fromhex(doc["old_root"]), bytes.fromhex(doc["new_root"]),
                       [bytes.fromhex(h) for h in doc["proof"]])
    assert _run("consistency", str(conversation_log), "5", "2", *trust).exit_code == 2
    assert _run("prove", str(conversation_log), "9", *trust).exit_code == 2


def test_export_jsonl(conversation_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "log.jsonl"
    assert _run("export", str(conversation_log), "--out", str(out)).exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    entries = [line for line in lines if line["type"] == "entry"]
    assert [e["index"] for e in entries] == [0, 1, 2, 3, 4]
    with SQLiteStore(conversation_log) as store:
        assert all(store.entry(e["index"]).envelope == e["envelope"].encode() for e in entries)
    assert [c["size"] for c in lines if c["type"] == "checkpoint"] == [2, 4, 5]
    stdout = _run("export", str(conversation_log))
    assert stdout.output.count('"type": "entry"') == 5
    import sqlite3

    conn = sqlite3.connect(conversation_log)
    conn.execute("UPDATE entries SET envelope = ? WHERE idx = 1", (b"\xff\xfe not ascii",))
    conn.commit()
    conn.close()
    damaged = _run("export", str(conversation_log))
    assert damaged.exit_code == 0 and '"envelope_base64": "//4gbm90IGFzY2lp"' in damaged.output


def test_graph(conversation_log: Path, trust: list[str]) -> None:
    trust_all = [*trust, "--trust", str(conversation_log.parent / "cloud.pub")]
    result = _run("graph", str(conversation_log), "conv-x", *trust_all)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "#" in line]
    # Each hop hangs under its parent: the tree deepens by one level per record.
    indents = [len(line) - len(line.lstrip(" │└├─")) for line in lines]
    assert [line.split("#")[1].split()[0] for line in lines] == ["0", "1", "2", "3"]
    assert indents == sorted(indents) and len(set(indents)) == 4
    missing = _run("graph", str(conversation_log), "conv-none", *trust_all)
    assert missing.exit_code == 2 and "no verified records of conversation 'conv-none'" in missing.output


def test_reputation(conversation_log: Path) -> None:
    result = _run("reputation", str(conversation_log))
    assert result.exit_code == 0 and "cloud" in result.output and "0.0%" in result.output
    assert "FLAGGED" not in result.output
    with SQLiteStore(conversation_log, log_key=SigningKey.generate()) as store:
        for outcome in ("dissent", "dissent", "agree", "agree", "dissent"):
            store.record_agreement("flaky", outcome)
    result = _run("reputation", str(conversation_log), "--dissent-threshold", "0.5")
    assert result.exit_code == 0 and "FLAGGED" in result.output
    assert "flagged (dissent rate >= 0.50 over >= 5 votes): flaky" in result.output
    assert "FLAGGED" not in _run("reputation", str(conversation_log), "--dissent-threshold", "0.7").output


def test_store_from_config_records_what_verify_with_the_same_config_accepts(tmp_path: Path) -> None:
    from trustlayer.audit.from_config import store_from_config
    from trustlayer.config import load_config

    me = SigningKey.generate()
    me.save(tmp_path / "id.key")
    config = tmp_path / "trustlayer.yaml"
    config.write_text("""version: 1
identity: {id: phone, key: id.key}
endpoints:
  - {id: phone, kind: device, jurisdiction: DE}
audit: {store: "sqlite:///logs/audit.db", checkpoint_every: 2}
""")
    signer = RecordSigner(me, endpoint="phone")
    with store_from_config(load_config(config)) as store:
        for _ in range(3):
            store.record(signer.envelope())
    db = tmp_path / "logs" / "audit.db"  # relative to the config file
    result = _run("verify", str(db), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "intact: 3 entries" in result.output and "2 valid checkpoint(s)" in result.output
    assert _run("verify", str(db)).exit_code == 0  # the config's keys were registered: TOFU also works


def test_verify_with_config_uses_a_separate_log_key(tmp_path: Path) -> None:
    me, log = SigningKey.generate(), SigningKey.generate()
    me.save(tmp_path / "id.key")
    log.save(tmp_path / "log.key")
    log.public.save(tmp_path / "log.key.pub")
    config = tmp_path / "trustlayer.yaml"
    config.write_text("""version: 1
identity: {id: phone, key: id.key}
endpoints:
  - {id: phone, kind: device, jurisdiction: DE}
audit: {log_key: log.key}
""")
    db = tmp_path / "audit.db"
    with SQLiteStore(db, log_key=log) as store:
        store.record(RecordSigner(me, endpoint="phone").envelope())
    result = _run("verify", str(db), "--config", str(config))
    assert result.exit_code == 0, result.output
    # Checkpoints signed by the identity key instead are not accepted as the log's.
    other = tmp_path / "other.db"
    with SQLiteStore(other, log_key=me) as store:
        store.record(RecordSigner(me, endpoint="phone").envelope())
    result = _run("verify", str(other), "--config", str(config))
    assert result.exit_code == 1 and "does not verify with the trusted log keys" in result.output
