"""Simulated Amazon Bedrock runtime (Converse, ConverseStream, InvokeModel) and control plane
(ListFoundationModels), following the public Bedrock API reference.

Requests are signed with AWS Signature Version 4. When the simulator is configured with
``api_key`` as ``ACCESS_KEY_ID:SECRET_ACCESS_KEY`` it recomputes the signature of every request
with botocore's own signer (method, path exactly as sent, query, signed headers, body) and
refuses a mismatch with 403 ``InvalidSignatureException`` — so a client signing bug fails a
test. An ``api_key`` without a colon is a Bedrock API key, required as ``Authorization: Bearer``.

Request bodies are checked against botocore's service model (as Bedrock validates them), then
translated into OpenAI-shaped messages for the shared deterministic planner
(``server.plan_answer``); answers are rendered as Converse JSON or as
``application/vnd.amazon.eventstream`` frames encoded here (``encode_frame``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import struct
import zlib
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

from .. import content as C
from .. import faults as F
from .. import server as S
from ..profiles import FAULT_KINDS

_JSON_CT = "application/json"
_EVENTSTREAM_CT = "application/vnd.amazon.eventstream"
_CORAL = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_DEFAULT_REGION = "us-east-1"
_TOOL_ID_PREFIX = "tooluse_"
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_BLOCKED_TEXT = "Sorry, the model cannot answer this question. (simulated guardrail)"
_EMBED_DIMS = 1024
_STRING_HEADER = 7

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


# --------------------------------------------------------------------------- event-stream frames


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32 of both),
    string headers, payload, CRC32 of everything before it."""
    head = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _encode_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return bytes([len(raw_name)]) + raw_name + bytes([_STRING_HEADER]) + struct.pack(">H", len(raw_value)) + raw_value


def event_frame(event_type: str, data: dict[str, Any]) -> bytes:
    """A ConverseStream event; like Bedrock, the payload carries a `p` padding field that
    hides the length of the content (clients ignore it)."""
    body = {**data, "p": _PAD[: 1 + len(event_type) % len(_PAD)]}
    headers = {":event-type": event_type, ":content-type": _JSON_CT, ":message-type": "event"}
    return encode_frame(headers, orjson.dumps(body))


def exception_frame(exception_type: str, message: str, **extra: Any) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": _JSON_CT, ":message-type": "exception"}
    return encode_frame(headers, orjson.dumps({"message": message, **extra}))


# --------------------------------------------------------------------------- errors


def aws_error(status: int, kind: str, message: str, namespace: str = _CORAL) -> web.Response:
    """An AWS JSON error: the type in `x-amzn-ErrorType`, the message in the body."""
    headers = {"x-amzn-ErrorType": f"{kind}:{namespace}", "x-amzn-RequestId": _request_id(message)}
    return web.Response(status=status, body=orjson.dumps({"message": message}), content_type=_JSON_CT, headers=headers)


def _request_id(seed: str) -> str:
    h = hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


_HTTP_FAULTS: dict[str, tuple[int, str, str]] = {
    "429": (429, "ThrottlingException", "Too many requests, please wait before trying again. (simulated)"),
    "503": (503, "ServiceUnavailableException", "Bedrock is unable to process your request. (simulated)"),
    "500": (500, "InternalServerException", "The server encountered an internal error. (simulated)"),
    "400": (400, "ValidationException", "Invalid request (simulated fault)."),
    "401": (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
}


def _http_fault(kind: str) -> web.Response | None:
    entry = _HTTP_FAULTS.get(kind)
    return None if entry is None else aws_error(*entry)


def _validation(message: str) -> web.Response:
    return aws_error(400, "ValidationException", message)


# --------------------------------------------------------------------------- authentication

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<sig>[0-9a-f]{64})$"
)
_SECURITY = "http://internal.amazon.com/coral/com.amazon.coral.service/"


def _auth_error(request: web.Request, raw: bytes, api_key: str | None) -> web.Response | None:
    """None when the request is authenticated (or no key is configured), else AWS's 403."""
    if not api_key:
        return None
    header = request.headers.get("Authorization", "")
    if ":" not in api_key:
        if header == f"Bearer {api_key}":
            return None
        return aws_error(403, "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix", _SECURITY)
    access_key, _, secret = api_key.partition(":")
    match = _AUTH_RE.match(header)
    if match is None:
        return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token", _SECURITY)
    if match["key"] != access_key:
        return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.", _SECURITY)
    if match["service"] != "bedrock" or _expected_signature(request, raw, match, secret) != match["sig"]:
        return aws_error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details.",
            _SECURITY,
        )
    return None


def _expected_signature(request: web.Request, raw: bytes, match: re.Match[str], secret: str) -> str | None:
    """The signature botocore computes for the request as received, or None if a header the
    client claims to have signed is missing."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    amz_date = request.headers.get("X-Amz-Date", "")
    if not amz_date.startswith(match["date"]):
        return None
    headers: dict[str, str] = {}
    for name in match["signed"].split(";"):
        values = request.headers.getall(name, [])
        if not values:
            return None
        headers[name] = ",".join(values)
    signed = AWSRequest(method=request.method, url=f"http://{request.host}{request.raw_path}", data=raw, headers=headers)
    signed.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(match["key"], secret), match["service"], match["region"])
    canonical = signer.canonical_request(signed)
    return str(signer.signature(signer.string_to_sign(signed, canonical), signed))


def _signing_region(request: web.Request) -> str:
    match = _AUTH_RE.match(request.headers.get("Authorization", ""))
    return match["region"] if match else _DEFAULT_REGION


# --------------------------------------------------------------------------- service model


@lru_cache(maxsize=4)
def _operation(service: str, operation: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service).operation_model(operation)


def service_model_errors(operation: str, params: dict[str, Any], service: str = "bedrock-runtime") -> str | None:
    """botocore's own validation report for `params` (a JSON body plus its URI members, with
    base64 blobs as they travel in JSON), or None when they conform to the service model."""
    from botocore.validate import ParamValidator

    shape = _operation(service, operation).input_shape
    report = ParamValidator().validate(_decode_blobs(shape, params), shape)
    return report.generate_report() if report.has_errors() else None


def _decode_blobs(shape: Any, value: Any) -> Any:
    """JSON carries blobs as base64 strings; the validator expects the bytes."""
    kind = shape.type_name
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value
    if kind == "structure" and isinstance(value, dict) and not getattr(shape, "is_document_type", False):
        members = shape.members
        return {k: _decode_blobs(members[k], v) if k in members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_decode_blobs(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _decode_blobs(shape.value, v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- Converse -> planner


def openai_body(body: dict[str, Any], model_id: str, stream: bool) -> dict[str, Any]:
    """The Converse request as an OpenAI chat request for the planner; raises
    `content.RequestError` for what Bedrock itself would refuse."""
    messages = _system_messages(body.get("system"))
    has_tool_blocks = False
    previous_tool_ids: set[str] = set()
    turns = body.get("messages") or []
    for i, turn in enumerate(turns):
        role = turn.get("role")
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise C.RequestError(
                "A conversation must start with a user message and alternate between user and assistant "
                "roles. Try again with a conversation that alternates roles."
            )
        converted, tool_ids, used_tools = _turn_messages(turn, previous_tool_ids)
        messages += converted
        previous_tool_ids = tool_ids
        has_tool_blocks = has_tool_blocks or used_tools
    out: dict[str, Any] = {"model": model_id, "messages": messages, "stream": stream}
    _inference_fields(body.get("inferenceConfig") or {}, out)
    tool_config = body.get("toolConfig")
    if has_tool_blocks and not tool_config:
        raise C.RequestError("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    if tool_config:
        out["tools"] = [_openai_tool(t) for t in tool_config.get("tools") or []]
        out["tool_choice"] = _openai_tool_choice(tool_config.get("toolChoice"))
    return out


def _system_messages(system: Any) -> list[dict[str, Any]]:
    texts = [str(b["text"]) for b in system or [] if "text" in b]
    return [{"role": "system", "content": "\n".join(texts)}] if texts else []


def _turn_messages(turn: dict[str, Any], previous_tool_ids: set[str]) -> tuple[list[dict[str, Any]], set[str], bool]:
    """OpenAI messages of one Converse turn, the toolUse ids it holds, whether it has tool blocks."""
    role = turn["role"]
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for block in turn.get("content") or []:
        if "text" in block:
            parts.append({"type": "text", "text": block["text"]})
        elif "image" in block:
            image = block["image"]
            url = f"data:image/{image['format']};base64,{image['source'].get('bytes', '')}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif "toolUse" in block:
            use = block["toolUse"]
            args = orjson.dumps(use.get("input")).decode()
            calls.append({"id": use["toolUseId"], "type": "function", "function": {"name": use["name"], "arguments": args}})
        elif "toolResult" in block:
            result = block["toolResult"]
            if result["toolUseId"] not in previous_tool_ids:
                raise C.RequestError(
                    "The toolResult blocks of a user turn must answer the toolUse blocks of the previous turn "
                    f"(unknown toolUseId {result['toolUseId']!r})."
                )
            results.append({"role": "tool", "tool_call_id": result["toolUseId"], "content": _tool_result_text(result)})
    if role == "assistant":
        message: dict[str, Any] = {"role": "assistant", "content": "".join(p.get("text", "") for p in parts)}
        if calls:
            message["tool_calls"] = calls
        return [message], {c["id"] for c in calls}, bool(calls)
    user = [{"role": "user", "content": parts}] if parts else []
    return results + user, set(), bool(results)


def _tool_result_text(result: dict[str, Any]) -> str:
    pieces = []
    for item in result.get("content") or []:
        if "text" in item:
            pieces.append(str(item["text"]))
        elif "json" in item:
            pieces.append(orjson.dumps(item["json"]).decode())
    return "".join(pieces)


def _inference_fields(config: dict[str, Any], out: dict[str, Any]) -> None:
    if "maxTokens" in config:
        out["max_tokens"] = config["maxTokens"]
    if config.get("stopSequences"):
        out["stop"] = list(config["stopSequences"])


def _openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    spec = tool.get("toolSpec") or {}
    schema = (spec.get("inputSchema") or {}).get("json") or {}
    return {"type": "function", "function": {"name": spec.get("name"), "description": spec.get("description", ""), "parameters": schema}}


def _openai_tool_choice(choice: Any) -> Any:
    if not isinstance(choice, dict) or "auto" in choice:
        return "auto"
    if "any" in choice:
        return "required"
    return {"type": "function", "function": {"name": choice["tool"]["name"]}}


# --------------------------------------------------------------------------- rendering


def _usage(use: dict[str, int]) -> dict[str, int]:
    p, c = use["prompt_tokens"], use["completion_tokens"]
    return {"inputTokens": p, "outputTokens": c, "totalTokens": p + c}


def _tool_use_id(plan_id: str) -> str:
    return _TOOL_ID_PREFIX + plan_id.removeprefix("call_")


def converse_body(choice: S.ChoicePlan, use: dict[str, int], latency_ms: int) -> bytes:
    if choice.text is not None:
        block: dict[str, Any] = {"text": choice.text}
    else:
        tool_input = orjson.loads(choice.tool_args or "{}")
        block = {"toolUse": {"toolUseId": _tool_use_id(choice.tool_id or ""), "name": choice.tool_name, "input": tool_input}}
    return orjson.dumps(
        {
            "output": {"message": {"role": "assistant", "content": [block]}},
            "stopReason": _STOP_REASONS[choice.finish],
            "usage": _usage(use),
            "metrics": {"latencyMs": latency_ms},
        }
    )


def blocked_body(use: dict[str, int]) -> bytes:
    return orjson.dumps(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": _BLOCKED_TEXT}]}},
            "stopReason": "guardrail_intervened",
            "usage": _usage(use),
            "metrics": {"latencyMs": 1},
        }
    )


def stream_frames(choice: S.ChoicePlan, use: dict[str, int], stop_reason: str | None = None) -> list[tuple[bytes, float]]:
    """The ConverseStream events of one answer with the token weight used for pacing."""
    frames = [(event_frame("messageStart", {"role": "assistant"}), 0.0)]
    if choice.text is not None:
        frames += [
            (event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}), len(piece) / 4)
            for piece in C.stream_pieces(choice.text)
        ]
    else:
        start = {"toolUse": {"toolUseId": _tool_use_id(choice.tool_id or ""), "name": choice.tool_name}}
        frames.append((event_frame("contentBlockStart", {"contentBlockIndex": 0, "start": start}), 0.0))
        frames += [
            (event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}}), len(piece) / 4)
            for piece in C.argument_pieces(choice.tool_args or "")
        ]
    frames.append((event_frame("contentBlockStop", {"contentBlockIndex": 0}), 0.0))
    frames.append((event_frame("messageStop", {"stopReason": stop_reason or _STOP_REASONS[choice.finish]}), 0.0))
    frames.append((event_frame("metadata", {"usage": _usage(use), "metrics": {"latencyMs": 1}}), 0.0))
    return frames


# --------------------------------------------------------------------------- chat handlers


async def converse(request: web.Request) -> web.StreamResponse:
    return await _chat(request, stream=False)


async def converse_stream(request: web.Request) -> web.StreamResponse:
    return await _chat(request, stream=True)


async def _receive(request: web.Request, *, chat: bool) -> tuple[Any, Any, web.Response | None]:
    """Count and record the request, read its JSON body and check its signature:
    (state, body or None, the auth error to answer with or None)."""
    st = request.app[S.STATE]
    st.requests += 1
    if chat:
        st.chat_requests += 1
    st.last_headers = request.headers
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        st.last_request = body
    return st, body, _auth_error(request, raw, st.cfg.api_key)


async def _chat(request: web.Request, stream: bool) -> web.StreamResponse:
    st, body, refused = await _receive(request, chat=True)
    if refused is not None:
        return refused
    if not isinstance(body, dict):
        return aws_error(400, "SerializationException", "Could not parse the request body as JSON.")
    model_id = request.match_info["model_id"]
    operation = "ConverseStream" if stream else "Converse"
    errors = service_model_errors(operation, {**body, "modelId": model_id})
    if errors is not None:
        return _validation(errors)
    try:
        req = S.parse_chat_request(openai_body(body, model_id, stream))
    except C.RequestError as exc:
        return _validation(exc.message)
    spec = req.scan.fault or st.roll_config_fault()
    fault = F.parse_fault(spec) if spec is not None else None
    if fault is not None and fault.kind in FAULT_KINDS:
        st.faults += 1
        early = await _fault_response(request, req, st, fault)
        if early is not None:
            return early
    kind = fault.kind if fault is not None else ""
    if stream:
        return await _respond_stream(request, req, st, kind)
    return await _respond_plain(request, req, st, kind)


async def _fault_response(
    request: web.Request, req: S.ChatRequest, st: S.SimState, fault: F.Fault
) -> web.StreamResponse | None:
    """The response for faults that replace the answer; None when the answer goes on (flow
    faults are applied while it is written)."""
    early = _http_fault(fault.kind)
    if early is not None:
        return early
    if fault.kind == "reset":
        return F.reset_connection(request)
    if fault.kind == "malformed" and not req.stream:
        return web.Response(body=b'{"output": {"message": {"role": "assistant", "content": [{"text": ', content_type=_JSON_CT)
    if fault.kind == "timeout" and not await F.hang(request, st.cfg.hang_s, st.stopping):
        return F.reset_connection(request)
    if fault.kind == "slow_first_byte":
        await asyncio.sleep((fault.arg or 0.0) / 1000.0)
    return None


async def _respond_plain(request: web.Request, req: S.ChatRequest, st: S.SimState, fault: str) -> web.StreamResponse:
    choices, use = S.plan_answer(req, st)
    p = st.profile
    delay = p.latency_ms / 1000.0 + (use["completion_tokens"] / p.tokens_per_s if p.tokens_per_s > 0 else 0.0)
    if delay > 0:
        await asyncio.sleep(delay)
    body = blocked_body(use) if fault == "blocked" else converse_body(choices[0], use, max(1, int(delay * 1000)))
    if fault == "truncate":
        resp = web.StreamResponse(headers={"Content-Type": _JSON_CT})
        resp.content_length = len(body)
        try:
            await resp.prepare(request)
            await resp.write(body[: len(body) // 2])
        except ConnectionError:
            pass
        F.close_connection(request)
        return resp
    return web.Response(body=body, content_type=_JSON_CT)


def _fault_frames(frames: list[tuple[bytes, float]], fault: str) -> tuple[list[tuple[bytes, float]], bytes]:
    """The frames to send for a flow fault, and bytes to send after them before cutting off."""
    if fault == "midstream_error":
        keep = frames[: min(3, len(frames) - 3)]
        error = exception_frame(
            "modelStreamErrorException", "The model stream failed (simulated).", originalStatusCode=500, originalMessage="simulated"
        )
        return keep + [(error, 0.0)], b""
    if fault == "truncate":
        keep = max(1, min(3, len(frames) - 2))
        cut = frames[keep][0]
        return frames[:keep], cut[: len(cut) // 2]
    if fault == "malformed":
        bad = encode_frame({":event-type": "contentBlockDelta", ":content-type": _JSON_CT, ":message-type": "event"}, b'{"contentBlockIndex": 0, "delta": {"te')
        return frames[:1] + [(bad, 0.0)], b""
    return frames, b""


async def _respond_stream(request: web.Request, req: S.ChatRequest, st: S.SimState, fault: str) -> web.StreamResponse:
    choices, use = S.plan_answer(req, st)
    if fault == "blocked":
        blocked = S.ChoicePlan(0, "stop", _BLOCKED_TEXT)
        frames = stream_frames(blocked, use, "guardrail_intervened")
    else:
        frames = stream_frames(choices[0], use)
    frames, tail = _fault_frames(frames, fault)
    p = st.profile
    if p.ttft_ms > 0:
        await asyncio.sleep(p.ttft_ms / 1000.0)
    resp = web.StreamResponse(headers={"Content-Type": _EVENTSTREAM_CT, "x-amzn-RequestId": _request_id(req.model)})
    try:
        await resp.prepare(request)
        if fault == "trickle":
            await _write_trickle(resp, b"".join(f for f, _ in frames))
        elif p.tokens_per_s <= 0 or tail:
            await resp.write(b"".join(f for f, _ in frames) + tail)
        else:
            await S.write_paced(resp, frames, p.tokens_per_s)
        if tail or fault == "truncate":
            F.close_connection(request)
            return resp
        await resp.write_eof()
    except ConnectionError:
        pass  # the client went away mid-stream
    return resp


async def _write_trickle(resp: web.StreamResponse, data: bytes) -> None:
    """One byte per network write, so the client sees frames split at every byte."""
    for i in range(len(data)):
        await resp.write(data[i : i + 1])
        await resp.drain()
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- embeddings (InvokeModel)


async def invoke(request: web.Request) -> web.StreamResponse:
    st, body, refused = await _receive(request, chat=False)
    if refused is not None:
        return refused
    if not isinstance(body, dict):
        return aws_error(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
    texts = _embed_texts(request.match_info["model_id"], body)
    if isinstance(texts, web.Response):
        return texts
    spec = next((f for f in map(C.find_fault, texts) if f), None) or st.roll_config_fault()
    if spec is not None:
        st.faults += 1
        early = _http_fault(F.parse_fault(spec).kind)
        if early is not None:
            return early
    return _embed_response(request.match_info["model_id"], body, texts)


def _embed_texts(model_id: str, body: dict[str, Any]) -> list[str] | web.Response:
    if "titan-embed" in model_id:
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            return _validation("Malformed input request: #: required key [inputText] not found, please reformat your input and try again.")
        if body.get("dimensions", _EMBED_DIMS) not in (256, 512, 1024):
            return _validation("Malformed input request: #/dimensions: 7 is not a valid enum value, please reformat your input and try again.")
        return [text]
    if "cohere.embed" in model_id:
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or "input_type" not in body:
            return _validation("Malformed input request: #: required key [texts] or [input_type] not found, please reformat your input and try again.")
        if len(texts) > 96:
            return _validation("Malformed input request: #/texts: expected maximum item count: 96, please reformat your input and try again.")
        return [str(t) for t in texts]
    return _validation("The provided model identifier is invalid.")


def _embed_response(model_id: str, body: dict[str, Any], texts: list[str]) -> web.Response:
    tokens = sum(C.estimate_tokens(len(t)) for t in texts)
    headers = {"X-Amzn-Bedrock-Input-Token-Count": str(tokens)}
    if "titan-embed" in model_id:
        vector = embedding_vector(texts[0], int(body.get("dimensions", _EMBED_DIMS)))
        data: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": tokens}
    else:
        vectors = [embedding_vector(t, _EMBED_DIMS) for t in texts]
        data = {"id": _request_id(texts[0]), "embeddings": vectors, "response_type": "embeddings_floats", "texts": texts}
    return web.Response(body=orjson.dumps(data), content_type=_JSON_CT, headers=headers)


def embedding_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for `text`."""
    seed = zlib.crc32(text.encode("utf-8", "surrogatepass"))
    values = [math.sin(seed * 0.001 + i * 0.37) for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


# --------------------------------------------------------------------------- control plane


async def foundation_models(request: web.Request) -> web.Response:
    st = request.app[S.STATE]
    st.requests += 1
    st.last_headers = request.headers
    refused = _auth_error(request, await request.read(), st.cfg.api_key)
    if refused is not None:
        return refused
    region = _signing_region(request)
    summaries = [_model_summary(m, region) for m in st.profile.models]
    return web.Response(body=orjson.dumps({"modelSummaries": summaries}), content_type=_JSON_CT)


def _model_summary(model_id: str, region: str) -> dict[str, Any]:
    embeds = "embed" in model_id
    return {
        "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model_id}",
        "modelId": model_id,
        "modelName": model_id.split(".", 1)[-1],
        "providerName": model_id.split(".", 1)[0].capitalize(),
        "inputModalities": ["TEXT"],
        "outputModalities": ["EMBEDDING" if embeds else "TEXT"],
        "responseStreamingSupported": not embeds,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "modelLifecycle": {"status": "ACTIVE"},
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/model/{model_id}/converse", converse)
    app.router.add_post("/model/{model_id}/converse-stream", converse_stream)
    app.router.add_post("/model/{model_id}/invoke", invoke)
    app.router.add_get("/foundation-models", foundation_models)
