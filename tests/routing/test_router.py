"""The router only ever picks an endpoint policy allows, and its preference follows what it learnt."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustlayer.errors import RouterError
from trustlayer.routing.examples import PromptFeatures
from trustlayer.routing.router import PrivateRouter

POOL = ("phone", "gpt", "claude", "eu-llm", "edge-box", "unrelated")
LOCAL = "phone"

EASY = PromptFeatures(prompt="what is 12 plus 7 briefly", signals={"mean_entropy": 0.5, "mean_logprob": -0.4})
HARD = PromptFeatures(prompt="what dose of warfarin is safe with alcohol for <PERSON_1> step by step",
                      signals={"mean_entropy": 3.2, "mean_logprob": -2.6})

signals = st.fixed_dictionaries({
    "mean_entropy": st.floats(-1e6, 1e6, allow_nan=False),
    "mean_logprob": st.floats(-1e6, 1e6, allow_nan=False),
})
requests = st.builds(PromptFeatures, prompt=st.text(max_size=200), signals=signals)
clouds = st.lists(st.sampled_from(POOL[1:]), unique=True, max_size=4)
allowed_sets = st.lists(st.sampled_from(POOL), unique=True, max_size=len(POOL))


@settings(max_examples=300, deadline=None)
@given(request=requests, cloud_ids=clouds, allowed=allowed_sets)
def test_never_selects_a_forbidden_endpoint(trained: PrivateRouter, request: PromptFeatures,
                                            cloud_ids: list[str], allowed: list[str]) -> None:
    candidates = {LOCAL, *cloud_ids}
    if not candidates & set(allowed):
        with pytest.raises(RouterError, match="policy allows none of the router's endpoints"):
            trained.choose(request, allowed, local_id=LOCAL, cloud_ids=cloud_ids)
        return
    choice = trained.choose(request, allowed, local_id=LOCAL, cloud_ids=cloud_ids)
    assert choice in allowed
    assert choice in candidates


def test_easy_request_stays_on_the_device(trained: PrivateRouter) -> None:
    assert trained.probability_local(EASY) > trained.card.threshold
    assert trained.choose(EASY, ["phone", "gpt"], local_id=LOCAL, cloud_ids=["gpt"]) == "phone"


def test_hard_request_goes_to_the_first_allowed_cloud(trained: PrivateRouter) -> None:
    assert trained.probability_local(HARD) < trained.card.threshold
    assert trained.choose(HARD, ["phone", "claude", "gpt"], local_id=LOCAL, cloud_ids=["gpt", "claude"]) == "gpt"
    assert trained.choose(HARD, ["phone", "claude"], local_id=LOCAL, cloud_ids=["gpt", "claude"]) == "claude"


def test_preference_yields_to_policy(trained: PrivateRouter) -> None:
    # The hard request would go to the cloud, but policy keeps it on the device, and vice versa.
    assert trained.choose(HARD, ["phone"], local_id=LOCAL, cloud_ids=["gpt"]) == "phone"
    assert trained.choose(EASY, ["gpt"], local_id=LOCAL, cloud_ids=["gpt"]) == "gpt"


def test_local_listed_as_cloud_is_an_error(trained: PrivateRouter) -> None:
    with pytest.raises(RouterError, match="'phone' is given both as the local endpoint and as a cloud endpoint"):
        trained.choose(EASY, ["phone"], local_id="phone", cloud_ids=["gpt", "phone"])


def test_missing_uncertainty_signal_is_named(trained: PrivateRouter) -> None:
    partial = PromptFeatures(prompt="hello", signals={"mean_logprob": -1.0})
    with pytest.raises(RouterError, match="needs uncertainty signal 'mean_entropy'.*signals given: mean_logprob"):
        trained.choose(partial, ["phone", "gpt"], local_id=LOCAL, cloud_ids=["gpt"])


def test_missing_signal_does_not_matter_when_policy_leaves_no_choice(trained: PrivateRouter) -> None:
    # Nothing to score: the one allowed endpoint is taken without running the model.
    bare = PromptFeatures(prompt="hello")
    assert trained.choose(bare, ["gpt"], local_id=LOCAL, cloud_ids=["gpt"]) == "gpt"
