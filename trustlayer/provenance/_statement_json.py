"""The canonical JSON of a hop statement, written directly for the signer's hot path.

    >>> from trustlayer.provenance._statement_json import statement_json    # doctest: +SKIP
    >>> statement_json(hop, salt=salt, key_id=key.key_id, sequence=1, nonce="ab" * 16, time=0)  # doctest: +SKIP

Byte for byte what ``_json.dumps(records.build_statement(...))`` writes (sorted keys,
``,``/``:`` separators, non-ASCII characters escaped, integers only), but without
building the dicts and without the general encoder's per-dict key sort: the key order
of a statement is fixed, so it is written out here in sorted order. Strings go through
the same C escaper the ``json`` encoder uses (``encode_basestring_ascii``). A property
test in ``tests/provenance`` holds the two to the same bytes for arbitrary hops.

Floats cannot enter: every number passes ``operator.index`` (``TypeError`` on a float,
which the signer turns into ``SignatureError``); agreement is signed as an integer
per-mille, as in ``build_statement``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii
from operator import index
from typing import Any

from trustlayer.provenance import _json
from trustlayer.provenance.records import transmitted_digest
from trustlayer.types import Channel, Decision, Hop, Verdict

__all__ = ["statement_json"]

_q = encode_basestring_ascii  # the C escaper of json.encoder: str (and StrEnum) -> quoted JSON string

# Sorted key order (what sort_keys=True produces) of the statement's fixed objects:
#   statement: _type, predicate, predicateType, subject
#   predicate: block, conversation_id, decision, direction, entity_counts, key_id, model, nonce,
#              parents, route, sequence, time, verdict
_HEAD = '{"_type":' + _q(_json.STATEMENT_TYPE) + ',"predicate":{"block":'
_PREDICATE_TYPE = '},"predicateType":"https://trustlayer.dev/hop/v1","subject":[{"digest":{"sha256":"'


def _strs(values: Iterable[Any]) -> str:
    return "[" + ",".join(map(_q, values)) + "]"


def _opt(value: str | None) -> str:
    return "null" if value is None else _q(value)


def _decision(d: Decision | None) -> str:
    if d is None:
        return "null"
    # keys: classes, endpoint, id, operators, outcome, policy_digest, rule_ids
    operators = ",".join([f"{_q(k)}:{_q(v)}" for k, v in sorted(d.operators.items())])
    return (f'{{"classes":[{",".join(map(_q, sorted(d.classes)))}],"endpoint":{_q(d.endpoint)},"id":{_q(d.id)},'
            f'"operators":{{{operators}}},"outcome":{_q(d.outcome)},'
            f'"policy_digest":{_q(d.policy_digest)},"rule_ids":[{",".join(map(_q, d.rule_ids))}]}}')


def _verdict(v: Verdict | None) -> str:
    if v is None:
        return "null"
    # keys: abstained, agreeing, agreement_permille, answered_by, dissenting, measure, of, outcome, quorum
    permille = index(round(v.agreement * 1000))
    return (f'{{"abstained":{_strs(sorted(v.abstained))},"agreeing":{_strs(v.agreeing)},'
            f'"agreement_permille":{permille},"answered_by":{_opt(v.answered_by)},'
            f'"dissenting":{_strs(v.dissenting)},"measure":{_q(v.measure)},"of":{index(v.of)},'
            f'"outcome":{_q(v.outcome)},"quorum":{index(v.quorum)}}}')


def statement_json(hop: Hop, *, salt: bytes, key_id: str, sequence: int, nonce: str, time: int) -> bytes:
    """The canonical statement bytes of ``hop``; same arguments as ``records.build_statement``.

    Raises ``TypeError`` for a non-integer number or a non-string where a string belongs.
    """
    salted = hashlib.sha256(salt)
    salted.update(hop.content)
    route = hop.route
    if hop.direction == "block":
        block = f'{{"reason":{_q(hop.reason or "")},"stage":{_q(hop.stage or "unknown")}}}'
        transmitted = ""
    else:
        block = "null"
        transmitted = ""
        if route.channel is Channel.AGENT_AGENT:
            transmitted = (',{"digest":{"sha256":"' + transmitted_digest(nonce, hop.content)
                           + '"},"name":"transmitted"}')
    # nonce and key_id go through the escaper too: a caller's bad value cannot break the JSON.
    counts = ",".join([f"{_q(k)}:{index(n)}" for k, n in sorted(hop.entity_counts.items())])
    model = hop.model
    text = (f'{_HEAD}{block},"conversation_id":{_q(hop.conversation_id)},"decision":{_decision(hop.decision)},'
            f'"direction":{_q(hop.direction)},"entity_counts":{{{counts}}},'
            f'"key_id":{_q(key_id)},"model":{"null" if model is None else _q(model)},"nonce":{_q(nonce)},'
            f'"parents":[{",".join(map(_q, hop.parents))}],"route":{{"channel":{_q(route.channel)},'
            f'"recipient":{_q(route.recipient.id)},"sender":{_q(route.sender.id)}}},'
            f'"sequence":{index(sequence)},"time":{index(time)},"verdict":{_verdict(hop.verdict)}'
            f'{_PREDICATE_TYPE}{salted.hexdigest()}"}},"name":"content"}}{transmitted}]}}')
    return text.encode("ascii")
