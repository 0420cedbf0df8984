"""RouterFunction: the trained router in the `prompt -> endpoint id` shape that @route calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustlayer.errors import RouterError
from trustlayer.policy.routing import choose, from_function
from trustlayer.routing.adapter import RouterFunction
from trustlayer.routing.labels import FeatureJournal
from trustlayer.routing.router import PrivateRouter
from trustlayer.types import Decision, Outcome

EASY = "what is 12 plus 7 briefly"
HARD = "interpret these insurance blood test results for Maria Schmidt step by step"


def signals(prompt: str) -> dict[str, float]:
    hard = "interpret" in prompt
    return {"mean_entropy": 3.0 if hard else 0.5, "mean_logprob": -2.5 if hard else -0.4}


def redact(prompt: str) -> str:
    return prompt.replace("Maria Schmidt", "<PERSON_1>")


def test_picks_like_the_router_and_respects_allowed(trained: PrivateRouter) -> None:
    pick = RouterFunction(trained, local_id="phone", cloud_ids=("gpt",), signals=signals, redact=redact)
    assert pick(EASY) == "phone"
    assert pick(HARD) == "gpt"
    assert pick(HARD, allowed=("phone",)) == "phone"


def test_works_through_the_route_adapter_and_policy_choice(trained: PrivateRouter) -> None:
    pick = from_function(RouterFunction(trained, local_id="phone", cloud_ids=("gpt",), signals=signals))
    decision = Decision(id="d1", outcome=Outcome.REROUTE, endpoint="phone", allowed=("phone",))
    chosen = pick(HARD)
    assert chosen == "gpt"
    assert choose(chosen, decision, fallback="reroute", local_id="phone").endpoint == "phone"


def test_journal_holds_only_redacted_prompts(trained: PrivateRouter, tmp_path: Path) -> None:
    journal = FeatureJournal(tmp_path / "j.jsonl")
    pick = RouterFunction(trained, local_id="phone", cloud_ids=("gpt",), signals=signals, redact=redact,
                          journal=journal)
    pick(HARD, conversation_id="c9")
    assert "Maria" not in (tmp_path / "j.jsonl").read_text()
    [features] = journal.read()["c9"]
    assert features.prompt.startswith("interpret these insurance blood test results for <PERSON_1>")
    assert features.signals == signals(HARD)


def test_journal_without_redaction_is_refused(trained: PrivateRouter, tmp_path: Path) -> None:
    with pytest.raises(RouterError, match="journal needs 'redact'"):
        RouterFunction(trained, local_id="phone", cloud_ids=("gpt",), signals=signals,
                       journal=FeatureJournal(tmp_path / "j.jsonl"))
