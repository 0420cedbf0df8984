"""restore(redact(x)) == x over the labelled evaluation set of benchmarks/pii_quality.py, with real NER."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from trustlayer.redaction import Redactor, Vault
from trustlayer.types import Message

pytest.importorskip("faker")

_SPEC = importlib.util.spec_from_file_location(
    "pii_quality", Path(__file__).resolve().parents[2] / "benchmarks" / "pii_quality.py")
assert _SPEC is not None and _SPEC.loader is not None
pii_quality = importlib.util.module_from_spec(_SPEC)
sys.modules["pii_quality"] = pii_quality  # dataclasses look their module up while the file runs
_SPEC.loader.exec_module(pii_quality)


def _check(n: int, seed: int, tmp_path: Path) -> None:
    redactor = Redactor(Vault.open(tmp_path / "v.db", bytes(32)))
    for i, case in enumerate(pii_quality.build(n, seed)):
        msg = Message.from_openai(case.turns, conversation_id=f"rt-{i}")
        out, _ = redactor.redact(msg)
        wire = json.dumps(out.to_openai(), ensure_ascii=False)
        for args in (c["function"]["arguments"] for t in out.to_openai() for c in t.get("tool_calls") or []):
            json.loads(args)  # tool-call arguments stay valid JSON
        for etype, value in case.labels:
            # The 0 % targets: validated formats and credentials never leave verbatim.
            if etype in pii_quality.VALIDATED | pii_quality.CREDENTIALS:
                assert not pii_quality.leaked(value, wire), f"message {i}: a {etype} value left verbatim"
        assert redactor.restore(out) == msg, f"message {i} ({case.kind}) did not round-trip"


def test_round_trip_on_evaluation_sample(tmp_path: Path) -> None:
    _check(80, 101, tmp_path)


@pytest.mark.slow
def test_round_trip_on_full_evaluation_set(tmp_path: Path) -> None:
    _check(700, 7, tmp_path)
