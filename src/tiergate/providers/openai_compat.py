"""Adapter for OpenAI-compatible upstreams.

Covers OpenAI, Groq, DeepSeek, Mistral, Together, AzInTelecom's sovereign endpoint, vLLM,
llama.cpp's server, Ollama's `/v1`, and the OpenAI-compatible endpoints of Gemini and Anthropic.
Answers already are in the canonical format, so non-streamed bodies are passed back byte for byte
and streamed events are forwarded one by one as they arrive, never buffered whole.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from ..errors import UpstreamProtocolError
from ..types import ChatResult, StreamEvent, Usage
from .base import USER_AGENT, HTTPProvider, load_json
from .sse import SSEEvent, SSEParser
from .stream import Step, UpstreamStream

_JSON = "application/json"


class OpenAICompatProvider(HTTPProvider):
    wire = "openai"

    async def start(self) -> None:
        # Few session headers, User-Agent among them: aiohttp takes a slower path per request
        # when asked to skip its automatic headers.
        headers = {"content-type": _JSON, "user-agent": USER_AGENT}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        self._open_session(headers)
        self._chat_url = f"{self.deployment.base_url}/chat/completions"

    async def chat(self, body: dict[str, Any]) -> ChatResult:
        raw, _ = await self.request_raw("POST", self._chat_url, body)
        data = load_json(raw, self.name)
        if not isinstance(data, dict) or "choices" not in data:
            raise UpstreamProtocolError(
                "upstream answer is not a chat.completion object", deployment=self.name
            )
        return ChatResult(raw, Usage.from_openai(data.get("usage")), data)

    async def open_stream(self, body: dict[str, Any]) -> _OpenAIStream:
        return _OpenAIStream(await self.open_response(self._chat_url, body), self.name)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = await self.request_json("POST", f"{self.deployment.base_url}/embeddings", body)
        return data

    async def list_models(self) -> list[str]:
        data = await self.request_json("GET", f"{self.deployment.base_url}/models", probe=True)
        items = data.get("data") if isinstance(data, dict) else None
        return [str(m.get("id")) for m in items or [] if isinstance(m, dict)]


class _OpenAIStream(UpstreamStream):
    """Forwards an upstream SSE stream as it arrives: the events of each network read together.

    Ends cleanly only on `data: [DONE]` (or end of body after a finish_reason, for servers that
    omit the marker); a stream that breaks off earlier raises `UpstreamProtocolError`, so the
    client is told instead of receiving a silently cut answer.
    """

    end_marker = "[DONE]"

    def __init__(self, resp: aiohttp.ClientResponse, deployment: str) -> None:
        super().__init__(resp, deployment)
        self._parser = SSEParser()
        self._finished = False  # a finish_reason went by

    def feed(self, chunk: bytes) -> Step:
        batch, done, error = self._convert(self._parser.feed(chunk))
        if batch and not self._finished:
            self._finished = any(ev.has_finish_reason() for ev in batch)
        return batch, done, error

    def finish(self) -> Step:
        batch, done, error = self._convert(self._parser.finish())
        return batch, done or self._finished, error

    def _convert(self, events: list[SSEEvent]) -> Step:
        """The OpenAI chunks of one read, whether `[DONE]` came, and an error that followed
        them (the chunks before an error still reach the client)."""
        out: list[StreamEvent] = []
        for sse in events:
            data = sse.data
            if data == b"[DONE]":
                return out, True, None
            if sse.event == b"error" or data.startswith(b'{"error"'):
                return out, True, UpstreamProtocolError(
                    f"upstream reported an error mid-stream: {_error_text(data)}",
                    deployment=self._deployment,
                )
            if not (data.startswith(b"{") and data.endswith(b"}")):
                return out, True, UpstreamProtocolError(
                    "upstream sent a malformed stream event", deployment=self._deployment
                )
            out.append(StreamEvent(data))
        return out, False, None


def _error_text(data: bytes) -> str:
    try:
        err = orjson.loads(data).get("error")
        return str(err.get("message") if isinstance(err, dict) else err)[:300]
    except Exception:  # noqa: BLE001
        return data[:200].decode("utf-8", "replace")
