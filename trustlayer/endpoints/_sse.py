"""Reading a ``text/event-stream`` line by line into event data (no I/O here).

Follows the WHATWG HTML "server-sent events" interpretation (9.2.6): ``data`` lines
accumulate, joined by newlines, and a blank line dispatches the event; comment lines
(starting with ``:``) and other fields are ignored, since OpenAI streams carry
everything in ``data``.
"""

from __future__ import annotations

__all__ = ["EventDecoder"]


class EventDecoder:
    """Turns SSE lines (without their line endings) into the data of each complete event."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed_line(self, line: str) -> list[str]:
        """Take one line; return the data of the event it completes (at most one)."""
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                return []
            data, self._data = "\n".join(self._data), []
            return [data]
        if line.startswith(":"):
            return []
        name, _, value = line.partition(":")
        if name == "data":
            # WHATWG 9.2.6: a single leading space after the colon is not part of the value.
            self._data.append(value[1:] if value.startswith(" ") else value)
        return []

    def end(self) -> list[str]:
        """The data of an event left open when the stream ended (servers that omit the last blank line)."""
        if not self._data:
            return []
        data, self._data = "\n".join(self._data), []
        return [data]
