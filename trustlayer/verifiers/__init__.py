"""Output verification: consensus across endpoints, agreement measures, white-box signals, reputation.

    >>> from trustlayer.verifiers import Consensus, EndpointAsker, Reputation
    >>> consensus = Consensus(panel, asker=EndpointAsker(), policy=prepare,      # doctest: +SKIP
    ...                       reputation=Reputation.open("reputation.db"))
    >>> consensus.verify(request, response, route, requirement).outcome       # doctest: +SKIP
    'verified'

Each module holds one job: ``agreement`` (measures), ``tally`` (vote counting), ``askers``,
``consensus`` (fan-out), ``whitebox`` (local log-probabilities) and ``reputation``.
"""

from trustlayer.verifiers.agreement import (
    CascadeMeasure,
    EmbeddingMeasure,
    ExactMeasure,
    F1Measure,
    Measure,
    exact,
    extract_answer,
    measure_for,
    normalize,
    token_f1,
)
from trustlayer.verifiers.askers import Asker, EndpointAsker, answer_text
from trustlayer.verifiers.consensus import Consensus, Policy, Prepare, Prepared, Restore, Scorer, response_text
from trustlayer.verifiers.reputation import AgreementStore, Reputation, SQLiteAgreementStore, Standing
from trustlayer.verifiers.setup import consensus_from_config, gate_policy
from trustlayer.verifiers.tally import tally
from trustlayer.verifiers.whitebox import AnswerScore, WhiteBoxScorer, should_escalate

__all__ = [
    "AgreementStore",
    "AnswerScore",
    "Asker",
    "CascadeMeasure",
    "Consensus",
    "EmbeddingMeasure",
    "EndpointAsker",
    "ExactMeasure",
    "F1Measure",
    "Measure",
    "Policy",
    "Prepare",
    "Prepared",
    "Reputation",
    "Restore",
    "SQLiteAgreementStore",
    "Scorer",
    "Standing",
    "WhiteBoxScorer",
    "answer_text",
    "consensus_from_config",
    "exact",
    "extract_answer",
    "gate_policy",
    "measure_for",
    "normalize",
    "response_text",
    "should_escalate",
    "tally",
    "token_f1",
]
