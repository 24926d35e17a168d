"""Translation between Anthropic's Messages API and the gateway's canonical (OpenAI chat) format.

Pure functions and one stateful stream translator, no HTTP: `server/anthropic_api.py` reads the
request, calls `to_openai_request`, hands the result to `Gateway.chat` (the same pipeline as the
OpenAI route: auth, privacy, routing, fallback, receipts, request log) and renders the canonical
answer with `to_anthropic_message` or `StreamTranslator`.

Validation is strict and Anthropic-style: a wrong field raises `InvalidRequestError` whose message
starts with the dotted field path Anthropic uses (`messages.1.content.0.type: ...`), so a client
sees which field to fix. Fields without an OpenAI equivalent are either dropped because they only
tune the answer (`top_k`, `thinking`, `cache_control`, `service_tier`, ...) or refused with a 400
because dropping them would change what the request means (documents, server tools, files).
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from .errors import InvalidRequestError
from .providers.canonical import message_text, new_tool_call_id
from .routing.eligible import estimate_prompt_tokens

# Fields that only tune how Anthropic's own service answers; no OpenAI equivalent, safe to drop.
_IGNORED_FIELDS = frozenset({
    "cache_control", "diagnostics", "inference_geo", "service_tier", "speed", "thinking", "top_k",
    "user_profile_id", "workspace_id",
})
_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "stream",
    "tools", "tool_choice", "metadata", "output_config",
}) | _IGNORED_FIELDS
_REQUIRED_FIELDS = ("model", "messages", "max_tokens")
_TIERGATE_METADATA = ("privacy", "constraints", "strategy")
_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})  # the upstream cannot use them
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
_STOP_REASONS = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    502: "api_error", 503: "overloaded_error", 504: "timeout_error",
}


# ------------------------------------------------------------------ errors
def _invalid(path: str, reason: str) -> InvalidRequestError:
    return InvalidRequestError(f"{path}: {reason}", param=path)


def error_type(status: int) -> str:
    """Anthropic's error `type` for an HTTP status (other 4xx: invalid_request_error)."""
    known = _ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error shape; the same object is the payload of a mid-stream `error` event."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(status), "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


# ------------------------------------------------------------------ field checks
def _required(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise _invalid(_join(path, key), "Field required")
    return obj[key]


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(path, "Input should be an object")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(path, "Input should be a valid list")
    return value


def _string(value: Any, path: str, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _invalid(path, "Input should be a valid string")
    if non_empty and not value:
        raise _invalid(path, "String should have at least 1 character")
    return value


def _integer(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(path, "Input should be a valid integer")
    if value < minimum:
        raise _invalid(path, f"Input should be greater than or equal to {minimum}")
    return value


def _number(value: Any, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(path, "Input should be a valid number")
    if not low <= value <= high:
        raise _invalid(path, f"Input should be between {low:g} and {high:g}")
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(path, "Input should be a valid boolean")
    return value


def _no_extra(obj: dict[str, Any], allowed: Iterable[str], path: str) -> None:
    allowed = set(allowed)
    for key in obj:
        if key not in allowed:
            raise _invalid(_join(path, key), "Extra inputs are not permitted")


# ------------------------------------------------------------------ request: Anthropic -> OpenAI
def to_openai_request(body: Any, *, count_only: bool = False) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat-completions body.

    `count_only` (for `/v1/messages/count_tokens`) makes `max_tokens` optional.

    Raises:
        InvalidRequestError: naming the first wrong field by its Anthropic path.
    """
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    _no_extra(body, _FIELDS, "")
    # An optional field sent as null means "not given" (several client libraries send nulls).
    body = {k: v for k, v in body.items() if v is not None or k in _REQUIRED_FIELDS}
    out: dict[str, Any] = {"model": _string(_required(body, "model", ""), "model", non_empty=True)}
    messages = _system_messages(body.get("system"), "system") if "system" in body else []
    messages += _messages(_required(body, "messages", ""))
    out["messages"] = messages
    if body.get("max_tokens") is not None or not count_only:
        out["max_tokens"] = _integer(_required(body, "max_tokens", ""), "max_tokens", 1)
    _sampling(body, out)
    if "tools" in body:
        tools = _tools(body["tools"])
        if tools:
            out["tools"] = tools
    if "tool_choice" in body:
        _tool_choice(body["tool_choice"], out)
    if "metadata" in body:
        _metadata(body["metadata"], out)
    if "output_config" in body:
        _output_config(body["output_config"], out)
    if "stream" in body and _boolean(body["stream"], "stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # the final usage gives output_tokens
    return out


def _sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    """stop_sequences, temperature, top_p; top_k is checked, then dropped (OpenAI has none)."""
    if "stop_sequences" in body:
        stops = _array(body["stop_sequences"], "stop_sequences")
        for i, s in enumerate(stops):
            _string(s, f"stop_sequences.{i}")
        if stops:
            out["stop"] = stops
    for name in ("temperature", "top_p"):
        if name in body:
            out[name] = _number(body[name], name, 0.0, 1.0)
    if "top_k" in body:
        _integer(body["top_k"], "top_k", 0)


def _system_messages(value: Any, path: str) -> list[dict[str, Any]]:
    """Top-level `system` (a string or text blocks) as at most one OpenAI system message."""
    text = _text_content(value, path)
    return [{"role": "system", "content": text}] if text else []


def _text_content(value: Any, path: str) -> str:
    """A string, or text blocks joined by newlines (system prompts, tool results)."""
    if isinstance(value, str):
        return value
    texts = []
    for j, block in enumerate(_array(value, path)):
        bpath = f"{path}.{j}"
        if _block_type(block, bpath) != "text":
            raise _invalid(f"{bpath}.type", "only text blocks are allowed here")
        texts.append(_text(block, bpath))
    return "\n".join(texts)


def _messages(value: Any) -> list[dict[str, Any]]:
    items = _array(value, "messages")
    if not items:
        raise _invalid("messages", "List should have at least 1 item")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        path = f"messages.{i}"
        msg = _object(item, path)
        _no_extra(msg, ("role", "content"), path)
        role = _required(msg, "role", path)
        content = _required(msg, "content", path)
        if role == "user":
            out += _user_turn(content, path)
        elif role == "assistant":
            out.append(_assistant_turn(content, path))
        elif role == "system":
            out += _system_messages(content, f"{path}.content")
        else:
            raise _invalid(f"{path}.role", "Input should be 'user', 'assistant' or 'system'")
    return out


def _block_type(block: Any, path: str) -> str:
    return _string(_required(_object(block, path), "type", path), f"{path}.type")


def _unsupported(kind: str, path: str) -> InvalidRequestError:
    if kind == "document":
        return _invalid(f"{path}.type", "document blocks are not supported by this gateway yet")
    return _invalid(f"{path}.type", f"'{kind}' blocks are not supported by this gateway")


def _user_turn(content: Any, path: str) -> list[dict[str, Any]]:
    """One user message; its tool_result blocks become OpenAI `tool` messages placed first."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_array(content, f"{path}.content")):
        bpath = f"{path}.content.{j}"
        kind = _block_type(block, bpath)
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, bpath)})
        elif kind == "image":
            parts.append(_image_part(block, bpath))
        elif kind == "tool_result":
            tool_message, images = _tool_result(block, bpath)
            out.append(tool_message)
            parts += images  # OpenAI tool messages carry text only: images follow as user content
        elif kind not in _THINKING_BLOCKS:
            raise _unsupported(kind, bpath)
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    if not out:
        raise _invalid(f"{path}.content", "user messages must have non-empty content")
    return out


def _assistant_turn(content: Any, path: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_array(content, f"{path}.content")):
        bpath = f"{path}.content.{j}"
        kind = _block_type(block, bpath)
        if kind == "text":
            texts.append(_text(block, bpath))
        elif kind == "tool_use":
            calls.append(_tool_call(block, bpath))
        elif kind in ("image", "tool_result"):
            raise _invalid(f"{bpath}.type", f"'{kind}' blocks are only allowed in user messages")
        elif kind not in _THINKING_BLOCKS:
            raise _unsupported(kind, bpath)
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _text(block: dict[str, Any], path: str) -> str:
    return _string(_required(block, "text", path), f"{path}.text")


def _image_part(block: dict[str, Any], path: str) -> dict[str, Any]:
    spath = f"{path}.source"
    source = _object(_required(block, "source", path), spath)
    kind = _string(_required(source, "type", spath), f"{spath}.type")
    if kind == "base64":
        media = _string(_required(source, "media_type", spath), f"{spath}.media_type")
        if media not in _MEDIA_TYPES:
            raise _invalid(f"{spath}.media_type", f"Input should be one of {', '.join(_MEDIA_TYPES)}")
        data = _string(_required(source, "data", spath), f"{spath}.data", non_empty=True)
        url = f"data:{media};base64,{data}"
    elif kind == "url":
        url = _string(_required(source, "url", spath), f"{spath}.url", non_empty=True)
    else:
        raise _invalid(f"{spath}.type", f"image source '{kind}' is not supported; use 'base64' or 'url'")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_call(block: dict[str, Any], path: str) -> dict[str, Any]:
    call_id = _string(_required(block, "id", path), f"{path}.id", non_empty=True)
    name = _string(_required(block, "name", path), f"{path}.name", non_empty=True)
    arguments = _object(_required(block, "input", path), f"{path}.input")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
    }


def _tool_result(block: dict[str, Any], path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the OpenAI tool message, image parts of the result for the following user message)."""
    call_id = _string(_required(block, "tool_use_id", path), f"{path}.tool_use_id", non_empty=True)
    content = block.get("content", "")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        for k, inner in enumerate(_array(content, f"{path}.content")):
            ipath = f"{path}.content.{k}"
            kind = _block_type(inner, ipath)
            if kind == "text":
                texts.append(_text(inner, ipath))
            elif kind == "image":
                images.append(_image_part(inner, ipath))
            else:
                raise _unsupported(kind, ipath)
    text = "\n".join(texts)
    if "is_error" in block and _boolean(block["is_error"], f"{path}.is_error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _tools(value: Any) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(_array(value, "tools")):
        path = f"tools.{i}"
        tool = _object(item, path)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise _invalid(
                f"{path}.type", f"server tool '{kind}' is not supported by this gateway; "
                "only client tools (name, description, input_schema)",
            )
        function: dict[str, Any] = {
            "name": _string(_required(tool, "name", path), f"{path}.name", non_empty=True),
            "parameters": _object(_required(tool, "input_schema", path), f"{path}.input_schema"),
        }
        if tool.get("description") is not None:
            function["description"] = _string(tool["description"], f"{path}.description")
        if "strict" in tool and _boolean(tool["strict"], f"{path}.strict"):
            function["strict"] = True
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(value: Any, out: dict[str, Any]) -> None:
    choice = _object(value, "tool_choice")
    kind = _string(_required(choice, "type", "tool_choice"), "tool_choice.type")
    if kind == "tool":
        name = _string(_required(choice, "name", "tool_choice"), "tool_choice.name", non_empty=True)
        mapped: Any = {"type": "function", "function": {"name": name}}
    elif kind in _TOOL_CHOICES:
        mapped = _TOOL_CHOICES[kind]
    else:
        raise _invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    no_parallel = "disable_parallel_tool_use" in choice and _boolean(
        choice["disable_parallel_tool_use"], "tool_choice.disable_parallel_tool_use"
    )
    if "tools" not in out:
        if kind in ("any", "tool"):
            raise _invalid("tool_choice", f"tool_choice '{kind}' needs at least one tool in 'tools'")
        return  # auto/none without tools: nothing to choose from, nothing to send
    out["tool_choice"] = mapped
    if no_parallel:
        out["parallel_tool_calls"] = False


def _metadata(value: Any, out: dict[str, Any]) -> None:
    """`user_id` -> OpenAI `user`; tiergate's own keys go on for the pipeline's classify step."""
    meta = _object(value, "metadata")
    _no_extra(meta, ("user_id", *_TIERGATE_METADATA), "metadata")
    if meta.get("user_id") is not None:
        out["user"] = _string(meta["user_id"], "metadata.user_id")
    ours = {k: meta[k] for k in _TIERGATE_METADATA if k in meta}
    if ours:
        out["metadata"] = ours


def _output_config(value: Any, out: dict[str, Any]) -> None:
    """`format: {type: json_schema, schema}` -> OpenAI `response_format`; `effort` is dropped."""
    config = _object(value, "output_config")
    _no_extra(config, ("effort", "format"), "output_config")
    fmt = config.get("format")
    if fmt is None:
        return
    fmt = _object(fmt, "output_config.format")
    if _required(fmt, "type", "output_config.format") != "json_schema":
        raise _invalid("output_config.format.type", "Input should be 'json_schema'")
    schema = _object(_required(fmt, "schema", "output_config.format"), "output_config.format.schema")
    out["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


# ------------------------------------------------------------------ response: OpenAI -> Anthropic
def message_id(request_id: str) -> str:
    """`msg_` + the request id's digits, so a message id leads straight to its request log row."""
    return "msg_" + request_id.removeprefix("req_")


def stop_reason(finish_reason: Any, called_tools: bool) -> str:
    """Canonical finish reason -> Anthropic stop_reason (some upstreams say `stop` after tool
    calls; the answer still ends in tool use)."""
    if called_tools and finish_reason in (None, "stop", "tool_calls", "function_call"):
        return "tool_use"
    return _STOP_REASONS.get(finish_reason, "end_turn")


def tool_input(arguments: Any) -> dict[str, Any]:
    """OpenAI tool-call `arguments` (a JSON string) as Anthropic's `input` object. Kept, never
    dropped, when the upstream sent something else: a non-object under `value`, text that is not
    JSON under `raw_arguments`."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"raw_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def to_anthropic_message(
    completion: dict[str, Any], *, model: str, message_id: str, request_body: dict[str, Any]
) -> dict[str, Any]:
    """A canonical `chat.completion` as an Anthropic `message` (`model`: the name the client
    asked for; `request_body`: the OpenAI body, for a local estimate when usage is missing)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message_text(message.get("content"))
    refusal = message.get("refusal")
    if not text and isinstance(refusal, str) and refusal:
        text = refusal
    if text:
        content.append({"type": "text", "text": text})
    calls = [c for c in message.get("tool_calls") or () if isinstance(c, dict)]
    for call in calls:
        fn = call.get("function") or {}
        content.append({
            "type": "tool_use",
            "id": call.get("id") or new_tool_call_id(),
            "name": fn.get("name") or "",
            "input": tool_input(fn.get("arguments")),
        })
    reason = "refusal" if refusal and not message.get("content") else stop_reason(choice.get("finish_reason"), bool(calls))
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": _usage(completion.get("usage"), request_body, text, calls),
    }


def _usage(usage: Any, request_body: dict[str, Any], text: str, calls: list[dict[str, Any]]) -> dict[str, int]:
    if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
        return {
            "input_tokens": int(usage.get("prompt_tokens") or 0),
            "output_tokens": int(usage.get("completion_tokens") or 0),
        }
    chars = len(text) + sum(len(str((c.get("function") or {}).get("arguments") or "")) for c in calls)
    return {"input_tokens": estimate_prompt_tokens(request_body), "output_tokens": max(1, chars // 4)}


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One Anthropic SSE event: the `event:` name repeats the payload's `type`."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_event(status: int, message: str, request_id: str | None = None) -> bytes:
    """The `error` event that ends a stream whose upstream failed after the answer began."""
    return sse("error", error_body(status, message, request_id))


class StreamTranslator:
    """Canonical `chat.completion.chunk` batches -> Anthropic SSE bytes, incrementally.

    Anthropic streams content blocks one after another (`content_block_start`, deltas,
    `content_block_stop`); OpenAI deltas carry text and tool calls in one flow. A block is opened
    when its kind changes and closed when the next one opens or the answer ends. Usage arrives
    last, so `message_start` carries the local input estimate and `message_delta` the reported
    numbers.
    """

    def __init__(self, *, model: str, message_id: str, input_tokens: int) -> None:
        self._model = model
        self._id = message_id
        self._input = input_tokens
        self._output: int | None = None
        self._chars = 0
        self._blocks = 0  # content blocks started so far (the next block's index)
        self._open: int | None = None  # index of the open block
        self._text_open = False
        self._tools: dict[int, tuple[int, str]] = {}  # OpenAI tool index -> (block index, call id)
        self._finish: Any = None
        self._refused = False

    def start(self) -> bytes:
        message = {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self._input, "output_tokens": 0},
        }
        return sse("message_start", {"type": "message_start", "message": message}) + sse("ping", {"type": "ping"})

    def feed(self, chunks: Iterable[dict[str, Any]]) -> bytes:
        """The Anthropic events for one batch of canonical chunks (possibly empty bytes)."""
        out: list[bytes] = []
        for chunk in chunks:
            usage = chunk.get("usage")
            if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
                self._input = int(usage.get("prompt_tokens") or 0)
                self._output = int(usage.get("completion_tokens") or 0)
            for choice in chunk.get("choices") or ():
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    self._choice(choice, out)
        return b"".join(out)

    def finish(self) -> bytes:
        """Close the open block, then `message_delta` (stop reason, usage) and `message_stop`."""
        out: list[bytes] = []
        self._close(out)
        reason = "refusal" if self._refused else stop_reason(self._finish, bool(self._tools))
        output = self._output if self._output is not None else max(1, self._chars // 4)
        out.append(sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": None},
            "usage": {"input_tokens": self._input, "output_tokens": output},
        }))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if not text and isinstance(delta.get("refusal"), str) and delta["refusal"]:
            text, self._refused = delta["refusal"], True
        if isinstance(text, str) and text:
            self._text(text, out)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self._tool(call, out)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]

    def _text(self, text: str, out: list[bytes]) -> None:
        index = self._open if self._text_open else None
        if index is None:
            index = self._open_block({"type": "text", "text": ""}, out)
            self._text_open = True
        self._chars += len(text)
        out.append(self._delta(index, {"type": "text_delta", "text": text}))

    def _tool(self, call: dict[str, Any], out: list[bytes]) -> None:
        index = call.get("index", 0)
        fn = call.get("function") or {}
        known = self._tools.get(index)
        call_id = call.get("id")
        if known is None or (call_id and call_id != known[1]):  # a new call (some servers reuse index 0)
            call_id = call_id or new_tool_call_id()
            block = {"type": "tool_use", "id": call_id, "name": fn.get("name") or "", "input": {}}
            known = (self._open_block(block, out), call_id)
            self._tools[index] = known
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._chars += len(arguments)
            out.append(self._delta(known[0], {"type": "input_json_delta", "partial_json": arguments}))

    def _open_block(self, block: dict[str, Any], out: list[bytes]) -> int:
        self._close(out)
        index = self._blocks
        self._blocks += 1
        self._open = index
        out.append(sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        return index

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(sse("content_block_stop", {"type": "content_block_stop", "index": self._open}))
            self._open = None
            self._text_open = False

    @staticmethod
    def _delta(index: int, delta: dict[str, Any]) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
