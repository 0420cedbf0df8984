"""``@agent``: gate agent-to-agent messages in both directions, with signed provenance.

    >>> from trustlayer import agent, send_message, receive_message
    >>> @agent("reviewer", layer=tl_reviewer)                        # doctest: +SKIP
    ... def review(text: str) -> str:
    ...     return "looks fine"
    >>> msg = send_message(tl_writer, to="reviewer", text="draft ...", conversation_id="c1")   # doctest: +SKIP
    >>> reply = review(msg)                                          # doctest: +SKIP
    >>> receive_message(tl_writer, reply).message.text              # doctest: +SKIP

A message between agents carries the sender's signed record (a DSSE envelope). The
receiving side authenticates it — trusted key, signature, audience, nonce, time,
content digest — before the handler sees the text; the handler's reply goes back
through the outbound path (policy, redaction, signing) addressed to the sender.
The wrapped handler takes and returns ``AgentMessage`` (it is the agent's endpoint).
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trustlayer._safe import shown
from trustlayer.errors import Blocked, ConfigError
from trustlayer.gate import Inbound
from trustlayer.layer import TrustLayer
from trustlayer.types import Message, Route

__all__ = ["AgentMessage", "agent", "receive_message", "send_message"]


class AgentMessage(BaseModel):
    """What travels between agents: the (policy-transformed) text and the sender's signed record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sender: str
    recipient: str
    conversation_id: str = Field(min_length=1, max_length=256)
    text: str
    envelope: str = Field(description="base64 of the DSSE envelope bytes signed by the sender")

    def envelope_bytes(self) -> bytes:
        """The envelope bytes; ``Blocked`` when the field is not base64."""
        try:
            return base64.b64decode(self.envelope, validate=True)
        except (binascii.Error, ValueError):
            raise Blocked("authenticate", "the agent message's envelope is not valid base64") from None


def send_message(layer: TrustLayer, *, to: str, text: str, conversation_id: str,
                 parents: Sequence[str] = ()) -> AgentMessage:
    """Send ``text`` to agent ``to`` through the outbound path; return the signed message to deliver."""
    out = layer.gate.outbound(Message.from_text(text, conversation_id=conversation_id), layer.route_to(to),
                              parents=parents)
    if out.route.recipient.id != to:
        raise layer.gate.record_block("send", f"policy rerouted a message for agent {to!r} to "
                                      f"{out.route.recipient.id!r}; agent messages are not redirected",
                                      out.message, out.route, out.decision)
    return AgentMessage(sender=layer.me.id, recipient=to, conversation_id=conversation_id,
                        text=out.message.text or "", envelope=base64.b64encode(out.record.envelope).decode())


def receive_message(layer: TrustLayer, message: AgentMessage) -> Inbound:
    """Authenticate and take in a message from another agent (``Blocked`` when it does not verify)."""
    content = Message.from_text(message.text, conversation_id=message.conversation_id)
    try:
        sender = layer.endpoint(message.sender)
    except ConfigError:
        raise layer.gate.record_block("authenticate", f"agent message from undeclared sender {shown(message.sender)}",
                                      content, layer.route_to(layer.me.id)) from None
    route = Route.between(sender, layer.me)
    if message.recipient != layer.me.id:
        raise layer.gate.record_block("authenticate", f"agent message addressed to {shown(message.recipient)} "
                                      f"arrived at {layer.me.id!r}", content, route)
    return layer.gate.inbound(content, route, envelope=message.envelope_bytes())


def agent(name: str, *, layer: TrustLayer | None = None,
          ) -> Callable[[Callable[..., Any]], Callable[[AgentMessage], Any]]:
    """Make ``handler(text) -> str`` the gated endpoint of agent ``name``.

    The wrapped handler takes an ``AgentMessage``, authenticates it, calls the handler
    with its text (and ``sender=`` when the handler has that parameter), and returns
    the reply as an ``AgentMessage`` signed by ``name`` and addressed to the sender.
    """

    def resolve() -> TrustLayer:
        tl = layer if layer is not None else TrustLayer.default()
        if tl.me.id != name:
            raise ConfigError(f"@agent({name!r}) runs in a layer whose identity is {tl.me.id!r}; "
                              "each agent needs its own identity (and key)")
        return tl

    def decorate(handler: Callable[..., Any]) -> Callable[[AgentMessage], Any]:
        takes_sender = "sender" in inspect.signature(handler).parameters

        def reply(tl: TrustLayer, message: AgentMessage, inbound: Inbound, text: Any) -> AgentMessage:
            if not isinstance(text, str):
                raise Blocked("send", f"agent {name!r} handler returned a {type(text).__name__}, expected str")
            return send_message(tl, to=message.sender, text=text, conversation_id=message.conversation_id,
                                parents=(inbound.record.digest,))

        if inspect.iscoroutinefunction(handler):
            async def run_async(message: AgentMessage) -> AgentMessage:
                tl = resolve()
                # Both gate paths run in one worker thread each (stages time out there: see Gate.offload).
                inbound = await tl.gate.offload(lambda: receive_message(tl, message))
                kwargs = {"sender": message.sender} if takes_sender else {}
                text = await handler(inbound.message.text or "", **kwargs)
                return await tl.gate.offload(lambda: reply(tl, message, inbound, text))
            return functools.wraps(handler)(run_async)

        def run(message: AgentMessage) -> AgentMessage:
            tl = resolve()
            inbound = receive_message(tl, message)
            kwargs = {"sender": message.sender} if takes_sender else {}
            return reply(tl, message, inbound, handler(inbound.message.text or "", **kwargs))
        return functools.wraps(handler)(run)

    return decorate
