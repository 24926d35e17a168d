"""Adapter for OpenAI-compatible upstreams.

Covers OpenAI, Groq, DeepSeek, Mistral, Together, AzInTelecom's sovereign endpoint, vLLM,
llama.cpp's server, Ollama's `/v1`, and the OpenAI-compatible endpoints of Gemini and Anthropic.
Answers already are in the canonical format, so non-streamed bodies are passed back byte for byte
and streamed events are forwarded one by one as they arrive, never buffered whole.
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, AsyncIterator

import aiohttp
import orjson

from ..errors import UpstreamError, UpstreamProtocolError
from ..types import ChatResult, StreamEvent, Usage
from .base import (
    USER_AGENT,
    Provider,
    make_session,
    probe_timeout,
    status_error,
    stream_timeout,
    translate_exception,
)
from .sse import SSEEvent, SSEParser

_JSON = "application/json"


class OpenAICompatProvider(Provider):
    wire = "openai"

    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # Few session headers, User-Agent among them: aiohttp takes a slower path per request
        # when asked to skip its automatic headers.
        headers = {"content-type": _JSON, "user-agent": USER_AGENT}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        self._session = make_session(self.deployment, headers)
        self._chat_url = f"{self.deployment.base_url}/chat/completions"
        self._stream_timeout = stream_timeout(self.deployment)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamError(f"deployment {self.name} is not started", deployment=self.name)
        return self._session

    async def chat(self, body: dict[str, Any]) -> ChatResult:
        try:
            async with self._http().post(self._chat_url, data=orjson.dumps(body)) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise status_error(self.name, resp.status, raw, resp.headers)
        except Exception as exc:
            raise translate_exception(exc, self.name) from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("upstream sent malformed JSON", deployment=self.name) from exc
        if not isinstance(data, dict) or "choices" not in data:
            raise UpstreamProtocolError(
                "upstream answer is not a chat.completion object", deployment=self.name
            )
        return ChatResult(raw, Usage.from_openai(data.get("usage")), data)

    async def open_stream(self, body: dict[str, Any]) -> _OpenAIStream:
        try:
            resp = await self._http().post(
                self._chat_url, data=orjson.dumps(body), timeout=self._stream_timeout
            )
        except Exception as exc:
            raise translate_exception(exc, self.name) from exc
        if resp.status != 200:
            try:
                raw = await resp.read()
            except Exception:  # noqa: BLE001 - the status already says what failed
                raw = b""
            finally:
                resp.release()
            raise status_error(self.name, resp.status, raw, resp.headers)
        return _OpenAIStream(resp, self.name)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.deployment.base_url}/embeddings"
        try:
            async with self._http().post(url, data=orjson.dumps(body)) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise status_error(self.name, resp.status, raw, resp.headers)
            data: dict[str, Any] = orjson.loads(raw)
            return data
        except Exception as exc:
            raise translate_exception(exc, self.name) from exc

    async def list_models(self) -> list[str]:
        url = f"{self.deployment.base_url}/models"
        try:
            async with self._http().get(url, timeout=probe_timeout(self.deployment)) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise status_error(self.name, resp.status, raw, resp.headers)
            data = orjson.loads(raw)
        except Exception as exc:
            raise translate_exception(exc, self.name) from exc
        items = data.get("data") if isinstance(data, dict) else None
        return [str(m.get("id")) for m in items or [] if isinstance(m, dict)]


class _OpenAIStream:
    """Forwards an upstream SSE stream as it arrives: the events of each network read together.

    Ends cleanly only on `data: [DONE]` (or end of body after a finish_reason, for servers that
    omit the marker); a stream that breaks off earlier raises `UpstreamProtocolError`, so the
    client is told instead of receiving a silently cut answer.
    """

    def __init__(self, resp: aiohttp.ClientResponse, deployment: str) -> None:
        self._resp = resp
        self._deployment = deployment
        self._gen = self._events()  # one iterator: the first event may be read before the rest

    def __aiter__(self) -> AsyncIterator[list[StreamEvent]]:
        return self._gen

    async def _events(self) -> AsyncGenerator[list[StreamEvent], None]:
        finished = False
        parser = SSEParser()
        reads = self._resp.content.iter_any()
        try:
            while True:
                chunk = await anext(reads, None)
                events = parser.feed(chunk) if chunk is not None else parser.finish()
                batch, done, error = self._convert(events)
                if batch:
                    finished = finished or any(ev.has_finish_reason() for ev in batch)
                    yield batch
                if error is not None:
                    raise error
                if done:
                    return
                if chunk is None:
                    break
        except UpstreamError:
            raise
        except Exception as exc:
            raise translate_exception(exc, self._deployment) from exc
        finally:
            self._resp.release()
        if not finished:
            raise UpstreamProtocolError(
                "upstream stream ended before the answer was complete (no [DONE])",
                deployment=self._deployment,
            )

    def _convert(
        self, events: list[SSEEvent]
    ) -> tuple[list[StreamEvent], bool, UpstreamProtocolError | None]:
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

    async def aclose(self) -> None:
        await self._gen.aclose()
        self._resp.close()


def _error_text(data: bytes) -> str:
    try:
        err = orjson.loads(data).get("error")
        return str(err.get("message") if isinstance(err, dict) else err)[:300]
    except Exception:  # noqa: BLE001
        return data[:200].decode("utf-8", "replace")
