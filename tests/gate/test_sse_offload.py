"""The SSE rewriter on an event loop: the bytes that end a stream (and sign it) go through the gate's offload."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import pytest
from stagekit import CLOUD, DEVICE, ListRecorder, make_gate

from trustlayer.intercept.sse import SseRewriter
from trustlayer.types import Message, Route

ROUTE = Route.between(DEVICE, CLOUD)
EVENT = b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "hello"}}]}).encode() + b"\n\n"


class WhereRecorded(ListRecorder):
    """Notes, for every record, whether it was made inside the offload callable."""

    def __init__(self) -> None:
        super().__init__()
        self.offloading = False
        self.inside: list[bool] = []

    def record(self, envelope: bytes) -> int:
        self.inside.append(self.offloading)
        return super().record(envelope)


@pytest.mark.parametrize("reads", [
    (EVENT, b"data: [DONE]\n\n"),
    (EVENT, b"data: [DO", b"NE]\n\n"),  # the upstream split the last event across two reads
])
def test_the_end_of_the_stream_is_signed_through_offload(reads: tuple[bytes, ...]) -> None:
    rec = WhereRecorded()
    gate = make_gate(recorder=rec)
    out = gate.outbound(Message.from_openai([{"role": "user", "content": "hi"}], conversation_id="c-sse"), ROUTE)

    async def offload(fn: Callable[[], bytes]) -> bytes:
        rec.offloading = True
        try:
            return fn()
        finally:
            rec.offloading = False

    async def main() -> bytes:
        rewriter = SseRewriter(gate.stream_inbound(out.route, request=out), "chat")
        return b"".join([await rewriter.feed_async(data, offload) for data in reads])

    sent = anyio.run(main)
    assert b"hello" in sent and sent.endswith(b"data: [DONE]\n\n")
    assert rec.directions() == ["outbound", "inbound"]
    assert rec.inside == [False, True]  # the inbound record was made inside offload, not on the loop
