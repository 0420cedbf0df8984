"""Shared fixtures for the redaction tests: real vaults (SQLite files) and real redactors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trustlayer.redaction import Redactor, Vault

KEY = bytes(range(32))


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    v = Vault.open(tmp_path / "vault.db", KEY)
    yield v
    v.close()


@pytest.fixture
def fast(vault: Vault) -> Redactor:
    """A redactor that never loads spaCy."""
    return Redactor(vault, ner=False)


@pytest.fixture(scope="session")
def _session_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    v = Vault.open(tmp_path_factory.mktemp("vault") / "vault.db", KEY)
    yield v
    v.close()


@pytest.fixture(scope="session")
def full(_session_vault: Vault) -> Redactor:
    """A redactor with spaCy NER (the model loads once per test session)."""
    return Redactor(_session_vault, ner=True)
