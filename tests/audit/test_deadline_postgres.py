"""The PostgreSQL store keeps the gate's deadline while another session holds the sequencer's lock.

Against a real server (the cluster fixture of tests/integration/test_audit_postgres.py).
"""

from __future__ import annotations

import time

import pytest
from audit_recordkit import RecordSigner, keyring
from deadlines import start
from test_audit_postgres import fresh_url, pg_url  # noqa: F401 - fixtures

from trustlayer.audit.postgres_store import _LOCK_KEY
from trustlayer.audit.store import open_store
from trustlayer.audit.verify import verify_log
from trustlayer.errors import DeadlineExceeded
from trustlayer.provenance.keys import SigningKey

pytestmark = pytest.mark.postgres


def test_record_gives_up_by_its_deadline_while_another_session_holds_the_sequencer(fresh_url: str) -> None:  # noqa: F811
    import psycopg

    signer, log_key = RecordSigner(endpoint="phone"), SigningKey.generate()
    ring = keyring(signer)
    ring.add(log_key.public, owner="log")
    first, late, after = signer.envelope(), signer.envelope(), signer.envelope()
    with open_store(fresh_url, log_key=log_key) as store:
        assert type(store).keeps_deadline is True
        assert store.record(first) == 0
        with psycopg.connect(fresh_url, autocommit=True) as holder:
            holder.execute("BEGIN")
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            call = start(lambda: store.record(late), seconds=0.3)
            assert call.join().finished, "record did not return by its deadline"
            assert isinstance(call.raised, DeadlineExceeded)
            assert "gave up waiting for the write lock of audit store" in str(call.raised)
            # without a deadline: waits for the lock, and succeeds once it is released
            waiting = start(lambda: store.record(after), seconds=None)
            assert not waiting.join(0.6).finished
            holder.execute("ROLLBACK")
        assert waiting.join().finished and waiting.raised is None
        (index,) = waiting.value
        assert isinstance(index, int)
        # the writer connection was left usable (no aborted transaction behind the timed-out lock wait)
        assert store.record(signer.envelope()) == 2
    with open_store(fresh_url) as reader:
        stored = [e.envelope for e in reader.entries()]
        assert stored[0] == first and stored[index] == after
        # the late caller was told it timed out, while its entry was still queued: the writer dropped it
        assert len(set(stored)) == len(stored) == 3 and late not in stored
        report = verify_log(reader, record_keys=ring, log_keys=ring)
        assert report.ok, report.problems


def test_a_deadline_bounds_the_batch_statements_not_only_the_lock(fresh_url: str) -> None:  # noqa: F811
    import psycopg

    log_key = SigningKey.generate()
    signer = RecordSigner(endpoint="phone")
    with open_store(fresh_url, log_key=log_key) as store:
        store.record(signer.envelope())
        # Another session locks the entries table: the batch gets the sequencer but its SELECT waits.
        with psycopg.connect(fresh_url, autocommit=True) as holder:
            holder.execute("BEGIN")
            holder.execute("LOCK TABLE entries IN ACCESS EXCLUSIVE MODE")
            t0 = time.monotonic()
            call = start(lambda: store.record(signer.envelope()), seconds=0.3)
            assert call.join().finished, "record did not return by its deadline"
            assert isinstance(call.raised, DeadlineExceeded), call.raised
            assert "gave up writing to audit store" in str(call.raised)
            assert time.monotonic() - t0 < 10
            holder.execute("ROLLBACK")
        assert store.record(signer.envelope()) >= 1
