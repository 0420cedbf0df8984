from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from concurrency import run_in_threads

from trustlayer.errors import RedactionError
from trustlayer.redaction import Vault
from trustlayer.redaction.vault import load_or_create_key

KEY = bytes(range(32))


def test_same_value_same_placeholder_and_types_and_conversations_differ(vault: Vault) -> None:
    p = vault.pseudonym("c1", "PERSON", "Ada Lovelace")
    assert p == vault.pseudonym("c1", "PERSON", "Ada Lovelace")
    assert p.startswith("<PERSON_") and p.endswith(">")
    assert vault.pseudonym("c1", "PERSON", "Ada Byron") != p
    assert vault.pseudonym("c2", "PERSON", "Ada Lovelace") != p
    assert vault.pseudonym("c1", "LOCATION", "Ada Lovelace") != p
    assert vault.lookup("c1", p) == "Ada Lovelace"
    assert vault.lookup("c2", p) is None


def test_many_values_never_share_a_placeholder(vault: Vault) -> None:
    # Many values against a 24-bit tag: a collision would be resolved, never shared.
    seen = {vault.pseudonym("c", "PERSON", f"name {i}") for i in range(1000)}
    assert len(seen) == 1000


def test_placeholder_reveals_nothing_without_the_key(tmp_path: Path) -> None:
    a = Vault.open(tmp_path / "a.db", KEY)
    b = Vault.open(tmp_path / "b.db", bytes(32))
    assert a.pseudonym("c", "PERSON", "Ada") != b.pseudonym("c", "PERSON", "Ada")


def test_values_are_encrypted_at_rest(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    v = Vault.open(path, KEY)
    v.pseudonym("conversation-42", "EMAIL_ADDRESS", "ada.lovelace@example.org")
    v.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("v.db"))
    assert b"ada.lovelace" not in raw and b"conversation-42" not in raw


def test_tampered_row_fails_authentication(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    v = Vault.open(path, KEY)
    p = v.pseudonym("c", "PERSON", "Ada")
    v.close()
    db = sqlite3.connect(path)
    sealed = db.execute("SELECT sealed FROM entries").fetchone()[0]
    db.execute("UPDATE entries SET sealed=?", (sealed[:-1] + bytes([sealed[-1] ^ 1]),))
    db.commit()
    db.close()
    with pytest.raises(RedactionError, match="failed authentication"):
        Vault.open(path, KEY).lookup("c", p)


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    Vault.open(tmp_path / "v.db", KEY).close()
    with pytest.raises(RedactionError, match="different key"):
        Vault.open(tmp_path / "v.db", bytes(32))


@pytest.mark.parametrize("key", [b"short", bytes(31), "x" * 32])
def test_bad_key_is_refused(tmp_path: Path, key: object) -> None:
    with pytest.raises(RedactionError, match="32 bytes"):
        Vault.open(tmp_path / "v.db", key)  # type: ignore[arg-type]


def test_erase_forgets_a_conversation(vault: Vault) -> None:
    p = vault.pseudonym("c1", "PERSON", "Ada")
    q = vault.pseudonym("c2", "PERSON", "Ada")
    assert vault.erase("c1") == 1
    assert vault.lookup("c1", p) is None
    assert vault.lookup("c2", q) == "Ada"


def test_ttl_expires_mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v = Vault.open(tmp_path / "v.db", KEY, ttl_seconds=60)
    p = v.pseudonym("c", "PERSON", "Ada")
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)
    assert v.lookup("c", p) is None
    assert v.purge() == 1


def test_threads_agree_on_placeholders(vault: Vault) -> None:
    results: list[str] = []

    def work() -> None:
        for i in range(50):
            results.append(vault.pseudonym("c", "PERSON", f"n{i % 10}"))

    run_in_threads([work] * 8)
    assert len(set(results)) == 10


def _worker(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    v = Vault.open(path, KEY)
    out.put([v.pseudonym("shared", "EMAIL_ADDRESS", f"user{i}@example.org") for i in range(40)])
    v.close()


def test_processes_agree_on_placeholders(tmp_path: Path) -> None:
    path = str(tmp_path / "v.db")
    Vault.open(path, KEY).close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, out)) for _ in range(3)]
    for p in procs:
        p.start()
    lists = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert lists[0] == lists[1] == lists[2]
    assert len(set(lists[0])) == 40


def test_lone_surrogates_round_trip(vault: Vault) -> None:
    value = "Ad\ud800a"
    assert vault.lookup("c", vault.pseudonym("c", "PERSON", value)) == value


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "vault.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_bad_key_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    path.write_text("not base64 !!")
    with pytest.raises(RedactionError, match="vault.key.*not a base64 key"):
        load_or_create_key(path)
    path.write_text("AAAA")
    with pytest.raises(RedactionError, match="holds 3 bytes; expected 32"):
        load_or_create_key(path)


def test_unwritable_location_is_a_redaction_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RedactionError, match="could not be opened"):
        Vault.open(blocker / "v.db", KEY)


def test_forced_tag_collisions_get_distinct_placeholders(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    from trustlayer.redaction import placeholders

    monkeypatch.setattr(placeholders, "TAG_LENGTH", 1)  # 16 possible tags: collisions are certain
    made = [vault.pseudonym("c", "PERSON", f"person {i}") for i in range(16)]
    assert len(set(made)) == 16
    assert [vault.lookup("c", p) for p in made] == [f"person {i}" for i in range(16)]
