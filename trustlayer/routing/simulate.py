"""A seeded, *simulated* labelled routing set, for benchmarks, tests and demos.

    >>> from trustlayer.routing.simulate import simulated_routing_set
    >>> data = simulated_routing_set(200, seed=7)
    >>> len(data), sorted(data[0].signals)
    (200, ['mean_entropy', 'mean_logprob'])

Nothing here was asked by a person or answered by a model. Each prompt comes from a
template (arithmetic, capitals, definitions, translation, summaries, code, legal and
medical reasoning, planning) with a difficulty, raised by modifiers such as "step by
step" or extra constraints. A small local model's chance of answering well falls with
difficulty (a logistic curve); whether it did is drawn from that chance, and the
label is then flipped with probability ``label_noise`` (verifier mistakes). The two
uncertainty signals a white-box local model would report, mean token log-probability
and entropy, follow the same difficulty with noise. Prompts hold placeholders such as
``<PERSON>``, as redacted prompts do.
"""

from __future__ import annotations

import math
import random

from trustlayer.routing.examples import RoutingExample

__all__ = ["TEMPLATES", "simulated_routing_set"]

TEMPLATES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("arithmetic", 0.10, ("what is {a} plus {b}", "compute {a} times {b}", "what is {a} minus {b}")),
    ("capital", 0.20, ("what is the capital of {country}", "name the capital city of {country}")),
    ("definition", 0.35, ("define the word {word}", "what does {word} mean", "give a synonym for {word}")),
    ("translate", 0.45, ("translate '{word}' into {language}", "how do you say {word} in {language}")),
    ("summary", 0.50, ("summarize the email from <PERSON> about the {thing}",
                       "write a short reply to <PERSON> about the {thing}")),
    ("code", 0.75, ("write a python function that parses {thing} files",
                    "fix the bug in this sql query joining {thing} tables")),
    ("legal", 0.85, ("is the clause in <PERSON>'s {thing} contract enforceable under {country} law",
                     "draft a gdpr data processing agreement for a {thing} vendor")),
    ("medical", 0.90, ("what dose of {drug} is safe with {drug2} for <PERSON>",
                       "interpret these {thing} blood test results for <PERSON>")),
    ("planning", 0.80, ("plan a {n} day trip through {country} with a budget",
                        "schedule {n} meetings for <PERSON> across time zones")),
)
"""(topic, base difficulty in [0, 1], prompt templates)."""

_FILL = {
    "country": ("France", "Japan", "Brazil", "Kenya", "Canada", "Germany", "India", "Peru"),
    "word": ("ephemeral", "house", "serendipity", "quick", "ubiquitous", "bread", "lucid"),
    "language": ("french", "spanish", "german", "japanese"),
    "thing": ("invoice", "lease", "shipping", "payroll", "csv", "inventory", "insurance"),
    "drug": ("ibuprofen", "warfarin", "metformin", "aspirin"),
    "drug2": ("alcohol", "paracetamol", "lisinopril", "statins"),
}

_MODIFIERS: tuple[tuple[str, float], ...] = (
    ("", 0.0), ("", 0.0), ("", 0.0),
    (" briefly", -0.10),
    (" step by step", 0.10),
    (" and explain your reasoning in detail", 0.15),
    (" and cite the relevant sources", 0.20),
    (" in exactly three bullet points", 0.10),
)

_LOCAL_SKILL = 0.55
"""The difficulty at which the simulated local model succeeds half the time."""

_STEEPNESS = 9.0


def _prompt(rng: random.Random) -> tuple[str, float]:
    _, difficulty, forms = rng.choice(TEMPLATES)
    text = rng.choice(forms).format(
        a=rng.randint(2, 999), b=rng.randint(2, 999), n=rng.randint(2, 9),
        **{k: rng.choice(v) for k, v in _FILL.items()},
    )
    modifier, extra = rng.choice(_MODIFIERS)
    # Per-request variation: the same template is not equally hard every time.
    difficulty = min(1.0, max(0.0, difficulty + extra + rng.gauss(0.0, 0.08)))
    return text + modifier, difficulty


def simulated_routing_set(n: int, *, seed: int, label_noise: float = 0.05) -> list[RoutingExample]:
    """``n`` simulated labelled requests, the same for the same ``seed``.

    ``label_noise`` is the chance that a label is flipped (the verifier got it wrong).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= label_noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text, difficulty = _prompt(rng)
        p_local = 1.0 / (1.0 + math.exp(-_STEEPNESS * (_LOCAL_SKILL - difficulty)))
        sufficed = rng.random() < p_local
        if rng.random() < label_noise:
            sufficed = not sufficed
        signals = {
            "mean_logprob": round(-(0.3 + 2.2 * difficulty) + rng.gauss(0.0, 0.35), 4),
            "mean_entropy": round(0.4 + 2.5 * difficulty + rng.gauss(0.0, 0.45), 4),
        }
        out.append(RoutingExample(prompt=text, signals=signals, local_sufficed=sufficed))
    return out
