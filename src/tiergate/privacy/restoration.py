"""Restoring pseudonymised values in canonical answers: a whole `chat.completion`, or the
`chat.completion.chunk` events of a stream (message content and tool-call arguments both)."""

from __future__ import annotations

from typing import Any

import orjson

from ..types import ChatResult, StreamEvent
from .policy import json_escape
from .restore import Restorer, StreamRestorer


def restore_result(result: ChatResult, restorer: Restorer) -> ChatResult:
    """The answer with placeholders restored; an answer that mentions none of this request's
    placeholder types is returned as it is (no parse, no re-serialisation)."""
    if not restorer.mentioned_in(result.raw):
        return result
    data = result.json()
    for choice in data.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("content"), str):
            message["content"] = restorer.restore(message["content"])
        for call in message.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                fn["arguments"] = restorer.restore(fn["arguments"], json_escape)
    return ChatResult(orjson.dumps(data), result.usage, data)


class StreamRestoration:
    """Per stream: one `StreamRestorer` per choice's content and per tool call's arguments.
    A placeholder split across chunks is held back (only its ambiguous tail) and released,
    restored, with the next chunk or at the choice's finish."""

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._content: dict[int, StreamRestorer] = {}
        self._args: dict[tuple[int, int], StreamRestorer] = {}

    def batch(self, events: list[StreamEvent]) -> list[StreamEvent]:
        return [out for ev in events if (out := self._event(ev)) is not None]

    def _event(self, ev: StreamEvent) -> StreamEvent | None:
        data = ev.data
        choices = data.get("choices")
        if not choices:
            return ev  # usage-only chunk
        changed = False
        for choice in choices:
            if isinstance(choice, dict):
                changed = self._choice(choice) or changed
        return StreamEvent.from_dict(data) if changed else ev

    def _choice(self, choice: dict[str, Any]) -> bool:
        index = int(choice.get("index") or 0)
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = choice["delta"] = {}
        changed = False
        if isinstance(delta.get("content"), str) and delta["content"]:
            sr = self._content.setdefault(index, StreamRestorer(self._restorer))
            delta["content"] = sr.feed(delta["content"])
            changed = True
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str) and fn["arguments"]:
                key = (index, int(call.get("index") or 0))
                sr = self._args.setdefault(key, StreamRestorer(self._restorer, json_escape))
                fn["arguments"] = sr.feed(fn["arguments"])
                changed = True
        if choice.get("finish_reason"):
            changed = self._flush(index, delta) or changed
        return changed

    def _flush(self, index: int, delta: dict[str, Any]) -> bool:
        """At a choice's finish: release what was held back, in this same chunk."""
        changed = False
        sr = self._content.pop(index, None)
        if sr is not None:
            rest = sr.flush()
            if rest:
                delta["content"] = (delta.get("content") or "") + rest
                changed = True
        for key in [k for k in self._args if k[0] == index]:
            rest = self._args.pop(key).flush()
            if rest:
                calls = delta.setdefault("tool_calls", [])
                calls.append({"index": key[1], "function": {"arguments": rest}})
                changed = True
        return changed
