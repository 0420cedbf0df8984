"""Counting votes: from the answers a panel gave to a ``Verdict``, without any I/O.

    >>> from trustlayer.verifiers.agreement import ExactMeasure
    >>> v = tally({"a": "42", "b": "The answer is 42.", "c": "41"}, panel=("a", "b", "c"),
    ...           measure=ExactMeasure(), quorum=2)
    >>> v.outcome, v.answer, v.dissenting
    ('verified', '42', ('c',))

The consensus answer is the medoid of the answers under the measure (the minimum-Bayes-risk
choice: the answer with the most support, then the highest total similarity to the others).
An endpoint *agrees* when its answer's similarity to the consensus answer is at least
``threshold``; it *dissents* when it answered otherwise; endpoints that gave no answer are
*abstained* with the reason. The verdict is ``verified`` only when at least ``quorum``
endpoints agree and no disjoint answer has equal support; otherwise it is ``unverified``
and carries no answer (never a silent pick).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trustlayer.errors import ConfigError
from trustlayer.types import Verdict
from trustlayer.verifiers.agreement import Measure

__all__ = ["tally"]


def tally(
    answers: Mapping[str, str],
    *,
    panel: Sequence[str],
    measure: Measure,
    quorum: int,
    threshold: float = 0.8,
    abstained: Mapping[str, str] | None = None,
    primary: str | None = None,
    evidence: Mapping[str, float] | None = None,
) -> Verdict:
    """The verdict over ``answers`` (endpoint id -> reply) from a ``panel`` of endpoint ids.

    ``primary`` wins ties between equally good medoids (its answer is the one already in
    hand). Raises ``ConfigError`` when the arguments are inconsistent.
    """
    abstained = dict(abstained or {})
    n = len(panel)
    if n == 0:
        raise ConfigError("consensus needs at least one endpoint in the panel")
    if not 1 <= quorum <= n:
        raise ConfigError(f"verify quorum {quorum} must be between 1 and the panel size {n}")
    unknown = sorted((set(answers) | set(abstained)) - set(panel))
    if unknown:
        raise ConfigError(f"answers from endpoints outside the panel: {', '.join(unknown)}")
    both = sorted(set(answers) & set(abstained))
    if both:
        raise ConfigError(f"endpoints both answered and abstained: {', '.join(both)}")
    for endpoint_id in panel:
        if endpoint_id not in answers and endpoint_id not in abstained:
            abstained[endpoint_id] = "missing"

    ids = [e for e in panel if e in answers]
    facts = dict(evidence or {})
    facts["answered"] = float(len(ids))
    if not ids:
        return Verdict(outcome="unverified", answer=None, agreement=0.0, quorum=quorum, of=n,
                       measure=measure.name, abstained=abstained, evidence=facts)

    sim = measure.matrix([answers[e] for e in ids])
    support = [sum(1 for j in range(len(ids)) if sim[i][j] >= threshold) for i in range(len(ids))]
    mass = [sum(row) for row in sim]
    order = {e: k for k, e in enumerate(panel)}

    def rank(i: int) -> tuple[int, float, bool, int]:
        return (support[i], mass[i], ids[i] == primary, -order[ids[i]])

    best = max(range(len(ids)), key=rank)
    agreeing = tuple(ids[j] for j in range(len(ids)) if sim[best][j] >= threshold)
    dissenting = tuple(e for e in ids if e not in agreeing)
    # A rival answer, outside the consensus cluster, with as much support: the panel is split.
    split = any(support[j] == support[best] and sim[best][j] < threshold for j in range(len(ids)))
    others = [sim[best][j] for j in range(len(ids)) if j != best]
    facts["mean_similarity"] = sum(others) / len(others) if others else 1.0
    facts["support"] = float(len(agreeing))
    facts["split"] = 1.0 if split else 0.0
    verified = len(agreeing) >= quorum and not split
    return Verdict(
        outcome="verified" if verified else "unverified",
        answer=answers[ids[best]] if verified else None,
        agreement=len(agreeing) / n,
        quorum=quorum,
        of=n,
        measure=measure.name,
        agreeing=agreeing,
        dissenting=dissenting,
        abstained=abstained,
        answered_by=ids[best] if verified else None,
        evidence=facts,
    )
