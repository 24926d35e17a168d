"""Incremental Server-Sent Events parsing for upstream streams.

Events may arrive split across network reads in any way (down to one byte per read); the parser
keeps the incomplete tail and yields only whole events. Comment lines (`: ping`) are skipped.
"""

from __future__ import annotations

from typing import AsyncIterator


class SSEEvent:
    __slots__ = ("event", "data")

    def __init__(self, event: bytes | None, data: bytes) -> None:
        self.event = event
        self.data = data


def _parse_block(block: bytes) -> SSEEvent | None:
    if block[:6] == b"data: " and b"\n" not in block:
        return SSEEvent(None, block[6:])  # the common case: one `data:` line
    event: bytes | None = None
    data_lines: list[bytes] = []
    for line in block.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line or line[:1] == b":":
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data_lines.append(value)
        elif name == b"event":
            event = value
    if not data_lines and event is None:
        return None
    return SSEEvent(event, data_lines[0] if len(data_lines) == 1 else b"\n".join(data_lines))


class SSEParser:
    """Feed raw network reads; get back the whole events each read completed.

    Returning a read's events together lets the relay write them to the client in one write
    instead of one per event, without waiting for more data than the upstream already sent.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not self._buf and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            blocks = chunk.split(b"\n\n")  # fast path: whole events in one read
            blocks.pop()
        else:
            buf = self._buf + chunk
            if b"\r" in buf:
                buf = buf.replace(b"\r\n", b"\n")
            blocks = buf.split(b"\n\n")
            self._buf = blocks.pop()
        out = []
        for block in blocks:
            if block:
                ev = _parse_block(block)
                if ev is not None:
                    out.append(ev)
        return out

    def finish(self) -> list[SSEEvent]:
        """At end of body. A tail without its closing blank line is trusted only for the end
        marker; anything else there is a half-sent event of a stream that broke off."""
        buf, self._buf = self._buf, b""
        if buf.strip():
            ev = _parse_block(buf.strip())
            if ev is not None and ev.data.strip() == b"[DONE]":
                return [ev]
        return []


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield whole SSE events from an async iterator of raw byte chunks."""
    parser = SSEParser()
    async for chunk in chunks:
        for ev in parser.feed(chunk):
            yield ev
    for ev in parser.finish():
        yield ev
