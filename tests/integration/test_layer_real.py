"""TrustLayer.from_config with every real stage: Presidio, the eu-gdpr policy, Ed25519 records,
the SQLite audit log, and a real OpenAI-compatible server on 127.0.0.1 standing in for the cloud."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from proxy_upstream import Upstream

from trustlayer import Blocked, TrustLayer, agent, conversation, guard, receive_message, route, send_message
from trustlayer.audit.store import open_store
from trustlayer.audit.verify import verify_log
from trustlayer.demo.workspace import Workspace
from trustlayer.provenance import Keyring, SigningKey, VerifyKey
from trustlayer.types import Message

NAME = "Maria Schmidt"
EMAIL = "maria.schmidt@example.de"
TOKEN = "ghp_8kZ2mQ9xR4vT7wY1bN5cL3pD6fH0jS2aE4gU"


def verify(ws: Workspace) -> Any:
    ring = Keyring()
    for p in ws.public_keys:
        ring.add(VerifyKey.from_file(p), owner=p.name.split(".")[0])
    store = open_store(f"sqlite:///{ws.audit_db}")
    try:
        return verify_log(store, record_keys=ring, log_keys=ring)
    finally:
        store.close()


def test_personal_data_and_credential_leave_pseudonymized_and_come_back(
        ws: Workspace, cloud: tuple[Upstream, str]) -> None:
    state, _ = cloud
    with TrustLayer.from_config(ws.phone) as tl:
        @guard(layer=tl, to="us-cloud")
        def ask(messages: list[dict[str, Any]]) -> dict[str, Any]:
            return tl.client("us-cloud").complete(messages)

        before = len(state.received)
        with conversation("real-1"):
            reply = ask([{"role": "system", "content": "be brief"},
                         {"role": "user", "content": f"I am {NAME}, mail {EMAIL}, token {TOKEN}"}])
        assert len(state.received) == before + 1
        seen = state.last().everything()
        for value in (NAME, EMAIL, TOKEN):
            assert value not in seen
        # The recording server echoes the user's text: the caller gets the raw values back.
        assert reply["choices"][0]["message"]["content"] == f"You said: I am {NAME}, mail {EMAIL}, token {TOKEN}"
    assert verify(ws).ok


def test_health_data_router_pick_is_rerouted_and_recorded(ws: Workspace, cloud: tuple[Upstream, str]) -> None:
    state, _ = cloud
    with TrustLayer.from_config(ws.phone) as tl:
        @route(layer=tl)
        def pick(prompt: str) -> str:
            return "us-cloud"

        with conversation("real-2"):
            assert pick("Patient medical record number MRN 48213377 needs a refill") == "phone"
            # sticky taint: a clean follow-up in the same conversation stays on the device too
            assert pick("what time is it?") == "phone"
        assert pick("what time is it?") == "us-cloud"

        @route(layer=tl, fallback="block")
        def strict(prompt: str) -> str:
            return "us-cloud"

        with pytest.raises(Blocked, match="health-stays-on-device|forbids"):
            strict("Patient medical record number MRN 48213377 needs a refill")
    report = verify(ws)
    assert report.ok and report.size == 3  # two refusals rerouted + one block, each recorded


def test_agents_authenticate_and_reject_forged_replayed_and_unknown(ws: Workspace) -> None:
    with TrustLayer.from_config(ws.planner) as planner, TrustLayer.from_config(ws.reviewer) as reviewer:
        @agent("reviewer", layer=reviewer)
        def review(text: str) -> str:
            return f"ok: {len(text)} characters"

        msg = send_message(planner, to="reviewer", text=f"plan for {NAME}", conversation_id="a1")
        reply = review(msg)
        assert receive_message(planner, reply).message.text == f"ok: {len(msg.text)} characters"

        with pytest.raises(Blocked, match="content mismatch"):
            review(msg.model_copy(update={"text": msg.text + "!"}))
        with pytest.raises(Blocked, match="replay"):
            review(msg)
        # A message signed by a key nobody trusts, dressed as the planner's.
        mallory = SigningKey.generate()
        from trustlayer.provenance.dsse import open_envelope, sign_envelope

        verified = open_envelope(msg.envelope_bytes(), Keyring.from_config(planner.config))  # type: ignore[arg-type]
        forged_env = sign_envelope(verified.payload, verified.payload_type, mallory)
        forged = msg.model_copy(update={"envelope": base64.b64encode(forged_env).decode()})
        with pytest.raises(Blocked, match="unknown key|untrusted|not trusted"):
            review(forged)
        with pytest.raises(Blocked, match="addressed to 'planner'"):
            review(msg.model_copy(update={"recipient": "planner"}))
    report = verify(ws)
    assert report.ok, report.problems


def test_any_stage_failure_blocks_and_is_recorded_with_real_stages(ws: Workspace,
                                                                    cloud: tuple[Upstream, str]) -> None:
    state, _ = cloud
    with TrustLayer.from_config(ws.phone) as tl:
        real = tl.gate._transformer  # noqa: SLF001 - fault injection into the real gate

        class Broken:
            def transform(self, *a: Any, **k: Any) -> Any:
                raise OSError(f"vault unavailable for {NAME}")

        tl.gate._transformer = Broken()  # type: ignore[assignment]
        before = len(state.received)

        @guard(layer=tl, to="us-cloud")
        def ask(prompt: str) -> str:
            return str(tl.client("us-cloud").complete([{"role": "user", "content": prompt}])["choices"][0])

        with pytest.raises(Blocked, match="blocked at transform: OSError raised") as info:
            ask(f"mail {EMAIL}")
        assert NAME not in str(info.value)
        assert len(state.received) == before
        tl.gate._transformer = real
    report = verify(ws)
    assert report.ok and report.size == 1


def test_policy_reload_applies_to_later_messages_only(ws: Workspace, tmp_path: Path) -> None:
    import shutil

    import yaml

    from trustlayer.policy import shipped_policy_path

    policy = tmp_path / "policy.yaml"
    shutil.copy(shipped_policy_path("eu-gdpr"), policy)
    cfg_data = yaml.safe_load(ws.phone.read_text())
    cfg_data["policy"] = str(policy)
    cfg_data["verify"] = {"endpoints": ["us-cloud"]}
    ws.phone.write_text(yaml.safe_dump(cfg_data))
    with TrustLayer.from_config(ws.phone) as tl:
        panel_prepare = tl.gate._verifier._policy  # type: ignore[attr-defined]  # how consensus readies a panel request

        def panel_request() -> object:
            message = Message.from_text(f"mail {EMAIL}", conversation_id="cv-panel")
            return asyncio.run(panel_prepare(message, tl.route_to("us-cloud")))

        @route(layer=tl, fallback="block")
        def pick(prompt: str) -> str:
            return "us-cloud"

        assert pick(f"mail {EMAIL}") == "us-cloud"
        old_gate = tl.gate
        data = yaml.safe_load(policy.read_text())
        data["default"] = "forbid"
        data["rules"] = [r for r in data["rules"] if r["effect"] == "forbid"]
        policy.write_text(yaml.safe_dump(data))
        assert pick(f"mail {EMAIL}") == "us-cloud"          # not applied before reload
        panel_request()                                     # the panel, too, follows the old policy until reload
        tl.reload_policy()
        assert tl.gate is not old_gate and tl.gate.taint is old_gate.taint
        with pytest.raises(Blocked):
            pick(f"mail {EMAIL}")
        with pytest.raises(Blocked):                        # and the new one after it
            panel_request()
        policy.write_text("version: 1\nrules: [}")
        with pytest.raises(Exception, match="YAML syntax error"):
            tl.reload_policy()
        with pytest.raises(Blocked):                        # the last good policy stays in force
            pick(f"mail {EMAIL}")


def test_warm_loads_detection_before_the_first_message(ws: Workspace) -> None:
    import subprocess
    import sys
    import textwrap

    # A fresh process, so that nothing another test loaded counts.
    script = textwrap.dedent(f"""
        from trustlayer import TrustLayer
        from trustlayer.redaction import nlp
        with TrustLayer.from_config({str(ws.phone)!r}) as tl:
            assert nlp._engine is None, "loaded before warm()"
            tl.warm()
            assert nlp._engine is not None, "warm() did not load the NER model"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_real_stages_keep_their_deadlines_so_a_locked_audit_log_blocks_in_time(
        ws: Workspace, cloud: tuple[Upstream, str]) -> None:
    import sqlite3
    import threading

    import yaml

    state, _ = cloud
    data = yaml.safe_load(ws.phone.read_text())
    data["gate"]["timeouts"]["record"] = 0.5
    ws.phone.write_text(yaml.safe_dump(data))
    with TrustLayer.from_config(ws.phone) as tl:
        # Every built-in stage bounds its own waits: paths run in the caller's thread, no worker to abandon.
        assert tl.gate._keeps  # noqa: SLF001

        @guard(layer=tl, to="us-cloud")
        def ask(prompt: str) -> str:
            return str(tl.client("us-cloud").complete([{"role": "user", "content": prompt}])["choices"][0])

        ask(f"mail {EMAIL}")  # loads the NER model, opens the log
        sent = len(state.received)
        other = sqlite3.connect(ws.audit_db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the log's write lock and does not let go
        errors: list[BaseException] = []

        def call() -> None:
            try:
                ask(f"mail {EMAIL}")
            except BaseException as exc:  # noqa: BLE001 - looked at below
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        caller.join(timeout=20)  # SQLite's own busy timeout is 30 s: an unbounded wait would still be waiting
        try:
            assert not caller.is_alive(), "the guarded call waited for a log another writer still locks"
            assert len(errors) == 1 and isinstance(errors[0], Blocked), errors
            assert errors[0].stage == "record" and "timed out after 0.5 s" in str(errors[0])
            assert "could not be recorded" in str(errors[0])  # the block could not be written either
            assert EMAIL not in str(errors[0])
            assert len(state.received) == sent  # nothing left
        finally:
            other.execute("ROLLBACK")
            other.close()
        ask(f"mail {EMAIL}")  # the log is free again
        assert len(state.received) == sent + 1
    report = verify(ws)
    assert report.ok, report.problems
