"""The canonical JSON of a hop statement, written directly for the signer's hot path.

    >>> from trustlayer.provenance._statement_json import StatementWriter, statement_json    # doctest: +SKIP
    >>> statement_json(hop, salt=salt, key_id=key.key_id, sequence=1, nonce="ab" * 16, time=0)  # doctest: +SKIP
    >>> writer = StatementWriter(salt=salt, key_id=key.key_id)      # the signer keeps one  # doctest: +SKIP
    >>> writer.write(hop, sequence=1, nonce="ab" * 16, time=0)      # the same bytes        # doctest: +SKIP

Byte for byte what ``_json.dumps(records.build_statement(...))`` writes (sorted keys,
``,``/``:`` separators, non-ASCII characters escaped, integers only), but without
building the dicts and without the general encoder's per-dict key sort: the key order
of a statement is fixed, so it is written out here in sorted order. Strings go through
the same C escaper the ``json`` encoder uses (``encode_basestring_ascii``). A property
test in ``tests/provenance`` holds the two to the same bytes for arbitrary hops.

Floats cannot enter: every number passes ``operator.index`` (``TypeError`` on a float,
which the signer turns into ``SignatureError``); agreement is signed as an integer
per-mille, as in ``build_statement``.

It runs once per record signed, so it is written for speed (issue 5); each trick has its
reason beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from json.encoder import encode_basestring_ascii
from operator import index
from typing import Any

from trustlayer.provenance import _json
from trustlayer.provenance.records import transmitted_digest
from trustlayer.types import Channel, Decision, Hop, Verdict

__all__ = ["StatementWriter", "statement_json"]

_q = encode_basestring_ascii  # the C escaper of json.encoder: str (and StrEnum) -> quoted JSON string

# Sorted key order (what sort_keys=True produces) of the statement's fixed objects:
#   statement: _type, predicate, predicateType, subject
#   predicate: block, conversation_id, decision, direction, entity_counts, key_id, model, nonce,
#              parents, route, sequence, time, verdict
_HEAD = '{"_type":' + _q(_json.STATEMENT_TYPE) + ',"predicate":{"block":'
_PREDICATE_TYPE = '},"predicateType":"https://trustlayer.dev/hop/v1","subject":[{"digest":{"sha256":"'

_NO_CLASSES: frozenset[str] = frozenset()  # most decisions name no class: then no sorted() call


def _strs(values: Iterable[Any]) -> str:
    # join(map(...)) costs ~0.3 us even for nothing, and most of these lists are empty. `== ()`
    # rather than `not values`: a falsy non-tuple (a None smuggled in) must still raise TypeError.
    return "[]" if values == () else f"[{','.join(map(_q, values))}]"


def _opt(value: str | None) -> str:
    return "null" if value is None else _q(value)


def _pairs(mapping: Mapping[str, Any], value: Callable[[Any], object]) -> str:
    """The members of a JSON object: keys quoted, values written by ``value``, in key order.

    Sorted by key alone (cheaper than comparing (key, value) tuples; the keys are unique) and
    written with a plain loop (a list comprehension is a function call of its own in Python
    3.11). ``== {}`` as in ``_strs``: a smuggled None still raises.
    """
    if mapping == {}:
        return ""
    pairs = []
    for k in sorted(mapping):
        pairs.append(f"{_q(k)}:{value(mapping[k])}")
    return ",".join(pairs)


def _decision(d: Decision | None) -> str:
    if d is None:
        return "null"
    # keys: classes, endpoint, id, operators, outcome, policy_digest, rule_ids
    classes = d.classes
    return (f'{{"classes":{"[]" if classes == _NO_CLASSES else _strs(sorted(classes))},'
            f'"endpoint":{_q(d.endpoint)},"id":{_q(d.id)},"operators":{{{_pairs(d.operators, _q)}}},'
            f'"outcome":{_q(d.outcome)},"policy_digest":{_q(d.policy_digest)},'
            f'"rule_ids":{_strs(d.rule_ids)}}}')


def _verdict(v: Verdict | None) -> str:
    if v is None:
        return "null"
    # keys: abstained, agreeing, agreement_permille, answered_by, dissenting, measure, of, outcome, quorum
    permille = index(round(v.agreement * 1000))
    return (f'{{"abstained":{_strs(sorted(v.abstained))},"agreeing":{_strs(v.agreeing)},'
            f'"agreement_permille":{permille},"answered_by":{_opt(v.answered_by)},'
            f'"dissenting":{_strs(v.dissenting)},"measure":{_q(v.measure)},"of":{index(v.of)},'
            f'"outcome":{_q(v.outcome)},"quorum":{index(v.quorum)}}}')


class StatementWriter:
    """``statement_json`` for one salt and key id, with what those two fix prepared once.

    ``StatementWriter(salt=s, key_id=k).write(hop, ...) == statement_json(hop, salt=s, key_id=k, ...)``;
    the record signer keeps one. Safe to share between threads (nothing in it changes after ``__init__``).
    """

    __slots__ = ("_key_id", "_salted")

    def __init__(self, *, salt: bytes, key_id: str) -> None:
        # The salt is hashed once; each statement continues from a copy of that state.
        self._salted = hashlib.sha256(salt)
        # key_id goes through the escaper too (as nonce does below): a caller's bad value cannot break the JSON.
        self._key_id = _q(key_id)

    def write(self, hop: Hop, *, sequence: int, nonce: str, time: int) -> bytes:
        """The canonical statement bytes of ``hop``; ``TypeError`` as ``statement_json``."""
        salted = self._salted.copy()
        salted.update(hop.content)
        route = hop.route
        direction, channel = hop.direction, route.channel
        transmitted = ""
        if direction == "block":
            block = f'{{"reason":{_q(hop.reason or "")},"stage":{_q(hop.stage or "unknown")}}}'
        else:
            block = "null"
            if channel is Channel.AGENT_AGENT:
                transmitted = (',{"digest":{"sha256":"' + transmitted_digest(nonce, hop.content)
                               + '"},"name":"transmitted"}')
        model = hop.model
        text = (f'{_HEAD}{block},"conversation_id":{_q(hop.conversation_id)},'
                f'"decision":{_decision(hop.decision)},"direction":{_q(direction)},'
                f'"entity_counts":{{{_pairs(hop.entity_counts, index)}}},"key_id":{self._key_id},'
                f'"model":{"null" if model is None else _q(model)},"nonce":{_q(nonce)},'
                f'"parents":{_strs(hop.parents)},"route":{{"channel":{_q(channel)},'
                f'"recipient":{_q(route.recipient.id)},"sender":{_q(route.sender.id)}}},'
                f'"sequence":{index(sequence)},"time":{index(time)},"verdict":{_verdict(hop.verdict)}'
                f'{_PREDICATE_TYPE}{salted.hexdigest()}"}},"name":"content"}}{transmitted}]}}')
        return text.encode("ascii")


def statement_json(hop: Hop, *, salt: bytes, key_id: str, sequence: int, nonce: str, time: int) -> bytes:
    """The canonical statement bytes of ``hop``; same arguments as ``records.build_statement``.

    Raises ``TypeError`` for a non-integer number or a non-string where a string belongs.
    """
    return StatementWriter(salt=salt, key_id=key_id).write(hop, sequence=sequence, nonce=nonce, time=time)
