"""Google Gemini wire format for the simulator (AI Studio and Vertex AI paths).

Routes, following Google's REST reference:

    POST /v1beta/models/{model}:generateContent        one GenerateContentResponse
    POST /v1beta/models/{model}:streamGenerateContent  `?alt=sse`: SSE events (`data: {...}\\r\\n\\r\\n`),
                                                       each a GenerateContentResponse; without
                                                       `alt=sse`: one JSON array of them
    POST /v1beta/models/{model}:batchEmbedContents     deterministic vectors
    GET  /v1beta/models[/{model}]                      Google's model list / one model
    (the same under /v1: AI Studio's stable version)
    POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent
         (also :streamGenerateContent, and :predict for embeddings)
    GET  /v1/publishers/google/models/{model}          a publisher model (the Vertex probe)

Auth when configured with an api key: AI Studio wants `x-goog-api-key` (or `?key=`): a wrong key
is 400 INVALID_ARGUMENT / API_KEY_INVALID and a missing one 403 PERMISSION_DENIED, as Google
answers; Vertex wants `Authorization: Bearer <key>`, else 401 UNAUTHENTICATED.

Faults (`[[fault:KIND]]` or the configured fault): HTTP errors in Google's error shape (429
RESOURCE_EXHAUSTED carries a `RetryInfo.retryDelay` of 1.5s, no retry-after header, as Google does),
`blocked` (`promptFeedback.blockReason: SAFETY`, no candidates; `blocked:1` instead cuts the answer
with `finishReason: SAFETY`), `midstream_error` (a few chunks, then an `{"error": ...}` event),
`trickle`, `truncate`, `malformed`, `reset`, `timeout`, `slow_first_byte:MS`.
A model id containing `thinking` answers with a leading thought part (`"thought": true`) and
counts `thoughtsTokenCount`, as Gemini 2.5 models do when asked to include thoughts.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
from typing import Any

import orjson
from aiohttp import web

from .. import content as C
from .. import faults as F
from ..profiles import FAULT_KINDS
from ..server import STATE, ChatRequest, ChoicePlan, SimState, parse_chat_request, plan_answer

JSON_CT = "application/json"
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
VERTEX = "/v1/projects/{project}/locations/{location}/publishers/google/models/{call}"
EMBED_DIMS = 768
THOUGHT = "The user wants an answer; I will give it plainly."
_REQUEST_FIELDS = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
     "cachedContent", "labels"}
)
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


# ----------------------------------------------------------------------------- errors


def google_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return web.Response(status=code, body=orjson.dumps({"error": err}), content_type=JSON_CT)


def _http_fault(kind: str) -> web.Response | None:
    if kind == "429":
        return google_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota). (simulated)", [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
             "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                             "quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"},
        ])
    if kind == "503":
        return google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later. (simulated)")
    if kind == "500":
        return google_error(500, "INTERNAL", "An internal error has occurred. (simulated)")
    if kind == "400":
        return google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument. (simulated)")
    if kind == "401":
        return _unauthenticated()
    return None


def _unauthenticated() -> web.Response:
    return google_error(
        401, "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
        "or other valid authentication credential.",
    )


def _auth_failure(request: web.Request, st: SimState, vertex: bool) -> web.Response | None:
    key = st.cfg.api_key
    if key is None:
        return None
    if vertex:
        return None if request.headers.get("Authorization") == f"Bearer {key}" else _unauthenticated()
    given = request.headers.get("x-goog-api-key") or request.query.get("key")
    if given == key:
        return None
    if not given:
        return google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without "
                            "established identity). Please use API Key or other form of API consumer identity.")
    return google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
    ])


# ----------------------------------------------------------------------------- request translation


class _BadRequest(ValueError):
    pass


def _text_of(parts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(OpenAI content parts, function calls, function responses) of a turn's Gemini parts."""
    content: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            raise _BadRequest("Invalid value at 'contents.parts': expected an object.")
        if "text" in part:
            content.append({"type": "text", "text": str(part["text"])})
        elif "inlineData" in part or "fileData" in part:
            content.append({"type": "image_url", "image_url": {"url": "data:"}})
        elif "functionCall" in part:
            calls.append(part["functionCall"])
        elif "functionResponse" in part:
            results.append(part["functionResponse"])
        else:
            raise _BadRequest(f"Invalid JSON payload received. Unknown part: {sorted(part)}.")
    return content, calls, results


def to_openai_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Gemini `contents` (+ `systemInstruction`) as OpenAI messages, for the shared planner."""
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        text = "\n".join(str(p.get("text", "")) for p in system.get("parts") or [] if isinstance(p, dict))
        messages.append({"role": "system", "content": text})
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _BadRequest("* GenerateContentRequest.contents: contents is not specified")
    for turn in contents:
        role = turn.get("role", "user") if isinstance(turn, dict) else None
        if role not in ("user", "model") or not turn.get("parts"):
            raise _BadRequest("Please use a valid role: user, model." if role not in ("user", "model")
                              else "* GenerateContentRequest.contents.parts: contents.parts must not be empty.")
        content, calls, results = _text_of(turn["parts"])
        if role == "model":
            tool_calls = [{"id": f"call_{i}", "type": "function",
                           "function": {"name": c.get("name"), "arguments": orjson.dumps(c.get("args") or {}).decode()}}
                          for i, c in enumerate(calls)]
            messages.append({"role": "assistant", "content": content or None, **({"tool_calls": tool_calls} if calls else {})})
            continue
        for r in results:
            messages.append({"role": "tool", "tool_call_id": str(r.get("id", "")),
                             "content": orjson.dumps(r.get("response") or {}).decode()})
        if content:
            messages.append({"role": "user", "content": content})
    return messages


def _openai_tools(body: dict[str, Any]) -> tuple[Any, Any]:
    """(tools, tool_choice) in OpenAI's shape from `tools` / `toolConfig`."""
    tools = []
    for tool in body.get("tools") or []:
        for decl in tool.get("functionDeclarations") or []:
            params = decl.get("parametersJsonSchema", decl.get("parameters"))
            tools.append({"type": "function", "function": {"name": decl.get("name"), "parameters": params}})
    cfg = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode, allowed = cfg.get("mode"), cfg.get("allowedFunctionNames")
    choice: Any = None
    if mode == "NONE":
        choice = "none"
    elif mode == "ANY" and allowed:
        choice = {"type": "function", "function": {"name": allowed[0]}}
    elif mode == "ANY":
        choice = "required"
    return tools or None, choice


def to_chat_request(body: Any, model: str, stream: bool) -> ChatRequest:
    if not isinstance(body, dict):
        raise _BadRequest("Invalid JSON payload received.")
    unknown = set(body) - _REQUEST_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise _BadRequest(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
    gen = body.get("generationConfig") or {}
    tools, choice = _openai_tools(body)
    fmt = None
    if gen.get("responseMimeType") == JSON_CT:
        schema = gen.get("responseJsonSchema", gen.get("responseSchema"))
        fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}} if schema else {"type": "json_object"}
    openai_body = {
        "model": model,
        "messages": to_openai_messages(body),
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
        "n": gen.get("candidateCount"),
        "max_tokens": gen.get("maxOutputTokens"),
        "stop": gen.get("stopSequences"),
        "tools": tools,
        "tool_choice": choice,
        "response_format": fmt,
    }
    try:
        return parse_chat_request(openai_body)
    except C.RequestError as exc:
        raise _BadRequest(exc.message) from None


# ----------------------------------------------------------------------------- answers


def _usage(req: ChatRequest, use: dict[str, int], thoughts: int) -> dict[str, Any]:
    prompt, completion = use["prompt_tokens"], use["completion_tokens"]
    out: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion,
        "totalTokenCount": prompt + completion + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    return out


def _thinks(model: str) -> bool:
    return "thinking" in model


def _call_part(c: ChoicePlan) -> dict[str, Any]:
    return {"functionCall": {"name": c.tool_name, "args": orjson.loads(c.tool_args or "{}")}}


def _candidate(index: int, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": index}
    if finish:
        cand["finishReason"] = finish
    return cand


def _envelope(req: ChatRequest, candidates: list[dict[str, Any]], usage: dict[str, Any], rid: str) -> dict[str, Any]:
    return {"candidates": candidates, "usageMetadata": usage, "modelVersion": req.model, "responseId": rid}


def _response_id(st: SimState) -> str:
    return st.next_id().removeprefix("chatcmpl-")


def _safety_cut(c: ChoicePlan) -> tuple[list[dict[str, Any]], str]:
    text = (c.text or "")[: max(1, len(c.text or "") // 3)]
    return [{"text": text}], "SAFETY"


def response_body(req: ChatRequest, st: SimState, safety: bool) -> dict[str, Any]:
    """A whole `GenerateContentResponse` (a candidate per choice)."""
    choices, use = plan_answer(req, st)
    thoughts = C.estimate_tokens(len(THOUGHT)) if _thinks(req.model) else 0
    candidates = []
    for c in choices:
        parts = [{"text": THOUGHT, "thought": True}] if thoughts else []
        if safety and c.text is not None:
            cut, finish = _safety_cut(c)
            parts += cut
        else:
            parts.append({"text": c.text} if c.text is not None else _call_part(c))
            finish = _FINISH[c.finish]
        candidates.append(_candidate(c.index, parts, finish))
    return _envelope(req, candidates, _usage(req, use, thoughts), _response_id(st))


def stream_bodies(req: ChatRequest, st: SimState, safety: bool) -> list[dict[str, Any]]:
    """The GenerateContentResponse chunks of a streamed answer: text in pieces (the last one
    carries the finishReason and the full usage), a function call whole."""
    choices, use = plan_answer(req, st)
    thoughts = C.estimate_tokens(len(THOUGHT)) if _thinks(req.model) else 0
    rid = _response_id(st)
    partial = {"promptTokenCount": use["prompt_tokens"], "totalTokenCount": use["prompt_tokens"]}
    out: list[dict[str, Any]] = []
    if thoughts:
        out.append(_envelope(req, [_candidate(0, [{"text": THOUGHT, "thought": True}], None)], partial, rid))
    for c in choices:
        if c.text is None:
            pieces = [[_call_part(c)]]
            finish = _FINISH[c.finish]
        elif safety:
            cut, finish = _safety_cut(c)
            pieces = [cut]
        else:
            pieces = [[{"text": p}] for p in C.stream_pieces(c.text)] or [[{"text": ""}]]
            finish = _FINISH[c.finish]
        for i, parts in enumerate(pieces):
            last = i == len(pieces) - 1
            out.append(_envelope(req, [_candidate(c.index, parts, finish if last else None)], partial, rid))
    out[-1]["usageMetadata"] = _usage(req, use, thoughts)
    return out


def _blocked_body(req: ChatRequest) -> dict[str, Any]:
    prompt = C.estimate_tokens(req.scan.prompt_chars)
    return {
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            ],
        },
        "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
        "modelVersion": req.model,
    }


def sse_bytes(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)


def array_bytes(chunks: list[dict[str, Any]]) -> bytes:
    """What `streamGenerateContent` without `alt=sse` sends: one JSON array, written in pieces."""
    return b"[" + b",\r\n".join(orjson.dumps(c) for c in chunks) + b"]"


# ----------------------------------------------------------------------------- writing


async def _write(request: web.Request, body: bytes, content_type: str, *, trickle: bool = False,
                 cut: int | None = None, pieces: list[bytes] | None = None, tps: float = 0.0) -> web.StreamResponse:
    """Send `body` (or `pieces`, paced at `tps` tokens/s): whole, one byte per write
    (`trickle`), or only its first `cut` bytes before closing the connection (truncate)."""
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    if cut is not None:
        resp.content_length = len(body)
    try:
        await resp.prepare(request)
        if cut is not None:
            await resp.write(body[:cut])
            F.close_connection(request)
            return resp
        if trickle:
            for i in range(len(body)):
                await resp.write(body[i : i + 1])
                await asyncio.sleep(0)
        elif pieces and tps > 0:
            for piece in pieces:
                await asyncio.sleep(max(1, len(piece) // 40) / tps)
                await resp.write(piece)
        else:
            await resp.write(body)
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp


# ----------------------------------------------------------------------------- handlers


def _split_call(call: str) -> tuple[str, str]:
    model, sep, method = call.rpartition(":")
    return (model, method) if sep else (call, "")


async def _generate(request: web.Request, vertex: bool) -> web.StreamResponse:
    st = request.app[STATE]
    st.requests += 1
    st.last_headers = request.headers
    model, method = _split_call(request.match_info["call"])
    raw = await request.read()
    try:
        body = orjson.loads(raw)
        st.last_request = body
    except orjson.JSONDecodeError:
        body = None
    denied = _auth_failure(request, st, vertex)
    if denied is not None:
        return denied
    if method in ("batchEmbedContents", "predict"):
        return _embed(body, model, method)
    if method not in ("generateContent", "streamGenerateContent"):
        return google_error(404, "NOT_FOUND", f"Method {method!r} not found for models/{model}.")
    st.chat_requests += 1
    stream = method == "streamGenerateContent"
    try:
        req = to_chat_request(body, model, stream)
    except _BadRequest as exc:
        return google_error(400, "INVALID_ARGUMENT", str(exc))
    spec = req.scan.fault or st.roll_config_fault()
    fault = F.parse_fault(spec) if spec else None
    if fault is not None and fault.kind in FAULT_KINDS:
        st.faults += 1
        early = await _early_fault(request, st, fault, stream)
        if early is not None:
            return early
    kind = fault.kind if fault is not None else ""
    return await _answer(request, req, st, kind, fault.arg if fault else None, sse=request.query.get("alt") == "sse")


async def _early_fault(request: web.Request, st: SimState, fault: F.Fault, stream: bool) -> web.StreamResponse | None:
    """The answer for faults that replace the normal one; None for faults that shape it."""
    kind = fault.kind
    if kind in ("429", "503", "500", "400", "401") or (kind == "midstream_error" and not stream):
        return _http_fault("500" if kind == "midstream_error" else kind)
    if kind == "reset":
        return F.reset_connection(request)
    if kind == "malformed":
        if stream:
            return web.Response(body=b'data: {"candidates": [{"content": {"parts": [\r\n\r\n', headers=SSE_HEADERS)
        return web.Response(body=b'{"candidates": [{"content": {"parts": [{"text": "Hel', content_type=JSON_CT)
    if kind == "timeout" and not await F.hang(request, st.cfg.hang_s, st.stopping):
        return F.reset_connection(request)
    if kind == "slow_first_byte":
        await asyncio.sleep((fault.arg or 0.0) / 1000.0)
    return None


async def _answer(request: web.Request, req: ChatRequest, st: SimState, kind: str, arg: float | None,
                  sse: bool) -> web.StreamResponse:
    p = st.profile
    blocked = kind == "blocked" and not arg
    safety = kind == "blocked" and bool(arg)
    if not req.stream:
        body = _blocked_body(req) if blocked else response_body(req, st, safety)
        delay = p.latency_ms / 1000.0
        if p.tokens_per_s > 0 and "usageMetadata" in body:
            delay += body["usageMetadata"].get("candidatesTokenCount", 0) / p.tokens_per_s
        if delay > 0:
            await asyncio.sleep(delay)
        raw = orjson.dumps(body)
        return await _write(request, raw, JSON_CT, trickle=kind == "trickle", cut=len(raw) // 2 if kind == "truncate" else None)
    chunks = [_blocked_body(req)] if blocked else stream_bodies(req, st, safety)
    if kind == "midstream_error":
        chunks = chunks[: max(1, min(3, len(chunks) - 1))]
        chunks.append({"error": {"code": 500, "message": "An internal error has occurred. (simulated)", "status": "INTERNAL"}})
    if p.ttft_ms > 0:
        await asyncio.sleep(p.ttft_ms / 1000.0)
    if not sse:
        raw = array_bytes(chunks)
        return await _write(request, raw, JSON_CT, trickle=kind == "trickle", cut=len(raw) // 2 if kind == "truncate" else None)
    pieces = [sse_bytes([c]) for c in chunks]
    cut = sum(len(x) for x in pieces[: max(1, min(3, len(pieces) - 1))]) if kind == "truncate" else None
    return await _write(request, b"".join(pieces), SSE_HEADERS["Content-Type"], trickle=kind == "trickle",
                        cut=cut, pieces=pieces, tps=p.tokens_per_s)


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for `text` (SHA-256 stream as its seed)."""
    raw = b""
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{counter}\x00{text}".encode()).digest()
        counter += 1
    values = [(v / 2**31) - 1.0 for v in struct.unpack(f"<{dims}I", raw[: dims * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _embed(body: Any, model: str, method: str) -> web.Response:
    if not isinstance(body, dict):
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    if method == "predict":
        instances = body.get("instances")
        dims = int((body.get("parameters") or {}).get("outputDimensionality") or EMBED_DIMS)
        if not isinstance(instances, list) or not instances:
            return google_error(400, "INVALID_ARGUMENT", "instances must not be empty.")
        preds = [{"embeddings": {"values": _vector(str(i.get("content", "")), dims),
                                 "statistics": {"truncated": False, "token_count": C.estimate_tokens(len(str(i.get("content", ""))))}}}
                 for i in instances]
        chars = sum(len(str(i.get("content", ""))) for i in instances)
        return web.Response(body=orjson.dumps({"predictions": preds, "metadata": {"billableCharacterCount": chars}}),
                            content_type=JSON_CT)
    embeddings = []
    for item in body.get("requests") or []:
        if item.get("model") != f"models/{model}":
            return google_error(400, "INVALID_ARGUMENT", f"Model name in the request ({item.get('model')}) does not "
                                f"match the model in the URL (models/{model}).")
        text = "".join(str(p.get("text", "")) for p in (item.get("content") or {}).get("parts") or [])
        embeddings.append({"values": _vector(text, int(item.get("outputDimensionality") or EMBED_DIMS))})
    if not embeddings:
        return google_error(400, "INVALID_ARGUMENT", "* BatchEmbedContentsRequest.requests: requests is not specified")
    return web.Response(body=orjson.dumps({"embeddings": embeddings}), content_type=JSON_CT)


def _model_obj(model: str) -> dict[str, Any]:
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model.replace("-", " ").title(),
        "description": f"Simulated {model} (tiergate simulator).",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["generateContent", "countTokens", "batchEmbedContents"],
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 40,
        "maxTemperature": 2.0,
    }


async def list_models(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.requests += 1
    st.last_headers = request.headers
    denied = _auth_failure(request, st, vertex=False)
    if denied is not None:
        return denied
    body = {"models": [_model_obj(m) for m in st.profile.models]}
    return web.Response(body=orjson.dumps(body), content_type=JSON_CT)


async def get_model(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.requests += 1
    st.last_headers = request.headers
    vertex = request.path.startswith("/v1/publishers/")
    denied = _auth_failure(request, st, vertex)
    if denied is not None:
        return denied
    model = request.match_info["model"]
    if model not in st.profile.models:
        return google_error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta.")
    if vertex:
        body: dict[str, Any] = {"name": f"publishers/google/models/{model}", "versionId": "001",
                                "openSourceCategory": "PROPRIETARY", "launchStage": "GA",
                                "publisherModelTemplate": f"projects/{{project}}/locations/{{location}}/publishers/google/models/{model}"}
    else:
        body = _model_obj(model)
    return web.Response(body=orjson.dumps(body), content_type=JSON_CT)


async def ai_studio(request: web.Request) -> web.StreamResponse:
    return await _generate(request, vertex=False)


async def vertex(request: web.Request) -> web.StreamResponse:
    return await _generate(request, vertex=True)


def add_routes(app: web.Application) -> None:
    for version in ("v1beta", "v1"):  # AI Studio serves both API versions
        app.router.add_post(f"/{version}/models/{{call}}", ai_studio)
        app.router.add_get(f"/{version}/models", list_models)
        app.router.add_get(f"/{version}/models/{{model}}", get_model)
    app.router.add_post(VERTEX, vertex)
    app.router.add_get("/v1/publishers/google/models/{model}", get_model)

