"""Many writers, one SQLite file: 8 threads and 2 processes append 10,000 entries each.

The eight threads share one signing key, so sequence numbers reach the log out of
order (sign, then append); the verifier must accept that. Afterwards the log verifies,
every acknowledged entry is at the index it was given, and no envelope appears twice.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "audit"))

from audit_recordkit import RecordSigner, keyring  # noqa: E402
from concurrency import run_in_threads

from trustlayer.audit.sqlite_store import SQLiteStore  # noqa: E402
from trustlayer.audit.verify import verify_log  # noqa: E402
from trustlayer.provenance.keys import SigningKey  # noqa: E402


def _load(pem: bytes) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem, None)
    assert isinstance(key, Ed25519PrivateKey)
    return SigningKey(key)


def _process_writer(db: str, log_pem: bytes, signer_pem: bytes, endpoint: str, n: int, out: str) -> None:
    signer = RecordSigner(_load(signer_pem), endpoint=endpoint)
    acks = []
    with SQLiteStore(db, log_key=_load(log_pem), checkpoint_every=1000) as store:
        for _ in range(n):
            env = signer.envelope(conversation=endpoint)
            acks.append(f"{store.record(env)} {hashlib.sha256(env).hexdigest()}")
    Path(out).write_text("\n".join(acks))


def _run(tmp_path: Path, per_writer: int) -> None:
    db = tmp_path / "audit.db"
    log_key = SigningKey.generate()
    shared = RecordSigner(endpoint="gateway")
    devices = [RecordSigner(endpoint=f"device-{i}") for i in range(2)]
    ring = keyring(shared, *devices)
    ring.add(log_key.public, owner="log")
    SQLiteStore(db, log_key=log_key).close()

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(str(db), log_key.to_pem(), d.key.to_pem(), d.endpoint,
                                                       per_writer, str(tmp_path / f"acks-{i}.txt")))
             for i, d in enumerate(devices)]
    for p in procs:
        p.start()
    acked: dict[int, str] = {}
    lock = threading.Lock()
    with SQLiteStore(db, log_key=log_key, checkpoint_every=1000) as store:
        def write() -> None:
            for _ in range(per_writer):
                env = shared.envelope(conversation="threads")
                index = store.record(env)
                with lock:
                    assert index not in acked
                    acked[index] = hashlib.sha256(env).hexdigest()

        run_in_threads([write] * 8)
    for i, p in enumerate(procs):
        p.join(timeout=600)
        assert p.exitcode == 0
        for line in (tmp_path / f"acks-{i}.txt").read_text().splitlines():
            index, digest = line.split()
            assert int(index) not in acked, f"index {index} acknowledged twice"
            acked[int(index)] = digest

    total = 10 * per_writer
    with SQLiteStore(db) as store:
        entries = {e.index: hashlib.sha256(e.envelope).hexdigest() for e in store.entries()}
        report = verify_log(store, record_keys=ring, log_keys=ring)
    assert report.ok, report.problems[:5]
    assert sorted(entries) == list(range(total))  # nothing lost, no holes
    assert len(set(entries.values())) == total  # nothing doubled
    assert acked == entries  # every acknowledgement names the entry's real index
    assert report.checkpoints >= total // 1000


@pytest.mark.slow
def test_eight_threads_and_two_processes_10000_each(tmp_path: Path) -> None:
    _run(tmp_path, 10_000)


def test_eight_threads_and_two_processes_small(tmp_path: Path) -> None:
    _run(tmp_path, 100)
