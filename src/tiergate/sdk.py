"""The Python SDK: the seeds' `llm_call` shape, in-process or against a remote gateway.

    from tiergate.sdk import llm_call, allm_call, Tiergate, RemoteClient

    answer = llm_call("Summarise this", model="assistant",
                      constraints={"privacy": "high", "max_latency_ms": 500, "max_cost": 0.01},
                      config="tiergate.yaml")
    print(answer.text, answer.deployment, answer.location)

In-process calls run the same `Gateway.chat` pipeline as the HTTP server (same privacy rules,
routing and fallback), with no server. `RemoteClient` speaks HTTP to a running gateway and
returns the same `LLMResponse`. Sync calls run on a private event-loop thread, so they also work
inside programs that have no event loop.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Coroutine, Iterator, Mapping, TypeVar

import aiohttp
import orjson

from .auth import ANONYMOUS
from .config import Settings, load_settings
from .errors import GatewayError, UpstreamError
from .pipeline import Completed, Embedded, Explained, Gateway, Streaming

T = TypeVar("T")
Messages = str | list[dict[str, Any]]


@dataclass(slots=True)
class LLMResponse:
    text: str
    model: str
    deployment: str
    location: str
    residency: str
    privacy: str
    request_id: str
    usage: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


def _messages(prompt_or_messages: Messages) -> list[dict[str, Any]]:
    if isinstance(prompt_or_messages, str):
        return [{"role": "user", "content": prompt_or_messages}]
    return list(prompt_or_messages)


def _body(prompt: Messages, model: str, constraints: Mapping[str, Any] | None, stream: bool, params: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": _messages(prompt), **params}
    if stream:
        body["stream"] = True
    if constraints:
        meta = dict(body.get("metadata") or {})
        meta["constraints"] = dict(constraints)
        body["metadata"] = meta
    return body


def _embed_body(inputs: str | list[str], model: str, constraints: Mapping[str, Any] | None, params: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": inputs, **params, "encoding_format": "float"}
    if constraints:
        body["metadata"] = {**(body.get("metadata") or {}), "constraints": dict(constraints)}
    return body


def _vectors(data: dict[str, Any]) -> list[list[float]]:
    return [item["embedding"] for item in sorted(data["data"], key=lambda item: item["index"])]


def _text(data: dict[str, Any]) -> str:
    choices = data.get("choices") or [{}]
    msg = choices[0].get("message") or {}
    return msg.get("content") or ""


def _delta_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or ()
    if not choices:
        return ""
    return (choices[0].get("delta") or {}).get("content") or ""


class _LoopThread:
    """A private event loop on a daemon thread, for the sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tiergate-sdk", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        it = agen.__aiter__()
        try:
            while True:
                try:
                    yield self.run(it.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                self.run(aclose())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class _SyncAPI:
    """`call` and `stream` for sync code, over the subclass's `acall` and `astream`."""

    _thread: _LoopThread | None = None

    async def acall(self, prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> LLMResponse:
        raise NotImplementedError

    def astream(self, prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> AsyncIterator[str]:
        raise NotImplementedError

    async def aembed(self, inputs: str | list[str], model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> list[list[float]]:
        raise NotImplementedError

    def embed(self, inputs: str | list[str], model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> list[list[float]]:
        """One vector per input, in input order (same privacy rules as chat)."""
        return self._loop().run(self.aembed(inputs, model, constraints, **params))

    def _loop(self) -> _LoopThread:
        if self._thread is None:
            self._thread = _LoopThread()
        return self._thread

    def call(self, prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> LLMResponse:
        return self._loop().run(self.acall(prompt_or_messages, model, constraints, **params))

    def stream(self, prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> Iterator[str]:
        return self._loop().iterate(self.astream(prompt_or_messages, model, constraints, **params))


class Tiergate(_SyncAPI):
    """The gateway in-process, built from a config file (or Settings)."""

    def __init__(self, config: str | Path | Settings | None = None) -> None:
        settings = config if isinstance(config, Settings) else load_settings(config, allow_simulated_default=False)
        self.gateway = Gateway(settings)
        self._started: asyncio.AbstractEventLoop | None = None
        self._thread: _LoopThread | None = None

    async def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._started is None:
            await self.gateway.start()
            self._started = loop
        elif self._started is not loop:
            raise RuntimeError("a Tiergate instance is bound to the event loop it was first used on")

    async def acall(self, prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> LLMResponse:
        await self._ensure_started()
        outcome = await self.gateway.chat(_body(prompt_or_messages, model, constraints, False, params), principal=ANONYMOUS)
        if isinstance(outcome, Explained):  # pragma: no cover - explain is a header, not an SDK call
            raise GatewayError("explain is not available through acall")
        assert isinstance(outcome, Completed)
        data = outcome.result.json()
        r = outcome.receipt
        return LLMResponse(_text(data), data.get("model", model), r.deployment, r.location, r.residency,
                           r.privacy, r.request_id, data.get("usage") or {}, data)

    async def astream(self, prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> AsyncIterator[str]:
        await self._ensure_started()
        outcome = await self.gateway.chat(_body(prompt_or_messages, model, constraints, True, params), principal=ANONYMOUS)
        assert isinstance(outcome, Streaming)
        try:
            async for batch in outcome.events():
                for ev in batch:
                    text = _delta_text(ev.data)
                    if text:
                        yield text
        finally:
            await outcome.aclose()

    async def aembed(self, inputs: str | list[str], model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> list[list[float]]:
        await self._ensure_started()
        outcome = await self.gateway.embed(_embed_body(inputs, model, constraints, params), principal=ANONYMOUS)
        assert isinstance(outcome, Embedded)
        return _vectors(orjson.loads(outcome.raw))

    async def aclose(self) -> None:
        if self._started is not None:
            await self.gateway.close()
            self._started = None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.run(self.aclose())
            self._thread.stop()
            self._thread = None


class RemoteClient(_SyncAPI):
    """A thin client for a running gateway; same call shapes as `Tiergate`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8100", api_key: str | None = None, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._thread: _LoopThread | None = None

    def _headers(self) -> dict[str, str]:
        h = {"content-type": "application/json"}
        if self.api_key:
            h["authorization"] = f"Bearer {self.api_key}"
        return h

    async def acall(self, prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> LLMResponse:
        body = _body(prompt_or_messages, model, constraints, False, params)
        async with aiohttp.ClientSession(timeout=self.timeout) as s:
            async with s.post(f"{self.base_url}/v1/chat/completions", data=orjson.dumps(body), headers=self._headers()) as resp:
                raw = await resp.read()
                data = orjson.loads(raw)
                if resp.status != 200:
                    err = data.get("error") or {}
                    raise GatewayError(err.get("message", "gateway error"), code=err.get("code"), status=resp.status, param=err.get("param"))
                h = resp.headers
                return LLMResponse(_text(data), data.get("model", model), h.get("x-tiergate-deployment", ""),
                                   h.get("x-tiergate-location", ""), h.get("x-tiergate-residency", ""),
                                   h.get("x-tiergate-privacy", ""), h.get("x-request-id", ""), data.get("usage") or {}, data)

    async def aembed(self, inputs: str | list[str], model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> list[list[float]]:
        body = _embed_body(inputs, model, constraints, params)
        async with aiohttp.ClientSession(timeout=self.timeout) as s:
            async with s.post(f"{self.base_url}/v1/embeddings", data=orjson.dumps(body), headers=self._headers()) as resp:
                data = orjson.loads(await resp.read())
                if resp.status != 200:
                    err = data.get("error") or {}
                    raise GatewayError(err.get("message", "gateway error"), code=err.get("code"), status=resp.status, param=err.get("param"))
                return _vectors(data)

    async def astream(self, prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, **params: Any) -> AsyncIterator[str]:
        from .providers.sse import iter_sse

        body = _body(prompt_or_messages, model, constraints, True, params)
        async with aiohttp.ClientSession(timeout=self.timeout) as s:
            async with s.post(f"{self.base_url}/v1/chat/completions", data=orjson.dumps(body), headers=self._headers()) as resp:
                if resp.status != 200:
                    data = orjson.loads(await resp.read())
                    err = data.get("error") or {}
                    raise GatewayError(err.get("message", "gateway error"), code=err.get("code"), status=resp.status)
                async for ev in iter_sse(resp.content.iter_any()):
                    if ev.data == b"[DONE]":
                        return
                    chunk = orjson.loads(ev.data)
                    if "error" in chunk:
                        raise UpstreamError(chunk["error"].get("message", "stream failed"))
                    text = _delta_text(chunk)
                    if text:
                        yield text
                raise UpstreamError("the gateway's stream ended before the answer was complete")

    def close(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None


_DEFAULT: dict[str, Tiergate] = {}
_DEFAULT_LOCK = threading.Lock()


def _instance(config: str | Path | None) -> Tiergate:
    key = str(config or "")
    with _DEFAULT_LOCK:
        if key not in _DEFAULT:
            _DEFAULT[key] = Tiergate(config)
        return _DEFAULT[key]


def llm_call(prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, *, config: str | Path | None = None, stream: bool = False, **params: Any) -> LLMResponse | Iterator[str]:
    """Call a model through the in-process gateway (sync). `stream=True` yields text deltas."""
    gw = _instance(config)
    if stream:
        return gw.stream(prompt_or_messages, model, constraints, **params)
    return gw.call(prompt_or_messages, model, constraints, **params)


async def allm_call(prompt_or_messages: Messages, model: str = "default", constraints: Mapping[str, Any] | None = None, *, config: str | Path | None = None, **params: Any) -> LLMResponse:
    """Async twin of `llm_call` (use `Tiergate(...).astream` for async streaming)."""
    return await _instance_async(config).acall(prompt_or_messages, model, constraints, **params)


_ASYNC: dict[tuple[str, int], Tiergate] = {}


def _instance_async(config: str | Path | None) -> Tiergate:
    key = (str(config or ""), id(asyncio.get_running_loop()))
    if key not in _ASYNC:
        _ASYNC[key] = Tiergate(config)
    return _ASYNC[key]
