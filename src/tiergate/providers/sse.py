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


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield whole SSE events from an async iterator of raw byte chunks."""
    async for batch in iter_sse_batches(chunks):
        for ev in batch:
            yield ev


async def iter_sse_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """Yield the whole SSE events completed by each network read, as one list per read.

    Relaying a read's events together costs one write to the client instead of one per event;
    nothing waits for more data than the upstream already sent.
    """
    buf = b""
    async for chunk in chunks:
        if not buf and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            blocks = chunk.split(b"\n\n")  # fast path: whole events in one read
            buf = b""
        else:
            buf += chunk
            if b"\r" in buf:
                buf = buf.replace(b"\r\n", b"\n")
            blocks = buf.split(b"\n\n")
            buf = blocks.pop()
        batch = []
        for block in blocks:
            if block:
                ev = _parse_block(block)
                if ev is not None:
                    batch.append(ev)
        if batch:
            yield batch
    # A tail without its closing blank line is only trusted for the end marker; anything else
    # there is a half-sent event of a stream that broke off, and must not reach the client.
    if buf.strip():
        ev = _parse_block(buf)
        if ev is not None and ev.data.strip() == b"[DONE]":
            yield [ev]
