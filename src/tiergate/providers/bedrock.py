"""Adapter for Amazon Bedrock's native runtime API: Converse, ConverseStream and InvokeModel.

Authentication is AWS Signature Version 4 with credentials from botocore's chain (environment
variables, the shared credentials/config files and the deployment's `aws_profile`, SSO, web
identity, container and instance metadata). A deployment with an `api_key` uses a Bedrock API
key instead, sent as a bearer token, and nothing is signed.

Deployment settings read here: `region` (else AWS_REGION, else botocore's configured region),
`aws_profile`, `base_url` (else the public regional endpoints; set it for VPC endpoints), and
`api_key` (optional Bedrock API key).

botocore is imported lazily (by `start()` and the stream decoder), so gateways without Bedrock deployments never load
it. Requests go out through the pooled aiohttp session; botocore only signs them and decodes
the `application/vnd.amazon.eventstream` frames of ConverseStream.

JSON mode (`response_format`) is emulated with a forced tool whose input schema is the wanted
schema: the tool's input becomes the answer's content, and `finish_reason` is `stop`.
"""

from __future__ import annotations

import asyncio
import os
from functools import partial
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import yarl

from ..config.errors import ConfigError
from ..errors import (
    InvalidRequestError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from ..types import ChatResult, StreamEvent, Usage
from .base import USER_AGENT, HTTPProvider, load_json, parse_retry_after
from .canonical import (
    ChunkFactory,
    Turn,
    assistant_message,
    completion_result,
    conversation,
    embeddings_result,
    message_text,
    parse_data_url,
    tool_arguments,
    tool_call,
)
from .stream import Step, UpstreamStream

_JSON = "application/json"
_SIGNING_NAME = "bedrock"  # runtime and control plane both sign as "bedrock"
_JSON_TOOL = "json_response"  # the forced tool that carries a JSON-mode answer
_EMBED_CONCURRENCY = 4
_COHERE_BATCH = 96  # Cohere Embed's limit of texts per call
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_AUTH_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
        "ExpiredTokenException",
    }
)
_STREAM_EXCEPTIONS = {
    "throttlingException": 429,
    "serviceUnavailableException": 503,
    "modelStreamErrorException": 502,
    "internalServerException": 502,
    "validationException": 400,
}


class BedrockProvider(HTTPProvider):
    wire = "bedrock"

    region: str = ""  # resolved by start()
    endpoint: str = ""  # the runtime endpoint, resolved by start()
    _signer: _SigV4 | None = None
    _no_credentials: str | None = None

    async def start(self) -> None:
        d = self.deployment
        region, credentials, problem = await asyncio.to_thread(
            _resolve_aws, d.name, d.aws_profile, d.region, need_credentials=not self.api_key
        )
        self.region = region
        self.endpoint = d.base_url or f"https://bedrock-runtime.{region}.amazonaws.com"
        self._control = d.base_url or f"https://bedrock.{region}.amazonaws.com"
        if credentials is not None:
            self._signer = _SigV4(credentials, region)
        self._no_credentials = problem
        headers = {"user-agent": USER_AGENT}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        self._open_session(headers)

    # ------------------------------------------------------------------ transport

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
        """One request, signed over the exact bytes and the exact (already encoded) URL sent."""
        session = self._http()
        if params:
            url = str(yarl.URL(url, encoded=True).update_query(params))
        body = payload or b""
        headers = {**(headers or {}), **self.deployment.headers}
        if self._signer is not None:
            headers = await self._signer.sign(method, url, body, headers)
        elif self._no_credentials is not None:
            raise UpstreamStatusError(self._no_credentials, deployment=self.name, upstream_status=401)
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        return await session.request(method, yarl.URL(url, encoded=True), data=body or None, headers=headers, **extra)

    def error_for(self, status: int, raw: bytes, headers: Any) -> UpstreamError:
        return aws_status_error(self.name, status, raw, headers)

    async def _call(self, url: str, payload: dict[str, Any]) -> tuple[Any, Any]:
        """POST JSON, return the decoded JSON answer and the response headers."""
        raw, headers = await self.request_raw("POST", url, payload, headers={"content-type": _JSON, "accept": _JSON})
        return load_json(raw, self.name), headers

    def _model_url(self, model: str, action: str) -> str:
        # Model ids and ARNs hold ':' and '/': one path segment, percent-encoded.
        return f"{self.endpoint}/model/{quote(model, safe='')}/{action}"

    # ------------------------------------------------------------------ chat

    async def chat(self, body: dict[str, Any]) -> ChatResult:
        model = str(body.get("model") or self.deployment.model)
        request, json_mode = converse_request(body, self.name)
        data, _ = await self._call(self._model_url(model, "converse"), request)
        return converse_result(data, model, json_mode, self.name)

    async def open_stream(self, body: dict[str, Any]) -> _BedrockStream:
        model = str(body.get("model") or self.deployment.model)
        request, json_mode = converse_request(body, self.name)
        resp = await self.open_response(
            self._model_url(model, "converse-stream"), request, headers={"content-type": _JSON}
        )
        return _BedrockStream(resp, ConverseStreamDecoder(model, self.name, json_mode), self.name)

    # ------------------------------------------------------------------ embeddings

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model") or self.deployment.model)
        texts = _embedding_inputs(body.get("input"))
        dims = body.get("dimensions")
        if "amazon.titan-embed" in model and "text" in model:
            vectors, tokens = await self._titan_embed(model, texts, dims)
        elif "cohere.embed" in model:
            vectors, tokens = await self._cohere_embed(model, texts, dims)
        else:
            raise InvalidRequestError(
                f"deployment '{self.name}': Bedrock embeddings are served for Amazon Titan Text Embeddings "
                f"and Cohere Embed models, not '{model}'",
                param="model",
            )
        return embeddings_result(vectors, model, tokens)

    async def _titan_embed(self, model: str, texts: list[str], dims: Any) -> tuple[list[list[float]], int]:
        """Titan embeds one text per call: the calls run concurrently, a few at a time."""
        v2 = "text-v2" in model
        if dims is not None and not v2:
            raise InvalidRequestError(f"model '{model}' has a fixed embedding size; omit dimensions", param="dimensions")
        limit = asyncio.Semaphore(_EMBED_CONCURRENCY)
        url = self._model_url(model, "invoke")

        async def one(text: str) -> tuple[list[float], int]:
            payload: dict[str, Any] = {"inputText": text}
            if v2:
                payload["normalize"] = True
                if dims is not None:
                    payload["dimensions"] = dims
            async with limit:
                data, _ = await self._call(url, payload)
            return _field(data, "embedding", list, self.name), int(_field(data, "inputTextTokenCount", int, self.name))

        results = await asyncio.gather(*(one(t) for t in texts), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        done = [r for r in results if not isinstance(r, BaseException)]
        return [v for v, _ in done], sum(n for _, n in done)

    async def _cohere_embed(self, model: str, texts: list[str], dims: Any) -> tuple[list[list[float]], int]:
        payload_extra: dict[str, Any] = {}
        if dims is not None:
            if "embed-v4" not in model:
                raise InvalidRequestError(f"model '{model}' has a fixed embedding size; omit dimensions", param="dimensions")
            payload_extra = {"output_dimension": dims, "embedding_types": ["float"]}
        url = self._model_url(model, "invoke")
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), _COHERE_BATCH):
            batch = texts[start : start + _COHERE_BATCH]
            data, headers = await self._call(url, {"texts": batch, "input_type": "search_document", **payload_extra})
            embeddings = _field(data, "embeddings", (list, dict), self.name)
            if isinstance(embeddings, dict):  # the by-type shape asked for with embedding_types
                embeddings = _field(embeddings, "float", list, self.name)
            if len(embeddings) != len(batch):
                raise UpstreamProtocolError("upstream returned a different number of embeddings", deployment=self.name)
            vectors += embeddings
            tokens += int(headers.get("X-Amzn-Bedrock-Input-Token-Count") or 0)
        return vectors, tokens

    # ------------------------------------------------------------------ models

    async def list_models(self) -> list[str]:
        """Bedrock runtime has no listing: ask the control plane (ListFoundationModels)."""
        data = await self.request_json("GET", f"{self._control}/foundation-models", probe=True)
        summaries = data.get("modelSummaries") if isinstance(data, dict) else None
        return [str(m["modelId"]) for m in summaries or [] if isinstance(m, dict) and "modelId" in m]


# ---------------------------------------------------------------------------------- credentials


def _resolve_aws(name: str, profile: str | None, region: str | None, *, need_credentials: bool) -> tuple[str, Any, str | None]:
    """(region, credentials or None, why there are none). Blocking: files, maybe metadata
    endpoints; runs in a worker thread."""
    import botocore.session
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    where = f"deployment '{name}'"
    try:
        session = botocore.session.Session(profile=profile)
        region = region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
        credentials = session.get_credentials() if need_credentials else None
        reason = "found none"
    except ProfileNotFound:
        raise ConfigError([f"{where}: AWS profile '{profile}' (aws_profile) is not in the AWS config files"]) from None
    except BotoCoreError as exc:
        credentials, reason = None, f"failed ({type(exc).__name__})"
    if not region:
        raise ConfigError(
            [f"{where}: no AWS region: set its `region`, or AWS_REGION / AWS_DEFAULT_REGION, or a region in the AWS profile"]
        )
    if credentials is not None or not need_credentials:
        return region, credentials, None
    chain = (
        "environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared "
        f"credentials and config files (profile '{profile or 'default'}'), SSO, web identity, and container or "
        "EC2 instance metadata"
    )
    return region, None, f"{where} has no AWS credentials: botocore's credential chain ({chain}) {reason}"


class _SigV4:
    """SigV4 signing with credentials that may refresh themselves (roles, SSO)."""

    def __init__(self, credentials: Any, region: str) -> None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        self._credentials = credentials
        self._region = region
        self._auth = SigV4Auth
        self._request = AWSRequest

    async def _frozen(self) -> Any:
        """A consistent key/secret/token snapshot; a refresh (network I/O) runs off the loop."""
        creds = self._credentials
        refresh_needed = getattr(creds, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            return await asyncio.to_thread(creds.get_frozen_credentials)
        return creds.get_frozen_credentials()

    async def sign(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus X-Amz-Date, the session token and Authorization. Host is signed as the
        URL's host, which is what aiohttp sends."""
        request = self._request(method=method, url=url, data=body, headers=headers)
        self._auth(await self._frozen(), _SIGNING_NAME, self._region).add_auth(request)
        return dict(request.headers.items())


# ---------------------------------------------------------------------------------- errors


def _error_kind(headers: Any, data: Any) -> str:
    """`ThrottlingException:http://internal.amazon.com/...` -> `ThrottlingException`."""
    value = headers.get("x-amzn-ErrorType") or ""
    if not value and isinstance(data, dict):
        value = str(data.get("__type") or data.get("code") or "")
    return value.split(":", 1)[0].rsplit("#", 1)[-1]


def aws_status_error(deployment: str, status: int, raw: bytes, headers: Any) -> UpstreamError:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    kind = _error_kind(headers, data)
    if status in (401, 403) or kind in _AUTH_ERRORS:
        # Never the upstream's words: signature errors describe the request that was signed.
        return UpstreamStatusError(
            f"upstream returned {status} {kind or 'error'}: AWS refused the gateway's credentials for deployment "
            f"'{deployment}' (check its AWS credentials, aws_profile, region, or api_key)",
            deployment=deployment,
            upstream_status=403 if status not in (401, 403) else status,
        )
    text = (data.get("message") or data.get("Message")) if isinstance(data, dict) else None
    if not text:
        text = raw[:200].decode("utf-8", "replace").strip() or "no body"
    label = f"{status} {kind}" if kind else str(status)
    message = f"upstream returned {label}: {str(text)[:300]}"
    if status == 408 or kind == "ModelTimeoutException":
        return UpstreamTimeoutError(message, deployment=deployment, upstream_status=408)
    if status == 424 or kind == "ModelErrorException":
        return UpstreamStatusError(message, deployment=deployment, upstream_status=502)
    return UpstreamStatusError(message, deployment=deployment, upstream_status=status, retry_after=parse_retry_after(headers))


def _stream_exception(kind: str, payload: bytes, deployment: str) -> UpstreamError:
    try:
        data = orjson.loads(payload)
        text = str(data.get("message") or data.get("Message") or "")[:300]
    except (orjson.JSONDecodeError, AttributeError):
        text = ""
    status = _STREAM_EXCEPTIONS.get(kind, 502)
    return UpstreamStatusError(f"upstream reported {kind} mid-stream: {text}", deployment=deployment, upstream_status=status)


def _field(data: Any, name: str, kind: type | tuple[type, ...], deployment: str) -> Any:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, kind):
        raise UpstreamProtocolError(f"upstream answer has no valid '{name}'", deployment=deployment)
    return value


# ---------------------------------------------------------------------------------- requests


def converse_request(body: dict[str, Any], deployment: str) -> tuple[dict[str, Any], bool]:
    """The Converse request for an OpenAI chat request, and whether JSON mode is emulated."""
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequestError(
            f"deployment '{deployment}' (Bedrock Converse) returns one choice per request; n must be 1", param="n"
        )
    # Same-role turns are merged: Converse wants strictly alternating roles.
    system, turns = conversation(body.get("messages") or [], partial(_turn, deployment=deployment))
    request: dict[str, Any] = {"messages": turns}
    if system:
        request["system"] = [{"text": t} for t in system]
    inference = _inference_config(body)
    if inference:
        request["inferenceConfig"] = inference
    schema = _json_mode_schema(body.get("response_format"), deployment)
    tool_config = _tool_config(body, schema, deployment)
    if tool_config is not None:
        request["toolConfig"] = tool_config
    return request, schema is not None


def _turn(m: dict[str, Any], deployment: str) -> Turn:
    """A message's turn role and blocks: tool results go in user turns."""
    role = m.get("role")
    if role == "user":
        return "user", _user_blocks(m.get("content"), deployment)
    if role == "assistant":
        return "assistant", _assistant_blocks(m, deployment)
    if role == "tool":
        return "user", [_tool_result(m, deployment)]
    raise InvalidRequestError(f"deployment '{deployment}' (Bedrock) cannot take '{role}' messages", param="messages")


def _user_blocks(content: Any, deployment: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        return [{"text": str(content)}]
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": str(part["text"])})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append(_image_block(str(url or ""), deployment))
        else:
            raise InvalidRequestError(
                f"deployment '{deployment}' (Bedrock) cannot take '{kind}' content parts", param="messages"
            )
    return blocks


def _image_block(url: str, deployment: str) -> dict[str, Any]:
    parsed = parse_data_url(url)
    if parsed is None:
        raise InvalidRequestError(
            f"deployment '{deployment}' (Bedrock) takes images only as inline bytes: send a base64 "
            "data: URL, not a link (Bedrock cannot fetch image URLs)",
            param="messages",
        )
    mime, payload = parsed
    fmt = _IMAGE_FORMATS.get(mime.lower())
    if fmt is None:
        raise InvalidRequestError(
            f"deployment '{deployment}' (Bedrock) takes png, jpeg, gif or webp images, not {mime}", param="messages"
        )
    return {"image": {"format": fmt, "source": {"bytes": payload}}}


def _assistant_blocks(m: dict[str, Any], deployment: str) -> list[dict[str, Any]]:
    text = message_text(m.get("content"))
    blocks: list[dict[str, Any]] = [{"text": text}] if text else []
    for call in m.get("tool_calls") or []:
        fn = call.get("function") or {}
        use = {"toolUseId": call.get("id"), "name": fn.get("name"), "input": tool_arguments(fn.get("arguments"), deployment)}
        blocks.append({"toolUse": use})
    return blocks


def _tool_result(m: dict[str, Any], deployment: str) -> dict[str, Any]:
    call_id = m.get("tool_call_id")
    if not call_id:
        raise InvalidRequestError(
            f"a tool message needs its tool_call_id to be sent to deployment '{deployment}'", param="messages"
        )
    text = message_text(m.get("content"))
    return {"toolResult": {"toolUseId": call_id, "content": [{"text": text}] if text else []}}


def _inference_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if s]
    if stops:
        config["stopSequences"] = stops
    return config


def _json_mode_schema(response_format: Any, deployment: str) -> dict[str, Any] | None:
    """The object schema JSON mode asks for (json_object: any object), None without JSON mode."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "object"}
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        return {"type": "object"}
    if schema.get("type", "object") != "object":
        raise InvalidRequestError(
            f"deployment '{deployment}' (Bedrock) emulates JSON mode with a tool, whose input must be an "
            "object: use an object schema",
            param="response_format",
        )
    return schema


def _tool_config(body: dict[str, Any], json_schema: dict[str, Any] | None, deployment: str) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if json_schema is not None:
        if tools and choice != "none":
            raise InvalidRequestError(
                f"deployment '{deployment}' (Bedrock) emulates JSON mode with a forced tool, so it cannot "
                "combine response_format with tools",
                param="response_format",
            )
        spec = _tool_spec(_JSON_TOOL, "Answer with a JSON value of this schema.", json_schema)
        return {"tools": [spec], "toolChoice": {"tool": {"name": _JSON_TOOL}}}
    if not tools or choice == "none":
        return None
    specs = []
    for tool in tools:
        fn = tool.get("function") or {}
        specs.append(_tool_spec(str(fn.get("name")), fn.get("description"), fn.get("parameters")))
    config: dict[str, Any] = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name")}}
    return config


def _tool_spec(name: str, description: Any, schema: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "inputSchema": {"json": schema or {"type": "object", "properties": {}}}}
    if description:
        spec["description"] = str(description)
    return {"toolSpec": spec}


def _embedding_inputs(value: Any) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise InvalidRequestError("Bedrock embeddings take a non-empty string or list of strings", param="input")
    return texts


# ---------------------------------------------------------------------------------- answers


def _finish(stop_reason: Any, json_mode: bool) -> str:
    if json_mode and stop_reason == "tool_use":
        return "stop"
    return _FINISH.get(str(stop_reason), "stop")


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    p, c = int(data.get("inputTokens") or 0), int(data.get("outputTokens") or 0)
    return Usage(p, c, int(data.get("totalTokens") or p + c))


def converse_result(data: Any, model: str, json_mode: bool, deployment: str) -> ChatResult:
    """A Converse response as a canonical `chat.completion`."""
    try:
        blocks = data["output"]["message"]["content"]
        iter(blocks)
    except (KeyError, TypeError):
        raise UpstreamProtocolError("upstream answer is not a Converse response", deployment=deployment) from None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input") or {}).decode()
            if json_mode and use.get("name") == _JSON_TOOL:
                texts.append(arguments)
            else:
                calls.append(tool_call(use.get("toolUseId"), use.get("name"), arguments))
    finish = _finish(data.get("stopReason"), json_mode)
    message = assistant_message(texts, calls)
    return completion_result(model=model, message=message, finish_reason=finish, usage=_usage(data.get("usage")))


class ConverseStreamDecoder:
    """ConverseStream event-stream bytes -> canonical chunks, fed as they arrive (a frame may
    be split anywhere between reads). Exception frames become `UpstreamStatusError`s."""

    def __init__(self, model: str, deployment: str, json_mode: bool = False) -> None:
        from botocore.eventstream import EventStreamBuffer, ParserError

        self._buffer = EventStreamBuffer()
        self._parser_error = ParserError
        self._chunks = ChunkFactory(model)
        self._deployment = deployment
        self._json_mode = json_mode
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._json_blocks: set[int] = set()
        self._pending = 0  # bytes fed that no whole frame has consumed yet
        self.finished = False  # messageStop seen
        self.done = False  # metadata seen: nothing follows

    def feed(self, data: bytes) -> tuple[list[StreamEvent], UpstreamError | None]:
        """The chunks the frames completed by `data` make, and an error that came after them."""
        self._buffer.add_data(data)
        self._pending += len(data)
        out: list[StreamEvent] = []
        try:
            for frame in self._buffer:
                self._pending -= frame.prelude.total_length
                out += self._convert(frame.headers, frame.payload)
                if self.done:
                    break
        except UpstreamError as exc:
            return out, exc
        except self._parser_error:
            return out, UpstreamProtocolError("upstream sent a corrupt event-stream frame", deployment=self._deployment)
        return out, None

    def end_error(self) -> UpstreamError | None:
        """At end of body: the error if the answer was not complete."""
        if self._pending:
            return UpstreamProtocolError(
                "upstream stream broke off in the middle of an event", deployment=self._deployment
            )
        if not self.finished:
            return UpstreamProtocolError(
                "upstream stream ended before the answer was complete (no messageStop)", deployment=self._deployment
            )
        return None

    def _convert(self, headers: dict[str, Any], payload: bytes) -> list[StreamEvent]:
        kind = headers.get(":message-type")
        if kind == "exception":
            raise _stream_exception(str(headers.get(":exception-type")), payload, self._deployment)
        if kind == "error":
            raise UpstreamProtocolError(
                f"upstream stream error {headers.get(':error-code')}: {str(headers.get(':error-message'))[:200]}",
                deployment=self._deployment,
            )
        if kind != "event":
            return []
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("upstream sent a malformed stream event", deployment=self._deployment) from None
        handler = _EVENT_HANDLERS.get(str(headers.get(":event-type")))
        return handler(self, data) if handler is not None else []

    def _message_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        return [self._chunks.role()]

    def _block_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        use = (data.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []
        block = int(data.get("contentBlockIndex") or 0)
        if self._json_mode and use.get("name") == _JSON_TOOL:
            self._json_blocks.add(block)
            return []
        index = self._tools[block] = len(self._tools)
        return [self._chunks.tool_call_start(index, str(use.get("toolUseId")), str(use.get("name")))]

    def _block_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta") or {}
        text = delta.get("text")
        if text:
            return [self._chunks.content(str(text))]
        use = delta.get("toolUse")
        if not isinstance(use, dict):
            return []  # reasoning and citation deltas have no canonical place
        piece = str(use.get("input") or "")
        block = int(data.get("contentBlockIndex") or 0)
        if block in self._json_blocks:
            return [self._chunks.content(piece)] if piece else []
        if block not in self._tools:
            raise UpstreamProtocolError("upstream sent tool input before its tool block", deployment=self._deployment)
        return [self._chunks.tool_call_arguments(self._tools[block], piece)]

    def _message_stop(self, data: dict[str, Any]) -> list[StreamEvent]:
        self.finished = True
        return [self._chunks.finish(_finish(data.get("stopReason"), self._json_mode))]

    def _metadata(self, data: dict[str, Any]) -> list[StreamEvent]:
        self.done = True
        usage = _usage(data.get("usage"))
        return [self._chunks.usage(usage)] if usage is not None else []


_EVENT_HANDLERS = {
    "messageStart": ConverseStreamDecoder._message_start,
    "contentBlockStart": ConverseStreamDecoder._block_start,
    "contentBlockDelta": ConverseStreamDecoder._block_delta,
    "messageStop": ConverseStreamDecoder._message_stop,
    "metadata": ConverseStreamDecoder._metadata,
}


class _BedrockStream(UpstreamStream):
    """Forwards a ConverseStream answer as it arrives: the chunks of each network read together.

    Ends cleanly after the metadata event, or at end of body after messageStop; anything else
    (an exception frame, a cut or corrupt frame, no messageStop) raises an `UpstreamError`.
    """

    end_marker = "messageStop"

    def __init__(self, resp: aiohttp.ClientResponse, decoder: ConverseStreamDecoder, deployment: str) -> None:
        super().__init__(resp, deployment)
        self._decoder = decoder

    def feed(self, chunk: bytes) -> Step:
        batch, error = self._decoder.feed(chunk)
        return batch, self._decoder.done, error

    def finish(self) -> Step:
        return [], True, self._decoder.end_error()
