"""The PostgreSQL audit store against a real server started on 127.0.0.1 in a temp dir."""

from __future__ import annotations

import multiprocessing as mp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "audit"))

from audit_recordkit import RecordSigner, keyring  # noqa: E402
from concurrency import run_in_threads

from trustlayer.audit.merkle import leaf_hash, verify_consistency, verify_inclusion  # noqa: E402
from trustlayer.audit.store import open_store  # noqa: E402
from trustlayer.audit.verify import verify_log  # noqa: E402
from trustlayer.provenance.keys import SigningKey  # noqa: E402

pytestmark = pytest.mark.postgres

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> list[str]:
    # initdb and pg_ctl refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (install the postgresql-15 package)")
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb/pg_ctl as")
    base = Path(tempfile.mkdtemp(prefix="trustlayer-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                "-E", "UTF8"), check=True, capture_output=True)
    subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                                f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=on", "start"),
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh_url(pg_url: str) -> str:
    import psycopg

    name = f"audit_{os.urandom(4).hex()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_url.rsplit("/", 1)[0] + "/" + name


def test_append_prove_verify(fresh_url: str) -> None:
    signer, log_key = RecordSigner(endpoint="phone"), SigningKey.generate()
    ring = keyring(signer)
    ring.add(log_key.public, owner="log")
    with open_store(fresh_url, log_key=log_key, keyring=ring, checkpoint_every=10) as store:
        indices = [store.record(signer.envelope(conversation=f"c{i % 4}")) for i in range(35)]
        assert indices == list(range(35))
        root = store.root()
        proof = store.inclusion_proof(17)
        verify_inclusion(17, 35, leaf_hash(store.entry(17).envelope), proof, root)
        verify_consistency(10, 35, store.root(10), root, store.consistency_proof(10, 35))
        store.record_agreement("cloud-a", "agree")
        store.record_agreement("cloud-a", "dissent")
        assert store.refresh_index() == 35
        assert [e.index for e in store.search(conversation="c1")] == [33, 29, 25, 21, 17, 13, 9, 5, 1]
    with open_store(fresh_url) as reader:
        report = verify_log(reader, record_keys=ring, log_keys=ring)
        assert report.ok, report.problems
        assert report.size == 35 and report.checkpoints == 4  # sizes 10, 20, 30 and 35 on close
        (rep,) = reader.reputation()
        assert (rep.endpoint, rep.agreements, rep.dissents) == ("cloud-a", 1, 1)


def test_cli_verifies_a_postgres_log_and_finds_tampering(fresh_url: str, tmp_path: Path) -> None:
    import psycopg
    from click.testing import CliRunner

    from trustlayer.audit.cli import audit

    signer, log_key = RecordSigner(endpoint="phone"), SigningKey.generate()
    with open_store(fresh_url, log_key=log_key, checkpoint_every=5) as store:
        for _ in range(12):
            store.record(signer.envelope())
    signer.key.public.save(tmp_path / "phone.pub")
    log_key.public.save(tmp_path / "log.pub")
    trust = ["--trust", str(tmp_path / "phone.pub"), "--trust", str(tmp_path / "log.pub")]
    ok = CliRunner().invoke(audit, ["verify", fresh_url, *trust])
    assert ok.exit_code == 0 and "intact: 12 entries" in ok.output, ok.output
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("DELETE FROM entries WHERE idx = 7")
    bad = CliRunner().invoke(audit, ["verify", fresh_url, *trust])
    assert bad.exit_code == 1 and "entries 7..7 are missing" in bad.output


def _load(pem: bytes) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem, None)
    assert isinstance(key, Ed25519PrivateKey)
    return SigningKey(key)


def _fleet_writer(url: str, log_pem: bytes, device_pem: bytes, n: int, endpoint: str) -> None:
    signer = RecordSigner(_load(device_pem), endpoint=endpoint)
    with open_store(url, log_key=_load(log_pem), checkpoint_every=50) as store:
        for _ in range(n):
            store.record(signer.envelope())


def test_fleet_of_writers_gets_one_gap_free_sequence(fresh_url: str) -> None:
    # Two processes (two devices) and four threads of a third writer append to one log.
    log_key = SigningKey.generate()
    open_store(fresh_url, log_key=log_key).close()  # create the schema once
    ctx = mp.get_context("spawn")
    devices = [RecordSigner(endpoint=f"device-{i}") for i in range(2)]
    procs = [ctx.Process(target=_fleet_writer, args=(fresh_url, log_key.to_pem(), d.key.to_pem(), 150, d.endpoint))
             for d in devices]
    for p in procs:
        p.start()
    signers = [RecordSigner(endpoint=f"agent-{i}") for i in range(4)]
    with open_store(fresh_url, log_key=log_key, checkpoint_every=50) as store:
        run_in_threads((lambda s=s: [store.record(s.envelope()) for _ in range(100)]) for s in signers)
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with open_store(fresh_url) as reader:
        entries = list(reader.entries())
        assert [e.index for e in entries] == list(range(700))
        assert len({e.envelope for e in entries}) == 700
        ring = keyring(*signers, *devices)
        ring.add(log_key.public, owner="log")
        report = verify_log(reader, record_keys=ring, log_keys=ring)
        assert report.ok, report.problems[:3]
        assert report.checkpoints >= 14
