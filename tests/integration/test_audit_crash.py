"""Crash safety: a writer process killed with SIGKILL at random points during appends, 50 times.

After every kill the log verifies and every entry whose ``record`` had returned is there,
at the index it was given, with the exact bytes. The writer is forked from this process
(modules already imported), so a cycle costs milliseconds rather than an interpreter start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing as mp
import os
import random
import signal
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "audit"))

from audit_recordkit import RecordSigner, keyring  # noqa: E402

from trustlayer.audit.sqlite_store import SQLiteStore  # noqa: E402
from trustlayer.audit.verify import verify_log  # noqa: E402
from trustlayer.provenance.keys import SigningKey  # noqa: E402

CYCLES = 50


def _writer(db: Path, acks: Path, log_pem: bytes, signer_pems: list[bytes], starts: list[int], ready: object) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    def load(pem: bytes) -> SigningKey:
        key = load_pem_private_key(pem, None)
        assert isinstance(key, Ed25519PrivateKey)
        return SigningKey(key)

    # One key per thread: each thread signs its next record only after the previous one was
    # acknowledged, so a kill leaves at most the last, unacknowledged sequence of each key unused.
    signers = [RecordSigner(load(pem), endpoint=f"phone-{i}", start=s)
               for i, (pem, s) in enumerate(zip(signer_pems, starts, strict=True))]
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    store = SQLiteStore(db, log_key=load(log_pem), checkpoint_every=16, max_batch=64)

    def append(signer: RecordSigner) -> None:
        while True:
            env = signer.envelope()
            index = store.record(env)
            # One write(2) per acknowledgement: it either happened before the kill or not at all.
            os.write(fd, f"{index} {hashlib.sha256(env).hexdigest()}\n".encode())

    threads = [threading.Thread(target=append, args=(s,), daemon=True) for s in signers]
    for t in threads:
        t.start()
    ready.set()  # type: ignore[attr-defined]
    for t in threads:
        t.join()


def _acked(acks: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    for line in acks.read_text().splitlines():
        index, digest = line.split()
        out[int(index)] = digest
    return out


@pytest.mark.parametrize("cycles", [pytest.param(CYCLES, marks=pytest.mark.slow), 6])
def test_sigkill_during_appends_loses_no_acknowledged_entry(tmp_path: Path, cycles: int) -> None:
    db, acks = tmp_path / "audit.db", tmp_path / "acks.txt"
    log_key = SigningKey.generate()
    signers = [RecordSigner(endpoint=f"phone-{i}") for i in range(3)]
    pems = [s.key.to_pem() for s in signers]
    ring = keyring(*signers)
    ring.add(log_key.public, owner="log")
    ctx = mp.get_context("fork")
    rng = random.Random(5)
    starts = [0, 0, 0]
    grew = 0
    for cycle in range(cycles):
        before = len(_acked(acks)) if acks.exists() else 0
        ready = ctx.Event()
        proc = ctx.Process(target=_writer, args=(db, acks, log_key.to_pem(), pems, starts, ready))
        proc.start()
        assert ready.wait(30), f"cycle {cycle}: writer did not start"
        threading.Event().wait(rng.uniform(0.002, 0.04))
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL

        with SQLiteStore(db) as store:
            report = verify_log(store, record_keys=ring, log_keys=ring)
            entries = {e.index: e.envelope for e in store.entries()}
        assert report.ok, (cycle, report.problems[:3])
        acked = _acked(acks)
        lost = {i for i, digest in acked.items() if hashlib.sha256(entries.get(i, b"")).hexdigest() != digest}
        assert not lost, f"cycle {cycle}: acknowledged entries lost or changed: {sorted(lost)[:5]}"
        grew += len(acked) > before
        # Like a real signer after a restart, continue after the last sequence in the log.
        starts = [_next_sequence(entries.values(), s) for s in signers]
    # The kills really landed while appends were going on, not before or after them.
    assert grew >= cycles // 2, f"only {grew} of {cycles} cycles acknowledged an append before the kill"
    assert len(entries) >= len(acked)


def _next_sequence(envelopes: Iterable[bytes], signer: RecordSigner) -> int:
    # The log verified just before, so reading the payloads without checking again is fine here.
    seqs = [p["predicate"]["sequence"] for p in map(_payload, envelopes)
            if p["predicate"]["key_id"] == signer.key.key_id]
    return max(seqs, default=-1) + 1


def _payload(envelope: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    return doc
