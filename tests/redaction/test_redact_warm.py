"""``Redactor.warm`` loads, before the first message, what detection would load on it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_warm_loads_the_ner_model_and_the_suffix_table_in_a_fresh_process(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from trustlayer.redaction import Redactor, Vault, _offline, nlp
        vault = Vault.open({str(tmp_path / "vault.db")!r}, bytes(range(32)))
        redactor = Redactor(vault, ner=True)
        assert nlp._engine is None, "loaded before warm()"
        redactor.warm()
        assert nlp._engine is not None, "warm() did not load the NER model"
        assert _offline.extractor()._extractor is not None, "warm() did not build the public-suffix table"
        stored = vault._db.execute("SELECT count(*) FROM entries").fetchone()[0]
        assert stored == 0, "warm() stored values in the vault"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
