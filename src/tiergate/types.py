"""Canonical request/response/stream types shared by the server, the pipeline, adapters and SDK.

The gateway's canonical wire format is OpenAI's chat completion format: a validated request keeps
the client's JSON body (unknown fields pass through untouched) and adapters for other wire
formats translate to and from it. Responses keep the upstream bytes when they already are in
OpenAI format, so the fast path never re-serialises an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

import orjson


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False

    @classmethod
    def from_openai(cls, data: Any) -> Usage | None:
        if not isinstance(data, dict):
            return None
        p = int(data.get("prompt_tokens") or 0)
        c = int(data.get("completion_tokens") or 0)
        return cls(p, c, int(data.get("total_tokens") or p + c))


@dataclass(slots=True)
class ChatRequest:
    """A validated chat request.

    Attributes:
        body: the client's OpenAI-format body, minus tiergate's own `metadata` keys; `model`
            still names the public model (group) the client asked for.
        model: the public model name.
        stream: whether the client asked for SSE.
        include_usage: whether the client asked for the final usage chunk.
    """

    body: dict[str, Any]
    model: str
    stream: bool = False
    include_usage: bool = False
    declared_privacy: str | None = None
    privacy_source: str | None = None
    constraints: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ChatResult:
    """A complete (non-streamed) answer in OpenAI `chat.completion` format."""

    raw: bytes
    usage: Usage | None
    data: dict[str, Any] | None = None

    def json(self) -> dict[str, Any]:
        if self.data is None:
            self.data = orjson.loads(self.raw)
        return self.data


class StreamEvent:
    """One SSE `data:` payload in OpenAI `chat.completion.chunk` format, parsed lazily."""

    __slots__ = ("raw", "_data")

    def __init__(self, raw: bytes, data: dict[str, Any] | None = None) -> None:
        self.raw = raw
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = orjson.loads(self.raw)
        return self._data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamEvent:
        return cls(orjson.dumps(data), data)

    def maybe_usage(self) -> Usage | None:
        """The usage this chunk carries, if any (checked on bytes first: no parse per chunk)."""
        raw = self.raw
        if b'"usage"' not in raw or b'"usage":null' in raw or b'"usage": null' in raw:
            return None
        return Usage.from_openai(self.data.get("usage"))

    def has_finish_reason(self) -> bool:
        raw = self.raw
        return b'"finish_reason":"' in raw or b'"finish_reason": "' in raw


class ChatStream(Protocol):
    """An opened upstream stream, iterated as batches of events (those that arrived together,
    never empty). It ends cleanly only on a complete answer; otherwise it raises."""

    def __aiter__(self) -> AsyncIterator[list[StreamEvent]]: ...

    async def aclose(self) -> None: ...
