"""Adapter for Google's native Gemini API, in its two forms.

AI Studio (the Gemini Developer API, the default): `{base}/models/{model}:generateContent` with the
key in `x-goog-api-key`; `base` defaults to `https://generativelanguage.googleapis.com/v1beta`.

Vertex AI (selected by `deployment.project`): the same `/models/{model}:...` methods under
`https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/publishers/google`
(`region` defaults to `us-central1`; `global` uses `aiplatform.googleapis.com`), with an OAuth bearer
token printed by `deployment.token_command` (e.g. `gcloud auth print-access-token`; cached for 50
minutes and fetched again once after a 401) or else taken from `api_key`.

Requests are translated from the canonical OpenAI format and answers back into it:

- Tool parameters go out as `parametersJsonSchema` and structured output as `responseJsonSchema`,
  not as `parameters` / `responseSchema`: the latter take Google's OpenAPI-subset `Schema` and
  reject ordinary JSON Schema (`additionalProperties`, `$defs`/`$ref`, `const`, type arrays...),
  while clients send JSON Schema. The JSON-schema fields take it unchanged, so nothing is lost in
  a lossy conversion (they need a Gemini 2.x model, which every current model is).
- A prompt refused by the safety filter (`promptFeedback.blockReason`, no candidates) is a client
  error: `UpstreamStatusError` with status 400, code `content_filter`, not retried (another
  deployment of the same kind would refuse it too), its message naming the block reason. An answer
  the filter cut short instead finishes with `finish_reason: "content_filter"`.
- `parallel_tool_calls` has no Gemini counterpart and is ignored; streams with `n > 1` are refused
  (`InvalidRequestError`, param `n`) because a chunk of Gemini's stream interleaves candidates that
  the one-choice canonical stream cannot carry.
"""

from __future__ import annotations

import asyncio
import mimetypes
import shlex
import time
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from ..errors import InvalidRequestError, UpstreamError, UpstreamProtocolError, UpstreamStatusError
from ..types import ChatResult, StreamEvent, Usage
from .base import USER_AGENT, HTTPProvider, parse_retry_after, status_error
from .canonical import (
    ChunkFactory,
    Turn,
    assistant_message,
    completion_result,
    conversation,
    embeddings_result,
    message_text,
    new_tool_call_id,
    parse_data_url,
    tool_arguments,
    tool_call,
)
from .sse import SSEEvent, SSEParser
from .stream import Step, UpstreamStream

AI_STUDIO_BASE = "https://generativelanguage.googleapis.com/v1beta"
DEFAULT_REGION = "us-central1"
TOKEN_TTL_S = 50 * 60  # Google access tokens live 60 minutes
TOKEN_COMMAND_TIMEOUT_S = 30.0
_JSON = "application/json"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

FINISH_REASONS: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}
TOOL_CHOICE_MODES: dict[str, str] = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def vertex_base_url(project: str, region: str | None) -> str:
    """The Vertex AI publisher-model base URL for `project` in `region`."""
    region = region or DEFAULT_REGION
    host = "aiplatform.googleapis.com" if region == "global" else f"{region}-aiplatform.googleapis.com"
    return f"https://{host}/v1/projects/{project}/locations/{region}/publishers/google"


# ----------------------------------------------------------------------------- request translation


def to_gemini_request(body: dict[str, Any], deployment: str) -> dict[str, Any]:
    """An OpenAI chat-completions body as a Gemini `GenerateContentRequest` (REST JSON)."""
    system, contents = _contents(body.get("messages") or [], deployment)
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": t} for t in system]}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config:
            out["toolConfig"] = tool_config
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    return out


def _contents(messages: list[dict[str, Any]], deployment: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, contents): turns alternate `user`/`model`; consecutive turns of one role
    are merged, since Gemini expects one turn per side (tool results are `user` turns)."""
    call_names: dict[str, str] = {}
    turn_of = partial(_turn, call_names=call_names, deployment=deployment)
    system, contents = conversation(messages, turn_of, key="parts")
    if not contents:
        raise InvalidRequestError(
            "a Gemini deployment needs at least one user or assistant message", param="messages"
        )
    return system, contents


def _turn(msg: dict[str, Any], call_names: dict[str, str], deployment: str) -> Turn:
    role = msg.get("role")
    if role == "user":
        return "user", _user_parts(msg.get("content"))
    if role == "assistant":
        return "model", _assistant_parts(msg, call_names, deployment)
    if role == "tool":
        return "user", [_tool_result_part(msg, call_names)]
    raise InvalidRequestError(f"message role '{role}' cannot be sent to a Gemini deployment", param="messages")


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                parts.append({"text": str(part["text"])})
        elif kind == "image_url":
            image = part.get("image_url")
            parts.append(_media_part(image.get("url") if isinstance(image, dict) else image))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = f"audio/{audio.get('format') or 'wav'}"
            parts.append({"inlineData": {"mimeType": mime, "data": str(audio.get("data") or "")}})
        else:
            raise InvalidRequestError(
                f"content part type '{kind}' cannot be sent to a Gemini deployment", param="messages"
            )
    return parts


def _media_part(url: Any) -> dict[str, Any]:
    """A data URL inline (`inlineData`), an http(s) URL by reference (`fileData`), which Gemini
    requires a MIME type for: guessed from the file extension."""
    if not isinstance(url, str) or not url:
        raise InvalidRequestError("an image_url part has no url", param="messages")
    inline = parse_data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    if url.startswith(("https://", "http://", "gs://")):
        mime, _ = mimetypes.guess_type(urlsplit(url).path)
        if mime is None:
            raise InvalidRequestError(
                "cannot tell the media type of an image URL (no known file extension); Gemini "
                "needs one: send the image as a data URL instead", param="messages",
            )
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise InvalidRequestError("an image url must be a base64 data URL or an https URL", param="messages")


def _assistant_parts(
    msg: dict[str, Any], call_names: dict[str, str], deployment: str
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = message_text(msg.get("content"))
    if text:
        parts.append({"text": text})
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        name = str(fn.get("name") or "")
        function_call: dict[str, Any] = {"name": name, "args": tool_arguments(fn.get("arguments"), deployment)}
        if call.get("id"):
            function_call["id"] = str(call["id"])
            call_names[str(call["id"])] = name
        parts.append({"functionCall": function_call})
    return parts


def _tool_result_part(msg: dict[str, Any], call_names: dict[str, str]) -> dict[str, Any]:
    """A `tool` message as a `functionResponse`; Gemini matches results to calls by function
    name, which OpenAI's tool message lacks: it is looked up from the assistant's tool call."""
    call_id = str(msg.get("tool_call_id") or "")
    name = call_names.get(call_id)
    if name is None:
        raise InvalidRequestError(
            f"tool message answers tool_call_id '{call_id}', which no earlier assistant message "
            "called", param="messages",
        )
    return {"functionResponse": {"id": call_id, "name": name, "response": _tool_response(msg.get("content"))}}


def _tool_response(content: Any) -> dict[str, Any]:
    """Gemini's `response` must be an object: a JSON object result is sent as it is, anything
    else (other JSON values, plain text) as `{"result": ...}`."""
    text = message_text(content)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def _tools(tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for tool in tools or []:
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(fn, dict):
            continue
        decl: dict[str, Any] = {"name": fn.get("name")}
        if fn.get("description"):
            decl["description"] = fn["description"]
        if isinstance(fn.get("parameters"), dict):
            decl["parametersJsonSchema"] = fn["parameters"]
        declarations.append(decl)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, str) and choice in TOOL_CHOICE_MODES:
        return {"functionCallingConfig": {"mode": TOOL_CHOICE_MODES[choice]}}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


_DIRECT_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config = {gk: body[ok] for ok, gk in _DIRECT_CONFIG.items() if body.get(ok) is not None}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("n") not in (None, 1):
        config["candidateCount"] = body["n"]
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = _JSON
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    return config


# ----------------------------------------------------------------------------- answer translation


def gemini_usage(meta: Any) -> Usage | None:
    """`usageMetadata` as canonical usage; thinking tokens count as completion tokens (they are
    billed as output)."""
    if not isinstance(meta, dict):
        return None
    prompt = int(meta.get("promptTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0)
    return Usage(prompt, completion, int(meta.get("totalTokenCount") or prompt + completion))


def _finish_reason(reason: Any, called_tools: bool) -> str:
    mapped = FINISH_REASONS.get(str(reason), "stop")
    return "tool_calls" if called_tools and mapped == "stop" else mapped


def _function_call(call: dict[str, Any]) -> tuple[str, str, str]:
    """(id, name, arguments JSON) of a `functionCall`; Gemini omits ids before 2.5 models."""
    args = call.get("args")
    arguments = orjson.dumps(args if isinstance(args, dict) else {}).decode()
    return str(call.get("id") or new_tool_call_id()), str(call.get("name") or ""), arguments


def _candidate_message(candidate: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(OpenAI assistant message, finish reason) of one candidate; thought parts are skipped."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            calls.append(tool_call(*_function_call(part["functionCall"])))
    return assistant_message(texts, calls), _finish_reason(candidate.get("finishReason"), bool(calls))


def blocked_error(data: dict[str, Any], deployment: str) -> UpstreamStatusError | None:
    """The error for a prompt Gemini's safety filter refused (no candidates, a `blockReason`)."""
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if not reason or data.get("candidates"):
        return None
    detail = feedback.get("blockReasonMessage")
    err = UpstreamStatusError(
        f"Gemini blocked the prompt (blockReason {reason})" + (f": {detail}" if detail else ""),
        deployment=deployment,
        upstream_status=400,
    )
    err.code = "content_filter"
    return err


def to_chat_result(data: Any, model: str, deployment: str) -> ChatResult:
    """A `GenerateContentResponse` as one `chat.completion` (a choice per candidate)."""
    if not isinstance(data, dict):
        raise UpstreamProtocolError("upstream answer is not a GenerateContentResponse", deployment=deployment)
    blocked = blocked_error(data, deployment)
    if blocked is not None:
        raise blocked
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise UpstreamProtocolError("upstream answer has no candidates", deployment=deployment)
    usage = gemini_usage(data.get("usageMetadata"))
    ordered = sorted(candidates, key=lambda c: int(c.get("index") or 0))
    messages = [_candidate_message(c) for c in ordered]
    result = completion_result(model=model, message=messages[0][0], finish_reason=messages[0][1], usage=usage)
    if len(messages) > 1:
        data_out = result.json()
        data_out["choices"] = [
            {"index": i, "message": m, "logprobs": None, "finish_reason": f} for i, (m, f) in enumerate(messages)
        ]
        result = ChatResult(orjson.dumps(data_out), usage, data_out)
    return result


# ----------------------------------------------------------------------------- errors


def _retry_delay(details: Any) -> float | None:
    """`RetryInfo.retryDelay` (a protobuf Duration: "30s", "1.5s") in seconds."""
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict) and item.get("@type") == _RETRY_INFO:
            delay = str(item.get("retryDelay") or "")
            try:
                return max(0.0, float(delay.removesuffix("s")))
            except ValueError:
                return None
    return None


def _reasons(details: Any) -> set[str]:
    return {
        str(d.get("reason"))
        for d in (details if isinstance(details, list) else [])
        if isinstance(d, dict) and d.get("@type") == _ERROR_INFO
    }


def google_error(deployment: str, status: int, body: bytes, headers: Any) -> UpstreamStatusError:
    """A Google error body (`{"error": {"code", "message", "status", "details"}}`) as a gateway
    error. AI Studio answers a bad key with 400 `API_KEY_INVALID`: that is an auth error too."""
    try:
        err = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        err = None
    err = err if isinstance(err, dict) else {}
    details = err.get("details")
    if status in (401, 403):
        return status_error(deployment, status, b"", headers)
    if "API_KEY_INVALID" in _reasons(details):
        return UpstreamStatusError(  # upstream words left out, as status_error does for 401
            f"upstream returned {status} API_KEY_INVALID: it refused the gateway's credentials for "
            f"deployment '{deployment}' (check that deployment's api_key setting)",
            deployment=deployment,
            upstream_status=401,
        )
    hint = parse_retry_after(headers)
    if hint is None:
        hint = _retry_delay(details)
    label = f" {err['status']}" if err.get("status") else ""
    message = str(err.get("message") or body[:200].decode("utf-8", "replace").strip() or "no body")[:300]
    return UpstreamStatusError(
        f"upstream returned {status}{label}: {message}",
        deployment=deployment,
        upstream_status=status,
        retry_after=hint,
    )


# ----------------------------------------------------------------------------- credentials


class _TokenSource:
    """Vertex bearer tokens from `token_command` (no shell), cached for `TOKEN_TTL_S`."""

    def __init__(self, command: str, deployment: str) -> None:
        self._argv = shlex.split(command)
        self._deployment = deployment
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._token = None

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._token = await self._run()
                self._expires = time.monotonic() + TOKEN_TTL_S
            return self._token

    async def _run(self) -> str:
        # The command's output is never put in a message: it is (or may contain) the token.
        where = f"deployment '{self._deployment}': token_command"
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except (OSError, ValueError) as exc:
            raise UpstreamError(f"{where} could not be started ({type(exc).__name__})", deployment=self._deployment) from None
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), TOKEN_COMMAND_TIMEOUT_S)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise UpstreamError(f"{where} did not finish within {TOKEN_COMMAND_TIMEOUT_S:.0f}s", deployment=self._deployment) from None
        if proc.returncode != 0:
            raise UpstreamError(
                f"{where} failed with exit status {proc.returncode} (output not shown: it may hold a credential)",
                deployment=self._deployment,
            )
        lines = out.decode("utf-8", "replace").strip().splitlines()
        if not lines or not lines[0].strip():
            raise UpstreamError(f"{where} printed no token", deployment=self._deployment)
        return lines[0].strip()


# ----------------------------------------------------------------------------- the adapter


class GeminiProvider(HTTPProvider):
    wire = "gemini"

    _tokens: _TokenSource | None = None

    async def start(self) -> None:
        d = self.deployment
        self._vertex = bool(d.project)
        self._base = d.base_url or (vertex_base_url(d.project or "", d.region) if self._vertex else AI_STUDIO_BASE)
        headers = {"content-type": _JSON, "user-agent": USER_AGENT}
        if not self._vertex and self.api_key:
            headers["x-goog-api-key"] = self.api_key
        if self._vertex and d.token_command:
            self._tokens = _TokenSource(d.token_command, self.name)
        self._open_session(headers)

    def _url(self, model: str, method: str) -> str:
        return f"{self._base}/models/{model}:{method}"

    async def _auth(self) -> dict[str, str] | None:
        """Per-request auth headers (Vertex only: AI Studio's key is a session header)."""
        if not self._vertex:
            return None
        if self._tokens is not None:
            return {"authorization": f"Bearer {await self._tokens.token()}"}
        if self.api_key:
            return {"authorization": f"Bearer {self.api_key}"}
        raise UpstreamError(
            f"deployment '{self.name}' (Vertex AI) has no credentials: set token_command or api_key",
            deployment=self.name,
        )

    async def _send(
        self,
        method: str,
        url: str,
        payload: bytes | None,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send once with the auth headers; with a token command, a 401 (an expired or revoked
        token) fetches a new token and sends once more."""
        self._http()  # "not started" comes before any credential problem
        for attempt in (0, 1):
            auth = await self._auth()
            merged = {**(headers or {}), **auth} if auth else headers
            resp = await super()._send(method, url, payload, timeout=timeout, headers=merged, params=params)
            if resp.status == 401 and attempt == 0 and self._tokens is not None:
                resp.release()
                self._tokens.invalidate()
                continue
            break
        return resp

    def error_for(self, status: int, raw: bytes, headers: Any) -> UpstreamError:
        return google_error(self.name, status, raw, headers)

    async def chat(self, body: dict[str, Any]) -> ChatResult:
        model = str(body.get("model"))
        data = await self.request_json("POST", self._url(model, "generateContent"), to_gemini_request(body, self.name))
        return to_chat_result(data, model, self.name)

    async def open_stream(self, body: dict[str, Any]) -> _GeminiStream:
        if body.get("n") not in (None, 1):
            raise InvalidRequestError("a Gemini deployment cannot stream more than one choice (n > 1)", param="n")
        model = str(body.get("model"))
        url = self._url(model, "streamGenerateContent") + "?alt=sse"
        resp = await self.open_response(url, to_gemini_request(body, self.name))
        return _GeminiStream(resp, self.name, model)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model"))
        texts = _embedding_inputs(body.get("input"))
        dims = body.get("dimensions")
        if self._vertex:
            vectors, tokens = await self._embed_vertex(model, texts, dims)
        else:
            vectors, tokens = await self._embed_ai_studio(model, texts, dims)
        if len(vectors) != len(texts):
            raise UpstreamProtocolError("upstream returned a different number of embeddings", deployment=self.name)
        return embeddings_result(vectors, model, tokens)

    async def _embed_ai_studio(self, model: str, texts: list[str], dims: Any) -> tuple[list[list[float]], int]:
        """`batchEmbedContents`; it reports no token counts, so usage is the ~4 chars/token estimate."""
        extra = {"outputDimensionality": dims} if dims else {}
        requests = [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}, **extra} for t in texts]
        data = await self.request_json("POST", self._url(model, "batchEmbedContents"), {"requests": requests})
        try:
            vectors = [list(e["values"]) for e in data["embeddings"]]
        except (KeyError, TypeError) as exc:
            raise UpstreamProtocolError("upstream embeddings answer is malformed", deployment=self.name) from exc
        return vectors, sum((len(t) + 3) // 4 for t in texts)

    async def _embed_vertex(self, model: str, texts: list[str], dims: Any) -> tuple[list[list[float]], int]:
        """Vertex text-embedding models answer `:predict` (instances in, predictions out)."""
        payload: dict[str, Any] = {"instances": [{"content": t} for t in texts]}
        if dims:
            payload["parameters"] = {"outputDimensionality": dims}
        data = await self.request_json("POST", self._url(model, "predict"), payload)
        try:
            embeddings = [p["embeddings"] for p in data["predictions"]]
            vectors = [list(e["values"]) for e in embeddings]
        except (KeyError, TypeError) as exc:
            raise UpstreamProtocolError("upstream embeddings answer is malformed", deployment=self.name) from exc
        tokens = sum(int((e.get("statistics") or {}).get("token_count") or 0) for e in embeddings)
        return vectors, tokens

    async def list_models(self) -> list[str]:
        if self._vertex:
            return await self._vertex_model()
        data = await self.request_json("GET", f"{self._base}/models?pageSize=1000", probe=True)
        models = data.get("models") if isinstance(data, dict) else None
        return [str(m.get("name", "")).removeprefix("models/") for m in models or [] if isinstance(m, dict)]

    async def _vertex_model(self) -> list[str]:
        """Vertex has no per-project model list: the probe reads the deployment's publisher
        model (`GET v1/publishers/google/models/{model}`, next to the `projects/` path)."""
        root = self._base.split("/projects/", 1)[0]
        model = self.deployment.model
        data = await self.request_json("GET", f"{root}/publishers/google/models/{model}", probe=True)
        name = data.get("name") if isinstance(data, dict) else None
        return [str(name or model).rsplit("/", 1)[-1]]


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidRequestError(
        "a Gemini deployment embeds text only: input must be a string or a list of strings", param="input"
    )


class _GeminiStream(UpstreamStream):
    """Gemini's SSE stream (`alt=sse`, each event a whole `GenerateContentResponse`) as canonical
    chunks, forwarded per network read. A function call arrives whole, so it becomes one
    `tool_call_start` with all its arguments. Ends cleanly only after a `finishReason`, then
    sends the usage chunk from the last `usageMetadata`; otherwise it raises."""

    end_marker = "finishReason"

    def __init__(self, resp: aiohttp.ClientResponse, deployment: str, model: str) -> None:
        super().__init__(resp, deployment)
        self._parser = SSEParser()
        self._chunks = ChunkFactory(model)
        self._usage: Usage | None = None
        self._started = False
        self._finished = False
        self._tool_calls = 0

    def feed(self, chunk: bytes) -> Step:
        return self._step(self._parser.feed(chunk))

    def finish(self) -> Step:
        """Reads on to the end of the body (usage may come after the finishReason); then the
        usage chunk, if the answer was complete."""
        batch, _, error = self._step(self._parser.finish())
        if error is None and self._finished:
            batch.append(self._chunks.usage(self._usage or Usage()))
        return batch, self._finished, error

    def _step(self, events: list[SSEEvent]) -> Step:
        batch, error = self._convert(events)
        if batch and not self._started:
            batch.insert(0, self._chunks.role())
            self._started = True
        return batch, False, error

    def _convert(self, events: list[SSEEvent]) -> tuple[list[StreamEvent], UpstreamError | None]:
        """The canonical chunks of one read, and an error that followed them (the chunks before
        an error still reach the client)."""
        out: list[StreamEvent] = []
        for sse in events:
            try:
                data = orjson.loads(sse.data)
            except orjson.JSONDecodeError:
                return out, UpstreamProtocolError("upstream sent a malformed stream event", deployment=self._deployment)
            if not isinstance(data, dict):
                return out, UpstreamProtocolError("upstream sent a malformed stream event", deployment=self._deployment)
            if isinstance(data.get("error"), dict):
                code = int(data["error"].get("code") or 500)
                return out, google_error(self._deployment, code, sse.data, {})
            blocked = blocked_error(data, self._deployment)
            if blocked is not None:
                return out, blocked
            out.extend(self._candidate_chunks(data))
        return out, None

    def _candidate_chunks(self, data: dict[str, Any]) -> list[StreamEvent]:
        usage = gemini_usage(data.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        out: list[StreamEvent] = []
        for candidate in data.get("candidates") or []:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if part.get("thought"):
                    continue
                if isinstance(part.get("text"), str) and part["text"]:
                    out.append(self._chunks.content(part["text"]))
                elif isinstance(part.get("functionCall"), dict):
                    cid, name, args = _function_call(part["functionCall"])
                    out.append(self._chunks.tool_call_start(self._tool_calls, cid, name, args))
                    self._tool_calls += 1
            if candidate.get("finishReason"):
                out.append(self._chunks.finish(_finish_reason(candidate["finishReason"], self._tool_calls > 0)))
                self._finished = True
        return out
