"""Simulated Ollama native API: `POST /api/chat`, `POST /api/embed`, `GET /api/tags`,
`GET /api/version` (after Ollama's public API reference, docs.ollama.com/api).

Chat answers come from the OpenAI simulator's deterministic planner: the Ollama request is read
into OpenAI-shaped messages, planned, and rendered the Ollama way. `stream` defaults to true as
in the real API; a stream is NDJSON (`application/x-ndjson`): one `{"message": {...}, "done":
false}` object per line, tool calls whole in one line, then a `done: true` line with the token
counts and durations. Errors are `{"error": "..."}` with the HTTP status (a missing model is 404
"model ... not found, try pulling it first"); an error after a stream has begun is an
`{"error": ...}` line of the 200 body, which is what `midstream_error` produces. Ollama has no
content-safety block, so `blocked` answers normally.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import zlib
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from .. import content as C
from .. import faults as F
from .. import server as S
from ..profiles import FAULT_KINDS
from ..server import STATE, SimState

VERSION = "0.12.6"
NDJSON_CT = "application/x-ndjson"
EMBED_DIMS = 768
_MODIFIED_AT = "2025-01-15T10:30:00.123456789Z"
_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
# Faults answered with an error status, in Ollama's shape (429 also carries Retry-After).
_STATUS_FAULTS: dict[str, tuple[int, str]] = {
    "500": (500, "llama runner process has terminated: exit status 2 (simulated)"),
    "503": (503, "server busy, please try again.  maximum pending requests exceeded (simulated)"),
    "429": (429, "too many requests, please retry later (simulated)"),
    "400": (400, "invalid request (simulated fault)"),
    "401": (401, "unauthorized"),
}
_MIDSTREAM_ERROR = "an error was encountered while running the model: unexpected EOF (simulated)"
_MALFORMED_LINE = b'{"model":"sim","created_at":"2025-01-01T00:00:00Z","message":{"role":"assist\n'


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/embed", embed)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/version", version)


# --------------------------------------------------------------------------- helpers


def _error(status: int, message: str) -> web.Response:
    headers = {"Retry-After": "1"} if status == 429 else None
    return web.json_response({"error": message}, status=status, headers=headers, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _begin(request: web.Request) -> tuple[SimState, web.Response | None]:
    """Count the request; an auth error response when the simulator requires a key."""
    st = request.app[STATE]
    st.requests += 1
    st.last_headers = request.headers
    if st.auth is not None and request.headers.get("Authorization") != st.auth:
        return st, _error(401, "unauthorized")
    return st, None


def _resolve_model(st: SimState, model: Any) -> str:
    if not isinstance(model, str) or not model:
        raise C.RequestError("model is required", "model")
    if model in st.profile.models or (":" not in model and f"{model}:latest" in st.profile.models):
        return model
    raise _ModelNotFound(model)


class _ModelNotFound(Exception):
    pass


def _not_found(model: str) -> web.Response:
    return _error(404, f'model "{model}" not found, try pulling it first')


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------- chat request


def _openai_message(i: int, msg: Any) -> dict[str, Any]:
    """One Ollama message, checked like Ollama's decoder does, as an OpenAI message."""
    if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
        raise C.RequestError(f"messages[{i}]: role is required", "messages")
    text = msg.get("content", "")
    if not isinstance(text, str):
        raise C.RequestError(
            f"json: cannot unmarshal {type(text).__name__} into Go struct field Message.messages.content of type string",
            "messages",
        )
    images = msg.get("images") or []
    if not isinstance(images, list) or not all(isinstance(x, str) and _is_base64(x) for x in images):
        raise C.RequestError("illegal base64 data in messages[].images", "messages")
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(fn.get("arguments", {}), dict):
            raise C.RequestError(
                "json: cannot unmarshal into Go struct field ToolCallFunction.messages.tool_calls.function.arguments "
                "of type api.ToolCallFunctionArguments", "messages",
            )
    if not images:
        return {"role": msg["role"], "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": f"data:image/*;base64,{x[:8]}"}} for x in images]
    return {"role": msg["role"], "content": parts}


def _is_base64(value: str) -> bool:
    return bool(value) and re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", value) is not None and len(value) % 4 == 0


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}
    raise C.RequestError(f"invalid format: {str(fmt)[:40]!r}", "format")


def _check_keep_alive(value: Any) -> None:
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return
    if isinstance(value, str) and (value == "0" or _GO_DURATION.match(value)):
        return
    raise C.RequestError(f'time: missing unit in duration "{value}"', "keep_alive")


def _openai_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The OpenAI-shaped request the planner understands."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise C.RequestError("messages must be an array", "messages")
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise C.RequestError("options must be an object", "options")
    _check_keep_alive(body.get("keep_alive"))
    out: dict[str, Any] = {"model": model, "messages": [_openai_message(i, m) for i, m in enumerate(messages)]}
    tools = body.get("tools")
    if tools:
        out["tools"] = tools
    response_format = _response_format(body.get("format"))
    if response_format:
        out["response_format"] = response_format
    num_predict = options.get("num_predict")
    if isinstance(num_predict, int) and num_predict > 0:  # -1 = unlimited, -2 = fill the context
        out["max_tokens"] = num_predict
    if options.get("stop"):
        out["stop"] = options["stop"]
    return out


# --------------------------------------------------------------------------- chat answer


def _stats(use: dict[str, int], done_reason: str) -> dict[str, Any]:
    prompt, completion = use["prompt_tokens"], use["completion_tokens"]
    load, prompt_ns, eval_ns = 1_250_000, prompt * 400_000, completion * 5_000_000
    return {
        "done": True,
        "done_reason": done_reason,
        "total_duration": load + prompt_ns + eval_ns,
        "load_duration": load,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": prompt_ns,
        "eval_count": completion,
        "eval_duration": eval_ns,
    }


def _tool_call(plan: S.ChoicePlan) -> dict[str, Any]:
    return {"function": {"name": plan.tool_name or "", "arguments": orjson.loads(plan.tool_args or "{}")}}


def _answer(model: str, plan: S.ChoicePlan, use: dict[str, int]) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": plan.text or ""}
    if plan.text is None:
        message["tool_calls"] = [_tool_call(plan)]
    head = {"model": model, "created_at": _now(), "message": message}
    return orjson.dumps({**head, **_stats(use, plan.finish if plan.finish == "length" else "stop")})


def _stream_lines(model: str, plan: S.ChoicePlan, use: dict[str, int]) -> list[tuple[bytes, float]]:
    """NDJSON lines of a streamed answer, each with its token weight for pacing."""
    def line(message: dict[str, Any], **extra: Any) -> bytes:
        return orjson.dumps({"model": model, "created_at": _now(), "message": message, "done": False, **extra}) + b"\n"

    if plan.text is None:
        lines = [(line({"role": "assistant", "content": "", "tool_calls": [_tool_call(plan)]}), len(plan.tool_args or "") / 4)]
    else:
        lines = [(line({"role": "assistant", "content": p}), len(p) / 4) for p in C.stream_pieces(plan.text)]
    done_reason = "length" if plan.finish == "length" else "stop"
    lines.append((line({"role": "assistant", "content": ""}, **_stats(use, done_reason)), 0.0))
    return lines


async def _send_stream(request: web.Request, st: SimState, lines: list[tuple[bytes, float]], mode: str | None) -> web.StreamResponse:
    p = st.profile
    if p.ttft_ms > 0:
        await asyncio.sleep(p.ttft_ms / 1000.0)
    resp = web.StreamResponse(headers={"Content-Type": NDJSON_CT})
    keep = max(1, min(3, len(lines) - 1))
    try:
        await resp.prepare(request)
        if mode == "truncate":
            await resp.write(b"".join(data for data, _ in lines[:keep]))
            F.close_connection(request)
            return resp
        if mode == "midstream_error":
            error_line = orjson.dumps({"error": _MIDSTREAM_ERROR}) + b"\n"
            await resp.write(b"".join(data for data, _ in lines[:keep]) + error_line)
        elif mode == "trickle":
            await _trickle(resp, b"".join(data for data, _ in lines))
        elif p.tokens_per_s <= 0:
            await resp.write(b"".join(data for data, _ in lines))
        else:
            await S.write_paced(resp, lines, p.tokens_per_s)
        await resp.write_eof()
    except ConnectionError:
        pass  # the client went away mid-stream
    return resp


async def _trickle(resp: web.StreamResponse, body: bytes) -> None:
    """One byte per network write, yielding between writes so each goes out on its own."""
    for i in range(len(body)):
        await resp.write(body[i : i + 1])
        await asyncio.sleep(0)


async def _send_plain(request: web.Request, st: SimState, body: bytes, completion_tokens: int, mode: str | None) -> web.StreamResponse:
    p = st.profile
    delay = p.latency_ms / 1000.0 + (completion_tokens / p.tokens_per_s if p.tokens_per_s > 0 else 0.0)
    if delay > 0:
        await asyncio.sleep(delay)
    if mode == "truncate":
        return await S.send_truncated_body(request, body)
    if mode == "midstream_error":  # before any byte is sent, Ollama reports a status
        return _error(500, _MIDSTREAM_ERROR)
    if mode != "trickle":
        return web.Response(body=body, content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        await resp.prepare(request)
        await _trickle(resp, body)
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp


async def _fault_response(request: web.Request, st: SimState, spec: str, stream: bool) -> tuple[web.StreamResponse | None, str | None]:
    """(a response that replaces the answer, or None and the mode the answer is sent in)."""
    fault = F.parse_fault(spec)
    if fault.kind not in FAULT_KINDS or fault.kind == "blocked":
        return None, None
    st.faults += 1
    if fault.kind in _STATUS_FAULTS:
        return _error(*_STATUS_FAULTS[fault.kind]), None
    if fault.kind == "reset":
        return F.reset_connection(request), None
    if fault.kind == "malformed":
        body = _MALFORMED_LINE if stream else _MALFORMED_LINE[:-1]
        return web.Response(body=body, content_type=NDJSON_CT if stream else "application/json"), None
    if fault.kind == "timeout":
        if not await F.hang(request, st.cfg.hang_s, st.stopping):
            return F.reset_connection(request), None
    elif fault.kind == "slow_first_byte":
        await asyncio.sleep((fault.arg or 0.0) / 1000.0)
    return None, fault.kind if fault.kind in ("truncate", "midstream_error", "trickle") else None


async def chat(request: web.Request) -> web.StreamResponse:
    st, denied = _begin(request)
    st.chat_requests += 1
    body, ok = await S._read_json(request)
    if ok:
        st.last_request = body
    if denied is not None:
        return denied
    if not ok or not isinstance(body, dict):
        return _error(400, "invalid character in request body: expected a JSON object")
    try:
        model = _resolve_model(st, body.get("model"))
        stream = body.get("stream", True)
        if not isinstance(stream, bool):
            raise C.RequestError("stream must be a boolean", "stream")
        req = S.parse_chat_request(_openai_body(body, model))
    except C.RequestError as exc:
        return _error(400, exc.message)
    except _ModelNotFound as exc:
        return _not_found(str(exc))
    mode = None
    spec = req.scan.fault or st.roll_config_fault()
    if spec is not None:
        early, mode = await _fault_response(request, st, spec, stream)
        if early is not None:
            return early
    plans, use = S.plan_answer(req, st)
    if stream:
        return await _send_stream(request, st, _stream_lines(model, plans[0], use), mode)
    return await _send_plain(request, st, _answer(model, plans[0], use), use["completion_tokens"], mode)


# --------------------------------------------------------------------------- embed, tags, version


def embedding(model: str, text: str, dims: int) -> list[float]:
    """A deterministic unit vector for `text` (the same text always embeds the same)."""
    x = zlib.crc32(f"{model}\x00{text}".encode("utf-8", "surrogatepass")) or 1
    values = []
    for _ in range(dims):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        values.append(((x >> 11) / float(1 << 53)) * 2.0 - 1.0)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _embed_inputs(body: dict[str, Any]) -> tuple[list[str], int]:
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise C.RequestError("invalid input type", "input")
    dims = body.get("dimensions") or EMBED_DIMS
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= EMBED_DIMS:
        raise C.RequestError(f"dimensions must be between 1 and {EMBED_DIMS}", "dimensions")
    _check_keep_alive(body.get("keep_alive"))
    return texts, dims


async def embed(request: web.Request) -> web.StreamResponse:
    st, denied = _begin(request)
    body, ok = await S._read_json(request)
    if ok:
        st.last_request = body
    if denied is not None:
        return denied
    if not ok or not isinstance(body, dict):
        return _error(400, "invalid character in request body: expected a JSON object")
    try:
        model = _resolve_model(st, body.get("model"))
        texts, dims = _embed_inputs(body)
    except C.RequestError as exc:
        return _error(400, exc.message)
    except _ModelNotFound as exc:
        return _not_found(str(exc))
    spec = next((f for f in map(C.find_fault, texts) if f), None) or st.roll_config_fault()
    if spec is not None:
        early, _ = await _fault_response(request, st, spec, False)
        if early is not None:
            return early
    tokens = sum(C.estimate_tokens(len(t)) for t in texts)
    return web.Response(
        body=orjson.dumps({
            "model": model,
            "embeddings": [embedding(model, t, dims) for t in texts],
            "total_duration": 1_250_000 + tokens * 200_000,
            "load_duration": 1_250_000,
            "prompt_eval_count": tokens,
        }),
        content_type="application/json",
    )


def _model_entry(name: str) -> dict[str, Any]:
    family = re.match(r"[a-z]+", name.lower())
    tag = name.partition(":")[2]
    return {
        "name": name,
        "model": name,
        "modified_at": _MODIFIED_AT,
        "size": 2_000_000_000 + zlib.crc32(name.encode()) % 5_000_000_000,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family.group(0) if family else "llama",
            "families": [family.group(0) if family else "llama"],
            "parameter_size": tag.upper() if tag[:1].isdigit() else "7B",
            "quantization_level": "Q4_K_M",
        },
    }


async def tags(request: web.Request) -> web.Response:
    st, denied = _begin(request)
    if denied is not None:
        return denied
    return web.json_response({"models": [_model_entry(m) for m in st.profile.models]}, dumps=_dumps)


async def version(request: web.Request) -> web.Response:
    st, denied = _begin(request)
    return denied or web.json_response({"version": VERSION}, dumps=_dumps)

