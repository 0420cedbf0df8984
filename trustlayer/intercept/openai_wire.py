"""OpenAI wire format ↔ ``Message``: what the transport and the proxy parse and rebuild.

    >>> body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    >>> req = parse_request("/v1/chat/completions", body, conversation_id="c1")
    >>> req.message.turns[0].content
    'hi'
    >>> rebuild_request(req, req.message)["messages"][0]["content"]
    'hi'

Only fields the gate understands may cross: a request carrying a top-level field
that could hold content the gate does not inspect is refused (fail closed) with a
message naming the field. ``user`` is replaced by a keyed digest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from trustlayer._mac import hmac_sha256
from trustlayer._safe import shown
from trustlayer.errors import Blocked
from trustlayer.types import Message, Route

if TYPE_CHECKING:
    from trustlayer.gate import Gate, Outbound

__all__ = [
    "WireRequest",
    "apply_response",
    "chat_message",
    "conversation_id_for",
    "is_llm_path",
    "parse_request",
    "rebuild_request",
    "refused_request",
    "response_message",
    "unreadable_answer",
]

Kind = Literal["chat", "completions"]

# Top-level request fields that hold no free text (or only the schemas of tools), forwarded as they are.
_SAFE_FIELDS = frozenset({
    "model", "temperature", "top_p", "n", "stream", "stream_options", "stop", "max_tokens",
    "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias", "seed", "tools",
    "tool_choice", "response_format", "logprobs", "top_logprobs", "parallel_tool_calls", "functions",
    "function_call", "reasoning_effort", "service_tier", "store", "echo", "best_of",
})

# Safe fields that are free-form JSON in principle: only their documented shape may cross.
_STREAM_OPTIONS = frozenset({"include_usage", "include_obfuscation"})
_SHAPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "stream_options": ("an object of 'include_usage'/'include_obfuscation' flags", lambda v: isinstance(v, dict)
                       and all(k in _STREAM_OPTIONS and isinstance(x, bool) for k, x in v.items())),
    "logit_bias": ("an object mapping token ids to numbers", lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and k.isdigit() and isinstance(x, int | float) for k, x in v.items())),
}

def is_llm_path(path: str) -> Kind | None:
    """``chat`` for a ``.../chat/completions`` path, ``completions`` for ``.../completions``, else None."""
    p = path.rstrip("/")
    if p.endswith("/chat/completions"):
        return "chat"
    if p.endswith("/completions"):
        return "completions"
    return None


def conversation_id_for(body: Mapping[str, Any], key: bytes) -> str:
    """A stable conversation id derived from the conversation's opening turns, keyed so it reveals nothing.

    Later requests of the same chat repeat its opening system and user turns, so
    they map to the same id (and the same placeholders).
    """
    messages = body.get("messages")
    if isinstance(messages, list):
        opening = [m for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")][:1]
        firsts = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"][:1]
        seed: Any = opening + firsts
    else:
        seed = body.get("prompt")
    raw = _SEED.encode(seed).encode()
    return "cv-" + hmac_sha256(key, raw).hex()[:32]


# One encoder, built once: json.dumps with these options would build a new one per call.
_SEED = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A parsed LLM request: its kind, the message the gate sees, and the other fields."""

    kind: Kind
    message: Message
    fields: Mapping[str, Any]
    stream: bool
    prompt_was_list: bool = False


def parse_request(path: str, body: Any, *, conversation_id: str, user_key: bytes = b"") -> WireRequest:
    """Parse an OpenAI ``/chat/completions`` or ``/completions`` body; ``Blocked`` when it can't be gated."""
    kind = is_llm_path(path)
    if kind is None:
        raise Blocked("parse", "the request path is not an OpenAI chat or completions endpoint")
    if not isinstance(body, dict):
        raise Blocked("parse", f"the request body must be a JSON object, found {type(body).__name__}")
    fields: dict[str, Any] = {}
    for name, value in body.items():
        if name in ("messages", "prompt"):
            continue
        if name == "user":
            if not isinstance(value, str):
                raise Blocked("parse", "request field 'user' must be a string")
            fields["user"] = "u-" + hmac_sha256(user_key, value.encode()).hex()[:24]
        elif name in _SAFE_FIELDS:
            shape = _SHAPES.get(name)
            if shape is not None and not shape[1](value):
                raise Blocked("parse", f"request field {name!r} must be {shape[0]}, so that no text crosses in it")
            fields[name] = value
        else:
            raise Blocked("parse", f"request field {shown(name)} is not understood by the gate, so it may not cross")
    stream = bool(body.get("stream", False))
    try:
        if kind == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise Blocked("parse", "a chat request needs a non-empty 'messages' list")
            return WireRequest(kind, chat_message(messages, conversation_id=conversation_id), fields, stream)
        prompt: Any = body.get("prompt")
        as_list = isinstance(prompt, list)
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise Blocked("parse", "a completions request needs 'prompt' as one string (batched prompts are not gated)")
        return WireRequest(kind, Message.from_text(prompt, conversation_id=conversation_id), fields, stream, as_list)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise Blocked("parse", f"request message at {loc or 'top level'} is not valid: {first['msg']}") from None


def chat_message(messages: Sequence[Any], *, conversation_id: str) -> Message:
    """OpenAI chat ``messages`` as a ``Message``; ``Blocked`` naming the place, never the value, when invalid.

    (pydantic's own errors quote the input.) A turn with a field no stage reads parses; the
    gate refuses it on the way out (``_gate_checks.check_inspectable``).
    """
    for i, turn in enumerate(messages):
        if not isinstance(turn, Mapping):
            raise Blocked("parse", f"messages[{i}] must be a JSON object, found {type(turn).__name__}")
    try:
        message = Message.from_openai(messages, conversation_id=conversation_id)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise Blocked("parse", f"request message at {loc or 'top level'} is not valid: {first['msg']}") from None
    return message


def rebuild_request(request: WireRequest, message: Message) -> dict[str, Any]:
    """The request body to forward, with the gate's transformed message in place."""
    body = dict(request.fields)
    if request.kind == "chat":
        body["messages"] = message.to_openai()
    else:
        body["prompt"] = [message.text] if request.prompt_was_list else message.text
    return body


def response_message(data: Mapping[str, Any], kind: Kind, *, conversation_id: str) -> Message:
    """The reply as a message: one assistant turn per choice (tool calls included)."""
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise Blocked("restore", "the upstream response has no 'choices' list")
    turns: list[dict[str, Any]] = []
    for choice in choices:
        if kind == "chat":
            msg = choice.get("message") or {}
            turn = {k: v for k, v in msg.items() if k in ("role", "content", "tool_calls", "name")}
            turn["role"] = "assistant"
            turns.append(turn)
        else:
            turns.append({"role": "assistant", "content": choice.get("text") or ""})
    if not turns:
        turns.append({"role": "assistant", "content": ""})
    try:
        return Message.from_openai(turns, conversation_id=conversation_id)
    except ValidationError:
        raise Blocked("restore", "the upstream response choices are not valid chat messages") from None


def refused_request(gate: Gate, route: Route, blocked: Blocked) -> Blocked:
    """Record ``blocked``, a request refused before the gate could read it, as a block on ``route``.

    A refusal before the gate proper is still a block, and every block is recorded. The
    record holds no content (there is none the gate could vouch for). Returns the recorded
    block to raise.
    """
    empty = Message.from_text("", conversation_id="unparsed")
    return gate.record_block(blocked.stage, blocked.reason, empty, route)


def unreadable_answer(gate: Gate, out: Outbound, blocked: Blocked) -> Blocked:
    """Record ``blocked``, an endpoint's answer to ``out`` that could not be read, as that answer's block.

    The answer never reached the gate, so nothing else would record it; every block is recorded.
    Returns the recorded block to raise.
    """
    empty = Message.from_text("", conversation_id=out.message.conversation_id)
    return gate.record_block(blocked.stage, blocked.reason, empty, out.route, request=out)


def apply_response(data: Mapping[str, Any], kind: Kind, message: Message) -> dict[str, Any]:
    """Write the restored turns back into the response JSON."""
    out = dict(data)
    turns = message.turns or ()
    choices = []
    for i, choice in enumerate(data.get("choices") or []):
        choice = dict(choice)
        turn = turns[i] if i < len(turns) else None
        if turn is not None:
            if kind == "chat":
                msg = dict(choice.get("message") or {})
                dumped = turn.to_openai()
                for key in ("content", "tool_calls", "name"):
                    if key in dumped:
                        msg[key] = dumped[key]
                choice["message"] = msg
            else:
                choice["text"] = turn.content if isinstance(turn.content, str) else ""
        choices.append(choice)
    out["choices"] = choices
    return out
