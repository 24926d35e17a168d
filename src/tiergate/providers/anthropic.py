"""Adapter for Anthropic's native Messages API (`POST /v1/messages`).

Requests arrive in the canonical OpenAI chat format and are translated into Messages requests;
answers and stream events are translated back into `chat.completion` objects and
`chat.completion.chunk` events. Deployment settings read here: `base_url` (default
`https://api.anthropic.com`, with or without `/v1`), `api_key` (sent as `x-api-key`) and
`api_version` (the `anthropic-version` header, default `2023-06-01`).

Translation choices a client may notice:

- JSON mode. The Messages API has no `response_format`, so `json_schema` / `json_object` are
  emulated with one forced tool whose `input_schema` is the requested schema (`json_object`: any
  object). The tool's `input` comes back as the message `content` (JSON text) with finish_reason
  `stop`, which is what OpenAI's JSON mode returns.
- `thinking` / `redacted_thinking` blocks (extended thinking) are dropped: the canonical answer
  has no place for them.
- `n > 1` is refused with `InvalidRequestError` (one answer per Messages request).
- Sampling: `temperature` is capped at 1.0 (Anthropic's range is 0..1, OpenAI's 0..2); `top_p`
  is sent only without `temperature` (current Claude models refuse the two together); and
  neither is sent with API version 2026-10-21 or later, which refuses both.
- Fields only OpenAI has (`stream_options`, `logprobs`, `seed`, ...) are not sent.
- Anthropic's overload (529, or an `overloaded_error` event mid-stream) becomes a 503.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import aiohttp
import orjson

from ..errors import InvalidRequestError, UpstreamError, UpstreamProtocolError, UpstreamStatusError
from ..types import ChatResult, StreamEvent, Usage
from .base import USER_AGENT, HTTPProvider
from .canonical import (
    ChunkFactory,
    Turn,
    assistant_message,
    completion_result,
    conversation,
    message_text,
    parse_data_url,
    tool_arguments,
    tool_call,
)
from .sse import SSEEvent, SSEParser
from .stream import Step, UpstreamStream

DEFAULT_ROOT = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
SAMPLING_REMOVED_IN = "2026-10-21"  # the first API version that refuses temperature / top_p
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often omit it
JSON_TOOL_NAME = "json_response"  # the forced tool of `json_object` mode (and unnamed schemas)

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Mid-stream `error` event types that mean an HTTP status (so routing treats them alike).
_STREAM_ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500}


def api_root(base_url: str) -> str:
    """The API root for a configured base_url: accepts it with or without the `/v1` suffix."""
    root = (base_url or DEFAULT_ROOT).rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


# --------------------------------------------------------------------------- request


def to_messages_request(
    body: dict[str, Any], deployment: str, version: str = DEFAULT_VERSION
) -> tuple[dict[str, Any], str | None]:
    """The Messages request for an OpenAI chat body (for API `version`), and the name of the
    forced JSON-mode tool (None unless `response_format` asked for JSON)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequestError(
            f"deployment '{deployment}' (Anthropic) returns one choice per request: 'n' must be 1",
            param="n",
        )
    system, turns = split_messages(body.get("messages") or [], deployment)
    out: dict[str, Any] = {
        "model": body["model"],
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if system:
        out["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": s} for s in system]
    _copy_options(body, out, sampling=version < SAMPLING_REMOVED_IN)
    _add_tools(body, out)
    json_tool = _add_json_mode(body.get("response_format"), out)
    if body.get("stream"):
        out["stream"] = True
    return out, json_tool


def _copy_options(body: dict[str, Any], out: dict[str, Any], sampling: bool) -> None:
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if sampling and body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)
    elif sampling and body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}


def split_messages(messages: list[dict[str, Any]], deployment: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, alternating user/assistant turns). System and developer messages move to
    the top-level `system`; tool results become `tool_result` blocks of a user turn; consecutive
    turns of one role are merged, because Anthropic requires the roles to alternate."""
    return conversation(messages, partial(_turn, deployment=deployment), merge=_merge_blocks)


def _turn(msg: dict[str, Any], deployment: str) -> Turn:
    role = msg.get("role")
    if role == "user":
        return "user", _user_blocks(msg.get("content"), deployment)
    if role == "assistant":
        return "assistant", _assistant_blocks(msg, deployment)
    if role == "tool":
        return "user", [_tool_result(msg)]
    raise InvalidRequestError(
        f"messages with role '{role}' cannot be sent to deployment '{deployment}' (Anthropic)",
        param="messages",
    )


def _merge_blocks(content: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> None:
    if blocks[0]["type"] == "tool_result":  # Anthropic wants a turn's tool results first
        at = sum(1 for b in content if b["type"] == "tool_result")
        content[at:at] = blocks
    else:
        content.extend(blocks)


def _user_blocks(content: Any, deployment: str) -> list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append(_image_block(str(url or ""), deployment))
        else:
            raise InvalidRequestError(
                f"content parts of type '{kind}' cannot be sent to deployment '{deployment}' (Anthropic)",
                param="messages",
            )
    return blocks


def _image_block(url: str, deployment: str) -> dict[str, Any]:
    parsed = parse_data_url(url)
    if parsed is not None:
        media_type, data = parsed
        if media_type not in _IMAGE_TYPES:
            raise InvalidRequestError(
                f"deployment '{deployment}' (Anthropic) accepts JPEG, PNG, GIF and WebP images, "
                f"not {media_type}", param="messages",
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequestError(
        "an image_url must be a base64 data URL or an http(s) URL", param="messages"
    )


def _assistant_blocks(msg: dict[str, Any], deployment: str) -> list[dict[str, Any]]:
    text = message_text(msg.get("content"))
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        blocks.append({
            "type": "tool_use",
            "id": call.get("id"),
            "name": fn.get("name"),
            "input": tool_arguments(fn.get("arguments"), deployment),
        })
    return blocks


def _tool_result(msg: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id")}
    text = message_text(msg.get("content"))
    if text:
        block["content"] = text
    return block


def _add_tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = [_tool(t["function"]) for t in body.get("tools") or () if t.get("type") == "function"]
    if not tools:
        return
    out["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls") is False)
    if choice is not None:
        out["tool_choice"] = choice


def _tool(fn: dict[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "name": fn["name"],
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        tool["description"] = fn["description"]
    return tool


def _tool_choice(choice: Any, sequential: bool) -> dict[str, Any] | None:
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        out: dict[str, Any] = {"type": "any"}
    elif isinstance(choice, dict):
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    elif choice == "auto" or sequential:
        out = {"type": "auto"}
    else:
        return None  # Anthropic's default is auto
    if sequential:
        out["disable_parallel_tool_use"] = True
    return out


def _add_json_mode(response_format: Any, out: dict[str, Any]) -> str | None:
    """Emulates JSON mode with a forced tool (see the module docstring); returns its name."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in ("json_schema", "json_object"):
        return None
    spec = response_format.get("json_schema") if kind == "json_schema" else None
    spec = spec if isinstance(spec, dict) else {}
    name = str(spec.get("name") or JSON_TOOL_NAME)
    schema = spec.get("schema") or {"type": "object", "additionalProperties": True}
    tool = {"name": name, "description": "Answer with JSON that matches this schema.", "input_schema": schema}
    out["tools"] = [*out.get("tools", ()), tool]
    out["tool_choice"] = {"type": "tool", "name": name}
    return name


# --------------------------------------------------------------------------- response


def usage_of(data: Any) -> Usage:
    """Anthropic usage -> canonical: prompt tokens include the cache writes and reads."""
    data = data if isinstance(data, dict) else {}
    prompt = sum(
        int(data.get(k) or 0)
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    completion = int(data.get("output_tokens") or 0)
    return Usage(prompt, completion, prompt + completion)


def finish_reason(stop_reason: Any, json_mode: bool) -> str:
    reason = _FINISH.get(str(stop_reason), "stop")
    return "stop" if json_mode and reason == "tool_calls" else reason


def to_completion(data: dict[str, Any], model: str, json_tool: str | None) -> ChatResult:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use" and json_tool is not None and block.get("name") == json_tool:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(tool_call(block.get("id"), block.get("name"), arguments))
        # thinking / redacted_thinking and server-tool blocks have no canonical form: dropped
    return completion_result(
        model=str(data.get("model") or model),
        message=assistant_message(texts, calls),
        finish_reason=finish_reason(data.get("stop_reason"), json_tool is not None),
        usage=usage_of(data.get("usage")),
        completion_id=data.get("id"),
    )


# --------------------------------------------------------------------------- adapter


class AnthropicProvider(HTTPProvider):
    wire = "anthropic"

    async def start(self) -> None:
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "anthropic-version": self.deployment.api_version or DEFAULT_VERSION,
        }
        if self.api_key:
            headers["x-api-key"] = self.api_key
        self._open_session(headers)
        self._root = api_root(self.deployment.base_url)
        self._messages_url = f"{self._root}/v1/messages"
        self._version = headers["anthropic-version"]

    async def chat(self, body: dict[str, Any]) -> ChatResult:
        request, json_tool = to_messages_request({**body, "stream": False}, self.name, self._version)
        data = await self.request_json("POST", self._messages_url, request)
        if not isinstance(data, dict) or data.get("type") != "message":
            raise UpstreamProtocolError("upstream answer is not a Message object", deployment=self.name)
        return to_completion(data, body["model"], json_tool)

    async def open_stream(self, body: dict[str, Any]) -> AnthropicStream:
        request, json_tool = to_messages_request({**body, "stream": True}, self.name, self._version)
        resp = await self.open_response(self._messages_url, request)
        return AnthropicStream(resp, self.name, body["model"], json_tool)

    async def list_models(self) -> list[str]:
        data = await self.request_json("GET", f"{self._root}/v1/models", params={"limit": "1000"}, probe=True)
        items = data.get("data") if isinstance(data, dict) else None
        return [str(m.get("id")) for m in items or [] if isinstance(m, dict)]


class AnthropicStream(UpstreamStream):
    """Translates a Messages SSE stream into canonical chunks, the events of each network read
    together. Ends cleanly only on `message_stop`; an `error` event or a stream that breaks off
    earlier raises, so the client is told instead of receiving a silently cut answer."""

    end_marker = "message_stop"

    def __init__(self, resp: aiohttp.ClientResponse, deployment: str, model: str, json_tool: str | None) -> None:
        super().__init__(resp, deployment)
        self._parser = SSEParser()
        self._model = model
        self._json_tool = json_tool
        self._chunks: ChunkFactory | None = None
        self._blocks: dict[int, tuple[str, int]] = {}  # Anthropic block index -> (kind, tool index)
        self._tools = 0
        self._usage: dict[str, Any] = {}
        self._stop_reason: Any = None

    def feed(self, chunk: bytes) -> Step:
        return self._convert_read(self._parser.feed(chunk))

    def finish(self) -> Step:
        return [], False, None  # a tail without its closing blank line is a cut-off event

    def _convert_read(self, events: list[SSEEvent]) -> Step:
        """The canonical chunks of one network read, whether `message_stop` came, and the error
        an event of the read reported (the chunks before it are kept)."""
        out: list[StreamEvent] = []
        for sse in events:
            try:
                if self._convert(sse, out):
                    return out, True, None
            except UpstreamError as exc:
                return out, True, exc
        return out, False, None

    def _convert(self, sse: SSEEvent, out: list[StreamEvent]) -> bool:
        """Appends the canonical chunks of one event; True at `message_stop`."""
        try:
            data = orjson.loads(sse.data)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                "upstream sent a malformed stream event", deployment=self._deployment
            ) from None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "error":
            raise self._stream_error(data.get("error"))
        if kind == "message_start":
            self._start(data.get("message") or {}, out)
            return False
        chunks = self._chunks
        if chunks is None:
            if kind in ("content_block_start", "content_block_delta", "message_delta", "message_stop"):
                raise UpstreamProtocolError(
                    f"upstream stream sent {kind} before message_start", deployment=self._deployment
                )
        elif kind == "content_block_start":
            self._block_start(chunks, int(data.get("index", 0)), data.get("content_block") or {}, out)
        elif kind == "content_block_delta":
            self._block_delta(chunks, int(data.get("index", 0)), data.get("delta") or {}, out)
        elif kind == "message_delta":
            self._stop_reason = (data.get("delta") or {}).get("stop_reason") or self._stop_reason
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            out.append(chunks.finish(finish_reason(self._stop_reason, self._json_tool is not None)))
            out.append(chunks.usage(usage_of(self._usage)))
            return True
        return False  # ping, content_block_stop and unknown (newer) event types carry nothing

    def _start(self, message: dict[str, Any], out: list[StreamEvent]) -> None:
        self._chunks = ChunkFactory(str(message.get("model") or self._model), message.get("id"))
        self._usage = dict(message.get("usage") or {})
        out.append(self._chunks.role())

    def _block_start(
        self, chunks: ChunkFactory, index: int, block: dict[str, Any], out: list[StreamEvent]
    ) -> None:
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = ("text", 0)
            if block.get("text"):
                out.append(chunks.content(str(block["text"])))
        elif kind == "tool_use" and self._json_tool is not None and block.get("name") == self._json_tool:
            self._blocks[index] = ("json", 0)
        elif kind == "tool_use":
            self._blocks[index] = ("tool", self._tools)
            out.append(chunks.tool_call_start(self._tools, str(block.get("id")), str(block.get("name"))))
            self._tools += 1
        # thinking and other block kinds are not registered: their deltas are dropped

    def _block_delta(
        self, chunks: ChunkFactory, index: int, delta: dict[str, Any], out: list[StreamEvent]
    ) -> None:
        kind, tool_index = self._blocks.get(index, ("skip", 0))
        if kind == "text" and delta.get("type") == "text_delta" and delta.get("text"):
            out.append(chunks.content(str(delta["text"])))
        elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            piece = str(delta["partial_json"])
            if kind == "tool":
                out.append(chunks.tool_call_arguments(tool_index, piece))
            elif kind == "json":
                out.append(chunks.content(piece))

    def _stream_error(self, error: Any) -> UpstreamError:
        error = error if isinstance(error, dict) else {}
        kind = str(error.get("type") or "error")
        message = f"upstream reported an error mid-stream: {kind}: {str(error.get('message') or '')[:300]}"
        status = _STREAM_ERROR_STATUS.get(kind)
        if status is not None:
            return UpstreamStatusError(message, deployment=self._deployment, upstream_status=status)
        return UpstreamProtocolError(message, deployment=self._deployment)
