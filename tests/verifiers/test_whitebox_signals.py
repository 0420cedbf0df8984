"""White-box pieces that need no model: the escalation rule and argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustlayer.errors import ConfigError
from trustlayer.verifiers._llama import load_llama
from trustlayer.verifiers.whitebox import AnswerScore, WhiteBoxScorer, should_escalate


def score(entropy: float) -> AnswerScore:
    return AnswerScore(tokens=3, mean_logprob=-1.0, min_logprob=-2.0, p10_logprob=-1.8,
                       mean_entropy=entropy, truncated=False, seconds=0.01)


def test_escalate_only_when_uncertain() -> None:
    assert should_escalate(2.0, 1.5)
    assert not should_escalate(1.0, 1.5)
    assert not should_escalate(1.5, 1.5)
    assert should_escalate(score(3.0), 1.5)
    assert not should_escalate(score(0.2), 1.5)
    assert should_escalate(float("nan"), 1.5)
    with pytest.raises(ConfigError, match="non-negative"):
        should_escalate(1.0, -1.0)


def test_evidence_keys_are_prefixed_floats() -> None:
    ev = score(0.5).evidence()
    assert ev["whitebox.mean_entropy"] == 0.5 and ev["whitebox.tokens"] == 3.0
    assert all(isinstance(v, float) for v in ev.values())


def test_bad_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_ctx must be at least 32"):
        WhiteBoxScorer(n_ctx=8)
    with pytest.raises(ConfigError, match="local model file .*nope.gguf' does not exist"):
        load_llama(tmp_path / "nope.gguf", n_ctx=64, n_threads=1)
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ConfigError, match="could not be loaded"):
        WhiteBoxScorer(model_path=bad).score("q", "a")
