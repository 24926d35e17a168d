"""SSE parsing must not depend on how the network split the bytes."""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from tiergate.providers.sse import iter_sse

STREAM = (
    b": keep-alive ping\n\n"
    b'data: {"id":"1","choices":[{"delta":{"content":"\xc9\x99 \xd0\x9f"}}]}\n\n'
    b"event: message\r\ndata: {\"id\":\"2\"}\r\n\r\n"
    b"data: line1\ndata: line2\n\n"
    b"data: [DONE]\n\n"
)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _collect(data: bytes, size: int) -> list[tuple[bytes | None, bytes]]:
    return [(e.event, e.data) async for e in iter_sse(_chunks(data, size))]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
async def test_same_events_for_any_split(size: int) -> None:
    events = await _collect(STREAM, size)
    assert events == [
        (None, '{"id":"1","choices":[{"delta":{"content":"ə П"}}]}'.encode()),
        (b"message", b'{"id":"2"}'),
        (None, b"line1\nline2"),
        (None, b"[DONE]"),
    ]


async def test_half_sent_tail_is_dropped() -> None:
    events = await _collect(b'data: {"a":1}\n\ndata: {"b":', 5)
    assert [e[1] for e in events] == [b'{"a":1}']


async def test_done_without_blank_line_is_kept() -> None:
    events = await _collect(b'data: {"a":1}\n\ndata: [DONE]\n', 4)
    assert [e[1] for e in events] == [b'{"a":1}', b"[DONE]"]
