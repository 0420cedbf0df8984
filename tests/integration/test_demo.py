"""`trustlayer demo` from the command line: every check holds, and its log verifies with the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_holds_and_its_log_verifies(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    out = subprocess.run([sys.executable, "-m", "trustlayer", "demo", "--dir", str(ws), "--max-tokens", "16"],
                         capture_output=True, text=True, timeout=900, env={"COLUMNS": "200", **_env()})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "checks held" in out.stdout and "FAILED" not in out.stdout
    trust = [a for p in sorted((ws / "keys").glob("*/*.pub")) for a in ("--trust", str(p))]
    verify = subprocess.run([sys.executable, "-m", "trustlayer", "audit", "verify", str(ws / "audit.db"), *trust],
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Tamper with one byte of the log: the CLI must notice.
    import sqlite3

    db = sqlite3.connect(ws / "audit.db")
    table, column = _envelope_column(db)
    rowid, blob = db.execute(f"SELECT rowid, {column} FROM {table} ORDER BY rowid LIMIT 1 OFFSET 2").fetchone()
    data = bytearray(blob if isinstance(blob, bytes) else blob.encode())
    data[len(data) // 2] ^= 1
    db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (bytes(data), rowid))
    db.commit()
    db.close()
    tampered = subprocess.run([sys.executable, "-m", "trustlayer", "audit", "verify", str(ws / "audit.db"), *trust],
                              capture_output=True, text=True, timeout=300)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr


def _envelope_column(db: object) -> tuple[str, str]:
    import sqlite3

    assert isinstance(db, sqlite3.Connection)
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        if "envelope" in cols:
            return table, "envelope"
    raise AssertionError("no table with an envelope column")


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
