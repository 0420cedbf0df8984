"""The signer's direct statement writer is byte-identical to the generic canonical JSON path."""

import base64
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustlayer.errors import SignatureError
from trustlayer.provenance import _json
from trustlayer.provenance._statement_json import statement_json
from trustlayer.provenance.dsse import EnvelopeSigner, open_envelope, sign_envelope
from trustlayer.provenance.keys import Keyring, SigningKey
from trustlayer.provenance.records import Record, build_statement
from trustlayer.provenance.signer import RecordSigner
from trustlayer.types import Decision, Endpoint, Hop, Operator, Outcome, Route, Verdict

from .conftest import SALT, agent_hop, cloud_hop

KEY = SigningKey.generate()
RING = Keyring()
RING.add(KEY.public, owner="me")

# any text, including quotes, backslashes, control characters, non-ASCII and astral code points
text = st.text(max_size=24)
ident = st.from_regex(r"\A[a-zA-Z0-9][a-zA-Z0-9._:@-]{0,15}\Z")
hexes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)

endpoints = st.builds(Endpoint, id=ident, kind=st.sampled_from(["device", "cloud", "agent"]),
                      jurisdiction=st.sampled_from(["DE", "US", "FR"]))
decisions = st.one_of(st.none(), st.builds(
    Decision, id=text, outcome=st.sampled_from([Outcome.ALLOW, Outcome.REROUTE, Outcome.BLOCK]), endpoint=text,
    rule_ids=st.lists(text, max_size=3).map(tuple), classes=st.frozensets(text, max_size=3),
    operators=st.dictionaries(text, st.sampled_from(list(Operator)), max_size=3), policy_digest=text))
verdicts = st.one_of(st.none(), st.builds(
    Verdict, outcome=st.sampled_from(["verified", "unverified"]), answer=st.none(),
    agreement=st.floats(0, 1), quorum=st.integers(0, 5), of=st.integers(0, 5), measure=text,
    agreeing=st.lists(text, max_size=3).map(tuple), dissenting=st.lists(text, max_size=2).map(tuple),
    abstained=st.dictionaries(text, text, max_size=2), answered_by=st.none() | text))


@st.composite
def hops(draw: st.DrawFn) -> Hop:
    direction = draw(st.sampled_from(["outbound", "inbound", "block"]))
    return Hop(
        direction=direction, route=Route.between(draw(endpoints), draw(endpoints)),
        conversation_id=draw(text), content=draw(st.binary(max_size=64)), decision=draw(decisions),
        entity_counts=draw(st.dictionaries(text, st.integers(0, 10**12), max_size=4)),
        verdict=draw(verdicts), parents=tuple(draw(st.lists(hexes, max_size=2))),
        stage=draw(st.none() | text) if direction == "block" else None,
        reason=draw(st.none() | text) if direction == "block" else None, model=draw(st.none() | text))


@settings(max_examples=300, deadline=None)
@given(hop=hops(), sequence=st.integers(1, 2**62), time=st.integers(0, 2**50),
       nonce=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
def test_same_bytes_as_the_generic_canonical_json(hop: Hop, sequence: int, time: int, nonce: str) -> None:
    args = {"salt": SALT, "key_id": KEY.key_id, "sequence": sequence, "nonce": nonce, "time": time}
    assert statement_json(hop, **args) == _json.dumps(build_statement(hop, **args))  # type: ignore[arg-type]


def test_fixed_examples_match() -> None:
    args = {"salt": SALT, "key_id": KEY.key_id, "sequence": 3, "nonce": "ab" * 16, "time": 1}
    for hop in (agent_hop(), cloud_hop(), agent_hop(direction="block", stage="decide", reason="r\u00e9\"\\"),
                agent_hop(conversation_id="\U0001f600\n")):
        assert statement_json(hop, **args) == _json.dumps(build_statement(hop, **args))  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(max_size=300), payload_type=st.text(min_size=1, max_size=40))
def test_envelope_signer_writes_what_sign_envelope_writes(payload: bytes, payload_type: str) -> None:
    envelope = EnvelopeSigner(KEY, payload_type).sign(payload)
    assert envelope == sign_envelope(payload, payload_type, KEY)  # Ed25519 is deterministic
    assert open_envelope(envelope, RING).payload == payload


def test_envelope_signer_refuses_an_empty_type() -> None:
    with pytest.raises(SignatureError, match="payloadType must not be empty"):
        EnvelopeSigner(KEY, "")


def test_a_non_string_field_smuggled_past_validation_is_refused() -> None:
    signer = RecordSigner(KEY, salt=SALT, state_path=None)
    smuggled = dataclasses.replace(agent_hop(), conversation_id=12)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="not a string"):
        signer.sign(smuggled)


def _smuggled(**fields: object) -> Hop:
    hop = agent_hop()
    for name, value in fields.items():
        object.__setattr__(hop, name, value)  # past Hop.__post_init__, as a buggy caller could
    return hop


def _decision_with(**fields: object) -> Decision:
    return Decision.model_construct(**{**dict(agent_hop().decision or {}), **fields})  # skips validation


@pytest.mark.parametrize("hop", [
    # falsy non-containers: the writer's shortcuts for empty lists and maps must not take them for empty
    _smuggled(parents=None), _smuggled(parents=0), _smuggled(entity_counts=None), _smuggled(entity_counts=0),
    _smuggled(decision=_decision_with(operators=None)), _smuggled(decision=_decision_with(rule_ids=None)),
    _smuggled(decision=_decision_with(classes=None)),
    # non-strings where the writer looks up quoted enum values
    _smuggled(direction=7), _smuggled(decision=_decision_with(outcome=1)),
    _smuggled(decision=_decision_with(outcome=[])), _smuggled(decision=_decision_with(operators={"PERSON": 1})),
    _smuggled(entity_counts={1: 1}), _smuggled(model=3),
], ids=["parents None", "parents 0", "counts None", "counts 0", "operators None", "rule_ids None", "classes None",
        "direction int", "outcome int", "outcome list", "operator int", "count key int", "model int"])
def test_other_smuggled_values_are_refused_too(hop: Hop) -> None:
    signer = RecordSigner(KEY, salt=SALT, state_path=None)
    with pytest.raises(SignatureError, match="cannot sign the hop"):
        signer.sign(hop)


def test_signed_records_parse_and_carry_the_statement() -> None:
    signer = RecordSigner(KEY, salt=SALT, state_path=None)
    signed = signer.sign(cloud_hop())
    payload = base64.b64decode(json.loads(signed.envelope)["payload"])
    record = Record.from_envelope(signed.envelope, RING)
    p = record.predicate
    args = {"salt": SALT, "key_id": KEY.key_id, "sequence": p.sequence, "nonce": p.nonce, "time": p.time}
    assert payload == _json.dumps(build_statement(cloud_hop(), **args))  # type: ignore[arg-type]
