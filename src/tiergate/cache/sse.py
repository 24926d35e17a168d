"""Cached answers as OpenAI streams, and streamed answers as cacheable completions.

`sse_events` turns a stored `chat.completion` into the chunk stream OpenAI sends for it: per
choice a role chunk, the content (in one delta, or in pieces of `chunk_chars`), other text fields
(refusal, reasoning_content), each tool call (id, type and name, then its arguments), a finish
chunk; then, with `stream_options.include_usage`, a usage chunk with no choices (and `"usage":
null` on every other chunk, as OpenAI does), and `data: [DONE]`.

`StreamAssembler` does the reverse as chunks pass through the relay, so an answer produced by
streaming can be stored once complete: `result()` is None until every choice has its
finish_reason (a stream that broke off is never cached).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ..providers.sse import SSEParser

DONE = b"data: [DONE]\n\n"
_MESSAGE_SKIP = frozenset({"role", "content", "tool_calls", "function_call", "annotations", "audio"})


def _event(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def sse_events(
    completion: bytes | Mapping[str, Any],
    *,
    include_usage: bool = False,
    chunk_chars: int = 0,
    id: str | None = None,
    created: int | None = None,
) -> Iterator[bytes]:
    """The SSE events (`data: ...\\n\\n` each, `[DONE]` last) that stream `completion`."""
    c: Mapping[str, Any] = orjson.loads(completion) if isinstance(completion, (bytes, bytearray, memoryview, str)) else completion
    base: dict[str, Any] = {
        "id": id if id is not None else c.get("id", ""),
        "object": "chat.completion.chunk",
        "created": created if created is not None else c.get("created", 0),
        "model": c.get("model", ""),
    }
    for k in ("system_fingerprint", "service_tier"):
        if k in c:
            base[k] = c[k]

    def chunk(choice: dict[str, Any]) -> bytes:
        obj = {**base, "choices": [choice]}
        if include_usage:
            obj["usage"] = None
        return _event(obj)

    for choice in c.get("choices") or ():
        index = choice.get("index", 0)
        msg = choice.get("message") or {}
        content = msg.get("content")
        logprobs = choice.get("logprobs")

        def delta(d: dict[str, Any], lp: Any = None, index: int = index) -> bytes:
            return chunk({"index": index, "delta": d, "logprobs": lp, "finish_reason": None})

        yield delta({"role": msg.get("role", "assistant"), "content": "" if isinstance(content, str) else None})
        if isinstance(content, str) and content:
            step = chunk_chars if chunk_chars > 0 else len(content)
            lp = logprobs  # on the first content chunk only
            for start in range(0, len(content), step):
                yield delta({"content": content[start : start + step]}, lp)
                lp = None
        for k, v in msg.items():
            if k not in _MESSAGE_SKIP and isinstance(v, str) and v:
                yield delta({k: v})
        for i, call in enumerate(msg.get("tool_calls") or ()):
            fn = call.get("function") or {}
            yield delta({"tool_calls": [{
                "index": i, "id": call.get("id"), "type": call.get("type", "function"),
                "function": {"name": fn.get("name", ""), "arguments": ""},
            }]})
            if fn.get("arguments"):
                yield delta({"tool_calls": [{"index": i, "function": {"arguments": fn["arguments"]}}]})
        fc = msg.get("function_call")
        if isinstance(fc, dict):
            yield delta({"function_call": {"name": fc.get("name", ""), "arguments": fc.get("arguments", "")}})
        if logprobs is not None and not (isinstance(content, str) and content):
            yield delta({}, logprobs)
        yield chunk({"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason") or "stop"})
    if include_usage:
        yield _event({**base, "choices": [], "usage": c.get("usage")})
    yield DONE


def sse_body(completion: bytes | Mapping[str, Any], **kwargs: Any) -> bytes:
    """`sse_events` joined: the whole response body of a streamed cache hit."""
    return b"".join(sse_events(completion, **kwargs))


class StreamAssembler:
    """Accumulates `chat.completion.chunk`s into the `chat.completion` they stream."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._parser: SSEParser | None = None
        self.done = False  # `[DONE]` seen
        self.failed = False  # a chunk was not JSON, or carried an error

    def feed_bytes(self, raw: bytes) -> None:
        """Raw SSE bytes as read from the upstream (events may be split anywhere)."""
        if self._parser is None:
            self._parser = SSEParser()
        for ev in self._parser.feed(raw):
            self.feed_data(ev.data)

    def finish_bytes(self) -> None:
        if self._parser is not None:
            for ev in self._parser.finish():
                self.feed_data(ev.data)

    def feed_data(self, data: bytes) -> None:
        """One event's `data` payload."""
        if data.strip() == b"[DONE]":
            self.done = True
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.failed = True
            return
        if isinstance(obj, dict):
            self.feed(obj)
        else:
            self.failed = True

    def feed(self, chunk: Mapping[str, Any]) -> None:
        """One parsed chunk."""
        if "error" in chunk:
            self.failed = True
            return
        head = self._head
        for k in ("id", "created", "model", "system_fingerprint", "service_tier"):
            v = chunk.get(k)
            if v is not None and not head.get(k):
                head[k] = v
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        for ch in chunk.get("choices") or ():
            index = ch.get("index", 0)
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = {"message": {"role": "assistant"}, "texts": {}, "tools": {}, "logprobs": None, "finish_reason": None}
            d = ch.get("delta") or {}
            for k, v in d.items():
                if k == "role":
                    if v:
                        state["message"]["role"] = v
                elif k == "tool_calls":
                    for tc in v or ():
                        self._tool(state["tools"], tc)
                elif k == "function_call" and isinstance(v, dict):
                    fc = state["message"].setdefault("function_call", {"name": "", "arguments": ""})
                    fc["name"] = fc["name"] or v.get("name") or ""
                    fc["arguments"] += v.get("arguments") or ""
                elif isinstance(v, str):
                    state["texts"].setdefault(k, []).append(v)
                elif v is not None and k not in state["message"]:
                    state["message"][k] = v
            lp = ch.get("logprobs")
            if lp:
                if state["logprobs"] is None:
                    state["logprobs"] = {k: list(v) if isinstance(v, list) else v for k, v in lp.items()}
                else:
                    for k, v in lp.items():
                        if isinstance(v, list):
                            state["logprobs"].setdefault(k, []).extend(v)
            if ch.get("finish_reason"):
                state["finish_reason"] = ch["finish_reason"]

    @staticmethod
    def _tool(tools: dict[int, dict[str, Any]], tc: Mapping[str, Any]) -> None:
        i = tc.get("index", len(tools))
        call = tools.get(i)
        if call is None:
            call = tools[i] = {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        if tc.get("id"):
            call["id"] = call["id"] or tc["id"]
        if tc.get("type"):
            call["type"] = tc["type"]
        fn = tc.get("function") or {}
        if fn.get("name") and not call["function"]["name"]:
            call["function"]["name"] = fn["name"]
        if fn.get("arguments"):
            call["function"]["arguments"] += fn["arguments"]

    @property
    def complete(self) -> bool:
        return bool(self._choices) and not self.failed and all(s["finish_reason"] for s in self._choices.values())

    def result(self) -> dict[str, Any] | None:
        """The assembled `chat.completion`, or None while (or if) the stream is incomplete."""
        if not self.complete:
            return None
        choices = []
        for index in sorted(self._choices):
            s = self._choices[index]
            message = dict(s["message"])
            texts = s["texts"]
            message["content"] = "".join(texts["content"]) if "content" in texts else None
            for k, parts in texts.items():
                if k != "content":
                    message[k] = "".join(parts)
            if s["tools"]:
                message["tool_calls"] = [s["tools"][i] for i in sorted(s["tools"])]
            choices.append({"index": index, "message": message, "logprobs": s["logprobs"], "finish_reason": s["finish_reason"]})
        out: dict[str, Any] = {
            "id": self._head.get("id", ""),
            "object": "chat.completion",
            "created": self._head.get("created", 0),
            "model": self._head.get("model", ""),
            "choices": choices,
        }
        for k in ("system_fingerprint", "service_tier"):
            if k in self._head:
                out[k] = self._head[k]
        if self._usage is not None:
            out["usage"] = self._usage
        return out

    def result_bytes(self) -> bytes | None:
        r = self.result()
        return None if r is None else orjson.dumps(r)
