"""The policy engine keeps its gate stage deadline because it never waits for anything."""

from __future__ import annotations

from deadlines import start

from trustlayer.policy import PolicyEngine, shipped_policy_path
from trustlayer.types import Finding, Outcome, Route

EMAIL = Finding(entity_type="EMAIL_ADDRESS", start=0, end=5, score=1.0, detector="t")


def test_the_engine_declares_that_it_keeps_its_deadline() -> None:
    assert PolicyEngine.keeps_deadline is True


def test_decide_never_consults_the_deadline_it_runs_under() -> None:
    # Nothing in decide waits, so nothing gives up: even a deadline already passed changes no answer.
    engine = PolicyEngine.from_file(shipped_policy_path("eu-gdpr"))
    route = Route.between(engine.endpoints["phone"], engine.endpoints["gpt-us"])

    def both() -> tuple[frozenset[str], Outcome]:
        return engine.entities_for(route), engine.decide([EMAIL], route).outcome

    call = start(both, seconds=-1.0).join()
    assert call.finished and call.raised is None
    assert call.value == [both()]
    assert call.value[0][1] is Outcome.TRANSFORM  # type: ignore[index]
