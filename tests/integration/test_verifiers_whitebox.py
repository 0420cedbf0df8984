"""White-box signals and embeddings from the real SmolLM2-135M model (llama.cpp); slow."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import numpy as np
import pytest

from trustlayer.types import Endpoint, Message, Verdict
from trustlayer.verifiers import Consensus, EmbeddingMeasure, EndpointAsker, WhiteBoxScorer, should_escalate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scorer() -> Iterator[WhiteBoxScorer]:
    s = WhiteBoxScorer(n_ctx=256)
    yield s
    s.close()


@pytest.mark.parametrize(("question", "right", "wrong"), [
    ("What is the capital of France?", "The capital of France is Paris.", "The capital of France is Berlin."),
    ("What color is the sky on a clear day?", "The sky is blue.", "The sky is green."),
])
def test_a_right_answer_scores_higher_than_a_wrong_one(scorer: WhiteBoxScorer, question: str,
                                                       right: str, wrong: str) -> None:
    good, bad = scorer.score(question, right), scorer.score(question, wrong)
    assert good.tokens == bad.tokens > 3
    assert good.mean_logprob > bad.mean_logprob
    assert good.min_logprob > bad.min_logprob
    assert all(math.isfinite(v) and v <= 0 for v in (good.mean_logprob, good.min_logprob, good.p10_logprob))


def test_scores_match_the_logits_of_a_fresh_full_evaluation(scorer: WhiteBoxScorer) -> None:
    """The cached-prefix path must give what one clean eval of prompt + answer gives."""
    question = "Name a fruit that is yellow."
    scorer.score(question, "Bananas are yellow.")  # leaves this prompt in the cache
    cached = scorer.score(question, "A lemon.")
    import llama_cpp

    from trustlayer.endpoints.models import default_model_path

    llm = llama_cpp.Llama(model_path=str(default_model_path()), n_ctx=256, logits_all=True, verbose=False,
                          n_threads=2)
    prompt = scorer.prompt_tokens(question)
    reply = llm.tokenize(b"A lemon.", add_bos=False)
    llm.eval(prompt + reply)
    rows = llm.scores[len(prompt) - 1: len(prompt) - 1 + len(reply)].astype(np.float64)
    shifted = rows - rows.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = logp[np.arange(len(reply)), reply]
    llm.close()
    assert cached.tokens == len(reply)
    assert cached.mean_logprob == pytest.approx(float(expected.mean()), abs=1e-3)
    assert cached.min_logprob == pytest.approx(float(expected.min()), abs=1e-3)


def test_own_answer_uncertainty_agrees_with_scoring_that_answer(scorer: WhiteBoxScorer) -> None:
    text, own = scorer.answer("Who wrote Romeo and Juliet?", max_tokens=10)
    assert text and 0 < own.tokens <= 10
    assert own.mean_entropy >= 0
    again = scorer.score("Who wrote Romeo and Juliet?", text)
    assert again.mean_logprob == pytest.approx(own.mean_logprob, abs=0.05)
    assert should_escalate(own, threshold=own.mean_entropy - 0.01)
    assert not should_escalate(own, threshold=own.mean_entropy + 0.01)


def test_long_input_is_cut_to_the_context(scorer: WhiteBoxScorer) -> None:
    s = scorer.score("Summarize. " + "word " * 400, "fine " * 400)
    assert s.truncated and 0 < s.tokens < 256


def test_embedding_cosine_puts_paraphrases_closer_than_unrelated_text() -> None:
    measure = EmbeddingMeasure(n_ctx=128)
    m = measure.matrix([
        "The capital of France is Paris.",
        "Paris is France's capital city.",
        "Photosynthesis converts light into chemical energy in plants.",
    ])
    measure.close()
    assert m[0][1] > m[0][2] and m[0][1] > m[1][2]
    assert all(0.0 <= m[i][j] <= 1.0 for i in range(3) for j in range(3))


def test_the_local_model_votes_and_the_scorer_adds_evidence(scorer: WhiteBoxScorer) -> None:
    """A device endpoint answers through the endpoints client; the scorer's figures reach the verdict."""
    phone = Endpoint(id="phone", kind="device", jurisdiction="DE", box="white")
    consensus = Consensus([phone], asker=EndpointAsker(params={"temperature": 0, "max_tokens": 12}),
                          policy=lambda m, r: m, scorer=scorer.scorer(own=True, max_tokens=6))
    request = Message.from_openai([{"role": "user", "content": "Say the word hello."}], conversation_id="c")
    async def run() -> Verdict:
        try:
            return await consensus.ask_async(lambda ep: request, quorum=1, measure="f1", deadline=120,
                                             request=request)
        finally:
            await consensus.aclose()

    verdict = asyncio.run(run())
    assert verdict.verified and verdict.agreeing == ("phone",)
    assert verdict.evidence["whitebox.tokens"] >= 1
    assert verdict.evidence["whitebox.mean_logprob"] < 0
    # The local model answered the same greedy way through the endpoint and the scorer.
    assert verdict.evidence["local.tokens"] >= 1 and verdict.evidence["local.mean_entropy"] >= 0
    assert verdict.evidence["local.agrees"] in (0.0, 1.0)
