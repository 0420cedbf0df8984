from __future__ import annotations

import asyncio
import json

import pytest
from stagekit import (
    CLOUD,
    DEVICE,
    BlockAll,
    FixedVerifier,
    Hanging,
    HmacSigner,
    ListRecorder,
    Pseudonymizer,
    Raising,
    RegexDetector,
    Returning,
    SimplePolicy,
    TrustAll,
    chat,
    make_gate,
)

from trustlayer.errors import Blocked, Unverified
from trustlayer.gate import Gate
from trustlayer.types import Endpoint, Finding, Message, Operator, Outcome, Route, VerifyRequirement

KEY = "sk-AbCdEf123456"
ROUTE = Route.between(DEVICE, CLOUD)


def test_outbound_pseudonymizes_and_records_and_inbound_restores() -> None:
    rec = ListRecorder()
    gate = make_gate(recorder=rec)
    out = gate.outbound(chat(f"my key is {KEY}"), ROUTE)
    leaving = out.message.canonical_bytes().decode()
    assert KEY not in leaving and "<SECRET_1>" in leaving
    assert out.decision.outcome is Outcome.TRANSFORM
    assert out.route.recipient.id == "cloud"
    reply = Message.from_openai([{"role": "assistant", "content": "I will rotate <SECRET_1> now"}],
                                conversation_id="c1")
    back = gate.inbound(reply, out.route, request=out)
    assert back.message.turns is not None and back.message.turns[0].content == f"I will rotate {KEY} now"
    assert rec.directions() == ["outbound", "inbound"]
    assert all(KEY.encode() not in e for e in rec.entries)


def test_second_decision_sees_the_applied_transform() -> None:
    policy = SimplePolicy()
    make_gate(decider=policy).outbound(chat(f"x {KEY}"), ROUTE)
    assert policy.calls == [None, {"API_KEY": Operator.PSEUDONYMIZE}]


def test_reroute_to_device_sends_raw_to_device_and_records_reroute() -> None:
    signer = HmacSigner()
    out = make_gate(signer=signer).outbound(chat("I have diabetes"), ROUTE)
    assert out.route.recipient.id == "phone"
    assert out.rerouted and "health-local" in out.decision.rule_ids
    assert signer.hops[-1].route.recipient.id == "phone"


def test_taint_is_sticky_across_turns() -> None:
    gate = make_gate()
    gate.outbound(chat("I have diabetes", cid="t"), ROUTE)
    later = gate.outbound(chat("what should I eat?", cid="t"), ROUTE)
    assert later.route.recipient.id == "phone"
    other = gate.outbound(chat("what should I eat?", cid="u"), ROUTE)
    assert other.route.recipient.id == "cloud"


def test_policy_block_is_recorded_and_names_rule() -> None:
    rec = ListRecorder()
    with pytest.raises(Blocked, match="no-way") as info:
        make_gate(decider=BlockAll(), recorder=rec).outbound(chat("hello"), ROUTE)
    assert info.value.stage == "decide" and info.value.rule_ids == ("no-way",)
    assert rec.directions() == ["block"]
    assert info.value.record_id


@pytest.mark.parametrize("stage,attr", [
    ("detect", "detector"), ("decide", "decider"), ("transform", "transformer"), ("sign", "signer"),
])
def test_a_raising_stage_blocks_and_is_recorded(stage: str, attr: str) -> None:
    rec = ListRecorder()
    method = {"detector": "detect", "decider": "decide", "transformer": "transform", "signer": "sign"}[attr]
    broken = Raising(method, RuntimeError(f"boom {KEY}"))
    if attr == "decider":
        broken = Returning("entities_for", None, Raising("decide", RuntimeError(KEY)))  # type: ignore[assignment]
    kwargs = {attr: broken, "recorder": rec}
    gate = make_gate(**kwargs)
    with pytest.raises(Blocked) as info:
        gate.outbound(chat(f"key {KEY}"), ROUTE)
    assert info.value.stage == stage
    assert KEY not in str(info.value)  # a third-party message may hold raw data: never echoed
    if attr == "signer":
        assert rec.entries == [] and "could not be recorded" in str(info.value)
    else:
        assert rec.directions() == ["block"]


def test_a_raising_recorder_blocks_and_says_the_block_was_not_recorded() -> None:
    with pytest.raises(Blocked, match="could not be recorded") as info:
        make_gate(recorder=Raising("record", OSError("disk full"))).outbound(chat("hi"), ROUTE)
    assert info.value.stage == "record"


def test_a_hanging_stage_blocks_within_its_timeout_and_is_recorded() -> None:
    rec = ListRecorder()
    gate = make_gate(detector=Hanging(5.0, RegexDetector(), "detect"), recorder=rec,
                     timeouts={"detect": 0.2})
    with pytest.raises(Blocked, match="timed out after 0.2 s") as info:
        gate.outbound(chat(f"key {KEY}"), ROUTE)
    assert info.value.stage == "detect"
    assert rec.directions() == ["block"]


def test_a_hanging_stage_blocks_in_the_async_gate_too() -> None:
    rec = ListRecorder()
    gate = make_gate(transformer=Hanging(5.0, Pseudonymizer(), "transform"), recorder=rec,
                     timeouts={"transform": 0.2})
    with pytest.raises(Blocked, match="transform: timed out"):
        asyncio.run(gate.outbound_async(chat(f"key {KEY}"), ROUTE))
    assert rec.directions() == ["block"]


@pytest.mark.parametrize("attr,method,value,match", [
    ("detector", "detect", "not findings", "returned str, expected list or tuple"),
    ("detector", "detect", [Finding(entity_type="X", start=0, end=999, score=1, detector="d", path="turns[0].content")],
     "past the field's end"),
    ("detector", "detect", [Finding(entity_type="X", start=0, end=1, score=1, detector="d", path="turns[7].content")],
     "does not have"),
    ("transformer", "transform", None, "returned NoneType, expected Message"),
    ("signer", "sign", b"raw", "returned bytes, expected Signed"),
])
def test_an_invalid_stage_result_blocks(attr: str, method: str, value: object, match: str) -> None:
    rec = ListRecorder()
    inner = {"detector": RegexDetector(), "transformer": Pseudonymizer(), "signer": HmacSigner()}[attr]
    with pytest.raises(Blocked, match=match):
        make_gate(**{attr: Returning(method, value, inner), "recorder": rec}).outbound(chat(f"k {KEY}"), ROUTE)
    if attr != "signer":
        assert rec.directions() == ["block"]


def test_a_transform_that_leaves_the_value_in_another_turn_blocks() -> None:
    class FirstOnly(Pseudonymizer):
        def transform(self, message, findings, operators):  # type: ignore[no-untyped-def]
            return super().transform(message, findings[:1], operators)

    msg = Message.from_openai([{"role": "user", "content": f"a {KEY}"},
                               {"role": "user", "content": f"b {KEY}"}], conversation_id="c")
    with pytest.raises(Blocked, match="still present after the transform"):
        make_gate(transformer=FirstOnly()).outbound(msg, ROUTE)


def test_tool_call_arguments_are_transformed() -> None:
    msg = Message.from_openai([
        {"role": "user", "content": "call it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "login", "arguments": json.dumps({"k": KEY})}}]},
        {"role": "tool", "tool_call_id": "t1", "content": f"used {KEY}"},
    ], conversation_id="c")
    out = make_gate().outbound(msg, ROUTE)
    assert KEY not in out.message.canonical_bytes().decode()
    assert out.message.turns is not None and out.message.turns[1].tool_calls is not None
    json.loads(out.message.turns[1].tool_calls[0].function.arguments)


def test_verification_required_without_verifier_blocks() -> None:
    class VerifyPolicy(SimplePolicy):
        def decide(self, findings, route, **kw):  # type: ignore[no-untyped-def]
            d = super().decide(findings, route, **kw)
            return d.model_copy(update={"verify": VerifyRequirement(quorum=2, of=3)})

    rec = ListRecorder()
    gate = make_gate(decider=VerifyPolicy(), recorder=rec)
    out = gate.outbound(chat("2+2?"), ROUTE)
    with pytest.raises(Blocked, match="no verifier"):
        gate.inbound(Message.from_text("4", conversation_id="c1"), out.route, request=out)
    with pytest.raises(Unverified, match="quorum 2 of 3 not met"):
        make_gate(decider=VerifyPolicy(), verifier=FixedVerifier(False)).inbound(
            Message.from_text("5", conversation_id="c1"), out.route, request=out)
    ok = make_gate(decider=VerifyPolicy(), verifier=FixedVerifier(True)).inbound(
        Message.from_text("4", conversation_id="c1"), out.route, request=out)
    assert ok.verdict is not None and ok.verdict.verified
    assert rec.directions() == ["outbound", "block"]


def test_inbound_rejects_a_response_from_another_conversation() -> None:
    gate = make_gate()
    out = gate.outbound(chat(f"k {KEY}", cid="mine"), ROUTE)
    with pytest.raises(Blocked, match="different conversation"):
        gate.inbound(Message.from_text("<SECRET_1>", conversation_id="theirs"), out.route, request=out)


def test_peer_message_is_authenticated_before_use_and_taints() -> None:
    rec = ListRecorder()
    gate = make_gate(authenticator=TrustAll(), recorder=rec)
    with pytest.raises(Blocked, match="signed by 'agent-b' but the message claims to come from 'cloud'"):
        gate.inbound(Message.from_text("hello", conversation_id="p"), Route.between(CLOUD, DEVICE), envelope=b"ok:p")
    peer = Route.between(Endpoint(id="agent-b", kind="agent", jurisdiction="DE"), DEVICE)
    with pytest.raises(Blocked, match="bad signature"):
        gate.inbound(Message.from_text("hello", conversation_id="p"), peer, envelope=b"forged")
    got = gate.inbound(Message.from_text("hello", conversation_id="p"), peer, envelope=b"ok:p")
    assert got.peer is not None and got.peer.sender == "agent-b"
    assert gate.taint.get("p") == frozenset({"health"})
    assert rec.directions() == ["block", "block", "inbound"]


def test_stream_inbound_restores_split_placeholders_and_records_once() -> None:
    rec = ListRecorder()
    gate = make_gate(recorder=rec)
    out = gate.outbound(chat(f"k {KEY}"), ROUTE)
    reply = "Rotate <SECRET_1> today, then <SECRET_1> again."
    for cut in range(1, len(reply)):
        s = gate.stream_inbound(out.route, request=out)
        text = s.feed(reply[:cut]) + s.feed(reply[cut:]) + s.finish()["content"]
        assert text == reply.replace("<SECRET_1>", KEY)
    assert rec.directions().count("inbound") == len(reply) - 1


def test_async_gate_matches_sync() -> None:
    gate = make_gate()
    out = asyncio.run(gate.outbound_async(chat(f"k {KEY}"), ROUTE))
    assert KEY not in out.message.canonical_bytes().decode()
    back = asyncio.run(gate.inbound_async(Message.from_text("<SECRET_1>", conversation_id="c1"), out.route,
                                          request=out))
    assert back.message.text == KEY


def test_unknown_timeout_stage_is_rejected() -> None:
    with pytest.raises(ValueError, match="stage 'detection', which does not exist"):
        make_gate(timeouts={"detection": 1.0})


def test_gate_without_timeouts_runs_inline() -> None:
    gate: Gate = make_gate(timeouts={k: None for k in ("detect", "decide", "transform", "sign", "record",
                                                         "authenticate", "restore", "verify")})
    out = gate.outbound(chat(f"k {KEY}"), ROUTE)
    assert KEY not in out.message.canonical_bytes().decode()


def test_stream_inbound_channels_are_restored_independently() -> None:
    gate = make_gate()
    out = gate.outbound(chat(f"k {KEY}"), ROUTE)
    s = gate.stream_inbound(out.route, request=out)
    a = s.feed("use <SEC", "content")
    b = s.feed('{"k": "<SECRET', "tool0")
    a += s.feed("RET_1> ok", "content") + s.flush("content")
    b += s.feed('_1>"}', "tool0")
    tails = s.finish()
    assert a == f"use {KEY} ok" and b + tails["tool0"] == f'{{"k": "{KEY}"}}'
    with pytest.raises(Blocked, match="after it was flushed"):
        s2 = gate.stream_inbound(out.route, request=out)
        s2.feed("x")
        s2.flush()
        s2.feed("y")


def test_a_stream_records_one_end_naming_its_request_and_abandon_only_when_nothing_else_did() -> None:
    signer, rec = HmacSigner(), ListRecorder()
    gate = make_gate(signer=signer, recorder=rec)
    out = gate.outbound(chat(f"k {KEY}"), ROUTE)

    left = gate.stream_inbound(out.route, request=out)
    left.feed("Rotate <SECRET_1> to")
    left.abandon("the client left")
    left.abandon("the client left")  # once is enough
    with pytest.raises(Blocked, match="already ended"):
        left.finish()  # nothing more is recorded for it
    assert rec.directions() == ["outbound", "block"]
    assert signer.hops[-1].reason == "the answer ended before it was complete: the client left"
    assert signer.hops[-1].parents == (out.record.digest,)

    done = gate.stream_inbound(out.route, request=out)
    done.feed("fine")
    done.finish()
    done.abandon("the client left")  # after the inbound record: nothing to add
    broken = gate.stream_inbound(out.route, request=out)
    broken.feed("x")
    broken.flush()
    with pytest.raises(Blocked, match="after it was flushed") as blocked:
        broken.feed("y")
    broken.abandon("the stream failed")  # its block is its record
    assert rec.directions() == ["outbound", "block", "inbound", "block"]
    block = signer.hops[-1]  # a stream's block names the request it answers, and its decision
    assert block.stage == "restore" and block.parents == (out.record.digest,)
    assert block.decision == out.decision and blocked.value.record_id


def test_a_turn_field_no_stage_reads_blocks_the_message_whoever_built_it() -> None:
    rec = ListRecorder()
    gate = make_gate(recorder=rec)
    legacy = Message.from_openai([{"role": "user", "content": "hi"}, {"role": "assistant", "function_call": {
        "name": "send", "arguments": f'{{"key": "{KEY}"}}'}}], conversation_id="c1")
    with pytest.raises(Blocked, match=r"messages\[1\] field 'function_call' is not understood") as blocked:
        gate.outbound(legacy, ROUTE)
    assert blocked.value.stage == "parse" and KEY not in str(blocked.value)
    assert rec.directions() == ["block"] and KEY.encode() not in rec.entries[0]
    dumped = Message.from_openai([{"role": "user", "content": f"k {KEY}"}, {"role": "assistant", "content": "ok",
                                  "refusal": None, "annotations": []}], conversation_id="c1")
    assert KEY not in json.dumps(gate.outbound(dumped, ROUTE).message.to_openai())  # empty ones pass


def test_plan_detects_and_decides_without_signing() -> None:
    rec = ListRecorder()
    findings, decision = make_gate(recorder=rec).plan(chat(f"k {KEY}"), ROUTE)
    assert [f.entity_type for f in findings] == ["API_KEY"] and decision.outcome is Outcome.TRANSFORM
    assert rec.entries == []
    _, blocked = make_gate(recorder=rec, decider=BlockAll()).plan(chat("x"), ROUTE)
    assert blocked.outcome is Outcome.BLOCK  # a plan reports the decision; acting on it is the caller's job
    with pytest.raises(Blocked, match="detect"):
        make_gate(recorder=rec, detector=Raising("detect", RuntimeError())).plan(chat("x"), ROUTE)
    assert rec.directions() == ["block"]


def test_a_short_value_left_by_the_transform_blocks_as_a_whole_word() -> None:
    class KeepsCvv(Pseudonymizer):
        def transform(self, message, findings, operators):  # type: ignore[no-untyped-def]
            return message

    class CvvDetector(RegexDetector):
        def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
            text = dict(message.texts())["turns[0].content"]
            at = text.index("987")
            return [Finding(entity_type="API_KEY", start=at, end=at + 3, score=1, detector="t",
                            path="turns[0].content")]

    with pytest.raises(Blocked, match="still present after the transform"):
        make_gate(detector=CvvDetector(), transformer=KeepsCvv()).outbound(chat("cvv 987 ok"), ROUTE)


def test_a_reroute_reuses_detection_when_the_target_needs_the_same_types() -> None:
    detector = RegexDetector()
    out = make_gate(detector=detector).outbound(chat("I have diabetes"), ROUTE)
    assert out.route.recipient.id == "phone" and out.findings
    assert detector.calls == 1  # SimplePolicy asks the same entity types for every route


def test_warm_calls_each_stage_that_can_warm_once() -> None:
    class WarmPseudonymizer(Pseudonymizer):
        warmed = 0

        def warm(self) -> None:
            self.warmed += 1

    stage = WarmPseudonymizer()          # one object as transformer and restorer: warmed once
    gate = make_gate(transformer=stage, restorer=stage)
    gate.warm()
    assert stage.warmed == 1
    gate.warm()
    assert stage.warmed == 2
