"""The known-bad logs in tests/assets/audit/logs: `audit verify` names what is wrong and where."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustlayer.audit.cli import audit

LOGS = Path(__file__).parents[1] / "assets" / "audit" / "logs"
EXPECTED: dict[str, list[str]] = json.loads((LOGS / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_known_log(name: str, tmp_path: Path) -> None:
    db = tmp_path / name
    shutil.copy(LOGS / name, db)  # verify opens the file read-write (schema check): never touch the asset
    result = CliRunner().invoke(audit, ["verify", str(db), "--trust", str(LOGS / "signer.pub"),
                                        "--trust", str(LOGS / "log.pub")])
    if not EXPECTED[name]:
        assert result.exit_code == 0, result.output
        assert "intact: 12 entries" in result.output
        return
    assert result.exit_code == 1, result.output
    for needle in EXPECTED[name]:
        assert needle in result.output
