"""Rewrite an OpenAI server-sent-event stream event by event, restoring placeholders.

The transport and the proxy feed it the upstream's bytes as they arrive and send on
what it returns; every event they send is a complete, valid SSE event::

    rewriter = SseRewriter(gate.stream_inbound(route, request=out), "chat")
    for data in upstream_bytes:
        yield rewriter.feed(data)
    yield rewriter.finish()

Each choice's content and each tool call's arguments are restored on their own
channel, holding back only what could be the start of a placeholder. When a choice
finishes, what was held back goes out with its finishing event. If the upstream
sends something that cannot be parsed, the stream is blocked (``Blocked``), never
passed on half-processed; ``trustlayer.intercept.refusal`` renders the block for the client.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from trustlayer.errors import Blocked
from trustlayer.gate import InboundStream
from trustlayer.intercept.openai_wire import Kind

__all__ = ["STOPPED", "ChunkRewriter", "SseRewriter", "abandon_quietly"]

_log = logging.getLogger("trustlayer.intercept")


def _split_event(buf: bytes) -> tuple[bytes, bytes] | None:
    """Cut the first complete event (ended by a blank line, any newline style) off ``buf``."""
    best: tuple[int, int] | None = None
    for sep in (b"\r\n\r\n", b"\n\n", b"\r\r"):
        at = buf.find(sep)
        if at != -1 and (best is None or at < best[0]):
            best = (at, len(sep))
    if best is None:
        return None
    return buf[:best[0]], buf[best[0] + best[1]:]


class ChunkRewriter:
    """Restores OpenAI stream chunks (parsed JSON objects), one ``InboundStream`` channel per text."""

    def __init__(self, stream: InboundStream, kind: Kind) -> None:
        self._stream = stream
        self._kind = kind
        self._template: dict[str, Any] = {}
        self._held: list[dict[str, Any]] = []
        self.closed = False

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """Rewrite one chunk in place; return the chunks to emit now (none while buffering)."""
        if "error" in chunk and "choices" not in chunk:
            return [chunk]
        self._rewrite(chunk)
        if self._stream.buffering:
            self._held.append(chunk)
            return []
        return [chunk]

    @property
    def ended(self) -> bool:
        """True once the answer's end is recorded (``InboundStream.ended``)."""
        return self._stream.ended

    def abandon(self, reason: str) -> None:
        """The answer ended before it was complete: record that (``InboundStream.abandon``)."""
        self.closed = True
        self._stream.abandon(reason)

    def finish(self) -> list[dict[str, Any]]:
        """Record the response; return a chunk with what was held back, then any held chunks."""
        self.closed = True
        tails = {k: v for k, v in self._stream.finish().items() if v}
        if not tails:
            return self._held
        choices: dict[int, dict[str, Any]] = {}
        for channel, text in sorted(tails.items()):
            i = int(channel[1:].split(".", 1)[0])
            choice = choices.setdefault(i, {"index": i, "delta": {}} if self._kind == "chat" else {"index": i})
            if self._kind == "completions":
                choice["text"] = text
            elif ".t" in channel:
                j = int(channel.rsplit(".t", 1)[1])
                choice["delta"].setdefault("tool_calls", []).append({"index": j, "function": {"arguments": text}})
            else:
                choice["delta"]["content"] = text
        # Buffered (verified) streams: the whole restored text first, then the held chunks (finish reasons).
        return [{**self._template, "choices": [choices[i] for i in sorted(choices)]}, *self._held]

    def _rewrite(self, chunk: dict[str, Any]) -> None:
        self._template = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                raise Blocked("restore", "the endpoint sent a stream choice that is not an object")
            i = choice.get("index", 0)
            if self._kind == "completions":
                if isinstance(choice.get("text"), str):
                    choice["text"] = self._stream.feed(choice["text"], f"c{i}")
                if choice.get("finish_reason") is not None:
                    choice["text"] = (choice.get("text") or "") + self._stream.flush(f"c{i}")
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                delta["content"] = self._stream.feed(delta["content"], f"c{i}")
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    fn["arguments"] = self._stream.feed(fn["arguments"], f"c{i}.t{call.get('index', 0)}")
            if choice.get("finish_reason") is not None:
                self._flush_choice(i, delta)

    def _flush_choice(self, i: int, delta: dict[str, Any]) -> None:
        tail = self._stream.flush(f"c{i}")
        if tail:
            delta["content"] = (delta.get("content") or "") + tail
        for channel in self._stream.channels():
            if channel.startswith(f"c{i}.t"):
                rest = self._stream.flush(channel)
                if rest:
                    j = int(channel.rsplit(".t", 1)[1])
                    delta.setdefault("tool_calls", []).append({"index": j, "function": {"arguments": rest}})


STOPPED = "the reader closed the stream, or reading the answer failed"
"""Why a streamed answer that ended before its last event is recorded as a block (when nothing else recorded it)."""


def abandon_quietly(abandon: Callable[[str], None], why: str) -> None:
    """``abandon(why)`` (``SseRewriter.abandon``, ``InboundStream.abandon``) where nobody can take an error.

    It runs while a stream is being closed: the reader is gone or already has its error
    event, so a failure to record is logged (by type, never content) instead of raised.
    """
    try:
        abandon(why)
    except Exception as exc:  # noqa: BLE001 - see above
        _log.warning("could not record an unfinished streamed answer (%s)", type(exc).__name__)


def _encode(chunk: dict[str, Any], head: str = "") -> bytes:
    return (head + "data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")) + "\n\n").encode()


class SseRewriter:
    """Restores one OpenAI SSE byte stream (chat or completions) through an ``InboundStream``."""

    def __init__(self, stream: InboundStream, kind: Kind) -> None:
        self._chunks = ChunkRewriter(stream, kind)
        self._buf = b""

    def feed(self, data: bytes) -> bytes:
        """Take upstream bytes; return the rewritten complete events they finish."""
        if self._chunks.closed:
            return b""
        self._buf += data
        out: list[bytes] = []
        while (cut := _split_event(self._buf)) is not None:
            event, self._buf = cut
            out.append(self._event(event))
        return b"".join(out)

    async def feed_async(self, data: bytes, offload: Callable[[Callable[[], bytes]], Awaitable[bytes]]) -> bytes:
        """``feed`` on an event loop: the bytes that end the stream go through ``offload`` (``Gate.offload``).

        The ``[DONE]`` event signs and records the whole response, which must not run on the
        loop; it is recognized also when the upstream split it across two reads.
        """
        if b"[DONE]" in self._buf[-5:] + data:
            return await offload(functools.partial(self.feed, data))
        return self.feed(data)

    @property
    def ended(self) -> bool:
        """True once the answer's end is recorded: finished, blocked, or abandoned."""
        return self._chunks.ended

    def abandon(self, reason: str) -> None:
        """The answer ended before it was complete (``reason``): record that, unless its end is recorded."""
        self._chunks.abandon(reason)

    def finish(self) -> bytes:
        """The upstream ended: rewrite what is left, record the response, emit what was held back."""
        out = b""
        if self._buf.strip():
            out += self._event(self._buf)
            self._buf = b""
        if not self._chunks.closed:
            out += b"".join(_encode(c) for c in self._chunks.finish())
        return out

    def _event(self, raw: bytes) -> bytes:
        data_lines: list[str] = []
        other: list[str] = []
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Blocked("restore", "the upstream stream is not valid UTF-8") from None
        for line in text.splitlines():
            if line.startswith("data:"):
                data_lines.append(line[5:].removeprefix(" "))
            elif line and not line.startswith(":"):
                other.append(line)
        if not data_lines:
            return (raw + b"\n\n") if raw.strip() else b""
        data = "\n".join(data_lines)
        if data.strip() == "[DONE]":
            if self._chunks.closed:
                return b"data: [DONE]\n\n"
            return b"".join(_encode(c) for c in self._chunks.finish()) + b"data: [DONE]\n\n"
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise Blocked("restore", "the upstream sent a stream event that is not JSON") from None
        if not isinstance(chunk, dict):
            raise Blocked("restore", "the upstream sent a stream event that is not a JSON object")
        head = "".join(f"{line}\n" for line in other)
        return b"".join(_encode(c, head) for c in self._chunks.feed(chunk))
