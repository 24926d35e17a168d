"""Simulated Anthropic Messages API upstream (`POST /v1/messages`, `GET /v1/models`).

Follows Anthropic's public API reference: the `anthropic-version` header, the key in `x-api-key`
(or `Authorization: Bearer`, which the 2.x SDKs send), API version 2026-10-21 refusing the
sampling parameters (`temperature`, `top_p`, `top_k`),
request validation with `invalid_request_error` messages that name the field, `Message`
objects, the streamed event sequence (`message_start`, `ping`, per content block
`content_block_start` / `content_block_delta`... / `content_block_stop`, `message_delta`,
`message_stop`, each with its `event:` line), and error bodies
`{"type": "error", "error": {"type", "message"}, "request_id"}`.

The answer itself comes from the OpenAI simulator's deterministic planner: the Messages request
is read into OpenAI-shaped messages (system, user text/images, assistant turns, tool results as
`tool` messages) so echo, tool calls, fault markers and token estimates behave alike in every
format. Fault kinds in Anthropic's terms: `429` -> `rate_limit_error` + `retry-after`, `503` ->
529 `overloaded_error`, `500` -> `api_error`, `401` -> `authentication_error`, `400`,
`midstream_error` -> an `event: error` (`overloaded_error`) after some text, `blocked` -> an
answer with `stop_reason: "refusal"`, plus `timeout`, `reset`, `malformed`, `truncate`,
`trickle` and `slow_first_byte`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from .. import content as C
from .. import faults as F
from .. import server as S
from ..profiles import FAULT_KINDS

_JSON_CT = "application/json"
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_MODELS_CREATED_AT = "2025-01-01T00:00:00Z"
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"})
# Top-level request fields of the Messages API; anything else is refused, as the real API does.
_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "metadata", "thinking", "service_tier", "container",
    "mcp_servers", "context_management", "output_config", "inference_geo",
})
_SAMPLING = ("temperature", "top_p", "top_k")
_SAMPLING_REMOVED_IN = "2026-10-21"
_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
_MIDSTREAM_TEXT_DELTAS = 2

_HTTP_FAULTS: dict[str, tuple[int, str, str, dict[str, str]]] = {
    "429": (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit "
            "(simulated).", {"retry-after": "1"}),
    "503": (529, "overloaded_error", "Overloaded", {}),
    "500": (500, "api_error", "Internal server error", {}),
    "401": (401, "authentication_error", "invalid x-api-key", {}),
    "400": (400, "invalid_request_error", "Invalid request (simulated fault).", {}),
}


class _Invalid(C.RequestError):
    """A request the real API refuses with 400 `invalid_request_error`."""


# --------------------------------------------------------------------------- wire helpers


def _request_id(st: S.SimState) -> str:
    return f"req_{st.id_prefix}{next(st.ids):08x}"


def error_response(st: S.SimState, status: int, kind: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    rid = _request_id(st)
    body = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": rid})
    return web.Response(status=status, body=body, content_type=_JSON_CT,
                        headers={"request-id": rid, **(headers or {})})


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


# --------------------------------------------------------------------------- request validation


def _check_blocks(content: Any, where: str, previous_tool_ids: set[str]) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _Invalid(f"{where}: Input should be a valid string or list of content blocks", where)
    for i, block in enumerate(content):
        at = f"{where}.{i}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in _BLOCK_TYPES:
            raise _Invalid(f"{at}.type: Input tag '{kind}' found using 'type' does not match any of the "
                           "expected tags", at)
        if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
            raise _Invalid(f"{at}.text: text content blocks must be non-empty", at)
        if kind == "image":
            _check_image(block.get("source"), f"{at}.source")
        if kind == "tool_use" and not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)
                                       and isinstance(block.get("input"), dict)):
            raise _Invalid(f"{at}: tool_use blocks need a string `id` and `name` and an object `input`", at)
        if kind == "tool_result" and block.get("tool_use_id") not in previous_tool_ids:
            raise _Invalid(
                f"{at}: unexpected `tool_use_id` found in `tool_result` blocks: {block.get('tool_use_id')}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                at,
            )


def _check_image(source: Any, where: str) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        if source.get("media_type") not in _IMAGE_TYPES or not isinstance(source.get("data"), str):
            raise _Invalid(f"{where}.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                           "'image/gif' or 'image/webp'", where)
    elif kind != "url" or not isinstance(source.get("url"), str):
        raise _Invalid(f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected "
                       "tags: 'base64', 'url'", where)


def _tool_ids(content: Any) -> set[str]:
    if not isinstance(content, list):
        return set()
    return {b["id"] for b in content if isinstance(b, dict) and b.get("type") == "tool_use"}


def validate(body: Any, version: str) -> None:
    """Refuse what the real Messages API (at `version`) refuses: the subset a gateway could get
    wrong."""
    if not isinstance(body, dict):
        raise _Invalid("Input should be an object")
    for name in body:
        if name not in _FIELDS or (name in _SAMPLING and version >= _SAMPLING_REMOVED_IN):
            raise _Invalid(f"{name}: Extra inputs are not permitted", name)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _Invalid("model: Field required", "model")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _Invalid("max_tokens: Field required", "max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _Invalid("max_tokens: Input should be an integer greater than or equal to 1", "max_tokens")
    _check_messages(body.get("messages"))
    _check_options(body)


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise _Invalid("messages: Field required", "messages")
    if not isinstance(messages, list) or not messages:
        raise _Invalid("messages: at least one message is required", "messages")
    previous: set[str] = set()
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant"):
            raise _Invalid(f'messages.{i}.role: Unexpected role "{role}". The Messages API accepts a '
                           "top-level `system` parameter, not \"system\" as an input message role.",
                           f"messages.{i}.role")
        _check_blocks(msg.get("content"), f"messages.{i}.content", previous)
        previous = _tool_ids(msg.get("content"))


def _check_options(body: dict[str, Any]) -> None:
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _check_blocks(system, "system", set())
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise _Invalid("stop_sequences: Input should be a valid list of strings", "stop_sequences")
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 1):
        raise _Invalid("temperature: Input should be less than or equal to 1", "temperature")
    tools = body.get("tools") or []
    for i, tool in enumerate(tools):
        tool = tool if isinstance(tool, dict) else {}
        schema = tool.get("input_schema")
        if not isinstance(tool.get("name"), str) or not isinstance(schema, dict) or schema.get("type") != "object":
            raise _Invalid(f"tools.{i}: custom tools need a `name` and an `input_schema` of type 'object'",
                           f"tools.{i}")
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in _TOOL_CHOICES:
            raise _Invalid(f"tool_choice.type: Input tag '{kind}' found using 'type' does not match any of "
                           "the expected tags: 'auto', 'any', 'tool', 'none'", "tool_choice")
        if kind == "tool" and choice.get("name") not in {t.get("name") for t in tools}:
            raise _Invalid(f"tool_choice.name: Tool '{choice.get('name')}' not found in 'tools'",
                           "tool_choice")


# --------------------------------------------------------------------------- planning


def _block_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content or "")


def openai_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's turns as OpenAI messages, for the shared planner (tool results become
    `tool` messages; images stay countable parts)."""
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else "\n".join(b.get("text", "") for b in system)
        out.append({"role": "system", "content": text})
    for msg in body["messages"]:
        content = msg["content"]
        if isinstance(content, str):
            out.append({"role": msg["role"], "content": content})
            continue
        parts: list[dict[str, Any]] = []
        for block in content:
            if block["type"] == "tool_result":
                out.append({"role": "tool", "content": _block_text(block)})
            elif block["type"] == "text":
                parts.append({"type": "text", "text": block["text"]})
            elif block["type"] == "image":
                parts.append({"type": "image"})
        if parts or msg["role"] == "assistant":
            out.append({"role": msg["role"], "content": parts})
    return out


def _openai_tools(body: dict[str, Any]) -> tuple[Any, Any]:
    tools = body.get("tools")
    if not tools:
        return None, None
    functions = [{"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
                 for t in tools]
    choice = body.get("tool_choice") or {"type": "auto"}
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(choice["type"])
    if mapped is None:
        mapped = {"type": "function", "function": {"name": choice["name"]}}
    return functions, mapped


@dataclass(slots=True)
class Answer:
    """One planned answer in Anthropic's terms."""

    blocks: list[dict[str, Any]]
    stop_reason: str | None  # None only in `message_start`
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int


def _cut_text(text: str, stops: list[str], max_tokens: int) -> tuple[str, str, str | None]:
    """(text, stop_reason, stop_sequence) after stop sequences and the token cap."""
    end, matched = len(text), None
    for s in stops:
        pos = text.find(s) if s else -1
        if 0 <= pos < end:
            end, matched = pos, s
    text, cut = C.apply_cap(text[:end], max_tokens)
    if cut:
        return text, "max_tokens", None
    return text, ("stop_sequence" if matched is not None else "end_turn"), matched


def plan(body: dict[str, Any], st: S.SimState) -> tuple[Answer, str | None]:
    """The answer to a validated request, and the fault its messages ask for."""
    tools, choice = _openai_tools(body)
    req = S.ChatRequest(
        model=body["model"], scan=C.scan_messages(openai_messages(body)), stream=body.get("stream") is True,
        include_usage=False, n=1, max_tokens=None, stop=None, tools=tools, tool_choice=choice,
        response_format=None,
    )
    c = S.plan_choice(req, st, 0)
    input_tokens = C.estimate_tokens(req.scan.prompt_chars)
    if c.text is None:
        block = {"type": "tool_use", "id": "toolu_" + (c.tool_id or "").removeprefix("call_"),
                 "name": c.tool_name, "input": orjson.loads(c.tool_args or "{}")}
        answer = Answer([block], "tool_use", None, input_tokens, C.estimate_tokens(c.output_chars))
        return answer, req.scan.fault
    text, reason, seq = _cut_text(c.text, body.get("stop_sequences") or [], body["max_tokens"])
    blocks = [{"type": "text", "text": text}] if text else []
    return Answer(blocks, reason, seq, input_tokens, C.estimate_tokens(len(text))), req.scan.fault


def refusal(answer: Answer) -> Answer:
    """The `blocked` fault: the safety classifiers stopped the answer before any content."""
    return Answer([], "refusal", None, answer.input_tokens, 1)


# --------------------------------------------------------------------------- rendering


def message_object(model: str, ans: Answer, msg_id: str) -> dict[str, Any]:
    return {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": ans.blocks,
        "stop_reason": ans.stop_reason, "stop_sequence": ans.stop_sequence,
        "usage": {"input_tokens": ans.input_tokens, "output_tokens": ans.output_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[bytes, float]]:
    if block["type"] == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in C.stream_pieces(block["text"])]
    else:
        start = {**block, "input": {}}
        args = orjson.dumps(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in C.argument_pieces(args)]
    events = [(sse("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": start}), 0.0)]
    events += [(sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}),
                len(d.get("text") or d.get("partial_json") or "") / 4) for d in deltas]
    events.append((sse("content_block_stop", {"type": "content_block_stop", "index": index}), 0.0))
    return events


def stream_events(model: str, ans: Answer, msg_id: str) -> list[tuple[bytes, float]]:
    """The whole event sequence of a streamed answer, with token weights for pacing."""
    start = message_object(model, Answer([], None, None, ans.input_tokens, 1), msg_id)
    events = [(sse("message_start", {"type": "message_start", "message": start}), 0.0),
              (sse("ping", {"type": "ping"}), 0.0)]
    for i, block in enumerate(ans.blocks):
        events += _block_events(i, block)
    delta = {"type": "message_delta", "delta": {"stop_reason": ans.stop_reason, "stop_sequence": ans.stop_sequence},
             "usage": {"output_tokens": ans.output_tokens}}
    events.append((sse("message_delta", delta), 0.0))
    events.append((sse("message_stop", {"type": "message_stop"}), 0.0))
    return events


def midstream_error_events(events: list[tuple[bytes, float]]) -> list[tuple[bytes, float]]:
    """message_start, ping, the first block's start and a few deltas, then Anthropic's
    mid-stream `error` event (`overloaded_error`)."""
    keep = 3 + _MIDSTREAM_TEXT_DELTAS
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    return [*events[:keep], (sse("error", error), 0.0)]


# --------------------------------------------------------------------------- responses


async def _send_plain(request: web.Request, st: S.SimState, body: dict[str, Any], ans: Answer,
                      kind: str | None) -> web.StreamResponse:
    p = st.profile
    delay = p.latency_ms / 1000.0 + (ans.output_tokens / p.tokens_per_s if p.tokens_per_s > 0 else 0.0)
    if delay > 0:
        await asyncio.sleep(delay)
    raw = orjson.dumps(message_object(body["model"], ans, _msg_id(st)))
    if kind == "truncate":
        return await S.send_truncated_body(request, raw)
    return web.Response(body=raw, content_type=_JSON_CT)


async def _send_stream(request: web.Request, st: S.SimState, body: dict[str, Any], ans: Answer,
                       kind: str | None) -> web.StreamResponse:
    events = stream_events(body["model"], ans, _msg_id(st))
    if kind == "midstream_error":
        events = midstream_error_events(events)
    if st.profile.ttft_ms > 0:
        await asyncio.sleep(st.profile.ttft_ms / 1000.0)
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    try:
        await resp.prepare(request)
        if kind == "truncate":
            await resp.write(b"".join(e for e, _ in events[:4]))
            F.close_connection(request)
            return resp
        if kind == "trickle":
            await _write_bytewise(resp, b"".join(e for e, _ in events))
        elif st.profile.tokens_per_s > 0:
            await S.write_paced(resp, events, st.profile.tokens_per_s)
        else:
            await resp.write(b"".join(e for e, _ in events))
        await resp.write_eof()
    except ConnectionError:
        pass  # the client went away mid-stream: nothing to report
    return resp


async def _write_bytewise(resp: web.StreamResponse, data: bytes) -> None:
    """One byte per network write, so the client sees events split at every byte."""
    for i in range(len(data)):
        await resp.write(data[i : i + 1])
        await resp.drain()
        await asyncio.sleep(0)


def _msg_id(st: S.SimState) -> str:
    return f"msg_{st.id_prefix}{next(st.ids):08x}"


_MALFORMED_JSON = b'{"id": "msg_sim_malformed", "type": "message", "role": "assistant", "content": [{"type'
_MALFORMED_SSE = b'event: message_start\ndata: {"type": "message_start", "message": {"id": "msg_\n\n'


async def _respond(request: web.Request, st: S.SimState, body: dict[str, Any], ans: Answer,
                   spec: str | None) -> web.StreamResponse:
    stream = body.get("stream") is True
    fault = F.parse_fault(spec) if spec else None
    kind = fault.kind if fault is not None and fault.kind in FAULT_KINDS else None
    if kind is not None:
        st.faults += 1
    if kind in _HTTP_FAULTS:
        status, err, message, headers = _HTTP_FAULTS[kind]
        return error_response(st, status, err, message, headers)
    if kind == "reset":
        return F.reset_connection(request)
    if kind == "malformed":
        if stream:
            return web.Response(body=_MALFORMED_SSE, headers=_SSE_HEADERS)
        return web.Response(body=_MALFORMED_JSON, content_type=_JSON_CT)
    if kind == "timeout" and not await F.hang(request, st.cfg.hang_s, st.stopping):
        return F.reset_connection(request)
    if kind == "slow_first_byte" and fault is not None:
        await asyncio.sleep((fault.arg or 0.0) / 1000.0)
    if kind == "blocked":
        ans = refusal(ans)
    return await (_send_stream if stream else _send_plain)(request, st, body, ans, kind)


# --------------------------------------------------------------------------- handlers


def _refuse_headers(request: web.Request, st: S.SimState) -> web.Response | None:
    """401 without the right `x-api-key` (when the simulator has a key), 400 without
    `anthropic-version`: the checks the real API makes before reading the body."""
    key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    if st.cfg.api_key and key != st.cfg.api_key:
        message = "invalid x-api-key" if key else "x-api-key header is required"
        return error_response(st, 401, "authentication_error", message)
    if not request.headers.get("anthropic-version"):
        return error_response(st, 400, "invalid_request_error", "anthropic-version: header is required")
    return None


async def messages(request: web.Request) -> web.StreamResponse:
    st = request.app[S.STATE]
    st.requests += 1
    st.chat_requests += 1
    st.last_headers = request.headers
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    else:
        st.last_request = body
    refused = _refuse_headers(request, st)
    if refused is not None:
        return refused
    try:
        validate(body, request.headers["anthropic-version"])
        ans, marker = plan(body, st)
    except C.RequestError as exc:
        return error_response(st, 400, "invalid_request_error", exc.message)
    return await _respond(request, st, body, ans, marker or st.roll_config_fault())


async def list_models(request: web.Request) -> web.Response:
    st = request.app[S.STATE]
    st.requests += 1
    st.last_headers = request.headers
    refused = _refuse_headers(request, st)
    if refused is not None:
        return refused
    ids = list(st.profile.models)
    data = [{"type": "model", "id": m, "display_name": m, "created_at": _MODELS_CREATED_AT,
             "lifecycle": "active"} for m in ids]
    body = {"data": data, "has_more": False, "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None}
    return web.Response(body=orjson.dumps(body), content_type=_JSON_CT)


async def not_found(request: web.Request) -> web.Response:
    st = request.app[S.STATE]
    st.requests += 1
    st.last_headers = request.headers
    return error_response(st, 404, "not_found_error", f"Not found: {request.method} {request.path}")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", list_models)
    app.router.add_route("*", "/v1/{tail:.*}", not_found)

