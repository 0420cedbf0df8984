"""Small, real stages for testing the gate machinery without the heavy parts.

They do real work (regex detection, reversible placeholders, HMAC signing, an
in-memory log) so that tests observe what actually crossed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence

from trustlayer.stages import PeerRecord, Signed
from trustlayer.types import (
    Decision,
    Endpoint,
    Finding,
    Hop,
    Message,
    Operator,
    Outcome,
    Route,
    Verdict,
    VerifyRequirement,
)

SECRET = re.compile(r"\bsk-[A-Za-z0-9]{8,}\b")
HEALTH = re.compile(r"\b(diabetes|HIV)\b", re.IGNORECASE)
PLACEHOLDER = re.compile(r"<SECRET_(\d+)>")

DEVICE = Endpoint(id="phone", kind="device", jurisdiction="DE", box="white")
CLOUD = Endpoint(id="cloud", kind="cloud", jurisdiction="US", url="http://127.0.0.1:9/v1", model="m")


def chat(text: str, cid: str = "c1") -> Message:
    """One user turn of conversation ``cid``."""
    return Message.from_openai([{"role": "user", "content": text}], conversation_id=cid)


class RegexDetector:
    def __init__(self) -> None:
        self.calls = 0

    def detect(self, message: Message, *, entities: frozenset[str] | None = None) -> list[Finding]:
        self.calls += 1
        out = []
        for path, text in message.texts():
            for m in SECRET.finditer(text):
                out.append(Finding(entity_type="API_KEY", start=m.start(), end=m.end(), score=1.0,
                                   detector="regex", path=path, validated=True))
            for m in HEALTH.finditer(text):
                out.append(Finding(entity_type="MEDICAL_CONDITION", start=m.start(), end=m.end(), score=0.9,
                                   detector="regex", path=path))
        return out


class SimplePolicy:
    """Secrets are pseudonymized for the cloud; health data is rerouted to the device."""

    def __init__(self) -> None:
        self.calls: list[Mapping[str, Operator] | None] = []

    def entities_for(self, route: Route) -> frozenset[str] | None:
        return frozenset({"API_KEY", "MEDICAL_CONDITION"})

    def decide(self, findings: Sequence[Finding], route: Route, *, taint: frozenset[str] = frozenset(),
               applied: Mapping[str, Operator] | None = None, candidates: Sequence[Endpoint] = ()) -> Decision:
        self.calls.append(applied)
        classes = set(taint)
        for f in findings:
            classes.add("secrets" if f.entity_type == "API_KEY" else "health")
        did = uuid.uuid4().hex
        if route.recipient.kind == "device":
            return Decision(id=did, outcome=Outcome.ALLOW, endpoint=route.recipient.id, classes=frozenset(classes),
                            rule_ids=("device-ok",))
        if "health" in classes:
            return Decision(id=did, outcome=Outcome.REROUTE, endpoint=route.sender.id,
                            classes=frozenset(classes), rule_ids=("health-local",),
                            reasons=("health data stays on the device",))
        if "secrets" in classes and not (applied and "API_KEY" in applied):
            return Decision(id=did, outcome=Outcome.TRANSFORM, endpoint=route.recipient.id,
                            classes=frozenset(classes), operators={"API_KEY": Operator.PSEUDONYMIZE},
                            rule_ids=("secrets-pseudo",))
        return Decision(id=did, outcome=Outcome.ALLOW, endpoint=route.recipient.id, classes=frozenset(classes),
                        rule_ids=("default-allow",))


class BlockAll(SimplePolicy):
    def decide(self, findings: Sequence[Finding], route: Route, **kw: object) -> Decision:
        return Decision(id="d", outcome=Outcome.BLOCK, endpoint=route.recipient.id, rule_ids=("no-way",),
                        reasons=("rule 'no-way' forbids everything",))


class Vault:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()

    def placeholder(self, cid: str, value: str) -> str:
        with self.lock:
            for (c, ph), v in self.values.items():
                if c == cid and v == value:
                    return ph
            ph = f"<SECRET_{len(self.values) + 1}>"
            self.values[(cid, ph)] = value
            return ph


class Pseudonymizer:
    """Transformer + Restorer + StreamRestorer factory."""

    def __init__(self, vault: Vault | None = None) -> None:
        self.vault = vault or Vault()

    def transform(self, message: Message, findings: Sequence[Finding],
                  operators: Mapping[str, Operator]) -> Message:
        fields = dict(message.texts())
        new: dict[str, str] = {}
        for path in {f.path for f in findings}:
            text = fields[path]
            for f in sorted((f for f in findings if f.path == path and f.entity_type in operators),
                            key=lambda f: -f.start):
                ph = self.vault.placeholder(message.conversation_id, text[f.start:f.end])
                if path.endswith("arguments"):
                    ph = ph.replace('"', "")
                text = text[:f.start] + ph + text[f.end:]
            new[path] = text
        return message.replace_texts(new)

    def restore_text(self, text: str, cid: str) -> str:
        def sub(m: re.Match[str]) -> str:
            return self.vault.values.get((cid, m.group(0)), m.group(0))
        return PLACEHOLDER.sub(sub, text)

    def restore(self, message: Message) -> Message:
        return message.replace_texts({p: self.restore_text(t, message.conversation_id)
                                      for p, t in message.texts()})

    def stream(self, conversation_id: str) -> StreamRestore:
        return StreamRestore(self, conversation_id)


class StreamRestore:
    def __init__(self, p: Pseudonymizer, cid: str) -> None:
        self.p, self.cid, self.held = p, cid, ""

    def feed(self, chunk: str) -> str:
        text = self.held + chunk
        cut = text.rfind("<")
        if cut != -1 and ">" not in text[cut:] and len(text) - cut < 20:
            self.held, text = text[cut:], text[:cut]
        else:
            self.held = ""
        return self.p.restore_text(text, self.cid)

    def flush(self) -> str:
        out, self.held = self.p.restore_text(self.held, self.cid), ""
        return out


class HmacSigner:
    """Signs hop records with HMAC (the gate tests need a real, checkable signature, not Ed25519 speed)."""

    def __init__(self) -> None:
        self.key = b"k" * 32
        self.hops: list[Hop] = []

    def sign(self, hop: Hop) -> Signed:
        self.hops.append(hop)
        body = json.dumps({"direction": hop.direction, "conversation": hop.conversation_id,
                           "stage": hop.stage, "digest": hashlib.sha256(hop.content).hexdigest(),
                           "rules": list(hop.decision.rule_ids) if hop.decision else []}).encode()
        sig = hmac.new(self.key, body, "sha256").hexdigest().encode()
        env = body + b"." + sig
        return Signed(envelope=env, digest=hashlib.sha256(env).hexdigest())


class ListRecorder:
    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.lock = threading.Lock()

    def record(self, envelope: bytes) -> int:
        with self.lock:
            self.entries.append(envelope)
            return len(self.entries) - 1

    def directions(self) -> list[str]:
        return [json.loads(e.rsplit(b".", 1)[0])["direction"] for e in self.entries]


class Raising:
    def __init__(self, method: str, exc: Exception) -> None:
        self.method, self.exc = method, exc

    def __getattr__(self, name: str) -> object:
        def fail(*a: object, **k: object) -> object:
            raise self.exc
        if name == self.method:
            return fail
        raise AttributeError(name)


class Hanging:
    def __init__(self, seconds: float, inner: object, method: str) -> None:
        self.seconds, self.inner, self.method = seconds, inner, method

    def __getattr__(self, name: str) -> object:
        if name == "keeps_deadline":  # it sleeps without looking at its deadline, whatever it wraps
            raise AttributeError(name)
        target = getattr(self.inner, name)
        if name != self.method:
            return target

        def slow(*a: object, **k: object) -> object:
            time.sleep(self.seconds)
            return target(*a, **k)
        return slow


class Returning:
    def __init__(self, method: str, value: object, inner: object) -> None:
        self.method, self.value, self.inner = method, value, inner

    def __getattr__(self, name: str) -> object:
        if name == self.method:
            return lambda *a, **k: self.value
        return getattr(self.inner, name)


class FixedVerifier:
    def __init__(self, agree: bool) -> None:
        self.agree = agree

    def verify(self, request: Message, response: Message, route: Route, requirement: VerifyRequirement) -> Verdict:
        text = " ".join(t for _, t in response.texts())
        return Verdict(outcome="verified" if self.agree else "unverified", answer=text if self.agree else None,
                       agreement=1.0 if self.agree else 0.0, quorum=requirement.quorum, of=requirement.of,
                       measure="exact", dissenting=() if self.agree else ("b",))


class TrustAll:
    def authenticate(self, envelope: bytes, *, audience: str, content: bytes) -> PeerRecord:
        if not envelope.startswith(b"ok"):
            from trustlayer.errors import SignatureError
            raise SignatureError("bad signature on the peer record")
        return PeerRecord(sender="agent-b", key_id="k", conversation_id=envelope.decode().split(":")[1],
                          digest="d" * 64, sequence=1, classes=frozenset({"health"}))


_STAGES = ("detector", "decider", "transformer", "signer", "recorder", "restorer", "authenticator", "verifier")


def _gate_parts(over: dict[str, object]) -> dict[str, object]:
    pseudo = Pseudonymizer()
    parts: dict[str, object] = dict(detector=RegexDetector(), decider=SimplePolicy(), transformer=pseudo,
                                    signer=HmacSigner(), recorder=ListRecorder(), restorer=pseudo,
                                    identity="phone", endpoints=(DEVICE, CLOUD))
    parts.update(over)
    return parts


def make_gate(**over: object):  # type: ignore[no-untyped-def]
    from trustlayer.gate import Gate

    return Gate(**_gate_parts(over))  # type: ignore[arg-type]


def keeping_gate(**over: object):  # type: ignore[no-untyped-def]
    """``make_gate`` whose every stage declares that it keeps its deadline (the built-in ones already do).

    The small stages here wait for nothing; a test that passes a stage of its own vouches for it.
    """
    from trustlayer.gate import Gate

    parts = _gate_parts(over)
    for name in _STAGES:
        stage = parts.get(name)
        if stage is not None and getattr(stage, "keeps_deadline", False) is not True:
            stage.keeps_deadline = True  # type: ignore[attr-defined]
    gate = Gate(**parts)  # type: ignore[arg-type]
    assert gate._keeps
    return gate
