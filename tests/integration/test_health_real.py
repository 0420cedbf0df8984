"""A health condition in free text under eu-gdpr, through every real stage (Presidio, the policy engine, signed
records, the SQLite audit log) and a real OpenAI-compatible server on 127.0.0.1 standing in for the US cloud."""

from __future__ import annotations

from typing import Any

from proxy_upstream import Upstream

from trustlayer import TrustLayer, conversation, guard, route
from trustlayer.audit.store import open_store
from trustlayer.audit.verify import verify_log
from trustlayer.demo.workspace import Workspace
from trustlayer.provenance import Keyring, VerifyKey

STATEMENT = "I was diagnosed with type 2 diabetes last year and I'm on metformin. What should I eat for breakfast?"
QUESTION = "What causes type 2 diabetes, and how does metformin work?"


def test_a_stated_condition_stays_on_the_device_and_a_general_question_goes_out_unaltered(
        ws: Workspace, cloud: tuple[Upstream, str]) -> None:
    state, _ = cloud
    told: list[tuple[str, str]] = []
    with TrustLayer.from_config(ws.phone) as tl:
        @guard(layer=tl, to="us-cloud")
        def ask(messages: list[dict[str, Any]], endpoint: str = "us-cloud") -> dict[str, Any]:
            told.append((endpoint, messages[-1]["content"]))
            if endpoint == "phone":  # the device answers itself (no local model is loaded in this test)
                return {"choices": [{"message": {"role": "assistant", "content": "answered on the device"}}]}
            return tl.client(endpoint).complete(messages)

        before = len(state.received)
        with conversation("health-1"):
            reply = ask([{"role": "user", "content": STATEMENT}])
        assert told[-1] == ("phone", STATEMENT)  # rerouted, and on the device the question stays as asked
        assert len(state.received) == before  # the cloud saw nothing
        assert reply["choices"][0]["message"]["content"] == "answered on the device"

        with conversation("health-2"):
            reply = ask([{"role": "user", "content": QUESTION}])
        assert told[-1] == ("us-cloud", QUESTION)
        assert len(state.received) == before + 1
        assert QUESTION in state.last().everything()  # a general question leaves unaltered
        assert reply["choices"][0]["message"]["content"] == f"You said: {QUESTION}"

        @route(layer=tl)
        def pick(prompt: str) -> str:
            return "us-cloud"

        with conversation("health-3"):
            assert pick("I was diagnosed with diabetes and my daughter has epilepsy") == "phone"
        with conversation("health-4"):
            assert pick("explain how insulin works") == "us-cloud"

    ring = Keyring()
    for p in ws.public_keys:
        ring.add(VerifyKey.from_file(p), owner=p.name.split(".")[0])
    store = open_store(f"sqlite:///{ws.audit_db}")
    try:
        assert verify_log(store, record_keys=ring, log_keys=ring).ok
    finally:
        store.close()
    # Records hold digests and counts: the conditions themselves are nowhere in the audit files.
    stored = b"".join(p.read_bytes() for p in ws.audit_db.parent.glob(ws.audit_db.name + "*"))
    assert stored and b"metformin" not in stored and b"epilepsy" not in stored and b"diabetes" not in stored
