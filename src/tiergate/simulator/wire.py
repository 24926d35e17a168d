"""OpenAI wire format for the simulator.

Owns: byte-level builders for ``chat.completion`` objects, ``chat.completion.chunk``
SSE events (``data: {...}\\n\\n`` + ``data: [DONE]\\n\\n``), the models list and
OpenAI-shaped error bodies ``{"error": {"message", "type", "param", "code"}}``.
Chunk framing is precomputed per request so each delta costs one small
``orjson.dumps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
JSON_CT = "application/json"
SSE_HEADERS: dict[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
}


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    """OpenAI error envelope."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def text_message(content: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "refusal": None, "annotations": []}


def tool_message(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "content": None, "refusal": None, "annotations": [], "tool_calls": [call]}


def completion_body(
    cid: str, created: int, model: str, fingerprint: str, choices: list[dict[str, Any]], use: dict[str, int]
) -> bytes:
    """A non-streaming ``chat.completion`` object."""
    return orjson.dumps(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": use,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
        }
    )


def completion_choice(index: int, message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


@dataclass(slots=True)
class ChunkFramer:
    """Frames ``chat.completion.chunk`` SSE events for one streamed request."""

    head: bytes
    tail: bytes

    @classmethod
    def create(cls, cid: str, created: int, model: str, fingerprint: str, include_usage: bool) -> ChunkFramer:
        meta = orjson.dumps(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": fingerprint,
            }
        )
        head = b"data: " + meta[:-1] + b',"choices":['
        tail = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        return cls(head, tail)

    def choice(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = orjson.dumps({"index": index, "delta": delta, "logprobs": None, "finish_reason": finish})
        return self.head + body + self.tail

    def content(self, index: int, piece: str) -> bytes:
        return (
            self.head
            + b'{"index":%d,"delta":{"content":' % index
            + orjson.dumps(piece)
            + b'},"logprobs":null,"finish_reason":null}'
            + self.tail
        )

    def usage(self, use: dict[str, int]) -> bytes:
        return self.head + b'],"usage":' + orjson.dumps(use) + b"}\n\n"


def sse_role_delta() -> dict[str, Any]:
    return {"role": "assistant", "content": "", "refusal": None}


def sse_tool_start(call_id: str, name: str) -> dict[str, Any]:
    call = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}


def sse_tool_args(piece: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}


def models_body(models: tuple[str, ...], owner: str, created: int) -> bytes:
    return orjson.dumps({"object": "list", "data": [model_obj(m, owner, created) for m in models]})


def model_obj(model: str, owner: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": owner}
