"""Adapter for Ollama's native API (`/api/chat`, `/api/embed`, `/api/tags`).

Ollama also serves an OpenAI-compatible `/v1`, but only the native API takes per-request
`options` (`num_ctx` above all: `/v1` silently runs every model at its default context window)
and `keep_alive`, which decide whether a local model fits and stays loaded. Deployment settings
read here: `base_url` (default `http://127.0.0.1:11434`; a trailing `/v1` or `/api` is dropped),
`api_key` (sent as a bearer token, for an Ollama behind an authenticating proxy), `options`
(merged over the options derived from the request) and `keep_alive` ("5m", or "-1" = keep loaded).

Translation choices a user may notice:
- `tool_choice: "none"` omits the tools. Ollama has no way to force a tool call, so `"required"`
  sends the tools as they are and `{"type": "function", "function": {"name": X}}` sends only X:
  the model may still answer in text (best effort rather than refusing the request).
- Images must be inline (`data:` URLs become Ollama's base64 `images`); the gateway does not
  fetch remote image URLs on the client's behalf, so an http(s) image URL is refused with 400.
- `message.thinking` (the reasoning of thinking models) is dropped: a `chat.completion` has no
  field for it, and clients of the OpenAI format do not expect reasoning text in `content`.
  A client may still switch thinking on or off with `think` (or `reasoning_effort`).
- A 404 (model not pulled on this node) is reported as 404 `upstream_rejected` naming the model,
  and is retryable: another deployment of the same model group may have the model.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import aiohttp
import orjson

from ..config.models import Deployment
from ..errors import InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from ..types import ChatResult, StreamEvent, Usage
from .base import USER_AGENT, HTTPProvider, status_error, upstream_message
from .canonical import (
    ChunkFactory,
    completion_result,
    embeddings_result,
    new_tool_call_id,
    parse_data_url,
    tool_arguments,
    tool_call,
)
from .stream import Step, UpstreamStream

DEFAULT_BASE_URL = "http://127.0.0.1:11434"
_JSON = "application/json"
_FINISH = {"stop": "stop", "length": "length"}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
# OpenAI request field -> Ollama `options` key (max_tokens is handled apart: two names).
_OPTION_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
_REASONING_EFFORT: dict[str, bool | str] = {
    "none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high",
}


def base_url(configured: str) -> str:
    """The server root: users often paste Ollama's OpenAI URL (`.../v1`) or the API prefix."""
    url = (configured or DEFAULT_BASE_URL).rstrip("/")
    for suffix in ("/v1", "/api"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


# --------------------------------------------------------------------------- requests


def chat_payload(body: dict[str, Any], deployment: Deployment, *, stream: bool) -> dict[str, Any]:
    """The `/api/chat` body for an OpenAI chat request (raises `InvalidRequestError` for what
    Ollama cannot express)."""
    if (body.get("n") or 1) > 1:
        raise InvalidRequestError(
            f"deployment '{deployment.name}' (Ollama) returns one choice per request; n must be 1",
            param="n",
        )
    payload: dict[str, Any] = {
        "model": body["model"],
        "messages": ollama_messages(body.get("messages") or [], deployment.name),
        "stream": stream,
    }
    tools = _tools(body.get("tools"), body.get("tool_choice"))
    if tools:
        payload["tools"] = tools
    fmt = _format(body.get("response_format"))
    if fmt is not None:
        payload["format"] = fmt
    options = _options(body, deployment)
    if options:
        payload["options"] = options
    keep_alive = _keep_alive(deployment.keep_alive)
    if keep_alive is not None:
        payload["keep_alive"] = keep_alive
    think = _think(body)
    if think is not None:
        payload["think"] = think
    return payload


def ollama_messages(messages: list[dict[str, Any]], deployment: str) -> list[dict[str, Any]]:
    """OpenAI messages as Ollama messages; a tool result gets the name of the call it answers
    (Ollama matches results to calls by `tool_name`, not by id)."""
    call_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = msg.get("role")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text_only(msg.get("content"), deployment)})
        elif role == "user":
            out.append(_user_message(msg.get("content"), deployment))
        elif role == "assistant":
            out.append(_assistant_message(msg, call_names, deployment))
        elif role == "tool":
            result = {"role": "tool", "content": _text_only(msg.get("content"), deployment)}
            name = call_names.get(str(msg.get("tool_call_id")))
            if name:
                result["tool_name"] = name
            out.append(result)
        elif role == "function":  # OpenAI's legacy function result carries the name itself
            out.append({
                "role": "tool",
                "content": _text_only(msg.get("content"), deployment),
                "tool_name": str(msg.get("name") or ""),
            })
    return out


def _user_message(content: Any, deployment: str) -> dict[str, Any]:
    if not isinstance(content, list):
        return {"role": "user", "content": "" if content is None else str(content)}
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url":
            images.append(_inline_image(part.get("image_url"), deployment))
        else:
            raise InvalidRequestError(
                f"deployment '{deployment}' (Ollama) accepts text and image parts, not '{kind}'",
                param="messages",
            )
    message: dict[str, Any] = {"role": "user", "content": "\n".join(texts)}
    if images:
        message["images"] = images
    return message


def _inline_image(image_url: Any, deployment: str) -> str:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    parsed = parse_data_url(str(url or ""))
    if parsed is None:
        raise InvalidRequestError(
            f"deployment '{deployment}' (Ollama) needs images inline as base64 data URLs "
            "(data:image/png;base64,...); the gateway does not fetch image URLs",
            param="messages",
        )
    return parsed[1]


def _text_only(content: Any, deployment: str) -> str:
    """System, assistant and tool messages carry text only in Ollama."""
    if content is None or isinstance(content, str):
        return content or ""
    message = _user_message(content, deployment)
    if "images" in message:
        raise InvalidRequestError(
            f"deployment '{deployment}' (Ollama) accepts images in user messages only",
            param="messages",
        )
    return str(message["content"])


def _assistant_message(msg: dict[str, Any], call_names: dict[str, str], deployment: str) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": _text_only(msg.get("content"), deployment)}
    calls = []
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        name = str(fn.get("name") or "")
        call_names[str(call.get("id"))] = name
        calls.append({"function": {"name": name, "arguments": tool_arguments(fn.get("arguments"), deployment)}})
    if calls:
        out["tool_calls"] = calls
    return out


def _tools(tools: Any, tool_choice: Any) -> list[dict[str, Any]] | None:
    """Ollama takes OpenAI's tool shape; see the module docstring for `tool_choice`."""
    if not tools or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        chosen = [t for t in tools if (t.get("function") or {}).get("name") == wanted]
        return chosen or list(tools)
    return list(tools)


def _format(response_format: Any) -> Any:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else "json"
    return None


def _options(body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    options = {key: body[field] for field, key in _OPTION_FIELDS.items() if body.get(field) is not None}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = body.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return {**options, **deployment.options}


def _keep_alive(value: str | None) -> str | float | None:
    """Ollama reads a string as a Go duration ("5m"); a bare number ("-1") must go as a number
    (seconds, negative = keep loaded), or Ollama rejects it for its missing unit."""
    if value is None or value == "":
        return None
    return float(value) if _NUMBER.match(value) else value


def _think(body: dict[str, Any]) -> bool | str | None:
    think = body.get("think")
    if isinstance(think, (bool, str)):
        return think
    return _REASONING_EFFORT.get(str(body.get("reasoning_effort")))


# --------------------------------------------------------------------------- answers


def _usage(data: dict[str, Any]) -> Usage:
    prompt = int(data.get("prompt_eval_count") or 0)
    completion = int(data.get("eval_count") or 0)
    return Usage(prompt, completion, prompt + completion)


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Ollama tool calls in OpenAI's shape (ids are made up when Ollama sends none)."""
    calls = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        calls.append(tool_call(
            str(call.get("id") or new_tool_call_id()),
            str(fn.get("name") or ""),
            args if isinstance(args, str) else orjson.dumps(args or {}).decode(),
        ))
    return calls


def _finish_reason(data: dict[str, Any], called_tools: bool) -> str:
    # Ollama says "stop" after a tool call too; OpenAI clients look for "tool_calls".
    if called_tools:
        return "tool_calls"
    return _FINISH.get(str(data.get("done_reason")), "stop")


def chat_result(data: Any, model: str, deployment: str) -> ChatResult:
    """A non-streamed `/api/chat` answer as a `chat.completion`."""
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise UpstreamProtocolError("upstream answer is not an Ollama chat response", deployment=deployment)
    message = data["message"]
    calls = _tool_calls(message)
    out: dict[str, Any] = {"role": "assistant", "content": str(message.get("content") or "")}
    if calls:
        out["content"] = out["content"] or None
        out["tool_calls"] = calls
    return completion_result(
        model=str(data.get("model") or model),
        message=out,
        finish_reason=_finish_reason(data, bool(calls)),
        usage=_usage(data),
    )


class NDJSONParser:
    """Splits a newline-delimited JSON body into lines as reads arrive (reads may end anywhere,
    one byte per read included); keeps the incomplete tail for the next read."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        return [line for line in lines if line.strip()]

    def finish(self) -> list[bytes]:
        """At end of body: the last line, if the server did not end it with a newline."""
        tail, self._tail = self._tail, b""
        return [tail] if tail.strip() else []


# --------------------------------------------------------------------------- adapter


class OllamaProvider(HTTPProvider):
    wire = "ollama"

    async def start(self) -> None:
        headers = {"content-type": _JSON, "user-agent": USER_AGENT}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        self._open_session(headers)
        self._base = base_url(self.deployment.base_url)

    def _status_error(self, status: int, raw: bytes, headers: Any, model: str) -> UpstreamStatusError:
        if status != 404:
            return status_error(self.name, status, raw, headers)
        err = UpstreamStatusError(
            f"model '{model}' is not available on deployment '{self.name}' (Ollama said: "
            f"{upstream_message(raw)}); pull it there with `ollama pull {model}`",
            deployment=self.name,
            upstream_status=404,
        )
        err.retryable = True  # another node of the model group may have it pulled
        return err

    async def _post_json(self, path: str, payload: dict[str, Any]) -> Any:
        errors = partial(self._status_error, model=str(payload.get("model")))
        return await self.request_json("POST", f"{self._base}{path}", payload, errors=errors)

    async def chat(self, body: dict[str, Any]) -> ChatResult:
        data = await self._post_json("/api/chat", chat_payload(body, self.deployment, stream=False))
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            raise UpstreamProtocolError(f"upstream reported an error: {data['error'][:300]}", deployment=self.name)
        return chat_result(data, body["model"], self.name)

    async def open_stream(self, body: dict[str, Any]) -> _OllamaStream:
        payload = chat_payload(body, self.deployment, stream=True)
        errors = partial(self._status_error, model=body["model"])
        resp = await self.open_response(f"{self._base}/api/chat", payload, errors=errors)
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        return _OllamaStream(resp, self.name, ChunkFactory(body["model"]), include_usage)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise InvalidRequestError(
                f"deployment '{self.name}' (Ollama) embeds text; token-id input is not supported",
                param="input",
            )
        payload: dict[str, Any] = {"model": body["model"], "input": texts, "truncate": True}
        if body.get("dimensions"):
            payload["dimensions"] = body["dimensions"]
        if self.deployment.options:
            payload["options"] = dict(self.deployment.options)
        keep_alive = _keep_alive(self.deployment.keep_alive)
        if keep_alive is not None:
            payload["keep_alive"] = keep_alive
        data = await self._post_json("/api/embed", payload)
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise UpstreamProtocolError("upstream answer is not an Ollama embed response", deployment=self.name)
        tokens = int(data.get("prompt_eval_count") or 0)
        return embeddings_result(vectors, str(data.get("model") or body["model"]), tokens)

    async def list_models(self) -> list[str]:
        data = await self.request_json("GET", f"{self._base}/api/tags", probe=True)
        items = data.get("models") if isinstance(data, dict) else None
        return [str(m.get("name") or m.get("model")) for m in items or [] if isinstance(m, dict)]


class _OllamaStream(UpstreamStream):
    """Translates Ollama's NDJSON stream into chunk batches as the lines arrive.

    Content lines become content deltas; tool calls arrive whole in one line and become one
    complete tool-call delta each; the final `done: true` line becomes the finish chunk (and the
    usage chunk when asked). A `{"error": ...}` line, a malformed line or a body that ends
    before `done: true` raises `UpstreamProtocolError` after the events that came before it.
    """

    end_marker = "done: true"

    def __init__(self, resp: aiohttp.ClientResponse, deployment: str, chunks: ChunkFactory, include_usage: bool) -> None:
        super().__init__(resp, deployment)
        self._parser = NDJSONParser()
        self._chunks = chunks
        self._include_usage = include_usage
        self._started = False
        self._tool_calls = 0

    def feed(self, chunk: bytes) -> Step:
        return self._convert(self._parser.feed(chunk))

    def finish(self) -> Step:
        return self._convert(self._parser.finish())

    def _convert(self, lines: list[bytes]) -> Step:
        """The chunks of one read, whether the final line came, and an error that followed
        them (the chunks before an error still reach the client)."""
        out: list[StreamEvent] = []
        for line in lines:
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                return out, True, UpstreamProtocolError("upstream sent a malformed stream line", deployment=self._deployment)
            if not isinstance(data, dict) or isinstance(data.get("error"), str) or "message" not in data:
                detail = data.get("error") if isinstance(data, dict) else None
                return out, True, UpstreamProtocolError(
                    f"upstream reported an error mid-stream: {str(detail or 'unexpected line')[:300]}",
                    deployment=self._deployment,
                )
            self._message_events(data.get("message") or {}, out)
            if data.get("done") is True:
                self._final_events(data, out)
                return out, True, None
        return out, False, None

    def _message_events(self, message: dict[str, Any], out: list[StreamEvent]) -> None:
        text = message.get("content")
        calls = _tool_calls(message)
        if not (text or calls):
            return  # e.g. a `thinking`-only line: dropped (see the module docstring)
        self._start(out)
        if text:
            out.append(self._chunks.content(str(text)))
        for call in calls:
            fn = call["function"]
            out.append(self._chunks.tool_call_start(self._tool_calls, call["id"], fn["name"], fn["arguments"]))
            self._tool_calls += 1

    def _final_events(self, data: dict[str, Any], out: list[StreamEvent]) -> None:
        self._start(out)
        out.append(self._chunks.finish(_finish_reason(data, self._tool_calls > 0)))
        if self._include_usage:
            out.append(self._chunks.usage(_usage(data)))

    def _start(self, out: list[StreamEvent]) -> None:
        if not self._started:
            self._started = True
            out.append(self._chunks.role())
