"""Builders of the canonical (OpenAI) answer objects, for adapters of other wire formats.

An adapter that speaks Anthropic, Gemini, Ollama or Bedrock upstream translates each answer into
a `chat.completion` (`completion_result`) and each streamed piece into `chat.completion.chunk`
events (`ChunkFactory`), so the pipeline, the OpenAI route and the Anthropic route see one format.
Also the small translations several adapters need (data URLs, tool-call arguments, ids).
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from typing import Any, Callable

import orjson

from ..errors import InvalidRequestError
from ..types import ChatResult, StreamEvent, Usage


def new_completion_id() -> str:
    return f"chatcmpl-{os.urandom(12).hex()}"


def new_tool_call_id() -> str:
    return f"call_{os.urandom(12).hex()}"


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def completion_result(
    *,
    model: str,
    message: dict[str, Any],
    finish_reason: str | None,
    usage: Usage | None,
    completion_id: str | None = None,
    created: int | None = None,
) -> ChatResult:
    """One-choice `chat.completion`. `message` is `{"role": "assistant", "content": ..., ...}`
    (with `tool_calls` in OpenAI's shape when the model called tools)."""
    data: dict[str, Any] = {
        "id": completion_id or new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        data["usage"] = usage_dict(usage)
    return ChatResult(orjson.dumps(data), usage, data)


class ChunkFactory:
    """`chat.completion.chunk` events of one streamed answer (one choice, index 0)."""

    __slots__ = ("_head",)

    def __init__(self, model: str, completion_id: str | None = None, created: int | None = None) -> None:
        self._head = {
            "id": completion_id or new_completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()) if created is None else created,
            "model": model,
        }

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> StreamEvent:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return StreamEvent.from_dict({**self._head, "choices": [choice]})

    def role(self) -> StreamEvent:
        return self.delta({"role": "assistant", "content": ""})

    def content(self, text: str) -> StreamEvent:
        return self.delta({"content": text})

    def tool_call_start(self, index: int, call_id: str, name: str, arguments: str = "") -> StreamEvent:
        call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        return self.delta({"tool_calls": [call]})

    def tool_call_arguments(self, index: int, piece: str) -> StreamEvent:
        return self.delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})

    def finish(self, reason: str) -> StreamEvent:
        return self.delta({}, reason)

    def usage(self, usage: Usage) -> StreamEvent:
        """The final usage-only chunk (`choices: []`), as OpenAI sends with include_usage."""
        return StreamEvent.from_dict({**self._head, "choices": [], "usage": usage_dict(usage)})


def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,AAAA` -> ("image/png", "AAAA"); None if `url` is not a base64
    data URL (a remote http(s) URL, for instance)."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    mime = header[: -len(";base64")] or "application/octet-stream"
    try:
        base64.b64decode(payload[:64] + "=" * (-len(payload[:64]) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return mime, payload


def tool_arguments(arguments: Any, deployment: str) -> dict[str, Any]:
    """An OpenAI tool call's `arguments` (a JSON string) as an object, for formats that carry
    arguments as JSON objects (Anthropic `input`, Gemini `args`, Ollama, Bedrock)."""
    if isinstance(arguments, dict):
        return arguments
    if arguments in (None, ""):
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(
            f"a tool call's arguments are not valid JSON, so they cannot be sent to deployment "
            f"'{deployment}'", param="messages",
        ) from None
    return value if isinstance(value, dict) else {"value": value}


def message_text(content: Any) -> str:
    """The text of an OpenAI message `content` (a string, or the text parts of a part list)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return str(content)


def tool_call(call_id: Any, name: Any, arguments: str) -> dict[str, Any]:
    """One OpenAI tool call of an answer (`arguments` is JSON text)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def assistant_message(texts: list[str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message of an answer: its text (None when it only called tools, as OpenAI
    sends), and its tool calls if any."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def embeddings_result(vectors: list[Any], model: str, tokens: int) -> dict[str, Any]:
    """An OpenAI embeddings response (one vector per input, in input order)."""
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


Turn = tuple[str, list[dict[str, Any]]]
"""A message as (the role of the turn it belongs in, its content blocks)."""


def conversation(
    messages: list[dict[str, Any]],
    turn_of: Callable[[dict[str, Any]], Turn],
    *,
    key: str = "content",
    merge: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None] = list.extend,
) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, turns) for formats with a separate system prompt and alternating turns
    (Anthropic, Gemini, Bedrock): system and developer texts go to the system prompt; every
    other message becomes `{"role", key: blocks}` by `turn_of` (which refuses what the format
    cannot take); a message without blocks is dropped, and the blocks of consecutive messages
    of one turn role are merged into one turn with `merge`, since these APIs refuse two turns
    of one role in a row."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for msg in messages:
        if msg.get("role") in ("system", "developer"):
            text = message_text(msg.get("content"))
            if text:
                system.append(text)
            continue
        role, blocks = turn_of(msg)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            merge(turns[-1][key], blocks)
        else:
            turns.append({"role": role, key: blocks})
    return system, turns
