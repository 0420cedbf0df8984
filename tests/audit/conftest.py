from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Import mode is importlib: make the audit test helpers importable by name (also for child processes).
sys.path.insert(0, str(Path(__file__).parent))

from audit_recordkit import RecordSigner, keyring  # noqa: E402

from trustlayer.audit.sqlite_store import SQLiteStore  # noqa: E402
from trustlayer.provenance.keys import Keyring, SigningKey  # noqa: E402


@pytest.fixture
def signer() -> RecordSigner:
    return RecordSigner(endpoint="phone")


@pytest.fixture
def log_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def trusted(signer: RecordSigner, log_key: SigningKey) -> Keyring:
    ring = keyring(signer)
    ring.add(log_key.public, owner="log")
    return ring


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def filled_log(db_path: Path, signer: RecordSigner, log_key: SigningKey, trusted: Keyring) -> Path:
    """A closed log of 40 entries with checkpoints every 8 entries (sizes 8, 16, ..., 40)."""
    with SQLiteStore(db_path, log_key=log_key, keyring=trusted, checkpoint_every=8) as store:
        for i in range(40):
            store.record(signer.envelope(conversation=f"conv-{i % 3}", entity_counts={"EMAIL_ADDRESS": 1}))
    return db_path
